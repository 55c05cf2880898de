"""Corrections and the national radiology QC indicators the data supports.

* Correction rate: corrected ÷ finalised, over reports finalised in the window.
  A report is *corrected* when the auditor's final differs from the last
  preliminary (findings or impression, whitespace aside: the revisions tell),
  or it was amended or corrected after final, or its ``corrected`` flag is set.
* Critical result notified within 10 min: over critical results flagged in
  the window; notified_at − flagged_at ≤ 10 min is met.
* Report-writing compliance: over reports finalised in the window; see
  :func:`writing_checks` for the checks.
* Image quality: over graded QC events (a grade on audit, or the D of a
  rejection) made in the window: artefact share, grade distribution, A rate.
* Retake rate: studies with a retake request ÷ studies, over studies that
  arrived in the window (the rejected study and its retake are both studies).
* Positive rate of CT/MR: positive ÷ (positive + negative) over final CT and
  MR reports finalised in the window; reports with no verdict are counted apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from integration.metrics_common import (
    DIMENSION_COLUMNS,
    Dimension,
    Share,
    Table,
    aggregate,
    aware_utc,
    count,
    deadline_status,
    deadline_summary,
    flag,
    group_columns,
    ratio,
    rows,
    scoped,
    scoped_where,
    share_of,
)
from integration.metrics_frames import REPORT_FACTS_SCHEMA, Frames
from integration.metrics_turnaround import (
    emergency_reports,
    is_emergency,
    on_the_clock,
    sla_compliance,
)
from models.enums import ImageGrade, ReportStatus

CRITICAL_NOTIFY_MINUTES = 10
SIGNED_STATUSES = (
    ReportStatus.final.value,
    ReportStatus.amended.value,
    ReportStatus.corrected.value,
)
AMENDED_STATUSES = (ReportStatus.amended.value, ReportStatus.corrected.value)
TEMPLATE_LEFTOVERS = ("XXX", "___", "【", "】", "{", "}", "待填写", "待补充")
POSITIVE_RATE_MODALITIES = ("CT", "MR")


def _normal_text(column: str) -> pl.Expr:
    """Whitespace collapsed, as ``integration.reporting.is_correction`` compares texts."""
    return pl.col(column).fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()


def revision_facts(revisions: pl.DataFrame) -> pl.DataFrame:
    """Per report: did the first final differ from the preliminary before it; any amendment."""
    texts = revisions.with_columns(
        pl.concat_str(
            [_normal_text("findings"), _normal_text("impression")], separator="\x1f"
        ).alias("text")
    )
    first_final = (
        texts.filter(pl.col("status") == ReportStatus.final.value)
        .sort("report_id", "version")
        .group_by("report_id", maintain_order=True)
        .agg(pl.col("version").first().alias("final_version"), pl.col("text").first())
        .rename({"text": "final_text"})
    )
    preliminary = (
        texts.join(first_final, on="report_id", how="inner")
        .filter(
            (pl.col("status") == ReportStatus.preliminary.value)
            & (pl.col("version") < pl.col("final_version"))
        )
        .sort("report_id", "version")
        .group_by("report_id", maintain_order=True)
        .agg(pl.col("text").last().alias("preliminary_text"))
    )
    amended = (
        texts.filter(pl.col("status").is_in(AMENDED_STATUSES))
        .select("report_id")
        .unique()
        .with_columns(pl.lit(True).alias("amended_in_revisions"))
    )
    return (
        texts.select("report_id")
        .unique()
        .join(first_final, on="report_id", how="left")
        .join(preliminary, on="report_id", how="left")
        .join(amended, on="report_id", how="left")
        .select(
            "report_id",
            (pl.col("final_text") != pl.col("preliminary_text"))
            .fill_null(False)
            .alias("changed_in_revisions"),
            flag("amended_in_revisions").alias("amended_in_revisions"),
            pl.lit(True).alias("has_revisions"),
        )
    )


def finalised_reports(frames: Frames) -> pl.DataFrame:
    """Reports finalised in the window (keys by finalisation time) with correction facts."""
    return frames.derived("finalised_reports", lambda: _finalised_reports(frames))


def _finalised_reports(frames: Frames) -> pl.DataFrame:
    reports = scoped_where(frames, frames.studies, "finalised_at", is_signed_report())
    facts = (
        frames.report_facts if frames.report_facts is not None else revision_facts(frames.revisions)
    )
    return with_correction_flags(reports, facts)


def is_signed_report() -> pl.Expr:
    """A report signed final (and perhaps amended or corrected since)."""
    return pl.col("report_id").is_not_null() & pl.col("report_status").is_in(SIGNED_STATUSES)


def with_correction_flags(reports: Table, facts: Table | None) -> Table:
    """Adds the revision facts and ``amended``, ``changed_at_audit`` and ``is_corrected``.

    ``facts`` None: the reports carry the per-report fact columns already.
    """
    amended = (
        flag("amended_in_revisions")
        | pl.col("amended_at").is_not_null()
        | pl.col("report_status").is_in(AMENDED_STATUSES)
    )
    changed = flag("changed_in_revisions") | (
        ~flag("has_revisions") & flag("corrected") & ~pl.col("amended")
    )
    joined = reports if facts is None else reports.join(facts, on="report_id", how="left")
    return (
        joined.with_columns(amended.alias("amended"))
        .with_columns(changed.alias("changed_at_audit"))
        .with_columns(
            (flag("corrected") | pl.col("amended") | pl.col("changed_at_audit")).alias(
                "is_corrected"
            )
        )
    )


def corrections(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """finalised, corrected (changed_at_audit, amended) and correction_rate per group.

    "radiologist" is the preliminary's author; month is the month of sign-off.
    """
    reports = finalised_reports(frames)
    keys = group_columns(reports, by, metric="correction rate")
    summary = aggregate(
        reports,
        keys,
        [
            rows("finalised"),
            count(pl.col("is_corrected"), "corrected"),
            count(pl.col("changed_at_audit"), "changed_at_audit"),
            count(pl.col("amended"), "amended"),
        ],
    )
    return summary.with_columns(ratio("corrected", "finalised").alias("correction_rate"))


def critical_notifications(
    frames: Frames,
    *,
    now: datetime,
    by: Sequence[Dimension] = (),
    within_minutes: int = CRITICAL_NOTIFY_MINUTES,
) -> pl.DataFrame:
    """Critical results notified within 10 min of flagging: total, met, missed, pending, rate.

    Also ``median_notify_minutes`` over those notified by ``now``.
    """
    now = aware_utc(now)
    flagged = scoped(frames, frames.critical_results, "flagged_at")
    notified = pl.col("notified_at").is_not_null() & (pl.col("notified_at") <= now)
    judged = flagged.with_columns(
        critical_status(now, within_minutes=within_minutes).alias("status"),
        pl.when(notified)
        .then((pl.col("notified_at") - pl.col("flagged_at")).dt.total_seconds(fractional=True))
        .otherwise(None)
        .truediv(60.0)
        .alias("notify_minutes"),
    )
    keys = group_columns(judged, by, metric="critical result notification")
    summary = deadline_summary(judged, keys, "status")
    medians = aggregate(
        judged, keys, [pl.col("notify_minutes").median().alias("median_notify_minutes")]
    )
    if keys:
        return summary.join(medians, on=keys, how="left", nulls_equal=True)
    return pl.concat([summary, medians], how="horizontal")


def critical_outcome(
    now: datetime, *, within_minutes: int = CRITICAL_NOTIFY_MINUTES
) -> tuple[pl.Expr, pl.Expr]:
    """met and missed (never null) of a critical result: notified within 10 min of flagging."""
    due = pl.col("flagged_at") + timedelta(minutes=within_minutes)
    notified = pl.col("notified_at").is_not_null() & (pl.col("notified_at") <= now)
    met = (notified & (pl.col("notified_at") <= due)).fill_null(False)
    missed = ~met & (notified | (due < now)).fill_null(False)
    return met, missed


def critical_status(now: datetime, *, within_minutes: int = CRITICAL_NOTIFY_MINUTES) -> pl.Expr:
    """met / missed / pending of a critical result: notified within 10 min of flagging."""
    return deadline_status(*critical_outcome(now, within_minutes=within_minutes))


def writing_checks(
    frames: Frames, *, leftovers: Sequence[str] = TEMPLATE_LEFTOVERS
) -> pl.DataFrame:
    """Report-writing checks per report finalised in the window (the report as it stands):

    * ``signed``: an auditor signed it (``auditor_id`` set);
    * ``impression_present``: the impression (诊断意见) is not blank;
    * ``impression_differs``: the impression is not the findings copied over
      (compared with whitespace collapsed);
    * ``no_leftovers``: neither text holds a template leftover such as "XXX",
      "___", "【", "{" or "待填写" (ASCII letters compared case-insensitively).

    ``compliant`` is all four.
    """
    reports = finalised_reports(frames)
    markers = list(leftovers)
    if "has_leftovers" in reports.columns and tuple(markers) == TEMPLATE_LEFTOVERS:
        return with_writing_from_facts(reports)
    if "impression" not in reports.columns:
        raise ValueError(
            "these frames carry no report texts (lean): only the default leftovers can be checked"
        )
    return _compliant(reports.with_columns(_signed(), *_text_checks(markers)))


def with_writing_from_facts(reports: Table) -> Table:
    """The writing checks from the per-report facts (default leftovers), and ``compliant``."""
    return _compliant(
        reports.with_columns(
            _signed(),
            flag("impression_present").alias("impression_present"),
            flag("impression_differs").alias("impression_differs"),
            (~flag("has_leftovers")).alias("no_leftovers"),
        )
    )


def _signed() -> pl.Expr:
    return pl.col("auditor_id").is_not_null().alias("signed")


def _text_checks(markers: list[str]) -> list[pl.Expr]:
    """impression_present, impression_differs and no_leftovers from the report's texts."""
    if markers:
        leftover = pl.col("findings").fill_null("").str.contains_any(
            markers, ascii_case_insensitive=True
        ) | pl.col("impression").fill_null("").str.contains_any(
            markers, ascii_case_insensitive=True
        )
    else:
        leftover = pl.lit(False)
    return [
        (_normal_text("impression") != "").alias("impression_present"),
        (_normal_text("impression") != _normal_text("findings")).alias("impression_differs"),
        (~leftover).alias("no_leftovers"),
    ]


def _compliant(checked: Table) -> Table:
    return checked.with_columns(
        (
            pl.col("signed")
            & pl.col("impression_present")
            & pl.col("impression_differs")
            & pl.col("no_leftovers")
        ).alias("compliant")
    )


STUDY_FLAGS = (
    "on_clock", "emergency_priority", "signed_report", "report_corrected", "writing_compliant",
    "retake", "ct_mr",
)  # fmt: skip
STUDY_FACTS = (*list(REPORT_FACTS_SCHEMA)[1:], "retake_event", *STUDY_FLAGS)


def with_study_facts(studies: Table, qc_events: Table, facts: Table) -> Table:
    """Each study with its report's facts, ``retake_event`` (any of its QC events asked for a
    retake) and :data:`STUDY_FLAGS`: what the province-scale figures read instead of joining
    and judging at query time.

    The flags are the row-level rules that do not depend on ``now``, worked out once per
    snapshot: on the clock, emergency, a signed report, corrected, writing compliant, a retake,
    CT or MR.
    """
    retakes = qc_events.group_by("study_id").agg(
        pl.col("retake_requested").fill_null(False).any().alias("retake_event")
    )
    joined = studies.join(facts, on="report_id", how="left").join(
        retakes, on="study_id", how="left"
    )
    flags = with_writing_from_facts(with_correction_flags(joined, None)).select(
        on_the_clock().alias("on_clock"),
        is_emergency().alias("emergency_priority"),
        is_signed_report().alias("signed_report"),
        pl.col("is_corrected").alias("report_corrected"),
        pl.col("compliant").alias("writing_compliant"),
        (flag("quality_rejected") | flag("retake_event")).alias("retake"),
        pl.col("modality").is_in(list(POSITIVE_RATE_MODALITIES)).alias("ct_mr"),
    )
    return pl.concat([joined, flags], how="horizontal")


def report_facts(studies: pl.DataFrame, revisions: pl.DataFrame) -> pl.DataFrame:
    """Per report of ``studies``: its revision facts and its texts' writing checks.

    Worked out once (the snapshot store keeps them) so that the metrics need
    neither the revisions nor the texts; the checks use :data:`TEMPLATE_LEFTOVERS`.
    """
    reports = studies.filter(pl.col("report_id").is_not_null())
    checks = reports.select("report_id", *_text_checks(list(TEMPLATE_LEFTOVERS))).with_columns(
        (~pl.col("no_leftovers")).alias("has_leftovers")
    )
    return (
        checks.join(revision_facts(revisions), on="report_id", how="left")
        .select(list(REPORT_FACTS_SCHEMA))
        .unique("report_id", keep="first", maintain_order=True)
    )


def writing_compliance(
    frames: Frames,
    *,
    by: Sequence[Dimension] = (),
    leftovers: Sequence[str] = TEMPLATE_LEFTOVERS,
) -> pl.DataFrame:
    """How many finalised reports pass each writing check, and compliance_rate (all pass)."""
    checked = writing_checks(frames, leftovers=leftovers)
    keys = group_columns(checked, by, metric="report-writing compliance")
    summary = aggregate(
        checked,
        keys,
        [
            rows("reports"),
            count(pl.col("signed"), "signed"),
            count(pl.col("impression_present"), "impression_present"),
            count(pl.col("impression_differs"), "impression_differs"),
            count(pl.col("no_leftovers"), "no_leftovers"),
            count(pl.col("compliant"), "compliant"),
        ],
    )
    return summary.with_columns(ratio("compliant", "reports").alias("compliance_rate"))


def image_quality(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """Over graded QC events in the window: artefacts and artefact_rate, grades A-D, a_rate."""
    graded = scoped(frames, frames.qc_events, "created_at").filter(pl.col("grade").is_not_null())
    keys = group_columns(graded, by, metric="image quality")
    summary = aggregate(
        graded,
        keys,
        [
            rows("graded"),
            count(pl.col("artefact"), "artefacts"),
            *(count(pl.col("grade") == g.value, f"grade_{g.value.lower()}") for g in ImageGrade),
        ],
    )
    return summary.with_columns(
        ratio("artefacts", "graded").alias("artefact_rate"),
        ratio("grade_a", "graded").alias("a_rate"),
    )


def retake_rate(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """Studies with a retake request ÷ studies that arrived in the window, per group.

    The technologist of a study is the one named on its QC events (the only
    place the data model records one); "" when the study has not been judged.
    """
    arrived = scoped(frames, frames.studies, "completed_at")
    wanted = ("study_id", "quality_rejected", *DIMENSION_COLUMNS.values())
    studies = arrived.select(
        [c for c in dict.fromkeys(wanted) if c in arrived.columns and c != "technologist"]
    )
    events = frames.qc_events.select(
        "study_id", "created_at", "qc_event_id", "retake_requested", "technologist"
    ).sort("study_id", "created_at", "qc_event_id")
    per_study = events.group_by("study_id", maintain_order=True).agg(
        pl.col("retake_requested").fill_null(False).any().alias("retake_event"),
        pl.col("technologist").filter(pl.col("technologist").fill_null("") != "").first(),
    )
    judged = studies.join(per_study, on="study_id", how="left").with_columns(
        (flag("quality_rejected") | flag("retake_event")).alias("retake"),
        pl.col("technologist").fill_null(""),
    )
    keys = group_columns(judged, by, metric="retake rate")
    summary = aggregate(judged, keys, [rows("studies"), count(pl.col("retake"), "retakes")])
    return summary.with_columns(ratio("retakes", "studies").alias("retake_rate"))


def positive_rate(
    frames: Frames,
    *,
    by: Sequence[Dimension] = (),
    modalities: Sequence[str] = POSITIVE_RATE_MODALITIES,
) -> pl.DataFrame:
    """Positive ÷ (positive + negative) over finalised CT/MR reports; ``unrecorded`` apart."""
    reports = finalised_reports(frames).filter(pl.col("modality").is_in(list(modalities)))
    keys = group_columns(reports, by, metric="positive rate")
    summary = aggregate(
        reports,
        keys,
        [
            rows("reports"),
            count(pl.col("positive"), "positive"),
            count(~pl.col("positive"), "negative"),
            count(pl.col("positive").is_null(), "unrecorded"),
        ],
    )
    return summary.with_columns(
        (pl.col("positive") + pl.col("negative")).alias("recorded")
    ).with_columns(ratio("positive", "recorded").alias("positive_rate"))


@dataclass(frozen=True)
class QcIndicators:
    """The bureau's headline QC figures for one window, each with its counts."""

    emergency_report_within_2h: Share
    critical_notified_within_10min: Share
    report_writing_compliance: Share
    image_artefact_rate: Share
    a_grade_rate: Share
    sla_compliance: Share
    correction_rate: Share
    retake_rate: Share
    positive_rate_ct_mr: Share


def qc_indicators(frames: Frames, *, now: datetime) -> QcIndicators:
    """All headline indicators at once (deadline shares leave pending cases out)."""
    quality = image_quality(frames)
    return QcIndicators(
        emergency_report_within_2h=share_of(emergency_reports(frames, now=now), "met", "decided"),
        critical_notified_within_10min=share_of(
            critical_notifications(frames, now=now), "met", "decided"
        ),
        report_writing_compliance=share_of(writing_compliance(frames), "compliant", "reports"),
        image_artefact_rate=share_of(quality, "artefacts", "graded"),
        a_grade_rate=share_of(quality, "grade_a", "graded"),
        sla_compliance=share_of(sla_compliance(frames, now=now), "met", "decided"),
        correction_rate=share_of(corrections(frames), "corrected", "finalised"),
        retake_rate=share_of(retake_rate(frames), "retakes", "studies"),
        positive_rate_ct_mr=share_of(positive_rate(frames), "positive", "recorded"),
    )
