"""The data behind each analytics page: the tables its charts draw, as polars frames.

Two layers. The ``*_page`` functions are pure over :class:`Frames` (no SQL,
no clock: ``now`` is passed in) and return a frozen dataclass of
DataFrames, one per chart or table on the page. :class:`Dashboards` is what
the portal calls: it takes the frames from an :class:`AnalyticsStore`
(a Parquet snapshot, cached per filter set), adds facility names, and calls
the page function.

Pages and their tables (ids are facility / user / exam type ids; a ``*_name``
column is added when names are known; every rate carries its counts and is
null when there is nothing to divide):

* leader: key figures of the month beside the month before (with the
  change: points for rates, relative for amounts), SLA compliance per month,
  the distribution of arrival → final minutes in the month, correction rate
  per reading centre, recognition savings per month;
* turnaround: each step's median/p90/p95 overall and per centre, SLA per
  centre, per hour of day and per month, the overdue list;
* quality: the QC indicators, corrections per centre, radiologist and month,
  retakes per clinic and technologist, image grades per clinic, critical
  results per centre, CT/MR positive rate per modality;
* recognition: the summary, the monthly trend, refusals per reason, per clinic
  and per clinician, recognition per clinic;
* equipment: exams per day and modality, per station, CT/MR utilisation per
  station (mean, idle and overloaded days) and per station-day;
* consultations: per asking centre, per expert centre, per month;
* settlement: per reading hospital and per clinic per half-year, totals.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl
from sqlalchemy import select

from integration.analytics_store import AnalyticsStore
from integration.kpi import Figure, month_days
from integration.kpi_lazy import frames_as_tables, lazy_figures
from integration.metrics import (
    consultations,
    corrections,
    critical_notifications,
    image_quality,
    overdue,
    positive_rate,
    qc_indicators,
    reading_population,
    recognition,
    refusals,
    retake_rate,
    settlement,
    sla_compliance,
    turnaround,
    utilisation,
    volume,
)
from integration.metrics_common import Share, minutes
from integration.metrics_frames import NO_FILTERS, Filters, Frames, local_days
from integration.settings import Settings
from models import metadata

TURNAROUND_BUCKETS = (0, 15, 30, 45, 60, 90, 120, 240)  # minutes; the last bucket is open
NAMED_COLUMNS = {
    "reading_centre_id": "reading_centre_name",
    "clinic_id": "clinic_name",
    "expert_centre_id": "expert_centre_name",
}


@dataclass(frozen=True)
class Period:
    """A window of whole local days [first 00:00, the day after last 00:00)."""

    first: date
    last: date
    zone: str

    @classmethod
    def month(cls, month: str, zone: str) -> Period:
        first, last = month_days(month)
        return cls(first, last, zone)

    @property
    def window(self) -> tuple[datetime, datetime]:
        return local_days(self.first, self.last, self.zone)

    def months_back(self, count: int) -> Period:
        """From the first day of the month ``count - 1`` months before ``first`` to ``last``."""
        year, month = self.first.year, self.first.month - (count - 1)
        while month < 1:
            year, month = year - 1, month + 12
        return Period(date(year, month, 1), self.last, self.zone)


def narrowed(frames: Frames, start: datetime, end: datetime) -> Frames:
    """The same rows seen through a window inside theirs: each metric keeps its own anchors."""
    if start < frames.start or end > frames.end:
        raise ValueError("a narrowed window must lie inside the frames' window")
    return dataclasses.replace(frames, start=start, end=end)


def named(data: pl.DataFrame, names: Mapping[int, str]) -> pl.DataFrame:
    """Add ``*_name`` beside each facility id column (null where the id is unknown)."""
    if not names:
        return data
    lookup = pl.DataFrame(
        {"id": list(names), "name": list(names.values())},
        schema={"id": pl.Int64, "name": pl.String},
    )
    for column, name in NAMED_COLUMNS.items():
        if column in data.columns:
            data = data.join(
                lookup.rename({"id": column, "name": name}), on=column, how="left"
            ).select(*data.columns, name)
    return data


# ------------------------------------------------------------------ leader


@dataclass(frozen=True, eq=False)
class LeaderDashboard:
    month: str
    previous: str
    key_figures: pl.DataFrame
    sla_trend: pl.DataFrame
    turnaround_distribution: pl.DataFrame
    correction_by_centre: pl.DataFrame
    recognition_savings: pl.DataFrame


def _previous_month(month: str) -> str:
    first, _ = month_days(month)
    before = first - timedelta(days=1)
    return f"{before.year:04d}-{before.month:02d}"


def change(this: Figure, before: Figure) -> float | None:
    """Rates: the difference (0.02 = 2 points); other figures: relative change; None: no base."""
    if this.value is None or before.value is None:
        return None
    if this.unit == "rate":
        return this.value - before.value
    if before.value == 0:
        return None
    return (this.value - before.value) / before.value


def key_figure_table(this: Sequence[Figure], before: Sequence[Figure]) -> pl.DataFrame:
    """One row per key figure: value and counts of this month and the one before, change."""
    rows = []
    for now_figure, old_figure in zip(this, before, strict=True):
        rows.append(
            {
                "key": now_figure.key,
                "label": now_figure.label,
                "unit": now_figure.unit,
                "value": now_figure.value,
                "numerator": now_figure.counts[0] if now_figure.counts else None,
                "denominator": now_figure.counts[1] if now_figure.counts else None,
                "previous": old_figure.value,
                "previous_numerator": old_figure.counts[0] if old_figure.counts else None,
                "previous_denominator": old_figure.counts[1] if old_figure.counts else None,
                "change": change(now_figure, old_figure),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "key": pl.String,
            "label": pl.String,
            "unit": pl.String,
            "value": pl.Float64,
            "numerator": pl.Int64,
            "denominator": pl.Int64,
            "previous": pl.Float64,
            "previous_numerator": pl.Int64,
            "previous_denominator": pl.Int64,
            "change": pl.Float64,
        },
    )


def turnaround_distribution(
    frames: Frames, *, buckets: Sequence[int] = TURNAROUND_BUCKETS
) -> pl.DataFrame:
    """Studies per band of arrival → final minutes: bucket label, lower, upper, studies, share."""
    finals = (
        reading_population(frames)
        .select(minutes("completed_at", "finalised_at").alias("minutes"))
        .drop_nulls()
    )
    bounds = list(buckets)
    labels = [f"{low}-{high}" for low, high in itertools.pairwise(bounds)]
    labels.append(f">{bounds[-1]}")
    counts = []
    values = finals["minutes"]
    for index, low in enumerate(bounds):
        high = bounds[index + 1] if index + 1 < len(bounds) else None
        inside = values >= low if high is None else (values >= low) & (values < high)
        counts.append(int(inside.sum()))
    total = sum(counts)
    return pl.DataFrame(
        {
            "bucket": labels,
            "lower_minutes": bounds,
            "upper_minutes": [*bounds[1:], None],
            "studies": counts,
            "share": [count / total if total else None for count in counts],
        },
        schema={
            "bucket": pl.String,
            "lower_minutes": pl.Int64,
            "upper_minutes": pl.Int64,
            "studies": pl.Int64,
            "share": pl.Float64,
        },
    )


def leader_page(
    frames: Frames,
    *,
    month: str,
    now: datetime,
    settings: Settings,
    names: Mapping[int, str] | None = None,
) -> LeaderDashboard:
    """The leader's dashboard for ``month``; the frames' window gives the trends' months.

    The frames must cover ``month`` and the month before (figures beside it).
    """
    names = names or {}
    previous = _previous_month(month)
    this_window = local_days(*month_days(month), frames.zone)
    before_window = local_days(*month_days(previous), frames.zone)
    this_frames = narrowed(frames, *this_window)
    narrowed(frames, *before_window)  # the frames must reach back to the month before
    tables = frames_as_tables(frames)  # both months' figures in one lazy pass each

    def key_figures(window: tuple[datetime, datetime]) -> tuple[Figure, ...]:
        return lazy_figures(
            tables, start=window[0], end=window[1], filters=frames.filters, settings=settings,
            now=now, calendar=frames.calendar,
        )  # fmt: skip

    table = key_figure_table(key_figures(this_window), key_figures(before_window))
    savings = recognition(frames, by=("month",)).select(
        "month",
        "prompts",
        "decisions",
        "accepted",
        "refused",
        "recognition_rate",
        "exams_saved",
        "avoided_fee_fen",
    )
    return LeaderDashboard(
        month=month,
        previous=previous,
        key_figures=table,
        sla_trend=sla_compliance(frames, now=now, by=("month",)),
        turnaround_distribution=turnaround_distribution(this_frames),
        correction_by_centre=named(corrections(this_frames, by=("reading_centre",)), names),
        recognition_savings=savings,
    )


# ------------------------------------------------------------------ turnaround


@dataclass(frozen=True, eq=False)
class TurnaroundPage:
    steps: pl.DataFrame
    steps_by_centre: pl.DataFrame
    sla_by_centre: pl.DataFrame
    sla_by_hour: pl.DataFrame
    sla_by_month: pl.DataFrame
    overdue: pl.DataFrame


def turnaround_page(
    frames: Frames, *, now: datetime, names: Mapping[int, str] | None = None
) -> TurnaroundPage:
    names = names or {}
    return TurnaroundPage(
        steps=turnaround(frames),
        steps_by_centre=named(turnaround(frames, by=("reading_centre",)), names),
        sla_by_centre=named(sla_compliance(frames, now=now, by=("reading_centre",)), names),
        sla_by_hour=sla_compliance(frames, now=now, by=("hour",)),
        sla_by_month=sla_compliance(frames, now=now, by=("month",)),
        overdue=named(overdue(frames, now=now), names),
    )


# ------------------------------------------------------------------ quality


@dataclass(frozen=True, eq=False)
class QualityPage:
    indicators: pl.DataFrame
    corrections_by_centre: pl.DataFrame
    corrections_by_radiologist: pl.DataFrame
    corrections_by_month: pl.DataFrame
    retakes_by_clinic: pl.DataFrame
    retakes_by_technologist: pl.DataFrame
    image_grades_by_clinic: pl.DataFrame
    critical_by_centre: pl.DataFrame
    positive_rate_by_modality: pl.DataFrame


INDICATOR_LABELS = {
    "emergency_report_within_2h": "急诊报告2小时内完成率",
    "critical_notified_within_10min": "危急值10分钟内通报率",
    "report_writing_compliance": "报告书写合格率",
    "image_artefact_rate": "图像伪影率",
    "a_grade_rate": "甲级片率",
    "sla_compliance": "时限达标率",
    "correction_rate": "报告修正率",
    "retake_rate": "重拍率",
    "positive_rate_ct_mr": "CT/MR阳性率",
}


def indicator_table(frames: Frames, *, now: datetime) -> pl.DataFrame:
    """The QC indicators, one row each: key, label, numerator, denominator, rate."""
    indicators = qc_indicators(frames, now=now)
    rows = []
    for key, label in INDICATOR_LABELS.items():
        share: Share = getattr(indicators, key)
        rows.append(
            {
                "key": key,
                "label": label,
                "numerator": share.numerator,
                "denominator": share.denominator,
                "rate": share.rate,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "key": pl.String,
            "label": pl.String,
            "numerator": pl.Int64,
            "denominator": pl.Int64,
            "rate": pl.Float64,
        },
    )


def quality_page(
    frames: Frames, *, now: datetime, names: Mapping[int, str] | None = None
) -> QualityPage:
    names = names or {}
    return QualityPage(
        indicators=indicator_table(frames, now=now),
        corrections_by_centre=named(corrections(frames, by=("reading_centre",)), names),
        corrections_by_radiologist=corrections(frames, by=("radiologist",)),
        corrections_by_month=corrections(frames, by=("month",)),
        retakes_by_clinic=named(retake_rate(frames, by=("clinic",)), names),
        retakes_by_technologist=retake_rate(frames, by=("technologist",)),
        image_grades_by_clinic=named(image_quality(frames, by=("clinic",)), names),
        critical_by_centre=named(
            critical_notifications(frames, now=now, by=("reading_centre",)), names
        ),
        positive_rate_by_modality=positive_rate(frames, by=("modality",)),
    )


# ------------------------------------------------------------------ recognition


@dataclass(frozen=True, eq=False)
class RecognitionPage:
    summary: pl.DataFrame
    by_month: pl.DataFrame
    by_clinic: pl.DataFrame
    refusals_by_reason: pl.DataFrame
    refusals_by_clinic: pl.DataFrame
    refusals_by_clinician: pl.DataFrame


def recognition_page(frames: Frames, *, names: Mapping[int, str] | None = None) -> RecognitionPage:
    names = names or {}
    return RecognitionPage(
        summary=recognition(frames),
        by_month=recognition(frames, by=("month",)),
        by_clinic=named(recognition(frames, by=("clinic",)), names),
        refusals_by_reason=refusals(frames, by=("reason",)),
        refusals_by_clinic=named(refusals(frames, by=("clinic",)), names),
        refusals_by_clinician=refusals(frames, by=("clinician",)),
    )


# ------------------------------------------------------------------ equipment


@dataclass(frozen=True, eq=False)
class EquipmentPage:
    volume_by_day: pl.DataFrame
    volume_by_station: pl.DataFrame
    utilisation_by_station: pl.DataFrame
    utilisation_by_day: pl.DataFrame


def station_summary(daily: pl.DataFrame) -> pl.DataFrame:
    """Per CT/MR station: days, exams, mean utilisation, idle and overloaded days."""
    keys = ["clinic_id", "station_name", "modality"]
    return (
        daily.group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("days"),
            pl.col("exams").sum().cast(pl.Int64).alias("exams"),
            pl.col("utilisation").mean().alias("mean_utilisation"),
            (pl.col("flag") == "idle").sum().cast(pl.Int64).alias("idle_days"),
            (pl.col("flag") == "overloaded").sum().cast(pl.Int64).alias("overloaded_days"),
        )
        .sort(keys, nulls_last=True)
    )


def equipment_page(frames: Frames, *, names: Mapping[int, str] | None = None) -> EquipmentPage:
    names = names or {}
    daily = utilisation(frames)
    return EquipmentPage(
        volume_by_day=volume(frames, by=("day", "modality")),
        volume_by_station=named(volume(frames, by=("clinic", "station", "modality")), names),
        utilisation_by_station=named(station_summary(daily), names),
        utilisation_by_day=named(daily, names),
    )


# ------------------------------------------------------------------ consultations


@dataclass(frozen=True, eq=False)
class ConsultationsPage:
    by_centre: pl.DataFrame
    by_expert_centre: pl.DataFrame
    by_month: pl.DataFrame


def consultations_page(
    frames: Frames, *, names: Mapping[int, str] | None = None
) -> ConsultationsPage:
    names = names or {}
    return ConsultationsPage(
        by_centre=named(consultations(frames, by=("reading_centre",)), names),
        by_expert_centre=named(consultations(frames, by=("expert_centre",)), names),
        by_month=consultations(frames, by=("month",)),
    )


# ------------------------------------------------------------------ settlement


@dataclass(frozen=True, eq=False)
class SettlementPage:
    by_reading_centre: pl.DataFrame
    by_clinic: pl.DataFrame
    totals: pl.DataFrame


def settlement_page(
    frames: Frames, *, settings: Settings, names: Mapping[int, str] | None = None
) -> SettlementPage:
    names = names or {}
    statement = settlement(frames, settings=settings)
    totals = pl.DataFrame(
        {
            "reports": [statement.reports],
            "body_parts": [statement.body_parts],
            "amount_fen": [statement.amount_fen],
            "clinic_fen": [statement.clinic_fen],
            "bureau_fen": [statement.bureau_fen],
        },
        schema={c: pl.Int64 for c in ("reports", "body_parts", "amount_fen", "clinic_fen",
                                      "bureau_fen")},
    )  # fmt: skip
    return SettlementPage(
        by_reading_centre=named(statement.by_reading_centre, names),
        by_clinic=named(statement.by_clinic, names),
        totals=totals,
    )


# ------------------------------------------------------------------ the portal's entry


def facility_names(store: AnalyticsStore) -> dict[int, str]:
    facility = metadata.tables["facility"]
    with store.engine.connect() as connection:
        rows = connection.execute(select(facility.c.id, facility.c.name)).all()
    return {int(row.id): str(row.name) for row in rows}


class Dashboards:
    """Each page's data for a period and filters, from the store's snapshot.

    The portal keeps one (with its store) for the process; every call reads
    the frames of the period from the store (cached per filter set).
    """

    def __init__(self, store: AnalyticsStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _frames(self, period: Period, filters: Filters) -> Frames:
        return self.store.frames(*period.window, filters, lean=True)

    def leader(
        self,
        month: str,
        filters: Filters = NO_FILTERS,
        *,
        now: datetime,
        trend_months: int = 12,
    ) -> LeaderDashboard:
        period = Period.month(month, self.settings.timezone).months_back(max(trend_months, 2))
        return leader_page(
            self._frames(period, filters),
            month=month,
            now=now,
            settings=self.settings,
            names=facility_names(self.store),
        )

    def turnaround(
        self, period: Period, filters: Filters = NO_FILTERS, *, now: datetime
    ) -> TurnaroundPage:
        frames = self._frames(period, filters)
        return turnaround_page(frames, now=now, names=facility_names(self.store))

    def quality(
        self, period: Period, filters: Filters = NO_FILTERS, *, now: datetime
    ) -> QualityPage:
        frames = self._frames(period, filters)
        return quality_page(frames, now=now, names=facility_names(self.store))

    def recognition(self, period: Period, filters: Filters = NO_FILTERS) -> RecognitionPage:
        return recognition_page(self._frames(period, filters), names=facility_names(self.store))

    def equipment(self, period: Period, filters: Filters = NO_FILTERS) -> EquipmentPage:
        return equipment_page(self._frames(period, filters), names=facility_names(self.store))

    def consultations(self, period: Period, filters: Filters = NO_FILTERS) -> ConsultationsPage:
        return consultations_page(self._frames(period, filters), names=facility_names(self.store))

    def settlement(self, period: Period, filters: Filters = NO_FILTERS) -> SettlementPage:
        return settlement_page(
            self._frames(period, filters),
            settings=self.settings,
            names=facility_names(self.store),
        )
