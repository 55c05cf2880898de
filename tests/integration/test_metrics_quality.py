"""Correction rate and the QC indicators against small hand-built data sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from integration.metrics import (
    Filters,
    Share,
    build_frames,
    corrections,
    critical_notifications,
    image_quality,
    local_days,
    positive_rate,
    qc_indicators,
    retake_rate,
    writing_checks,
    writing_compliance,
)

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = local_days(date(2026, 3, 1), date(2026, 3, 31))
SPRING = local_days(date(2026, 3, 1), date(2026, 4, 30))
LATE = datetime(2026, 6, 1, tzinfo=UTC)


def local(day: int, hour: int, minute: int = 0, *, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def report(
    report_id: int,
    finalised: datetime | None,
    *,
    status: str = "final",
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "study_id": report_id,
        "reading_centre_id": 1,
        "clinic_id": 10,
        "modality": "CT",
        "exam_type_id": 100,
        "priority": "routine",
        "completed_at": (finalised or local(1, 8)) - timedelta(minutes=40),
        "report_id": report_id,
        "report_status": status,
        "author_id": 7,
        "auditor_id": 8 if finalised else None,
        "preliminary_at": (finalised or local(1, 8)) - timedelta(minutes=20),
        "finalised_at": finalised,
        "corrected": False,
        "findings": "双肺纹理清晰，未见实变影。",
        "impression": "胸部CT平扫未见明显异常。",
    }
    row.update(extra)
    return row


def revision(report_id: int, version: int, status: str, impression: str) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "version": version,
        "status": status,
        "findings": "双肺纹理清晰，未见实变影。",
        "impression": impression,
        "created_at": local(1, 8) + timedelta(minutes=version),
    }


def correction_frames(start: datetime, end: datetime) -> Any:
    return build_frames(
        start=start,
        end=end,
        studies=[
            report(1, local(3, 9), author_id=7),  # unchanged
            report(2, local(3, 10), author_id=7, corrected=True),  # changed at audit
            # finalised in March, amended in April: a March correction
            report(3, local(30, 10), author_id=9, status="amended", corrected=True,
                   amended_at=local(2, 9, month=4)),
            report(4, local(2, 10, month=4), author_id=9),  # April
            report(5, None, status="preliminary", author_id=9),  # not finalised
            report(6, local(4, 10), author_id=9, corrected=True),  # flag only, no revisions
        ],
        revisions=[
            revision(1, 1, "preliminary", "胸部CT平扫未见明显异常。"),
            revision(1, 2, "final", " 胸部CT平扫未见明显异常。\n"),  # whitespace only
            revision(2, 1, "preliminary", "右肺上叶结节。"),
            revision(2, 2, "final", "右肺上叶结节，建议随访。"),
            revision(3, 1, "preliminary", "胸部CT平扫未见明显异常。"),
            revision(3, 2, "final", "胸部CT平扫未见明显异常。"),
            revision(3, 3, "amended", "胸部CT平扫未见明显异常（补充）。"),
            revision(4, 1, "preliminary", "胸部CT平扫未见明显异常。"),
            revision(4, 2, "final", "胸部CT平扫未见明显异常。"),
        ],
    )  # fmt: skip


def test_correction_rate_counts_audit_changes_and_amendments_after_final() -> None:
    row = corrections(correction_frames(*MARCH)).row(0, named=True)
    assert row == {
        "finalised": 4,
        "corrected": 3,
        "changed_at_audit": 2,
        "amended": 1,
        "correction_rate": pytest.approx(0.75),
    }


def test_correction_rate_by_radiologist_and_by_month_of_sign_off() -> None:
    frames = correction_frames(*SPRING)
    by_author = corrections(frames, by=("radiologist",))
    assert by_author.select("author_id", "finalised", "corrected").rows() == [
        (7, 2, 1),
        (9, 3, 2),
    ]
    by_month = corrections(frames, by=("month",))
    assert by_month.select("month", "finalised", "corrected").rows() == [
        ("2026-03", 4, 3),
        ("2026-04", 1, 0),
    ]


def test_critical_result_notified_within_ten_minutes() -> None:
    now = local(20, 12)
    flagged = local(10, 9)

    def critical(number: int, at: datetime, notified: float | None) -> dict[str, Any]:
        return {
            "critical_result_id": number,
            "report_id": number,
            "study_id": number,
            "reading_centre_id": 1,
            "clinic_id": 10,
            "modality": "CT",
            "exam_type_id": 100,
            "flagged_at": at,
            "notified_at": at + timedelta(minutes=notified) if notified is not None else None,
        }

    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        critical_results=[
            critical(1, flagged, 10),  # on the limit: met
            critical(2, flagged, 11),
            critical(3, now - timedelta(minutes=5), None),  # 5 min left: pending
            critical(4, now - timedelta(minutes=20), None),  # never told: missed
            critical(5, local(1, 9, month=4), 1),  # April
        ],
    )
    row = critical_notifications(frames, now=now).row(0, named=True)
    assert (row["total"], row["met"], row["missed"], row["pending"]) == (4, 1, 2, 1)
    assert row["rate"] == pytest.approx(1 / 3)
    assert row["median_notify_minutes"] == pytest.approx(10.5)


def test_report_writing_checks() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            report(1, local(3, 9)),
            report(2, local(3, 9), auditor_id=None),
            report(3, local(3, 9), impression="  "),
            report(4, local(3, 9), findings="右肺结节。", impression=" 右肺结节。\n"),
            report(5, local(3, 9), findings="左侧XXX见骨折线。"),
            report(6, local(3, 9), impression="【部位】未见异常。"),
            report(7, local(3, 9), impression="未见异常，xxx"),
            report(8, local(3, 9), findings="待填写"),
            report(9, local(3, 9), impression="{impression}"),
            report(10, local(3, 9), findings="___"),
        ],
    )
    checks = writing_checks(frames).sort("report_id")
    failing = {
        row["report_id"]: [name for name in ("signed", "impression_present",
                                              "impression_differs", "no_leftovers")
                           if not row[name]]
        for row in checks.iter_rows(named=True)
    }  # fmt: skip
    assert failing == {
        1: [],
        2: ["signed"],
        3: ["impression_present"],
        4: ["impression_differs"],
        5: ["no_leftovers"],
        6: ["no_leftovers"],
        7: ["no_leftovers"],
        8: ["no_leftovers"],
        9: ["no_leftovers"],
        10: ["no_leftovers"],
    }
    row = writing_compliance(frames).row(0, named=True)
    assert (row["reports"], row["signed"], row["no_leftovers"], row["compliant"]) == (10, 9, 4, 1)
    assert row["compliance_rate"] == pytest.approx(0.1)
    custom = writing_compliance(frames, leftovers=("骨折",)).row(0, named=True)
    assert custom["no_leftovers"] == 9


def qc(number: int, study_id: int, grade: str | None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "qc_event_id": number,
        "study_id": study_id,
        "reading_centre_id": 1,
        "clinic_id": 10,
        "modality": "DX",
        "exam_type_id": 100,
        "technologist": "王芳",
        "grade": grade,
        "artefact": False,
        "retake_requested": False,
        "created_at": local(5, 9) + timedelta(minutes=number),
    }
    row.update(extra)
    return row


def test_image_quality_artefact_rate_and_grades() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        qc_events=[
            qc(1, 1, "A"),
            qc(2, 2, "A", clinic_id=11),
            qc(3, 3, "B"),
            qc(4, 4, "D", artefact=True, retake_requested=True),
            qc(5, 5, "C", artefact=True, clinic_id=11),
            qc(6, 6, None),  # a note without a grade
            qc(7, 7, "A", created_at=local(1, 9, month=4)),  # April
        ],
    )
    row = image_quality(frames).row(0, named=True)
    assert (row["graded"], row["artefacts"]) == (5, 2)
    assert (row["grade_a"], row["grade_b"], row["grade_c"], row["grade_d"]) == (2, 1, 1, 1)
    assert row["artefact_rate"] == pytest.approx(0.4)
    assert row["a_rate"] == pytest.approx(0.4)
    per_clinic = image_quality(frames, by=("clinic",))
    assert per_clinic.select("clinic_id", "graded", "artefacts").rows() == [(10, 3, 1), (11, 2, 1)]


def test_retake_rate_by_clinic_and_technologist() -> None:
    def taken(study_id: int, **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "study_id": study_id,
            "reading_centre_id": 1,
            "clinic_id": 10,
            "modality": "DX",
            "exam_type_id": 100,
            "completed_at": local(5, 9) + timedelta(hours=study_id),
            "quality_rejected": False,
        }
        row.update(extra)
        return row

    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            taken(1, quality_rejected=True),  # rejected ...
            taken(2, retake_of_study_id=1),  # ... and taken again
            taken(3),
            taken(4),  # not judged yet: no technologist known
            taken(5, clinic_id=11),
        ],
        qc_events=[
            qc(1, 1, "D", retake_requested=True, technologist="王芳"),
            qc(2, 2, "A", technologist="王芳"),
            qc(3, 3, "B", technologist="李强"),
            qc(4, 5, "A", technologist="李强", clinic_id=11),
        ],
    )
    row = retake_rate(frames).row(0, named=True)
    assert (row["studies"], row["retakes"]) == (5, 1)
    assert row["retake_rate"] == pytest.approx(0.2)
    per_clinic = retake_rate(frames, by=("clinic",))
    assert per_clinic.select("clinic_id", "studies", "retakes").rows() == [(10, 4, 1), (11, 1, 0)]
    per_person = retake_rate(frames, by=("technologist",))
    assert per_person.select("technologist", "studies", "retakes").rows() == [
        ("", 1, 0),
        ("李强", 2, 0),
        ("王芳", 2, 1),
    ]


def test_positive_rate_of_final_ct_and_mr() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            report(1, local(3, 9), modality="CT", positive=True),
            report(2, local(3, 9), modality="CT", positive=False),
            report(3, local(3, 9), modality="MR", positive=True),
            report(4, local(3, 9), modality="MR", positive=None),  # no verdict recorded
            report(5, local(3, 9), modality="DX", positive=True),  # not CT/MR
            report(6, None, modality="CT", positive=True, status="preliminary"),
        ],
    )
    row = positive_rate(frames).row(0, named=True)
    assert (row["reports"], row["positive"], row["negative"], row["unrecorded"]) == (4, 2, 1, 1)
    assert row["positive_rate"] == pytest.approx(2 / 3)
    per_modality = positive_rate(frames, by=("modality",))
    assert per_modality.select("modality", "positive_rate").rows() == [("CT", 0.5), ("MR", 1.0)]


def test_qc_indicators_in_one_call() -> None:
    frames = correction_frames(*MARCH)
    indicators = qc_indicators(frames, now=LATE)
    assert indicators.correction_rate == Share(3, 4, 0.75)
    assert indicators.report_writing_compliance == Share(4, 4, 1.0)
    assert indicators.sla_compliance.denominator == 5  # report 5 (preliminary only) is late
    assert indicators.emergency_report_within_2h == Share(0, 0, None)
    assert indicators.critical_notified_within_10min == Share(0, 0, None)
    assert indicators.image_artefact_rate == Share(0, 0, None)


def test_filters_that_select_nothing_give_no_data() -> None:
    frames = correction_frames(*MARCH)
    nothing = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        filters=Filters(clinic_ids=frozenset()),
        studies=frames.studies.to_dicts(),
        revisions=frames.revisions.to_dicts(),
    )
    assert corrections(nothing).row(0, named=True) == {
        "finalised": 0,
        "corrected": 0,
        "changed_at_audit": 0,
        "amended": 0,
        "correction_rate": None,
    }
    ct_only = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        filters=Filters(modalities=frozenset({"CT"}), exam_type_ids=frozenset({100})),
        studies=frames.studies.to_dicts(),
    )
    assert corrections(ct_only)["finalised"].to_list() == [4]
