"""/consultations: cases other centres asked this expert about, with the answer form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.permissions import Action
from integration.reading_desk import ConsultationItem
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import field_error, page_shell, tr, tr_key, when_allowed


def consultation_rows(items: tuple[ConsultationItem, ...], zone_key: str) -> list[dict[str, Any]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "id": item.id,
            "href": routes.reading(item.study_id),
            "patient": item.patient_name,
            "exam": item.exam_name,
            "exam_en": item.exam_name_en or item.exam_name,
            "from": item.from_centre,
            "from_en": item.from_centre_en or item.from_centre,
            "requested_by": item.requested_by,
            "question": item.question,
            "opinion": item.opinion,
            "status_key": f"consult_{item.status.value}",
            "open": item.status.value == "requested",
            "asked": i18n.local_datetime(item.requested_at, zone),
            "answered": i18n.local_datetime(item.answered_at, zone),
        }
        for item in items
    ]


class ConsultationsState(SessionState):
    allowed: bool = False
    show_answered: bool = False
    items: list[dict[str, Any]] = []
    drafts: dict[str, str] = {}
    error_for: str = ""  # the consultation whose opinion was refused
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

    async def _fetch(self) -> None:
        services = portal_services()
        found = await asyncio.to_thread(
            services.consultation_inbox, self.user_id, include_answered=self.show_answered
        )
        self.items = consultation_rows(found, services.settings.timezone)

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.answer_consultation)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.notice_key = self.error_key = self.error_for = ""
        await self._fetch()

    @rx.event
    async def toggle_answered(self, value: bool) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.answer_consultation)
        if refusal is not None:
            yield refusal
            return
        self.show_answered = bool(value)
        await self._fetch()

    def set_draft(self, consultation_id: str, value: str) -> None:
        self.drafts = {**self.drafts, str(consultation_id): value}

    @rx.event
    async def answer(self, consultation_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.answer_consultation)
        if refusal is not None:
            yield refusal
            return
        key = str(consultation_id)
        self.error_for = self.error_key = self.notice_key = ""
        try:
            await asyncio.to_thread(
                portal_services().answer_consultation,
                self.user_id,
                int(consultation_id),
                opinion=self.drafts.get(key, ""),
            )
        except HurenError as error:
            if error.field == "opinion":
                self.error_for, self.error_key = key, "err_opinion_required"
            else:
                self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.drafts = {k: v for k, v in self.drafts.items() if k != key}
        self.notice_key, self.notice_detail = "done_answered", ""
        await self._fetch()


def _item(item: rx.Var[dict[str, Any]]) -> rx.Component:
    english = ConsultationsState.lang == i18n.EN
    key = item["id"].to(int).to_string()
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.link(item["patient"], href=item["href"], weight="bold"),
                rx.text(rx.cond(english, item["exam_en"], item["exam"]), size="2"),
                rx.badge(tr_key(item["status_key"].to(str)), variant="soft"),
                rx.spacer(),
                rx.text(item["asked"], size="1", color_scheme="gray"),
                width="100%",
                align="center",
            ),
            rx.text(
                rx.cond(english, item["from_en"], item["from"]),
                " · ",
                item["requested_by"],
                size="1",
                color_scheme="gray",
            ),
            rx.text(tr("question"), "：", item["question"], size="2"),
            rx.cond(
                item["open"],
                rx.vstack(
                    rx.text_area(
                        value=ConsultationsState.drafts.get(key, ""),
                        on_change=lambda v: ConsultationsState.set_draft(key, v),
                        placeholder=tr("opinion"),
                        width="100%",
                        data_testid="input-opinion",
                    ),
                    rx.cond(
                        ConsultationsState.error_for == key,
                        field_error(ConsultationsState.error, "opinion-error"),
                    ),
                    rx.button(
                        tr("send_opinion"),
                        size="1",
                        on_click=ConsultationsState.answer(item["id"].to(int)),
                        data_testid="send-opinion",
                    ),
                    spacing="2",
                    width="100%",
                ),
                rx.text(
                    tr("opinion"),
                    "：",
                    item["opinion"],
                    " (",
                    item["answered"],
                    ")",
                    size="2",
                    weight="bold",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        data_testid="consultation",
    )


def consultations_page() -> rx.Component:
    body = when_allowed(
        ConsultationsState.allowed,
        rx.vstack(
            rx.hstack(
                rx.heading(tr("consultations_title"), size="6", as_="h1"),
                rx.spacer(),
                rx.checkbox(
                    tr("show_answered"),
                    checked=ConsultationsState.show_answered,
                    on_change=ConsultationsState.toggle_answered,
                ),
                width="100%",
                align="center",
            ),
            rx.cond(
                ConsultationsState.notice != "",
                rx.callout(ConsultationsState.notice, width="100%", data_testid="notice"),
            ),
            rx.cond(
                ConsultationsState.items.length() > 0,
                rx.vstack(rx.foreach(ConsultationsState.items, _item), spacing="3", width="100%"),
                rx.text(tr("no_consultations"), color_scheme="gray"),
            ),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True)
