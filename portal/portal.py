"""The Reflex app: builds `rx.App` and registers every page under its route."""

from __future__ import annotations

import reflex as rx

from portal import i18n, routes
from portal.pages.home import HomeState, home_page
from portal.pages.login import LoginState, login_page

_PRODUCT = i18n.text("product", i18n.DEFAULT_LANGUAGE)
# A small inline icon: without one the browser asks for /favicon.ico and gets a 404.
_ICON = (
    "data:image/svg+xml,"
    "%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E"
    "%3Crect width='32' height='32' rx='6' fill='%230d9488'/%3E"
    "%3Cpath d='M9 10h14M9 16h14M9 22h14' stroke='white' stroke-width='3'/%3E%3C/svg%3E"
)

app = rx.App(
    html_lang=i18n.DEFAULT_LANGUAGE,
    head_components=[rx.el.link(rel="icon", href=_ICON)],
)
app.add_page(
    login_page,
    route=routes.LOGIN,
    title=f"{i18n.text('login_title', i18n.DEFAULT_LANGUAGE)} · {_PRODUCT}",
    on_load=LoginState.on_load,
)
app.add_page(
    home_page,
    route=routes.HOME,
    title=_PRODUCT,
    on_load=HomeState.load,
)
