"""The audit-trail page's state against the real services on a seeded demo copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import reflex as rx
from reflex.event import EventSpec
from sqlmodel import Session, select

import portal.portal  # noqa: F401  (registers the pages, as the running app does)
from integration.accounts import LoginFailed
from integration.database import Database
from integration.services import PortalServices
from integration.settings import Settings
from models import AuditEvent
from models.enums import AuditAction
from portal import routes
from portal.pages import audit_trail
from portal.pages.audit_trail import AuditTrailState, parse_filters
from tests.portal.test_admin_states import signed_in
from tests.portal.test_states import collect, redirect_target, substate

PASSWORD = "huren-demo"


@pytest.fixture
def services(
    demo_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PortalServices]:
    shutil.copy(demo_data_dir / "huren.db", tmp_path / "huren.db")
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    made = PortalServices(settings=settings, database=Database.from_settings(settings))
    from portal import auth

    for module in (auth, audit_trail):
        monkeypatch.setattr(module, "portal_services", lambda: made)
    for username in ("admin", "radiologist", "auditor", "qc"):
        made.sign_in(username=username, password=PASSWORD, source_address="10.0.0.9")
    with pytest.raises(LoginFailed):
        made.sign_in(username="radiologist", password="wrong", source_address="10.0.0.66")
    yield made
    made.database.dispose()


@pytest.fixture
def root() -> rx.State:
    return rx.State(_reflex_internal_init=True)


def test_the_filter_form_is_checked_before_any_search() -> None:
    kept, field, key = parse_filters({"since": "2026-11-12", "until": "2026-11-01"})
    assert (field, key) == ("since", "trail_err_dates") and kept["since"] == "2026-11-12"
    assert parse_filters({"until": "11/12/2026"})[1:] == ("until", "trail_err_date")
    assert parse_filters({"action": "drop table", "person": "  qc "})[0]["action"] == ""
    assert parse_filters({"person": "  qc "})[0]["person"] == "qc"


def test_a_radiologist_is_sent_home(root: rx.State, services: PortalServices) -> None:
    signed_in(root, services, "radiologist")
    state = substate(root, AuditTrailState)
    out = collect(AuditTrailState.load.fn(state))  # type: ignore[attr-defined]
    assert [redirect_target(item) for item in out] == [routes.HOME]
    assert not state.allowed and state.rows == []


def test_admin_searches_pages_and_exports(root: rx.State, services: PortalServices) -> None:
    signed_in(root, services, "admin")
    state = substate(root, AuditTrailState)
    collect(AuditTrailState.load.fn(state))  # type: ignore[attr-defined]
    assert state.allowed and state.total >= 5
    assert {row["actor"] for row in state.rows} >= {"admin", "radiologist", "qc"}

    collect(AuditTrailState.run_search.fn(state, {"since": "2026-13-01"}))  # type: ignore[attr-defined]
    assert state.error_for == "since" and state.error == "请输入有效日期（YYYY-MM-DD）。"

    collect(AuditTrailState.run_search.fn(state, {"person": "radiologist"}))  # type: ignore[attr-defined]
    assert state.error_key == "" and {row["actor"] for row in state.rows} == {"radiologist"}
    collect(AuditTrailState.set_action.fn(state, "login_failed"))  # type: ignore[attr-defined]
    assert [row["source"] for row in state.rows] == ["10.0.0.66"]
    assert state.rows[0]["failed"] and state.rows[0]["action_key"] == "trail_action_login_failed"
    assert state.action_choice == "login_failed"

    out = collect(AuditTrailState.export.fn(state))  # type: ignore[attr-defined]
    downloads = [item for item in out if isinstance(item, EventSpec)]
    assert len(downloads) == 1 and state.notice.endswith("1")
    with Session(services.database.engine) as session:
        exported = session.exec(
            select(AuditEvent).where(AuditEvent.action == AuditAction.export)
        ).one()
    assert exported.actor == "admin"
    assert json.loads(exported.detail) == {
        "events": 1,
        "truncated": False,
        "person": "radiologist",
        "action": "login_failed",
    }
