"""The pages' thin handlers, run on real state instances without a browser or a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import reflex as rx
from reflex.event import EventSpec

import portal.portal  # noqa: F401  (registers the pages, as the running app does)
from integration.accounts import LoginFailed, LoginRefusal, SignedInUser
from integration.overview import FacilityOverview
from integration.services import portal_services
from integration.settings import Settings
from models.enums import ProfessionalTitle, Role
from portal import auth, routes
from portal.auth import SessionState
from portal.pages import home, login
from portal.pages.home import HomeState
from portal.pages.login import LoginState, attempt_login

S = TypeVar("S", bound=rx.State)

RADIOLOGIST = SignedInUser(
    id=2,
    username="radiologist",
    display_name="高斌海",
    role=Role.radiologist,
    title=ProfessionalTitle.resident,
    facility_id=3,
)
OVERVIEW = FacilityOverview(
    facility_code="QL-H01",
    facility_name="青岚县人民医院",
    facility_name_en="Qinglan County People's Hospital",
    reading_centre_name="",
    orders_today=4,
    awaiting_preliminary=2,
    awaiting_audit=1,
    finals_today=3,
)


def substate(root: rx.State, cls: type[S]) -> S:
    found = root.get_substate(cls.get_full_name().split(".")[1:])
    assert isinstance(found, cls)
    return found


@pytest.fixture
def root() -> rx.State:
    # The framework normally builds these through its state manager.
    return rx.State(_reflex_internal_init=True)


def redirect_target(spec: Any) -> str:
    assert isinstance(spec, EventSpec)
    args = {str(name): value for name, value in spec.args}
    assert set(args) >= {"path", "external", "replace"}, "not an rx.redirect"
    return str(args["path"]._var_value)


def collect(gen: AsyncIterator[EventSpec | None]) -> list[EventSpec | None]:
    """Run an async handler to its end in a thread of its own.

    Its own thread, because playwright's sync API (the browser tests) keeps an
    event loop running in the main thread while it is open.
    """

    async def drain() -> list[EventSpec | None]:
        return [item async for item in gen]

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, drain()).result()


@dataclass
class FakeServices:
    settings: Settings = field(default_factory=Settings)
    refusal: LoginFailed | None = None
    calls: list[dict[str, str]] = field(default_factory=list)

    def sign_in(self, *, username: str, password: str, source_address: str = "") -> SignedInUser:
        self.calls.append({"username": username, "password": password})
        if self.refusal is not None:
            raise self.refusal
        return RADIOLOGIST

    def overview(self, *, facility_id: int) -> FacilityOverview:
        assert facility_id == RADIOLOGIST.facility_id
        return OVERVIEW

    def sign_out(self, user_id: int, *, source_address: str = "", idle: bool = False) -> None:
        self.calls.append({"sign_out": str(user_id), "idle": str(idle)})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeServices:
    services = FakeServices()
    monkeypatch.setattr(login, "portal_services", lambda: services)
    monkeypatch.setattr(home, "portal_services", lambda: services)
    monkeypatch.setattr(auth, "portal_services", lambda: services)
    return services


def test_states_keep_only_plain_values() -> None:
    for cls in (SessionState, LoginState, HomeState):
        for name, var in cls.base_vars.items():
            assert var._var_type in (int, str, bool), (cls.__name__, name, var._var_type)


def test_empty_fields_never_reach_the_hub(fake: FakeServices) -> None:
    outcome = attempt_login("  ", "")
    assert outcome.user is None
    assert {e.field for e in outcome.errors} == {"username", "password"}
    assert fake.calls == []


def test_a_refusal_becomes_a_form_message(fake: FakeServices) -> None:
    fake.refusal = LoginFailed(
        LoginRefusal.locked, locked_until=datetime(2026, 11, 20, 6, 5, tzinfo=UTC)
    )
    outcome = attempt_login(" radiologist ", "wrong")
    assert outcome.user is None
    assert [(e.field, e.key, e.time) for e in outcome.errors] == [
        ("form", "err_locked_until", "14:05")
    ]
    assert fake.calls == [{"username": "radiologist", "password": "wrong"}]


def test_submit_shows_the_message_and_rewords_it_on_a_language_switch(
    root: rx.State, fake: FakeServices
) -> None:
    fake.refusal = LoginFailed(LoginRefusal.invalid)
    state = substate(root, LoginState)
    out = collect(LoginState.submit.fn(state, {"username": "x", "password": "y"}))
    assert not any(isinstance(item, EventSpec) for item in out)
    assert state.form_error == "用户名或密码不正确。"
    assert state.username_error == "" and state.password_error == ""
    assert state.user_id == 0 and not state.busy
    SessionState.set_language.fn(substate(root, SessionState), "en")
    assert state.form_error == "The username or password is incorrect."


def test_submit_with_an_empty_username_marks_that_field(root: rx.State, fake: FakeServices) -> None:
    state = substate(root, LoginState)
    collect(LoginState.submit.fn(state, {"username": "", "password": "y"}))
    assert state.username_error == "请输入用户名。"
    assert state.form_error == ""


def test_a_failing_hub_is_reported_without_details(
    root: rx.State, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> FakeServices:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(login, "portal_services", broken)
    state = substate(root, LoginState)
    collect(LoginState.submit.fn(state, {"username": "a", "password": "b"}))
    assert state.form_error.startswith("暂时无法登录")
    assert "database" not in state.form_error


def test_sign_in_keeps_plain_values_and_goes_home(root: rx.State, fake: FakeServices) -> None:
    state = substate(root, LoginState)
    out = collect(LoginState.submit.fn(state, {"username": "radiologist", "password": "p"}))
    assert redirect_target(out[-1]) == routes.HOME
    session = substate(root, SessionState)
    assert (
        session.user_id,
        session.username,
        session.display_name,
        session.role,
        session.facility_id,
    ) == (2, "radiologist", "高斌海", "radiologist", 3)
    assert session.signed_in and session.role_label == "放射科医师"


def test_login_page_sends_a_signed_in_user_home(root: rx.State) -> None:
    state = substate(root, LoginState)
    assert LoginState.on_load.fn(state) is None
    state.user_id = 2
    assert redirect_target(LoginState.on_load.fn(state)) == routes.HOME


def test_home_sends_a_visitor_to_login(root: rx.State, fake: FakeServices) -> None:
    state = substate(root, HomeState)
    out = collect(HomeState.load.fn(state))
    assert [redirect_target(item) for item in out] == [routes.LOGIN]
    assert not state.loaded


def test_home_loads_the_overview_for_the_users_facility(root: rx.State, fake: FakeServices) -> None:
    substate(root, SessionState)._remember(RADIOLOGIST)
    state = substate(root, HomeState)
    collect(HomeState.load.fn(state))
    assert state.loaded and not state.unavailable
    assert (
        state.orders_today,
        state.awaiting_preliminary,
        state.awaiting_audit,
        state.finals_today,
    ) == (4, 2, 1, 3)
    assert state.facility_label == "青岚县人民医院"
    assert state.status_line == "有 2 项检查等待初步报告。"
    assert "阅片工作列表" in state.outlook_line
    assert state.reading_centre_label.startswith("无")
    SessionState.set_language.fn(substate(root, SessionState), "en")
    assert state.facility_label == "Qinglan County People's Hospital"
    assert state.role_label == "Radiologist"


def test_home_survives_a_hub_that_cannot_answer(
    root: rx.State, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(facility_id: int) -> FacilityOverview:
        raise RuntimeError("no database")

    monkeypatch.setattr(home, "load_overview", broken)
    substate(root, SessionState)._remember(RADIOLOGIST)
    state = substate(root, HomeState)
    collect(HomeState.load.fn(state))
    assert state.unavailable and state.loaded
    assert state.status_line == ""


def test_logout_forgets_the_user_but_keeps_the_language(root: rx.State, fake: FakeServices) -> None:
    session = substate(root, SessionState)
    session._remember(RADIOLOGIST)
    session.lang = "en"
    page = substate(root, HomeState)
    page.orders_today = 9
    assert redirect_target(SessionState.logout.fn(session)) == routes.LOGIN
    assert session.user_id == 0 and session.display_name == "" and not session.signed_in
    assert page.orders_today == 0
    assert session.lang == "en"
    assert fake.calls[-1] == {"sign_out": "2", "idle": "False"}


@pytest.fixture
def real_services(demo_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HUREN_DATA_DIR", str(demo_data_dir))
    monkeypatch.delenv("HUREN_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUREN_ENV", raising=False)
    portal_services.cache_clear()
    yield
    portal_services().database.dispose()
    portal_services.cache_clear()


@pytest.mark.slow
@pytest.mark.usefixtures("real_services")
def test_attempt_login_against_the_seeded_hub() -> None:
    signed_in = attempt_login("radiologist", "huren-demo", source_address="127.0.0.1")
    assert signed_in.user is not None and signed_in.user.role is Role.radiologist
    wrong_password = attempt_login("auditor", "not-the-password")
    unknown_user = attempt_login("nobody-here", "huren-demo")
    assert wrong_password.errors == unknown_user.errors
    assert [e.key for e in wrong_password.errors] == ["err_invalid"]
    overview = home.load_overview(signed_in.user.facility_id)
    assert overview.facility_name
