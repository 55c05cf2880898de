"""/report/<study>: a signed report as the clinic reads it, printable, and as a PDF."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.clinic import ReturnedReport
from integration.permissions import Action
from integration.services import portal_services
from models.errors import HurenError, NotFound, PermissionDenied
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import page_shell, tr, tr_key, when_allowed


def report_fields(report: ReturnedReport, zone_key: str) -> dict[str, Any]:
    zone = i18n.zone(zone_key)
    return {
        "accession": report.accession,
        "patient": report.patient_name,
        "sex_key": f"sex_{report.sex or 'U'}",
        "age": report.age,
        "exam": report.exam_name,
        "exam_en": report.exam_name_en or report.exam_name,
        "clinic": report.clinic_name,
        "centre": report.reading_centre_name,
        "status_key": f"report_{report.status.value}",
        "findings": report.findings,
        "impression": report.impression,
        "author": report.author,
        "auditor": report.auditor,
        "preliminary_at": i18n.local_datetime(report.preliminary_at, zone),
        "finalised_at": i18n.local_datetime(report.finalised_at, zone),
        "amended_at": i18n.local_datetime(report.amended_at, zone),
        "critical": report.critical,
        "opinions": list(report.opinions),
    }


class ReportState(SessionState):
    allowed: bool = False
    missing: bool = False
    shown_id: int = 0
    report: dict[str, Any] = {}

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.view_clinic)
        if refusal is not None:
            yield refusal
            return
        raw = str(self.router.page.params.get("study_id", ""))
        self.shown_id = int(raw) if raw.isdigit() else 0
        self.allowed, self.report = True, {}
        services = portal_services()
        try:
            found = await asyncio.to_thread(
                services.returned_report,
                self.user_id,
                self.shown_id,
                source_address=self.router.session.client_ip,
            )
        except (NotFound, PermissionDenied):
            self.missing = True
            return
        self.missing = False
        self.report = report_fields(found, services.settings.timezone)

    @rx.event
    async def download_pdf(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_clinic)
        if refusal is not None:
            yield refusal
            return
        try:
            name, document = await asyncio.to_thread(
                portal_services().returned_report_pdf,
                self.user_id,
                self.shown_id,
                source_address=self.router.session.client_ip,
            )
        except HurenError:
            self.missing = True
            return
        yield rx.download(data=document, filename=name, mime_type="application/pdf")


def _line(label_key: str, value: Any) -> rx.Component:
    return rx.hstack(
        rx.text(tr(label_key), size="2", color_scheme="gray", min_width="80px"),
        rx.text(value, size="2"),
        spacing="2",
    )


def report_page() -> rx.Component:
    r = ReportState.report
    english = ReportState.lang == i18n.EN
    sheet = rx.card(
        rx.vstack(
            rx.text(r["centre"], size="2", color_scheme="gray"),
            rx.heading(tr("report_sheet_title"), size="5", as_="h1"),
            rx.grid(
                _line(
                    "patient",
                    rx.text(r["patient"], " ", tr_key(r["sex_key"].to(str)), " ", r["age"]),
                ),
                _line("exam", rx.cond(english, r["exam_en"], r["exam"])),
                _line("accession", r["accession"]),
                _line("status", tr_key(r["status_key"].to(str))),
                _line("clinic", r["clinic"]),
                columns="2",
                spacing="2",
                width="100%",
            ),
            rx.cond(r["critical"], rx.callout(tr("critical_badge"), color_scheme="red")),
            rx.separator(size="4"),
            rx.text(tr("findings"), weight="bold"),
            rx.text(r["findings"], white_space="pre-wrap", data_testid="report-findings"),
            rx.text(tr("impression"), weight="bold"),
            rx.text(
                r["impression"],
                white_space="pre-wrap",
                weight="bold",
                data_testid="report-impression",
            ),
            rx.foreach(
                r["opinions"].to(list[str]),
                lambda o: rx.text(tr("opinion"), "：", o, size="2"),
            ),
            rx.separator(size="4"),
            _line("written_by", rx.text(r["author"], " ", r["preliminary_at"])),
            _line("signed_by", rx.text(r["auditor"], " ", r["finalised_at"])),
            rx.cond(r["amended_at"] != "", _line("amended_at", r["amended_at"])),
            spacing="3",
            width="100%",
        ),
        width="100%",
        class_name="report-sheet",
    )
    body = when_allowed(
        ReportState.allowed,
        rx.cond(
            ReportState.missing,
            rx.callout(tr("report_missing"), color_scheme="amber", data_testid="report-missing"),
            rx.vstack(
                rx.hstack(
                    rx.link("← ", tr("nav_clinic"), href=routes.CLINIC, size="2"),
                    rx.spacer(),
                    rx.button(
                        tr("print"),
                        size="1",
                        variant="soft",
                        on_click=rx.call_script("window.print()"),
                        data_testid="print",
                    ),
                    rx.button(
                        tr("download_pdf"),
                        size="1",
                        on_click=ReportState.download_pdf,
                        data_testid="download-pdf",
                    ),
                    width="100%",
                    class_name="no-print",
                ),
                sheet,
                spacing="3",
                width="100%",
                max_width="820px",
            ),
        ),
    )
    return page_shell(body, with_user=True)
