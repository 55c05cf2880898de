"""Every role against every action: the table the server checks and the menu reads."""

from __future__ import annotations

import pytest

from integration.permissions import Action, Actor, actions_of, allowed, require
from models.enums import ProfessionalTitle, Role
from models.errors import PermissionDenied

ATTENDING = ProfessionalTitle.attending
RESIDENT = ProfessionalTitle.resident

EXPECTED: dict[Role, set[Action]] = {
    Role.radiologist: {
        Action.read_worklist,
        Action.claim,
        Action.write_preliminary,
        Action.request_retake,
        Action.flag_critical,
        Action.notify_critical,
        Action.request_consultation,
        Action.answer_consultation,
    },
    Role.technologist: {Action.view_clinic, Action.acknowledge_critical},
    Role.clinician: {Action.view_clinic, Action.acknowledge_critical, Action.check_priors},
    Role.admin: {
        Action.manage_users,
        Action.manage_facilities,
        Action.manage_catalogue,
        Action.view_analytics,
        Action.read_audit_trail,
    },
    Role.leader: {Action.view_analytics},
    Role.qc: {Action.review_refusals, Action.view_analytics, Action.read_audit_trail},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_gets_exactly_its_actions(role: Role) -> None:
    assert actions_of(role, ATTENDING) == EXPECTED[role]


def test_auditor_needs_attending_title_to_sign_or_amend() -> None:
    senior = actions_of(Role.auditor, ATTENDING)
    junior = actions_of(Role.auditor, RESIDENT)
    assert {Action.audit, Action.amend} <= senior
    assert not {Action.audit, Action.amend} & junior
    assert senior - junior == {Action.audit, Action.amend}
    assert not allowed(Role.radiologist, ProfessionalTitle.chief, Action.audit)


def test_require_names_who_and_what() -> None:
    clinician = Actor(7, "doc", "王医生", Role.clinician, ATTENDING, 3)
    with pytest.raises(PermissionDenied, match="clinician doc may not read_worklist"):
        require(clinician, Action.read_worklist)
    require(clinician, Action.view_clinic)
