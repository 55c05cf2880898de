"""/admin/users: the accounts of the facilities an administrator manages.

The table pages, sorts and filters on the server (`integration.administration.list_users`);
creating and editing happen on the same page, each refusal shown under its field.
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
from models.enums import ProfessionalTitle, Role
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
    select_input,
    sort_header,
    text_input,
)
from portal.paging import SortedTable

SORTS: tuple[str, ...] = tuple(sort.value for sort in admin.UserSort)
STATUSES: tuple[str, ...] = tuple(status.value for status in admin.UserStatus)
ROLES: tuple[str, ...] = tuple(role.value for role in Role)
TITLES: tuple[str, ...] = tuple(title.value for title in ProfessionalTitle)
ALL = "all"  # a select's "no filter" value (Radix refuses an empty one)


def user_rows(page: admin.UserPage, zone_key: str) -> list[dict[str, Any]]:
    """Plain rows for the table, times in the region's zone."""
    return [user_fields(row, zone_key) for row in page.rows]


def user_fields(row: admin.UserRow, zone_key: str) -> dict[str, Any]:
    zone = i18n.zone(zone_key)
    return {
        "user_id": row.user_id,
        "username": row.username,
        "display_name": row.display_name,
        "role": row.role.value,
        "title": row.title.value,
        "facility_id": str(row.facility_id),
        "facility": f"{row.facility_code} {row.facility_name}",
        "facility_en": f"{row.facility_code} {row.facility_name_en or row.facility_name}",
        "active": row.active,
        "locked": row.locked_until is not None,
        "locked_until": i18n.local_datetime(row.locked_until, zone),
        "last_login": i18n.local_datetime(row.last_login_at, zone),
        "is_demo": row.is_demo,
    }


def facility_options(choices: tuple[admin.FacilityChoice, ...]) -> list[dict[str, str]]:
    return [
        {
            "value": str(c.facility_id),
            "label": f"{c.code} {c.name}",
            "label_en": f"{c.code} {c.name_en or c.name}",
        }
        for c in choices
    ]


class AdminUsersState(SortedTable, SessionState):
    allowed: bool = False
    mode: str = "list"  # list | create | edit
    rows: list[dict[str, Any]] = []
    total: int = 0
    search: str = ""
    role_filter: str = ""
    facility_filter: str = ""
    status_filter: str = admin.UserStatus.any.value
    sort: str = admin.UserSort.username.value
    descending: bool = False
    facilities: list[dict[str, str]] = []
    selected: dict[str, Any] = {}
    form_key: int = 0  # a new value remounts the forms with fresh defaults
    errors: dict[str, str] = {}  # field -> i18n key
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

    @rx.var
    def role_labels(self) -> dict[str, str]:
        return {role: i18n.role_name(role, self.lang) for role in ROLES}

    @rx.var
    def title_labels(self) -> dict[str, str]:
        return {title: i18n.title_name(title, self.lang) for title in TITLES}

    def _query(self) -> admin.UserQuery:
        return admin.UserQuery(
            text=self.search,
            role=self.role_filter,
            facility_id=int(self.facility_filter) if self.facility_filter.isdigit() else None,
            status=admin.UserStatus(self.status_filter),
            sort=admin.UserSort(self.sort),
            descending=self.descending,
            page=self.page,
        )

    async def _fetch(self) -> None:
        services = portal_services()
        try:
            result = await asyncio.to_thread(services.admin_users, self.user_id, self._query())
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return
        self.rows = user_rows(result, services.settings.timezone)
        self.total, self.page, self.pages = result.total, result.page, result.pages

    def _sorts(self) -> tuple[tuple[str, ...], str]:
        return SORTS, admin.UserSort.username.value

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_users)
        if refusal is not None:
            yield refusal
            return
        await self._fetch()

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.manage_users)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.mode, self.errors, self.selected = "list", {}, {}
        self.notice_key, self.notice_detail = "", ""
        services = portal_services()
        choices = await asyncio.to_thread(services.admin_facility_choices, self.user_id)
        self.facilities = facility_options(choices)
        await self._fetch()

    @rx.event
    async def run_search(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        self.search = form_value(form, "search").strip()[:64]
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_role_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.role_filter = value if value in ROLES else ""
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_facility_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.facility_filter = value if value.isdigit() else ""
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_status_filter(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.status_filter = value if value in STATUSES else admin.UserStatus.any.value
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    def start_create(self) -> EventSpec | None:
        refusal = self.guard(Action.manage_users)
        if refusal is not None:
            return refusal
        self.mode, self.errors, self.selected = "create", {}, {}
        self.notice_key, self.notice_detail = "", ""
        self.form_key += 1
        return None

    @rx.event
    async def back(self) -> AsyncIterator[EventSpec | None]:
        self.mode, self.errors, self.selected = "list", {}, {}
        async for step in self._refresh():
            yield step

    async def _read_selected(self, target_id: int) -> bool:
        services = portal_services()
        try:
            row = await asyncio.to_thread(services.admin_user, self.user_id, target_id)
        except HurenError as error:
            self.notice_key, self.notice_detail = notice_for(error)
            return False
        self.selected = user_fields(row, services.settings.timezone)
        self.form_key += 1
        return True

    @rx.event
    async def edit(self, target_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.manage_users)
        if refusal is not None:
            yield refusal
            return
        self.errors, self.notice_key, self.notice_detail = {}, "", ""
        if await self._read_selected(int(target_id)):
            self.mode = "edit"

    async def _submit(
        self, call: Callable[[], object], done: Callable[[object], str]
    ) -> AsyncIterator[EventSpec | None]:
        """One change: refusals under their fields (or as the notice), else the done notice."""
        refusal = self.guard(Action.manage_users)
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
                self.errors = {placed[0]: placed[1]}
            else:
                self.notice_key, self.notice_detail = notice_for(error)
            return
        self.busy = False
        self.notice_key = done(outcome)

    @rx.event
    async def create(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid = portal_services(), self.router.session.client_ip, self.user_id
        facility = form_value(form, "facility_id")
        new = admin.NewUser(
            username=form_value(form, "username"),
            display_name=form_value(form, "display_name"),
            role=form_value(form, "role"),
            title=form_value(form, "title") or ProfessionalTitle.none.value,
            facility_id=int(facility) if facility.isdigit() else None,
            password=form_value(form, "password"),
        )
        async for step in self._submit(
            lambda: services.create_user(uid, new, source_address=source),
            lambda _: "users_created",
        ):
            yield step
        if self.notice_key == "users_created":
            # Show the new account in the list, found by its name.
            self.mode, self.search, self.page = "list", new.username.strip(), 1
            self.role_filter, self.facility_filter = "", ""
            self.status_filter = admin.UserStatus.any.value
            await self._fetch()

    @rx.event
    async def save(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid = portal_services(), self.router.session.client_ip, self.user_id
        target = int(self.selected.get("user_id", 0))
        facility = form_value(form, "facility_id")
        change = admin.UserChange(
            display_name=form_value(form, "display_name"),
            role=form_value(form, "role"),
            title=form_value(form, "title") or ProfessionalTitle.none.value,
            facility_id=int(facility) if facility.isdigit() else None,
            active=checked(form, "active"),
        )
        async for step in self._submit(
            lambda: services.update_user(uid, target, change, source_address=source),
            lambda changed: "admin_saved" if changed else "admin_unchanged",
        ):
            yield step
        if not self.errors and target:
            await self._read_selected(target)

    @rx.event
    async def reset_password(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        services, source, uid = portal_services(), self.router.session.client_ip, self.user_id
        target = int(self.selected.get("user_id", 0))
        password = form_value(form, "new_password")
        async for step in self._submit(
            lambda: services.reset_password(uid, target, password=password, source_address=source),
            lambda _: "users_password_reset",
        ):
            yield step
        if self.errors.get("password"):
            self.errors = {"new_password": self.errors["password"]}
        elif not self.errors and target:
            await self._read_selected(target)

    @rx.event
    async def unlock(self) -> AsyncIterator[EventSpec | None]:
        services, source, uid = portal_services(), self.router.session.client_ip, self.user_id
        target = int(self.selected.get("user_id", 0))
        async for step in self._submit(
            lambda: services.unlock_user(uid, target, source_address=source),
            lambda lifted: "users_unlocked" if lifted else "users_not_locked",
        ):
            yield step
        if target:
            await self._read_selected(target)


S = AdminUsersState


def _error(name: str) -> rx.Var[str]:
    return S.error_text.get(name, "").to(str)


def _role_options() -> list[tuple[str, rx.Var[str] | str]]:
    return [(role, S.role_labels[role].to(str)) for role in ROLES]


def _title_options() -> list[tuple[str, rx.Var[str] | str]]:
    return [(title, S.title_labels[title].to(str)) for title in TITLES]


def _facility_label(option: rx.Var[dict[str, str]]) -> rx.Var[str]:
    return rx.cond(S.lang == i18n.EN, option["label_en"], option["label"]).to(str)


def _status_badges(row: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.hstack(
        rx.cond(
            row["active"],
            rx.badge(tr("users_active"), color_scheme="green", variant="soft"),
            rx.badge(tr("users_inactive"), color_scheme="gray", variant="solid"),
        ),
        rx.cond(row["locked"], rx.badge(tr("users_locked"), color_scheme="red")),
        rx.cond(row["is_demo"], rx.badge(tr("users_demo"), color_scheme="amber", variant="soft")),
        spacing="1",
        wrap="wrap",
    )


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    english = S.lang == i18n.EN
    return rx.table.row(
        rx.table.cell(rx.text(row["username"], weight="bold", size="2")),
        rx.table.cell(rx.text(row["display_name"], size="2")),
        rx.table.cell(rx.text(S.role_labels[row["role"].to(str)], size="2")),
        rx.table.cell(rx.text(S.title_labels[row["title"].to(str)], size="2")),
        rx.table.cell(
            rx.text(rx.cond(english, row["facility_en"], row["facility"]), size="2"),
            max_width="320px",
        ),
        rx.table.cell(_status_badges(row)),
        rx.table.cell(
            rx.text(
                rx.cond(row["last_login"] != "", row["last_login"], tr("users_never")), size="2"
            )
        ),
        rx.table.cell(
            rx.button(
                tr("admin_edit"),
                size="1",
                variant="soft",
                on_click=S.edit(row["user_id"].to(int)),
                data_testid="edit-user",
            )
        ),
        custom_attrs={"data-username": row["username"].to(str)},
        data_testid="user-row",
    )


def _filters() -> rx.Component:
    return rx.hstack(
        rx.form(
            rx.hstack(
                rx.input(
                    name="search",
                    placeholder=tr("admin_search_hint"),
                    default_value=S.search,
                    size="2",
                    data_testid="user-search",
                ),
                rx.button(tr("search"), type="submit", size="2", variant="soft"),
                spacing="2",
            ),
            on_submit=S.run_search,
            reset_on_submit=False,
            width="auto",
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-role"),
            rx.select.content(
                rx.select.item(tr("users_all_roles"), value=ALL),
                *[rx.select.item(label, value=value) for value, label in _role_options()],
            ),
            value=rx.cond(S.role_filter == "", ALL, S.role_filter),
            on_change=S.set_role_filter,
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-facility", max_width="280px"),
            rx.select.content(
                rx.select.item(tr("users_all_facilities"), value=ALL),
                rx.foreach(
                    S.facilities,
                    lambda f: rx.select.item(_facility_label(f), value=f["value"]),
                ),
            ),
            value=rx.cond(S.facility_filter == "", ALL, S.facility_filter),
            on_change=S.set_facility_filter,
        ),
        rx.select.root(
            rx.select.trigger(data_testid="filter-status"),
            rx.select.content(
                rx.select.item(tr("users_any_status"), value=admin.UserStatus.any.value),
                rx.select.item(tr("users_active"), value=admin.UserStatus.active.value),
                rx.select.item(tr("users_inactive"), value=admin.UserStatus.inactive.value),
                rx.select.item(tr("users_locked"), value=admin.UserStatus.locked.value),
            ),
            value=S.status_filter,
            on_change=S.set_status_filter,
        ),
        rx.spacer(),
        rx.button(tr("users_new"), on_click=S.start_create, data_testid="new-user"),
        align="center",
        width="100%",
        spacing="3",
        wrap="wrap",
    )


def _table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                sort_header("username", "username", S.sort, S.descending, S.set_sort("username")),
                sort_header(
                    "users_display_name",
                    "display_name",
                    S.sort,
                    S.descending,
                    S.set_sort("display_name"),
                ),
                sort_header("users_role", "role", S.sort, S.descending, S.set_sort("role")),
                rx.table.column_header_cell(tr("users_title_label")),
                sort_header("facility", "facility", S.sort, S.descending, S.set_sort("facility")),
                rx.table.column_header_cell(tr("users_status")),
                sort_header(
                    "users_last_login",
                    "last_login",
                    S.sort,
                    S.descending,
                    S.set_sort("last_login"),
                ),
                rx.table.column_header_cell(""),
            )
        ),
        rx.table.body(rx.foreach(S.rows, _row)),
        variant="surface",
        size="1",
        width="100%",
        data_testid="users-table",
    )


def _list_view() -> rx.Component:
    return rx.vstack(
        _filters(),
        rx.cond(
            S.total > 0,
            _table(),
            rx.text(tr("users_empty"), color_scheme="gray", data_testid="users-empty"),
        ),
        pager(S.page, S.pages, S.total, S.previous_page, S.next_page),
        spacing="4",
        width="100%",
    )


def _create_view() -> rx.Component:
    form = rx.form(
        rx.vstack(
            rx.grid(
                form_field(
                    "username",
                    text_input("username", _error("username")),
                    _error("username"),
                    "username",
                ),
                form_field(
                    "users_display_name",
                    text_input("display_name", _error("display_name")),
                    _error("display_name"),
                    "display_name",
                ),
                form_field(
                    "users_role",
                    select_input(
                        "role", _role_options(), _error("role"), default_value="radiologist"
                    ),
                    _error("role"),
                    "role",
                ),
                form_field(
                    "users_title_label",
                    select_input("title", _title_options(), _error("title"), default_value="none"),
                    _error("title"),
                    "title",
                ),
                form_field(
                    "facility",
                    select_input(
                        "facility_id",
                        S.facilities,
                        _error("facility_id"),
                        label_field=_facility_label,
                    ),
                    _error("facility_id"),
                    "facility_id",
                ),
                form_field(
                    "users_initial_password",
                    text_input(
                        "password",
                        _error("password"),
                        input_type="password",
                        autocomplete="new-password",
                    ),
                    _error("password"),
                    "password",
                    hint_key="users_password_hint",
                ),
                columns="2",
                spacing="4",
                width="100%",
            ),
            rx.hstack(
                rx.button(
                    tr("users_create"), type="submit", disabled=S.busy, data_testid="create-user"
                ),
                rx.button(
                    tr("admin_back"),
                    type="button",
                    variant="soft",
                    color_scheme="gray",
                    on_click=S.back,
                ),
                spacing="3",
            ),
            spacing="4",
            width="100%",
        ),
        on_submit=S.create,
        reset_on_submit=False,
        key=S.form_key.to_string(),
        width="100%",
    )
    return rx.card(
        rx.vstack(rx.heading(tr("users_new"), size="4", as_="h2"), form, spacing="4"),
        width="100%",
        max_width="860px",
    )


def _edit_view() -> rx.Component:
    chosen = S.selected
    profile = rx.form(
        rx.vstack(
            rx.grid(
                form_field(
                    "users_display_name",
                    text_input(
                        "display_name",
                        _error("display_name"),
                        default_value=chosen["display_name"].to(str),
                    ),
                    _error("display_name"),
                    "display_name",
                ),
                form_field(
                    "users_role",
                    select_input(
                        "role",
                        _role_options(),
                        _error("role"),
                        default_value=chosen["role"].to(str),
                    ),
                    _error("role"),
                    "role",
                ),
                form_field(
                    "users_title_label",
                    select_input(
                        "title",
                        _title_options(),
                        _error("title"),
                        default_value=chosen["title"].to(str),
                    ),
                    _error("title"),
                    "title",
                ),
                form_field(
                    "facility",
                    select_input(
                        "facility_id",
                        S.facilities,
                        _error("facility_id"),
                        default_value=chosen["facility_id"].to(str),
                        label_field=_facility_label,
                    ),
                    _error("facility_id"),
                    "facility_id",
                ),
                columns="2",
                spacing="4",
                width="100%",
            ),
            rx.vstack(
                rx.el.label(
                    rx.hstack(
                        rx.checkbox(
                            name="active",
                            default_checked=chosen["active"].to(bool),
                            data_testid="input-active",
                        ),
                        rx.text(tr("users_account_active"), size="2"),
                        spacing="2",
                        align="center",
                    )
                ),
                rx.cond(
                    _error("active") != "",
                    rx.text(
                        _error("active"),
                        size="2",
                        color_scheme="red",
                        role="alert",
                        data_testid="active-error",
                    ),
                ),
                spacing="1",
            ),
            rx.button(tr("admin_save"), type="submit", disabled=S.busy, data_testid="save-user"),
            spacing="4",
            width="100%",
        ),
        on_submit=S.save,
        reset_on_submit=False,
        key=S.form_key.to_string(),
        width="100%",
    )
    password = rx.form(
        rx.hstack(
            form_field(
                "users_new_password",
                text_input(
                    "new_password",
                    _error("new_password"),
                    input_type="password",
                    autocomplete="new-password",
                ),
                _error("new_password"),
                "new_password",
                hint_key="users_password_hint",
                width="320px",
            ),
            rx.button(
                tr("users_reset_password"),
                type="submit",
                variant="soft",
                disabled=S.busy,
                data_testid="reset-password",
                margin_top="24px",
            ),
            align="start",
            spacing="3",
        ),
        on_submit=S.reset_password,
        reset_on_submit=True,
    )
    lock = rx.hstack(
        rx.cond(
            chosen["locked"].to(bool),
            rx.text(tr("users_locked_until"), " ", chosen["locked_until"].to(str), size="2"),
        ),
        rx.cond(
            chosen["locked"].to(bool),
            rx.button(
                tr("users_unlock"),
                variant="outline",
                on_click=S.unlock,
                disabled=S.busy,
                data_testid="unlock-user",
            ),
        ),
        align="center",
        spacing="3",
    )
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(
                    tr("users_edit_title"), " · ", chosen["username"].to(str), size="4", as_="h2"
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
            profile,
            rx.separator(size="4"),
            password,
            lock,
            spacing="4",
            width="100%",
        ),
        width="100%",
        max_width="860px",
    )


def admin_users_page() -> rx.Component:
    body = when_allowed(
        S.allowed,
        rx.vstack(
            rx.heading(tr("users_title"), size="6", as_="h1"),
            notice_callout(S.notice, S.notice_is_error),
            rx.match(
                S.mode,
                ("create", _create_view()),
                ("edit", _edit_view()),
                _list_view(),
            ),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
