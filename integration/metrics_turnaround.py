"""Turnaround, SLA compliance, the overdue list and the 2-hour emergency report indicator.

The clock starts when the study is complete at the hub (``study.completed_at``,
"arrival"). The population is every complete study of the region that arrived
in the window, minus studies rejected for image quality (their retake is a new
study with its own clock) and studies whose report was cancelled.

SLA (the region's rule, limits inclusive, as ``integration.sla`` sets them for
the worklist's clocks):

* routine: preliminary at most 30 min after arrival AND final at most 30 min
  after the preliminary; outside the reading calendar's hours
  (``Frames.calendar``, from ``HUREN_READING_*``) each clock waits for the next
  opening;
* emergency: final at most 30 min after arrival, whatever the hour.

A step counts as done when its time is at or before ``now``. A study is
*met*, *missed* (a limit passed without the step, or the step came late) or
*pending* (a limit still ahead of ``now``); compliance is met ÷ (met + missed).
Turnaround minutes are elapsed time, calendar or not.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from integration.metrics_common import (
    Dimension,
    Table,
    aggregate,
    aware_utc,
    deadline_status,
    deadline_summary,
    group_columns,
    minutes,
    rows,
    scoped_where,
)
from integration.metrics_frames import UTC_TIME, Frames
from integration.sla import ReadingCalendar
from models.enums import Priority, ReportStatus

SLA_MINUTES = 30
EMERGENCY_REPORT_MINUTES = 120  # national QC indicator: emergency report within 2 h
TURNAROUND_STEPS = (
    ("arrival_to_preliminary", "completed_at", "preliminary_at"),
    ("preliminary_to_final", "preliminary_at", "finalised_at"),
    ("arrival_to_final", "completed_at", "finalised_at"),
    ("final_to_delivered", "finalised_at", "delivered_at"),
)


def reading_population(frames: Frames) -> pl.DataFrame:
    """Studies on the clock: arrived in the window, not quality-rejected, report not cancelled.

    Adds ``delivered_at``: when the ORU^R01 of the final version reached the clinic.
    """
    return frames.derived("reading_population", lambda: _reading_population(frames))


def _reading_population(frames: Frames) -> pl.DataFrame:
    studies = scoped_where(frames, frames.studies, "completed_at", on_the_clock())
    delivered = _final_deliveries(frames)
    # A lookup rather than a join: a join would copy every column of the population.
    return studies.with_columns(
        pl.col("report_id")
        .replace_strict(
            delivered["report_id"], delivered["delivered_at"], default=None, return_dtype=UTC_TIME
        )
        .alias("delivered_at")
    )


def _final_deliveries(frames: Frames) -> pl.DataFrame:
    """The first ORU row queued at or after sign-off: the final version's delivery."""
    finals = frames.studies.select("report_id", "finalised_at").filter(
        pl.col("report_id").is_not_null() & pl.col("finalised_at").is_not_null()
    )
    return (
        frames.deliveries.join(finals, on="report_id", how="inner")
        .filter(pl.col("created_at") >= pl.col("finalised_at"))
        .sort("report_id", "created_at", "outbox_id")
        .group_by("report_id", maintain_order=True)
        .agg(pl.col("delivered_at").first())
    )


def turnaround(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """Median, p90 and p95 minutes of each step, per group (keys by arrival time).

    Steps: arrival_to_preliminary, preliminary_to_final, arrival_to_final,
    final_to_delivered (ORU^R01 delivered to the clinic). Percentiles are
    linearly interpolated (numpy's default). A step counts only where both of
    its times exist; a group without any for a step has no row for it, except
    with no breakdown, where every step has a row (count 0, nulls).
    """
    population = reading_population(frames)
    keys = group_columns(population, by, metric="turnaround")
    parts = []
    for step, begin, finish in TURNAROUND_STEPS:
        timed = population.select(*keys, minutes(begin, finish).alias("minutes")).filter(
            pl.col("minutes").is_not_null()
        )
        summary = aggregate(
            timed,
            keys,
            [
                rows("count"),
                pl.col("minutes").median().alias("median_minutes"),
                pl.col("minutes").quantile(0.90, "linear").alias("p90_minutes"),
                pl.col("minutes").quantile(0.95, "linear").alias("p95_minutes"),
            ],
        )
        parts.append(summary.with_columns(pl.lit(step).alias("step")))
    columns = [*keys, "step", "count", "median_minutes", "p90_minutes", "p95_minutes"]
    return pl.concat([part.select(columns) for part in parts], how="vertical")


def sla_outcomes(frames: Frames, *, now: datetime) -> pl.DataFrame:
    """One row per study on the clock: its SLA deadlines and met / missed / pending."""
    return frames.derived(
        ("sla_outcomes", aware_utc(now)), lambda: _sla_outcomes(frames, now=now), volatile=True
    )


def _sla_outcomes(frames: Frames, *, now: datetime) -> pl.DataFrame:
    return with_sla_status(reading_population(frames), now=now, calendar=frames.calendar)


def on_the_clock() -> pl.Expr:
    """The reading population's rule: not rejected for image quality, report not cancelled."""
    return ~pl.col("quality_rejected").fill_null(False) & (
        pl.col("report_status").fill_null("") != ReportStatus.cancelled.value
    )


def is_emergency() -> pl.Expr:
    return pl.col("priority").fill_null("") == Priority.emergency.value


def emergency_outcome(
    now: datetime, *, within_minutes: int = EMERGENCY_REPORT_MINUTES
) -> tuple[pl.Expr, pl.Expr]:
    """met and missed (never null) of the emergency report indicator: final within 2 h of
    arrival; neither is pending."""
    due = pl.col("completed_at") + timedelta(minutes=within_minutes)
    final_done = pl.col("finalised_at").is_not_null() & (pl.col("finalised_at") <= now)
    met = (final_done & (pl.col("finalised_at") <= due)).fill_null(False)
    missed = ~met & (final_done | (due < now)).fill_null(False)
    return met, missed


def emergency_status(now: datetime, *, within_minutes: int = EMERGENCY_REPORT_MINUTES) -> pl.Expr:
    """met / missed / pending of the emergency report indicator (final within 2 h of arrival)."""
    return deadline_status(*emergency_outcome(now, within_minutes=within_minutes))


def clock_starts(moments: pl.Expr, calendar: ReadingCalendar | None) -> pl.Expr:
    """Each moment's :meth:`ReadingCalendar.next_opening`: itself within hours, else the next
    opening. Worked out once per distinct local day, so a year of studies costs a few
    hundred calendar look-ups, not one per row."""
    if calendar is None or calendar.always_open:
        return moments

    def starts(series: pl.Series) -> pl.Series:
        series = series.cast(UTC_TIME)
        days = series.dt.convert_time_zone(calendar.zone.key).dt.date()
        # Values in UTC: a local time of a day when the clocks change would not fit the column.
        opening: dict[date, datetime | None] = {}
        closing: dict[date, datetime | None] = {}
        following: dict[date, datetime] = {}
        for day in days.unique().drop_nulls().to_list():
            hours = calendar.hours_on(day)
            opening[day], closing[day] = (
                (hours[0].astimezone(UTC), hours[1].astimezone(UTC)) if hours else (None, None)
            )
            midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=calendar.zone)
            following[day] = calendar.next_opening(midnight.astimezone(UTC))
        look_up = functools.partial(days.replace_strict, default=None, return_dtype=UTC_TIME)
        opens, closes = look_up(opening), look_up(closing)
        after = look_up(following)
        return (
            pl.select(
                pl.when(opens.is_not_null() & (series >= opens) & (series < closes))
                .then(series)
                .when(opens.is_not_null() & (series < opens))
                .then(opens)
                .otherwise(after)
            )
            .to_series()
            .alias(series.name)
        )

    return moments.map_batches(starts, return_dtype=UTC_TIME)


def with_sla_status(
    population: Table, *, now: datetime, calendar: ReadingCalendar | None = None
) -> Table:
    """Adds the SLA deadlines, what is done by ``now``, and ``sla_status`` (met/missed/pending).

    ``calendar`` None: the centre reads around the clock.
    """
    now = aware_utc(now)
    limit = timedelta(minutes=SLA_MINUTES)
    arrival = pl.col("completed_at")
    prelim_done = pl.col("preliminary_at").is_not_null() & (pl.col("preliminary_at") <= now)
    final_done = pl.col("finalised_at").is_not_null() & (pl.col("finalised_at") <= now)
    emergency = is_emergency()

    preliminary_due = pl.when(~emergency).then(clock_starts(arrival, calendar) + limit)
    audit_start = clock_starts(pl.col("preliminary_at"), calendar)
    final_due = (
        pl.when(emergency)
        .then(arrival + limit)
        .otherwise(pl.when(prelim_done).then(audit_start + limit))
    )
    prelim_state = (
        pl.when(prelim_done)
        .then(pl.col("preliminary_at") <= pl.col("preliminary_due_at"))
        .when(now <= pl.col("preliminary_due_at"))
        .then(None)
        .otherwise(False)
    )
    final_state = (
        pl.when(pl.col("final_due_at").is_null())
        .then(None)  # routine, preliminary not yet written: the audit limit is unknown
        .when(final_done)
        .then(pl.col("finalised_at") <= pl.col("final_due_at"))
        .when(now <= pl.col("final_due_at"))
        .then(None)
        .otherwise(False)
    )
    return (
        population.with_columns(
            emergency.alias("emergency"),
            preliminary_due.alias("preliminary_due_at"),
            final_due.alias("final_due_at"),
            prelim_done.alias("preliminary_done"),
            final_done.alias("final_done"),
        )
        .with_columns(prelim_state.alias("preliminary_ok"), final_state.alias("final_ok"))
        .with_columns(deadline_status(sla_met(), sla_missed()).alias("sla_status"))
    )


def sla_met() -> pl.Expr:
    """The SLA met (never null), from the columns :func:`with_sla_status` adds.

    Emergency: the final in time. Routine: the preliminary and the final in time.
    """
    final_ok, preliminary_ok = pl.col("final_ok"), pl.col("preliminary_ok")
    return (
        pl.when(pl.col("emergency"))
        .then(final_ok)
        .otherwise(preliminary_ok & final_ok)
        .fill_null(False)
    )


def sla_missed() -> pl.Expr:
    """The SLA missed (never null): a step late, or its limit passed without it."""
    final_ok, preliminary_ok = pl.col("final_ok"), pl.col("preliminary_ok")
    return (
        pl.when(pl.col("emergency"))
        .then(~final_ok)
        .otherwise(~preliminary_ok | ~final_ok)
        .fill_null(False)
    )


def sla_compliance(frames: Frames, *, now: datetime, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """SLA compliance per group: total, met, missed, pending, decided, rate (null if none)."""
    outcomes = sla_outcomes(frames, now=now)
    keys = group_columns(outcomes, by, metric="SLA compliance")
    return deadline_summary(outcomes, keys, "sla_status")


def overdue(frames: Frames, *, now: datetime) -> pl.DataFrame:
    """Studies past an SLA limit at ``now`` with the step still not done, most overdue first.

    ``step`` is the missing step (preliminary or final) and ``due_at`` its limit.
    A step done late is not overdue: it shows in compliance, not here.
    """
    now = aware_utc(now)
    outcomes = sla_outcomes(frames, now=now)
    waiting_preliminary = outcomes.filter(
        ~pl.col("emergency") & ~pl.col("preliminary_done") & (pl.col("preliminary_due_at") < now)
    ).with_columns(
        pl.lit("preliminary").alias("step"), pl.col("preliminary_due_at").alias("due_at")
    )
    waiting_final = outcomes.filter(
        pl.col("final_due_at").is_not_null()
        & ~pl.col("final_done")
        & (pl.col("final_due_at") < now)
    ).with_columns(pl.lit("final").alias("step"), pl.col("final_due_at").alias("due_at"))
    columns = [
        "study_id",
        "accession_number",
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        "priority",
        "report_id",
        "author_id",
        "completed_at",
        "preliminary_at",
        "step",
        "due_at",
    ]
    late = pl.concat(
        [waiting_preliminary.select(columns), waiting_final.select(columns)], how="vertical"
    )
    return late.with_columns(
        ((pl.lit(now) - pl.col("due_at")).dt.total_seconds(fractional=True) / 60.0).alias(
            "overdue_minutes"
        )
    ).sort(["due_at", "study_id"])


def emergency_reports(
    frames: Frames,
    *,
    now: datetime,
    by: Sequence[Dimension] = (),
    within_minutes: int = EMERGENCY_REPORT_MINUTES,
) -> pl.DataFrame:
    """Emergency studies finalised within 2 h of arrival: total, met, missed, pending, rate."""
    now = aware_utc(now)
    judged = (
        reading_population(frames)
        .filter(is_emergency())
        .with_columns(emergency_status(now, within_minutes=within_minutes).alias("status"))
    )
    keys = group_columns(judged, by, metric="emergency reports")
    return deadline_summary(judged, keys, "status")
