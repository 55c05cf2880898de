"""The province-scale key figures (lazy, over the snapshot) equal the engine's eager ones."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from integration.analytics_store import AnalyticsStore
from integration.kpi import Figure, figures
from integration.kpi_lazy import frames_as_tables, lazy_figures, scan_snapshot
from integration.metrics import Filters, Frames, local_days
from integration.metrics_settlement import TariffPeriod
from integration.settings import Settings
from tests.integration.test_analytics import SEPT_OCT, two_months
from tests.integration.test_metrics import YEAR, County, county
from tests.integration.test_metrics_turnaround import OFFICE

__all__ = ["county"]

NOW = datetime(2026, 11, 21, tzinfo=UTC)
OCTOBER = local_days(date(2026, 10, 1), date(2026, 10, 31))


def same(left: tuple[Figure, ...], right: tuple[Figure, ...]) -> None:
    assert [f.key for f in left] == [f.key for f in right]
    for a, b in zip(left, right, strict=True):
        assert a.counts == b.counts, a.key
        if a.value is None or b.value is None:
            assert a.value is b.value, a.key
        else:
            assert math.isclose(a.value, b.value, rel_tol=1e-9, abs_tol=1e-9), a.key


def lazy_of(frames: Frames, settings: Settings, **extra: object) -> tuple[Figure, ...]:
    return lazy_figures(
        frames_as_tables(frames),
        start=frames.start,
        end=frames.end,
        filters=frames.filters,
        settings=settings,
        now=NOW,
        calendar=frames.calendar,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "filters",
    [Filters(), Filters(reading_centre_ids=frozenset({1})), Filters(clinic_ids=frozenset())],
    ids=["all", "one-centre", "nothing"],
)
def test_by_hand(filters: Filters) -> None:
    settings = Settings()
    frames = two_months(filters)
    same(lazy_of(frames, settings), figures(frames, settings=settings, now=NOW))


def test_by_hand_with_a_reading_calendar() -> None:
    """Office hours move SLA figures; the lazy plan moves them the same way."""
    settings = Settings()
    frames = dataclasses.replace(two_months(Filters()), calendar=OFFICE)
    eager = figures(frames, settings=settings, now=NOW)
    same(lazy_of(frames, settings), eager)
    around_the_clock = figures(two_months(Filters()), settings=settings, now=NOW)
    sla = {f.key: f.value for f in eager}["sla_compliance"]
    assert sla != {f.key: f.value for f in around_the_clock}["sla_compliance"]


def test_tariff_periods_by_the_local_day() -> None:
    settings = Settings()
    tariffs = (
        TariffPeriod(valid_from=date.min, rate_fen=1000, clinic_share_fen=500),
        TariffPeriod(valid_from=date(2026, 10, 3), rate_fen=1200, clinic_share_fen=600),
    )
    frames = two_months()
    lazy = {f.key: f.value for f in lazy_of(frames, settings, tariffs=tariffs)}
    # September 2 + October 2 before the 3rd (local) at 10 yuan; the 3rd on at 12.
    assert lazy["settlement"] == 2 * 10 + 1 * 10 + 3 * 12
    with pytest.raises(ValueError, match="tariff"):
        lazy_of(frames, settings, tariffs=(tariffs[1],))
    assert SEPT_OCT[0] == frames.start


@pytest.mark.parametrize("window", [YEAR, OCTOBER], ids=["year", "october"])
def test_over_the_demo_county(
    county: County, tmp_path: Path, window: tuple[datetime, datetime]
) -> None:
    settings = county.settings
    sql = county.frames(window)
    eager = figures(sql, settings=settings, now=NOW)
    same(lazy_of(sql, settings), eager)
    store = AnalyticsStore(county.database.engine, tmp_path, zone=settings.timezone)
    scans = scan_snapshot(store.snapshot())
    for filters in (
        Filters(),
        Filters(modalities=frozenset({"CT"})),
        Filters(clinic_ids=frozenset({county.clinic})),
    ):
        expected = figures(county.frames(window, filters), settings=settings, now=NOW)
        got = lazy_figures(
            scans, start=window[0], end=window[1], filters=filters, settings=settings, now=NOW,
            calendar=None,
        )  # fmt: skip
        same(got, expected)
