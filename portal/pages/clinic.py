"""/clinic: a township's orders and studies with their clock, returned reports, retake
requests and critical results waiting for someone here to acknowledge them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.clinic import ClinicCritical, ClinicPage, ClinicQuery, ClinicView, RetakeRequest
from integration.permissions import Action
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import clock_badge, page_shell, pager, tr, tr_key, when_allowed
from portal.paging import PagedTable

VIEWS: tuple[str, ...] = tuple(view.value for view in ClinicView)


def clinic_rows(page: ClinicPage, zone_key: str) -> list[dict[str, Any]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "order_id": row.order_id,
            "accession": row.accession,
            "patient": row.patient_name,
            "sex_key": f"sex_{row.sex or 'U'}",
            "age": row.age,
            "exam": row.exam_name,
            "exam_en": row.exam_name_en or row.exam_name,
            "emergency": row.priority.value == "emergency",
            "requested": i18n.local_datetime(row.requested_at, zone),
            "step_key": clinic_step(row.order_status.value, row.reading_status, row.report_status),
            "due": i18n.local_datetime(row.due_at, zone) if row.due_at else "",
            "clock": row.clock.value,
            "report_href": routes.report(row.study_id)
            if row.report_signed and row.study_id
            else "",
            "critical": row.critical_open,
        }
        for row in page.rows
    ]


def clinic_step(order_status: str, reading_status: object, report_status: object) -> str:
    """One i18n key for where an order stands, as a clinic would say it."""
    reading = getattr(reading_status, "value", reading_status) or ""
    report = getattr(report_status, "value", report_status) or ""
    if report in ("final", "amended", "corrected"):
        return f"report_{report}"
    if reading:
        return f"status_{reading}"
    return f"order_{order_status}"


def retake_rows(requests: tuple[RetakeRequest, ...], zone_key: str) -> list[dict[str, str]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "accession": r.accession,
            "patient": r.patient_name,
            "exam": r.exam_name,
            "exam_en": r.exam_name_en or r.exam_name,
            "reason_key": f"retake_{r.reason}",
            "note": r.note,
            "by": r.requested_by,
            "at": i18n.local_datetime(r.requested_at, zone),
        }
        for r in requests
    ]


def critical_rows(results: tuple[ClinicCritical, ...], zone_key: str) -> list[dict[str, Any]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "id": c.result.id,
            "accession": c.accession,
            "patient": c.patient_name,
            "exam": c.exam_name,
            "exam_en": c.exam_name_en or c.exam_name,
            "description": c.result.description,
            "by": c.result.flagged_by,
            "flagged": i18n.local_datetime(c.result.flagged_at, zone),
            "report_href": routes.report(c.study_id),
        }
        for c in results
    ]


class ClinicState(PagedTable, SessionState):
    allowed: bool = False
    rows: list[dict[str, Any]] = []
    total: int = 0
    view: str = ClinicView.all.value
    search: str = ""
    retakes: list[dict[str, str]] = []
    criticals: list[dict[str, Any]] = []
    notice_key: str = ""
    notice_detail: str = ""

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    async def _fetch(self) -> None:
        services = portal_services()
        zone_key = services.settings.timezone
        query = ClinicQuery(view=ClinicView(self.view), search=self.search, page=self.page)

        def read() -> tuple[ClinicPage, Any, Any]:
            return (
                services.clinic_orders(self.user_id, query),
                services.retake_requests(self.user_id),
                services.clinic_critical_results(self.user_id),
            )

        page, retakes, criticals = await asyncio.to_thread(read)
        self.rows = clinic_rows(page, zone_key)
        self.total, self.page, self.pages = page.total, page.page, page.pages
        self.retakes = retake_rows(retakes, zone_key)
        self.criticals = critical_rows(criticals, zone_key)

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_clinic)
        if refusal is not None:
            yield refusal
            return
        try:
            await self._fetch()
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.view_clinic)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.notice_key = ""
        await self._fetch()

    @rx.event
    async def set_view(self, view: str) -> AsyncIterator[EventSpec | None]:
        self.view = view if view in VIEWS else ClinicView.all.value
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def run_search(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        self.search = str(form.get("search", ""))[:64]
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def acknowledge(self, critical_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.acknowledge_critical)
        if refusal is not None:
            yield refusal
            return
        try:
            await asyncio.to_thread(
                portal_services().acknowledge_critical, self.user_id, int(critical_id)
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.notice_key, self.notice_detail = "done_acknowledged", ""
        await self._fetch()


def _critical_banner() -> rx.Component:
    english = ClinicState.lang == i18n.EN
    return rx.cond(
        ClinicState.criticals.length() > 0,
        rx.callout.root(
            rx.callout.text(tr("critical_waiting"), weight="bold"),
            rx.foreach(
                ClinicState.criticals,
                lambda c: rx.hstack(
                    rx.text(
                        c["patient"],
                        " · ",
                        rx.cond(english, c["exam_en"], c["exam"]),
                        " · ",
                        c["accession"],
                        weight="bold",
                        size="2",
                    ),
                    rx.text(c["description"], size="2"),
                    rx.text(c["by"], " ", c["flagged"], size="1"),
                    rx.spacer(),
                    rx.button(
                        tr("acknowledge"),
                        size="1",
                        color_scheme="red",
                        on_click=ClinicState.acknowledge(c["id"].to(int)),
                        data_testid="acknowledge",
                    ),
                    width="100%",
                    align="center",
                    data_testid="clinic-critical",
                ),
            ),
            color_scheme="red",
            width="100%",
            role="alert",
        ),
    )


def _retakes() -> rx.Component:
    english = ClinicState.lang == i18n.EN
    return rx.cond(
        ClinicState.retakes.length() > 0,
        rx.card(
            rx.vstack(
                rx.text(tr("retake_requests"), weight="bold"),
                rx.foreach(
                    ClinicState.retakes,
                    lambda r: rx.hstack(
                        rx.text(
                            r["patient"],
                            " · ",
                            rx.cond(english, r["exam_en"], r["exam"]),
                            " · ",
                            r["accession"],
                            size="2",
                            weight="bold",
                        ),
                        rx.badge(tr_key(r["reason_key"]), color_scheme="amber"),
                        rx.text(r["note"], size="2"),
                        rx.spacer(),
                        rx.text(r["by"], " ", r["at"], size="1", color_scheme="gray"),
                        width="100%",
                        align="center",
                        data_testid="retake-request",
                    ),
                ),
                spacing="2",
                width="100%",
            ),
            width="100%",
        ),
    )


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    english = ClinicState.lang == i18n.EN
    return rx.table.row(
        rx.table.cell(rx.text(row["requested"], size="2")),
        rx.table.cell(
            rx.text(row["patient"], weight="bold", size="2"),
            rx.text(tr_key(row["sex_key"].to(str)), " ", row["age"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.text(rx.cond(english, row["exam_en"], row["exam"]), size="2"),
            rx.text(row["accession"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.cond(row["emergency"], rx.badge(tr("emergency"), color_scheme="red"), rx.fragment()),
            rx.text(tr_key(row["step_key"].to(str)), size="2"),
            rx.cond(row["critical"], rx.badge(tr("critical_badge"), color_scheme="red")),
        ),
        rx.table.cell(
            rx.cond(
                row["due"] != "",
                clock_badge(row["clock"].to(str), row["due"].to(str)),
                rx.text("—", color_scheme="gray"),
            )
        ),
        rx.table.cell(
            rx.cond(
                row["report_href"] != "",
                rx.link(tr("open_report"), href=row["report_href"], data_testid="open-report"),
                rx.text("—", color_scheme="gray"),
            )
        ),
        data_testid="clinic-row",
    )


def clinic_page() -> rx.Component:
    body = when_allowed(
        ClinicState.allowed,
        rx.vstack(
            rx.heading(tr("clinic_title"), size="6", as_="h1"),
            _critical_banner(),
            rx.cond(
                ClinicState.notice != "",
                rx.callout(ClinicState.notice, width="100%", data_testid="notice"),
            ),
            _retakes(),
            rx.hstack(
                rx.tabs.root(
                    rx.tabs.list(*[rx.tabs.trigger(tr(f"clinic_{v}"), value=v) for v in VIEWS]),
                    value=ClinicState.view,
                    on_change=ClinicState.set_view,
                ),
                rx.spacer(),
                rx.form(
                    rx.hstack(
                        rx.input(
                            name="search",
                            placeholder=tr("search_patient"),
                            size="2",
                            default_value=ClinicState.search,
                        ),
                        rx.button(tr("search"), type="submit", size="2", variant="soft"),
                        spacing="2",
                    ),
                    on_submit=ClinicState.run_search,
                    reset_on_submit=False,
                ),
                width="100%",
                align="center",
            ),
            rx.cond(
                ClinicState.total > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell(tr("requested")),
                            rx.table.column_header_cell(tr("patient")),
                            rx.table.column_header_cell(tr("exam")),
                            rx.table.column_header_cell(tr("status")),
                            rx.table.column_header_cell(tr("due")),
                            rx.table.column_header_cell(tr("report")),
                        )
                    ),
                    rx.table.body(rx.foreach(ClinicState.rows, _row)),
                    variant="surface",
                    size="1",
                    width="100%",
                ),
                rx.text(tr("clinic_empty"), color_scheme="gray"),
            ),
            pager(
                ClinicState.page,
                ClinicState.pages,
                ClinicState.total,
                ClinicState.previous_page,
                ClinicState.next_page,
            ),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
