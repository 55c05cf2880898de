"""/refusal-audit: the QC officer's monthly 10% sample of refused priors, with the review form.

The sample is drawn once per finished month with a recorded seed
(`integration.refusal_audit`), so drawing again shows the same cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.permissions import Action
from integration.prior_check import RefusalAudit
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n
from portal.auth import SessionState
from portal.layout import field_error, page_shell, tr, tr_key, when_allowed


def previous_month(now: datetime, zone_key: str) -> str:
    local = now.astimezone(i18n.zone(zone_key))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def audit_fields(audit: RefusalAudit, zone_key: str) -> dict[str, Any]:
    zone = i18n.zone(zone_key)
    return {
        "seed": audit.seed,
        "refusals": audit.refusals,
        "drawn": audit.drawn,
        "reviewed": audit.reviewed,
        "justified": audit.justified,
        "drawable": audit.drawable,
        "sample": [
            {
                "id": s.decision_id,
                "at": i18n.local_datetime(s.decided_at, zone),
                "patient": s.patient_name,
                "exam": s.exam_name,
                "facility": s.facility,
                "clinician": s.clinician,
                "reason_key": f"refuse_{s.reason}" if s.reason else "report_",
                "comment": s.comment,
                "prior": " ".join(
                    part
                    for part in (s.prior_facility, i18n.local_datetime(s.prior_performed, zone))
                    if part
                ),
                "verdict_key": "review_pending"
                if s.justified is None
                else ("review_justified" if s.justified else "review_unjustified"),
                "note": s.note,
                "reviewer": s.reviewer,
            }
            for s in audit.sample
        ],
        "avoidable": [
            {
                "study": line.study_id,
                "on": line.performed_on.isoformat(),
                "patient": line.patient_name,
                "exam": line.exam_name,
                "facility": line.facility,
                "prior": f"{line.prior_facility} {line.prior_performed_on.isoformat()}",
                "fee": yuan(line.fee_fen),
            }
            for line in audit.avoidable
        ],
        "avoidable_count": len(audit.avoidable),
        "avoidable_fee": yuan(audit.avoidable_fee_fen),
    }


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f}"


class RefusalAuditState(SessionState):
    allowed: bool = False
    month: str = ""
    audit: dict[str, Any] = {}
    notes: dict[str, str] = {}
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

    async def _fetch(self, *, draw: bool) -> None:
        services, user_id, month = portal_services(), self.user_id, self.month
        try:
            found = await asyncio.to_thread(services.refusal_audit, user_id, month, draw=draw)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            self.audit = {}
            return
        self.audit = audit_fields(found, services.settings.timezone)

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.review_refusals)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.notice_key = self.error_key = self.error_for = ""
        if not self.month:
            self.month = previous_month(datetime.now(UTC), portal_services().settings.timezone)
        await self._fetch(draw=False)

    @rx.event
    async def choose_month(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.review_refusals)
        if refusal is not None:
            yield refusal
            return
        self.month = str(form.get("month", ""))[:7]
        self.notice_key = ""
        await self._fetch(draw=False)

    @rx.event
    async def draw(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.review_refusals)
        if refusal is not None:
            yield refusal
            return
        self.notice_key = ""
        await self._fetch(draw=True)

    def set_note(self, decision_id: str, value: str) -> None:
        self.notes = {**self.notes, str(decision_id): value}

    @rx.event
    async def judge(self, decision_id: int, justified: bool) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.review_refusals)
        if refusal is not None:
            yield refusal
            return
        key = str(decision_id)
        self.error_for = self.error_key = self.notice_key = ""
        services, user_id, month = portal_services(), self.user_id, self.month
        note = self.notes.get(key, "")
        try:
            await asyncio.to_thread(
                services.review_refusal,
                user_id,
                month,
                int(decision_id),
                justified=bool(justified),
                note=note,
            )
        except HurenError as error:
            if error.field == "note":
                self.error_for, self.error_key = key, "err_review_note"
            else:
                self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.notice_key = "done_reviewed"
        await self._fetch(draw=False)


def _case(case: rx.Var[dict[str, Any]]) -> rx.Component:
    key = case["id"].to(int).to_string()
    return rx.table.row(
        rx.table.cell(rx.text(case["at"], size="1")),
        rx.table.cell(
            rx.text(case["patient"], weight="bold", size="2"), rx.text(case["exam"], size="1")
        ),
        rx.table.cell(
            rx.text(case["facility"], size="2"),
            rx.text(case["clinician"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(rx.text(case["prior"], size="1")),
        rx.table.cell(
            rx.text(tr_key(case["reason_key"].to(str)), size="2"),
            rx.text(case["comment"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.vstack(
                rx.badge(tr_key(case["verdict_key"].to(str)), data_testid="review-verdict"),
                rx.cond(case["note"] != "", rx.text(case["note"], size="1")),
                rx.input(
                    value=RefusalAuditState.notes.get(key, ""),
                    on_change=lambda v: RefusalAuditState.set_note(key, v),
                    placeholder=tr("review_note"),
                    size="1",
                    data_testid="review-note",
                ),
                rx.cond(
                    RefusalAuditState.error_for == key,
                    field_error(RefusalAuditState.error, "review-error"),
                ),
                rx.hstack(
                    rx.button(
                        tr("review_justified"),
                        size="1",
                        color_scheme="green",
                        on_click=RefusalAuditState.judge(case["id"].to(int), True),
                        data_testid="mark-justified",
                    ),
                    rx.button(
                        tr("review_unjustified"),
                        size="1",
                        color_scheme="red",
                        variant="soft",
                        on_click=RefusalAuditState.judge(case["id"].to(int), False),
                        data_testid="mark-unjustified",
                    ),
                    spacing="1",
                ),
                spacing="1",
            )
        ),
        data_testid="sampled-refusal",
    )


def _avoidable(line: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(line["on"], size="1")),
        rx.table.cell(
            rx.text(line["patient"], weight="bold", size="2"), rx.text(line["exam"], size="1")
        ),
        rx.table.cell(rx.text(line["facility"], size="2")),
        rx.table.cell(rx.text(line["prior"], size="1")),
        rx.table.cell(rx.text(line["fee"], size="2"), text_align="right"),
        data_testid="avoidable-exam",
    )


def _avoidable_section(audit: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.vstack(
        rx.heading(tr("avoidable_title"), size="4", as_="h2"),
        rx.text(tr("avoidable_intro"), size="2", color_scheme="gray"),
        rx.grid(
            _figure("avoidable_count", audit["avoidable_count"], "avoidable-count"),
            rx.card(
                rx.text(tr("avoidable_fee"), size="1", color_scheme="gray"),
                rx.text(
                    audit["avoidable_fee"].to(str),
                    size="6",
                    weight="bold",
                    data_testid="avoidable-fee",
                ),
            ),
            columns="4",
            spacing="3",
            width="100%",
        ),
        rx.cond(
            audit["avoidable_count"].to(int) > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(tr("performed_on")),
                        rx.table.column_header_cell(tr("patient")),
                        rx.table.column_header_cell(tr("clinic")),
                        rx.table.column_header_cell(tr("prior_exam")),
                        rx.table.column_header_cell(tr("avoidable_fee_col"), text_align="right"),
                    )
                ),
                rx.table.body(rx.foreach(audit["avoidable"].to(list[dict[str, Any]]), _avoidable)),
                variant="surface",
                size="1",
                width="100%",
            ),
            rx.text(tr("avoidable_none"), size="2", data_testid="avoidable-none"),
        ),
        spacing="2",
        width="100%",
    )


def _figure(label_key: str, value: rx.Var[Any], test_id: str) -> rx.Component:
    return rx.card(
        rx.text(tr(label_key), size="1", color_scheme="gray"),
        rx.text(value.to_string(), size="6", weight="bold", data_testid=test_id),
    )


def refusal_audit_page() -> rx.Component:
    audit = RefusalAuditState.audit
    body = when_allowed(
        RefusalAuditState.allowed,
        rx.vstack(
            rx.heading(tr("refusal_audit_title"), size="6", as_="h1"),
            rx.text(tr("refusal_audit_intro"), size="2", color_scheme="gray"),
            rx.form(
                rx.hstack(
                    rx.input(
                        name="month",
                        type="month",
                        default_value=RefusalAuditState.month,
                        data_testid="input-month",
                    ),
                    rx.button(tr("show"), type="submit", variant="soft"),
                    spacing="2",
                ),
                on_submit=RefusalAuditState.choose_month,
                reset_on_submit=False,
            ),
            rx.cond(
                RefusalAuditState.notice != "",
                rx.callout(RefusalAuditState.notice, width="100%", data_testid="notice"),
            ),
            rx.cond(
                audit.contains("seed"),
                rx.vstack(
                    rx.grid(
                        _figure("audit_refusals", audit["refusals"], "audit-refusals"),
                        _figure("audit_drawn", audit["drawn"], "audit-drawn"),
                        _figure("audit_reviewed", audit["reviewed"], "audit-reviewed"),
                        _figure("audit_justified", audit["justified"], "audit-justified"),
                        columns="4",
                        spacing="3",
                        width="100%",
                    ),
                    rx.text(tr("audit_seed"), " ", audit["seed"], size="1", color_scheme="gray"),
                    rx.cond(
                        (audit["drawn"].to(int) == 0)
                        & audit["drawable"].to(bool)
                        & (audit["refusals"].to(int) > 0),
                        rx.button(
                            tr("draw_sample"),
                            on_click=RefusalAuditState.draw,
                            data_testid="draw-sample",
                        ),
                    ),
                    rx.cond(
                        ~audit["drawable"].to(bool),
                        rx.text(tr("month_not_over"), size="2", color_scheme="amber"),
                    ),
                    rx.cond(
                        audit["drawn"].to(int) > 0,
                        rx.table.root(
                            rx.table.header(
                                rx.table.row(
                                    rx.table.column_header_cell(tr("decided_at")),
                                    rx.table.column_header_cell(tr("patient")),
                                    rx.table.column_header_cell(tr("clinic")),
                                    rx.table.column_header_cell(tr("prior_exam")),
                                    rx.table.column_header_cell(tr("refusal_reason")),
                                    rx.table.column_header_cell(tr("review")),
                                )
                            ),
                            rx.table.body(
                                rx.foreach(audit["sample"].to(list[dict[str, Any]]), _case)
                            ),
                            variant="surface",
                            size="1",
                            width="100%",
                        ),
                    ),
                    rx.divider(),
                    _avoidable_section(audit),
                    spacing="3",
                    width="100%",
                ),
            ),
            spacing="3",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
