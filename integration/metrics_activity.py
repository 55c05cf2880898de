"""Volume, CT/MR station utilisation and consultations.

* Volume: exams (studies of the region) performed in the window, by the local
  day, clinic, modality, device (``study.station_name``)… of when they were
  performed (``started_at``, else when the hub first received them). A
  rejected study and its retake are two exams.
* Utilisation: busy minutes of each CT/MR station per local day ÷ an 8-hour
  day. An exam's busy time is ``started_at`` → ``last_instance_at`` (the
  acquisition as the hub saw it). Where that is degenerate — no start, not
  positive, or longer than 3 h (a late upload, not a scan) — a fixed time per
  exam by modality stands in (CT 15 min, MR 40 min), and the row says how
  many exams were estimated. Overlapping exams are added up, not merged, so
  double-booked data shows as overload rather than hiding. Days from the
  first to the last day with any exam in the selection are listed for every
  station, a day without exams at 0 (idle). Flags: idle < 20 %, overloaded > 90 %.
* Consultations: requested in the window, answered, cancelled, still open,
  median minutes from request to answer, by the asking centre.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from integration.metrics_common import (
    Dimension,
    aggregate,
    count,
    group_columns,
    minutes,
    ratio,
    rows,
    scoped,
)
from integration.metrics_frames import Frames
from models.enums import ConsultationStatus

UTILISATION_MODALITIES = ("CT", "MR")
MINUTES_PER_EXAM: Mapping[str, float] = {"CT": 15.0, "MR": 40.0}
WORKING_DAY_MINUTES = 8 * 60
LONGEST_PLAUSIBLE_EXAM_MINUTES = 180.0
IDLE_BELOW = 0.20
OVERLOADED_ABOVE = 0.90
STATION_KEYS = ("clinic_id", "station_name", "modality")


def performed_exams(frames: Frames) -> pl.DataFrame:
    """Studies performed in the window, keyed by the local time they were performed."""
    return frames.derived("performed_exams", lambda: _performed_exams(frames))


def _performed_exams(frames: Frames) -> pl.DataFrame:
    studies = frames.studies.with_columns(
        pl.coalesce("started_at", "received_at").alias("performed_at"),
        pl.col("station_name").fill_null(""),
    )
    return scoped(frames, studies, "performed_at")


def volume(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """Exams per group, e.g. ``by=("day", "clinic")`` or ``("station",)`` for devices."""
    exams = performed_exams(frames)
    keys = group_columns(exams, by, metric="volume")
    return aggregate(exams, keys, [rows("exams")])


def utilisation(
    frames: Frames,
    *,
    modalities: Sequence[str] = UTILISATION_MODALITIES,
    minutes_per_exam: Mapping[str, float] = MINUTES_PER_EXAM,
    day_minutes: float = WORKING_DAY_MINUTES,
    longest_plausible_minutes: float = LONGEST_PLAUSIBLE_EXAM_MINUTES,
    idle_below: float = IDLE_BELOW,
    overloaded_above: float = OVERLOADED_ABOVE,
) -> pl.DataFrame:
    """Per station and local day: exams, estimated, busy_minutes, utilisation, flag."""
    missing = [m for m in modalities if m not in minutes_per_exam]
    if missing:
        raise ValueError(f"no minutes per exam for {', '.join(missing)}")
    if day_minutes <= 0:
        raise ValueError("the working day must have some minutes")
    exams = performed_exams(frames).filter(pl.col("modality").is_in(list(modalities)))
    measured = minutes("started_at", "last_instance_at")
    degenerate = (
        measured.is_null() | (measured <= 0) | (measured > longest_plausible_minutes)
    ).fill_null(True)
    estimate = pl.col("modality").replace_strict(
        dict(minutes_per_exam), default=None, return_dtype=pl.Float64
    )
    timed = exams.with_columns(degenerate.alias("estimated")).with_columns(
        pl.when(pl.col("estimated")).then(estimate).otherwise(measured).alias("busy")
    )
    per_day = timed.group_by([*STATION_KEYS, "day"]).agg(
        rows("exams"),
        count(pl.col("estimated"), "estimated"),
        pl.col("busy").sum().alias("busy_minutes"),
    )
    if per_day.is_empty():
        grid = per_day.select([*STATION_KEYS, "day"])
    else:
        days = per_day.select(
            pl.date_range(pl.col("day").min(), pl.col("day").max(), interval="1d").alias("day")
        )
        grid = per_day.select(STATION_KEYS).unique().join(days, how="cross")
    full = grid.join(per_day, on=[*STATION_KEYS, "day"], how="left", nulls_equal=True).with_columns(
        pl.col("exams").fill_null(0),
        pl.col("estimated").fill_null(0),
        pl.col("busy_minutes").fill_null(0.0),
    )
    share = pl.col("busy_minutes") / day_minutes
    return (
        full.with_columns(share.alias("utilisation"))
        .with_columns(
            pl.when(pl.col("utilisation") < idle_below)
            .then(pl.lit("idle"))
            .when(pl.col("utilisation") > overloaded_above)
            .then(pl.lit("overloaded"))
            .otherwise(pl.lit("normal"))
            .alias("flag")
        )
        .sort([*STATION_KEYS, "day"], nulls_last=True)
    )


def consultations(frames: Frames, *, by: Sequence[Dimension] = ()) -> pl.DataFrame:
    """requested, answered, cancelled, open, answer_rate, median_answer_minutes per group.

    "reading_centre" is the centre that asked, "expert_centre" the one asked.
    """
    asked = scoped(frames, frames.consultations, "requested_at").with_columns(
        minutes("requested_at", "answered_at").alias("answer_minutes")
    )
    answered = pl.col("answered_at").is_not_null()
    cancelled = pl.col("status") == ConsultationStatus.cancelled.value
    keys = group_columns(asked, by, metric="consultations")
    summary = aggregate(
        asked,
        keys,
        [
            rows("requested"),
            count(answered, "answered"),
            count(cancelled & ~answered, "cancelled"),
            count(~answered & ~cancelled.fill_null(False), "open"),
            pl.col("answer_minutes").median().alias("median_answer_minutes"),
        ],
    )
    return summary.with_columns(ratio("answered", "requested").alias("answer_rate"))
