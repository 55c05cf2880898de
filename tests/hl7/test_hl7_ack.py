"""ACKs: read back with our parser and with hl7apy, in the sender's version and charset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest
from hl7_samples import (
    SAMPLES,
    ZONE,
    apy_segments,
    apy_value,
    encode,
    parse_sample,
    set_field,
    text_of,
)
from hl7apy.parser import parse_message as hl7apy_parse

from hl7.ack import build_ack, location_of
from hl7.er7 import Message, parse_message
from hl7.errors import ER7Error, HL7Error
from hl7.orders import map_message

NOW = datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)


def read(ack: bytes, *, charset: str = "UNICODE UTF-8") -> Message:
    return parse_message(ack, default_charset=charset)


def test_aa_for_an_orm() -> None:
    original = parse_sample("orm_o01_v231_obr18.hl7")
    ack = read(build_ack(original, code="AA", control_id="HUREN-1", now=NOW))
    assert ack.message_type == "ACK^O01" and ack.structure == "ACK"
    assert ack.control_id == "HUREN-1"
    assert ack.version == "2.3.1" and ack.processing_id == "P"
    assert (ack.sending_application, ack.sending_facility) == ("HUREN", "HUREN")
    assert (ack.receiving_application, ack.receiving_facility) == ("WINNING-HIS", "ZAZWSY")
    assert ack.declared_charset == "UNICODE UTF-8"
    assert ack.message_datetime == "20240305003012+0000"
    msa = ack.segment("MSA")
    assert msa is not None
    assert (msa.get(1), msa.get(2), msa.get(3)) == ("AA", "ZA20240305000123", "")
    assert ack.segment("ERR") is None


def test_ae_with_error_segment_v25() -> None:
    original = parse_sample("orm_o01_v25_zds.hl7")
    raw = build_ack(
        original,
        code="AE",
        text="PID-3: 居民身份证号校验位错误 | 请核对",
        error_location="PID-3",
        error_code="102",
        control_id="HUREN-2",
        now=NOW,
    )
    ack = read(raw)
    assert ack.message_type == "ACK^O01" and ack.version == "2.5"
    assert ack.receiving_application == "RIS" and ack.header.get(5, 2) == "2.16.156.10011.2.5.1"
    msa, err = ack.segment("MSA"), ack.segment("ERR")
    assert msa is not None and err is not None
    assert (msa.get(1), msa.get(2)) == ("AE", "FY0000087321")
    assert msa.get(3) == "PID-3: 居民身份证号校验位错误 | 请核对"
    assert err.get(1) == ""  # v2.5 does not use ERR-1
    assert [err.get(2, c) for c in (1, 2, 3)] == ["PID", "1", "3"]
    assert [err.get(3, c) for c in (1, 2, 3)] == ["102", "Data type error", "HL70357"]
    assert err.get(4) == "E"
    assert err.get(8) == "PID-3: 居民身份证号校验位错误 | 请核对"


def test_ar_error_segment_before_v25_also_fills_err1() -> None:
    original = parse_sample("orm_o01_v231_obr18.hl7")
    ack = read(
        build_ack(
            original,
            code="AR",
            text="unsupported version",
            error_location="MSH-12",
            error_code="203",
            control_id="H3",
            now=NOW,
        )
    )
    err = ack.segment("ERR")
    assert err is not None
    assert [err.get(1, c) for c in (1, 2, 3)] == ["MSH", "1", "12"]
    assert [err.get(1, 4, subcomponent=s) for s in (1, 2, 3)] == [
        "203",
        "Unsupported version id",
        "HL70357",
    ]
    assert err.get(2) == "MSH" and err.get(3) == "203"


def test_gb18030_message_gets_a_gb18030_ack() -> None:
    original = parse_sample("orm_o01_v231_gb18030.hl7")
    raw = build_ack(
        original,
        code="AE",
        text="检查项目代码不存在",
        error_location="OBR-4",
        error_code="103",
        control_id="H4",
        now=NOW,
    )
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    ack = read(raw, charset="UNICODE UTF-8")  # MSH-18 is echoed: no default needed
    assert ack.declared_charset == "GB 18030"
    msa = ack.segment("MSA")
    assert msa is not None and msa.get(3) == "检查项目代码不存在"
    # The Chinese MSH-4 of the sender comes back as MSH-6.
    assert ack.header.get(6, 2) == "后所镇卫生院東院"


def test_message_without_msh18_gets_an_ack_in_the_same_default() -> None:
    original = parse_sample("orm_o01_v231_gb18030_no_msh18.hl7")
    raw = build_ack(original, code="AE", text="患者𠮷祥云信息不全", control_id="H5", now=NOW)
    ack = read(raw, charset="GB 18030")
    assert ack.declared_charset == ""
    msa = ack.segment("MSA")
    assert msa is not None and msa.get(3) == "患者𠮷祥云信息不全"


def test_custom_delimiters_are_kept_and_text_is_escaped() -> None:
    original = parse_sample("orm_o01_v231_delimiters.hl7")
    text = "bad # field ! and \\ and ~ and &"
    raw = build_ack(
        original, code="AE", text=text, error_location="OBR-13", control_id="H6", now=NOW
    )
    assert raw.startswith(b"MSH#!~\\&#HUREN#HUREN#HIS#ZAZWSY#")
    ack = read(raw)
    msa, err = ack.segment("MSA"), ack.segment("ERR")
    assert msa is not None and err is not None
    assert msa.get(3) == text and err.get(8) == text
    assert err.get(3) == "207" and err.get(2, 3) == "13"


def test_ack_for_unparseable_input() -> None:
    raw = build_ack(
        None,
        code="AR",
        text="message does not start with an MSH segment",
        error_location="MSH",
        error_code="100",
        control_id="H7",
        now=NOW,
    )
    ack = read(raw)
    assert ack.message_type == "ACK" and ack.version == "2.5" and ack.processing_id == "P"
    assert ack.declared_charset == ""
    msa, err = ack.segment("MSA"), ack.segment("ERR")
    assert msa is not None and err is not None
    assert (msa.get(1), msa.get(2)) == ("AR", "")
    assert (err.get(2, 1), err.get(2, 2), err.get(3)) == ("MSH", "1", "100")


def test_ack_from_an_er7_error_keeps_what_was_recovered() -> None:
    bad = (text_of("orm_o01_v231_obr18.hl7") + "\rPID|1||\udcff").encode("utf-8", "surrogateescape")
    with pytest.raises(ER7Error) as caught:
        parse_message(bad)
    error = caught.value
    raw = build_ack(
        None,
        code=error.ack_code,
        text=str(error),
        error_location=error.field,
        error_code=error.hl7_error_code,
        control_id="H8",
        now=NOW,
        charset="GB 18030",
        original_control_id=error.control_id,
    )
    ack = read(raw)
    msa = ack.segment("MSA")
    assert msa is not None and msa.get(2) == "ZA20240305000123"
    assert ack.declared_charset == "GB 18030"


def test_msa3_is_cut_to_80_characters_but_err8_keeps_everything() -> None:
    long_text = "错误" * 100
    ack = read(
        build_ack(
            parse_sample("adt_a01_v25.hl7"), code="AE", text=long_text, control_id="H9", now=NOW
        )
    )
    msa, err = ack.segment("MSA"), ack.segment("ERR")
    assert msa is not None and err is not None
    assert len(msa.get(3)) == 80 and msa.get(3).endswith("...")
    assert err.get(8) == long_text


@pytest.mark.parametrize(
    ("field", "location"),
    [
        ("PID-3", ["PID", "1", "3"]),
        ("PID", ["PID", "1"]),
        ("MSH-9", ["MSH", "1", "9"]),
        ("OBR-4.1", ["OBR", "1", "4", "1", "1"]),
        ("OBR-4.1.2", ["OBR", "1", "4", "1", "1", "2"]),
        ("OBR[2]-4", ["OBR", "2", "4"]),
        ("ORC-2/OBR-2", ["ORC", "1", "2"]),
        ("PID^1^3", ["PID", "1", "3"]),
        ("segment 3", None),
        (None, None),
        ("", None),
    ],
)
def test_location_of(field: str | None, location: list[str] | None) -> None:
    assert location_of(field) == location


def test_every_mapping_error_becomes_a_readable_ack() -> None:
    """The way intake will use it: error -> ACK code, ERR location and table 0357 code."""
    cases = [
        set_field(text_of("orm_o01_v231_obr18.hl7"), "MSH", 12, "2.6"),
        set_field(text_of("orm_o01_v25_zds.hl7"), "OBR", 18, "X" * 20),
        set_field(text_of("adt_a01_v25.hl7"), "MSH", 9, "ADT^A03^ADT_A03"),
    ]
    for text in cases:
        message = parse_message(encode(text))
        with pytest.raises(HL7Error) as caught:
            map_message(message, zone=ZONE)
        error = caught.value
        raw = build_ack(
            message,
            code=error.ack_code,
            text=str(error),
            error_location=error.field,
            error_code=error.hl7_error_code,
            control_id="HX",
            now=NOW,
        )
        ack = read(raw)
        err = ack.segment("ERR")
        assert err is not None and err.get(3) == error.hl7_error_code
        assert error.field and err.get(2, 1) == error.field[:3]
        apy = hl7apy_parse(ack.text, find_groups=False)
        assert apy_value(apy_segments(apy, "MSA")[0], 1) == error.ack_code


@pytest.mark.parametrize("name", [n for n in SAMPLES if not n.startswith("ack")])
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_hl7apy_reads_every_ack(name: str, code: Literal["AA", "AE", "AR"]) -> None:
    original = parse_sample(name)
    raw = build_ack(
        original,
        code=code,
        text="说明 text",
        error_location="PID-3",
        error_code="101",
        control_id="HUREN-ACK-1",
        now=NOW,
    )
    ours = parse_message(raw, default_charset=original.charset)
    apy = hl7apy_parse(ours.text, find_groups=False)
    msh, msa = apy_segments(apy, "MSH")[0], apy_segments(apy, "MSA")[0]
    assert apy_value(msh, 9, 1) == "ACK"
    assert apy_value(msh, 10) == "HUREN-ACK-1"
    assert apy_value(msh, 12) == original.version
    assert apy_value(msa, 1) == code
    assert apy_value(msa, 2) == original.control_id
    errs = apy_segments(apy, "ERR")
    if code == "AA":
        assert errs == []
    elif original.version.startswith("2.5"):
        assert apy_value(errs[0], 2, 1) == "PID" and apy_value(errs[0], 3, 1) == "101"
    else:
        assert apy_value(errs[0], 1, 1) == "PID" and apy_value(errs[0], 1, 3) == "3"
