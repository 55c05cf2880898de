"""Whatever arrives on the wire, the parser and the mapper fail only with their own errors."""

from __future__ import annotations

import pytest
from hl7_samples import SAMPLES, ZONE, charset_for, load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hl7.er7 import DEFAULT_DELIMITERS, Message, escape, parse_message, unescape
from hl7.errors import ER7Error, HL7Error
from hl7.orders import map_message

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
SAMPLE_BYTES = [(name, load(name)) for name in SAMPLES]
WIRE_BYTES = st.sampled_from(list(b"|^~\\&\r\n MSH0123456789AZ\x00\x0b\x1c\xe4\xb8\xad\xff"))


def _read_everything(message: Message) -> None:
    """Touch every field, repetition and component the way intake might."""
    for segment in message.segments:
        for field in range(1, segment.field_count + 2):
            segment.get(field)
            segment.get(field, 2, 2, 2)
            for repetition in segment.repetitions(field):
                repetition.get(1)
                repetition.components()
    _ = (
        message.message_type,
        message.structure,
        message.control_id,
        message.version,
        message.processing_id,
        message.sending_facility,
        message.groups("ORC"),
    )


def _parse_or_refuse(raw: bytes, charset: str = "UNICODE UTF-8") -> None:
    try:
        message = parse_message(raw, default_charset=charset)
    except ER7Error as error:
        assert str(error)
        return
    _read_everything(message)
    try:
        map_message(message, zone=ZONE)
    except HL7Error as error:
        assert str(error) and error.hl7_error_code


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw: bytes) -> None:
    _parse_or_refuse(raw)


@FUZZ
@given(st.lists(WIRE_BYTES, max_size=300).map(bytes))
def test_random_bytes_made_of_hl7_characters(raw: bytes) -> None:
    _parse_or_refuse(b"MSH" + raw)


@FUZZ
@given(
    sample=st.sampled_from(SAMPLE_BYTES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.integers(0, 10_000),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_samples(sample: tuple[str, bytes], edits: list[tuple[str, int, int]]) -> None:
    name, original = sample
    raw = bytearray(original)
    for kind, position, value in edits:
        at = position % (len(raw) + 1)
        if kind == "insert":
            raw.insert(at, value)
        elif raw and at < len(raw):
            if kind == "replace":
                raw[at] = value
            else:
                del raw[at]
    _parse_or_refuse(bytes(raw), charset_for(name))


@FUZZ
@given(sample=st.sampled_from(SAMPLE_BYTES), cut=st.integers(0, 2000))
def test_truncated_samples(sample: tuple[str, bytes], cut: int) -> None:
    name, original = sample
    _parse_or_refuse(original[: cut % (len(original) + 1)], charset_for(name))


@FUZZ
@given(st.text(max_size=200))
def test_escape_round_trips_any_text(text: str) -> None:
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert unescape(escape(text)) == expected
    escaped = escape(text)
    assert not set("|^~&\r\n") & set(escaped)


@FUZZ
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80))
def test_escaped_values_survive_a_whole_message(value: str) -> None:
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    raw = (
        "MSH|^~\\&|HIS|X|HUREN|HUREN|20240101||ADT^A08|1|P|2.5||||||UNICODE UTF-8\r"
        f"PID|1||{escape(value, DEFAULT_DELIMITERS)}^^^X^MR\r"
    ).encode()
    pid = parse_message(raw).segment("PID")
    assert pid is not None and pid.get(3) == text


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_read_everything(name: str) -> None:
    _read_everything(parse_message(load(name), default_charset=charset_for(name)))
