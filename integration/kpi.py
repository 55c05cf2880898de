"""The month's key figures for the bureau, beside the month before: `huren report kpi`.

Every figure comes from the metrics engine over the month's frames (months in
Asia/Shanghai); rates keep the counts behind them, so "3 of 4" is not read
as 75% of something large, and a month with no data says so instead of 0%.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection

from integration.metrics import (
    QcIndicators,
    Share,
    consultations,
    qc_indicators,
    recognition,
    settlement,
    turnaround,
    volume,
)
from integration.metrics_frames import Frames, load_frames, local_days
from integration.settings import Settings
from integration.sla import ReadingCalendar
from models.errors import ValidationError


@dataclass(frozen=True)
class Figure:
    """One key figure: a value (None: no data), its counts when it is a rate, and its unit."""

    key: str
    label: str
    value: float | None
    unit: str  # "count", "minutes", "rate", "yuan"
    counts: tuple[int, int] | None = None


@dataclass(frozen=True)
class KpiReport:
    month: str
    previous: str
    figures: tuple[tuple[Figure, Figure], ...]  # (this month, the month before)


def month_days(month: str) -> tuple[date, date]:
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except ValueError:
        raise ValidationError(f"{month!r} is not a month like 2026-10", field="month") from None
    following = date(year + number // 12, number % 12 + 1, 1)
    return first, following - timedelta(days=1)


def _previous(month: str) -> str:
    first, _ = month_days(month)
    before = first - timedelta(days=1)
    return f"{before.year:04d}-{before.month:02d}"


def _share(key: str, label: str, share: Share) -> Figure:
    return Figure(key, label, share.rate, "rate", (share.numerator, share.denominator))


def figures(frames: Frames, *, settings: Settings, now: datetime) -> tuple[Figure, ...]:
    """The bulletin's headline figures for one window of frames."""
    steps = {row["step"]: row for row in turnaround(frames).iter_rows(named=True)}
    recognised = recognition(frames).row(0, named=True)
    asked = consultations(frames).row(0, named=True)
    return assemble(
        exams=int(volume(frames).row(0, named=True)["exams"]),
        final_median=(steps.get("arrival_to_final") or {}).get("median_minutes"),
        qc=qc_indicators(frames, now=now),
        recognised=Share.of(int(recognised["accepted"]), int(recognised["decisions"])),
        savings_fen=int(recognised["avoided_fee_fen"]),
        answered=Share.of(int(asked["answered"]), int(asked["requested"])),
        settlement_fen=settlement(frames, settings=settings).amount_fen,
    )


def assemble(
    *,
    exams: int,
    final_median: float | None,
    qc: QcIndicators,
    recognised: Share,
    savings_fen: int,
    answered: Share,
    settlement_fen: int,
) -> tuple[Figure, ...]:
    """The key figures, labelled and in the bulletin's order, from their values."""
    return (
        Figure("exams", "检查量", float(exams), "count"),
        Figure("arrival_to_final_median", "到达至终审中位时间", final_median, "minutes"),
        _share("sla_compliance", "时限达标率", qc.sla_compliance),
        _share(
            "emergency_report_within_2h", "急诊报告2小时内完成率", qc.emergency_report_within_2h
        ),
        _share(
            "critical_notified_within_10min",
            "危急值10分钟内通报率",
            qc.critical_notified_within_10min,
        ),
        _share("correction_rate", "报告修正率", qc.correction_rate),
        _share("report_writing_compliance", "报告书写合格率", qc.report_writing_compliance),
        _share("image_artefact_rate", "图像伪影率", qc.image_artefact_rate),
        _share("a_grade_rate", "甲级片率", qc.a_grade_rate),
        _share("retake_rate", "重拍率", qc.retake_rate),
        _share("positive_rate_ct_mr", "CT/MR阳性率", qc.positive_rate_ct_mr),
        _share("recognition_rate", "互认采纳率", recognised),
        Figure("recognition_savings", "互认节省费用", savings_fen / 100, "yuan"),
        _share("consultations_answered", "会诊答复率", answered),
        Figure("settlement", "阅片结算金额", settlement_fen / 100, "yuan"),
    )


def monthly_report(
    connection: Connection,
    *,
    month: str,
    settings: Settings,
    now: datetime,
) -> KpiReport:
    previous = _previous(month)
    computed = []
    for which in (month, previous):
        first, last = month_days(which)
        start, end = local_days(first, last, settings.timezone)
        frames = load_frames(
            connection, start=start, end=end, zone=settings.timezone,
            calendar=ReadingCalendar.from_settings(settings),
        )  # fmt: skip
        computed.append(figures(frames, settings=settings, now=now))
    return KpiReport(
        month=month,
        previous=previous,
        figures=tuple(zip(computed[0], computed[1], strict=True)),
    )


def shown(figure: Figure) -> str:
    """A figure as the bureau reads it: 87.0% (87/100), 27.3 分钟, 1,234.00 元, or 无数据."""
    if figure.value is None:
        return "无数据"
    if figure.unit == "rate":
        counts = f" ({figure.counts[0]}/{figure.counts[1]})" if figure.counts else ""
        return f"{figure.value:.1%}{counts}"
    if figure.unit == "minutes":
        return f"{figure.value:.1f} 分钟"
    if figure.unit == "yuan":
        return f"{figure.value:,.2f} 元"
    return f"{figure.value:,.0f}"


def change(this: Figure, before: Figure) -> str:
    """Month-on-month change: points for rates, percent for amounts; blank without data."""
    if this.value is None or before.value is None:
        return ""
    if this.unit == "rate":
        return f"{(this.value - before.value) * 100:+.1f} 个百分点"
    if before.value == 0:
        return ""
    return f"{(this.value - before.value) / before.value:+.1%}"


def to_text(report: KpiReport) -> str:
    width = max(len(this.label) for this, _ in report.figures) + 2
    lines = [f"{report.month} 关键指标（环比 {report.previous}）"]
    for this, before in report.figures:
        lines.append(
            f"{this.label:<{width}}{shown(this):<24}{shown(before):<24}{change(this, before)}"
        )
    return "\n".join(lines) + "\n"


def to_csv(report: KpiReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("key", "label", "unit", report.month, "counts", report.previous, "counts"))
    for this, before in report.figures:
        writer.writerow(
            (
                this.key,
                this.label,
                this.unit,
                "" if this.value is None else f"{this.value:.6g}",
                "" if this.counts is None else f"{this.counts[0]}/{this.counts[1]}",
                "" if before.value is None else f"{before.value:.6g}",
                "" if before.counts is None else f"{before.counts[0]}/{before.counts[1]}",
            )
        )
    return out.getvalue()
