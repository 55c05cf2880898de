"""What every metric shares: the window and filters, local time keys, breakdowns, shares.

A metric picks the rows whose *own* anchor (arrival, finalisation, flagging,
decision…) lies in the window, applies the filters, adds the local time keys
of that anchor, and aggregates by the requested dimensions. With no
dimensions it still returns one row, so an empty selection reads as counts
of 0 and rates of null rather than as a missing row or a division by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

import polars as pl

from integration.metrics_frames import Filters, Frames

# Row-level rules are written once for both: eager frames (pages) and lazy scans (province KPIs).
Table = TypeVar("Table", pl.DataFrame, pl.LazyFrame)

Dimension = Literal[
    "reading_centre",
    "clinic",
    "modality",
    "exam_type",
    "radiologist",
    "auditor",
    "station",
    "priority",
    "technologist",
    "clinician",
    "reason",
    "expert_centre",
    "hour",
    "day",
    "month",
    "half_year",
]

DIMENSION_COLUMNS: dict[str, str] = {
    "reading_centre": "reading_centre_id",
    "clinic": "clinic_id",
    "modality": "modality",
    "exam_type": "exam_type_id",
    "radiologist": "author_id",
    "auditor": "auditor_id",
    "station": "station_name",
    "priority": "priority",
    "technologist": "technologist",
    "clinician": "clinician",
    "reason": "refusal_reason",
    "expert_centre": "expert_centre_id",
    "hour": "hour",
    "day": "day",
    "month": "month",
    "half_year": "half_year",
}


@dataclass(frozen=True)
class Share:
    """A rate with the counts behind it, so small samples stay visible; None: nothing to divide."""

    numerator: int
    denominator: int
    rate: float | None

    @classmethod
    def of(cls, numerator: int, denominator: int) -> Share:
        return cls(numerator, denominator, numerator / denominator if denominator else None)


def aware_utc(moment: datetime) -> datetime:
    """``now`` and window bounds in UTC, the frames' zone; a naive time is refused."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware value")
    return moment.astimezone(UTC)


def filter_expression(filters: Filters) -> pl.Expr:
    """The filters over the four scope columns every frame carries."""
    expression = pl.lit(True)
    if filters.reading_centre_ids is not None:
        expression &= pl.col("reading_centre_id").is_in(sorted(filters.reading_centre_ids))
    if filters.clinic_ids is not None:
        expression &= pl.col("clinic_id").is_in(sorted(filters.clinic_ids))
    if filters.modalities is not None:
        expression &= pl.col("modality").is_in(sorted(str(m) for m in filters.modalities))
    if filters.exam_type_ids is not None:
        expression &= pl.col("exam_type_id").is_in(sorted(filters.exam_type_ids))
    return expression.fill_null(False)


def in_window(frames: Frames, column: str) -> pl.Expr:
    """[start, end): a timestamp on the end belongs to the next window."""
    value = pl.col(column)
    return ((value >= frames.start) & (value < frames.end)).fill_null(False)


def with_time_keys(data: pl.DataFrame, anchor: str, zone: str) -> pl.DataFrame:
    """Local hour, day, month (YYYY-MM) and half-year (YYYY-H1/H2) of the anchor.

    The labels are formatted once per distinct day and mapped onto the rows:
    formatting text on every row was most of a dashboard page's time.
    """
    local = pl.col(anchor).dt.convert_time_zone(zone).dt.replace_time_zone(None)
    keyed = (
        data.with_columns(local.alias("_local"))  # the zone's rules applied once per row
        .with_columns(
            pl.col("_local").dt.hour().cast(pl.Int64).alias("hour"),
            pl.col("_local").cast(pl.Date).alias("day"),
        )
        .drop("_local")
    )
    day = pl.col("day")
    labels = keyed.select(day.unique().drop_nulls()).with_columns(
        day.dt.strftime("%Y-%m").alias("month"),
        pl.format(
            "{}-H{}",
            day.dt.year(),
            pl.when(day.dt.month() <= 6).then(pl.lit(1)).otherwise(pl.lit(2)),
        ).alias("half_year"),
    )
    days = labels["day"]
    return keyed.with_columns(
        *(
            day.replace_strict(days, labels[name], default=None, return_dtype=pl.String).alias(name)
            for name in ("month", "half_year")
        )
    )


def scoped(frames: Frames, data: pl.DataFrame, anchor: str) -> pl.DataFrame:
    """The rows whose anchor is in the window and that pass the filters, with time keys.

    Worked out once per frame and anchor when ``data`` is one of the frames' own.
    """
    for name in OWN_FRAMES:
        if data is getattr(frames, name):
            return frames.derived(("scoped", name, anchor), lambda: _scoped(frames, data, anchor))
    return _scoped(frames, data, anchor)


def scoped_where(frames: Frames, data: pl.DataFrame, anchor: str, where: pl.Expr) -> pl.DataFrame:
    """:func:`scoped` with a further condition, in one pass (one copy of the rows, not two)."""
    return _scoped(frames, data, anchor, where)


OWN_FRAMES = ("studies", "qc_events", "critical_results", "decisions", "cards", "consultations")


def _scoped(
    frames: Frames, data: pl.DataFrame, anchor: str, where: pl.Expr | None = None
) -> pl.DataFrame:
    condition = in_window(frames, anchor) & filter_expression(frames.filters)
    if where is not None:
        condition &= where.fill_null(False)
    kept = data.filter(condition)
    return with_time_keys(kept, anchor, frames.zone)


def group_columns(data: pl.DataFrame, by: Sequence[Dimension], *, metric: str) -> list[str]:
    """Columns for the requested dimensions; a dimension the metric lacks is an error."""
    columns: list[str] = []
    for dimension in by:
        column = DIMENSION_COLUMNS.get(dimension)
        if column is None or column not in data.columns:
            usable = sorted(d for d, c in DIMENSION_COLUMNS.items() if c in data.columns)
            raise ValueError(
                f"{metric} cannot be broken down by {dimension!r}; use one of {', '.join(usable)}"
            )
        if column not in columns:
            columns.append(column)
    return columns


def aggregate(data: pl.DataFrame, columns: Sequence[str], aggs: Sequence[pl.Expr]) -> pl.DataFrame:
    """One row per group; with no groups one row even when ``data`` is empty."""
    if not columns:
        return data.select(aggs)
    return data.group_by(list(columns)).agg(aggs).sort(list(columns), nulls_last=True)


def count(condition: pl.Expr, name: str) -> pl.Expr:
    """How many rows meet ``condition``; an unknown (null) condition does not count."""
    return condition.fill_null(False).sum().cast(pl.Int64).alias(name)


def rows(name: str) -> pl.Expr:
    """How many rows, as Int64 like every other count (polars counts in UInt32)."""
    return pl.len().cast(pl.Int64).alias(name)


def ratio(numerator: str, denominator: str) -> pl.Expr:
    """numerator ÷ denominator, null (not NaN, not an error) when the denominator is 0."""
    return (
        pl.when(pl.col(denominator) > 0)
        .then(pl.col(numerator) / pl.col(denominator))
        .otherwise(None)
        .cast(pl.Float64)
    )


def minutes(start: str, end: str) -> pl.Expr:
    """Minutes from ``start`` to ``end`` (fractional); null when either is missing."""
    return (pl.col(end) - pl.col(start)).dt.total_seconds(fractional=True) / 60.0


def deadline_summary(data: pl.DataFrame, keys: Sequence[str], status: str) -> pl.DataFrame:
    """total, met, missed, pending and rate = met ÷ (met + missed) of a status column."""
    summary = aggregate(
        data,
        keys,
        [
            rows("total"),
            count(pl.col(status) == "met", "met"),
            count(pl.col(status) == "missed", "missed"),
            count(pl.col(status) == "pending", "pending"),
        ],
    )
    return summary.with_columns((pl.col("met") + pl.col("missed")).alias("decided")).with_columns(
        ratio("met", "decided").alias("rate")
    )


def deadline_status(met: pl.Expr, missed: pl.Expr) -> pl.Expr:
    """met / missed / pending from two exclusive, never-null conditions.

    The rules give the conditions rather than the text, so a province-scale
    count sums booleans instead of building and comparing ten million strings.
    """
    return (
        pl.when(met)
        .then(pl.lit("met"))
        .when(missed)
        .then(pl.lit("missed"))
        .otherwise(pl.lit("pending"))
    )


def share_of(data: pl.DataFrame, numerator: str, denominator: str) -> Share:
    """A one-row aggregate as a Share."""
    row = data.row(0, named=True)
    return Share.of(int(row[numerator]), int(row[denominator]))


def flag(column: str) -> pl.Expr:
    """A nullable boolean column read as False when unknown."""
    return pl.col(column).fill_null(False)
