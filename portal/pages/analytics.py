"""/analytics/<topic>: the bureau's figures — the leader's dashboard and one page per topic.

Every page has the same frame: a period and filters (reading centre, clinic,
modality), then one panel per table with its chart, the table behind it and
its CSV / Excel export. The overview is the leader's dashboard (key figures
with month-on-month change); the settlement page adds the signable statement
PDF and the monthly bulletin. The data comes from `integration.analytics`
through `PortalServices`; nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import plotly.graph_objects as go
import polars as pl
import reflex as rx
from reflex.event import EventSpec

from integration.analytics_portal import AnalyticsQuery, Topic
from integration.permissions import Action
from integration.services import portal_services
from models.errors import HurenError
from portal import i18n
from portal.analytics_view import panel
from portal.auth import SessionState
from portal.i18n_analytics import KEY_FIGURES
from portal.layout import field_error, page_shell, tr, tr_key, when_allowed

logger = logging.getLogger(__name__)
TOPICS: tuple[str, ...] = tuple(topic.value for topic in Topic)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_HALF_YEAR = re.compile(r"^\d{4}H[12]$")


def month_before(today: date) -> str:
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def months_back(month: str, count: int) -> str:
    year, number = int(month[:4]), int(month[5:]) - (count - 1)
    while number < 1:
        year, number = year - 1, number + 12
    return f"{year:04d}-{number:02d}"


def month_range(first: str, last: str) -> tuple[date, date]:
    """Whole months: the first day of ``first`` to the last day of ``last``."""
    start = date(int(first[:4]), int(first[5:]), 1)
    year, month = int(last[:4]), int(last[5:])
    return start, date(year, month, calendar.monthrange(year, month)[1])


def change_text(unit: str, change: float | None, language: str) -> str:
    """Month-on-month change: points for rates, relative for amounts."""
    if change is None:
        return ""
    if unit == "rate":
        points = change * 100
        return f"{points:+.1f} {'个百分点' if language == i18n.ZH else 'pts'}"
    return f"{change * 100:+.1f}%"


def key_figure_cards(table: pl.DataFrame, language: str) -> list[dict[str, str]]:
    from portal.analytics_view import cell

    strings = i18n.strings(language)
    cards = []
    for row in table.iter_rows(named=True):
        key, unit = str(row["key"]), str(row["unit"])
        change = row["change"]
        counts = (
            f"{row['numerator']:,}/{row['denominator']:,}"
            if row.get("numerator") is not None and row.get("denominator")
            else ""
        )
        cards.append(
            {
                "key": key,
                "label": strings.get(f"kf_{key}", str(row["label"])),
                "value": cell("value", row["value"], unit=unit)
                if row["value"] is not None
                else strings["no_data"],
                "previous": cell("previous", row["previous"], unit=unit)
                if row["previous"] is not None
                else "—",
                "counts": counts,
                "change": change_text(unit, change, language),
                "direction": ""
                if change is None or abs(change) < 5e-4
                else ("up" if change > 0 else "down"),
            }
        )
    order = {key: number for number, key in enumerate(KEY_FIGURES)}
    return sorted(cards, key=lambda card: order.get(card["key"], len(order)))


class AnalyticsState(SessionState):
    allowed: bool = False
    topic: str = Topic.overview.value
    month: str = ""  # the overview's month
    from_month: str = ""
    to_month: str = ""
    centre_id: str = ""
    clinic_id: str = ""
    modality: str = ""
    centres: list[dict[str, str]] = []
    clinics: list[dict[str, str]] = []
    modalities: list[str] = []
    panels: list[dict[str, Any]] = []
    cards: list[dict[str, str]] = []
    half_year: str = ""
    hospital: str = ""
    loaded: bool = False
    error_key: str = ""
    notice_key: str = ""
    notice_detail: str = ""
    elapsed_ms: int = 0

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    @rx.var
    def error(self) -> str:
        return i18n.text(self.error_key, self.lang) if self.error_key else ""

    def _query(self) -> AnalyticsQuery:
        if self.topic == Topic.overview.value:
            first, last = month_range(self.month, self.month)
        else:
            first, last = month_range(self.from_month, self.to_month)
        return AnalyticsQuery(
            topic=Topic(self.topic),
            first=first,
            last=last,
            reading_centre_id=int(self.centre_id) if self.centre_id.isdigit() else None,
            clinic_id=int(self.clinic_id) if self.clinic_id.isdigit() else None,
            modality=self.modality,
        )

    def _labels(self) -> dict[str, str]:
        strings = i18n.strings(self.lang)
        return {
            key.removeprefix("col_"): text
            for key, text in strings.items()
            if key.startswith("col_")
        }

    async def _fetch(self) -> None:
        services, user_id, query = portal_services(), self.user_id, self._query()
        started = time.perf_counter()
        try:
            tables = await asyncio.to_thread(services.analytics_tables, user_id, query)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            self.panels, self.cards = [], []
            return
        except Exception:  # the snapshot could not be built: say so, keep the page
            logger.exception("analytics for %s could not be read", query)
            self.notice_key, self.notice_detail = "analytics_unavailable", ""
            self.panels, self.cards = [], []
            return
        self.elapsed_ms = int((time.perf_counter() - started) * 1000)
        strings = i18n.strings(self.lang)
        labels = self._labels()
        topic = Topic(self.topic)
        self.cards = (
            key_figure_cards(tables["key_figures"], self.lang) if "key_figures" in tables else []
        )
        self.panels = [
            panel(
                topic,
                name,
                _readable(table, strings),
                labels,
                title=strings.get(f"tbl_{topic.value}_{name}", name),
            )
            for name, table in tables.items()
            if name != "key_figures"
        ]
        self.loaded = True

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed, self.loaded = False, False
        self.panels, self.cards = [], []  # never show the previous topic's tables under this one
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        raw = str(self.router.page.params.get("topic", Topic.overview.value))
        self.topic = raw if raw in TOPICS else Topic.overview.value
        self.allowed = True
        self.notice_key = self.error_key = ""
        today = datetime.now(UTC).astimezone(i18n.zone(portal_services().settings.timezone))
        if not self.month:
            self.month = month_before(today.date())
        if not self.to_month:
            self.to_month = self.month
            self.from_month = months_back(self.month, 12)
        if not self.half_year:
            self.half_year = f"{today.year}H1" if today.month > 6 else f"{today.year - 1}H2"
        services, user_id = portal_services(), self.user_id
        try:
            choices = await asyncio.to_thread(services.analytics_choices, user_id)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.centres = [
            {"id": str(i), "code": code, "name": name, "name_en": name_en or name}
            for i, code, name, name_en in choices.reading_centres
        ]
        self.clinics = [
            {"id": str(i), "name": name, "name_en": name_en or name}
            for i, _code, name, name_en in choices.clinics
        ]
        self.modalities = list(choices.modalities)
        yield None
        await self._fetch()

    @rx.event
    async def apply(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        self.error_key = ""
        if self.topic == Topic.overview.value:
            month = str(form.get("month", self.month))
            if not _MONTH.match(month):
                self.error_key = "err_period"
                return
            self.month = month
        else:
            first = str(form.get("from_month", self.from_month))
            last = str(form.get("to_month", self.to_month))
            if not (_MONTH.match(first) and _MONTH.match(last)) or first > last:
                self.error_key = "err_period"
                return
            self.from_month, self.to_month = first, last
        yield None
        await self._fetch()

    @rx.event
    async def set_centre(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.centre_id = "" if value == "all" else value
        async for step in self._refetch():
            yield step

    @rx.event
    async def set_clinic(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.clinic_id = "" if value == "all" else value
        async for step in self._refetch():
            yield step

    @rx.event
    async def set_modality(self, value: str) -> AsyncIterator[EventSpec | None]:
        self.modality = "" if value == "all" else value
        async for step in self._refetch():
            yield step

    async def _refetch(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        yield None
        await self._fetch()

    @rx.event
    async def export(self, table: str, fmt: str) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        services, user_id, query = portal_services(), self.user_id, self._query()
        headers = self._labels()
        try:
            name, body = await asyncio.to_thread(
                lambda: services.analytics_export(
                    user_id, query, table=table, fmt=fmt, headers=headers
                )
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        mime = (
            "text/csv"
            if fmt == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        yield rx.download(data=body, filename=name, mime_type=mime)

    @rx.event
    async def statement(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        half_year = str(form.get("half_year", "")).strip().upper()
        hospital = str(form.get("hospital", "all"))
        if not _HALF_YEAR.match(half_year):
            self.error_key = "err_half_year"
            return
        self.error_key, self.half_year, self.hospital = "", half_year, hospital
        services, user_id = portal_services(), self.user_id
        code = None if hospital in ("", "all") else hospital
        try:
            name, body = await asyncio.to_thread(
                services.settlement_statement, user_id, half_year, code
            )
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        yield rx.download(data=body, filename=name, mime_type="application/pdf")

    @rx.event
    async def bulletin(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.view_analytics)
        if refusal is not None:
            yield refusal
            return
        services, user_id = portal_services(), self.user_id
        month = self.month if self.topic == Topic.overview.value else self.to_month
        try:
            name, body = await asyncio.to_thread(services.monthly_bulletin, user_id, month)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        yield rx.download(data=body, filename=name, mime_type="application/pdf")


def _readable(table: pl.DataFrame, strings: dict[str, str] | Any) -> pl.DataFrame:
    """Codes a person should not have to decode: step names, refusal reasons."""
    if "step" in table.columns:
        table = table.with_columns(
            pl.col("step").replace_strict(
                {k.removeprefix("step_"): v for k, v in strings.items() if k.startswith("step_")},
                default=pl.col("step"),
            )
        )
    if "refusal_reason" in table.columns:
        table = table.with_columns(
            pl.col("refusal_reason").replace_strict(
                {
                    k.removeprefix("refuse_"): v
                    for k, v in strings.items()
                    if k.startswith("refuse_")
                },
                default=pl.col("refusal_reason"),
            )
        )
    return table


# ------------------------------------------------------------------------------ components


def _card(card: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(card["label"], size="1", color_scheme="gray"),
            rx.text(card["value"], size="6", weight="bold", data_testid="kf-value"),
            rx.hstack(
                rx.cond(
                    card["change"] != "",
                    rx.badge(
                        card["change"],
                        color_scheme=rx.match(
                            card["direction"], ("up", "teal"), ("down", "orange"), "gray"
                        ),
                        variant="soft",
                    ),
                ),
                rx.text(tr("col_previous"), " ", card["previous"], size="1", color_scheme="gray"),
                spacing="2",
                align="center",
            ),
            rx.cond(card["counts"] != "", rx.text(card["counts"], size="1", color_scheme="gray")),
            spacing="1",
        ),
        data_testid="key-figure",
        custom_attrs={"data-key": card["key"]},
    )


def _panel(item: rx.Var[dict[str, Any]]) -> rx.Component:
    headers = item["headers"].to(list[str])
    rows = item["rows"].to(list[list[str]])
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(item["title"], weight="bold"),
                rx.spacer(),
                rx.button(
                    tr("export_csv"),
                    size="1",
                    variant="soft",
                    on_click=AnalyticsState.export(item["key"].to(str), "csv"),
                    data_testid="export-csv",
                ),
                rx.button(
                    tr("export_xlsx"),
                    size="1",
                    variant="soft",
                    on_click=AnalyticsState.export(item["key"].to(str), "xlsx"),
                    data_testid="export-xlsx",
                ),
                width="100%",
                align="center",
            ),
            rx.cond(
                item["has_chart"].to(bool),
                rx.plotly(
                    data=item["figure"].to(go.Figure),
                    width="100%",
                    height="300px",
                    data_testid="chart",
                ),
            ),
            rx.cond(
                item["total"].to(int) > 0,
                rx.box(
                    rx.table.root(
                        rx.table.header(
                            rx.table.row(
                                rx.foreach(headers, lambda h: rx.table.column_header_cell(h))
                            )
                        ),
                        rx.table.body(
                            rx.foreach(
                                rows,
                                lambda row: rx.table.row(
                                    rx.foreach(row, lambda value: rx.table.cell(value))
                                ),
                            )
                        ),
                        size="1",
                        variant="ghost",
                        width="100%",
                    ),
                    max_height="320px",
                    overflow_y="auto",
                    width="100%",
                ),
                rx.text(tr("no_data"), color_scheme="gray", size="2"),
            ),
            rx.cond(
                item["clipped"].to(bool), rx.text(tr("rows_clipped"), size="1", color_scheme="gray")
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        data_testid="panel",
        custom_attrs={"data-table": item["key"].to(str)},
    )


def _topic_tabs() -> rx.Component:
    return rx.hstack(
        *[
            rx.link(
                tr(f"topic_{topic}"),
                href=f"/analytics/{topic}",
                weight=rx.cond(AnalyticsState.topic == topic, "bold", "regular"),
                underline=rx.cond(AnalyticsState.topic == topic, "always", "hover"),
                color_scheme=rx.cond(AnalyticsState.topic == topic, "teal", "gray"),
                high_contrast=True,
                data_testid=f"topic-{topic}",
            )
            for topic in TOPICS
        ],
        spacing="5",
        wrap="wrap",
    )


def _select(
    placeholder_key: str,
    value: rx.Var[str],
    items: rx.Var[list[dict[str, str]]],
    on_change: Any,
    test_id: str,
) -> rx.Component:
    english = AnalyticsState.lang == i18n.EN
    return rx.select.root(
        rx.select.trigger(placeholder=tr(placeholder_key), data_testid=test_id),
        rx.select.content(
            rx.select.item(tr(placeholder_key), value="all"),
            rx.foreach(
                items,
                lambda c: rx.select.item(rx.cond(english, c["name_en"], c["name"]), value=c["id"]),
            ),
        ),
        value=rx.cond(value == "", "all", value),
        on_change=on_change,
    )


def _filters() -> rx.Component:
    period = rx.cond(
        AnalyticsState.topic == Topic.overview.value,
        rx.hstack(
            rx.text(tr("month_label"), size="2"),
            rx.input(
                name="month",
                type="month",
                default_value=AnalyticsState.month,
                key=AnalyticsState.month,
                data_testid="input-month",
            ),
            spacing="2",
            align="center",
        ),
        rx.hstack(
            rx.text(tr("period_from"), size="2"),
            rx.input(
                name="from_month",
                type="month",
                default_value=AnalyticsState.from_month,
                key=AnalyticsState.from_month,
                data_testid="input-from",
            ),
            rx.text(tr("period_to"), size="2"),
            rx.input(
                name="to_month",
                type="month",
                default_value=AnalyticsState.to_month,
                key=AnalyticsState.to_month,
                data_testid="input-to",
            ),
            spacing="2",
            align="center",
        ),
    )
    return rx.vstack(
        rx.hstack(
            rx.form(
                rx.hstack(
                    period,
                    rx.button(tr("apply"), type="submit", size="2", data_testid="apply"),
                    spacing="2",
                    align="center",
                ),
                on_submit=AnalyticsState.apply,
                reset_on_submit=False,
            ),
            _select(
                "all_centres",
                AnalyticsState.centre_id,
                AnalyticsState.centres,
                AnalyticsState.set_centre,
                "filter-centre",
            ),
            _select(
                "all_clinics",
                AnalyticsState.clinic_id,
                AnalyticsState.clinics,
                AnalyticsState.set_clinic,
                "filter-clinic",
            ),
            rx.select.root(
                rx.select.trigger(placeholder=tr("all_modalities"), data_testid="filter-modality"),
                rx.select.content(
                    rx.select.item(tr("all_modalities"), value="all"),
                    rx.foreach(AnalyticsState.modalities, lambda m: rx.select.item(m, value=m)),
                ),
                value=rx.cond(AnalyticsState.modality == "", "all", AnalyticsState.modality),
                on_change=AnalyticsState.set_modality,
            ),
            spacing="3",
            align="center",
            wrap="wrap",
        ),
        field_error(AnalyticsState.error, "period-error"),
        spacing="1",
        width="100%",
    )


def _downloads() -> rx.Component:
    return rx.cond(
        AnalyticsState.topic == Topic.settlement.value,
        rx.card(
            rx.hstack(
                rx.form(
                    rx.hstack(
                        rx.text(tr("half_year"), size="2"),
                        rx.input(
                            name="half_year",
                            default_value=AnalyticsState.half_year,
                            key=AnalyticsState.half_year,
                            width="96px",
                            data_testid="input-half-year",
                        ),
                        rx.el.select(
                            rx.el.option(tr("all_hospitals"), value="all"),
                            rx.foreach(
                                AnalyticsState.centres,
                                lambda c: rx.el.option(c["name"], value=c["code"]),
                            ),
                            name="hospital",
                            data_testid="input-hospital",
                        ),
                        rx.button(
                            tr("statement_pdf"),
                            type="submit",
                            size="2",
                            data_testid="statement-pdf",
                        ),
                        spacing="2",
                        align="center",
                    ),
                    on_submit=AnalyticsState.statement,
                    reset_on_submit=False,
                ),
                rx.spacer(),
                rx.button(
                    tr("bulletin_pdf"),
                    size="2",
                    variant="soft",
                    on_click=AnalyticsState.bulletin,
                    data_testid="bulletin-pdf",
                ),
                width="100%",
                align="center",
            ),
            width="100%",
        ),
        rx.cond(
            AnalyticsState.topic == Topic.overview.value,
            rx.hstack(
                rx.spacer(),
                rx.button(
                    tr("bulletin_pdf"),
                    size="2",
                    variant="soft",
                    on_click=AnalyticsState.bulletin,
                    data_testid="bulletin-pdf",
                ),
                width="100%",
            ),
        ),
    )


def analytics_page() -> rx.Component:
    body = when_allowed(
        AnalyticsState.allowed,
        rx.vstack(
            rx.hstack(
                rx.heading(
                    tr("analytics_title"),
                    " · ",
                    tr_key(("topic_" + AnalyticsState.topic).to(str)),
                    size="6",
                    as_="h1",
                ),
                rx.spacer(),
                rx.cond(
                    AnalyticsState.loaded,
                    rx.text(
                        tr("computed_in"),
                        " ",
                        AnalyticsState.elapsed_ms.to_string(),
                        " ms",
                        size="1",
                        color_scheme="gray",
                        data_testid="elapsed",
                    ),
                ),
                width="100%",
                align="center",
            ),
            _topic_tabs(),
            _filters(),
            _downloads(),
            rx.cond(
                AnalyticsState.notice != "",
                rx.callout(
                    AnalyticsState.notice, color_scheme="amber", width="100%", data_testid="notice"
                ),
            ),
            rx.cond(
                AnalyticsState.cards.length() > 0,
                rx.grid(
                    rx.foreach(AnalyticsState.cards, _card), columns="5", spacing="3", width="100%"
                ),
            ),
            rx.cond(
                AnalyticsState.loaded,
                rx.grid(
                    rx.foreach(AnalyticsState.panels, _panel),
                    columns="2",
                    spacing="3",
                    width="100%",
                ),
                rx.text(tr("loading"), color_scheme="gray"),
            ),
            spacing="4",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
