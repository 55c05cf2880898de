"""The Parquet snapshot store: the same frames as the SQL, and rebuilt when the data moves on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import func, insert, select, update

from integration import metrics
from integration.analytics_store import FRAME_NAMES, AnalyticsStore, data_version
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.metrics import Filters, Frames, load_frames, local_days
from integration.settings import Settings
from models import metadata
from tests.databases import DemoSnapshots
from tests.integration.test_metrics import H1, YEAR, County, county

__all__ = ["county"]  # the demo county fixture, shared with test_metrics

T = metadata.tables
NOW = YEAR[1]
OCTOBER = local_days(date(2026, 10, 1), date(2026, 10, 31))


def _same_frames(left: Frames, right: Frames) -> None:
    for name in FRAME_NAMES:
        assert_frame_equal(getattr(left, name), getattr(right, name), check_row_order=True)


def _same_metrics(left: Frames, right: Frames) -> None:
    assert metrics.qc_indicators(left, now=NOW) == metrics.qc_indicators(right, now=NOW)
    assert_frame_equal(
        metrics.corrections(left, by=("reading_centre", "month")),
        metrics.corrections(right, by=("reading_centre", "month")),
    )
    assert_frame_equal(
        metrics.writing_compliance(left, by=("radiologist",)),
        metrics.writing_compliance(right, by=("radiologist",)),
    )
    assert_frame_equal(
        metrics.writing_checks(left, leftovers=("正常",)).drop("has_leftovers", strict=False),
        metrics.writing_checks(right, leftovers=("正常",)),
        check_column_order=False,
    )
    assert_frame_equal(
        metrics.turnaround(left, by=("clinic",)), metrics.turnaround(right, by=("clinic",))
    )
    assert_frame_equal(
        metrics.recognition(left, by=("month",)), metrics.recognition(right, by=("month",))
    )


@pytest.mark.parametrize(
    "window",
    [YEAR, H1, OCTOBER],
    ids=["year", "first-half", "october"],
)
def test_snapshot_frames_are_the_sql_frames(
    county: County, tmp_path: Path, window: tuple[datetime, datetime]
) -> None:
    store = AnalyticsStore(county.database.engine, tmp_path, zone=county.settings.timezone)
    for filters in (
        Filters(),
        Filters(clinic_ids=frozenset({county.clinic})),
        Filters(modalities=frozenset({"CT"})),
        Filters(reading_centre_ids=frozenset({3}), exam_type_ids=frozenset({1, 2, 3, 4, 5})),
        Filters(clinic_ids=frozenset()),
    ):
        from_store = store.frames(*window, filters)
        from_sql = county.frames(window, filters)
        _same_frames(from_store, from_sql)
        _same_metrics(from_store, from_sql)
        assert from_store.report_facts is not None


def test_an_empty_filter_selects_nothing_from_the_snapshot(county: County, tmp_path: Path) -> None:
    store = AnalyticsStore(county.database.engine, tmp_path)
    frames = store.frames(*YEAR, Filters(reading_centre_ids=frozenset()))
    assert all(getattr(frames, name).is_empty() for name in FRAME_NAMES)
    assert metrics.volume(frames)["exams"].to_list() == [0]


def test_frames_are_kept_per_filter_set(county: County, tmp_path: Path) -> None:
    store = AnalyticsStore(county.database.engine, tmp_path, memory_entries=2)
    first = store.frames(*YEAR)
    assert store.frames(*YEAR) is first
    ct = store.frames(*YEAR, Filters(modalities=frozenset({"CT"})))
    assert ct is not first
    store.frames(*H1)  # a third filter set pushes the oldest out
    assert store.frames(*YEAR, Filters(modalities=frozenset({"CT"}))) is ct
    assert store.frames(*YEAR) is not first


# ---------------------------------------------------------- invalidation


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def small_region(
    tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots
) -> Iterator[Database]:
    settings = Settings(data_dir=tmp_path / "db", database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=5, exams=300, until=date(2026, 11, 20), progress=False),
    )
    yield database
    database.dispose()


def _amend_one_report(database: Database) -> int:
    """An amendment after final, as integration.reporting.amend writes it: report + revision."""
    report, revision = T["report"], T["report_revision"]
    with database.engine.begin() as connection:
        chosen = connection.execute(
            select(report.c.id, report.c.version, report.c.finalised_at, report.c.auditor_id)
            .where(report.c.status == "final", report.c.corrected.is_(False))
            .order_by(report.c.finalised_at.desc())
            .limit(1)
        ).one()
        at = chosen.finalised_at + timedelta(hours=1)
        connection.execute(
            update(report)
            .where(report.c.id == chosen.id)
            .values(status="amended", amended_at=at, version=chosen.version + 1, corrected=True)
        )
        connection.execute(
            insert(revision).values(
                report_id=chosen.id,
                version=chosen.version + 1,
                status="amended",
                findings="改",
                impression="改后的诊断",
                editor_id=chosen.auditor_id,
                reason="补充",
                created_at=at,
                content_hash="",
                previous_hash="",
            )
        )
    return int(chosen.id)


def test_a_new_report_revision_rebuilds_the_snapshot(
    small_region: Database, tmp_path: Path
) -> None:
    clock = Clock()
    store = AnalyticsStore(small_region.engine, tmp_path / "analytics", clock=clock)
    window = local_days(date(2025, 11, 21), date(2026, 11, 20))
    before = metrics.corrections(store.frames(*window)).row(0, named=True)
    first = store.snapshot()
    with small_region.engine.connect() as connection:
        assert data_version(connection) == first.version

    _amend_one_report(small_region)
    after = metrics.corrections(store.frames(*window)).row(0, named=True)
    second = store.snapshot()

    assert second.version != first.version
    assert after["amended"] == before["amended"] + 1
    assert after["corrected"] == before["corrected"] + 1
    assert not first.folder.exists()  # the stale snapshot is removed
    assert [p.name for p in (tmp_path / "analytics").iterdir()] == [second.folder.name]


def test_an_update_in_place_shows_after_max_age(small_region: Database, tmp_path: Path) -> None:
    clock = Clock()
    store = AnalyticsStore(
        small_region.engine, tmp_path / "analytics", clock=clock, max_age_seconds=60
    )
    window = local_days(date(2025, 11, 21), date(2026, 11, 20))
    critical = T["critical_result"]

    def unnotified() -> int:
        frames = store.frames(*window)
        return int(frames.critical_results["notified_at"].null_count())

    assert unnotified() == 0
    with small_region.engine.begin() as connection:
        first_id = connection.execute(select(func.min(critical.c.id))).scalar_one()
        connection.execute(
            update(critical).where(critical.c.id == first_id).values(notified_at=None)
        )
    clock.now += 59
    assert unnotified() == 0  # no new row: the snapshot stands until it is too old
    clock.now += 2
    assert unnotified() == 1


def test_a_snapshot_on_disk_serves_another_store(small_region: Database, tmp_path: Path) -> None:
    clock = Clock()
    root = tmp_path / "analytics"
    first = AnalyticsStore(small_region.engine, root, clock=clock).snapshot()
    clock.now += 10
    second = AnalyticsStore(small_region.engine, root, clock=clock).snapshot()
    assert second == first  # read from disk, not rebuilt
    (first.folder / "manifest.json").write_text("{}")  # a damaged snapshot is rebuilt
    third = AnalyticsStore(small_region.engine, root, clock=clock).snapshot()
    assert third.built_at == clock.now
    assert pl.read_parquet(third.path("studies")).height > 0


def test_naive_windows_are_refused(small_region: Database, tmp_path: Path) -> None:
    store = AnalyticsStore(small_region.engine, tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.frames(datetime(2026, 1, 1), datetime(2026, 2, 1, tzinfo=UTC))


def test_lean_frames_give_the_same_metrics_without_the_texts(
    county: County, tmp_path: Path
) -> None:
    store = AnalyticsStore(county.database.engine, tmp_path, zone=county.settings.timezone)
    lean = store.frames(*YEAR, lean=True)
    full = county.frames(YEAR)
    assert "findings" not in lean.studies.columns and lean.revisions.is_empty()
    assert metrics.qc_indicators(lean, now=NOW) == metrics.qc_indicators(full, now=NOW)
    assert_frame_equal(
        metrics.corrections(lean, by=("radiologist",)),
        metrics.corrections(full, by=("radiologist",)),
    )
    assert_frame_equal(
        metrics.writing_compliance(lean, by=("month",)),
        metrics.writing_compliance(full, by=("month",)),
    )
    with pytest.raises(ValueError, match="no report texts"):
        metrics.writing_checks(lean, leftovers=("正常",))
    assert store.frames(*YEAR, lean=True) is lean and store.frames(*YEAR) is not lean


def test_a_snapshot_replaced_under_a_reader_is_read_again(
    small_region: Database, tmp_path: Path
) -> None:
    """Another process rebuilt (and removed) the snapshot this store last used."""
    root = tmp_path / "analytics"
    store = AnalyticsStore(small_region.engine, root)
    window = local_days(date(2025, 11, 21), date(2026, 11, 20))
    first = store.frames(*window)
    snapshot = store.snapshot()
    for file in snapshot.folder.glob("*.parquet"):
        file.unlink()  # as if removed between the version check and the read
    store._memory.clear()
    (snapshot.folder / "manifest.json").unlink()
    again = store.frames(*window)
    assert again.studies.height == first.studies.height


@pytest.mark.postgres
def test_postgresql_reads_the_same_frames_as_sqlite(postgres_url: str, tmp_path: Path) -> None:
    """The cursor's raw rows differ (aware datetimes, bools vs text, 0/1); the frames do not."""
    frames = []
    for url in ("", postgres_url):
        settings = Settings(data_dir=tmp_path / ("pg" if url else "lite"), database_url=url)  # type: ignore[arg-type]
        database = Database.from_settings(settings)
        database.upgrade()
        seed_demo_region(
            database,
            settings=settings,
            options=DemoOptions(seed=3, exams=300, until=date(2026, 11, 20), progress=False),
        )
        window = local_days(date(2025, 11, 21), date(2026, 11, 20))
        with database.engine.connect() as connection:
            frames.append(load_frames(connection, start=window[0], end=window[1]))
        store = AnalyticsStore(database.engine, tmp_path / ("pg-a" if url else "lite-a"))
        _same_frames(store.frames(*window), frames[-1])
        database.dispose()
    lite, pg = frames
    for name in FRAME_NAMES:
        assert_frame_equal(getattr(lite, name), getattr(pg, name), check_row_order=True)
