"""The monthly refusal audit: 10% of a month's refusals, reproducible, drawn once, reviewable."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.refusal_audit import (
    draw,
    draw_month,
    month_bounds,
    review,
    sample_report,
    seed_for,
)
from integration.settings import Settings
from models.errors import NotFound, ValidationError
from tests.databases import DemoSnapshots

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@given(
    ids=st.lists(st.integers(1, 10**6), unique=True, max_size=300),
    month=st.sampled_from(["2026-01", "2026-10"]),
)
def test_a_draw_is_ten_percent_rounded_up_and_the_same_every_time(
    ids: list[int], month: str
) -> None:
    chosen = draw(ids, seed=seed_for(month))
    assert len(chosen) == math.ceil(0.1 * len(ids))
    assert set(chosen) <= set(ids)
    assert draw(list(reversed(ids)), seed=seed_for(month)) == chosen  # order of input irrelevant


def test_different_months_draw_differently() -> None:
    ids = list(range(1, 501))
    assert draw(ids, seed=seed_for("2026-09")) != draw(ids, seed=seed_for("2026-10"))


def test_month_bounds_are_shanghai_months() -> None:
    start, end = month_bounds("2026-10", ZONE)
    assert start == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(ValidationError):
        month_bounds("October", ZONE)


@pytest.fixture
def region(tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots) -> Iterator[Database]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=5, exams=3000, until=date(2026, 11, 20), progress=False),
    )
    yield database
    database.dispose()


def test_a_month_is_drawn_once_recorded_and_reviewed(region: Database) -> None:
    with region.engine.begin() as connection:
        refusals = connection.execute(
            text(
                "SELECT count(*) FROM recognition_decision WHERE outcome = 'refused' "
                "AND decided_at >= '2026-09-30 16:00:00' AND decided_at < '2026-10-31 16:00:00'"
            )
        ).scalar_one()
        assert refusals >= 10, "the demo county refuses priors every month"
        chosen = draw_month(connection, month="2026-10", zone=ZONE, now=NOW)
        assert len(chosen) == math.ceil(refusals / 10)
        # A refusal recorded later for October does not move the sample.
        connection.execute(
            text(
                "INSERT INTO recognition_decision (patient_id, requested_exam_type_id, "
                "facility_id, clinician_ref, outcome, refusal_reason, comment, source, card_id, "
                "avoided_fee_fen, decided_at) SELECT patient_id, requested_exam_type_id, "
                "facility_id, 'late', 'refused', 'other', '', 'portal', '', 0, "
                "'2026-10-15 02:00:00' "
                "FROM recognition_decision LIMIT 1"
            )
        )
        assert draw_month(connection, month="2026-10", zone=ZONE, now=NOW) == chosen
        review(
            connection,
            month="2026-10",
            decision_id=chosen[0],
            justified=False,
            note="病情无变化，应采纳",
            reviewer_id=None,
            now=NOW,
        )
        with pytest.raises(NotFound):
            review(
                connection,
                month="2026-10",
                decision_id=-1,
                justified=True,
                note="",
                reviewer_id=None,
                now=NOW,
            )
        report = sample_report(connection, month="2026-10", zone=ZONE)
        assert (report.drawn, report.reviewed, report.justified) == (len(chosen), 1, 0)
        assert report.refusals == refusals + 1
        with pytest.raises(ValidationError, match="has not ended"):
            draw_month(connection, month="2026-11", zone=ZONE, now=NOW)
