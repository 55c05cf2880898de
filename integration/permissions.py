"""Who may do what in the portal: one table of roles per action, checked on the server.

The menu reads the same table, but hiding a link protects nothing: every
service call loads the acting user from the database and asks `require`.
Facility scoping (which studies, which clinic) is checked by the services,
next to the rows they read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.enums import AUDITOR_TITLES, ProfessionalTitle, Role
from models.errors import PermissionDenied


class Action(StrEnum):
    read_worklist = "read_worklist"  # see the reading centre's worklist and open a case
    claim = "claim"
    write_preliminary = "write_preliminary"
    audit = "audit"  # sign final, grade images
    amend = "amend"  # change a signed report
    request_retake = "request_retake"
    flag_critical = "flag_critical"
    notify_critical = "notify_critical"  # record that the clinic was told
    acknowledge_critical = "acknowledge_critical"  # the clinic confirms it was told
    request_consultation = "request_consultation"
    answer_consultation = "answer_consultation"
    view_clinic = "view_clinic"  # the facility's own orders, studies, reports
    check_priors = "check_priors"  # the prior-exam (recognition) check before ordering
    review_refusals = "review_refusals"  # the monthly 10% sample of refused priors
    view_analytics = "view_analytics"  # the bureau's figures, charts, exports, statements
    read_audit_trail = "read_audit_trail"  # search and export who saw or changed what
    manage_users = "manage_users"
    manage_facilities = "manage_facilities"
    manage_catalogue = "manage_catalogue"


_READERS = frozenset({Role.radiologist, Role.auditor})
_CLINIC = frozenset({Role.technologist, Role.clinician})

ALLOWED: dict[Action, frozenset[Role]] = {
    Action.read_worklist: _READERS,
    Action.claim: _READERS,
    Action.write_preliminary: _READERS,
    Action.audit: frozenset({Role.auditor}),
    Action.amend: frozenset({Role.auditor}),
    Action.request_retake: _READERS,
    Action.flag_critical: _READERS,
    Action.notify_critical: _READERS,
    Action.acknowledge_critical: _CLINIC,
    Action.request_consultation: _READERS,
    Action.answer_consultation: _READERS,
    Action.view_clinic: _CLINIC,
    Action.check_priors: frozenset({Role.clinician}),
    Action.review_refusals: frozenset({Role.qc}),
    Action.view_analytics: frozenset({Role.leader, Role.qc, Role.admin}),
    Action.read_audit_trail: frozenset({Role.qc, Role.admin}),
    Action.manage_users: frozenset({Role.admin}),
    Action.manage_facilities: frozenset({Role.admin}),
    Action.manage_catalogue: frozenset({Role.admin}),
}
_NEEDS_AUDITOR_TITLE = frozenset({Action.audit, Action.amend})


@dataclass(frozen=True)
class Actor:
    """The person behind a portal request, as read from the database for that request."""

    user_id: int
    username: str
    display_name: str
    role: Role
    title: ProfessionalTitle
    facility_id: int


def allowed(role: Role, title: ProfessionalTitle, action: Action) -> bool:
    """Auditing also needs attending title or above, whatever the role says."""
    if role not in ALLOWED[action]:
        return False
    return action not in _NEEDS_AUDITOR_TITLE or title in AUDITOR_TITLES


def require(actor: Actor, action: Action) -> None:
    if not allowed(actor.role, actor.title, action):
        raise PermissionDenied(f"{actor.role.value} {actor.username} may not {action.value}")


def actions_of(role: Role, title: ProfessionalTitle) -> frozenset[Action]:
    return frozenset(action for action in Action if allowed(role, title, action))
