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


def top_bar(*, with_user: bool) -> rx.Component:
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
            max_width=CONTENT_WIDTH,
            margin_x="auto",
            padding_x="24px",
            height="56px",
        ),
        border_bottom=f"1px solid {rx.color('gray', 5)}",
        background_color=rx.color("gray", 1),
    )


def page_shell(*children: rx.Component, with_user: bool) -> rx.Component:
    """A whole page: the top bar over a centred column, marked with the session's language."""
    return rx.box(
        top_bar(with_user=with_user),
        rx.el.main(
            *children,
            max_width=CONTENT_WIDTH,
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
