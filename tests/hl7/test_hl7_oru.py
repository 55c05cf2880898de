"""ORU^R01 for the clinic: read back with our parser and with hl7apy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from hl7_samples import ZONE, apy_repetitions, apy_segments, apy_value
from hl7apy.parser import parse_message as hl7apy_parse

from hl7.er7 import parse_message, parse_ts
from hl7.orders import PatientIdentity
from hl7.oru import Clinician, ReportMessage, build_oru
from models.enums import IdentifierKind, Sex
from models.errors import ConfigurationError

NOW = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)
FINDINGS = (
    "双肺纹理增多，右肺下叶见斑片状高密度影，边界模糊。\n"
    "纵隔居中，心影大小正常 | 未见胸腔积液 ^ 胸膜无增厚 ~ 见 C:\\pacs\\1 & 2。\n"
    "\n"
    "余未见明显异常。"
)
IMPRESSION = "右肺下叶炎症，建议治疗后复查。\n请结合临床。"

REPORT = ReportMessage(
    patient_identifiers=(
        PatientIdentity("0012345", IdentifierKind.mrn, "ZAZWSY"),
        PatientIdentity("530102196804120374", IdentifierKind.resident_id, "CHN"),
    ),
    patient_name="李建国",
    birth_date=date(1968, 4, 12),
    sex=Sex.male,
    receiving_application="WINNING-HIS",
    receiving_facility="ZAZWSY",
    placer_number="ZA2024030500123",
    filler_number="HR24030500123",
    accession_number="ZA24030500123",
    exam_code="CT0101",
    exam_text="胸部CT平扫",
    status="F",
    observed_at=datetime(2024, 3, 5, 1, 5, tzinfo=UTC),
    findings=FINDINGS,
    impression=IMPRESSION,
    interpreter=Clinician("R0031", "王丽萍"),
    auditor=Clinician("A0007", "赵敏"),
    critical=False,
    report_version=2,
    reported_at=datetime(2024, 3, 5, 1, 55, tzinfo=UTC),
    exam_coding_system="HR-EXAM",
    modality="CT",
    study_instance_uid="1.2.156.112605.14038013507.20240305090112.1",
)


def test_oru_reads_back_with_our_parser() -> None:
    raw = build_oru(REPORT, control_id="HUREN-ORU-123-V2", now=NOW)
    message = parse_message(raw)
    assert message.message_type == "ORU^R01" and message.structure == "ORU_R01"
    assert message.control_id == "HUREN-ORU-123-V2" and message.version == "2.5"
    assert message.declared_charset == "UNICODE UTF-8"
    assert (message.receiving_application, message.receiving_facility) == ("WINNING-HIS", "ZAZWSY")
    assert message.message_datetime == "20240305100000+0800"
    pid, orc, obr = (message.segment(n) for n in ("PID", "ORC", "OBR"))
    assert pid is not None and orc is not None and obr is not None
    assert [(r.get(1), r.get(4), r.get(5)) for r in pid.repetitions(3)] == [
        ("0012345", "ZAZWSY", "MR"),
        ("530102196804120374", "CHN", "NNCHN"),
    ]
    assert (pid.get(5), pid.get(7), pid.get(8)) == ("李建国", "19680412", "M")
    assert (orc.get(1), orc.get(2), orc.get(3), orc.get(5)) == (
        "RE",
        "ZA2024030500123",
        "HR24030500123",
        "CM",
    )
    assert (obr.get(2), obr.get(3), obr.get(4), obr.get(4, 2), obr.get(4, 3)) == (
        "ZA2024030500123",
        "HR24030500123",
        "CT0101",
        "胸部CT平扫",
        "HR-EXAM",
    )
    assert parse_ts(obr.get(7), zone=ZONE) == REPORT.observed_at
    assert parse_ts(obr.get(22), zone=ZONE) == REPORT.reported_at
    assert (obr.get(18), obr.get(20), obr.get(24), obr.get(25)) == (
        "ZA24030500123",
        "V2",
        "CT",
        "F",
    )
    assert (obr.get(32, 1, 1, 1), obr.get(32, 1, 1, 2)) == ("R0031", "王丽萍")
    assert (obr.get(33, 1, 1, 1), obr.get(33, 1, 1, 2)) == ("A0007", "赵敏")

    findings, impression, study = message.all("OBX")
    assert (findings.get(1), findings.get(2), findings.get(3), findings.get(3, 3)) == (
        "1",
        "TX",
        "18782-3",
        "LN",
    )
    lines = [r.get() for r in findings.repetitions(5)]
    assert lines == FINDINGS.split("\n")  # one repetition per line, delimiters escaped
    assert "\n".join(lines) == FINDINGS
    assert [r.get() for r in impression.repetitions(5)] == IMPRESSION.split("\n")
    assert impression.get(3) == "19005-8" and impression.get(11) == "F"
    assert findings.get(8) == "" and (findings.get(16), findings.get(16, 2)) == ("A0007", "赵敏")
    assert (study.get(2), study.get(3), study.get(5)) == ("HD", "113014", REPORT.study_instance_uid)


def test_formatted_text_variant() -> None:
    message = parse_message(build_oru(REPORT, control_id="C1", now=NOW, text_type="FT"))
    findings = message.all("OBX")[0]
    assert findings.get(2) == "FT"
    assert len(findings.repetitions(5)) == 1
    assert findings.get(5) == FINDINGS
    assert "\\.br\\" in findings.raw_field(5)


def test_critical_preliminary_and_corrected() -> None:
    critical = dataclasses.replace(REPORT, critical=True, status="P", study_instance_uid="")
    message = parse_message(build_oru(critical, control_id="C2", now=NOW))
    obr, orc = message.segment("OBR"), message.segment("ORC")
    assert obr is not None and orc is not None
    assert obr.get(25) == "P" and orc.get(5) == "IP"
    assert [o.get(8) for o in message.all("OBX")] == ["AA", "AA"]
    assert [o.get(11) for o in message.all("OBX")] == ["P", "P"]
    corrected = dataclasses.replace(REPORT, status="C", report_version=3)
    obr = parse_message(build_oru(corrected, control_id="C3", now=NOW)).segment("OBR")
    assert obr is not None and (obr.get(25), obr.get(20)) == ("C", "V3")


def test_empty_parts_are_left_out() -> None:
    bare = dataclasses.replace(
        REPORT,
        findings=" \n ",
        interpreter=None,
        auditor=None,
        study_instance_uid="",
        observed_at=None,
        birth_date=None,
    )
    message = parse_message(build_oru(bare, control_id="C4", now=NOW))
    obx = message.all("OBX")
    assert [o.get(3) for o in obx] == ["19005-8"] and obx[0].get(1) == "1"
    obr, pid = message.segment("OBR"), message.segment("PID")
    assert obr is not None and pid is not None
    assert obr.get(32) == obr.get(33) == obr.get(7) == pid.get(7) == ""


def test_gb18030_clinic() -> None:
    raw = build_oru(REPORT, control_id="C5", now=NOW, charset="GB 18030", version="2.3.1")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    message = parse_message(raw)  # MSH-18 tells the parser
    assert message.encoding == "gb18030" and message.version == "2.3.1"
    pid = message.segment("PID")
    assert pid is not None and pid.get(5) == "李建国"
    assert [r.get() for r in message.all("OBX")[1].repetitions(5)] == IMPRESSION.split("\n")


def test_a_charset_that_cannot_carry_the_report_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot carry"):
        build_oru(REPORT, control_id="C6", now=NOW, charset="ASCII")
    with pytest.raises(ConfigurationError, match="unknown"):
        build_oru(REPORT, control_id="C6", now=NOW, charset="UTF-7")


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
@pytest.mark.parametrize("charset", ["UNICODE UTF-8", "GB 18030"])
def test_hl7apy_reads_the_oru(version: str, charset: str) -> None:
    raw = build_oru(REPORT, control_id="C7", now=NOW, charset=charset, version=version)
    ours = parse_message(raw)
    apy = hl7apy_parse(ours.text, find_groups=False)
    assert [s.name for s in apy.children] == ["MSH", "PID", "ORC", "OBR", "OBX", "OBX", "OBX"]
    msh, pid, obr = (apy_segments(apy, n)[0] for n in ("MSH", "PID", "OBR"))
    assert (apy_value(msh, 9, 1), apy_value(msh, 9, 2)) == ("ORU", "R01")
    assert apy_value(msh, 18) == charset
    assert apy_value(pid, 5, 1) == "李建国"
    assert [apy_value(pid, 3, 1, r) for r in (1, 2)] == ["0012345", "530102196804120374"]
    assert apy_value(obr, 25) == "F"
    assert apy_value(obr, 18) == "ZA24030500123"
    assert apy_value(obr, 4, 2) == "胸部CT平扫"
    findings = apy_segments(apy, "OBX")[0]
    assert len(apy_repetitions(findings, 5)) == len(FINDINGS.split("\n"))
    assert apy_value(findings, 5, 1, 1) == FINDINGS.split("\n")[0]
    assert apy_value(findings, 3, 1) == "18782-3"
