"""The analytics pages' drawing: cells, hidden ids, charts, key-figure cards, period helpers."""

from __future__ import annotations

from datetime import date

import polars as pl

from integration.analytics_portal import Topic
from portal.analytics_view import MAX_ROWS, Chart, cell, figure, panel, shown_columns
from portal.pages.analytics import (
    change_text,
    key_figure_cards,
    month_before,
    month_range,
    months_back,
)


def test_cells_say_rates_money_minutes_and_nothing() -> None:
    assert cell("rate", 0.8766) == "87.7%"
    assert cell("retake_rate", 0.02) == "2.0%"
    assert cell("avoided_fee_fen", 123456) == "1,234.56"
    assert cell("median_minutes", 13.884) == "13.9"
    assert cell("exams", 12345) == "12,345"
    assert cell("value", 1781.0, unit="count") == "1,781"
    assert cell("value", 0.5, unit="rate") == "50.0%"
    assert cell("value", 790.0, unit="yuan") == "790.00"
    assert cell("anything", None) == "—"
    assert cell("day", date(2026, 11, 3)) == "2026-11-03"


def test_ids_hide_behind_their_names() -> None:
    table = pl.DataFrame({"clinic_id": [1], "clinic_name": ["城关镇卫生院"], "author_id": [7]})
    assert shown_columns(table) == ["clinic_name", "author_id"]


def test_rates_are_drawn_in_percent_and_series_split() -> None:
    months = pl.DataFrame({"month": ["2026-10", "2026-11"], "rate": [0.8, None]})
    drawn = figure(months, Chart("line", "month", ("rate",)), {"rate": "达标率"})
    assert list(drawn.data[0].y) == [80.0, None]
    assert drawn.layout.yaxis.ticksuffix == "%"
    days = pl.DataFrame(
        {
            "day": [date(2026, 11, 2), date(2026, 11, 1), date(2026, 11, 1)],
            "modality": ["CT", "CT", "DX"],
            "exams": [3, 1, 5],
        }
    )
    split = figure(days, Chart("line", "day", ("exams",), series="modality"), {})
    assert [trace.name for trace in split.data] == ["CT", "DX"]
    assert list(split.data[0].x) == ["2026-11-01", "2026-11-02"]  # in day order
    grades = pl.DataFrame({"clinic_name": ["a"], "grade_a": [3], "grade_b": [1]})
    stacked = figure(grades, Chart("bar", "clinic_name", ("grade_a", "grade_b"), stacked=True), {})
    assert stacked.layout.barmode == "stack" and len(stacked.data) == 2


def test_a_long_table_is_clipped_on_screen_only() -> None:
    table = pl.DataFrame({"month": [f"m{i}" for i in range(150)], "rate": [0.5] * 150})
    shown = panel(Topic.turnaround, "sla_by_month", table, {"rate": "达标率"}, title="t")
    assert shown["clipped"] and shown["total"] == 150 and len(shown["rows"]) == MAX_ROWS
    assert shown["has_chart"] and shown["headers"] == ["month", "达标率"]
    empty = panel(Topic.turnaround, "sla_by_month", table.head(0), {}, title="t")
    assert not empty["has_chart"] and empty["rows"] == []


def test_key_figure_cards_with_the_month_before() -> None:
    table = pl.DataFrame(
        {
            "key": ["sla_compliance", "exams"],
            "label": ["时限达标率", "检查量"],
            "unit": ["rate", "count"],
            "value": [0.846, 120.0],
            "numerator": [99, None],
            "denominator": [117, None],
            "previous": [0.901, None],
            "change": [-0.054, None],
        }
    )
    exams, sla = key_figure_cards(table, "zh-CN")  # in the dashboard's order
    assert exams["value"] == "120" and exams["previous"] == "—" and exams["change"] == ""
    assert sla["value"] == "84.6%" and sla["counts"] == "99/117"
    assert sla["change"] == "-5.4 个百分点" and sla["direction"] == "down"
    assert key_figure_cards(table, "en")[1]["label"] == "SLA compliance"
    assert change_text("yuan", 0.837, "en") == "+83.7%"


def test_period_helpers() -> None:
    assert month_before(date(2026, 1, 15)) == "2025-12"
    assert months_back("2026-11", 12) == "2025-12"
    assert month_range("2026-02", "2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
