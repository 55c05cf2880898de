"""The key figures at province scale: one lazy query over the snapshot's files.

:func:`integration.kpi.figures` works on eager frames, as the dashboard pages
do; over ten million exams that holds every column of every population in
memory. Here the same figures are planned lazily: each reads only the columns
it needs, filters before it materialises anything, needs no local time keys
(no breakdown), and all are collected together so polars shares the scans.

The rules are the metrics engine's own row-level functions (SLA status,
emergency and critical deadlines, correction flags, writing checks from the
per-report facts), applied to LazyFrames; the tests hold these figures equal
to :func:`integration.kpi.figures` on the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import polars as pl

from integration.analytics_store import FACTS, FRAME_NAMES, Snapshot
from integration.kpi import Figure, assemble
from integration.metrics_common import Share, aware_utc, filter_expression, flag, minutes
from integration.metrics_frames import Filters, Frames
from integration.metrics_quality import (
    POSITIVE_RATE_MODALITIES,
    STUDY_FACTS,
    QcIndicators,
    critical_status,
    is_signed_report,
    report_facts,
    with_correction_flags,
    with_study_facts,
    with_writing_from_facts,
)
from integration.metrics_settlement import TariffPeriod, tariffs_from_settings
from integration.metrics_turnaround import (
    emergency_status,
    is_emergency,
    on_the_clock,
    with_sla_status,
)
from integration.settings import Settings
from models.enums import ImageGrade, RecognitionOutcome

LazyTables = Mapping[str, pl.LazyFrame]  # the frames' names, plus "report_facts"

STUDY_COLUMNS = (
    "study_id", "reading_centre_id", "clinic_id", "modality", "exam_type_id", "priority",
    "quality_rejected", "started_at", "received_at", "completed_at", "body_part_count",
    "report_id", "report_status", "auditor_id", "preliminary_at", "finalised_at", "amended_at",
    "corrected", "positive",
)  # fmt: skip


QC_COLUMNS = (
    "reading_centre_id", "clinic_id", "modality", "exam_type_id", "grade", "artefact", "created_at",
)  # fmt: skip


def scan_snapshot(snapshot: Snapshot) -> dict[str, pl.LazyFrame]:
    """Lazy scans of a snapshot's files (helper columns dropped)."""
    tables = {}
    for name in (*FRAME_NAMES, FACTS):
        scan = pl.scan_parquet(snapshot.path(name))
        helpers = [c for c in scan.collect_schema().names() if c.startswith("_")]
        tables[name] = scan.drop(helpers)
    return tables


def frames_as_tables(frames: Frames) -> dict[str, pl.LazyFrame]:
    """Eager frames as lazy tables, the studies with their facts as in a snapshot."""
    facts = frames.report_facts
    if facts is None:
        facts = report_facts(frames.studies, frames.revisions)
    tables = {name: getattr(frames, name).lazy() for name in FRAME_NAMES}
    tables["studies"] = with_study_facts(frames.studies, frames.qc_events, facts).lazy()
    tables[FACTS] = facts.lazy()
    return tables


def _count(condition: pl.Expr, name: str) -> pl.Expr:
    return condition.fill_null(False).sum().cast(pl.Int64).alias(name)


def _tariff(tariffs: Sequence[TariffPeriod], zone: str) -> pl.Expr:
    """The rate per body part in force at ``finalised_at``: the local day's period, by instant."""
    ordered = sorted(tariffs, key=lambda t: t.valid_from)
    if not ordered:
        raise ValueError("settlement needs at least one tariff period")
    where = ZoneInfo(zone)
    rate: pl.Expr = pl.lit(None, dtype=pl.Int64)
    for period in ordered:  # later periods wrap earlier ones
        if period.valid_from <= date(1900, 1, 2):
            rate = pl.lit(period.rate_fen, dtype=pl.Int64)
            continue
        begins = datetime.combine(period.valid_from, time(0), tzinfo=where).astimezone(UTC)
        rate = (
            pl.when(pl.col("finalised_at") >= begins).then(pl.lit(period.rate_fen)).otherwise(rate)
        )
    return rate


def lazy_figures(
    tables: LazyTables,
    *,
    start: datetime,
    end: datetime,
    filters: Filters,
    settings: Settings,
    now: datetime,
    tariffs: Sequence[TariffPeriod] | None = None,
) -> tuple[Figure, ...]:
    """The key figures of [start, end) for ``filters``, as :func:`integration.kpi.figures`."""
    start, end, now = aware_utc(start), aware_utc(end), aware_utc(now)
    scope = filter_expression(filters)

    def within(column: pl.Expr) -> pl.Expr:
        return ((column >= start) & (column < end)).fill_null(False)

    studies = tables["studies"].select(*STUDY_COLUMNS, *STUDY_FACTS)
    exams = studies.filter(within(pl.coalesce("started_at", "received_at")) & scope).select(
        pl.len().cast(pl.Int64).alias("exams")
    )
    arrived = studies.filter(within(pl.col("completed_at")) & scope)
    population = arrived.filter(on_the_clock())
    turnaround = population.select(
        minutes("completed_at", "finalised_at").drop_nulls().median().alias("median")
    )
    sla = with_sla_status(population, now=now).select(
        _count(pl.col("sla_status") == "met", "met"),
        _count(pl.col("sla_status") == "missed", "missed"),
    )
    emergency = (
        population.filter(is_emergency())
        .with_columns(emergency_status(now).alias("status"))
        .select(
            _count(pl.col("status") == "met", "met"),
            _count(pl.col("status") == "missed", "missed"),
        )
    )
    rate = _tariff(
        tariffs if tariffs is not None else tariffs_from_settings(settings), settings.timezone
    )
    reports = with_writing_from_facts(
        with_correction_flags(
            studies.filter(within(pl.col("finalised_at")) & scope & is_signed_report()), None
        )
    ).with_columns(rate.alias("rate_fen"))
    ct_mr = pl.col("modality").is_in(list(POSITIVE_RATE_MODALITIES))
    signed = reports.select(
        pl.len().cast(pl.Int64).alias("finalised"),
        _count(pl.col("is_corrected"), "corrected"),
        _count(pl.col("compliant"), "compliant"),
        _count(ct_mr & pl.col("positive"), "positive"),
        _count(ct_mr & pl.col("positive").is_not_null(), "recorded"),
        _count(pl.col("rate_fen").is_null(), "uncovered"),
        (pl.col("body_part_count").fill_null(1) * pl.col("rate_fen"))
        .sum()
        .cast(pl.Int64)
        .alias("amount_fen"),
    )
    graded = (
        tables["qc_events"]
        .select(*QC_COLUMNS)
        .filter(within(pl.col("created_at")) & scope & pl.col("grade").is_not_null())
        .select(
            pl.len().cast(pl.Int64).alias("graded"),
            _count(pl.col("artefact"), "artefacts"),
            _count(pl.col("grade") == ImageGrade.A.value, "grade_a"),
        )
    )
    retakes = arrived.select(
        pl.len().cast(pl.Int64).alias("studies"),
        _count(flag("quality_rejected") | flag("retake_event"), "retakes"),
    )
    critical = (
        tables["critical_results"]
        .filter(within(pl.col("flagged_at")) & scope)
        .with_columns(critical_status(now).alias("status"))
        .select(
            _count(pl.col("status") == "met", "met"),
            _count(pl.col("status") == "missed", "missed"),
        )
    )
    accepted = pl.col("outcome") == RecognitionOutcome.accepted.value
    decided = (
        tables["decisions"]
        .filter(within(pl.col("decided_at")) & scope)
        .select(
            pl.len().cast(pl.Int64).alias("decisions"),
            _count(accepted, "accepted"),
            pl.col("avoided_fee_fen").filter(accepted).sum().cast(pl.Int64).alias("saved_fen"),
        )
    )
    asked = (
        tables["consultations"]
        .filter(within(pl.col("requested_at")) & scope)
        .select(
            pl.len().cast(pl.Int64).alias("requested"),
            _count(pl.col("answered_at").is_not_null(), "answered"),
        )
    )
    results = pl.collect_all(
        [exams, turnaround, sla, emergency, signed, graded, retakes, critical, decided, asked],
        engine="streaming",  # in batches: less memory, and faster than in-memory here
    )
    (e, t, s, em, r, g, rt, c, d, a) = (frame.row(0, named=True) for frame in results)
    if r["uncovered"]:
        raise ValueError("no tariff period holds on the day of some final reports")

    def decided_share(row: Mapping[str, int]) -> Share:
        return Share.of(int(row["met"]), int(row["met"]) + int(row["missed"]))

    qc = QcIndicators(
        emergency_report_within_2h=decided_share(em),
        critical_notified_within_10min=decided_share(c),
        report_writing_compliance=Share.of(r["compliant"], r["finalised"]),
        image_artefact_rate=Share.of(g["artefacts"], g["graded"]),
        a_grade_rate=Share.of(g["grade_a"], g["graded"]),
        sla_compliance=decided_share(s),
        correction_rate=Share.of(r["corrected"], r["finalised"]),
        retake_rate=Share.of(rt["retakes"], rt["studies"]),
        positive_rate_ct_mr=Share.of(r["positive"], r["recorded"]),
    )
    return assemble(
        exams=int(e["exams"]),
        final_median=t["median"],
        qc=qc,
        recognised=Share.of(d["accepted"], d["decisions"]),
        savings_fen=int(d["saved_fen"] or 0),
        answered=Share.of(a["answered"], a["requested"]),
        settlement_fen=int(r["amount_fen"] or 0),
    )
