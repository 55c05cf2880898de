"""/: the signed-in user's facility, today's counts in it, and what this portal offers them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import reflex as rx
from reflex.event import EventSpec

from integration.overview import FacilityOverview
from integration.services import portal_services
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import page_shell, tr

logger = logging.getLogger(__name__)

COUNT_KEYS: tuple[str, ...] = (
    "orders_today",
    "awaiting_preliminary",
    "awaiting_audit",
    "finals_today",
)


def load_overview(facility_id: int) -> FacilityOverview:
    """Today's figures for the facility. Blocking: call it off the event loop."""
    return portal_services().overview(facility_id=facility_id)


class HomeState(SessionState):
    """Plain copies of the facility overview; loaded in `load`, never in a computed var."""

    loaded: bool = False
    unavailable: bool = False
    facility_code: str = ""
    reading_centre_name: str = ""
    orders_today: int = 0
    awaiting_preliminary: int = 0
    awaiting_audit: int = 0
    finals_today: int = 0

    @rx.var
    def counts(self) -> dict[str, int]:
        return {
            "orders_today": self.orders_today,
            "awaiting_preliminary": self.awaiting_preliminary,
            "awaiting_audit": self.awaiting_audit,
            "finals_today": self.finals_today,
        }

    @rx.var
    def status_line(self) -> str:
        if not self.loaded or self.unavailable:
            return ""
        return i18n.role_status_line(self.role, self.counts, self.lang)

    @rx.var
    def outlook_line(self) -> str:
        return i18n.role_outlook_line(self.role, self.lang) if self.role else ""

    @rx.var
    def reading_centre_label(self) -> str:
        return self.reading_centre_name or i18n.text("no_reading_centre", self.lang)

    def _forget_overview(self) -> None:
        self.loaded = False
        self.unavailable = False
        self.facility_code = ""
        self.reading_centre_name = ""
        self.orders_today = 0
        self.awaiting_preliminary = 0
        self.awaiting_audit = 0
        self.finals_today = 0

    def _apply(self, overview: FacilityOverview) -> None:
        self.facility_name = overview.facility_name
        self.facility_name_en = overview.facility_name_en
        self.facility_code = overview.facility_code
        self.reading_centre_name = overview.reading_centre_name
        self.orders_today = overview.orders_today
        self.awaiting_preliminary = overview.awaiting_preliminary
        self.awaiting_audit = overview.awaiting_audit
        self.finals_today = overview.finals_today
        self.loaded = True

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        """on_load: send a visitor who is not signed in to /login, else read today's figures."""
        self._forget_overview()
        if self.user_id <= 0:
            yield rx.redirect(routes.LOGIN, replace=True)
            return
        yield None  # show the empty frame while the figures load
        try:
            overview = await asyncio.to_thread(load_overview, self.facility_id)
        except Exception:  # the database being away must not take the page down
            logger.exception("facility overview for %s could not be read", self.facility_id)
            self.unavailable = True
            self.loaded = True
            return
        self._apply(overview)


def _count_tile(key: str) -> rx.Component:
    value: rx.vars.NumberVar[int] = getattr(HomeState, key)
    return rx.card(
        rx.vstack(
            rx.text(tr(key), size="2", color_scheme="gray"),
            rx.text(
                rx.cond(HomeState.loaded & ~HomeState.unavailable, value.to_string(), "—"),
                size="8",
                weight="bold",
                data_testid=f"count-{key}",
            ),
            spacing="1",
        ),
        size="2",
    )


def _facility_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(
                    SessionState.facility_label, size="5", as_="h1", data_testid="facility-name"
                ),
                rx.cond(
                    HomeState.facility_code != "",
                    rx.badge(HomeState.facility_code, variant="outline", color_scheme="gray"),
                ),
                align="center",
                spacing="3",
            ),
            rx.hstack(
                rx.text(tr("reading_centre"), size="2", color_scheme="gray"),
                rx.text(
                    rx.cond(HomeState.loaded, HomeState.reading_centre_label, "…"),
                    size="2",
                    data_testid="reading-centre",
                ),
                spacing="2",
            ),
            rx.separator(size="4"),
            rx.text(tr("today"), size="3", weight="bold"),
            rx.cond(
                HomeState.unavailable,
                rx.callout(tr("overview_unavailable"), color_scheme="amber", width="100%"),
            ),
            rx.grid(
                *[_count_tile(key) for key in COUNT_KEYS],
                columns="4",
                spacing="4",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        size="3",
        width="100%",
    )


def _work_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(tr("your_work"), size="3", weight="bold"),
            rx.cond(
                HomeState.status_line != "",
                rx.text(HomeState.status_line, size="3", data_testid="status-line"),
            ),
            rx.text(
                HomeState.outlook_line, size="2", color_scheme="gray", data_testid="outlook-line"
            ),
            spacing="2",
            width="100%",
        ),
        size="3",
        width="100%",
    )


def home_page() -> rx.Component:
    body = rx.cond(
        SessionState.signed_in,
        rx.vstack(_facility_card(), _work_card(), spacing="4", width="100%"),
        rx.center(rx.text(tr("loading"), color_scheme="gray"), padding_top="20vh"),
    )
    return page_shell(body, with_user=True)
