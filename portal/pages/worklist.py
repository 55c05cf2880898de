"""/worklist: the reading centre's studies, emergencies first, with each deadline's clock.

Filtering, sorting and paging happen on the server (`integration.reading_desk.worklist`);
this state keeps one page of plain rows and refreshes it every 30 seconds while open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.permissions import Action
from integration.reading_desk import WorklistPage, WorklistQuery, WorklistSort, WorklistView
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import clock_badge, page_shell, pager, tr, tr_key, when_allowed
from portal.paging import SortedTable

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 30
REFRESH_ROUNDS = 120  # an hour of refreshes at most per visit; idle sign-out ends it sooner
VIEWS: tuple[str, ...] = tuple(view.value for view in WorklistView)
SORTS: tuple[str, ...] = tuple(sort.value for sort in WorklistSort)


def worklist_rows(page: WorklistPage, zone_key: str) -> list[dict[str, Any]]:
    """Plain rows for the table, times already in the region's zone."""
    zone = i18n.zone(zone_key)
    return [
        {
            "study_id": row.study_id,
            "href": routes.reading(row.study_id),
            "accession": row.accession,
            "patient": row.patient_name,
            "sex_key": f"sex_{row.sex or 'U'}",
            "age": row.age,
            "exam": row.exam_name,
            "exam_en": row.exam_name_en or row.exam_name,
            "modality": row.modality,
            "clinic": row.clinic_name,
            "clinic_en": row.clinic_name_en or row.clinic_name,
            "emergency": row.priority.value == "emergency",
            "status_key": f"status_{row.reading_status.value}",
            "arrived": i18n.local_datetime(row.arrived_at, zone),
            "due": i18n.local_datetime(row.due_at, zone) if row.due_at else "",
            "due_iso": row.due_at.isoformat() if row.due_at else "",
            "clock": row.clock.value,
            "claimed_by": row.claimed_by,
            "claimed_by_me": row.claimed_by_me,
            "claimable": row.reading_status.value in ("awaiting_preliminary", "awaiting_audit"),
            "instances": row.num_instances,
        }
        for row in page.rows
    ]


class WorklistState(SortedTable, SessionState):
    allowed: bool = False
    rows: list[dict[str, Any]] = []
    total: int = 0
    counts: dict[str, int] = {}
    clinics: list[dict[str, str]] = []
    modalities: list[str] = []
    view: str = WorklistView.open.value
    clinic_id: str = ""
    modality: str = ""
    sort: str = WorklistSort.priority.value
    descending: bool = False
    message_key: str = ""  # the last action's outcome, worded in the session's language
    message_detail: str = ""
    loaded_at: str = ""
    visit: int = 0  # a new visit ends the previous visit's refresh loop

    @rx.var
    def message(self) -> str:
        if not self.message_key:
            return ""
        text = i18n.text(self.message_key, self.lang)
        return f"{text} {self.message_detail}".strip()

    def _query(self) -> WorklistQuery:
        return WorklistQuery(
            view=WorklistView(self.view),
            clinic_id=int(self.clinic_id) if self.clinic_id.isdigit() else None,
            modality=self.modality,
            sort=WorklistSort(self.sort),
            descending=self.descending,
            page=self.page,
        )

    async def _fetch(self) -> None:
        services = portal_services()
        try:
            result = await asyncio.to_thread(services.worklist, self.user_id, self._query())
        except HurenError as error:
            self.message_key, self.message_detail = "err_action", str(error)
            return
        self._apply(result, services.settings.timezone)

    def _apply(self, result: WorklistPage, zone_key: str) -> None:
        self.rows = worklist_rows(result, zone_key)
        self.total, self.page, self.pages = result.total, result.page, result.pages
        self.counts = dict(result.counts)
        self.clinics = [
            {"id": str(cid), "name": name, "name_en": name_en or name}
            for cid, name, name_en in result.clinics
        ]
        self.modalities = list(result.modalities)
        self.loaded_at = i18n.local_time(datetime.now(UTC), i18n.zone(zone_key))

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        """on_load: check the user, then read the first page and keep it fresh."""
        self.allowed = False
        refusal = self.guard(Action.read_worklist)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        self.message_key = ""
        self.visit += 1
        await self._fetch()
        yield WorklistState.keep_fresh(self.visit)

    @rx.event(background=True)
    async def keep_fresh(self, visit: int) -> None:
        """Re-read the page every 30 s while this visit lasts (bounded), for claims and clocks."""
        for _ in range(REFRESH_ROUNDS):
            await asyncio.sleep(REFRESH_SECONDS)
            async with self:
                if self.visit != visit or not self.allowed or self.user_id <= 0:
                    return
                if self.router.page.path != routes.WORKLIST:
                    return
                query, user_id = self._query(), self.user_id
            services = portal_services()
            try:
                result = await asyncio.to_thread(services.worklist, user_id, query)
            except Exception:  # the next round tries again; the page keeps its rows
                logger.exception("worklist refresh failed")
                continue
            async with self:
                if self.visit == visit:
                    self._apply(result, services.settings.timezone)

    def _sorts(self) -> tuple[tuple[str, ...], str]:
        return SORTS, WorklistSort.priority.value

    async def _refresh(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.read_worklist)
        if refusal is not None:
            yield refusal
            return
        await self._fetch()

    @rx.event
    async def set_view(self, view: str) -> AsyncIterator[EventSpec | None]:
        self.view = view if view in VIEWS else WorklistView.open.value
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_clinic(self, clinic_id: str) -> AsyncIterator[EventSpec | None]:
        self.clinic_id = "" if clinic_id == "all" else clinic_id
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def set_modality(self, modality: str) -> AsyncIterator[EventSpec | None]:
        self.modality = "" if modality == "all" else modality
        self.page = 1
        async for step in self._refresh():
            yield step

    @rx.event
    async def claim(self, study_id: int) -> AsyncIterator[EventSpec | None]:
        """Take the study and open it; a colleague's live claim is said, not overridden."""
        refusal = self.guard(Action.claim)
        if refusal is not None:
            yield refusal
            return
        try:
            await asyncio.to_thread(portal_services().claim, self.user_id, int(study_id))
        except HurenError as error:
            self.message_key, self.message_detail = "err_action", str(error)
            await self._fetch()
            return
        yield rx.redirect(routes.reading(int(study_id)))


def _view_tab(view: str) -> rx.Component:
    count = WorklistState.counts.get(view, 0)
    return rx.tabs.trigger(
        rx.hstack(
            rx.text(tr(f"view_{view}")),
            rx.cond(
                view != "final",
                rx.badge(count.to_string(), variant="soft", size="1"),
            ),
            spacing="2",
            align="center",
        ),
        value=view,
        data_testid=f"view-{view}",
    )


def _sort_header(label_key: str, sort: str) -> rx.Component:
    return rx.table.column_header_cell(
        rx.button(
            tr(label_key),
            rx.cond(
                WorklistState.sort == sort,
                rx.cond(WorklistState.descending, " ↓", " ↑"),
                "",
            ),
            variant="ghost",
            size="1",
            color_scheme="gray",
            high_contrast=True,
            weight="bold",
            on_click=WorklistState.set_sort(sort),
            data_testid=f"sort-{sort}",
        )
    )


def _row(row: rx.Var[dict[str, Any]]) -> rx.Component:
    english = WorklistState.lang == i18n.EN
    return rx.table.row(
        rx.table.cell(
            rx.cond(
                row["emergency"],
                rx.badge(tr("emergency"), color_scheme="red", variant="solid"),
                rx.badge(tr("routine"), color_scheme="gray", variant="soft"),
            )
        ),
        rx.table.cell(
            rx.link(row["patient"], href=row["href"], weight="bold"),
            rx.text(tr_key(row["sex_key"].to(str)), " ", row["age"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.text(rx.cond(english, row["exam_en"], row["exam"]), size="2"),
            rx.text(row["modality"], " · ", row["accession"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(rx.text(rx.cond(english, row["clinic_en"], row["clinic"]), size="2")),
        rx.table.cell(rx.text(row["arrived"], size="2")),
        rx.table.cell(rx.text(tr_key(row["status_key"].to(str)), size="2")),
        rx.table.cell(
            rx.cond(
                row["due"] != "",
                rx.vstack(
                    clock_badge(row["clock"].to(str), row["due"].to(str)),
                    rx.moment(
                        date=row["due_iso"].to(str),
                        from_now=True,
                        interval=15000,
                        locale=rx.cond(english, "en", "zh-cn"),
                        font_size="12px",
                    ),
                    spacing="1",
                ),
                rx.text("—", color_scheme="gray"),
            )
        ),
        rx.table.cell(
            rx.cond(
                row["claimed_by_me"],
                rx.link(tr("continue_reading"), href=row["href"], data_testid="continue"),
                rx.cond(
                    row["claimed_by"] != "",
                    rx.text(tr("taken_by"), " ", row["claimed_by"], size="2", color_scheme="gray"),
                    rx.cond(
                        row["claimable"],
                        rx.button(
                            tr("claim"),
                            size="1",
                            on_click=WorklistState.claim(row["study_id"].to(int)),
                            data_testid="claim",
                        ),
                        rx.link(tr("open"), href=row["href"]),
                    ),
                ),
            )
        ),
        custom_attrs={"data-study": row["study_id"].to(str)},
        data_testid="worklist-row",
    )


def _filters() -> rx.Component:
    english = WorklistState.lang == i18n.EN
    return rx.hstack(
        rx.select.root(
            rx.select.trigger(placeholder=tr("all_clinics"), data_testid="filter-clinic"),
            rx.select.content(
                rx.select.item(tr("all_clinics"), value="all"),
                rx.foreach(
                    WorklistState.clinics,
                    lambda c: rx.select.item(
                        rx.cond(english, c["name_en"], c["name"]), value=c["id"]
                    ),
                ),
            ),
            value=rx.cond(WorklistState.clinic_id == "", "all", WorklistState.clinic_id),
            on_change=WorklistState.set_clinic,
        ),
        rx.select.root(
            rx.select.trigger(placeholder=tr("all_modalities"), data_testid="filter-modality"),
            rx.select.content(
                rx.select.item(tr("all_modalities"), value="all"),
                rx.foreach(WorklistState.modalities, lambda m: rx.select.item(m, value=m)),
            ),
            value=rx.cond(WorklistState.modality == "", "all", WorklistState.modality),
            on_change=WorklistState.set_modality,
        ),
        rx.spacer(),
        rx.text(tr("refreshed_at"), " ", WorklistState.loaded_at, size="1", color_scheme="gray"),
        align="center",
        width="100%",
        spacing="3",
    )


def worklist_page() -> rx.Component:
    table = rx.table.root(
        rx.table.header(
            rx.table.row(
                _sort_header("priority", "priority"),
                rx.table.column_header_cell(tr("patient")),
                rx.table.column_header_cell(tr("exam")),
                _sort_header("clinic", "clinic"),
                _sort_header("arrived", "arrival"),
                rx.table.column_header_cell(tr("status")),
                _sort_header("due", "due"),
                rx.table.column_header_cell(tr("reader")),
            )
        ),
        rx.table.body(rx.foreach(WorklistState.rows, _row)),
        variant="surface",
        size="1",
        width="100%",
        data_testid="worklist",
    )
    body = when_allowed(
        WorklistState.allowed,
        rx.vstack(
            rx.heading(tr("worklist_title"), size="6", as_="h1"),
            rx.tabs.root(
                rx.tabs.list(*[_view_tab(view) for view in VIEWS]),
                value=WorklistState.view,
                on_change=WorklistState.set_view,
            ),
            _filters(),
            rx.cond(
                WorklistState.message != "",
                rx.callout(
                    WorklistState.message,
                    color_scheme="amber",
                    width="100%",
                    data_testid="worklist-message",
                ),
            ),
            rx.cond(
                WorklistState.total > 0,
                table,
                rx.text(tr("worklist_empty"), color_scheme="gray", data_testid="worklist-empty"),
            ),
            pager(
                WorklistState.page,
                WorklistState.pages,
                WorklistState.total,
                WorklistState.previous_page,
                WorklistState.next_page,
            ),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
