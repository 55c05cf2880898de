"""The analytics pages as the portal asks for them: who may see them, which tables, exports.

`Dashboards` (integration/analytics.py) computes each page's frames; this
module checks the user, names each page's tables, turns a table into a CSV
or Excel file, and audits every export. Bytes out, no files on disk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import polars as pl
import xlsxwriter  # type: ignore[import-untyped]
from sqlmodel import Session, col, select

from integration.analytics import Dashboards, Period
from integration.bulletin import bulletin_from_store, bulletin_pdf
from integration.metrics_frames import Filters
from integration.permissions import Action, Actor, require
from integration.reading_desk import record_view
from integration.settings import Settings
from integration.settlement_export import build as build_settlement
from integration.settlement_export import parse_period, to_pdf
from models import ExamType, Facility
from models.enums import AuditAction, FacilityKind
from models.errors import NotFound, ValidationError


class Topic(StrEnum):
    overview = "overview"  # the leader's dashboard
    turnaround = "turnaround"
    quality = "quality"
    recognition = "recognition"
    equipment = "equipment"
    consultations = "consultations"
    settlement = "settlement"


# Each page's tables, in the order the page shows them (the dataclass field names).
TABLES: Mapping[Topic, tuple[str, ...]] = {
    Topic.overview: (
        "key_figures",
        "sla_trend",
        "turnaround_distribution",
        "correction_by_centre",
        "recognition_savings",
    ),
    Topic.turnaround: (
        "steps",
        "sla_by_month",
        "sla_by_centre",
        "sla_by_hour",
        "steps_by_centre",
        "overdue",
    ),
    Topic.quality: (
        "indicators",
        "corrections_by_month",
        "corrections_by_centre",
        "retakes_by_clinic",
        "image_grades_by_clinic",
        "critical_by_centre",
        "positive_rate_by_modality",
        "corrections_by_radiologist",
        "retakes_by_technologist",
    ),
    Topic.recognition: (
        "by_month",
        "refusals_by_reason",
        "by_clinic",
        "summary",
        "refusals_by_clinic",
        "refusals_by_clinician",
    ),
    Topic.equipment: (
        "volume_by_day",
        "utilisation_by_station",
        "volume_by_station",
        "utilisation_by_day",
    ),
    Topic.consultations: ("by_month", "by_centre", "by_expert_centre"),
    Topic.settlement: ("by_reading_centre", "totals", "by_clinic"),
}


@dataclass(frozen=True)
class AnalyticsQuery:
    topic: Topic
    first: date  # whole local days; the leader's dashboard reads only the month of `last`
    last: date
    reading_centre_id: int | None = None
    clinic_id: int | None = None
    modality: str = ""

    @property
    def month(self) -> str:
        return f"{self.last.year:04d}-{self.last.month:02d}"

    def filters(self) -> Filters:
        return Filters(
            reading_centre_ids=frozenset({self.reading_centre_id})
            if self.reading_centre_id
            else None,
            clinic_ids=frozenset({self.clinic_id}) if self.clinic_id else None,
            modalities=frozenset({self.modality}) if self.modality else None,
        )


@dataclass(frozen=True)
class FilterChoices:
    reading_centres: tuple[tuple[int, str, str, str], ...]  # id, code, name, name_en
    clinics: tuple[tuple[int, str, str, str], ...]
    modalities: tuple[str, ...]


def filter_choices(session: Session, *, actor: Actor) -> FilterChoices:
    require(actor, Action.view_analytics)
    facilities = session.exec(
        select(Facility).where(col(Facility.active).is_(True)).order_by(col(Facility.code))
    ).all()
    return FilterChoices(
        reading_centres=tuple(
            (int(f.id or 0), f.code, f.name, f.name_en) for f in facilities if f.is_reading_centre
        ),
        clinics=tuple(
            (int(f.id or 0), f.code, f.name, f.name_en)
            for f in facilities
            if f.kind in (FacilityKind.health_centre, FacilityKind.hospital)
        ),
        modalities=tuple(
            sorted({str(m) for m in session.exec(select(ExamType.modality).distinct()).all()})
        ),
    )


def page_tables(
    dashboards: Dashboards, *, actor: Actor, query: AnalyticsQuery, now: datetime
) -> dict[str, pl.DataFrame]:
    """The page's tables by name, for the query's period and filters."""
    require(actor, Action.view_analytics)
    if query.first > query.last:
        raise ValidationError("the period must start before it ends", field="period")
    zone = dashboards.settings.timezone
    period = Period(query.first, query.last, zone)
    filters = query.filters()
    page: Any
    if query.topic is Topic.overview:
        page = dashboards.leader(query.month, filters, now=now)
    elif query.topic is Topic.turnaround:
        page = dashboards.turnaround(period, filters, now=now)
    elif query.topic is Topic.quality:
        page = dashboards.quality(period, filters, now=now)
    elif query.topic is Topic.recognition:
        page = dashboards.recognition(period, filters)
    elif query.topic is Topic.equipment:
        page = dashboards.equipment(period, filters)
    elif query.topic is Topic.consultations:
        page = dashboards.consultations(period, filters)
    else:
        page = dashboards.settlement(period, filters)
    return {name: getattr(page, name) for name in TABLES[query.topic]}


def table_csv(table: pl.DataFrame, headers: Mapping[str, str]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens the Chinese right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([headers.get(name, name) for name in table.columns])
    for row in table.iter_rows():
        writer.writerow(["" if value is None else _plain(value) for value in row])
    return out.getvalue().encode("utf-8-sig")


def table_xlsx(table: pl.DataFrame, headers: Mapping[str, str], *, sheet: str) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True})
    worksheet = workbook.add_worksheet(sheet[:31])
    bold = workbook.add_format({"bold": True})
    for column, name in enumerate(table.columns):
        worksheet.write(0, column, headers.get(name, name), bold)
        worksheet.set_column(column, column, max(10, min(40, len(headers.get(name, name)) * 2)))
    for number, row in enumerate(table.iter_rows(), start=1):
        for column, value in enumerate(row):
            if value is None:
                continue
            worksheet.write(
                number, column, value if isinstance(value, int | float) else _plain(value)
            )
    workbook.close()
    return buffer.getvalue()


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def export_table(
    session: Session,
    dashboards: Dashboards,
    *,
    actor: Actor,
    query: AnalyticsQuery,
    table: str,
    fmt: str,
    headers: Mapping[str, str],
    now: datetime,
) -> tuple[str, bytes]:
    """One of the page's tables as ``csv`` or ``xlsx``: (file name, bytes); audited."""
    tables = page_tables(dashboards, actor=actor, query=query, now=now)
    if table not in tables:
        raise NotFound(f"no table {table!r} on the {query.topic.value} page")
    frame = tables[table]
    stem = f"{query.topic.value}-{table}-{query.first.isoformat()}-{query.last.isoformat()}"
    if fmt == "csv":
        name, body = f"{stem}.csv", table_csv(frame, headers)
    elif fmt == "xlsx":
        name, body = f"{stem}.xlsx", table_xlsx(frame, headers, sheet=table)
    else:
        raise ValidationError("export as csv or xlsx", field="format")
    _audit_export(session, actor, now, f"{name} ({frame.height} rows)")
    return name, body


def settlement_statement(
    session: Session,
    *,
    actor: Actor,
    half_year: str,
    hospital_code: str | None,
    settings: Settings,
    now: datetime,
) -> tuple[str, bytes]:
    """The signable PDF statement of a half-year (one page per hospital, or one hospital)."""
    require(actor, Action.view_analytics)
    period = parse_period(half_year)
    export = build_settlement(
        session.connection(), period=period, settings=settings, hospital=hospital_code or None
    )
    body = to_pdf(export, issued=now.astimezone(settings.zone).date())
    name = f"settlement-{period.label}{'-' + hospital_code if hospital_code else ''}.pdf"
    _audit_export(session, actor, now, name)
    return name, body


def monthly_bulletin(
    session: Session, dashboards: Dashboards, *, actor: Actor, month: str, now: datetime
) -> tuple[str, bytes]:
    """The region's operations bulletin of a month as PDF."""
    require(actor, Action.view_analytics)
    bulletin = bulletin_from_store(
        dashboards.store, month=month, settings=dashboards.settings, now=now
    )
    name = f"bulletin-{month}.pdf"
    body = bulletin_pdf(bulletin)
    _audit_export(session, actor, now, name)
    return name, body


def _audit_export(session: Session, actor: Actor, now: datetime, detail: str) -> None:
    record_view(
        session,
        actor=actor,
        entity_type="Analytics",
        entity_id=0,
        patient_id=None,
        now=now,
        action=AuditAction.export,
        detail=detail,
    )
