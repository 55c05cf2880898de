"""How the analytics pages draw their tables: which chart for which table, and the cells' text.

Pure functions over polars frames (no Reflex, no database), so every page's
chart and table can be tested with hand-built frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import plotly.graph_objects as go
import polars as pl

from integration.analytics_portal import Topic
from portal import i18n

MAX_ROWS = 100  # rows a page shows of one table; the export has them all
FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif'
PALETTE = ("#0d9488", "#f59e0b", "#6366f1", "#ef4444", "#64748b", "#22c55e")


@dataclass(frozen=True)
class Chart:
    kind: Literal["bar", "line"]
    x: str
    y: tuple[str, ...]
    series: str | None = None  # a column whose values become separate lines or bars
    stacked: bool = False


CHARTS: Mapping[tuple[Topic, str], Chart] = {
    (Topic.overview, "sla_trend"): Chart("line", "month", ("rate",)),
    (Topic.overview, "turnaround_distribution"): Chart("bar", "bucket", ("studies",)),
    (Topic.overview, "correction_by_centre"): Chart(
        "bar", "reading_centre_name", ("correction_rate",)
    ),
    (Topic.overview, "recognition_savings"): Chart("bar", "month", ("avoided_fee_fen",)),
    (Topic.turnaround, "steps"): Chart(
        "bar", "step", ("median_minutes", "p90_minutes", "p95_minutes")
    ),
    (Topic.turnaround, "sla_by_month"): Chart("line", "month", ("rate",)),
    (Topic.turnaround, "sla_by_centre"): Chart("bar", "reading_centre_name", ("rate",)),
    (Topic.turnaround, "sla_by_hour"): Chart("bar", "hour", ("rate",)),
    (Topic.quality, "indicators"): Chart("bar", "label", ("rate",)),
    (Topic.quality, "corrections_by_month"): Chart("line", "month", ("correction_rate",)),
    (Topic.quality, "corrections_by_centre"): Chart(
        "bar", "reading_centre_name", ("correction_rate",)
    ),
    (Topic.quality, "retakes_by_clinic"): Chart("bar", "clinic_name", ("retake_rate",)),
    (Topic.quality, "image_grades_by_clinic"): Chart(
        "bar", "clinic_name", ("grade_a", "grade_b", "grade_c", "grade_d"), stacked=True
    ),
    (Topic.quality, "critical_by_centre"): Chart("bar", "reading_centre_name", ("rate",)),
    (Topic.quality, "positive_rate_by_modality"): Chart("bar", "modality", ("positive_rate",)),
    (Topic.recognition, "by_month"): Chart("bar", "month", ("accepted", "refused"), stacked=True),
    (Topic.recognition, "refusals_by_reason"): Chart("bar", "refusal_reason", ("refused",)),
    (Topic.recognition, "by_clinic"): Chart("bar", "clinic_name", ("recognition_rate",)),
    (Topic.equipment, "volume_by_day"): Chart("line", "day", ("exams",), series="modality"),
    (Topic.equipment, "utilisation_by_station"): Chart(
        "bar", "station_name", ("mean_utilisation",)
    ),
    (Topic.consultations, "by_month"): Chart("bar", "month", ("requested", "answered")),
    (Topic.consultations, "by_centre"): Chart(
        "bar", "reading_centre_name", ("median_answer_minutes",)
    ),
    (Topic.settlement, "by_reading_centre"): Chart(
        "bar", "reading_centre_name", ("amount_fen",), series="half_year"
    ),
}


def is_rate(column: str) -> bool:
    return (
        column in ("rate", "share")
        or column.endswith("_rate")
        or column.endswith("_utilisation")
        or column == "utilisation"
    )


def is_money(column: str) -> bool:
    return column.endswith("_fen")


def cell(column: str, value: Any, *, unit: str = "") -> str:
    """A table cell as text: rates as percentages, fen as yuan, minutes to one decimal."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else ""
    if unit == "rate" or (not unit and is_rate(column)):
        return f"{float(value) * 100:.1f}%"
    if unit == "yuan":
        return f"{float(value):,.2f}"
    if unit == "count":
        return f"{round(float(value)):,}"
    if is_money(column):
        return f"{int(value) / 100:,.2f}"
    if unit == "minutes" or column.endswith("_minutes"):
        return f"{float(value):.1f}"
    if isinstance(value, datetime):
        return i18n.local_datetime(value, i18n.zone("Asia/Shanghai"))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def shown_columns(table: pl.DataFrame) -> list[str]:
    """The columns a person reads: an id is hidden when its name is beside it."""
    names = set(table.columns)
    return [
        column
        for column in table.columns
        if not (column.endswith("_id") and column.removesuffix("_id") + "_name" in names)
    ]


def table_cells(table: pl.DataFrame, columns: Sequence[str]) -> list[list[str]]:
    """The first MAX_ROWS rows as text; key figures use each row's own unit."""
    has_unit = "unit" in table.columns
    rows = []
    for row in table.head(MAX_ROWS).iter_rows(named=True):
        unit = str(row["unit"]) if has_unit else ""
        rows.append(
            [cell(c, row[c], unit=unit if c in ("value", "previous") else "") for c in columns]
        )
    return rows


def _y_values(column: str, values: Sequence[Any]) -> list[float | None]:
    if is_rate(column):
        return [None if v is None else float(v) * 100 for v in values]
    if is_money(column):
        return [None if v is None else int(v) / 100 for v in values]
    return [None if v is None else float(v) for v in values]


def figure(table: pl.DataFrame, chart: Chart, labels: Mapping[str, str]) -> go.Figure:
    """The table's chart: bars or lines, rates in percent, fen in yuan, CJK-capable font."""
    fig = go.Figure()
    dated = chart.x == "day"
    if dated:
        table = table.sort(chart.x)
    x_values = [cell(chart.x, v) if chart.x != "hour" else str(v) for v in table[chart.x]]
    if chart.series is not None:
        for number, (key, part) in enumerate(
            sorted(table.group_by(chart.series), key=lambda item: str(item[0][0]))
        ):
            column = chart.y[0]
            colour = PALETTE[number % len(PALETTE)]
            name = str(key[0])
            part = part.sort(chart.x)
            xs = [str(v) for v in part[chart.x]]
            ys = _y_values(column, part[column].to_list())
            if chart.kind == "line":
                fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines", line_color=colour))
            else:
                fig.add_trace(go.Bar(x=xs, y=ys, name=name, marker_color=colour))
    else:
        for number, column in enumerate(chart.y):
            colour = PALETTE[number % len(PALETTE)]
            ys = _y_values(column, table[column].to_list())
            name = labels.get(column, column)
            if chart.kind == "line":
                fig.add_trace(
                    go.Scatter(x=x_values, y=ys, name=name, mode="lines+markers", line_color=colour)
                )
            else:
                fig.add_trace(go.Bar(x=x_values, y=ys, name=name, marker_color=colour))
    unit = "%" if is_rate(chart.y[0]) else ""
    fig.update_layout(
        barmode="stack" if chart.stacked else "group",
        height=300,
        margin={"l": 48, "r": 16, "t": 16, "b": 48},
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "y": -0.2},
        showlegend=len(fig.data) > 1,
        yaxis={"ticksuffix": unit, "rangemode": "tozero"},
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    fig.update_xaxes(type="date" if dated else "category", showgrid=False)
    fig.update_yaxes(gridcolor="#e2e8f0")
    return fig


def panel(
    topic: Topic,
    name: str,
    table: pl.DataFrame,
    labels: Mapping[str, str],
    *,
    title: str,
) -> dict[str, Any]:
    """One table of a page as state values: title, chart (if any), headers, cells, counts."""
    columns = shown_columns(table)
    chart = CHARTS.get((topic, name))
    drawn = chart is not None and table.height > 0
    return {
        "key": name,
        "title": title,
        "figure": figure(table, chart, labels) if drawn and chart else go.Figure(),
        "has_chart": drawn,
        "headers": [labels.get(c, c) for c in columns],
        "rows": table_cells(table, columns),
        "total": table.height,
        "clipped": table.height > MAX_ROWS,
    }
