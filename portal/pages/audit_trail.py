"""/audit-trail: the QC officer's and administrator's search of who saw or changed what.

Filters by person, patient, action, entity and local dates; the server pages
the result (`integration.audit_log`) and keeps each officer to their part of
the region. The export downloads the whole search as a FHIR Bundle of
AuditEvents, and is itself written to the trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.audit_log import AuditPage, AuditQuery
from integration.permissions import Action
from integration.services import portal_services
from models.enums import AuditAction, AuditOutcome
from models.errors import HurenError
from portal import i18n
from portal.auth import SessionState
from portal.layout import field_error, page_shell, pager, tr, tr_key, when_allowed
from portal.paging import PagedTable

ACTIONS: tuple[str, ...] = tuple(action.value for action in AuditAction)
_ANY = "any"  # the select's value for "all actions" (Radix selects refuse an empty value)


def parse_filters(form: dict[str, Any]) -> tuple[dict[str, str], str, str]:
    """The form as kept in state, plus (field, i18n key) of the first thing wrong with it."""
    kept = {
        "person": str(form.get("person", "")).strip()[:128],
        "patient": str(form.get("patient", "")).strip()[:64],
        "action": str(form.get("action", "")),
        "entity": str(form.get("entity", "")).strip()[:100],
        "since": str(form.get("since", "")).strip(),
        "until": str(form.get("until", "")).strip(),
    }
    if kept["action"] not in ACTIONS:
        kept["action"] = ""
    days: dict[str, date] = {}
    for name in ("since", "until"):
        if kept[name]:
            try:
                days[name] = date.fromisoformat(kept[name])
            except ValueError:
                return kept, name, "trail_err_date"
    if "since" in days and "until" in days and days["since"] > days["until"]:
        return kept, "since", "trail_err_dates"
    return kept, "", ""


def to_query(filters: dict[str, str], page: int) -> AuditQuery:
    return AuditQuery(
        person=filters.get("person", ""),
        patient=filters.get("patient", ""),
        action=filters.get("action", ""),
        entity=filters.get("entity", ""),
        since=date.fromisoformat(filters["since"]) if filters.get("since") else None,
        until=date.fromisoformat(filters["until"]) if filters.get("until") else None,
        page=page,
    )


def trail_rows(page: AuditPage, zone_key: str) -> list[dict[str, Any]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "id": row.event_id,
            "at": i18n.local_datetime(row.recorded_at, zone),
            "action_key": f"trail_action_{row.action.value}",
            "failed": row.outcome == AuditOutcome.failure,
            "actor": row.actor,
            "facility": row.facility_name,
            "source": row.source_address,
            "entity": f"{row.entity_type}/{row.entity_id}".rstrip("/"),
            "patient": row.patient_name,
            "detail": row.detail,
            "sealed": row.sealed,
        }
        for row in page.rows
    ]


class AuditTrailState(PagedTable, SessionState):
    allowed: bool = False
    filters: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    total: int = 0
    error_for: str = ""
    error_key: str = ""
    notice_key: str = ""
    notice_detail: str = ""

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    @rx.var
    def error(self) -> str:
        return i18n.text(self.error_key, self.lang) if self.error_key else ""

    @rx.var
    def action_choice(self) -> str:
        return self.filters.get("action", "") or _ANY

    async def _fetch(self) -> None:
        services, user_id = portal_services(), self.user_id
        query = to_query(self.filters, self.page)
        try:
            found = await asyncio.to_thread(services.audit_trail, user_id, query)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            self.rows, self.total, self.pages = [], 0, 1
            return
        self.rows = trail_rows(found, services.settings.timezone)
        self.total, self.page, self.pages = found.total, found.page, found.pages

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.read_audit_trail)
        if refusal is not None:
            yield refusal
            return
        await self._fetch()

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.read_audit_trail)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.notice_key = self.error_key = self.error_for = ""
        await self._fetch()

    @rx.event
    async def run_search(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        filters, self.error_for, self.error_key = parse_filters(
            {**form, "action": form.get("action") or self.filters.get("action", "")}
        )
        self.notice_key = ""
        if self.error_key:
            return
        self.filters, self.page = filters, 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_action(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.filters = {**self.filters, "action": value if value in ACTIONS else ""}
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def export(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.read_audit_trail)
        if refusal is not None:
            yield refusal
            return
        services, user_id = portal_services(), self.user_id
        query, source = to_query(self.filters, 1), self.router.session.client_ip
        try:
            made = await asyncio.to_thread(
                services.export_audit_trail, user_id, query, source_address=source
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.notice_key = "trail_exported"
        self.notice_detail = str(made.events) + (
            " " + i18n.text("trail_truncated", self.lang) if made.truncated else ""
        )
        yield rx.download(
            data=made.document.encode("utf-8"),
            filename=made.filename,
            mime_type="application/fhir+json",
        )
        await self._fetch()  # the export is on the trail now


def _filter_field(name: str, label: str, hint: str, kind: str = "text") -> rx.Component:
    return rx.vstack(
        rx.text(tr(label), size="1", color_scheme="gray", as_="label", html_for=f"trail-{name}"),
        rx.input(
            id=f"trail-{name}",
            name=name,
            type=kind,
            placeholder=tr(hint) if hint else "",
            default_value=AuditTrailState.filters.get(name, ""),
            size="2",
            data_testid=f"trail-{name}",
        ),
        rx.cond(
            AuditTrailState.error_for == name,
            field_error(AuditTrailState.error, f"trail-{name}-error"),
        ),
        spacing="1",
    )


def _filters() -> rx.Component:
    return rx.form(
        rx.hstack(
            _filter_field("person", "trail_person", "trail_person_hint"),
            _filter_field("patient", "trail_patient", "trail_patient_hint"),
            _filter_field("entity", "trail_entity", "trail_entity_hint"),
            _filter_field("since", "trail_since", "", "date"),
            _filter_field("until", "trail_until", "", "date"),
            rx.vstack(
                rx.text(tr("trail_action"), size="1", color_scheme="gray"),
                rx.select.root(
                    rx.select.trigger(data_testid="trail-action"),
                    rx.select.content(
                        rx.select.item(tr("trail_any_action"), value=_ANY),
                        *[rx.select.item(tr(f"trail_action_{a}"), value=a) for a in ACTIONS],
                    ),
                    value=AuditTrailState.action_choice,
                    on_change=AuditTrailState.set_action,
                ),
                spacing="1",
            ),
            rx.button(tr("trail_search"), type="submit", data_testid="trail-search"),
            spacing="3",
            align="end",
            wrap="wrap",
        ),
        on_submit=AuditTrailState.run_search,
        reset_on_submit=False,
        width="100%",
    )


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row["at"], size="1")),
        rx.table.cell(
            rx.text(row["actor"], weight="bold", size="2"),
            rx.text(row["facility"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.badge(tr_key(row["action_key"].to(str)), variant="soft"),
            rx.cond(
                row["failed"].to(bool),
                rx.badge(tr("trail_outcome_failure"), color_scheme="red"),
            ),
        ),
        rx.table.cell(rx.text(row["entity"], size="2")),
        rx.table.cell(rx.text(row["patient"], size="2")),
        rx.table.cell(rx.text(row["source"], size="1")),
        rx.table.cell(rx.text(row["detail"], size="1", color_scheme="gray")),
        rx.table.cell(
            rx.cond(
                row["sealed"].to(bool),
                rx.badge(tr("trail_sealed"), color_scheme="green", variant="outline"),
                rx.badge(tr("trail_unsealed"), color_scheme="gray", variant="outline"),
            )
        ),
        data_testid="trail-row",
    )


def audit_trail_page() -> rx.Component:
    body = when_allowed(
        AuditTrailState.allowed,
        rx.vstack(
            rx.hstack(
                rx.heading(tr("trail_title"), size="6", as_="h1"),
                rx.spacer(),
                rx.button(
                    tr("trail_export"),
                    variant="soft",
                    on_click=AuditTrailState.export,
                    data_testid="trail-export",
                ),
                width="100%",
                align="center",
            ),
            rx.text(tr("trail_intro"), size="2", color_scheme="gray"),
            _filters(),
            rx.cond(
                AuditTrailState.notice != "",
                rx.callout(AuditTrailState.notice, width="100%", data_testid="notice"),
            ),
            rx.cond(
                AuditTrailState.total > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell(tr("trail_time")),
                            rx.table.column_header_cell(tr("trail_person")),
                            rx.table.column_header_cell(tr("trail_action")),
                            rx.table.column_header_cell(tr("trail_entity")),
                            rx.table.column_header_cell(tr("trail_patient")),
                            rx.table.column_header_cell(tr("trail_source")),
                            rx.table.column_header_cell(tr("trail_detail")),
                            rx.table.column_header_cell(""),
                        )
                    ),
                    rx.table.body(rx.foreach(AuditTrailState.rows, _row)),
                    variant="surface",
                    size="1",
                    width="100%",
                ),
                rx.text(tr("trail_empty"), color_scheme="gray", data_testid="trail-empty"),
            ),
            pager(
                AuditTrailState.page,
                AuditTrailState.pages,
                AuditTrailState.total,
                AuditTrailState.previous_page,
                AuditTrailState.next_page,
            ),
            spacing="3",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
