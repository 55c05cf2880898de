"""The region's monthly operations bulletin (运行月报) as a PDF: `huren report bulletin`.

What the regional documents ask the platform to publish each month: volumes,
consultations per hospital, SLA compliance, corrections, retakes, critical
results, recognition and its savings, each beside the month before, with
charts. :func:`build_bulletin` is pure over frames covering the twelve months
up to the bulletin's month; :func:`bulletin_pdf` lays it out.

The same data gives the same bytes: the figures are judged *as of* a time
passed in (the CLI uses the day after the month, or now while it runs), and
the PDF is written with reportlab's ``invariant`` mode (fixed id and dates).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import polars as pl
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select

from fhir.pdf import cjk_font
from integration.analytics import Period, facility_names, key_figure_table, named, narrowed
from integration.analytics_store import AnalyticsStore
from integration.kpi import Figure, figures, month_days, shown
from integration.metrics import (
    consultations,
    corrections,
    critical_notifications,
    recognition,
    refusals,
    retake_rate,
    sla_compliance,
    volume,
)
from integration.metrics_frames import Frames, local_days
from integration.settings import Settings
from models import metadata
from models.enums import FacilityKind, RefusalReason

TREND_MONTHS = 12
REASON_LABELS = {
    RefusalReason.condition_changed.value: "病情变化",
    RefusalReason.conflicts_with_clinical.value: "结果与临床表现不符",
    RefusalReason.emergency.value: "急诊、急救",
    RefusalReason.rapid_change.value: "项目变化快",
    RefusalReason.other.value: "其他",
}
ACCENT = colors.HexColor("#1f6f8b")
PREVIOUS = colors.HexColor("#b8c4cc")


@dataclass(frozen=True, eq=False)
class Bulletin:
    """Every table of the bulletin; ``previous_*`` columns hold the month before."""

    region: str
    month: str
    previous: str
    as_of: datetime
    zone: str
    key_figures: pl.DataFrame
    volume_by_modality: pl.DataFrame
    volume_by_facility: pl.DataFrame
    consultations_by_hospital: pl.DataFrame
    sla_by_hospital: pl.DataFrame
    sla_trend: pl.DataFrame
    corrections_by_hospital: pl.DataFrame
    retakes_by_clinic: pl.DataFrame
    critical_by_hospital: pl.DataFrame
    recognition_trend: pl.DataFrame
    refusals_by_reason: pl.DataFrame


def previous_month(month: str) -> str:
    first, _ = month_days(month)
    before = first - timedelta(days=1)
    return f"{before.year:04d}-{before.month:02d}"


def beside(
    this: pl.DataFrame, before: pl.DataFrame, keys: Sequence[str], values: Sequence[str]
) -> pl.DataFrame:
    """This month's ``values`` per key with the month before's as ``previous_<value>``."""
    old = before.select(*keys, *(pl.col(v).alias(f"previous_{v}") for v in values))
    joined = this.select(*keys, *values).join(
        old, on=list(keys), how="full", coalesce=True, nulls_equal=True
    )
    return joined.sort(list(keys), nulls_last=True)


def build_bulletin(
    frames: Frames,
    *,
    month: str,
    as_of: datetime,
    settings: Settings,
    names: Mapping[int, str],
    region: str,
) -> Bulletin:
    """The bulletin of ``month``; ``frames`` cover the months of the trends up to it."""
    previous = previous_month(month)
    this = narrowed(frames, *local_days(*month_days(month), frames.zone))
    before = narrowed(frames, *local_days(*month_days(previous), frames.zone))

    def both(metric: str, keys: Sequence[str], values: Sequence[str], **kw: object) -> pl.DataFrame:
        function = _METRICS[metric]
        return named(beside(function(this, **kw), function(before, **kw), keys, values), names)

    key_figures = key_figure_table(
        figures(this, settings=settings, now=as_of), figures(before, settings=settings, now=as_of)
    )
    volume_by_facility = both("volume", ["clinic_id"], ["exams"], by=("clinic",)).filter(
        pl.col("exams").fill_null(0) > 0
    )
    return Bulletin(
        region=region,
        month=month,
        previous=previous,
        as_of=as_of,
        zone=frames.zone,
        key_figures=key_figures,
        volume_by_modality=both("volume", ["modality"], ["exams"], by=("modality",)),
        volume_by_facility=volume_by_facility,
        consultations_by_hospital=both(
            "consultations",
            ["reading_centre_id"],
            ["requested", "answered", "median_answer_minutes"],
            by=("reading_centre",),
        ),
        sla_by_hospital=both(
            "sla",
            ["reading_centre_id"],
            ["decided", "met", "rate"],
            by=("reading_centre",),
            now=as_of,
        ),
        sla_trend=sla_compliance(frames, now=as_of, by=("month",)).select(
            "month", "decided", "met", "rate"
        ),
        corrections_by_hospital=both(
            "corrections",
            ["reading_centre_id"],
            ["finalised", "corrected", "correction_rate"],
            by=("reading_centre",),
        ),
        retakes_by_clinic=both(
            "retakes", ["clinic_id"], ["studies", "retakes", "retake_rate"], by=("clinic",)
        ).filter(pl.col("studies").fill_null(0) > 0),
        critical_by_hospital=both(
            "critical",
            ["reading_centre_id"],
            ["total", "decided", "met", "rate", "median_notify_minutes"],
            by=("reading_centre",),
            now=as_of,
        ),
        recognition_trend=recognition(frames, by=("month",)).select(
            "month", "decisions", "accepted", "refused", "recognition_rate", "avoided_fee_fen"
        ),
        refusals_by_reason=beside(
            refusals(this, by=("reason",)),
            refusals(before, by=("reason",)),
            ["refusal_reason"],
            ["refused"],
        ),
    )


_METRICS: dict[str, Callable[..., pl.DataFrame]] = {
    "volume": volume,
    "consultations": consultations,
    "sla": sla_compliance,
    "corrections": corrections,
    "retakes": retake_rate,
    "critical": critical_notifications,
}


def region_name(store: AnalyticsStore) -> str:
    """The health bureau's name (the region's owner), else a plain title."""
    facility = metadata.tables["facility"]
    with store.engine.connect() as connection:
        name = connection.execute(
            select(facility.c.name)
            .where(facility.c.kind == FacilityKind.bureau)
            .order_by(facility.c.id)
            .limit(1)
        ).scalar_one_or_none()
    return str(name) if name else "区域"


def bulletin_as_of(month: str, *, now: datetime, zone: str) -> datetime:
    """The day after the month ends (so a closed month always reads the same), or ``now``."""
    _, end = local_days(*month_days(month), zone)
    return min(end + timedelta(days=1), now)


def bulletin_from_store(
    store: AnalyticsStore, *, month: str, settings: Settings, now: datetime
) -> Bulletin:
    """The bulletin of ``month`` from the store's snapshot (trends over twelve months)."""
    period = Period.month(month, settings.timezone).months_back(TREND_MONTHS)
    frames = store.frames(*period.window, lean=True)
    return build_bulletin(
        frames,
        month=month,
        as_of=bulletin_as_of(month, now=now, zone=settings.timezone),
        settings=settings,
        names=facility_names(store),
        region=region_name(store),
    )


# ------------------------------------------------------------------ the PDF


def _number(value: object, *, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _rate(value: object) -> str:
    return "无数据" if value is None else f"{float(str(value)):.1%}"


def _points(this: object, before: object) -> str:
    if this is None or before is None:
        return ""
    return f"{(float(str(this)) - float(str(before))) * 100:+.1f}"


def _relative(this: object, before: object) -> str:
    if this is None or before is None or float(str(before)) == 0:
        return ""
    return f"{(float(str(this)) - float(str(before))) / float(str(before)):+.1%}"


def _month_label(month: str) -> str:
    year, number = month.split("-")
    return f"{year}年{int(number)}月"


def _table(rows: list[list[str]], widths: Sequence[float], font: str) -> Table:
    table = Table(rows, colWidths=list(widths), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 8.5),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, ACCENT),
                ("LINEBELOW", (0, -1), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8f1f5")),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f7f9fa")]),
                ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _bars(
    categories: Sequence[str],
    series: Sequence[Sequence[float]],
    legend: Sequence[str],
    font: str,
    *,
    width: float = 170 * mm,
    height: float = 55 * mm,
    value_format: str = "%.0f",
) -> Drawing:
    drawing = Drawing(width, height)
    if not categories:
        return _no_data(drawing, font)
    chart = VerticalBarChart()
    chart.x, chart.y = round(12 * mm), round(10 * mm)
    chart.width, chart.height = round(width - 40 * mm), round(height - 16 * mm)
    chart.data = [list(values) for values in series]
    chart.categoryAxis.categoryNames = list(categories)
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.labels.angle = 30 if len(categories) > 8 else 0
    chart.categoryAxis.labels.boxAnchor = "ne" if len(categories) > 8 else "n"
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = value_format
    chart.barSpacing = 1
    chart.groupSpacing = 4
    for index, colour in enumerate((ACCENT, PREVIOUS)[: len(chart.data)]):
        chart.bars[index].fillColor = colour
        chart.bars[index].strokeColor = None
    drawing.add(chart)
    if len(legend) > 1:
        key = Legend()
        key.x, key.y = round(width - 25 * mm), round(height - 6 * mm)
        key.fontName, key.fontSize = font, 7
        key.colorNamePairs = list(zip((ACCENT, PREVIOUS), legend, strict=False))
        drawing.add(key)
    return drawing


def _line(
    categories: Sequence[str],
    values: Sequence[float | None],
    font: str,
    *,
    title: str,
    width: float = 170 * mm,
    height: float = 50 * mm,
) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(12 * mm, height - 6 * mm, title, fontName=font, fontSize=8))
    points = [v * 100 if v is not None else None for v in values]
    known = [p for p in points if p is not None]
    if not known:
        return _no_data(drawing, font)
    chart = HorizontalLineChart()
    chart.x, chart.y = round(12 * mm), round(9 * mm)
    chart.width, chart.height = round(width - 24 * mm), round(height - 18 * mm)
    chart.data = [points]
    chart.valueAxis.valueMin = max(0.0, min(known) - 5)
    chart.valueAxis.valueMax = 100
    chart.valueAxis.labelTextFormat = "%.0f%%"
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    chart.categoryAxis.categoryNames = list(categories)
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 7
    chart.lines[0].strokeColor = ACCENT
    chart.lines[0].strokeWidth = 1.5
    drawing.add(chart)
    return drawing


def _no_data(drawing: Drawing, font: str) -> Drawing:
    """A chart's place when there is nothing to draw: say so rather than draw empty axes."""
    drawing.add(
        String(drawing.width / 2, drawing.height / 2, "无数据", fontName=font, fontSize=10,
               textAnchor="middle", fillColor=colors.grey)
    )  # fmt: skip
    return drawing


def _name(row: Mapping[str, object], column: str) -> str:
    name = row.get(f"{column}_name")
    return str(name) if name else str(row.get(f"{column}_id") or "未知")


def bulletin_pdf(bulletin: Bulletin) -> bytes:
    """The bulletin as an A4 PDF, in Chinese."""
    font = cjk_font()
    title_style = ParagraphStyle("title", fontName=font, fontSize=17, leading=24, alignment=1)
    sub = ParagraphStyle("sub", fontName=font, fontSize=9.5, leading=14, alignment=1)
    heading = ParagraphStyle(
        "heading", fontName=font, fontSize=12, leading=18, spaceBefore=8, spaceAfter=3,
        textColor=ACCENT,
    )  # fmt: skip
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=14, wordWrap="CJK")
    this, before = _month_label(bulletin.month), _month_label(bulletin.previous)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"区域影像诊断中心运行月报 {bulletin.month}",
        author="Huren",
        invariant=1,
    )
    story: list[Flowable] = [
        Paragraph(f"{escape(bulletin.region)}区域影像诊断中心运行月报", title_style),
        Paragraph(f"{this}（环比{before}）　数据截至 {_local(bulletin)}", sub),
        Spacer(1, 4 * mm),
    ]

    # 一、主要指标
    rows = [["指标", this, before, "环比"]]
    for row in bulletin.key_figures.iter_rows(named=True):
        rows.append(
            [
                str(row["label"]),
                _figure(row, "value", "numerator", "denominator"),
                _figure(row, "previous", "previous_numerator", "previous_denominator"),
                _change(row),
            ]
        )
    story += [
        Paragraph("一、主要指标", heading),
        _table(rows, [52 * mm, 45 * mm, 45 * mm, 32 * mm], font),
    ]

    # 二、检查量
    modality = bulletin.volume_by_modality
    story += [
        Paragraph("二、检查量", heading),
        _bars(
            [str(m or "未知") for m in modality["modality"].to_list()],
            [
                [float(v or 0) for v in modality["exams"].to_list()],
                [float(v or 0) for v in modality["previous_exams"].to_list()],
            ],
            [this, before],
            font,
            height=48 * mm,
        ),
    ]
    rows = [["检查机构", this, before, "环比"]]
    for row in bulletin.volume_by_facility.iter_rows(named=True):
        rows.append(
            [
                _name(row, "clinic"),
                _number(row["exams"]),
                _number(row["previous_exams"]),
                _relative(row["exams"], row["previous_exams"]),
            ]
        )
    story.append(_table(rows, [70 * mm, 35 * mm, 35 * mm, 34 * mm], font))

    # 三、会诊
    rows = [["阅片医院", "申请", "已答复", "答复中位时间(分钟)", f"{before}申请", "环比"]]
    for row in bulletin.consultations_by_hospital.iter_rows(named=True):
        rows.append(
            [
                _name(row, "reading_centre"),
                _number(row["requested"]),
                _number(row["answered"]),
                _number(row["median_answer_minutes"], digits=1),
                _number(row["previous_requested"]),
                _relative(row["requested"], row["previous_requested"]),
            ]
        )
    story += [
        KeepTogether(
            [
                Paragraph("三、各医院会诊", heading),
                _table(rows, [50 * mm, 20 * mm, 20 * mm, 34 * mm, 28 * mm, 22 * mm], font),
            ]
        )
    ]

    # 四、时限达标
    trend = bulletin.sla_trend
    rows = [["阅片医院", "已判定", "达标", "达标率", f"{before}达标率", "环比(百分点)"]]
    for row in bulletin.sla_by_hospital.iter_rows(named=True):
        rows.append(
            [
                _name(row, "reading_centre"),
                _number(row["decided"]),
                _number(row["met"]),
                _rate(row["rate"]),
                _rate(row["previous_rate"]),
                _points(row["rate"], row["previous_rate"]),
            ]
        )
    story += [
        KeepTogether(
            [
                Paragraph("四、报告时限达标（初诊30分钟、审核30分钟；急诊30分钟内终审）", heading),
                _line(
                    [m[2:] for m in trend["month"].to_list()],
                    trend["rate"].to_list(),
                    font,
                    title="近12个月时限达标率(%)",
                ),
                _table(rows, [50 * mm, 22 * mm, 22 * mm, 24 * mm, 28 * mm, 28 * mm], font),
            ]
        )
    ]

    # 五、报告修正
    rows = [["阅片医院", "终审报告", "修正", "修正率", f"{before}修正率", "环比(百分点)"]]
    for row in bulletin.corrections_by_hospital.iter_rows(named=True):
        rows.append(
            [
                _name(row, "reading_centre"),
                _number(row["finalised"]),
                _number(row["corrected"]),
                _rate(row["correction_rate"]),
                _rate(row["previous_correction_rate"]),
                _points(row["correction_rate"], row["previous_correction_rate"]),
            ]
        )
    story += [
        KeepTogether(
            [
                Paragraph("五、报告修正", heading),
                _table(rows, [50 * mm, 22 * mm, 22 * mm, 24 * mm, 28 * mm, 28 * mm], font),
            ]
        )
    ]

    # 六、重拍
    rows = [["检查机构", "检查", "重拍", "重拍率", f"{before}重拍率", "环比(百分点)"]]
    for row in bulletin.retakes_by_clinic.iter_rows(named=True):
        rows.append(
            [
                _name(row, "clinic"),
                _number(row["studies"]),
                _number(row["retakes"]),
                _rate(row["retake_rate"]),
                _rate(row["previous_retake_rate"]),
                _points(row["retake_rate"], row["previous_retake_rate"]),
            ]
        )
    story += [
        Paragraph("六、图像重拍", heading),
        _table(rows, [50 * mm, 22 * mm, 22 * mm, 24 * mm, 28 * mm, 28 * mm], font),
    ]

    # 七、危急值
    rows = [["阅片医院", "危急值", "10分钟内通报", "通报率", "通报中位(分钟)", f"{before}通报率"]]
    for row in bulletin.critical_by_hospital.iter_rows(named=True):
        rows.append(
            [
                _name(row, "reading_centre"),
                _number(row["total"]),
                _number(row["met"]),
                _rate(row["rate"]),
                _number(row["median_notify_minutes"], digits=1),
                _rate(row["previous_rate"]),
            ]
        )
    story += [
        KeepTogether(
            [
                Paragraph("七、危急值通报", heading),
                _table(rows, [50 * mm, 22 * mm, 26 * mm, 22 * mm, 26 * mm, 28 * mm], font),
            ]
        )
    ]

    # 八、互认
    recognised = bulletin.recognition_trend
    savings = [float(v or 0) / 100 for v in recognised["avoided_fee_fen"].to_list()]
    rows = [["月份", "提示决定", "采纳", "拒绝", "采纳率", "节省费用(元)"]]
    for row, saved in zip(recognised.iter_rows(named=True), savings, strict=True):
        rows.append(
            [
                _month_label(str(row["month"])),
                _number(row["decisions"]),
                _number(row["accepted"]),
                _number(row["refused"]),
                _rate(row["recognition_rate"]),
                f"{saved:,.2f}",
            ]
        )
    reasons = [["拒绝原因", this, before]]
    for row in bulletin.refusals_by_reason.iter_rows(named=True):
        reasons.append(
            [
                REASON_LABELS.get(str(row["refusal_reason"]), str(row["refusal_reason"])),
                _number(row["refused"] or 0),
                _number(row["previous_refused"] or 0),
            ]
        )
    story += [
        KeepTogether(
            [
                Paragraph("八、检查结果互认与节省费用", heading),
                _bars(
                    [m[2:] for m in recognised["month"].to_list()],
                    [savings],
                    ["节省费用(元)"],
                    font,
                    height=45 * mm,
                ),
                _table(rows, [30 * mm, 26 * mm, 24 * mm, 24 * mm, 26 * mm, 44 * mm], font),
            ]
        ),
        Spacer(1, 3 * mm),
        _table(reasons, [70 * mm, 50 * mm, 54 * mm], font),
        Spacer(1, 5 * mm),
        Paragraph(
            "说明：比率均附分子/分母；“无数据”表示当月没有可计算的对象。时限按检查到达中心起计；"
            "环比对比率为百分点差，对数量为相对变化。本月报由 Huren 互认平台依据终审报告生成。",
            body,
        ),
    ]
    document.build(story)
    return buffer.getvalue()


def _local(bulletin: Bulletin) -> str:
    return bulletin.as_of.astimezone(ZoneInfo(bulletin.zone)).strftime("%Y-%m-%d %H:%M")


def _figure(row: Mapping[str, object], value: str, numerator: str, denominator: str) -> str:
    counts = None
    if row[numerator] is not None and row[denominator] is not None:
        counts = (int(str(row[numerator])), int(str(row[denominator])))
    number = row[value]
    return shown(
        Figure(
            key=str(row["key"]),
            label=str(row["label"]),
            value=None if number is None else float(str(number)),
            unit=str(row["unit"]),
            counts=counts,
        )
    )


def _change(row: Mapping[str, object]) -> str:
    change = row["change"]
    if change is None:
        return ""
    if row["unit"] == "rate":
        return f"{float(str(change)) * 100:+.1f} 个百分点"
    return f"{float(str(change)):+.1%}"
