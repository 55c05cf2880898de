"""Settlement statements: fen per body part, tariff periods, half-years, exact reconciliation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from integration.metrics import (
    Filters,
    TariffPeriod,
    build_frames,
    local_days,
    settlement,
    tariffs_from_settings,
)
from integration.settings import Settings

ZONE = ZoneInfo("Asia/Shanghai")
YEAR = local_days(date(2026, 1, 1), date(2026, 12, 31))
TARIFFS = (
    TariffPeriod(valid_from=date(2025, 1, 1), rate_fen=1000, clinic_share_fen=500),
    TariffPeriod(valid_from=date(2026, 7, 1), rate_fen=1200, clinic_share_fen=450),
)


def local(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def final(
    report_id: int,
    finalised: datetime | None,
    parts: int | None,
    *,
    centre: int = 1,
    clinic: int = 10,
    status: str = "final",
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "study_id": report_id,
        "accession_number": f"A{report_id}",
        "reading_centre_id": centre,
        "clinic_id": clinic,
        "modality": "CT",
        "exam_type_id": 100,
        "completed_at": (finalised or local(1, 1)) - timedelta(hours=1),
        "body_part_count": parts,
        "report_id": report_id,
        "report_status": status,
        "preliminary_at": (finalised or local(1, 1)) - timedelta(minutes=30),
        "finalised_at": finalised,
    }
    row.update(extra)
    return row


def test_statement_per_reading_hospital_and_clinic_per_half_year() -> None:
    # 30 June 16:30 UTC is 1 July 00:30 in Shanghai: H2, the new tariff
    boundary = datetime(2026, 6, 30, 16, 30, tzinfo=UTC)
    frames = build_frames(
        start=YEAR[0],
        end=YEAR[1],
        studies=[
            final(1, local(2, 1), 1),
            final(2, local(3, 1), 2, clinic=11),
            final(3, local(6, 30, 23, 59), 3, centre=2),
            final(4, boundary, 1),
            final(5, local(8, 1), 2, status="amended", amended_at=local(8, 2)),  # one line
            final(6, None, 1, status="preliminary"),  # not final: no line
            final(7, local(9, 1), None),  # no exam type nor order: 1 part
            final(8, local(12, 31, 23, 59), 1, centre=2),
            final(9, local(1, 1, 0, 0) - timedelta(seconds=1), 5),  # 2025: outside
        ],
    )
    statement = settlement(frames, settings=Settings(), tariffs=TARIFFS)
    lines = statement.lines
    assert lines["report_id"].to_list() == [1, 2, 3, 4, 5, 7, 8]
    amounts = lines.select("report_id", "half_year", "amount_fen", "clinic_fen", "bureau_fen")
    assert amounts.rows() == [
        (1, "2026-H1", 1000, 500, 500),
        (2, "2026-H1", 2000, 1000, 1000),
        (3, "2026-H1", 3000, 1500, 1500),
        (4, "2026-H2", 1200, 450, 750),
        (5, "2026-H2", 2400, 900, 1500),
        (7, "2026-H2", 1200, 450, 750),
        (8, "2026-H2", 1200, 450, 750),
    ]
    assert statement.by_reading_centre.rows() == [
        ("2026-H1", 1, 2, 3, 3000, 1500, 1500),
        ("2026-H1", 2, 1, 3, 3000, 1500, 1500),
        ("2026-H2", 1, 3, 4, 4800, 1800, 3000),
        ("2026-H2", 2, 1, 1, 1200, 450, 750),
    ]
    assert statement.by_clinic.rows() == [
        ("2026-H1", 10, 2, 4, 4000, 2000, 2000),
        ("2026-H1", 11, 1, 2, 2000, 1000, 1000),
        ("2026-H2", 10, 4, 5, 6000, 2250, 3750),
    ]
    assert (statement.reports, statement.body_parts) == (7, 11)
    assert (statement.amount_fen, statement.clinic_fen, statement.bureau_fen) == (
        12000,
        5250,
        6750,
    )
    _assert_reconciles(statement)


def _assert_reconciles(statement: Any) -> None:
    for table in (statement.lines, statement.by_reading_centre, statement.by_clinic):
        sums = table.select(pl.col("amount_fen", "clinic_fen", "bureau_fen").sum()).row(0)
        assert sums == (statement.amount_fen, statement.clinic_fen, statement.bureau_fen)
    assert statement.by_reading_centre["reports"].sum() == statement.reports
    assert statement.by_clinic["body_parts"].sum() == statement.body_parts
    assert statement.clinic_fen + statement.bureau_fen == statement.amount_fen


def test_default_tariff_comes_from_settings(tmp_path: Path) -> None:
    frames = build_frames(start=YEAR[0], end=YEAR[1], studies=[final(1, local(3, 1), 3)])
    configured = Settings(
        data_dir=tmp_path,
        settlement_rate_fen=1500,  # type: ignore[arg-type]
        settlement_clinic_share_fen=600,  # type: ignore[arg-type]
    )
    assert tariffs_from_settings(configured) == (
        TariffPeriod(valid_from=date.min, rate_fen=1500, clinic_share_fen=600),
    )
    statement = settlement(frames, settings=configured)
    assert (statement.amount_fen, statement.clinic_fen, statement.bureau_fen) == (4500, 1800, 2700)
    standard = settlement(frames, settings=Settings(data_dir=tmp_path))
    assert (standard.amount_fen, standard.clinic_fen, standard.bureau_fen) == (3000, 1500, 1500)


def test_tariff_errors_are_refused() -> None:
    frames = build_frames(start=YEAR[0], end=YEAR[1], studies=[final(1, local(3, 1), 1)])
    late_tariff = (TariffPeriod(valid_from=date(2026, 6, 1), rate_fen=1000, clinic_share_fen=0),)
    with pytest.raises(ValueError, match="2026-03-01"):
        settlement(frames, settings=Settings(), tariffs=late_tariff)
    with pytest.raises(ValueError, match="at least one"):
        settlement(frames, settings=Settings(), tariffs=())
    with pytest.raises(ValueError, match="same day"):
        settlement(frames, settings=Settings(), tariffs=(TARIFFS[0], TARIFFS[0]))
    with pytest.raises(ValueError, match="exceed"):
        TariffPeriod(valid_from=date(2026, 1, 1), rate_fen=100, clinic_share_fen=101)
    with pytest.raises(ValueError, match="negative"):
        TariffPeriod(valid_from=date(2026, 1, 1), rate_fen=-1, clinic_share_fen=0)


def test_no_final_reports_is_an_empty_statement() -> None:
    frames = build_frames(
        start=YEAR[0],
        end=YEAR[1],
        filters=Filters(reading_centre_ids=frozenset()),
        studies=[final(1, local(3, 1), 1)],
    )
    statement = settlement(frames, settings=Settings(), tariffs=TARIFFS)
    assert statement.lines.is_empty() and statement.by_clinic.is_empty()
    assert (statement.reports, statement.amount_fen, statement.bureau_fen) == (0, 0, 0)


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=364 * 24 * 60),  # minute of the year, UTC
            st.integers(min_value=1, max_value=6),  # body parts
            st.integers(min_value=1, max_value=3),  # reading centre
            st.integers(min_value=10, max_value=14),  # clinic
        ),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=5000),
)
def test_statements_always_reconcile_to_the_fen(
    reports: list[tuple[int, int, int, int]], rate: int, share: int
) -> None:
    rate, share = max(rate, share), min(rate, share)
    frames = build_frames(
        start=YEAR[0],
        end=YEAR[1],
        studies=[
            final(number, YEAR[0] + timedelta(minutes=minute), parts, centre=centre, clinic=clinic)
            for number, (minute, parts, centre, clinic) in enumerate(reports, start=1)
        ],
    )
    tariffs = (
        TariffPeriod(date(2026, 1, 1), 1000, 500),
        TariffPeriod(date(2026, 5, 1), rate, share),
    )
    statement = settlement(frames, settings=Settings(), tariffs=tariffs)
    assert statement.reports == len(reports)
    assert statement.body_parts == sum(parts for _, parts, _, _ in reports)
    _assert_reconciles(statement)
