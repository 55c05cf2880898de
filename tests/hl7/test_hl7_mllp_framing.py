"""MLLP framing, tested by feeding bytes: every split, junk, oversize frames, resync."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl7.errors import FrameTooLarge, FramingError, JunkOutsideFrame, TruncatedFrame
from hl7.mllp import MllpDecoder, frame
from models.errors import ValidationError

MSG1 = b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305||ORM^O01|C1|P|2.3.1\rPID|1||123\r"
MSG2 = "MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305||ADT^A08|C2|P|2.5\rPID|1||李建国\r".encode()
MSG3 = b"MSH|^~\\&|HIS|X|HUREN|HUREN|20240305||ACK|C3|P|2.5\rMSA|AA|C1\r"

Event = bytes | FramingError


def _feed_in_pieces(decoder: MllpDecoder, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        events += decoder.feed(data[start:cut])
        start = cut
    return events


def _describe(events: list[Event]) -> list[object]:
    """Comparable form: payloads as bytes, problems as (class, data)."""
    return [e if isinstance(e, bytes) else (type(e).__name__, e.data) for e in events]


def test_frame_wraps_payload() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"
    assert frame(b"") == b"\x0b\x1c\x0d"


def test_one_frame_one_payload() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(frame(MSG1)) == [MSG1]
    assert not decoder.in_frame and decoder.pending == 0


def test_several_frames_in_one_chunk() -> None:
    assert MllpDecoder().feed(frame(MSG1) + frame(MSG2) + frame(MSG3)) == [MSG1, MSG2, MSG3]


def test_every_single_split_position_gives_the_same_events() -> None:
    stream = frame(MSG1) + b"junk" + frame(MSG2) + b"\r\n" + frame(b"") + frame(MSG3)
    expected = _describe(MllpDecoder().feed(stream))
    assert expected == [
        MSG1,
        ("JunkOutsideFrame", b"junk"),
        MSG2,
        ("JunkOutsideFrame", b"\r\n"),
        b"",
        MSG3,
    ]
    for cut in range(len(stream) + 1):
        events = _feed_in_pieces(MllpDecoder(), stream, [cut])
        payloads = [e for e in events if isinstance(e, bytes)]
        assert payloads == [MSG1, MSG2, b"", MSG3], cut
        junk = b"".join(e.data for e in events if isinstance(e, JunkOutsideFrame))
        assert junk == b"junk\r\n", cut  # a split may report junk in two pieces, never lose it


def test_every_pair_of_split_positions() -> None:
    stream = frame(MSG3) + frame(MSG1[:40])
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            events = _feed_in_pieces(MllpDecoder(), stream, [first, second])
            assert events == [MSG3, MSG1[:40]], (first, second)


def test_byte_by_byte() -> None:
    decoder = MllpDecoder()
    events: list[Event] = []
    for byte in frame(MSG2) + frame(MSG1):
        events += decoder.feed(bytes([byte]))
    assert events == [MSG2, MSG1]


def test_end_block_without_carriage_return_is_accepted() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0b" + MSG1 + b"\x1c" + b"\x0b" + MSG3 + b"\x1c") == [MSG1, MSG3]
    # The carriage return may arrive in the next read: it is swallowed, not junk.
    assert decoder.feed(b"\x0d") == []


def test_junk_between_frames_is_reported_not_dropped() -> None:
    events = MllpDecoder().feed(b"GET / HTTP/1.1\r\n" + frame(MSG1) + b"\x00\x01")
    assert _describe(events) == [
        ("JunkOutsideFrame", b"GET / HTTP/1.1\r\n"),
        MSG1,
        ("JunkOutsideFrame", b"\x00\x01"),
    ]
    junk = events[0]
    assert isinstance(junk, JunkOutsideFrame) and isinstance(junk, ValidationError)
    assert not junk.blank and "outside any MLLP frame" in junk.reason


def test_blank_junk_is_marked_harmless() -> None:
    events = MllpDecoder().feed(frame(MSG1) + b"\n")
    assert events[0] == MSG1
    junk = events[1]
    assert isinstance(junk, JunkOutsideFrame) and junk.blank


def test_unframed_hl7_is_junk() -> None:
    events = MllpDecoder().feed(MSG1)
    assert _describe(events) == [("JunkOutsideFrame", MSG1)]


def test_new_start_block_abandons_a_truncated_frame() -> None:
    events = MllpDecoder().feed(b"\x0b" + MSG1[:30] + frame(MSG2))
    assert isinstance(events[0], TruncatedFrame) and events[0].data == MSG1[:30]
    assert "abandoned" in events[0].reason
    assert events[1:] == [MSG2]


def test_oversize_frame_is_reported_once_and_the_decoder_resynchronises() -> None:
    big = b"MSH|^~\\&|HIS|X|||20240305||ORM^O01|BIG1|P|2.5\r" + b"NTE|1||" + b"x" * 5000 + b"\r"
    stream = frame(MSG1) + frame(big) + frame(MSG2)
    decoder = MllpDecoder(max_frame=1000)
    events = decoder.feed(stream)
    assert events[0] == MSG1 and events[2] == MSG2 and len(events) == 3
    problem = events[1]
    assert isinstance(problem, FrameTooLarge) and problem.limit == 1000
    assert problem.data.startswith(b"MSH|") and b"BIG1" in problem.data  # head for the AR
    assert "exceeds 1000 bytes" in problem.reason


@pytest.mark.parametrize("chunk", [1, 7, 100, 999, 1000, 1001, 4096])
def test_oversize_frame_in_small_chunks(chunk: int) -> None:
    stream = frame(MSG1) + frame(b"y" * 3000) + b"\x0d" + frame(MSG3)
    decoder = MllpDecoder(max_frame=1000)
    events = _feed_in_pieces(decoder, stream, list(range(chunk, len(stream), chunk)))
    payloads = [e for e in events if isinstance(e, bytes)]
    too_large = [e for e in events if isinstance(e, FrameTooLarge)]
    assert payloads == [MSG1, MSG3]
    assert len(too_large) == 1 and too_large[0].data == b"y" * len(too_large[0].data)
    assert not [e for e in events if isinstance(e, JunkOutsideFrame) and not e.blank]


def test_oversize_frame_ended_by_a_new_start_block() -> None:
    decoder = MllpDecoder(max_frame=10)
    events = decoder.feed(b"\x0b" + b"z" * 50)
    assert len(events) == 1 and isinstance(events[0], FrameTooLarge)
    assert decoder.feed(b"z" * 50) == []  # still skipping, nothing new to report
    assert decoder.feed(frame(b"ok")) == [b"ok"]


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    assert MllpDecoder(max_frame=len(MSG1)).feed(frame(MSG1)) == [MSG1]
    events = MllpDecoder(max_frame=len(MSG1) - 1).feed(frame(MSG1))
    assert len(events) == 1 and isinstance(events[0], FrameTooLarge)


def test_pending_counts_an_unfinished_frame() -> None:
    decoder = MllpDecoder()
    decoder.feed(b"\x0b" + MSG1[:10])
    assert decoder.in_frame and decoder.pending == 10


def test_max_frame_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MllpDecoder(max_frame=0)


@settings(max_examples=200, deadline=None, database=None)
@given(
    payloads=st.lists(
        st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
        max_size=6,
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
)
def test_any_payloads_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    events = _feed_in_pieces(MllpDecoder(), stream, [c for c in cuts if c <= len(stream)])
    assert events == payloads


@settings(max_examples=300, deadline=None, database=None)
@given(
    data=st.lists(
        st.sampled_from([b"\x0b", b"\x1c", b"\x0d", b"\n", b"MSH|", b"x" * 30, b"\xff"]),
        max_size=40,
    ).map(b"".join),
    cuts=st.lists(st.integers(0, 1300), max_size=12),
)
def test_any_bytes_any_chunking_same_outcome(data: bytes, cuts: list[int]) -> None:
    """Whatever the bytes, the decoder never raises and TCP segmentation changes nothing."""
    whole = MllpDecoder(max_frame=50).feed(data)
    pieces = _feed_in_pieces(MllpDecoder(max_frame=50), data, [c for c in cuts if c <= len(data)])

    def summary(events: list[Event]) -> tuple[object, ...]:
        return (
            [e for e in events if isinstance(e, bytes)],
            [type(e).__name__ for e in events if isinstance(e, (FrameTooLarge, TruncatedFrame))],
            b"".join(e.data for e in events if isinstance(e, JunkOutsideFrame)),
        )

    assert summary(whole) == summary(pieces)
