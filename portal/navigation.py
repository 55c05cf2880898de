"""The menu: which pages each signed-in user sees, from the same table the server checks.

Pure data and functions (no Reflex), so the menu of every role can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from integration.permissions import Action, allowed
from models.enums import ProfessionalTitle, Role
from portal import routes


@dataclass(frozen=True)
class NavItem:
    route: str
    label_key: str  # an i18n key
    action: Action | None  # None: every signed-in user


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem(routes.HOME, "nav_home", None),
    NavItem(routes.WORKLIST, "nav_worklist", Action.read_worklist),
    NavItem(routes.CONSULTATIONS, "nav_consultations", Action.answer_consultation),
    NavItem(routes.CLINIC, "nav_clinic", Action.view_clinic),
    NavItem(routes.PRIORS, "nav_priors", Action.check_priors),
    NavItem(routes.REFUSAL_AUDIT, "nav_refusal_audit", Action.review_refusals),
    NavItem(routes.ANALYTICS_HOME, "nav_analytics", Action.view_analytics),
    NavItem(routes.ADMIN_USERS, "nav_admin_users", Action.manage_users),
    NavItem(routes.ADMIN_FACILITIES, "nav_admin_facilities", Action.manage_facilities),
    NavItem(routes.ADMIN_CATALOGUE, "nav_admin_catalogue", Action.manage_catalogue),
    NavItem(routes.AUDIT_TRAIL, "nav_audit_trail", Action.read_audit_trail),
)


def nav_for(role: str, title: str) -> list[dict[str, str]]:
    """The menu entries (route and i18n key) a user of this role and title may open."""
    try:
        who, rank = Role(role), ProfessionalTitle(title)
    except ValueError:
        return []
    return [
        {"route": item.route, "label_key": item.label_key}
        for item in NAV_ITEMS
        if item.action is None or allowed(who, rank, item.action)
    ]
