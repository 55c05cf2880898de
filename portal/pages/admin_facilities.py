"""/admin/facilities: reading routes, HL7 report return, QC qualification and AE titles.

The list pages, sorts and filters on the server; one facility's settings open on
the same page, each form's refusals shown under their fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration import administration as admin
from integration.permissions import Action
from integration.services import portal_services
from models.enums import FacilityLevel, Modality
from models.errors import HurenError
from portal import i18n
from portal.auth import SessionState
from portal.layout import page_shell, pager, tr, tr_key, when_allowed
from portal.pages.admin_forms import (
    checked,
    field_message,
    form_field,
    form_value,
    notice_callout,
    notice_for,
    select_input,
    sort_header,
    text_input,
)
from portal.paging import SortedTable

SORTS: tuple[str, ...] = tuple(sort.value for sort in admin.FacilitySort)
LEVELS: tuple[str, ...] = tuple(level.value for level in FacilityLevel)
MODALITIES: tuple[str, ...] = tuple(m.value for m in Modality)
ALL = "all"
NO_CENTRE = "none"


def _endpoint(host: str, port: int | None) -> str:
    if not host:
        return ""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def facility_rows(page: admin.FacilityPage) -> list[dict[str, Any]]:
    return [facility_fields(row) for row in page.rows]


def facility_fields(row: admin.FacilityRow) -> dict[str, Any]:
    centre = (
        f"{row.reading_centre_code} {row.reading_centre_name}" if row.reading_centre_code else ""
    )
    centre_en = (
        f"{row.reading_centre_code} {row.reading_centre_name_en or row.reading_centre_name}"
        if row.reading_centre_code
        else ""
    )
    return {
        "facility_id": row.facility_id,
        "code": row.code,
        "name": row.name,
        "name_en": row.name_en or row.name,
        "level_key": f"level_{row.level.value}",
        "kind_key": f"kind_{row.kind.value}",
        "is_reading_centre": row.is_reading_centre,
        "reading_centre_id": str(row.reading_centre_id) if row.reading_centre_id else NO_CENTRE,
        "centre": centre,
        "centre_en": centre_en,
        "hl7": _endpoint(row.hl7_host, row.hl7_port),
        "hl7_host": row.hl7_host,
        "hl7_port": str(row.hl7_port) if row.hl7_port is not None else "",
        "hl7_charset": row.hl7_charset,
        "qualified": row.qc_qualified_today,
        "ae_titles": ", ".join(row.ae_titles),
    }


def detail_fields(detail: admin.FacilityDetail) -> dict[str, Any]:
    return facility_fields(detail.facility) | {"uploaders": detail.uploaders}


def period_rows(detail: admin.FacilityDetail) -> list[dict[str, Any]]:
    return [
        {
            "qc_id": p.qc_id,
            "valid_from": p.valid_from.isoformat(),
            "valid_until": p.valid_until.isoformat() if p.valid_until else "",
            "certificate": p.certificate,
            "current": p.current,
        }
        for p in detail.qc_periods
    ]


def ae_rows(detail: admin.FacilityDetail) -> list[dict[str, Any]]:
    return [
        {
            "id": t.ae_title_id,
            "ae_title": t.ae_title,
            "modality": t.modality,
            "station": t.station_name,
            "move": _endpoint(t.host, t.port),
        }
        for t in detail.ae_titles
    ]


def centre_options(detail: admin.FacilityDetail) -> list[dict[str, str]]:
    return [
        {
            "value": str(c.facility_id),
            "label": f"{c.code} {c.name}",
            "label_en": f"{c.code} {c.name_en or c.name}",
        }
        for c in detail.centre_choices
    ]


class AdminFacilitiesState(SortedTable, SessionState):
    allowed: bool = False
    mode: str = "list"  # list | detail
    rows: list[dict[str, Any]] = []
    total: int = 0
    search: str = ""
    level_filter: str = ""
    centres_only: bool = False
    sort: str = admin.FacilitySort.code.value
    descending: bool = False
    selected: dict[str, Any] = {}
    periods: list[dict[str, Any]] = []
    open_period_id: int = 0
    ae_titles: list[dict[str, Any]] = []
    centres: list[dict[str, str]] = []
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

    def _query(self) -> admin.FacilityQuery:
        return admin.FacilityQuery(
            text=self.search,
            level=self.level_filter,
            reading_centres_only=self.centres_only,
            sort=admin.FacilitySort(self.sort),
            descending=self.descending,
            page=self.page,
        )

    async def _fetch(self) -> None:
        try:
            result = await asyncio.to_thread(
                portal_services().admin_facilities, self.user_id, self._query()
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return
        self.rows = facility_rows(result)
        self.total, self.page, self.pages = result.total, result.page, result.pages

    def _sorts(self) -> tuple[tuple[str, ...], str]:
        return SORTS, admin.FacilitySort.code.value

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_facilities)
        if refusal is not None:
            yield refusal
            return
        await self._fetch()

    async def _read_selected(self, facility_id: int) -> bool:
        try:
            detail = await asyncio.to_thread(
                portal_services().admin_facility, self.user_id, facility_id
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return False
        self.selected = detail_fields(detail)
        self.periods = period_rows(detail)
        self.open_period_id = next((p.qc_id for p in detail.qc_periods if p.valid_until is None), 0)
        self.ae_titles = ae_rows(detail)
        self.centres = centre_options(detail)
        self.form_key += 1
        return True

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.manage_facilities)
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
    async def set_level_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.level_filter = value if value in LEVELS else ""
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_centres_only(self, value: bool) -> AsyncIterator[EventSpec | None]:
        self.centres_only = bool(value)
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def open_facility(self, facility_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_facilities)
        if refusal is not None:
            yield refusal
            return
        self.errors, self.notice_key, self.notice_detail = {}, "", ""
        if await self._read_selected(int(facility_id)):
            self.mode = "detail"

    @rx.event
    async def back(self) -> AsyncIterator[EventSpec | None]:
        self.mode, self.errors, self.selected = "list", {}, {}
        async for step in self._refresh():
            yield step

    async def _submit(
        self,
        call: Callable[[], object],
        done: Callable[[object], str],
        rename: dict[str, str] | None = None,
    ) -> AsyncIterator[EventSpec | None]:
        """One change to the open facility; refusals under their fields, then a fresh read.

        ``rename`` moves a field's message to another form's copy of that field.
        """
        refusal = self.guard(Action.manage_facilities)
        if refusal is not None:
            yield refusal
            return
        if self.busy:
            return
        self.busy, self.errors = True, {}
        self.notice_key, self.notice_detail = "", ""
        yield None
        try:
            outcome = await asyncio.to_thread(call)
        except HurenError as error:
            self.busy = False
            placed = field_message(error)
            if placed is not None:
                field, key = placed
                self.errors = {(rename or {}).get(field, field): key}
            else:
                self.notice_key, self.notice_detail = notice_for(error)
            return
        self.busy = False
        self.notice_key = done(outcome)
        await self._read_selected(int(self.selected.get("facility_id", 0)))

    def _context(self) -> tuple[Any, str, int, int]:
        return (
            portal_services(),
            self.router.session.client_ip,
            self.user_id,
            int(self.selected.get("facility_id", 0)),
        )

    @rx.event
    async def save_routing(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid, facility_id = self._context()
        flag = checked(form, "is_reading_centre")
        raw_centre = form_value(form, "reading_centre_id")
        centre = int(raw_centre) if raw_centre.isdigit() else None

        def call() -> bool:
            return bool(
                services.set_routing(
                    uid,
                    facility_id,
                    is_reading_centre=flag,
                    reading_centre_id=centre,
                    source_address=source,
                )
            )

        async for step in self._submit(
            call, lambda changed: "admin_saved" if changed else "admin_unchanged"
        ):
            yield step

    @rx.event
    async def save_hl7(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid, facility_id = self._context()
        host, port = form_value(form, "hl7_host"), form_value(form, "hl7_port")
        charset = form_value(form, "hl7_charset")
        async for step in self._submit(
            lambda: services.set_hl7_endpoint(
                uid, facility_id, host=host, port=port, charset=charset, source_address=source
            ),
            lambda changed: "admin_saved" if changed else "admin_unchanged",
        ):
            yield step

    @rx.event
    async def add_period(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid, facility_id = self._context()
        start, end = form_value(form, "valid_from"), form_value(form, "valid_until")
        certificate = form_value(form, "certificate")
        async for step in self._submit(
            lambda: services.add_qc_period(
                uid,
                facility_id,
                valid_from=start,
                valid_until=end,
                certificate=certificate,
                source_address=source,
            ),
            lambda _: "admin_saved",
        ):
            yield step

    @rx.event
    async def end_period(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid, _ = self._context()
        qc_id, end = self.open_period_id, form_value(form, "end_until")
        async for step in self._submit(
            lambda: services.end_qc_period(uid, qc_id, valid_until=end, source_address=source),
            lambda _: "admin_saved",
            rename={"valid_until": "end_until"},
        ):
            yield step

    @rx.event
    async def add_ae(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid, facility_id = self._context()
        modality = form_value(form, "modality")
        values = {
            "ae_title": form_value(form, "ae_title"),
            "modality": "" if modality == ALL else modality,
            "station_name": form_value(form, "station_name"),
            "host": form_value(form, "ae_host"),
            "port": form_value(form, "ae_port"),
        }
        async for step in self._submit(
            lambda: services.add_ae_title(uid, facility_id, source_address=source, **values),
            lambda _: "admin_saved",
        ):
            yield step

    @rx.event
    async def remove_ae(self, ae_title_id: int) -> AsyncIterator[EventSpec | None]:
        services, source, uid, _ = self._context()
        async for step in self._submit(
            lambda: services.remove_ae_title(uid, int(ae_title_id), source_address=source),
            lambda _: "admin_saved",
        ):
            yield step


S = AdminFacilitiesState


def _error(name: str) -> rx.Var[str]:
    return S.error_text.get(name, "").to(str)


def _english() -> rx.Var[bool]:
    return S.lang == i18n.EN


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    english = _english()
    return rx.table.row(
        rx.table.cell(rx.text(row["code"], weight="bold", size="2")),
        rx.table.cell(
            rx.text(rx.cond(english, row["name_en"], row["name"]), size="2"),
            rx.text(tr_key(row["kind_key"].to(str)), size="1", color_scheme="gray"),
            max_width="300px",
        ),
        rx.table.cell(rx.text(tr_key(row["level_key"].to(str)), size="2")),
        rx.table.cell(
            rx.cond(
                row["is_reading_centre"],
                rx.badge(tr("reading_centre"), color_scheme="teal"),
            ),
            rx.text(rx.cond(english, row["centre_en"], row["centre"]), size="1"),
            max_width="260px",
        ),
        rx.table.cell(
            rx.cond(
                row["qualified"],
                rx.badge(tr("facilities_qualified"), color_scheme="green", variant="soft"),
                rx.badge(tr("facilities_not_qualified"), color_scheme="gray", variant="soft"),
            )
        ),
        rx.table.cell(
            rx.cond(
                row["hl7"] != "",
                rx.text(row["hl7"], size="1", font_family="monospace"),
                rx.text("—", color_scheme="gray"),
            )
        ),
        rx.table.cell(rx.text(row["ae_titles"], size="1", font_family="monospace")),
        rx.table.cell(
            rx.button(
                tr("admin_edit"),
                size="1",
                variant="soft",
                on_click=S.open_facility(row["facility_id"].to(int)),
                data_testid="edit-facility",
            )
        ),
        custom_attrs={"data-code": row["code"].to(str)},
        data_testid="facility-row",
    )


def _list_view() -> rx.Component:
    filters = rx.hstack(
        rx.form(
            rx.hstack(
                rx.input(
                    name="search",
                    placeholder=tr("facilities_search_hint"),
                    default_value=S.search,
                    size="2",
                    data_testid="facility-search",
                ),
                rx.button(tr("search"), type="submit", size="2", variant="soft"),
                spacing="2",
            ),
            on_submit=S.run_search,
            reset_on_submit=False,
            width="auto",
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-level"),
            rx.select.content(
                rx.select.item(tr("facilities_all_levels"), value=ALL),
                *[rx.select.item(tr(f"level_{level}"), value=level) for level in LEVELS],
            ),
            value=rx.cond(S.level_filter == "", ALL, S.level_filter),
            on_change=S.set_level_filter,
        ),
        rx.el.label(
            rx.hstack(
                rx.checkbox(checked=S.centres_only, on_change=S.set_centres_only),
                rx.text(tr("facilities_centres_only"), size="2"),
                spacing="2",
                align="center",
            )
        ),
        align="center",
        width="100%",
        spacing="3",
        wrap="wrap",
    )
    table = rx.table.root(
        rx.table.header(
            rx.table.row(
                sort_header("facility_code", "code", S.sort, S.descending, S.set_sort("code")),
                sort_header("facility", "name", S.sort, S.descending, S.set_sort("name")),
                sort_header("facilities_level", "level", S.sort, S.descending, S.set_sort("level")),
                rx.table.column_header_cell(tr("facilities_routing")),
                rx.table.column_header_cell(tr("facilities_qc_today")),
                rx.table.column_header_cell(tr("facilities_hl7")),
                rx.table.column_header_cell(tr("facilities_ae_titles")),
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(rx.foreach(S.rows, _row)),
        variant="surface",
        size="1",
        width="100%",
        data_testid="facilities-table",
    )
    return rx.vstack(
        filters,
        rx.cond(
            S.total > 0,
            table,
            rx.text(tr("facilities_empty"), color_scheme="gray", data_testid="facilities-empty"),
        ),
        pager(S.page, S.pages, S.total, S.previous_page, S.next_page),
        spacing="4",
        width="100%",
    )


def _section(title_key: str, *children: rx.Component, test_id: str) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading(tr(title_key), size="3", as_="h2"),
            *children,
            spacing="3",
            width="100%",
        ),
        width="100%",
        data_testid=test_id,
    )


def _routing() -> rx.Component:
    chosen = S.selected
    return _section(
        "facilities_routing",
        rx.form(
            rx.vstack(
                rx.el.label(
                    rx.hstack(
                        rx.checkbox(
                            name="is_reading_centre",
                            default_checked=chosen["is_reading_centre"].to(bool),
                            data_testid="input-is_reading_centre",
                        ),
                        rx.text(tr("facilities_is_centre"), size="2"),
                        spacing="2",
                        align="center",
                    )
                ),
                rx.cond(
                    _error("is_reading_centre") != "",
                    rx.text(
                        _error("is_reading_centre"),
                        size="2",
                        color_scheme="red",
                        role="alert",
                        data_testid="is_reading_centre-error",
                    ),
                ),
                form_field(
                    "facilities_reading_centre_of",
                    rx.select.root(
                        rx.select.trigger(
                            id="reading_centre_id",
                            width="100%",
                            data_testid="select-reading_centre_id",
                        ),
                        rx.select.content(
                            rx.select.item(tr("facilities_no_centre"), value=NO_CENTRE),
                            rx.foreach(
                                S.centres,
                                lambda c: rx.select.item(
                                    rx.cond(_english(), c["label_en"], c["label"]),
                                    value=c["value"],
                                ),
                            ),
                        ),
                        name="reading_centre_id",
                        default_value=chosen["reading_centre_id"].to(str),
                    ),
                    _error("reading_centre_id"),
                    "reading_centre_id",
                ),
                rx.text(
                    tr("facilities_uploaders"),
                    ": ",
                    chosen["uploaders"].to(str),
                    size="1",
                    color_scheme="gray",
                ),
                rx.button(
                    tr("admin_save"), type="submit", disabled=S.busy, data_testid="save-routing"
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=S.save_routing,
            reset_on_submit=False,
            key=S.form_key.to_string(),
            width="100%",
        ),
        test_id="routing",
    )


def _hl7() -> rx.Component:
    chosen = S.selected
    return _section(
        "facilities_hl7",
        rx.text(tr("facilities_hl7_hint"), size="1", color_scheme="gray"),
        rx.form(
            rx.vstack(
                rx.grid(
                    form_field(
                        "facilities_hl7_host",
                        text_input(
                            "hl7_host",
                            _error("hl7_host"),
                            default_value=chosen["hl7_host"].to(str),
                        ),
                        _error("hl7_host"),
                        "hl7_host",
                    ),
                    form_field(
                        "facilities_hl7_port",
                        text_input(
                            "hl7_port",
                            _error("hl7_port"),
                            default_value=chosen["hl7_port"].to(str),
                        ),
                        _error("hl7_port"),
                        "hl7_port",
                    ),
                    columns="2fr 1fr",
                    spacing="3",
                    width="100%",
                ),
                form_field(
                    "facilities_hl7_charset",
                    select_input(
                        "hl7_charset",
                        [(charset, charset) for charset in admin.HL7_CHARSETS],
                        _error("hl7_charset"),
                        default_value=chosen["hl7_charset"].to(str),
                    ),
                    _error("hl7_charset"),
                    "hl7_charset",
                ),
                rx.button(tr("admin_save"), type="submit", disabled=S.busy, data_testid="save-hl7"),
                spacing="3",
                width="100%",
            ),
            on_submit=S.save_hl7,
            reset_on_submit=False,
            key=S.form_key.to_string(),
            width="100%",
        ),
        test_id="hl7",
    )


def _period_row(p: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(p["valid_from"]),
        rx.table.cell(
            rx.cond(p["valid_until"] != "", p["valid_until"], tr("facilities_open_ended"))
        ),
        rx.table.cell(p["certificate"]),
        rx.table.cell(
            rx.cond(
                p["current"],
                rx.badge(tr("facilities_current"), color_scheme="green", variant="soft"),
            )
        ),
        data_testid="qc-period",
    )


def _qc() -> rx.Component:
    periods = rx.cond(
        S.periods.length() > 0,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell(tr("facilities_valid_from")),
                    rx.table.column_header_cell(tr("facilities_valid_until")),
                    rx.table.column_header_cell(tr("facilities_certificate")),
                    rx.table.column_header_cell(""),
                )
            ),
            rx.table.body(rx.foreach(S.periods, _period_row)),
            size="1",
            width="100%",
        ),
        rx.text(tr("facilities_qc_none"), size="2", color_scheme="gray"),
    )
    end_form = rx.cond(
        S.open_period_id > 0,
        rx.form(
            rx.hstack(
                form_field(
                    "facilities_end_on",
                    text_input("end_until", _error("end_until"), input_type="date"),
                    _error("end_until"),
                    "end_until",
                    width="200px",
                ),
                rx.button(
                    tr("facilities_end_period"),
                    type="submit",
                    variant="soft",
                    color_scheme="amber",
                    disabled=S.busy,
                    margin_top="24px",
                    data_testid="end-period",
                ),
                align="start",
                spacing="3",
            ),
            on_submit=S.end_period,
            reset_on_submit=False,
            key=S.form_key.to_string(),
        ),
    )
    add_form = rx.form(
        rx.hstack(
            form_field(
                "facilities_valid_from",
                text_input("valid_from", _error("valid_from"), input_type="date"),
                _error("valid_from"),
                "valid_from",
                width="150px",
            ),
            form_field(
                "facilities_valid_until",
                text_input("valid_until", _error("valid_until"), input_type="date"),
                _error("valid_until"),
                "valid_until",
                width="150px",
            ),
            form_field(
                "facilities_certificate",
                text_input("certificate", _error("certificate")),
                _error("certificate"),
                "certificate",
                width="130px",
            ),
            rx.button(
                tr("facilities_add_period"),
                type="submit",
                variant="soft",
                disabled=S.busy,
                margin_top="24px",
                data_testid="add-period",
            ),
            align="start",
            spacing="3",
            wrap="wrap",
        ),
        on_submit=S.add_period,
        reset_on_submit=False,
        key=S.form_key.to_string(),
    )
    return _section("facilities_qc_periods", periods, end_form, add_form, test_id="qc")


def _ae_row(t: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(t["ae_title"], font_family="monospace", weight="bold")),
        rx.table.cell(t["modality"]),
        rx.table.cell(t["station"]),
        rx.table.cell(rx.text(t["move"], font_family="monospace", size="1")),
        rx.table.cell(
            rx.button(
                tr("facilities_remove"),
                size="1",
                variant="ghost",
                color_scheme="red",
                on_click=S.remove_ae(t["id"].to(int)),
                disabled=S.busy,
                data_testid="remove-ae",
            )
        ),
        custom_attrs={"data-ae": t["ae_title"].to(str)},
        data_testid="ae-row",
    )


def _ae() -> rx.Component:
    titles = rx.cond(
        S.ae_titles.length() > 0,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell(tr("facilities_ae_titles")),
                    rx.table.column_header_cell(tr("facilities_modality")),
                    rx.table.column_header_cell(tr("facilities_station")),
                    rx.table.column_header_cell("C-MOVE"),
                    rx.table.column_header_cell(""),
                )
            ),
            rx.table.body(rx.foreach(S.ae_titles, _ae_row)),
            size="1",
            width="100%",
        ),
        rx.text(tr("facilities_ae_none"), size="2", color_scheme="gray"),
    )
    add_form = rx.form(
        rx.vstack(
            rx.grid(
                form_field(
                    "facilities_ae_titles",
                    text_input("ae_title", _error("ae_title")),
                    _error("ae_title"),
                    "ae_title",
                ),
                form_field(
                    "facilities_modality",
                    select_input(
                        "modality",
                        [(ALL, tr("facilities_any_modality"))] + [(m, m) for m in MODALITIES],
                        _error("modality"),
                        default_value=ALL,
                    ),
                    _error("modality"),
                    "modality",
                ),
                form_field(
                    "facilities_station",
                    text_input("station_name", _error("station_name")),
                    _error("station_name"),
                    "station_name",
                ),
                form_field(
                    "facilities_move_host",
                    text_input("ae_host", _error("ae_host")),
                    _error("ae_host"),
                    "ae_host",
                ),
                form_field(
                    "facilities_move_port",
                    text_input("ae_port", _error("ae_port")),
                    _error("ae_port"),
                    "ae_port",
                ),
                columns="3",
                spacing="3",
                width="100%",
            ),
            rx.button(
                tr("facilities_add_ae"),
                type="submit",
                variant="soft",
                disabled=S.busy,
                data_testid="add-ae",
            ),
            spacing="3",
            width="100%",
        ),
        on_submit=S.add_ae,
        reset_on_submit=False,
        key=S.form_key.to_string(),
        width="100%",
    )
    return _section("facilities_ae_titles", titles, add_form, test_id="ae")


def _detail_view() -> rx.Component:
    chosen = S.selected
    english = _english()
    return rx.vstack(
        rx.hstack(
            rx.vstack(
                rx.heading(
                    chosen["code"].to(str),
                    " · ",
                    rx.cond(english, chosen["name_en"].to(str), chosen["name"].to(str)),
                    size="4",
                    as_="h2",
                    data_testid="facility-heading",
                ),
                rx.text(
                    tr_key(chosen["level_key"].to(str)),
                    " · ",
                    tr_key(chosen["kind_key"].to(str)),
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
        rx.grid(_routing(), _hl7(), _qc(), _ae(), columns="2", spacing="4", width="100%"),
        spacing="4",
        width="100%",
    )


def admin_facilities_page() -> rx.Component:
    body = when_allowed(
        S.allowed,
        rx.vstack(
            rx.heading(tr("facilities_title"), size="6", as_="h1"),
            notice_callout(S.notice, S.notice_is_error),
            rx.cond(S.mode == "detail", _detail_view(), _list_view()),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
