"""The signed-in session: who is using this browser tab, and in which language.

Only plain values live here (ids, names, the role's value, the language);
engines, sessions and sockets stay in `integration`. Reflex ties this state to
a token kept in the tab's sessionStorage, so a sign-in lasts for the browser
session of that tab.
"""

from __future__ import annotations

import logging
import time

import reflex as rx
from reflex.event import EventSpec

from integration.accounts import SignedInUser
from integration.permissions import Action, allowed
from integration.services import portal_services
from models.enums import ProfessionalTitle, Role
from portal import i18n, navigation, routes

logger = logging.getLogger(__name__)


class SessionState(rx.State):
    """The root of the portal's states; every page's substate derives from it."""

    user_id: int = 0
    username: str = ""
    display_name: str = ""
    role: str = ""  # a models.enums.Role value
    title: str = ""  # a models.enums.ProfessionalTitle value
    facility_id: int = 0
    # Seconds since the epoch of this session's last request; idle too long means signed out.
    last_seen: int = 0
    # Set when a session ended for inactivity, so the login page can say why.
    expired_notice: bool = False
    # Names of the user's facility, filled by the first page that loads its overview.
    facility_name: str = ""
    facility_name_en: str = ""
    # Survives reloads and sign-outs for the browser session, like the sign-in itself.
    lang: str = rx.SessionStorage(i18n.DEFAULT_LANGUAGE, name="huren_lang")

    @rx.var
    def signed_in(self) -> bool:
        return self.user_id > 0

    @rx.var
    def tr(self) -> dict[str, str]:
        """The UI strings of the session's language."""
        return dict(i18n.strings(self.lang))

    @rx.var
    def role_label(self) -> str:
        return i18n.role_name(self.role, self.lang) if self.role else ""

    @rx.var
    def facility_label(self) -> str:
        return i18n.facility_display_name(self.facility_name, self.facility_name_en, self.lang)

    @rx.var
    def nav(self) -> list[dict[str, str]]:
        """The menu of this user: route, label in the session's language."""
        table = i18n.strings(self.lang)
        return [
            {"route": entry["route"], "label": table[entry["label_key"]]}
            for entry in navigation.nav_for(self.role, self.title)
        ]

    def may(self, action: Action) -> bool:
        """What the menu shows; the services check again against the database."""
        try:
            return allowed(Role(self.role), ProfessionalTitle(self.title), action)
        except ValueError:
            return False

    def guard(self, action: Action | None = None) -> EventSpec | None:
        """Call first in every page load and handler: signed in, not idle too long, allowed.

        Returns the redirect to send, or None to go on. Each call counts as activity.
        """
        if self.user_id <= 0:
            return rx.redirect(routes.LOGIN, replace=True)
        idle_limit = portal_services().settings.portal_idle_minutes * 60
        now = int(time.time())
        if self.last_seen and now - self.last_seen > idle_limit:
            self._record_sign_out(idle=True)
            self._end_session().expired_notice = True
            return rx.redirect(routes.LOGIN, replace=True)
        self.last_seen = now
        if action is not None and not self.may(action):
            return rx.redirect(routes.HOME, replace=True)
        return None

    @rx.event
    def set_language(self, language: str) -> None:
        self.lang = i18n.normalise_language(language)

    @rx.event
    def logout(self) -> EventSpec:
        """Forget the user (and every loaded page state), keep the language, go to /login."""
        self._record_sign_out(idle=False)
        self._end_session()
        return rx.redirect(routes.LOGIN, replace=True)

    def _record_sign_out(self, *, idle: bool) -> None:
        if self.user_id <= 0:
            return
        try:
            portal_services().sign_out(
                self.user_id, source_address=self.router.session.client_ip, idle=idle
            )
        except Exception:  # signing out must work with the database away
            logger.exception("sign-out of user %s could not be recorded", self.user_id)

    def _end_session(self) -> SessionState:
        """Reset the session root (and with it every page's state), keeping the language."""
        root: rx.State = self
        while type(root) is not SessionState and root.parent_state is not None:
            root = root.parent_state
        assert isinstance(root, SessionState)
        language = root.lang
        root.reset()
        root.lang = language
        return root

    def _remember(self, user: SignedInUser) -> None:
        """Keep what the page needs about a user who has just signed in."""
        self.user_id = user.id
        self.username = user.username
        self.display_name = user.display_name
        self.role = user.role.value
        self.title = user.title.value
        self.facility_id = user.facility_id
        self.last_seen = int(time.time())
        self.expired_notice = False
        self.facility_name = ""
        self.facility_name_en = ""
