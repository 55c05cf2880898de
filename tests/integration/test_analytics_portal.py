"""The analytics pages' entry: who may look, the tables of each page, exports that open."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from openpyxl import load_workbook
from sqlmodel import select

from integration import analytics_portal, reading_desk
from integration.analytics import Dashboards
from integration.analytics_portal import TABLES, AnalyticsQuery, Topic, table_csv, table_xlsx
from integration.analytics_store import AnalyticsStore
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.permissions import Actor
from integration.settings import Settings
from models import AuditEvent, User
from models.enums import AuditAction
from models.errors import PermissionDenied, ValidationError
from tests.databases import DemoSnapshots

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def region(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str,
    demo_snapshots: DemoSnapshots,
) -> Iterator[tuple[Database, Dashboards]]:
    folder = tmp_path_factory.mktemp("analytics-portal")
    settings = Settings(data_dir=folder, database_url=module_database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=3, exams=1500, until=date(2026, 11, 30), progress=False),
    )
    store = AnalyticsStore(database.engine, Path(folder) / "analytics", zone=settings.timezone)
    yield database, Dashboards(store, settings)
    database.dispose()


def actor(database: Database, username: str) -> Actor:
    with database.session() as session:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        assert user_id is not None
        return reading_desk.load_actor(session, user_id=user_id, settings=Settings())


def test_every_page_gives_its_tables_to_the_bureau_only(
    region: tuple[Database, Dashboards],
) -> None:
    database, dashboards = region
    leader = actor(database, "leader")
    for topic in Topic:
        query = AnalyticsQuery(topic, date(2025, 12, 1), date(2026, 11, 30))
        tables = analytics_portal.page_tables(dashboards, actor=leader, query=query, now=NOW)
        assert list(tables) == list(TABLES[topic])
        assert all(isinstance(table, pl.DataFrame) for table in tables.values())
    overview = analytics_portal.page_tables(
        dashboards,
        actor=leader,
        query=AnalyticsQuery(Topic.overview, date(2026, 11, 1), date(2026, 11, 30)),
        now=NOW,
    )
    assert overview["key_figures"].height == 15
    with pytest.raises(PermissionDenied):
        analytics_portal.page_tables(
            dashboards,
            actor=actor(database, "clinician"),
            query=AnalyticsQuery(Topic.quality, date(2026, 1, 1), date(2026, 6, 30)),
            now=NOW,
        )
    with pytest.raises(ValidationError):
        analytics_portal.page_tables(
            dashboards,
            actor=leader,
            query=AnalyticsQuery(Topic.quality, date(2026, 6, 1), date(2026, 1, 1)),
            now=NOW,
        )


def test_a_filter_narrows_the_tables(region: tuple[Database, Dashboards]) -> None:
    database, dashboards = region
    leader = actor(database, "leader")
    everything = AnalyticsQuery(Topic.settlement, date(2026, 1, 1), date(2026, 6, 30))
    whole = analytics_portal.page_tables(dashboards, actor=leader, query=everything, now=NOW)
    centre = int(whole["by_reading_centre"]["reading_centre_id"][0])
    narrowed = analytics_portal.page_tables(
        dashboards,
        actor=leader,
        query=AnalyticsQuery(
            Topic.settlement, date(2026, 1, 1), date(2026, 6, 30), reading_centre_id=centre
        ),
        now=NOW,
    )
    assert set(narrowed["by_reading_centre"]["reading_centre_id"]) == {centre}
    assert (
        narrowed["totals"]["amount_fen"][0]
        == whole["by_reading_centre"]
        .filter(pl.col("reading_centre_id") == centre)["amount_fen"]
        .sum()
    )


def test_exports_open_and_are_audited(region: tuple[Database, Dashboards]) -> None:
    database, dashboards = region
    leader = actor(database, "leader")
    query = AnalyticsQuery(Topic.recognition, date(2025, 12, 1), date(2026, 11, 30))
    with database.session() as session:
        name, body = analytics_portal.export_table(
            session,
            dashboards,
            actor=leader,
            query=query,
            table="by_month",
            fmt="csv",
            headers={"month": "月份"},
            now=NOW,
        )
        assert name.endswith(".csv") and body.startswith(b"\xef\xbb\xbf")
        lines = body.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("月份,") and len(lines) == 13
        name, body = analytics_portal.export_table(
            session,
            dashboards,
            actor=leader,
            query=query,
            table="by_month",
            fmt="xlsx",
            headers={},
            now=NOW,
        )
        sheet = load_workbook(io.BytesIO(body)).active
        assert sheet is not None and sheet.max_row == 13 and sheet.cell(1, 1).value == "month"
        with pytest.raises(ValidationError):
            analytics_portal.export_table(
                session,
                dashboards,
                actor=leader,
                query=query,
                table="by_month",
                fmt="pdf",
                headers={},
                now=NOW,
            )
        name, pdf = analytics_portal.settlement_statement(
            session,
            actor=leader,
            half_year="2026H1",
            hospital_code=None,
            settings=dashboards.settings,
            now=NOW,
        )
        assert pdf.startswith(b"%PDF") and name == "settlement-2026H1.pdf"
    with database.session() as session:
        exports = session.exec(
            select(AuditEvent.detail).where(
                AuditEvent.action == AuditAction.export, AuditEvent.actor == "leader"
            )
        ).all()
    assert len(exports) == 3 and any("by_month" in detail for detail in exports)


def test_table_files_keep_numbers_as_numbers() -> None:
    table = pl.DataFrame({"month": ["2026-10"], "rate": [0.5], "exams": [None]})
    assert table_csv(table, {"rate": "达标率"}).decode("utf-8-sig").splitlines() == [
        "month,达标率,exams",
        "2026-10,0.5,",
    ]
    sheet = load_workbook(io.BytesIO(table_xlsx(table, {}, sheet="s"))).active
    assert sheet is not None and sheet.cell(2, 2).value == 0.5 and sheet.cell(2, 3).value is None
