"""Settlement statements for a half-year: per reading hospital, with its clinics, ready to sign.

Built from the metrics engine's settlement lines (one per final report), so
every figure reconciles with the reports to the fen. Written as CSV (one
row per hospital and clinic), Excel (hospitals, clinics, and every line) or
PDF (one statement per hospital with signature blocks). Amounts are kept in
fen and shown as yuan with two decimals, never through floating point.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import xlsxwriter  # type: ignore[import-untyped]
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import Connection, select

from fhir.pdf import cjk_font
from integration.metrics_frames import Filters, load_frames, local_days
from integration.metrics_settlement import SettlementStatement, settlement
from integration.settings import Settings
from integration.sla import ReadingCalendar
from models import metadata
from models.errors import NotFound, ValidationError

FACILITY = metadata.tables["facility"]
_PERIOD = re.compile(r"(\d{4})H([12])")
COLUMNS = ("reports", "body_parts", "amount_fen", "clinic_fen", "bureau_fen")


@dataclass(frozen=True)
class Period:
    label: str  # 2026H1
    first: date
    last: date


@dataclass(frozen=True)
class HospitalStatement:
    """One reading hospital's half-year: its clinics' rows and their totals (fen)."""

    code: str
    name: str
    clinics: tuple[tuple[str, str, int, int, int, int, int], ...]  # code, name, then COLUMNS
    totals: tuple[int, int, int, int, int]


@dataclass(frozen=True)
class SettlementExport:
    period: Period
    hospitals: tuple[HospitalStatement, ...]
    statement: SettlementStatement


def parse_period(text: str) -> Period:
    match = _PERIOD.fullmatch(text.strip().upper())
    if match is None:
        raise ValidationError(f"{text!r} is not a half-year like 2026H1", field="period")
    year, half = int(match.group(1)), int(match.group(2))
    if half == 1:
        return Period(label=f"{year}H1", first=date(year, 1, 1), last=date(year, 6, 30))
    return Period(label=f"{year}H2", first=date(year, 7, 1), last=date(year, 12, 31))


def yuan(fen: int, *, grouping: bool = True) -> str:
    """Fen as yuan with two decimals, exactly (``123456`` → ``1,234.56``)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouping else f"{sign}{whole}.{cents:02d}"


def build(
    connection: Connection, *, period: Period, settings: Settings, hospital: str | None = None
) -> SettlementExport:
    """The half-year's statements, for one reading hospital (by code) or all of them."""
    names = {
        int(row.id): (str(row.code), str(row.name))
        for row in connection.execute(select(FACILITY.c.id, FACILITY.c.code, FACILITY.c.name))
    }
    filters = Filters()
    if hospital is not None:
        chosen = [fid for fid, (code, _name) in names.items() if code == hospital]
        if not chosen:
            raise NotFound(f"no facility with code {hospital!r}")
        filters = Filters(reading_centre_ids=frozenset(chosen))
    start, end = local_days(period.first, period.last, settings.timezone)
    frames = load_frames(
        connection, start=start, end=end, filters=filters, zone=settings.timezone,
        calendar=ReadingCalendar.from_settings(settings),
    )  # fmt: skip
    statement = settlement(frames, settings=settings)
    per_clinic = (
        statement.lines.group_by("reading_centre_id", "clinic_id")
        .agg(
            pl.len().cast(pl.Int64).alias("reports"),
            *(pl.col(column).sum().cast(pl.Int64) for column in COLUMNS[1:]),
        )
        .sort("reading_centre_id", "clinic_id")
    )
    hospitals = []
    for centre_id in sorted(set(per_clinic["reading_centre_id"].to_list())):
        rows = per_clinic.filter(pl.col("reading_centre_id") == centre_id)
        clinics = tuple(
            (
                *names.get(int(row["clinic_id"]), (str(row["clinic_id"]), "")),
                *(int(row[column]) for column in COLUMNS),
            )
            for row in rows.iter_rows(named=True)
        )
        totals = tuple(int(rows[column].sum()) for column in COLUMNS)
        code, name = names.get(int(centre_id), (str(centre_id), ""))
        hospitals.append(
            HospitalStatement(
                code=code,
                name=name,
                clinics=clinics,  # type: ignore[arg-type]
                totals=totals,  # type: ignore[arg-type]
            )
        )
    return SettlementExport(period=period, hospitals=tuple(hospitals), statement=statement)


HEADER_ZH = ("阅片医院", "医院编码", "检查机构", "检查机构编码", "报告数", "部位数", "金额(元)",
             "卫生院承担(元)", "补助承担(元)")  # fmt: skip


def plain(fen: int) -> str:
    return yuan(fen, grouping=False)


def to_csv(export: SettlementExport) -> str:
    """One row per hospital and clinic, then a total row per hospital; amounts in yuan."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("period", *HEADER_ZH))
    for hospital in export.hospitals:
        for code, name, reports, parts, amount, clinic, bureau in hospital.clinics:
            writer.writerow(
                (export.period.label, hospital.name, hospital.code, name, code, reports, parts,
                 plain(amount), plain(clinic), plain(bureau))
            )  # fmt: skip
        reports, parts, amount, clinic, bureau = hospital.totals
        writer.writerow(
            (export.period.label, hospital.name, hospital.code, "合计", "", reports, parts,
             plain(amount), plain(clinic), plain(bureau))
        )  # fmt: skip
    return out.getvalue()


def write_xlsx(export: SettlementExport, path: Path) -> None:
    """Sheets: 阅片医院 (hospital totals), 检查机构 (clinic rows), 明细 (every report line)."""
    hospitals = pl.DataFrame(
        [
            {"医院编码": h.code, "阅片医院": h.name, **dict(zip(COLUMNS, h.totals, strict=True))}
            for h in export.hospitals
        ]
    )
    clinics = pl.DataFrame(
        [
            {
                "医院编码": h.code,
                "阅片医院": h.name,
                "检查机构编码": row[0],
                "检查机构": row[1],
                **dict(zip(COLUMNS, row[2:], strict=True)),
            }
            for h in export.hospitals
            for row in h.clinics
        ]
    )
    lines = export.statement.lines.with_columns(
        pl.col("finalised_at").dt.convert_time_zone("Asia/Shanghai").dt.replace_time_zone(None),
        # Dates as text: a tariff "since always" (date.min) has no Excel serial number.
        pl.col(pl.Date).cast(pl.Utf8).replace({date.min.isoformat(): ""}),
    )
    with xlsxwriter.Workbook(str(path)) as workbook:
        hospitals.write_excel(workbook, worksheet="阅片医院", autofit=True)
        clinics.write_excel(workbook, worksheet="检查机构", autofit=True)
        lines.write_excel(workbook, worksheet="明细", autofit=True)


def to_pdf(export: SettlementExport, *, issued: date) -> bytes:
    """One A4 statement per hospital: its clinics, totals, and where each party signs."""
    font = cjk_font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=22, alignment=1)
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=15)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"远程影像诊断结算单 {export.period.label}",
        author="Huren",
        invariant=1,
    )
    story: list[object] = []
    for number, hospital in enumerate(export.hospitals):
        if number:
            story.append(PageBreak())
        half = "上半年" if export.period.label.endswith("H1") else "下半年"
        story += [
            Paragraph("远程影像诊断服务费结算单", title),
            Spacer(1, 4 * mm),
            Paragraph(
                f"阅片医院：{hospital.name}（{hospital.code}）　结算期间："
                f"{export.period.first.year}年{half}（{export.period.first.isoformat()} 至 "
                f"{export.period.last.isoformat()}）",
                body,
            ),
            Spacer(1, 4 * mm),
        ]
        rows: list[tuple[str, ...]] = [
            ("检查机构", "编码", "报告数", "部位数", "金额(元)", "卫生院承担(元)", "补助承担(元)")
        ]
        for code, name, reports, parts, amount, clinic, bureau in hospital.clinics:
            rows.append(
                (name, code, str(reports), str(parts), yuan(amount), yuan(clinic), yuan(bureau))
            )
        reports, parts, amount, clinic, bureau = hospital.totals
        rows.append(
            ("合计", "", str(reports), str(parts), yuan(amount), yuan(clinic), yuan(bureau))
        )
        table = Table(rows, repeatRows=1, colWidths=[42 * mm, 20 * mm] + [22 * mm] * 5)
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), font, 9),
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6f4f1")),
                    ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#f3f3f3")),
                    ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
                ]
            )
        )
        story += [
            table,
            Spacer(1, 6 * mm),
            Paragraph(_basis(export), body),
            Spacer(1, 14 * mm),
            Paragraph("阅片医院（盖章）：＿＿＿＿＿＿　经办人：＿＿＿＿　日期：＿＿＿＿", body),
            Spacer(1, 8 * mm),
            Paragraph("卫生健康局（盖章）：＿＿＿＿＿＿　审核人：＿＿＿＿　日期：＿＿＿＿", body),
            Spacer(1, 8 * mm),
            Paragraph(f"生成日期：{issued.isoformat()}（Huren 互认平台）", body),
        ]
    if not story:
        story.append(Paragraph(f"{export.period.label}：没有终审报告，无需结算。", body))
    document.build(story)  # type: ignore[arg-type]
    return buffer.getvalue()


def _basis(export: SettlementExport) -> str:
    """How the amounts were reached, in one sentence under the table."""
    rates = export.statement.lines["rate_fen"].unique().to_list()
    rate = f"每部位 {yuan(int(rates[0]))} 元" if len(rates) == 1 else "各期间的费率"
    return f"按{rate}结算，卫生院与财政补助各承担其份额；明细与终审报告逐条对应。"
