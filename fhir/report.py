"""The radiology report: DiagnosticReport, its readable text, and the recognition mark."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fhir.directory import facility_reference
from fhir.identifiers import (
    HR_TAG_CODE,
    HR_TAG_DISPLAY,
    HR_TAG_SYSTEM,
    REPORT_SYSTEM,
    local_id,
    reference,
    saved_id,
)
from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.reference import Reference
from fhir.terminology import LOINC, SEX_ZH, V2_0074, exam_codings
from models.catalogue import ExamType
from models.enums import ReportStatus
from models.imaging import Study
from models.orders import Order
from models.patients import Patient
from models.region import Facility, User
from models.reporting import Report

SHANGHAI = ZoneInfo("Asia/Shanghai")
REPORT_TITLE = "影像诊断报告"
REPORT_LANGUAGE = "zh-CN"
IMAGING_REPORT_LOINC = "18748-4"

SIGNED_STATUSES = frozenset({ReportStatus.final, ReportStatus.amended, ReportStatus.corrected})

STATUS_ZH: Mapping[ReportStatus, str] = {
    ReportStatus.preliminary: "初步报告",
    ReportStatus.final: "终审报告",
    ReportStatus.amended: "修订报告",
    ReportStatus.corrected: "更正报告",
    ReportStatus.cancelled: "已作废",
}


def carries_recognition_mark(*, recognised: bool, qc_qualified: bool, status: ReportStatus) -> bool:
    """The HR (互认) mark: an exam on the recognition list, done at a QC-qualified
    facility, with a signed report. The validity window is the reader's concern
    (it depends on when the prior is looked at), so it is not part of the mark.
    """
    return recognised and qc_qualified and status in SIGNED_STATUSES


def shanghai_time(moment: datetime | None) -> str:
    """A stored UTC time as the region reads it (Asia/Shanghai), to the minute."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware value")
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def age_at(birth_date: date | None, on: date) -> str:
    """Age in whole years, or months/days for infants, as Chinese reports write it."""
    if birth_date is None or birth_date > on:
        return ""
    years = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    if years >= 1:
        return f"{years}岁"
    months = (
        (on.year - birth_date.year) * 12 + on.month - birth_date.month - (on.day < birth_date.day)
    )
    if months >= 1:
        return f"{months}月"
    return f"{(on - birth_date).days}天"


def issued_at(report: Report) -> datetime:
    """When the current version of the report was released."""
    return report.amended_at or report.finalised_at or report.preliminary_at


def exam_name(exam: ExamType | None, study: Study) -> str:
    if exam is not None:
        return exam.name_zh
    return study.description or "影像检查"


def exam_label(exam: ExamType | None, study: Study) -> str:
    """The exam with its catalogue code, as the report header shows it."""
    if exam is not None:
        return f"{exam.name_zh}（{exam.code}）"
    return exam_name(exam, study)


def report_header(
    report: Report,
    *,
    study: Study,
    exam: ExamType | None,
    facility: Facility,
    reading_centre: Facility,
    patient: Patient | None = None,
) -> list[tuple[str, str]]:
    """Who and what the report is about, as (label, value) pairs for the text and the PDF."""
    lines = [("阅片中心", reading_centre.name), ("检查机构", facility.name)]
    if patient is not None:
        study_day = (study.started_at or report.preliminary_at).astimezone(SHANGHAI).date()
        lines += [
            ("姓名", patient.name),
            ("性别", SEX_ZH[patient.sex]),
            ("年龄", age_at(patient.birth_date, study_day) or "不详"),
        ]
    lines += [
        ("检查项目", exam_label(exam, study)),
        ("检查号", study.accession_number or ""),
        ("检查时间", shanghai_time(study.started_at)),
        ("报告状态", STATUS_ZH[report.status]),
    ]
    return [(label, value) for label, value in lines if value]


def report_signatures(
    report: Report, *, author: User, auditor: User | None
) -> list[tuple[str, str]]:
    """Who signed, and when (Asia/Shanghai)."""
    lines = [
        ("报告医师", f"{author.display_name}  {shanghai_time(report.preliminary_at)}".rstrip())
    ]
    if auditor is not None:
        signed = shanghai_time(report.finalised_at)
        lines.append(("审核医师", f"{auditor.display_name}  {signed}".rstrip()))
    if report.amended_at is not None:
        lines.append(("修订时间", shanghai_time(report.amended_at)))
    return lines


def report_text(
    report: Report,
    *,
    study: Study,
    exam: ExamType | None,
    author: User,
    auditor: User | None,
    facility: Facility,
    reading_centre: Facility,
    patient: Patient | None = None,
) -> str:
    """The report as plain text for presentedForm: what a clinic can print or show as is.

    Times are in Asia/Shanghai. The patient block appears only when ``patient``
    is given; the DiagnosticReport references its subject instead.
    """
    header = report_header(
        report,
        study=study,
        exam=exam,
        facility=facility,
        reading_centre=reading_centre,
        patient=patient,
    )
    parts = [REPORT_TITLE, ""]
    parts += [f"{label}：{value}" for label, value in header]
    parts += [
        "",
        "检查所见：",
        report.findings.strip() or "无",
        "",
        "诊断意见：",
        report.impression.strip() or "无",
        "",
    ]
    parts += [
        f"{label}：{value}"
        for label, value in report_signatures(report, author=author, auditor=auditor)
    ]
    return "\n".join(parts) + "\n"


def _report_code(exam: ExamType | None, study: Study) -> CodeableConcept:
    """LOINC first when the catalogue has it; without an exam, LOINC's generic imaging study."""
    if exam is None:
        return CodeableConcept(
            coding=[
                Coding(system=LOINC, code=IMAGING_REPORT_LOINC, display="Diagnostic imaging study")
            ],
            text=exam_name(None, study),
        )
    catalogue, loinc = exam_codings(exam)
    return CodeableConcept(
        coding=[catalogue] if loinc is None else [loinc, catalogue], text=exam.name_zh
    )


def diagnostic_report_from(
    report: Report,
    *,
    study: Study,
    patient_id: int,
    exam: ExamType | None,
    order: Order | None,
    author: User,
    auditor: User | None,
    facility: Facility,
    reading_centre: Facility,
    qc_qualified: bool,
    pdf: bytes | None = None,
) -> DiagnosticReport:
    """The report as the region exchanges it.

    Its business identifier is the Study Instance UID (under REPORT_SYSTEM):
    one report per study, globally unique, so reports from any node never clash.
    ``qc_qualified`` says whether ``facility`` held QC qualification when the
    study was done; with a recognised exam and a signed report it earns the HR tag.
    """
    issued = issued_at(report)
    text = report_text(
        report,
        study=study,
        exam=exam,
        author=author,
        auditor=auditor,
        facility=facility,
        reading_centre=reading_centre,
    )
    forms = [
        Attachment(
            contentType="text/plain; charset=utf-8",
            language=REPORT_LANGUAGE,
            data=base64.b64encode(text.encode("utf-8")),
            title=REPORT_TITLE,
            creation=issued,
        )
    ]
    if pdf is not None:
        forms.append(
            Attachment(
                contentType="application/pdf",
                language=REPORT_LANGUAGE,
                data=base64.b64encode(pdf),
                title=f"{REPORT_TITLE}：{exam_name(exam, study)}",
                creation=issued,
            )
        )
    interpreters = [
        Reference(
            reference=reference("Practitioner", saved_id(author.id, "User")),
            display=author.display_name,
        )
    ]
    if auditor is not None:
        interpreters.append(
            Reference(
                reference=reference("Practitioner", saved_id(auditor.id, "User")),
                display=auditor.display_name,
            )
        )
    marked = carries_recognition_mark(
        recognised=exam is not None and exam.recognised,
        qc_qualified=qc_qualified,
        status=report.status,
    )
    return DiagnosticReport(
        id=local_id(saved_id(report.id, "Report")),
        meta=(
            Meta(tag=[Coding(system=HR_TAG_SYSTEM, code=HR_TAG_CODE, display=HR_TAG_DISPLAY)])
            if marked
            else None
        ),
        identifier=[
            Identifier(use="official", system=REPORT_SYSTEM, value=study.study_instance_uid)
        ],
        basedOn=(
            [Reference(reference=reference("ServiceRequest", saved_id(order.id, "Order")))]
            if order is not None
            else None
        ),
        status=report.status.value,
        category=[
            CodeableConcept(
                coding=[Coding(system=V2_0074, code="RAD", display="Radiology")], text="放射"
            )
        ],
        code=_report_code(exam, study),
        subject=Reference(reference=reference("Patient", patient_id)),
        effectiveDateTime=study.started_at,
        issued=issued,
        performer=[facility_reference(reading_centre)],
        resultsInterpreter=interpreters,
        imagingStudy=[Reference(reference=reference("ImagingStudy", saved_id(study.id, "Study")))],
        conclusion=report.impression.strip() or None,
        presentedForm=forms,
    )
