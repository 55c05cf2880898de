"""The monthly operations bulletin: its tables by hand, the PDF's text, the same bytes twice."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integration.analytics_store import AnalyticsStore
from integration.bulletin import (
    beside,
    build_bulletin,
    bulletin_as_of,
    bulletin_from_store,
    bulletin_pdf,
)
from integration.metrics import Filters
from integration.settings import Settings
from tests.hub_helpers import hub_environment
from tests.integration.test_analytics import LATE, NAMES, two_months
from tests.integration.test_metrics import County, county

__all__ = ["county"]

SETTINGS = Settings()
PDFTOTEXT = shutil.which("pdftotext")


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    if PDFTOTEXT is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    source = tmp_path / "bulletin.pdf"
    source.write_bytes(pdf)
    done = subprocess.run(
        [PDFTOTEXT, "-layout", str(source), "-"], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode("utf-8")


def test_beside_keeps_keys_of_either_month() -> None:
    import polars as pl

    this = pl.DataFrame({"clinic_id": [1, 2], "exams": [5, 6]})
    before = pl.DataFrame({"clinic_id": [2, 3], "exams": [4, 7]})
    assert beside(this, before, ["clinic_id"], ["exams"]).rows() == [
        (1, 5, None),
        (2, 6, 4),
        (3, None, 7),
    ]


def test_the_bulletin_tables_by_hand() -> None:
    bulletin = build_bulletin(
        two_months(), month="2026-10", as_of=LATE, settings=SETTINGS, names=NAMES, region="青岚县"
    )
    assert (bulletin.month, bulletin.previous) == ("2026-10", "2026-09")
    assert bulletin.volume_by_facility.select("clinic_name", "exams", "previous_exams").rows() == [
        ("甲镇卫生院", 3, 2),
        ("乙镇卫生院", 1, None),
    ]
    assert bulletin.volume_by_modality.select("modality", "exams", "previous_exams").rows() == [
        ("CT", 1, None),
        ("DX", 3, 2),
    ]
    sla = bulletin.sla_by_hospital.select("reading_centre_name", "met", "rate", "previous_rate")
    assert sla.rows() == [("县医院", 2, 2 / 3, 0.5), ("中医院", 0, 0.0, None)]
    assert bulletin.sla_trend.select("month", "rate").rows() == [("2026-09", 0.5), ("2026-10", 0.5)]
    corrections = bulletin.corrections_by_hospital.row(0, named=True)
    assert (corrections["corrected"], corrections["finalised"]) == (1, 3)
    assert bulletin.consultations_by_hospital.select(
        "reading_centre_name", "requested", "previous_requested"
    ).rows() == [("中医院", 1, None)]
    assert bulletin.refusals_by_reason.rows() == [("condition_changed", None, 1)]
    assert bulletin.recognition_trend.select("month", "avoided_fee_fen").rows() == [
        ("2026-09", 0),
        ("2026-10", 8000),
    ]


def test_the_pdf_reads_in_chinese_and_is_the_same_twice(tmp_path: Path) -> None:
    bulletin = build_bulletin(
        two_months(), month="2026-10", as_of=LATE, settings=SETTINGS, names=NAMES, region="青岚县"
    )
    pdf = bulletin_pdf(bulletin)
    assert pdf.startswith(b"%PDF-")
    assert bulletin_pdf(bulletin) == pdf
    text = pdf_text(pdf, tmp_path)
    for expected in (
        "青岚县区域影像诊断中心运行月报",
        "2026年10月",
        "一、主要指标",
        "时限达标率",
        "50.0% (2/4)",  # October's SLA, with its counts
        "+100.0%",  # exams 2 -> 4
        "甲镇卫生院",
        "各医院会诊",
        "危急值通报",
        "节省费用",
        "80.00",  # October's savings in yuan
        "病情变化",  # the refusal reason in words
    ):
        assert expected in text, expected


def test_a_month_without_data_says_so(tmp_path: Path) -> None:
    empty = two_months(Filters(clinic_ids=frozenset()))
    bulletin = build_bulletin(
        empty, month="2026-10", as_of=LATE, settings=SETTINGS, names=NAMES, region="青岚县"
    )
    assert bulletin.volume_by_facility.is_empty()
    text = pdf_text(bulletin_pdf(bulletin), tmp_path)
    assert "无数据" in text


def test_a_closed_month_is_judged_the_day_after_it() -> None:
    zone = "Asia/Shanghai"
    assert bulletin_as_of("2026-10", now=LATE, zone=zone) == datetime(2026, 11, 1, 16, tzinfo=UTC)
    running = datetime(2026, 10, 20, tzinfo=UTC)
    assert bulletin_as_of("2026-10", now=running, zone=zone) == running


def test_the_demo_county_bulletin_and_the_command(county: County, tmp_path: Path) -> None:
    settings = county.settings
    store = AnalyticsStore(county.database.engine, tmp_path / "analytics", zone=settings.timezone)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    bulletin = bulletin_from_store(store, month="2026-10", settings=settings, now=now)
    assert bulletin.region == "青岚县卫生健康局"
    assert bulletin.sla_trend.height == 12
    exams = bulletin.key_figures.row(0, named=True)
    assert exams["key"] == "exams" and exams["value"] > 0
    assert bulletin.volume_by_facility["exams"].sum() == exams["value"]
    assert bulletin.consultations_by_hospital["reading_centre_name"].null_count() == 0

    output = tmp_path / "october.pdf"
    done = subprocess.run(
        [sys.executable, "-m", "integration.cli", "report", "bulletin", "--month", "2026-10",
         "--output", str(output)],
        env=hub_environment(settings.data_dir, database_url=settings.database_url),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"({int(exams['value'])} exams)" in done.stdout
    again = tmp_path / "again.pdf"
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "report", "bulletin", "--month", "2026-10",
         "--output", str(again)],
        env=hub_environment(settings.data_dir, database_url=settings.database_url),
        capture_output=True,
        timeout=180,
        check=True,
    )  # fmt: skip
    assert again.read_bytes() == output.read_bytes()
    assert output.read_bytes() == bulletin_pdf(bulletin)
    text = pdf_text(output.read_bytes(), tmp_path)
    assert "青岚县卫生健康局区域影像诊断中心运行月报" in text
    assert f"{int(exams['value']):,}" in text
