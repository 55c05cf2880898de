"""The signed-in session: who is using this browser tab, and in which language.

Only plain values live here (ids, names, the role's value, the language);
engines, sessions and sockets stay in `integration`. Reflex ties this state to
a token kept in the tab's sessionStorage, so a sign-in lasts for the browser
session of that tab.
"""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from integration.accounts import SignedInUser
from portal import i18n, routes


class SessionState(rx.State):
    """The root of the portal's states; every page's substate derives from it."""

    user_id: int = 0
    username: str = ""
    display_name: str = ""
    role: str = ""  # a models.enums.Role value
    facility_id: int = 0
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

    @rx.event
    def set_language(self, language: str) -> None:
        self.lang = i18n.normalise_language(language)

    @rx.event
    def logout(self) -> EventSpec:
        """Forget the user (and every loaded page state), keep the language, go to /login."""
        language = self.lang
        self.reset()
        self.lang = language
        return rx.redirect(routes.LOGIN, replace=True)

    def _remember(self, user: SignedInUser) -> None:
        """Keep what the page needs about a user who has just signed in."""
        self.user_id = user.id
        self.username = user.username
        self.display_name = user.display_name
        self.role = user.role.value
        self.facility_id = user.facility_id
        self.facility_name = ""
        self.facility_name_en = ""
