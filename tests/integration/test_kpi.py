"""The month's key figures: the engine's numbers, the month before, and honest "no data"."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.kpi import Figure, change, month_days, monthly_report, to_csv, to_text
from integration.settings import Settings
from models.errors import ValidationError
from tests.databases import DemoSnapshots

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def region(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str,
    demo_snapshots: DemoSnapshots,
) -> Iterator[tuple[Database, Settings]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kpi"), database_url=module_database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=8, exams=2000, until=date(2026, 11, 20), progress=False),
    )
    yield database, settings
    database.dispose()


def test_months_and_changes() -> None:
    assert month_days("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert month_days("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    with pytest.raises(ValidationError):
        month_days("2026/10")
    rate = Figure("r", "r", 0.5, "rate", (1, 2))
    assert change(rate, Figure("r", "r", 0.25, "rate", (1, 4))) == "+25.0 个百分点"
    assert change(Figure("n", "n", 110.0, "count"), Figure("n", "n", 100.0, "count")) == "+10.0%"
    assert change(rate, Figure("r", "r", None, "rate")) == ""


def test_the_report_matches_the_database(region: tuple[Database, Settings]) -> None:
    database, settings = region
    with database.engine.connect() as connection:
        report = monthly_report(connection, month="2026-10", settings=settings, now=NOW)
        studies = connection.execute(
            text(
                "SELECT count(*) FROM study WHERE coalesce(started_at, received_at) >= "
                "'2026-09-30 16:00:00' AND coalesce(started_at, received_at) < "
                "'2026-10-31 16:00:00'"
            )
        ).scalar_one()
    figures = {this.key: (this, before) for this, before in report.figures}
    assert (report.month, report.previous) == ("2026-10", "2026-09")
    assert figures["exams"][0].value == studies > 0
    sla = figures["sla_compliance"][0]
    assert sla.counts is not None and 0 < sla.counts[1] <= studies
    assert sla.value == sla.counts[0] / sla.counts[1]
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert rows[0] == ["key", "label", "unit", "2026-10", "counts", "2026-09", "counts"]
    assert len(rows) == len(report.figures) + 1
    assert "时限达标率" in to_text(report)


def test_a_month_without_exams_says_no_data(region: tuple[Database, Settings]) -> None:
    database, settings = region
    with database.engine.connect() as connection:
        report = monthly_report(connection, month="2027-03", settings=settings, now=NOW)
    this = {figure.key: figure for figure, _ in report.figures}
    assert this["exams"].value == 0
    assert this["sla_compliance"].value is None and this["sla_compliance"].counts == (0, 0)
    assert "无数据" in to_text(report)
