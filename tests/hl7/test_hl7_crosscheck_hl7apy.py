"""Our ER7 parser against hl7apy on the whole sample set.

hl7apy builds a typed tree per message version; we only split strings.
Agreement on every field, repetition, component and subcomponent of every
standard segment says the splitting is right. hl7apy keeps escape sequences
as written, so its values are unescaped (with our unescape, which has its
own tests) before comparing. Validation is off: hl7apy's validate() wrongly
fails ORM^O01 (crs4/hl7apy#151, see STACK.md).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hl7_samples import SAMPLES, apy_repetitions, apy_segments, apy_value, parse_sample
from hl7apy.parser import parse_message as hl7apy_parse

from hl7.er7 import Message, unescape


def _both(name: str) -> tuple[Message, Any]:
    ours = parse_sample(name)
    # hl7apy wants str with "\r" between segments: give it our decoded, normalised text.
    theirs = hl7apy_parse(ours.text, find_groups=False)
    return ours, theirs


def _same(mine: str, theirs: str) -> bool:
    """Equal, or the same number: hl7apy turns NM values into numbers ("0874" -> "874")."""
    if mine == theirs:
        return True
    try:
        return Decimal(mine) == Decimal(theirs)
    except InvalidOperation:
        return False


@pytest.mark.parametrize("name", SAMPLES)
def test_same_segments_in_the_same_order(name: str) -> None:
    ours, theirs = _both(name)
    assert [s.name for s in ours.segments] == [s.name for s in theirs.children]


@pytest.mark.parametrize("name", SAMPLES)
def test_every_value_of_every_standard_segment_agrees(name: str) -> None:
    ours, theirs = _both(name)
    d, encoding = ours.delimiters, ours.encoding
    compared = 0
    for mine, apy in zip(ours.segments, theirs.children, strict=True):
        if mine.name.startswith("Z"):
            continue  # hl7apy does not know positions inside Z segments
        first_field = 3 if mine.name == "MSH" else 1
        for field in range(first_field, mine.field_count + 1):
            repetitions = mine.repetitions(field)
            assert len(apy_repetitions(apy, field)) == len(repetitions), (mine.name, field)
            for r, repetition in enumerate(repetitions, start=1):
                for c, component in enumerate(repetition.raw.split(d.component), start=1):
                    for s in range(1, component.count(d.subcomponent) + 2):
                        expected = unescape(apy_value(apy, field, c, r, s), d, encoding)
                        value = mine.get(field, c, r, s)
                        assert _same(value, expected), (mine.name, field, r, c, s)
                        compared += 1
    assert compared > 10


@pytest.mark.parametrize("name", SAMPLES)
def test_named_fields_agree(name: str) -> None:
    """The fields intake reads, spelled out (the generic walk above covers the rest)."""
    ours, theirs = _both(name)
    msh = apy_segments(theirs, "MSH")[0]
    assert ours.header.get(1) == ours.delimiters.field == apy_value(msh, 1)
    assert ours.header.get(2) == ours.delimiters.encoding_characters == apy_value(msh, 2)
    assert ours.message_code == apy_value(msh, 9, 1)
    assert ours.trigger == apy_value(msh, 9, 2)
    assert ours.control_id == apy_value(msh, 10)
    assert ours.version == apy_value(msh, 12)
    assert ours.declared_charset == apy_value(msh, 18)

    checks = {
        "PID": [(3, c, r) for r in (1, 2) for c in (1, 4, 5)]
        + [(5, 1, 1), (5, 2, 1), (7, 1, 1), (8, 1, 1)],
        "ORC": [(1, 1, 1), (2, 1, 1), (3, 1, 1), (5, 1, 1), (12, 2, 1), (12, 3, 1)],
        "OBR": [(2, 1, 1), (4, 1, 1), (4, 2, 1), (4, 3, 1), (18, 1, 1), (24, 1, 1)],
        "IPC": [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1), (5, 1, 1), (9, 1, 1)],
        "MRG": [(1, 1, 1), (1, 4, 1)],
        "PV1": [(2, 1, 1)],
    }
    d, encoding = ours.delimiters, ours.encoding
    for segment_name, positions in checks.items():
        for mine, apy in zip(
            ours.all(segment_name), apy_segments(theirs, segment_name), strict=True
        ):
            for field, component, repetition in positions:
                expected = unescape(apy_value(apy, field, component, repetition), d, encoding)
                assert mine.get(field, component, repetition) == expected
    pid = ours.segment("PID")
    if pid is not None:
        apy_pid = apy_segments(theirs, "PID")[0]
        assert len(pid.repetitions(3)) == len(apy_repetitions(apy_pid, 3))


def test_zds_study_uid_agrees() -> None:
    ours, theirs = _both("orm_o01_v25_zds.hl7")
    zds = ours.segment("ZDS")
    assert zds is not None
    uid = apy_value(apy_segments(theirs, "ZDS")[0], 1)
    assert zds.get(1) == uid == "1.2.156.112605.14038013507.20240306101522.1"


def test_chinese_names_agree_for_gb18030() -> None:
    ours, theirs = _both("orm_o01_v231_gb18030.hl7")
    apy_pid = apy_segments(theirs, "PID")[0]
    pid = ours.segment("PID")
    assert pid is not None
    assert (pid.get(5, 1), pid.get(5, 2)) == (apy_value(apy_pid, 5, 1), apy_value(apy_pid, 5, 2))
    assert pid.get(5, 2) == "億瑋"
