"""The administration pages' states against the real services on a seeded demo copy.

No browser: the handlers run on real state instances, the services on a copy of
the tiny demo county, so a refusal travels from the use-case to the field it
names, worded in the session's language.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import reflex as rx
from sqlmodel import Session, select

import portal.portal  # noqa: F401  (registers the pages, as the running app does)
from integration import administration
from integration.accounts import SignedInUser
from integration.database import Database
from integration.services import PortalServices
from integration.settings import Settings
from models import ExamType, Facility, User
from models.enums import ProfessionalTitle, Role
from portal import i18n, navigation, routes
from portal.auth import SessionState
from portal.pages import admin_catalogue, admin_facilities, admin_users
from portal.pages.admin_catalogue import AdminCatalogueState
from portal.pages.admin_facilities import AdminFacilitiesState
from portal.pages.admin_forms import FIELD_MESSAGES, field_message
from portal.pages.admin_users import AdminUsersState
from tests.portal.test_states import collect, redirect_target, substate

ADMIN_PAGES = [routes.ADMIN_USERS, routes.ADMIN_FACILITIES, routes.ADMIN_CATALOGUE]


@pytest.fixture
def services(
    demo_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalServices]:
    shutil.copy(demo_data_dir / "huren.db", tmp_path / "huren.db")
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    made = PortalServices(settings=settings, database=Database.from_settings(settings))
    from portal import auth

    for module in (auth, admin_users, admin_facilities, admin_catalogue):
        monkeypatch.setattr(module, "portal_services", lambda: made)
    yield made
    made.database.dispose()


@pytest.fixture
def root() -> rx.State:
    return rx.State(_reflex_internal_init=True)


def signed_in(root: rx.State, services: PortalServices, username: str) -> SessionState:
    with Session(services.database.engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
    assert user.id is not None
    session_state = substate(root, SessionState)
    session_state._remember(
        SignedInUser(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            title=user.title,
            facility_id=user.facility_id,
        )
    )
    return session_state


def facility_id(services: PortalServices, code: str) -> int:
    with Session(services.database.engine) as session:
        found = session.exec(select(Facility.id).where(Facility.code == code)).one()
    assert found is not None
    return found


def test_every_field_the_use_cases_name_has_a_message_in_both_languages() -> None:
    source = Path(administration.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'field="(\w+)"', source)) - {"level"}  # the filter's own select
    mapped = {field for _, field in FIELD_MESSAGES}
    assert named <= mapped, named - mapped
    for key in FIELD_MESSAGES.values():
        assert i18n.text(key, i18n.ZH) and i18n.text(key, i18n.EN)


def test_only_administrators_see_the_admin_menu() -> None:
    admin_menu = [e["route"] for e in navigation.nav_for("admin", "none")]
    assert admin_menu == [routes.HOME, routes.ANALYTICS_HOME, *ADMIN_PAGES, routes.AUDIT_TRAIL]
    for role in Role:
        if role is not Role.admin:
            routes_seen = {e["route"] for e in navigation.nav_for(role.value, "chief")}
            assert not routes_seen & set(ADMIN_PAGES), role


@pytest.mark.parametrize("cls", [AdminUsersState, AdminFacilitiesState, AdminCatalogueState])
def test_a_radiologist_is_sent_home_from_every_admin_page(
    root: rx.State, services: PortalServices, cls: type[rx.State]
) -> None:
    signed_in(root, services, "radiologist")
    state = substate(root, cls)
    out = collect(cls.load.fn(state))  # type: ignore[attr-defined]
    assert [redirect_target(item) for item in out] == [routes.HOME]
    assert not state.allowed and state.rows == []  # type: ignore[attr-defined]


def test_creating_a_user_shows_the_refusal_under_its_field_then_lists_the_user(
    root: rx.State, services: PortalServices
) -> None:
    signed_in(root, services, "admin")
    state = substate(root, AdminUsersState)
    collect(AdminUsersState.load.fn(state))
    assert state.allowed and state.total > 20 and state.rows[0]["username"] == "admin"
    assert any(f["label"].startswith("QL-H01 ") for f in state.facilities)
    assert all(not f["label"].startswith("PROV-") for f in state.facilities)

    AdminUsersState.start_create.fn(state)
    assert state.mode == "create"
    form = {
        "username": "zhao.aud",
        "display_name": "赵审核",
        "role": "auditor",
        "title": "resident",
        "facility_id": str(facility_id(services, "QL-H02")),
        "password": "Qinglan-audit-2026",
    }
    collect(AdminUsersState.create.fn(state, form))
    assert state.errors == {"title": "err_title_auditor"}
    assert state.error_text["title"] == "审核医师须具有主治医师及以上职称。"
    state.lang = "en"
    assert state.error_text["title"].startswith("An auditing radiologist")
    assert state.mode == "create"

    collect(AdminUsersState.create.fn(state, form | {"title": "attending", "password": "short"}))
    assert state.errors == {"password": "err_password_rule"}
    collect(AdminUsersState.create.fn(state, form | {"title": "attending"}))
    assert state.errors == {} and state.notice == "User created."
    assert state.mode == "list" and [r["username"] for r in state.rows] == ["zhao.aud"]
    assert state.rows[0]["role"] == "auditor" and state.role_labels["auditor"]

    collect(AdminUsersState.create.fn(state, form | {"title": "attending"}))
    assert state.errors == {"username": "err_username_taken"}


def test_editing_resetting_and_unlocking(root: rx.State, services: PortalServices) -> None:
    me = signed_in(root, services, "admin")
    state = substate(root, AdminUsersState)
    collect(AdminUsersState.load.fn(state))

    collect(AdminUsersState.edit.fn(state, me.user_id))
    assert state.mode == "edit" and state.selected["username"] == "admin"
    own = {
        "display_name": state.selected["display_name"],
        "role": "admin",
        "title": "none",
        "facility_id": state.selected["facility_id"],
    }
    collect(AdminUsersState.save.fn(state, own))  # the active box left unticked
    assert state.errors == {"active": "err_active_self"}
    collect(AdminUsersState.save.fn(state, own | {"active": "on"}))
    assert state.errors == {} and state.notice_key == "admin_unchanged"

    with services.database.session() as session:
        qc = session.exec(select(User).where(User.username == "qc")).one()
        qc.failed_logins = 5
        session.add(qc)
        qc_id = qc.id
    assert qc_id is not None
    collect(AdminUsersState.edit.fn(state, qc_id))
    collect(AdminUsersState.reset_password.fn(state, {"new_password": "tiny"}))
    assert state.errors == {"new_password": "err_password_rule"}
    collect(AdminUsersState.reset_password.fn(state, {"new_password": "A-long-new-one-2026"}))
    assert state.errors == {} and state.notice_key == "users_password_reset"
    collect(AdminUsersState.unlock.fn(state))
    assert state.notice_key == "users_not_locked"  # the reset lifted it already

    collect(
        AdminUsersState.save.fn(
            state,
            {
                "display_name": "王芳",
                "role": "qc",
                "title": "chief",
                "facility_id": state.selected["facility_id"],
                "active": "on",
            },
        )
    )
    assert state.notice_key == "admin_saved" and state.selected["title"] == "chief"
    with Session(services.database.engine) as session:
        assert session.get(User, qc_id).title is ProfessionalTitle.chief  # type: ignore[union-attr]


def test_facility_forms_put_refusals_under_their_fields(
    root: rx.State, services: PortalServices
) -> None:
    signed_in(root, services, "admin")
    state = substate(root, AdminFacilitiesState)
    collect(AdminFacilitiesState.load.fn(state))
    assert state.allowed and state.total > 20
    collect(AdminFacilitiesState.run_search.fn(state, {"search": "QL-T05"}))
    assert state.rows[0]["code"] == "QL-T05"
    collect(AdminFacilitiesState.open_facility.fn(state, state.rows[0]["facility_id"]))
    assert state.mode == "detail" and state.open_period_id > 0
    assert state.selected["reading_centre_id"] != "none" and state.centres

    collect(
        AdminFacilitiesState.save_hl7.fn(
            state, {"hl7_host": "10.1.2.3", "hl7_port": "0", "hl7_charset": "UNICODE UTF-8"}
        )
    )
    assert state.errors == {"hl7_port": "err_hl7_port"}
    collect(
        AdminFacilitiesState.save_hl7.fn(
            state, {"hl7_host": "10.1.2.3", "hl7_port": "2575", "hl7_charset": "GB 18030"}
        )
    )
    assert state.errors == {} and state.notice_key == "admin_saved"
    assert state.selected["hl7_port"] == "2575" and state.selected["hl7_charset"] == "GB 18030"

    collect(
        AdminFacilitiesState.add_period.fn(
            state, {"valid_from": "2030-01-01", "valid_until": "", "certificate": ""}
        )
    )
    assert state.errors == {"valid_from": "err_qc_overlap"}
    collect(AdminFacilitiesState.end_period.fn(state, {"end_until": "1999-01-01"}))
    assert state.errors == {"end_until": "err_valid_until"}
    collect(AdminFacilitiesState.end_period.fn(state, {"end_until": "2029-12-31"}))
    assert state.errors == {} and state.open_period_id == 0
    collect(
        AdminFacilitiesState.add_period.fn(
            state, {"valid_from": "2030-01-01", "valid_until": "", "certificate": "QC-2030"}
        )
    )
    assert state.errors == {} and state.periods[0]["certificate"] == "QC-2030"

    collect(
        AdminFacilitiesState.add_ae.fn(
            state,
            {
                "ae_title": "QHH01CT",
                "modality": "all",
                "station_name": "",
                "ae_host": "",
                "ae_port": "",
            },
        )
    )
    assert state.errors == {"ae_title": "err_ae_taken"}
    collect(
        AdminFacilitiesState.add_ae.fn(
            state,
            {
                "ae_title": "QHT05CR",
                "modality": "CR",
                "station_name": "",
                "ae_host": "",
                "ae_port": "",
            },
        )
    )
    added = [t for t in state.ae_titles if t["ae_title"] == "QHT05CR"]
    assert added and state.errors == {}
    collect(AdminFacilitiesState.remove_ae.fn(state, added[0]["id"]))
    assert all(t["ae_title"] != "QHT05CR" for t in state.ae_titles)

    collect(
        AdminFacilitiesState.save_routing.fn(
            state, {"reading_centre_id": str(facility_id(services, "QL-T04"))}
        )
    )
    assert state.errors == {"reading_centre_id": "err_reading_centre_invalid"}


def test_turning_a_reading_centre_off_is_refused_while_others_upload(
    root: rx.State, services: PortalServices
) -> None:
    signed_in(root, services, "admin")
    state = substate(root, AdminFacilitiesState)
    collect(AdminFacilitiesState.load.fn(state))
    h01 = facility_id(services, "QL-H01")
    collect(AdminFacilitiesState.open_facility.fn(state, h01))
    assert state.selected["is_reading_centre"] and state.selected["uploaders"] > 0
    collect(AdminFacilitiesState.save_routing.fn(state, {"reading_centre_id": str(h01)}))
    assert state.errors == {"is_reading_centre": "err_centre_in_use"}


def test_catalogue_edit(root: rx.State, services: PortalServices) -> None:
    signed_in(root, services, "admin")
    state = substate(root, AdminCatalogueState)
    collect(AdminCatalogueState.load.fn(state))
    assert state.total == 49 and "CT" in state.modalities
    collect(AdminCatalogueState.set_modality_filter.fn(state, "MG"))
    assert state.rows and all(r["modality"] == "MG" for r in state.rows)
    collect(AdminCatalogueState.set_sort.fn(state, "fee"))
    collect(AdminCatalogueState.set_sort.fn(state, "fee"))
    assert state.descending
    exam = state.rows[0]
    collect(AdminCatalogueState.edit.fn(state, exam["exam_type_id"]))
    assert state.mode == "edit" and state.selected["code"] == exam["code"]
    form = {"fee": "abc", "validity_days": "30", "recognised": "on", "active": "on"}
    collect(AdminCatalogueState.save.fn(state, form))
    assert state.errors == {"fee": "err_fee"}
    collect(AdminCatalogueState.save.fn(state, form | {"fee": "12.3", "validity_days": "0"}))
    assert state.errors == {"validity_days": "err_validity_days"}
    collect(AdminCatalogueState.save.fn(state, form | {"fee": "12.3"}))
    assert state.errors == {} and state.selected["fee"] == "12.30"
    with Session(services.database.engine) as session:
        saved = session.exec(select(ExamType).where(ExamType.code == exam["code"])).one()
    assert saved.fee_fen == 1230 and saved.validity_days == 30


def test_a_refusal_without_a_field_message_is_the_notice() -> None:
    from models.errors import NotFound, ValidationError

    assert field_message(ValidationError("x", field="hl7_port")) == ("hl7_port", "err_hl7_port")
    assert field_message(NotFound("gone")) is None
    assert field_message(ValidationError("x", field="nowhere")) is None
