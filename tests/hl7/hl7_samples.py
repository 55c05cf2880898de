"""Shared helpers for the HL7 tests: the sample set, message editing, hl7apy access."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hl7.er7 import Message, parse_message

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
ZONE = ZoneInfo("Asia/Shanghai")
SAMPLES = sorted(path.name for path in DATA.glob("*.hl7"))
# Samples without MSH-18 that are not UTF-8: the clinic's configured default applies.
DEFAULT_CHARSETS = {"orm_o01_v231_gb18030_no_msh18.hl7": "GB 18030"}


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def charset_for(name: str) -> str:
    return DEFAULT_CHARSETS.get(name, "UNICODE UTF-8")


def parse_sample(name: str) -> Message:
    return parse_message(load(name), default_charset=charset_for(name))


def text_of(name: str) -> str:
    """The sample decoded, segments separated by "\\r" (how hl7apy wants it)."""
    return parse_sample(name).text


def set_field(text: str, segment: str, field: int, value: str, *, occurrence: int = 1) -> str:
    """Replace (or add) field ``field`` of the n-th ``segment`` in a "\\r"-separated text.

    Assumes "|" as the field separator, as all samples but one use.
    """
    lines = text.split("\r")
    seen = 0
    for index, line in enumerate(lines):
        if line.startswith(segment + "|") or line == segment:
            seen += 1
            if seen != occurrence:
                continue
            parts = line.split("|")
            position = field - 1 if segment == "MSH" else field
            while len(parts) <= position:
                parts.append("")
            parts[position] = value
            lines[index] = "|".join(parts)
            return "\r".join(lines)
    raise AssertionError(f"no {segment} #{occurrence} in message")


def drop_segments(text: str, *names: str) -> str:
    return "\r".join(line for line in text.split("\r") if line[:3] not in names)


def encode(text: str) -> bytes:
    return text.encode("utf-8")


# ---------------------------------------------------------------- hl7apy

_POSITION = re.compile(r"_(\d+)\Z")


def _position(element: Any, index: int) -> int:
    """hl7apy names components after their position ("CX_4"); primitives after their type."""
    match = _POSITION.search(element.name or "")
    return int(match.group(1)) if match else index + 1


def apy_segments(message: Any, name: str) -> list[Any]:
    return [segment for segment in message.children if segment.name == name]


def apy_repetitions(segment: Any, field: int) -> list[Any]:
    return [f for f in segment.children if f.name == f"{segment.name}_{field}"]


def apy_value(
    segment: Any, field: int, component: int = 1, repetition: int = 1, subcomponent: int = 1
) -> str:
    """The escaped value hl7apy holds at that position, "" when absent."""
    repetitions = apy_repetitions(segment, field)
    if len(repetitions) < repetition:
        return ""
    for c_index, comp in enumerate(repetitions[repetition - 1].children):
        if _position(comp, c_index) != component:
            continue
        for s_index, sub in enumerate(comp.children):
            if _position(sub, s_index) == subcomponent:
                # The value as parsed; to_er7() would re-escape sequences it does not know.
                raw = getattr(sub.value, "value", None)
                return raw if isinstance(raw, str) else str(sub.to_er7())
        return ""
    return ""
