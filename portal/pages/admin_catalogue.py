"""/admin/catalogue: the exam catalogue's fees, recognised (HR) flags and validity windows.

The table pages, sorts and filters on the server; one exam opens in a form on
the same page, each refusal under its field.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration import administration as admin
from integration.permissions import Action
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n
from portal.auth import SessionState
from portal.layout import page_shell, pager, tr, when_allowed
from portal.pages.admin_forms import (
    checked,
    field_message,
    form_field,
    form_value,
    notice_callout,
    notice_for,
    sort_header,
    text_input,
)
from portal.paging import SortedTable

SORTS: tuple[str, ...] = tuple(sort.value for sort in admin.CatalogueSort)
ALL = "all"
RECOGNISED_FILTERS: tuple[str, ...] = (ALL, "yes", "no")


def exam_fields(row: admin.CatalogueRow) -> dict[str, Any]:
    return {
        "exam_type_id": row.exam_type_id,
        "code": row.code,
        "name": row.name_zh,
        "name_en": row.name_en or row.name_zh,
        "modality": row.modality,
        "body_part": row.body_part,
        "parts": row.body_part_count,
        "fee": admin.fen_to_yuan(row.fee_fen),
        "recognised": row.recognised,
        "validity_days": str(row.validity_days),
        "active": row.active,
    }


class AdminCatalogueState(SortedTable, SessionState):
    allowed: bool = False
    mode: str = "list"  # list | edit
    rows: list[dict[str, Any]] = []
    total: int = 0
    modalities: list[str] = []
    search: str = ""
    modality_filter: str = ""
    recognised_filter: str = ALL
    sort: str = admin.CatalogueSort.code.value
    descending: bool = False
    selected: dict[str, Any] = {}
    form_key: int = 0
    errors: dict[str, str] = {}
    notice_key: str = ""
    notice_detail: str = ""
    busy: bool = False

    @rx.var
    def error_text(self) -> dict[str, str]:
        table = i18n.strings(self.lang)
        return {name: table[key] for name, key in self.errors.items()}

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    @rx.var
    def notice_is_error(self) -> bool:
        return self.notice_key in ("err_action", "admin_missing")

    def _query(self) -> admin.CatalogueQuery:
        recognised = {"yes": True, "no": False}.get(self.recognised_filter)
        return admin.CatalogueQuery(
            text=self.search,
            modality=self.modality_filter,
            recognised=recognised,
            sort=admin.CatalogueSort(self.sort),
            descending=self.descending,
            page=self.page,
        )

    async def _fetch(self) -> None:
        try:
            result = await asyncio.to_thread(
                portal_services().admin_catalogue, self.user_id, self._query()
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return
        self.rows = [exam_fields(row) for row in result.rows]
        self.total, self.page, self.pages = result.total, result.page, result.pages
        self.modalities = list(result.modalities)

    def _sorts(self) -> tuple[tuple[str, ...], str]:
        return SORTS, admin.CatalogueSort.code.value

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_catalogue)
        if refusal is not None:
            yield refusal
            return
        await self._fetch()

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.manage_catalogue)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.mode, self.errors, self.selected = "list", {}, {}
        self.notice_key, self.notice_detail = "", ""
        await self._fetch()

    @rx.event
    async def run_search(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        self.search = form_value(form, "search").strip()[:64]
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_modality_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.modality_filter = value if value in self.modalities else ""
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_recognised_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.recognised_filter = value if value in RECOGNISED_FILTERS else ALL
        self.page = 1
        async for step in self._refresh():
            yield step

    async def _read_selected(self, exam_type_id: int) -> bool:
        try:
            row = await asyncio.to_thread(
                portal_services().admin_exam_type, self.user_id, exam_type_id
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return False
        self.selected = exam_fields(row)
        self.form_key += 1
        return True

    @rx.event
    async def edit(self, exam_type_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_catalogue)
        if refusal is not None:
            yield refusal
            return
        self.errors, self.notice_key, self.notice_detail = {}, "", ""
        if await self._read_selected(int(exam_type_id)):
            self.mode = "edit"

    @rx.event
    async def back(self) -> AsyncIterator[EventSpec | None]:
        self.mode, self.errors, self.selected = "list", {}, {}
        async for step in self._refresh():
            yield step

    @rx.event
    async def save(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_catalogue)
        if refusal is not None:
            yield refusal
            return
        if self.busy:
            return
        services, source, uid = portal_services(), self.router.session.client_ip, self.user_id
        exam_type_id = int(self.selected.get("exam_type_id", 0))
        change = admin.ExamTypeChange(
            fee_yuan=form_value(form, "fee"),
            recognised=checked(form, "recognised"),
            validity_days=form_value(form, "validity_days"),
            active=checked(form, "active"),
        )
        self.busy, self.errors = True, {}
        self.notice_key, self.notice_detail = "", ""
        yield None
        try:
            changed = await asyncio.to_thread(
                lambda: services.update_exam_type(uid, exam_type_id, change, source_address=source)
            )
        except HurenError as error:
            self.busy = False
            placed = field_message(error)
            if placed is not None:
                self.errors = {placed[0]: placed[1]}
            else:
                self.notice_key, self.notice_detail = notice_for(error)
            return
        self.busy = False
        self.notice_key = "admin_saved" if changed else "admin_unchanged"
        await self._read_selected(exam_type_id)


S = AdminCatalogueState


def _error(name: str) -> rx.Var[str]:
    return S.error_text.get(name, "").to(str)


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    english = S.lang == i18n.EN
    return rx.table.row(
        rx.table.cell(rx.text(row["code"], size="2", font_family="monospace")),
        rx.table.cell(
            rx.text(rx.cond(english, row["name_en"], row["name"]), size="2"), max_width="360px"
        ),
        rx.table.cell(rx.text(row["modality"], size="2")),
        rx.table.cell(rx.text(row["body_part"], " × ", row["parts"].to(str), size="2")),
        rx.table.cell(rx.text(row["fee"], size="2"), text_align="right"),
        rx.table.cell(
            rx.cond(
                row["recognised"],
                rx.badge("HR", color_scheme="teal"),
                rx.text("—", color_scheme="gray"),
            )
        ),
        rx.table.cell(rx.text(row["validity_days"], size="2"), text_align="right"),
        rx.table.cell(
            rx.cond(
                row["active"],
                rx.badge(tr("admin_yes"), color_scheme="green", variant="soft"),
                rx.badge(tr("admin_no"), color_scheme="gray", variant="solid"),
            )
        ),
        rx.table.cell(
            rx.button(
                tr("admin_edit"),
                size="1",
                variant="soft",
                on_click=S.edit(row["exam_type_id"].to(int)),
                data_testid="edit-exam",
            )
        ),
        custom_attrs={"data-code": row["code"].to(str)},
        data_testid="exam-row",
    )


def _list_view() -> rx.Component:
    filters = rx.hstack(
        rx.form(
            rx.hstack(
                rx.input(
                    name="search",
                    placeholder=tr("catalogue_search_hint"),
                    default_value=S.search,
                    size="2",
                    data_testid="exam-search",
                ),
                rx.button(tr("search"), type="submit", size="2", variant="soft"),
                spacing="2",
            ),
            on_submit=S.run_search,
            reset_on_submit=False,
            width="auto",
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-modality"),
            rx.select.content(
                rx.select.item(tr("all_modalities"), value=ALL),
                rx.foreach(S.modalities, lambda m: rx.select.item(m, value=m)),
            ),
            value=rx.cond(S.modality_filter == "", ALL, S.modality_filter),
            on_change=S.set_modality_filter,
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-recognised"),
            rx.select.content(
                rx.select.item(tr("admin_all"), value=ALL),
                rx.select.item(tr("catalogue_only_recognised"), value="yes"),
                rx.select.item(tr("catalogue_not_recognised"), value="no"),
            ),
            value=S.recognised_filter,
            on_change=S.set_recognised_filter,
        ),
        align="center",
        width="100%",
        spacing="3",
        wrap="wrap",
    )
    table = rx.table.root(
        rx.table.header(
            rx.table.row(
                sort_header("catalogue_code", "code", S.sort, S.descending, S.set_sort("code")),
                rx.table.column_header_cell(tr("catalogue_name")),
                sort_header(
                    "facilities_modality", "modality", S.sort, S.descending, S.set_sort("modality")
                ),
                rx.table.column_header_cell(tr("catalogue_body_part")),
                sort_header("catalogue_fee", "fee", S.sort, S.descending, S.set_sort("fee")),
                rx.table.column_header_cell(tr("catalogue_recognised")),
                sort_header(
                    "catalogue_validity", "validity", S.sort, S.descending, S.set_sort("validity")
                ),
                rx.table.column_header_cell(tr("catalogue_active")),
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(rx.foreach(S.rows, _row)),
        variant="surface",
        size="1",
        width="100%",
        data_testid="catalogue-table",
    )
    return rx.vstack(
        filters,
        rx.cond(
            S.total > 0,
            table,
            rx.text(tr("catalogue_empty"), color_scheme="gray", data_testid="catalogue-empty"),
        ),
        pager(S.page, S.pages, S.total, S.previous_page, S.next_page),
        spacing="4",
        width="100%",
    )


def _checkbox(name: str, label_key: str, default: rx.Var[bool]) -> rx.Component:
    return rx.el.label(
        rx.hstack(
            rx.checkbox(name=name, default_checked=default, data_testid=f"input-{name}"),
            rx.text(tr(label_key), size="2"),
            spacing="2",
            align="center",
        )
    )


def _edit_view() -> rx.Component:
    chosen = S.selected
    english = S.lang == i18n.EN
    form = rx.form(
        rx.vstack(
            rx.grid(
                form_field(
                    "catalogue_fee",
                    text_input("fee", _error("fee"), default_value=chosen["fee"].to(str)),
                    _error("fee"),
                    "fee",
                ),
                form_field(
                    "catalogue_validity",
                    text_input(
                        "validity_days",
                        _error("validity_days"),
                        default_value=chosen["validity_days"].to(str),
                    ),
                    _error("validity_days"),
                    "validity_days",
                ),
                columns="2",
                spacing="4",
                width="100%",
            ),
            _checkbox("recognised", "catalogue_recognised", chosen["recognised"].to(bool)),
            _checkbox("active", "catalogue_active", chosen["active"].to(bool)),
            rx.text(tr("catalogue_sync_hint"), size="1", color_scheme="gray"),
            rx.button(tr("admin_save"), type="submit", disabled=S.busy, data_testid="save-exam"),
            spacing="4",
            width="100%",
        ),
        on_submit=S.save,
        reset_on_submit=False,
        key=S.form_key.to_string(),
        width="100%",
    )
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.vstack(
                    rx.heading(
                        tr("catalogue_edit_title"),
                        " · ",
                        chosen["code"].to(str),
                        size="4",
                        as_="h2",
                    ),
                    rx.text(
                        rx.cond(english, chosen["name_en"].to(str), chosen["name"].to(str)),
                        " · ",
                        chosen["modality"].to(str),
                        " · ",
                        chosen["body_part"].to(str),
                        size="2",
                        color_scheme="gray",
                    ),
                    spacing="1",
                ),
                rx.spacer(),
                rx.button(
                    tr("admin_back"),
                    variant="soft",
                    color_scheme="gray",
                    on_click=S.back,
                    data_testid="back",
                ),
                width="100%",
                align="center",
            ),
            form,
            spacing="4",
            width="100%",
        ),
        width="100%",
        max_width="720px",
    )


def admin_catalogue_page() -> rx.Component:
    body = when_allowed(
        S.allowed,
        rx.vstack(
            rx.heading(tr("catalogue_title"), size="6", as_="h1"),
            notice_callout(S.notice, S.notice_is_error),
            rx.cond(S.mode == "edit", _edit_view(), _list_view()),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
