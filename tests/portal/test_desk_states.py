"""The reading desk's page states and the menu, without a browser: guards, expiry, the menu."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import reflex as rx

from integration.accounts import SignedInUser
from integration.permissions import Action
from integration.reading_desk import WorklistPage, WorklistQuery, WorklistRow, WorklistView
from integration.sla import Clock
from models.enums import Priority, ProfessionalTitle, ReadingStatus, Role
from portal import navigation, routes
from portal.auth import SessionState
from portal.pages import worklist
from portal.pages.worklist import WorklistState, worklist_rows
from tests.portal.test_states import (
    RADIOLOGIST,
    FakeServices,
    collect,
    redirect_target,
    substate,
)

CLINICIAN = SignedInUser(
    id=5,
    username="clinician",
    display_name="李医生",
    role=Role.clinician,
    title=ProfessionalTitle.attending,
    facility_id=7,
)
DUE = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
ROW = WorklistRow(
    study_id=41,
    accession="A0041",
    patient_name="王小明",
    sex="M",
    age="45岁",
    exam_name="胸部正位",
    exam_name_en="Chest PA",
    modality="DX",
    clinic_name="青岚镇卫生院",
    clinic_name_en="",
    priority=Priority.emergency,
    reading_status=ReadingStatus.awaiting_preliminary,
    arrived_at=DUE - timedelta(minutes=30),
    due_at=DUE,
    clock=Clock.near,
    claimed_by="",
    claimed_by_me=False,
    num_instances=2,
)


class DeskServices(FakeServices):
    def worklist(self, user_id: int, query: WorklistQuery) -> WorklistPage:
        self.calls.append({"worklist": str(user_id), "view": query.view.value})
        return WorklistPage(
            rows=(ROW,),
            total=1,
            page=1,
            pages=1,
            counts={"open": 1},
            clinics=((3, "青岚镇卫生院", ""),),
            modalities=("DX",),
        )


@pytest.fixture
def root() -> rx.State:
    return rx.State(_reflex_internal_init=True)


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch) -> DeskServices:
    from portal import auth

    services = DeskServices()
    monkeypatch.setattr(auth, "portal_services", lambda: services)
    monkeypatch.setattr(worklist, "portal_services", lambda: services)
    return services


@pytest.mark.parametrize(
    ("role", "title", "pages"),
    [
        (
            Role.radiologist,
            ProfessionalTitle.resident,
            [routes.HOME, routes.WORKLIST, routes.CONSULTATIONS],
        ),
        (
            Role.auditor,
            ProfessionalTitle.chief,
            [routes.HOME, routes.WORKLIST, routes.CONSULTATIONS],
        ),
        (Role.technologist, ProfessionalTitle.technician, [routes.HOME, routes.CLINIC]),
        (Role.clinician, ProfessionalTitle.attending, [routes.HOME, routes.CLINIC, routes.PRIORS]),
        (Role.leader, ProfessionalTitle.none, [routes.HOME, routes.ANALYTICS_HOME]),
        (
            Role.qc,
            ProfessionalTitle.attending,
            [routes.HOME, routes.REFUSAL_AUDIT, routes.ANALYTICS_HOME, routes.AUDIT_TRAIL],
        ),
    ],
)
def test_the_menu_follows_the_permission_table(
    role: Role, title: ProfessionalTitle, pages: list[str]
) -> None:
    assert [entry["route"] for entry in navigation.nav_for(role.value, title.value)] == pages
    assert navigation.nav_for("nobody", "none") == []


def test_the_menu_is_worded_in_the_session_language(root: rx.State) -> None:
    session = substate(root, SessionState)
    session._remember(RADIOLOGIST)
    assert [entry["label"] for entry in session.nav] == ["首页", "阅片工作列表", "会诊"]
    session.lang = "en"
    assert session.nav[1]["label"] == "Reading worklist"


def test_an_idle_session_is_signed_out_with_a_notice(root: rx.State, desk: DeskServices) -> None:
    session = substate(root, SessionState)
    session._remember(RADIOLOGIST)
    session.lang = "en"
    page = substate(root, WorklistState)
    page.rows = [{"patient": "王小明"}]
    session.last_seen = int(time.time()) - 31 * 60  # the default limit is 30 minutes
    assert redirect_target(page.guard(Action.read_worklist)) == routes.LOGIN
    assert session.user_id == 0 and session.expired_notice and session.lang == "en"
    assert page.rows == []
    assert desk.calls[-1] == {"sign_out": str(RADIOLOGIST.id), "idle": "True"}


def test_activity_keeps_the_session_and_the_role_is_checked(
    root: rx.State, desk: DeskServices
) -> None:
    session = substate(root, SessionState)
    session._remember(RADIOLOGIST)
    session.last_seen = int(time.time()) - 29 * 60
    assert session.guard(Action.read_worklist) is None
    assert session.last_seen >= int(time.time()) - 1
    assert redirect_target(session.guard(Action.view_clinic)) == routes.HOME
    assert redirect_target(session.guard(Action.audit)) == routes.HOME  # a resident
    assert session.user_id == RADIOLOGIST.id


def test_a_clinician_is_sent_home_from_the_worklist(root: rx.State, desk: DeskServices) -> None:
    substate(root, SessionState)._remember(CLINICIAN)
    state = substate(root, WorklistState)
    out = collect(WorklistState.load.fn(state))
    assert [redirect_target(item) for item in out] == [routes.HOME]
    assert not state.allowed and state.rows == []
    assert not any("worklist" in call for call in desk.calls)


def test_the_worklist_loads_plain_rows_for_a_radiologist(
    root: rx.State, desk: DeskServices
) -> None:
    substate(root, SessionState)._remember(RADIOLOGIST)
    state = substate(root, WorklistState)
    collect(WorklistState.load.fn(state))
    assert state.allowed and state.total == 1
    assert state.rows[0]["href"] == "/reading/41"
    assert state.rows[0]["due"] == "2026-11-25 10:30"  # Asia/Shanghai
    assert state.rows[0]["emergency"] and state.rows[0]["clock"] == "near"
    assert state.clinics == [{"id": "3", "name": "青岚镇卫生院", "name_en": "青岚镇卫生院"}]
    assert desk.calls[-1] == {"worklist": str(RADIOLOGIST.id), "view": WorklistView.open.value}


def test_rows_fall_back_to_the_chinese_names() -> None:
    page = WorklistPage((ROW,), 1, 1, 1, {}, (), ())
    row = worklist_rows(page, "Asia/Shanghai")[0]
    assert row["clinic_en"] == "青岚镇卫生院" and row["exam_en"] == "Chest PA"
    assert row["status_key"] == "status_awaiting_preliminary" and row["sex_key"] == "sex_M"
