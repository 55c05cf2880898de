"""ORU^R01: the finished (or corrected) report going back to the ordering clinic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from hl7.er7 import DEFAULT_DELIMITERS, codec_for, escape, format_ts, join_components
from hl7.orders import PatientIdentity
from models.enums import IdentifierKind, Sex
from models.errors import ConfigurationError

__all__ = ["FINDINGS_CODE", "IMPRESSION_CODE", "Clinician", "ReportMessage", "build_oru"]

# LOINC codes IHE uses for the two parts of a radiology report.
FINDINGS_CODE = ("18782-3", "Radiology Study observation", "LN")
IMPRESSION_CODE = ("19005-8", "Radiology Imaging study [Impression]", "LN")
STUDY_CODE = ("113014", "DICOM Study", "DCM")
_IDENTIFIER_TYPES = {
    IdentifierKind.resident_id: "NNCHN",
    IdentifierKind.mrn: "MR",
    IdentifierKind.health_card: "HC",
    IdentifierKind.other: "",
}
_ORDER_STATUS = {"P": "IP", "F": "CM", "C": "CM"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Clinician:
    """A radiologist as the clinic should see them: staff id and display name."""

    id: str
    name: str


@dataclass(frozen=True)
class ReportMessage:
    """Everything an ORU^R01 carries, without any database type."""

    patient_identifiers: tuple[PatientIdentity, ...]
    patient_name: str
    birth_date: date | None
    sex: Sex
    receiving_application: str  # the clinic HIS (MSH-5)
    receiving_facility: str  # the ordering facility's HL7 code (MSH-6)
    placer_number: str
    filler_number: str
    accession_number: str
    exam_code: str
    exam_text: str
    status: Literal["P", "F", "C"]  # OBR-25: preliminary, final, corrected
    observed_at: datetime | None  # OBR-7: when the exam was done
    findings: str
    impression: str
    interpreter: Clinician | None = None  # OBR-32: the reading radiologist
    auditor: Clinician | None = None  # OBR-33: the auditing radiologist
    critical: bool = False  # OBX-8 "AA": a critical result
    report_version: int = 1  # OBR-20 "V<n>": lets the HIS keep only the latest
    reported_at: datetime | None = None  # OBR-22: when this status was reached
    exam_coding_system: str = ""
    modality: str = ""  # OBR-24
    study_instance_uid: str = ""  # an extra HD observation, for image links
    sending_application: str = "HUREN"
    sending_facility: str = "HUREN"


def build_oru(
    report: ReportMessage,
    *,
    control_id: str,
    now: datetime,
    charset: str = "UNICODE UTF-8",
    version: str = "2.5",
    text_type: Literal["TX", "FT"] = "TX",
    zone: ZoneInfo = SHANGHAI,
) -> bytes:
    """The ORU^R01 bytes, encoded in ``charset`` (declared in MSH-18).

    Report text keeps its line breaks: as one repetition of OBX-5 per line
    for TX, as ``\\.br\\`` for FT. Times are written in ``zone`` with their
    offset, since clinic systems show them as local time. ``control_id``
    should be stable per report version so a re-sent ORU is recognisably the same.
    """
    encoding = codec_for(charset)
    if encoding is None:
        raise ConfigurationError(f"unknown HL7 character set {charset!r}")
    d = DEFAULT_DELIMITERS

    def ts(moment: datetime | None) -> str:
        return format_ts(moment, zone=zone) if moment is not None else ""

    def e(value: str) -> str:
        return escape(value, d)

    def components(*parts: str) -> str:
        return join_components(parts, d)

    def segment(*fields: str) -> str:
        values = list(fields)
        while values and not values[-1]:
            values.pop()
        return "|".join(values)

    def ndl(person: Clinician | None) -> str:
        if person is None:
            return ""
        return f"{e(person.id)}&{e(person.name)}".rstrip("&")  # CNN: ID & family name

    def xcn(person: Clinician | None) -> str:
        return components(person.id, person.name) if person is not None else ""

    message_type = "ORU^R01" if version in ("2.3",) else "ORU^R01^ORU_R01"
    msh = segment(
        "MSH",
        "^~\\&",
        e(report.sending_application),
        e(report.sending_facility),
        e(report.receiving_application),
        e(report.receiving_facility),
        ts(now),
        "",
        message_type,
        e(control_id),
        "P",
        version,
        "",
        "",
        "",
        "",
        "",
        e(charset),
    )
    identifiers = "~".join(
        components(i.value, "", "", i.authority, _IDENTIFIER_TYPES[i.kind])
        for i in report.patient_identifiers
    )
    pid = segment(
        "PID",
        "1",
        "",
        identifiers,
        "",
        e(report.patient_name),
        "",
        report.birth_date.strftime("%Y%m%d") if report.birth_date else "",
        report.sex.value,
    )
    orc = segment(
        "ORC",
        "RE",
        e(report.placer_number),
        e(report.filler_number),
        "",
        _ORDER_STATUS[report.status],
    )
    obr_fields = [
        "OBR",
        "1",
        e(report.placer_number),
        e(report.filler_number),
        components(report.exam_code, report.exam_text, report.exam_coding_system),
        "",
        "",
        ts(report.observed_at),
    ]
    obr_fields += [""] * (18 - len(obr_fields))  # up to OBR-17
    obr_fields += [
        e(report.accession_number),
        "",
        f"V{report.report_version}",
        "",
        ts(report.reported_at),
        "",
        e(report.modality),
        report.status,
    ]
    obr_fields += [""] * (32 - len(obr_fields))  # up to OBR-31
    obr_fields += [ndl(report.interpreter), ndl(report.auditor)]
    segments = [msh, pid, orc, segment(*obr_fields)]

    flag = "AA" if report.critical else ""
    observer = xcn(report.auditor or report.interpreter)
    set_id = 0
    for code, text in ((FINDINGS_CODE, report.findings), (IMPRESSION_CODE, report.impression)):
        lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip().split("\n")
        if not any(line.strip() for line in lines):
            continue
        set_id += 1
        value = "~".join(e(line) for line in lines) if text_type == "TX" else e("\n".join(lines))
        segments.append(
            segment(
                "OBX",
                str(set_id),
                text_type,
                components(*code),
                "1",
                value,
                "",
                "",
                flag,
                "",
                "",
                report.status,
                "",
                "",
                ts(report.observed_at),
                "",
                observer,
            )
        )
    if report.study_instance_uid:
        set_id += 1
        segments.append(
            segment(
                "OBX",
                str(set_id),
                "HD",
                components(*STUDY_CODE),
                "1",
                e(report.study_instance_uid),
                "",
                "",
                "",
                "",
                "",
                report.status,
            )
        )
    text = "\r".join(segments) + "\r"
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ConfigurationError(
            f"the report holds {exc.object[exc.start : exc.end]!r}, which {charset} cannot "
            "carry: configure the clinic's HL7 charset as UNICODE UTF-8 or GB 18030"
        ) from None
