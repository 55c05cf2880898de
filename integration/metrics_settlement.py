"""Settlement: a fee per body part per final report, shared by the clinic and the bureau.

Every report finalised in the window is one line (later amendments add no
line): body parts (the exam type's count, else the order's, else 1) × the
tariff in force on the local day of sign-off. The clinic where the images were
taken pays ``clinic_share_fen`` per body part, the bureau the rest. Lines are
totalled per reading hospital (the report's reading centre) and per clinic,
each per half-year (H1 January-June, H2 July-December, local time). Amounts
are integer fen, so the statements add up to the fen with the lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from integration.metrics_common import scoped
from integration.metrics_frames import Frames
from integration.settings import Settings
from models.enums import ReportStatus

SIGNED_STATUSES = (
    ReportStatus.final.value,
    ReportStatus.amended.value,
    ReportStatus.corrected.value,
)
LINE_KEYS = (
    "report_id",
    "study_id",
    "accession_number",
    "reading_centre_id",
    "clinic_id",
    "exam_type_id",
    "modality",
    "finalised_at",
    "day",
    "half_year",
)
TOTAL_COLUMNS = ("reports", "body_parts", "amount_fen", "clinic_fen", "bureau_fen")


@dataclass(frozen=True)
class TariffPeriod:
    """The rate per body part, and the clinic's part of it, from ``valid_from`` (local day)."""

    valid_from: date
    rate_fen: int
    clinic_share_fen: int

    def __post_init__(self) -> None:
        if self.rate_fen < 0 or self.clinic_share_fen < 0:
            raise ValueError("tariff amounts cannot be negative")
        if self.clinic_share_fen > self.rate_fen:
            raise ValueError("the clinic's share cannot exceed the rate")


def tariffs_from_settings(settings: Settings) -> tuple[TariffPeriod, ...]:
    """One period, for all time, from HUREN_SETTLEMENT_RATE_FEN and …_CLINIC_SHARE_FEN."""
    return (
        TariffPeriod(
            valid_from=date.min,
            rate_fen=settings.settlement_rate_fen,
            clinic_share_fen=settings.settlement_clinic_share_fen,
        ),
    )


@dataclass(frozen=True, eq=False)
class SettlementStatement:
    """The lines, the two statements built from them, and the grand totals (fen)."""

    lines: pl.DataFrame
    by_reading_centre: pl.DataFrame
    by_clinic: pl.DataFrame
    reports: int
    body_parts: int
    amount_fen: int
    clinic_fen: int
    bureau_fen: int


def _tariff_frame(tariffs: Sequence[TariffPeriod]) -> pl.DataFrame:
    if not tariffs:
        raise ValueError("settlement needs at least one tariff period")
    starts = [t.valid_from for t in tariffs]
    if len(set(starts)) != len(starts):
        raise ValueError("two tariff periods start on the same day")
    return pl.DataFrame(
        {
            "valid_from": starts,
            "rate_fen": [t.rate_fen for t in tariffs],
            "clinic_share_fen": [t.clinic_share_fen for t in tariffs],
        },
        schema={"valid_from": pl.Date, "rate_fen": pl.Int64, "clinic_share_fen": pl.Int64},
    ).sort("valid_from")


def settlement_lines(frames: Frames, *, tariffs: Sequence[TariffPeriod]) -> pl.DataFrame:
    """One line per report finalised in the window, with its tariff and amounts in fen."""
    reports = (
        scoped(frames, frames.studies, "finalised_at")
        .filter(pl.col("report_id").is_not_null() & pl.col("report_status").is_in(SIGNED_STATUSES))
        .select(
            *LINE_KEYS, pl.col("body_part_count").fill_null(1).cast(pl.Int64).alias("body_parts")
        )
        .sort("day", "report_id")
    )
    priced = reports.join_asof(
        _tariff_frame(tariffs), left_on="day", right_on="valid_from", strategy="backward"
    )
    uncovered = priced.filter(pl.col("rate_fen").is_null())
    if not uncovered.is_empty():
        raise ValueError(f"no tariff period holds on {uncovered['day'][0]}")
    return (
        priced.with_columns(
            (pl.col("body_parts") * pl.col("rate_fen")).alias("amount_fen"),
            (pl.col("body_parts") * pl.col("clinic_share_fen")).alias("clinic_fen"),
        )
        .with_columns((pl.col("amount_fen") - pl.col("clinic_fen")).alias("bureau_fen"))
        .select(
            "report_id",
            "study_id",
            "accession_number",
            "reading_centre_id",
            "clinic_id",
            "exam_type_id",
            "modality",
            "finalised_at",
            "day",
            "half_year",
            "body_parts",
            "valid_from",
            "rate_fen",
            "clinic_share_fen",
            "amount_fen",
            "clinic_fen",
            "bureau_fen",
        )
        .sort("report_id")
    )


def _statement(lines: pl.DataFrame, key: str) -> pl.DataFrame:
    return (
        lines.group_by("half_year", key)
        .agg(
            pl.len().cast(pl.Int64).alias("reports"),
            *(pl.col(c).sum().cast(pl.Int64) for c in TOTAL_COLUMNS[1:]),
        )
        .sort("half_year", key, nulls_last=True)
    )


def settlement(
    frames: Frames, *, settings: Settings, tariffs: Sequence[TariffPeriod] | None = None
) -> SettlementStatement:
    """Statements per reading hospital and per clinic per half-year, with their lines.

    ``tariffs`` (each from its ``valid_from`` until the next one starts)
    default to the one period configured in ``settings``.
    """
    lines = settlement_lines(
        frames, tariffs=tariffs if tariffs is not None else tariffs_from_settings(settings)
    )
    return SettlementStatement(
        lines=lines,
        by_reading_centre=_statement(lines, "reading_centre_id"),
        by_clinic=_statement(lines, "clinic_id"),
        reports=lines.height,
        body_parts=int(lines["body_parts"].sum()),
        amount_fen=int(lines["amount_fen"].sum()),
        clinic_fen=int(lines["clinic_fen"].sum()),
        bureau_fen=int(lines["bureau_fen"].sum()),
    )
