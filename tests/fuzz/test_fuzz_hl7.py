"""ER7 parser and MLLP framing under bad input: in-process, and against the hub's socket.

Budget: hypothesis properties of the decoder (300 examples each), a seeded
mutation loop over every ER7 sample (2 000 cases, in-process), and 300
mutated frames plus 60 raw byte streams sent to the running hub's MLLP port.
Every frame gets an ACK (AA, AE or AR); a message not accepted leaves no
order behind; the hub answers a good order afterwards.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.mllp import orm
from hl7.er7 import parse_message
from hl7.errors import ER7Error, FramingError, HL7Error
from hl7.mllp import MllpDecoder, frame
from hl7.orders import map_message
from tests.fuzz.conftest import FuzzHub, Tally
from tests.fuzz.mutate import mutate_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
SAMPLES = [path.read_bytes() for path in sorted(DATA.glob("*.hl7"))]
ZONE = ZoneInfo("Asia/Shanghai")
SEED = 20261205
BUDGET = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
PIECES = st.one_of(
    st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"\n"]),
    st.binary(max_size=40),
    st.sampled_from(SAMPLES[:4]),
)


@BUDGET
@given(st.lists(PIECES, max_size=30), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_decoder_takes_any_stream_in_any_chunks(
    tally: Tally, pieces: list[bytes], cuts: list[int]
) -> None:
    tally.add("mllp decoder (hypothesis)")
    stream = b"".join(pieces)
    decoder = MllpDecoder(max_frame=4096)
    events: list[bytes | FramingError] = []
    position, index = 0, 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        events += decoder.feed(stream[position : position + size])
        position, index = position + size, index + 1
    assert all(isinstance(event, bytes | FramingError) for event in events)
    whole = MllpDecoder(max_frame=4096).feed(stream)
    assert [e for e in events if isinstance(e, bytes)] == [e for e in whole if isinstance(e, bytes)]


@BUDGET
@given(
    st.lists(st.binary(max_size=200).filter(lambda b: b"\x0b" not in b and b"\x1c" not in b),
             max_size=8),
    st.integers(1, 50),
)  # fmt: skip
def test_well_formed_frames_come_out_whole_in_order(
    tally: Tally, payloads: list[bytes], chunk: int
) -> None:
    tally.add("mllp frames round trip (hypothesis)")
    stream = b"".join(frame(p) for p in payloads)
    decoder = MllpDecoder()
    out: list[bytes | FramingError] = []
    for at in range(0, len(stream), chunk):
        out += decoder.feed(stream[at : at + chunk])
    assert out == payloads


def test_mutated_er7_samples_parse_or_fail_with_their_own_errors(tally: Tally) -> None:
    rng = random.Random(SEED)
    for case in range(2000):
        raw = mutate_bytes(rng.choice(SAMPLES), rng, edits=rng.randint(1, 6))
        try:
            message = parse_message(raw)
        except ER7Error as error:
            assert str(error), f"case {case}: empty error"
            continue
        try:
            map_message(message, zone=ZONE)
        except HL7Error as error:
            assert str(error) and error.hl7_error_code, f"case {case}"
    tally.add("er7 parser + mapper (mutation)", 2000)


def _reply(link: socket.socket) -> bytes:
    """One framed reply, or b"" when the hub closed the link."""
    decoder, events = MllpDecoder(), []
    while not events:
        chunk = link.recv(65536)
        if not chunk:
            return b""
        events = [e for e in decoder.feed(chunk) if isinstance(e, bytes)]
    return events[0]


def _code(reply: bytes) -> str:
    msa = parse_message(reply).segment("MSA")
    assert msa is not None
    return msa.get(1)


@pytest.mark.slow
def test_mutated_frames_to_the_hub_always_get_an_ack(fuzz_hub: FuzzHub, tally: Tally) -> None:
    rng = random.Random(SEED + 1)
    codes: dict[str, int] = {}
    refused: list[str] = []
    with socket.create_connection(("127.0.0.1", fuzz_hub.mllp_port), timeout=20) as link:
        for case in range(300):
            n = rng.randrange(10**8, 10**9)
            payload = mutate_bytes(orm(n), rng, edits=rng.randint(1, 4))
            payload = payload.replace(b"\x0b", b"").replace(b"\x1c", b"")  # one frame each
            link.sendall(frame(payload))
            reply = _reply(link)
            assert reply, f"case {case}: the hub closed the link instead of answering"
            code = _code(reply)
            assert code in ("AA", "AE", "AR"), f"case {case}: {code}"
            codes[code] = codes.get(code, 0) + 1
            if code != "AA":
                refused.append(f"P{n:09d}")
    tally.add("mllp frames to the hub (mutation)", 300)
    placed = {row[0] for row in fuzz_hub.query("SELECT placer_number FROM exam_order")}
    assert not placed & set(refused), "a refused message left an order behind"
    assert codes.get("AA", 0) and codes.get("AE", 0) + codes.get("AR", 0)
    print(f"MLLP fuzz ACK codes: {codes}")


@pytest.mark.slow
def test_raw_byte_streams_never_stop_the_listener(fuzz_hub: FuzzHub, tally: Tally) -> None:
    rng = random.Random(SEED + 2)
    for case in range(60):
        stream = mutate_bytes(frame(rng.choice(SAMPLES)) * rng.randint(1, 3), rng, edits=8)
        with socket.create_connection(("127.0.0.1", fuzz_hub.mllp_port), timeout=20) as link:
            link.sendall(stream)
            link.shutdown(socket.SHUT_WR)  # half-close: the hub answers what it got, then closes
            while link.recv(65536):
                pass
        assert fuzz_hub.alive(), f"case {case} killed the hub"
    tally.add("mllp raw streams to the hub (mutation)", 60)
    with socket.create_connection(("127.0.0.1", fuzz_hub.mllp_port), timeout=20) as link:
        link.sendall(frame(orm(999_000_001)))
        assert _code(_reply(link)) == "AA"
