"""The key figures at province scale: one lazy query over the snapshot's files.

:func:`integration.kpi.figures` works on eager frames, as the dashboard pages
do; over ten million exams that holds every column of every population in
memory. Here the same figures are planned lazily and streamed: the studies are
read once, every study figure is a sum of booleans in one pass over them, and
only the arrival -> final minutes (for the median) are materialised.

The rules are the metrics engine's own row-level functions: the ones that do
not depend on ``now`` (on the clock, emergency, signed, corrected, writing
compliant, retake, CT/MR) were applied when the snapshot was written
(:data:`~integration.metrics_quality.STUDY_FLAGS`); the SLA, emergency and
critical deadlines are judged here with the engine's met/missed conditions.
The tests hold these figures equal to :func:`integration.kpi.figures` on the
same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import polars as pl

from integration.analytics_store import FACTS, FRAME_NAMES, Snapshot
from integration.kpi import Figure, assemble
from integration.metrics_common import Share, aware_utc, filter_expression, minutes
from integration.metrics_frames import Filters, Frames
from integration.metrics_quality import (
    STUDY_FLAGS,
    QcIndicators,
    critical_outcome,
    report_facts,
    with_study_facts,
)
from integration.metrics_settlement import TariffPeriod, tariffs_from_settings
from integration.metrics_turnaround import (
    emergency_outcome,
    sla_met,
    sla_missed,
    with_sla_status,
)
from integration.settings import Settings
from integration.sla import ReadingCalendar
from models.enums import ImageGrade, RecognitionOutcome

LazyTables = Mapping[str, pl.LazyFrame]  # the frames' names, plus "report_facts"

STUDY_COLUMNS = (
    "reading_centre_id", "clinic_id", "modality", "exam_type_id", "priority", "started_at",
    "received_at", "completed_at", "body_part_count", "preliminary_at", "finalised_at", "positive",
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
    calendar: ReadingCalendar | None,
    tariffs: Sequence[TariffPeriod] | None = None,
) -> tuple[Figure, ...]:
    """The key figures of [start, end) for ``filters``, as :func:`integration.kpi.figures`.

    ``calendar`` is the SLA's reading calendar (``Frames.calendar`` of the frames the tables
    came from; None: around the clock), asked for so that no caller drops it by omission.
    """
    start, end, now = aware_utc(start), aware_utc(end), aware_utc(now)
    scope = filter_expression(filters)

    def within(column: pl.Expr) -> pl.Expr:
        return ((column >= start) & (column < end)).fill_null(False)

    studies = tables["studies"].select(*STUDY_COLUMNS, *STUDY_FLAGS)
    arrival = within(pl.col("completed_at")) & scope
    on_the_clock = arrival & pl.col("on_clock")
    rate = _tariff(
        tariffs if tariffs is not None else tariffs_from_settings(settings), settings.timezone
    )
    # The populations as columns, worked out once: polars does not share common
    # subexpressions between the aggregations of one select.
    judged = with_sla_status(studies, now=now, calendar=calendar).with_columns(
        arrival.alias("_arrived"),
        on_the_clock.alias("_clocked"),
        (within(pl.col("finalised_at")) & scope & pl.col("signed_report")).alias("_signed"),
    )
    arrived, clocked, signed = pl.col("_arrived"), pl.col("_clocked"), pl.col("_signed")
    emergency = clocked & pl.col("emergency_priority")
    emergency_met, emergency_missed = emergency_outcome(now)
    ct_mr_signed = signed & pl.col("ct_mr")
    # Every figure over the studies in one pass, each column read once, and booleans summed
    # where the eager engine compares status texts: at 10M exams those were most of the time.
    per_study = judged.select(
        _count(within(pl.coalesce("started_at", "received_at")) & scope, "exams"),
        _count(clocked & sla_met(), "sla_met"),
        _count(clocked & sla_missed(), "sla_missed"),
        _count(emergency & emergency_met, "emergency_met"),
        _count(emergency & emergency_missed, "emergency_missed"),
        _count(signed, "finalised"),
        _count(signed & pl.col("report_corrected"), "corrected"),
        _count(signed & pl.col("writing_compliant"), "compliant"),
        _count(ct_mr_signed & pl.col("positive"), "positive"),
        _count(ct_mr_signed & pl.col("positive").is_not_null(), "recorded"),
        _count(signed & rate.is_null(), "uncovered"),
        (pl.col("body_part_count").fill_null(1) * rate)
        .filter(signed)
        .sum()
        .cast(pl.Int64)
        .alias("amount_fen"),
        _count(arrived, "arrived"),
        _count(arrived & pl.col("retake"), "retakes"),
    )
    turnaround = studies.filter(on_the_clock).select(
        minutes("completed_at", "finalised_at").drop_nulls().alias("minutes")
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
    critical_met, critical_missed = critical_outcome(now)
    critical = (
        tables["critical_results"]
        .filter(within(pl.col("flagged_at")) & scope)
        .select(
            _count(critical_met, "critical_met"),
            _count(critical_missed, "critical_missed"),
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
        [per_study, graded, critical, decided, asked, turnaround],
        engine="streaming",  # in batches: less memory, and faster than in-memory here
    )
    (r, g, c, d, a) = (frame.row(0, named=True) for frame in results[:-1])
    # The median of one contiguous column is a selection; over the scan's many chunks polars
    # sorts them all, which took most of the time at 10M exams.
    final_median = results[-1].rechunk().select(pl.col("minutes").median()).item()
    if r["uncovered"]:
        raise ValueError("no tariff period holds on the day of some final reports")

    def decided_share(row: Mapping[str, int], name: str) -> Share:
        met, missed = int(row[f"{name}_met"]), int(row[f"{name}_missed"])
        return Share.of(met, met + missed)

    qc = QcIndicators(
        emergency_report_within_2h=decided_share(r, "emergency"),
        critical_notified_within_10min=decided_share(c, "critical"),
        report_writing_compliance=Share.of(r["compliant"], r["finalised"]),
        image_artefact_rate=Share.of(g["artefacts"], g["graded"]),
        a_grade_rate=Share.of(g["grade_a"], g["graded"]),
        sla_compliance=decided_share(r, "sla"),
        correction_rate=Share.of(r["corrected"], r["finalised"]),
        retake_rate=Share.of(r["retakes"], r["arrived"]),
        positive_rate_ct_mr=Share.of(r["positive"], r["recorded"]),
    )
    return assemble(
        exams=int(r["exams"]),
        final_median=final_median,
        qc=qc,
        recognised=Share.of(d["accepted"], d["decisions"]),
        savings_fen=int(d["saved_fen"] or 0),
        answered=Share.of(a["answered"], a["requested"]),
        settlement_fen=int(r["amount_fen"] or 0),
    )
