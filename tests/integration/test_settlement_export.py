"""Settlement statements: CSV, Excel and PDF that reconcile with the report lines to the fen."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.settings import Settings
from integration.settlement_export import (
    SettlementExport,
    build,
    parse_period,
    to_csv,
    to_pdf,
    write_xlsx,
    yuan,
)
from models.errors import NotFound, ValidationError
from tests.databases import DemoSnapshots
from tests.hub_helpers import hub_environment


@pytest.fixture(scope="module")
def region(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str,
    demo_snapshots: DemoSnapshots,
) -> Iterator[tuple[Database, Settings]]:
    folder = tmp_path_factory.mktemp("settlement")
    settings = Settings(data_dir=folder, database_url=module_database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=21, exams=2000, until=date(2026, 11, 20), progress=False),
    )
    yield database, settings
    database.dispose()


@pytest.fixture(scope="module")
def export(region: tuple[Database, Settings]) -> SettlementExport:
    database, settings = region
    with database.engine.connect() as connection:
        return build(connection, period=parse_period("2026H2"), settings=settings)


def test_periods_and_amounts_are_exact() -> None:
    assert parse_period("2026h1").first == date(2026, 1, 1)
    assert parse_period("2026H2").last == date(2026, 12, 31)
    with pytest.raises(ValidationError):
        parse_period("2026Q3")
    assert yuan(123456) == "1,234.56"
    assert yuan(5, grouping=False) == "0.05"
    assert yuan(-1000) == "-10.00"


def test_hospital_statements_reconcile_with_the_report_lines(export: SettlementExport) -> None:
    lines = export.statement.lines
    assert export.statement.reports == lines.height > 0
    assert sum(h.totals[2] for h in export.hospitals) == int(lines["amount_fen"].sum())
    for hospital in export.hospitals:
        for index in range(5):  # reports, body parts, amount, clinic share, bureau share
            assert hospital.totals[index] == sum(row[2 + index] for row in hospital.clinics)
        _reports, parts, amount, clinic, bureau = hospital.totals
        assert amount == clinic + bureau == parts * 1000  # 10 yuan per body part
    assert export.statement.clinic_fen + export.statement.bureau_fen == export.statement.amount_fen


def test_the_csv_adds_up_to_the_cent(export: SettlementExport) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(export))))
    clinic_rows = [row for row in rows if row["检查机构"] != "合计"]
    total_rows = [row for row in rows if row["检查机构"] == "合计"]
    assert len(total_rows) == len(export.hospitals)
    fen = sum(Decimal(row["金额(元)"]) * 100 for row in clinic_rows)
    assert fen == export.statement.amount_fen
    assert sum(Decimal(row["金额(元)"]) * 100 for row in total_rows) == fen


def test_the_workbook_opens_and_matches(export: SettlementExport, tmp_path: Path) -> None:
    path = tmp_path / "settlement.xlsx"
    write_xlsx(export, path)
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["阅片医院", "检查机构", "明细"]
    hospitals = list(book["阅片医院"].iter_rows(values_only=True))
    header, body = hospitals[0], hospitals[1:]
    amount = header.index("amount_fen")
    assert sum(int(row[amount]) for row in body) == export.statement.amount_fen  # type: ignore[arg-type]
    details = list(book["明细"].iter_rows(values_only=True))
    assert len(details) - 1 == export.statement.lines.height


def test_the_pdf_has_a_statement_per_hospital(export: SettlementExport) -> None:
    pdf = to_pdf(export, issued=date(2026, 11, 25))
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page>") >= len(export.hospitals)
    assert to_pdf(export, issued=date(2026, 11, 25)) == pdf  # the same statement, the same bytes


def test_one_hospital_or_an_unknown_code(region: tuple[Database, Settings]) -> None:
    database, settings = region
    with database.engine.connect() as connection:
        one = build(connection, period=parse_period("2026H2"), settings=settings, hospital="QL-H01")
        assert [h.code for h in one.hospitals] == ["QL-H01"]
        with pytest.raises(NotFound):
            build(connection, period=parse_period("2026H2"), settings=settings, hospital="NOPE")


def test_the_command_writes_the_file(region: tuple[Database, Settings], tmp_path: Path) -> None:
    _database, settings = region
    output = tmp_path / "h2.csv"
    done = subprocess.run(
        [sys.executable, "-m", "integration.cli", "report", "settlement", "--period", "2026H2",
         "--format", "csv", "--output", str(output)],
        env=hub_environment(settings.data_dir, database_url=settings.database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2026H2: 3 reading hospitals" in done.stdout
    assert output.read_text(encoding="utf-8-sig").startswith("period,阅片医院")
