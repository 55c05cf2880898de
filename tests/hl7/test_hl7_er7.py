"""The lean ER7 parser: structure, escapes, charsets, separators, bad input, timestamps."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hl7_samples import SAMPLES, ZONE, load, parse_sample

from hl7.er7 import (
    DEFAULT_DELIMITERS,
    Delimiters,
    codec_for,
    escape,
    format_ts,
    parse_date,
    parse_message,
    parse_ts,
    unescape,
)
from hl7.errors import ER7Error, HL7Error
from models.errors import ConfigurationError, HurenError, ValidationError

ORM = (
    "MSH|^~\\&|HIS^1.2.156.1^ISO|ZAZWSY|HUREN|HUREN|20240305083012+0800||ORM^O01^ORM_O01|"
    "C123|P|2.5|||AL|NE|CHN|UNICODE UTF-8\r"
    "PID|1||0012345^^^ZAZWSY&1.2.156.9&ISO^MR~530102196804120374^^^CHN^RI||李^建国||19680412|M\r"
    "ORC|NW|P1|F1||SC\r"
    "OBR|1|P1|F1|CT0101^胸部CT平扫^HR-EXAM\r"
)


def test_every_sample_parses() -> None:
    for name in SAMPLES:
        message = parse_sample(name)
        assert message.header.name == "MSH", name
        assert message.control_id, name


def test_header_properties() -> None:
    message = parse_message(ORM.encode())
    assert message.message_type == "ORM^O01"
    assert (message.message_code, message.trigger, message.structure) == ("ORM", "O01", "ORM_O01")
    assert message.control_id == "C123"
    assert message.processing_id == "P"
    assert message.version == "2.5"
    assert message.sending_application == "HIS"
    assert message.sending_facility == "ZAZWSY"
    assert message.receiving_application == "HUREN"
    assert message.receiving_facility == "HUREN"
    assert message.message_datetime == "20240305083012+0800"
    assert message.charset == message.declared_charset == "UNICODE UTF-8"
    assert message.encoding == "utf-8"
    assert message.delimiters == DEFAULT_DELIMITERS
    assert [s.name for s in message] == ["MSH", "PID", "ORC", "OBR"]
    assert len(message) == 4


def test_msh_numbering_counts_the_field_separator_as_field_1() -> None:
    msh = parse_message(ORM.encode()).header
    assert msh.get(1) == "|"
    assert msh.get(2) == "^~\\&"
    assert msh.get(2, 2) == ""  # the encoding characters are not split
    assert [r.get() for r in msh.repetitions(2)] == ["^~\\&"]
    assert msh.get(3) == "HIS"
    assert msh.get(3, 2) == "1.2.156.1"
    assert msh.raw_field(3) == "HIS^1.2.156.1^ISO"
    assert msh.get(9, 3) == "ORM_O01"
    assert str(msh).startswith("MSH|^~\\&|HIS^")


def test_fields_components_repetitions_subcomponents() -> None:
    pid = parse_message(ORM.encode()).segment("PID")
    assert pid is not None
    assert pid.get(3) == "0012345"
    assert pid.get(3, 4) == "ZAZWSY"
    assert pid.get(3, 4, subcomponent=2) == "1.2.156.9"
    assert pid.get(3, 4, subcomponent=3) == "ISO"
    assert pid.get(3, 4, subcomponent=4) == ""
    assert pid.get(3, 5) == "MR"
    assert pid.get(3, 1, repetition=2) == "530102196804120374"
    assert pid.get(3, 5, repetition=2) == "RI"
    assert pid.get(3, 1, repetition=3) == ""
    assert pid.get(3, 9) == ""
    assert pid.get(5) == "李" and pid.get(5, 2) == "建国"
    assert pid.get(99) == "" and pid.get(0) == ""
    assert pid.get(1, 2) == "" and pid.get(1, 1, 2) == "" and pid.get(1, 1, 1, 2) == ""
    reps = pid.repetitions(3)
    assert [r.get(1) for r in reps] == ["0012345", "530102196804120374"]
    assert reps[0].get(4, 2) == "1.2.156.9"
    assert reps[1].components() == ["530102196804120374", "", "", "CHN", "RI"]
    assert pid.repetitions(2) == []
    assert pid.raw_field(3).count("~") == 1
    assert pid.field_count == 8


def test_segment_lookups_and_groups() -> None:
    message = parse_sample("orm_o01_multi_orc.hl7")
    assert message.segment("ZZZ") is None
    assert len(message.all("OBR")) == 3
    groups = message.groups("ORC")
    assert [[s.name for s in g] for g in groups] == [
        ["ORC", "OBR", "NTE"],
        ["ORC", "OBR"],
        ["ORC", "OBR"],
    ]
    assert [g.index for g in groups] == [1, 2, 3]
    assert groups[1].head.get(2) == "ZA2024031200202"
    second_obr = groups[1].segment("OBR")
    assert second_obr is not None and second_obr.get(4) == "DR0102"
    assert groups[0].all("NTE")[0].get(3) == "患者体内有金属异物"
    # A closing segment ends the group without opening one.
    closed = message.groups("ORC", until=["NTE"])
    assert [len(g) for g in closed] == [2, 2, 2]
    assert message.groups("IPC") == []


# ---------------------------------------------------------------- escapes


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\H\\bold\\N\\ text", "bold text"),
        ("\\XE4B8AD\\\\XE69687\\", "中文"),
        ("\\X0D0A\\", "\r\n"),
        ("x\\.sp2\\y", "x\n\ny"),
        ("\\.fi\\\\.in+4\\text", "text"),
        ("\\C2842\\abc", "abc"),
        # Unknown or broken sequences stay as written (paths, stray backslashes).
        ("C:\\temp\\scan", "C:\\temp\\scan"),
        ("D:\\E\\pacs\\E\\old", "D:\\pacs\\old"),
        ("trailing \\", "trailing \\"),
        ("\\XZZ\\", "\\XZZ\\"),
        ("\\X4\\", "\\X4\\"),
        ("\\Zlocal\\", "\\Zlocal\\"),
        ("\\\\", "\\\\"),
        ("\\P\\", "\\P\\"),
        ("no escapes", "no escapes"),
    ],
)
def test_unescape(escaped: str, plain: str) -> None:
    assert unescape(escaped) == plain


def test_hex_escape_uses_the_message_charset() -> None:
    gb = "中".encode("gb18030").hex().upper()
    assert unescape(f"\\X{gb}\\", DEFAULT_DELIMITERS, "gb18030") == "中"
    assert unescape(f"\\X{gb}\\", DEFAULT_DELIMITERS, "utf-8") == f"\\X{gb}\\"


def test_escape_is_the_inverse_of_unescape() -> None:
    text = "血压 150|95 ^ & ~ \\ path\nline 2"
    escaped = escape(text)
    assert escaped == "血压 150\\F\\95 \\S\\ \\T\\ \\R\\ \\E\\ path\\.br\\line 2"
    assert unescape(escaped) == text
    assert escape("a\r\nb\rc") == "a\\.br\\b\\.br\\c"
    odd = Delimiters("#", "!", "~", "$", "&", "%")
    assert escape("#!$%", odd) == "$F$$S$$E$$P$"
    assert unescape("$F$$S$$E$$P$", odd) == "#!$%"


def test_escapes_in_a_sample_are_decoded_where_read() -> None:
    message = parse_sample("orm_o01_v25_escapes.hl7")
    pid, obr, nte = (message.segment(n) for n in ("PID", "OBR", "NTE"))
    assert pid is not None and obr is not None and nte is not None
    assert pid.get(3) == "FY0049&7712"  # \T\ inside a component is data, not a split
    assert pid.get(5, 2) == "明\\月"
    assert pid.get(11) == "胜境街道 3^5 号"
    assert obr.get(13) == (
        "血压 150|95 mmHg\n既往史：高血压~糖尿病\n碘过敏史：无 影像路径 D:\\pacs\\old 中文"
    )
    assert nte.get(3) == "C:\\temp\\scan unescaped backslashes kept"


# ---------------------------------------------------------------- delimiters and separators


def test_custom_delimiters_are_read_from_msh() -> None:
    message = parse_sample("orm_o01_v231_delimiters.hl7")
    assert message.delimiters == Delimiters("#", "!", "~", "\\", "&")
    assert message.message_type == "ORM^O01"
    pid, obr = message.segment("PID"), message.segment("OBR")
    assert pid is not None and obr is not None
    assert pid.get(3, 1, 2) == "530102196804120374"
    assert (pid.get(5, 1), pid.get(5, 2)) == ("李", "建国")
    assert obr.get(13) == "体温#37.5℃ 咳嗽"
    assert message.header.get(1) == "#"


def test_v27_truncation_character_is_accepted() -> None:
    message = parse_message(b"MSH|^~\\&#|A|B|C|D|20240101||ADT^A08|1|P|2.7\rPID|1||x\\P\\y\r")
    assert message.delimiters.truncation == "#"
    pid = message.segment("PID")
    assert pid is not None and pid.get(3) == "x#y"


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segment_separators_are_normalised(separator: str) -> None:
    raw = ORM.replace("\r", separator).encode()
    message = parse_message(raw)
    assert [s.name for s in message] == ["MSH", "PID", "ORC", "OBR"]
    assert message.text == ORM.rstrip("\r")
    obr = message.segment("OBR")
    assert obr is not None and obr.get(4, 3) == "HR-EXAM"


def test_mixed_separators_blank_lines_and_a_bom() -> None:
    mixed = ORM.replace("\r", "\r\n", 1).replace("\rORC", "\n\n\rORC")
    for raw in (b"\xef\xbb\xbf" + mixed.encode(), b"\r\n" + mixed.encode()):
        message = parse_message(raw)
        assert [s.name for s in message] == ["MSH", "PID", "ORC", "OBR"]
        assert message.control_id == "C123"


def test_lf_and_crlf_samples_match_their_content() -> None:
    lf = parse_sample("orm_o01_v231_lf.hl7")
    assert [s.name for s in lf] == ["MSH", "PID", "PV1", "ORC", "OBR"]
    assert b"\r" not in load("orm_o01_v231_lf.hl7")
    crlf = parse_sample("adt_a08_v231_crlf.hl7")
    assert b"\r\n" in load("adt_a08_v231_crlf.hl7")
    pid = crlf.segment("PID")
    assert pid is not None and pid.get(13) == "13887001234"  # no stray "\n" on a last field


# ---------------------------------------------------------------- charsets


def test_gb18030_sample_keeps_chinese_names() -> None:
    message = parse_sample("orm_o01_v231_gb18030.hl7")
    assert message.charset == "GB 18030" and message.encoding == "gb18030"
    pid = message.segment("PID")
    assert pid is not None
    # 億 and 瑋 have "|" (0x7C) as second byte in GB 18030: splitting bytes would cut them.
    assert pid.get(5, 2) == "億瑋"
    assert pid.get(11) == "後所鎮東村區"
    assert message.sending_facility == "HSZWSY"
    assert message.header.get(4, 2) == "后所镇卫生院東院"


def test_gb18030_without_msh18_needs_the_facility_default() -> None:
    raw = load("orm_o01_v231_gb18030_no_msh18.hl7")
    message = parse_message(raw, default_charset="GB 18030")
    assert message.declared_charset == "" and message.charset == "GB 18030"
    pid = message.segment("PID")
    assert pid is not None and pid.get(5) == "𠮷"  # a four-byte GB 18030 character
    with pytest.raises(ER7Error) as caught:
        parse_message(raw)  # the UTF-8 default cannot read it
    assert caught.value.field == "MSH-18"
    assert "UNICODE UTF-8" in str(caught.value) and "MSH-18 is empty" in str(caught.value)
    assert caught.value.control_id == "DJ0000000981"


def test_utf8_names_survive() -> None:
    pid = parse_sample("orm_o01_v231_gb18030_no_msh18.hl7").segment("PID")
    assert pid is not None
    utf8 = parse_message(ORM.encode("utf-8")).segment("PID")
    assert utf8 is not None and utf8.get(5, 1) + utf8.get(5, 2) == "李建国"


def test_declared_charset_wins_over_the_default() -> None:
    raw = ORM.replace("UNICODE UTF-8", "GB 18030").encode("gb18030")
    message = parse_message(raw, default_charset="UNICODE UTF-8")
    assert message.encoding == "gb18030"
    obr = message.segment("OBR")
    assert obr is not None and obr.get(4, 2) == "胸部CT平扫"


def test_undecodable_bytes_for_the_declared_charset() -> None:
    raw = ORM.encode("gb18030")  # declares UTF-8, sends GB 18030
    with pytest.raises(ER7Error) as caught:
        parse_message(raw)
    error = caught.value
    assert error.field == "MSH-18" and error.hl7_error_code == "102"
    assert "not valid UNICODE UTF-8" in str(error) and "declared in MSH-18" in str(error)
    assert error.control_id == "C123"
    assert error.ack_code == "AR"


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("UNICODE", "utf-8"),
        ("GB 18030", "gb18030"),
        ("GB18030", "gb18030"),
        ("GBK", "gb18030"),
        ("8859/1", "latin-1"),
        ("ASCII", "ascii"),
        ("gb  18030", "gb18030"),
        ("UNICODE UTF-16", None),
        ("EBCDIC", None),
    ],
)
def test_charset_names(declared: str, codec: str | None) -> None:
    assert codec_for(declared) == codec


def test_latin1_and_charset_repetitions() -> None:
    text = ORM.replace("UNICODE UTF-8", "8859/1~GB 18030").replace("李^建国", "Müller^Jürgen")
    text = text.replace("胸部CT平扫", "Thorax")
    message = parse_message(text.encode("latin-1"))
    assert message.charset == "8859/1"  # the first repetition of MSH-18 is the message's
    pid = message.segment("PID")
    assert pid is not None and pid.get(5, 2) == "Jürgen"


def test_unknown_charset_is_refused() -> None:
    with pytest.raises(ER7Error) as caught:
        parse_message(ORM.replace("UNICODE UTF-8", "UNICODE UTF-16").encode())
    assert caught.value.field == "MSH-18" and caught.value.hl7_error_code == "103"


def test_unknown_default_charset_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        parse_message(ORM.replace("UNICODE UTF-8", "").encode(), default_charset="KOI8")


# ---------------------------------------------------------------- bad input

GOOD_MSH = b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305083012||ORM^O01|C1|P|2.3.1"


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b"", "MSH", "empty"),
        (b"  \r\n\r\n ", "MSH", "empty"),
        (b"PID|1||123\r", "MSH", "does not start with an MSH"),
        (b"\x00\x01\xff\xfeMSH|", "MSH", "does not start with an MSH"),
        (b"<?xml version='1.0'?><ORM_O01/>", "MSH", "does not start with an MSH"),
        (b"FHS|^~\\&|HIS\rBHS|^~\\&\r" + GOOD_MSH, "MSH", "does not start with an MSH"),
        (b"MSH", "MSH-2", "truncated"),
        (b"MSH|^~\\", "MSH-2", "truncated"),
        (b"MSH|^~|HIS|ZAZWSY", "MSH-2", "4 encoding characters"),
        (b"MSH|^~\\&^~|HIS", "MSH-2", "4 encoding characters"),
        (b"MSHA^~\\&A", "MSH-1", "not a printable, non-alphanumeric"),
        (b"MSH ^~\\& HIS", "MSH-1", "not a printable, non-alphanumeric"),
        (b"MSH|^^\\&|HIS|X", "MSH-2", "repeat"),
        (b"MSH|^~\\||HIS|X", "MSH-2", "4 encoding characters"),
        (b"MSH|^~1&|HIS|X", "MSH-2", "not a printable"),
        (b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305", "MSH-9", "MSH-9"),
        (b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|2024||ORM^O01", "MSH-10", "control id"),
        (b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|2024||ORM^O01|C1|P", "MSH-12", "version"),
        (b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|2024||^O01|C1|P|2.5", "MSH-9", "MSH-9"),
        (GOOD_MSH + b"\rPID|1\rthis is not a segment\r", "segment 3", "not a segment"),
        (
            GOOD_MSH + b"\rPID|1\rOBR|1|P1||CT^head\nCT with contrast\r",
            "segment 4",
            "not a segment",
        ),
        (GOOD_MSH + b"\rpid|1\r", "segment 2", "not a segment"),
        (GOOD_MSH + b"\rPIDX|1\r", "segment 2", "not a segment"),
        (GOOD_MSH + b"\rP\r", "segment 2", "not a segment"),
        (GOOD_MSH + b"|||||UNICODE UTF-8\rPID|1||\xff\xfe\r", "MSH-18", "not valid"),
    ],
)
def test_bad_input_raises_er7error_with_a_reason(raw: bytes, field: str, words: str) -> None:
    with pytest.raises(ER7Error) as caught:
        parse_message(raw)
    error = caught.value
    assert error.field == field
    assert words in str(error)
    assert error.hl7_error_code in {"100", "101", "102", "103"}
    assert isinstance(error, ValidationError) and isinstance(error, HurenError)
    assert isinstance(error, HL7Error) and error.ack_code == "AR"


def test_truncated_messages_either_parse_or_fail_clearly() -> None:
    raw = load("orm_o01_v25_zds.hl7")
    for cut in range(len(raw)):
        try:
            message = parse_message(raw[:cut])
        except ER7Error as error:
            assert str(error) and error.field
        else:
            assert message.control_id == "FY0000087321"


def test_a_segment_without_fields_is_allowed() -> None:
    message = parse_message(GOOD_MSH + b"\rPID\rNTE|1")
    nte = message.segment("NTE")
    assert message.segment("PID") is not None and nte is not None and nte.get(1) == "1"


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240305083012", datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)),
        ("202403050830", datetime(2024, 3, 5, 0, 30, tzinfo=UTC)),
        ("2024030508", datetime(2024, 3, 5, 0, 0, tzinfo=UTC)),
        ("20240305", datetime(2024, 3, 4, 16, 0, tzinfo=UTC)),
        ("202403", datetime(2024, 2, 29, 16, 0, tzinfo=UTC)),
        ("2024", datetime(2023, 12, 31, 16, 0, tzinfo=UTC)),
        ("20240305083012.1234", datetime(2024, 3, 5, 0, 30, 12, 123400, tzinfo=UTC)),
        ("20240305083012.1234567", datetime(2024, 3, 5, 0, 30, 12, 123456, tzinfo=UTC)),
        ("20240305083012+0800", datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)),
        ("20240305083012+0000", datetime(2024, 3, 5, 8, 30, 12, tzinfo=UTC)),
        ("20240305083012-0530", datetime(2024, 3, 5, 14, 0, 12, tzinfo=UTC)),
        ("202403050830+0800", datetime(2024, 3, 5, 0, 30, tzinfo=UTC)),
        ("2024-03-05 08:30:12", datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)),
        ("2024-03-05T08:30", datetime(2024, 3, 5, 0, 30, tzinfo=UTC)),
        (" 20240305083012 ", datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)),
        ("", None),
        ('""', None),
    ],
)
def test_parse_ts(value: str, expected: datetime | None) -> None:
    assert parse_ts(value, zone=ZONE) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024030",
        "20241305",
        "20240230",
        "20240305250000",
        "202403050830121",
        "yesterday",
        "20240305+8",
        "20240305083012+2400",
        "2024-3-5",
        "2024/03/05",
    ],
)
def test_parse_ts_refuses_what_is_not_a_timestamp(value: str) -> None:
    with pytest.raises(ER7Error) as caught:
        parse_ts(value, zone=ZONE)
    assert value.strip() in str(caught.value) and caught.value.hl7_error_code == "102"


def test_parse_date() -> None:
    assert parse_date("19680412") == date(1968, 4, 12)
    assert parse_date("196804") == date(1968, 4, 1)
    assert parse_date("1968") == date(1968, 1, 1)
    assert parse_date("19680412000000") == date(1968, 4, 12)
    assert parse_date("1968-04-12") == date(1968, 4, 12)
    assert parse_date("") is None and parse_date('""') is None
    for bad in ("19680432", "680412", "17991231", "unknown"):
        with pytest.raises(ER7Error):
            parse_date(bad)


def test_format_ts() -> None:
    moment = datetime(2024, 3, 5, 0, 30, 12, tzinfo=UTC)
    assert format_ts(moment) == "20240305003012+0000"
    assert format_ts(moment, zone=ZONE) == "20240305083012+0800"
    assert format_ts(datetime(2024, 3, 5, 8, 30)) == "20240305083000"
    assert parse_ts(format_ts(moment, zone=ZONE), zone=ZONE) == moment
