"""DiagnosticReport, its plain-text form and the HR recognition mark."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import date

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir_samples import (
    STUDY_UID,
    at,
    auditor,
    county,
    exam,
    order,
    patient,
    radiologist,
    report,
    roundtrip,
    study,
    township,
)

from fhir.identifiers import HR_TAG_SYSTEM, REPORT_SYSTEM
from fhir.mapping import carries_recognition_mark, diagnostic_report_from, report_text
from fhir.report import age_at, shanghai_time
from models.catalogue import ExamType
from models.enums import ReportStatus
from models.reporting import Report


def _map(
    row: Report | None = None,
    *,
    exam_row: ExamType | None = None,
    with_exam: bool = True,
    qc_qualified: bool = True,
    with_auditor: bool = True,
    with_order: bool = True,
    pdf: bytes | None = None,
) -> DiagnosticReport:
    return diagnostic_report_from(
        row or report(),
        study=study(),
        patient_id=7,
        exam=(exam_row or exam()) if with_exam else None,
        order=order() if with_order else None,
        author=radiologist(),
        auditor=auditor() if with_auditor else None,
        facility=township(),
        reading_centre=county(),
        qc_qualified=qc_qualified,
        pdf=pdf,
    )


def _text(mapped: DiagnosticReport) -> str:
    assert mapped.presentedForm is not None
    plain = mapped.presentedForm[0]
    assert plain.data is not None
    return plain.data.decode("utf-8")


def test_diagnostic_report_references_and_codes() -> None:
    mapped = _map()
    roundtrip(mapped)
    assert mapped.id == "41"
    assert mapped.identifier is not None
    assert [(i.system, i.value) for i in mapped.identifier] == [(REPORT_SYSTEM, STUDY_UID)]
    assert mapped.status == "final"
    assert mapped.basedOn is not None
    assert [r.reference for r in mapped.basedOn] == ["ServiceRequest/11"]
    assert mapped.subject is not None and mapped.subject.reference == "Patient/7"
    assert mapped.imagingStudy is not None
    assert [r.reference for r in mapped.imagingStudy] == ["ImagingStudy/12"]
    assert mapped.performer is not None
    assert [r.reference for r in mapped.performer] == ["Organization/1"]
    assert mapped.resultsInterpreter is not None
    assert [(r.reference, r.display) for r in mapped.resultsInterpreter] == [
        ("Practitioner/31", "王芳"),
        ("Practitioner/32", "刘强"),
    ]
    assert mapped.category is not None and mapped.category[0].coding is not None
    assert (mapped.category[0].coding[0].system, mapped.category[0].coding[0].code) == (
        "http://terminology.hl7.org/CodeSystem/v2-0074",
        "RAD",
    )
    assert mapped.code.coding is not None
    assert (mapped.code.coding[0].system, mapped.code.coding[0].code) == (
        "http://loinc.org",
        "29252-4",
    )
    assert mapped.code.text == "胸部CT平扫"
    assert mapped.conclusion == "胸部CT平扫未见明显异常。"
    assert mapped.effectiveDateTime is not None
    assert mapped.effectiveDateTime.isoformat() == "2026-03-02T01:05:00+00:00"


def test_code_falls_back_to_the_catalogue_then_to_a_generic_imaging_report() -> None:
    without_loinc = _map(exam_row=exam(loinc=None))
    assert without_loinc.code.coding is not None
    assert [(c.code, c.display) for c in without_loinc.code.coding] == [
        ("CT-CHEST-PLAIN", "胸部CT平扫")
    ]
    without_exam = _map(with_exam=False)
    roundtrip(without_exam)
    assert without_exam.code.coding is not None
    assert [(c.system, c.code) for c in without_exam.code.coding] == [
        ("http://loinc.org", "18748-4")
    ]
    assert without_exam.code.text == "胸部CT平扫"
    assert without_exam.meta is None


@pytest.mark.parametrize("status", list(ReportStatus))
def test_status_is_carried_as_is(status: ReportStatus) -> None:
    row = report(status=status, amended_at=at(3, 2) if status == ReportStatus.amended else None)
    assert _map(row).status == status.value


def test_issued_is_the_latest_signing() -> None:
    preliminary = report(status=ReportStatus.preliminary, finalised_at=None)
    assert _map(preliminary, with_auditor=False).issued == at(2, 1, 20)
    assert _map(report()).issued == at(2, 1, 40)
    amended = report(status=ReportStatus.amended, amended_at=at(4, 8))
    assert _map(amended).issued == at(4, 8)


def test_preliminary_without_auditor_or_order() -> None:
    mapped = _map(
        report(status=ReportStatus.preliminary, finalised_at=None, impression=""),
        with_auditor=False,
        with_order=False,
    )
    roundtrip(mapped)
    assert mapped.basedOn is None
    assert mapped.resultsInterpreter is not None
    assert [r.reference for r in mapped.resultsInterpreter] == ["Practitioner/31"]
    assert mapped.conclusion is None
    assert "审核医师" not in _text(mapped)


HR_TABLE = list(itertools.product([True, False], [True, False], list(ReportStatus)))


@pytest.mark.parametrize(("recognised", "qc_qualified", "status"), HR_TABLE)
def test_recognition_mark_truth_table(
    recognised: bool, qc_qualified: bool, status: ReportStatus
) -> None:
    expected = (
        recognised
        and qc_qualified
        and status in {ReportStatus.final, ReportStatus.amended, ReportStatus.corrected}
    )
    assert (
        carries_recognition_mark(recognised=recognised, qc_qualified=qc_qualified, status=status)
        is expected
    )
    mapped = _map(
        report(status=status, amended_at=at(3, 2)),
        exam_row=exam(recognised=recognised),
        qc_qualified=qc_qualified,
    )
    tags = mapped.meta.tag if mapped.meta and mapped.meta.tag else []
    assert [(t.system, t.code, t.display) for t in tags] == (
        [(HR_TAG_SYSTEM, "HR", "互认")] if expected else []
    )


def test_recognition_mark_spot_checks() -> None:
    final = ReportStatus.final
    assert carries_recognition_mark(recognised=True, qc_qualified=True, status=final) is True
    assert carries_recognition_mark(recognised=False, qc_qualified=True, status=final) is False
    assert carries_recognition_mark(recognised=True, qc_qualified=False, status=final) is False
    preliminary = ReportStatus.preliminary
    assert carries_recognition_mark(recognised=True, qc_qualified=True, status=preliminary) is False


def test_presented_form_is_readable_chinese_text() -> None:
    mapped = _map()
    assert mapped.presentedForm is not None
    plain = mapped.presentedForm[0]
    assert plain.contentType == "text/plain; charset=utf-8"
    assert plain.language == "zh-CN"
    assert plain.creation == at(2, 1, 40)
    text = _text(mapped)
    assert text.startswith("影像诊断报告\n")
    assert "检查项目：胸部CT平扫（CT-CHEST-PLAIN）" in text
    assert "检查所见：\n双肺纹理清晰，未见明确实质性病变。\n纵隔居中，心影不大。\n" in text
    assert "诊断意见：\n胸部CT平扫未见明显异常。\n" in text
    assert "报告医师：王芳  2026-03-02 09:20" in text
    assert "审核医师：刘强  2026-03-02 09:40" in text
    assert "检查时间：2026-03-02 09:05" in text
    assert "阅片中心：互认县人民医院" in text
    assert "报告状态：终审报告" in text
    wire = json.loads(mapped.model_dump_json())["presentedForm"][0]["data"]
    assert base64.b64decode(wire).decode("utf-8") == text


def test_pdf_is_attached_when_given() -> None:
    mapped = _map(pdf=b"%PDF-1.4 stand-in")
    roundtrip(mapped)
    assert mapped.presentedForm is not None
    assert len(mapped.presentedForm) == 2
    attachment = mapped.presentedForm[1]
    assert attachment.contentType == "application/pdf"
    assert attachment.data == b"%PDF-1.4 stand-in"
    assert attachment.title == "影像诊断报告：胸部CT平扫"
    assert attachment.creation == at(2, 1, 40)
    assert len(_map().presentedForm or []) == 1


def test_report_text_with_patient_shows_name_sex_and_age_at_the_study() -> None:
    text = report_text(
        report(),
        study=study(),
        exam=exam(),
        author=radiologist(),
        auditor=auditor(),
        facility=township(),
        reading_centre=county(),
        patient=patient(),
    )
    assert "姓名：张三丰" in text
    assert "性别：男" in text
    assert "年龄：76岁" in text


def test_amendment_time_is_shown() -> None:
    text = _text(_map(report(status=ReportStatus.amended, amended_at=at(4, 23, 30))))
    assert "修订时间：2026-03-05 07:30" in text
    assert "报告状态：修订报告" in text


def test_times_are_shown_in_asia_shanghai() -> None:
    assert shanghai_time(at(2, 16, 30)) == "2026-03-03 00:30"
    assert shanghai_time(None) == ""


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(1949, 12, 31), date(2026, 3, 2), "76岁"),
        (date(2000, 3, 3), date(2026, 3, 2), "25岁"),
        (date(2000, 3, 2), date(2026, 3, 2), "26岁"),
        (date(2025, 12, 15), date(2026, 3, 2), "2月"),
        (date(2026, 2, 20), date(2026, 3, 2), "10天"),
        (None, date(2026, 3, 2), ""),
        (date(2027, 1, 1), date(2026, 3, 2), ""),
    ],
)
def test_age_at(born: date | None, on: date, age: str) -> None:
    assert age_at(born, on) == age
