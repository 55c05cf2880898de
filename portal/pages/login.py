"""/login: username and password, Chinese by default, English on the switch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.accounts import LoginFailed, SignedInUser
from integration.services import portal_services
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import LATIN_FIRST, field_error, page_shell, tr

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginOutcome:
    """What one attempt ends in: a user, or the messages to show."""

    user: SignedInUser | None
    errors: tuple[i18n.MessageRef, ...] = ()


def attempt_login(username: str, password: str, *, source_address: str = "") -> LoginOutcome:
    """Check the form, then ask the hub. Blocking: call it off the event loop."""
    missing = i18n.login_field_errors(username, password)
    if missing:
        return LoginOutcome(None, tuple(missing))
    services = portal_services()
    try:
        user = services.sign_in(
            username=username.strip(), password=password, source_address=source_address
        )
    except LoginFailed as failure:
        return LoginOutcome(None, (i18n.login_refusal(failure, services.settings.zone),))
    return LoginOutcome(user)


def _form_value(form_data: Mapping[str, Any], name: str) -> str:
    value = form_data.get(name, "")
    return value if isinstance(value, str) else ""


class LoginState(SessionState):
    """The form's messages, kept as i18n keys so the language switch re-words them."""

    username_error_key: str = ""
    password_error_key: str = ""
    form_error_key: str = ""
    form_error_time: str = ""
    form_error_zone: str = ""
    busy: bool = False

    @rx.var
    def username_error(self) -> str:
        return i18n.text(self.username_error_key, self.lang) if self.username_error_key else ""

    @rx.var
    def password_error(self) -> str:
        return i18n.text(self.password_error_key, self.lang) if self.password_error_key else ""

    @rx.var
    def form_error(self) -> str:
        if not self.form_error_key:
            return ""
        ref = i18n.MessageRef(
            "form", self.form_error_key, time=self.form_error_time, zone=self.form_error_zone
        )
        return i18n.render(ref, self.lang)

    def _clear_errors(self) -> None:
        self.username_error_key = ""
        self.password_error_key = ""
        self.form_error_key = ""
        self.form_error_time = ""
        self.form_error_zone = ""

    def _show(self, errors: tuple[i18n.MessageRef, ...]) -> None:
        for ref in errors:
            if ref.field == "username":
                self.username_error_key = ref.key
            elif ref.field == "password":
                self.password_error_key = ref.key
            else:
                self.form_error_key = ref.key
                self.form_error_time = ref.time
                self.form_error_zone = ref.zone

    @rx.event
    def on_load(self) -> EventSpec | None:
        """A signed-in user has nothing to do here: go home."""
        self._clear_errors()
        self.busy = False
        if self.user_id > 0:
            return rx.redirect(routes.HOME, replace=True)
        return None

    @rx.event
    async def submit(self, form_data: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        """Sign in with the form's username and password, or show why not."""
        if self.user_id > 0:  # a second click queued behind a successful one
            yield rx.redirect(routes.HOME, replace=True)
            return
        if self.busy:
            return
        self._clear_errors()
        self.busy = True
        yield None
        username = _form_value(form_data, "username")
        password = _form_value(form_data, "password")
        try:
            # argon2 and the database take a moment: keep the event loop free.
            outcome = await asyncio.to_thread(
                attempt_login,
                username,
                password,
                source_address=self.router.session.client_ip,
            )
        except Exception:  # bad settings, database down: say so, log the cause
            logger.exception("sign-in could not be completed")
            outcome = LoginOutcome(None, (i18n.MessageRef("form", "err_unavailable"),))
        self.busy = False
        if outcome.user is None:
            self._show(outcome.errors)
            return
        self._remember(outcome.user)
        yield rx.redirect(routes.HOME, replace=True)


def _field(
    label_key: str, name: str, input_type: str, error: rx.Var[str], autocomplete: str
) -> rx.Component:
    return rx.vstack(
        rx.el.label(tr(label_key), html_for=name, font_weight="500", font_size="14px"),
        rx.input(
            id=name,
            name=name,
            type=input_type,
            auto_complete=autocomplete,
            size="3",
            width="100%",
            # Latin first: CJK fonts draw the password dots full-width.
            font_family=LATIN_FIRST if input_type == "password" else None,
            custom_attrs={"aria-invalid": rx.cond(error != "", "true", "false")},
        ),
        field_error(error, f"{name}-error"),
        spacing="1",
        width="100%",
    )


def login_page() -> rx.Component:
    form = rx.form(
        rx.vstack(
            _field("username", "username", "text", LoginState.username_error, "username"),
            _field(
                "password", "password", "password", LoginState.password_error, "current-password"
            ),
            rx.button(
                rx.cond(LoginState.busy, tr("signing_in"), tr("sign_in")),
                type="submit",
                size="3",
                width="100%",
                # Disabled until Reflex has hydrated: a click before that would make
                # the browser submit the form itself, password in the URL.
                disabled=LoginState.busy | ~rx.State.is_hydrated,
                data_testid="sign-in",
            ),
            field_error(LoginState.form_error, "form-error"),
            spacing="4",
            width="100%",
        ),
        on_submit=LoginState.submit,
        reset_on_submit=False,
        width="100%",
    )
    card = rx.card(
        rx.vstack(
            rx.heading(tr("login_title"), size="6", as_="h1"),
            rx.text(tr("login_intro"), size="2", color_scheme="gray"),
            rx.cond(
                LoginState.expired_notice,
                rx.callout(tr("expired_notice"), color_scheme="amber", data_testid="expired"),
            ),
            form,
            spacing="4",
            width="100%",
        ),
        size="4",
        width="100%",
        max_width="420px",
    )
    return page_shell(
        rx.center(card, padding_top="8vh"),
        with_user=False,
    )
