"""The frame every page shares: the top bar, the language switch, the page body."""

from __future__ import annotations

import reflex as rx

from portal import i18n
from portal.auth import SessionState

# CJK first so Chinese never falls back to a font without the glyphs.
FONT_STACK = (
    '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", '
    '"WenQuanYi Micro Hei", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
)
LATIN_FIRST = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif'
CONTENT_WIDTH = "1120px"


def tr(key: str) -> rx.Var[str]:
    """A UI string in the session's language; the key must exist in both tables."""
    if key not in i18n.STRINGS[i18n.DEFAULT_LANGUAGE]:
        raise KeyError(f"no UI string {key!r}")
    return SessionState.tr[key].to(str)


def tr_key(key: rx.Var[str]) -> rx.Var[str]:
    """A UI string whose key is itself a var (a row's status, say); unknown keys show empty."""
    return SessionState.tr[key].to(str)


def language_switch() -> rx.Component:
    """中文 / English, each written in its own language; the active one is solid."""
    buttons = [
        rx.button(
            i18n.LANGUAGE_NAMES[code],
            type="button",
            size="1",
            variant=rx.cond(SessionState.lang == code, "solid", "soft"),
            on_click=SessionState.set_language(code),
            custom_attrs={
                "aria-pressed": rx.cond(SessionState.lang == code, "true", "false"),
                "lang": code,
                "data-testid": f"lang-{code}",
            },
        )
        for code in i18n.LANGUAGES
    ]
    return rx.hstack(
        *buttons,
        spacing="1",
        role="group",
        aria_label=tr("language"),
        data_testid="language-switch",
    )


def brand() -> rx.Component:
    return rx.hstack(
        rx.heading(tr("product"), size="5", weight="bold", as_="div"),
        rx.text(tr("tagline"), size="2", color_scheme="gray"),
        align="baseline",
        spacing="3",
    )


def _user_block() -> rx.Component:
    return rx.hstack(
        rx.text(SessionState.display_name, weight="bold", size="2", data_testid="user-name"),
        rx.badge(SessionState.role_label, variant="soft", size="2", data_testid="user-role"),
        rx.text(
            SessionState.facility_label, size="2", color_scheme="gray", data_testid="user-facility"
        ),
        align="center",
        spacing="3",
    )


def top_bar(*, with_user: bool, width: str = CONTENT_WIDTH) -> rx.Component:
    """The bar across the top: the product; for a signed-in user, who and where, and sign-out."""
    right: list[rx.Component] = []
    if with_user:
        right.append(rx.cond(SessionState.signed_in, _user_block()))
    right.append(language_switch())
    if with_user:
        right.append(
            rx.cond(
                SessionState.signed_in,
                rx.button(
                    tr("sign_out"),
                    type="button",
                    size="1",
                    variant="outline",
                    color_scheme="gray",
                    on_click=SessionState.logout,
                    data_testid="sign-out",
                ),
            )
        )
    return rx.el.header(
        rx.hstack(
            brand(),
            rx.spacer(),
            rx.hstack(*right, align="center", spacing="4"),
            align="center",
            max_width=width,
            margin_x="auto",
            padding_x="24px",
            height="56px",
        ),
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        background_color=rx.color("gray", 1),
    )


def _nav_link(item: rx.Var[dict[str, str]]) -> rx.Component:
    current = rx.State.router.page.path == item["route"]
    return rx.link(
        item["label"],
        href=item["route"],
        size="2",
        weight=rx.cond(current, "bold", "regular"),
        underline=rx.cond(current, "always", "hover"),
        color_scheme=rx.cond(current, "teal", "gray"),
        high_contrast=True,
        custom_attrs={"aria-current": rx.cond(current, "page", "false")},
    )


def nav_bar(width: str = CONTENT_WIDTH) -> rx.Component:
    """The signed-in user's menu, one link per page their role may open."""
    return rx.cond(
        SessionState.signed_in,
        rx.el.nav(
            rx.hstack(
                rx.foreach(SessionState.nav, _nav_link),
                spacing="5",
                align="center",
                max_width=width,
                margin_x="auto",
                padding_x="24px",
                height="40px",
            ),
            aria_label=tr("nav_label"),
            data_testid="nav",
            border_bottom=f"1px solid {rx.color('gray', 4)}",
            background_color=rx.color("gray", 1),
        ),
    )


def page_shell(
    *children: rx.Component, with_user: bool, width: str = CONTENT_WIDTH
) -> rx.Component:
    """A whole page: the top bar and menu over a centred column, in the session's language."""
    return rx.box(
        top_bar(with_user=with_user, width=width),
        nav_bar(width) if with_user else rx.fragment(),
        rx.el.main(
            *children,
            max_width=width,
            margin_x="auto",
            padding="24px",
        ),
        min_height="100vh",
        background_color=rx.color("gray", 2),
        font_family=FONT_STACK,
        style={"--heading-font-family": FONT_STACK},
        custom_attrs={"lang": SessionState.lang},
    )


def field_error(message: rx.Var[str], test_id: str) -> rx.Component:
    """A message under a form field, announced to screen readers when it appears."""
    return rx.cond(
        message != "",
        rx.text(message, size="2", color_scheme="red", role="alert", data_testid=test_id),
    )


def when_allowed(allowed: rx.Var[bool], *children: rx.Component) -> rx.Component:
    """The page body once the guard has let the user in; a quiet line until then."""
    return rx.cond(
        allowed,
        rx.fragment(*children),
        rx.center(rx.text(tr("loading"), color_scheme="gray"), padding_top="20vh"),
    )


def clock_badge(clock: rx.Var[str], label: rx.Var[str], test_id: str = "") -> rx.Component:
    """A deadline as a coloured badge: green in time, amber within 10 min, red when past."""
    return rx.badge(
        label,
        color_scheme=rx.match(
            clock,
            ("running", "green"),
            ("near", "amber"),
            ("overdue", "red"),
            ("stopped", "blue"),
            "gray",
        ),
        variant=rx.cond(clock == "overdue", "solid", "soft"),
        custom_attrs={"data-clock": clock, "data-testid": test_id}
        if test_id
        else {"data-clock": clock},
    )


def pager(
    page: rx.Var[int],
    pages: rx.Var[int],
    total: rx.Var[int],
    on_prev: rx.EventHandler,
    on_next: rx.EventHandler,
) -> rx.Component:
    """Previous / page N of M / next, under a table that pages on the server."""
    return rx.hstack(
        rx.text(tr("total_rows"), " ", total.to_string(), size="2", color_scheme="gray"),
        rx.spacer(),
        rx.button(
            tr("previous"),
            size="1",
            variant="soft",
            disabled=page <= 1,
            on_click=on_prev,
            data_testid="page-prev",
        ),
        rx.text(page.to_string(), " / ", pages.to_string(), size="2", data_testid="page-of"),
        rx.button(
            tr("next"),
            size="1",
            variant="soft",
            disabled=page >= pages,
            on_click=on_next,
            data_testid="page-next",
        ),
        align="center",
        width="100%",
        spacing="3",
    )
