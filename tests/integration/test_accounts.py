from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from integration.accounts import (
    MAX_FAILED_LOGINS,
    LoginFailed,
    LoginRefusal,
    authenticate,
    hash_password,
)
from integration.settings import Settings
from models import AuditEvent, Facility, User
from models.enums import AuditAction, FacilityKind, FacilityLevel, ProfessionalTitle, Role
from models.migrate import upgrade

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@pytest.fixture
def session(database_engine: Engine) -> Iterator[Session]:
    upgrade(database_engine)
    with Session(database_engine) as session:
        facility = Facility(
            code="H01", name="县医院", level=FacilityLevel.county, kind=FacilityKind.hospital
        )
        session.add(facility)
        session.flush()
        assert facility.id is not None
        session.add(
            User(
                username="radiologist",
                display_name="王医生",
                role=Role.radiologist,
                title=ProfessionalTitle.resident,
                facility_id=facility.id,
                password_hash=hash_password("huren-demo"),
                is_demo=True,
            )
        )
        session.commit()
        yield session


def _login(
    session: Session, password: str, *, now: datetime = NOW, settings: Settings | None = None
) -> None:
    authenticate(
        session,
        username="radiologist",
        password=password,
        settings=settings or Settings(),
        now=now,
        source_address="127.0.0.1",
    )
    session.commit()


def test_right_password_signs_in_and_is_audited(session: Session) -> None:
    user = authenticate(
        session,
        username=" radiologist ",
        password="huren-demo",
        settings=Settings(),
        now=NOW,
        source_address="127.0.0.1",
    )
    session.commit()
    assert (user.username, user.role, user.display_name) == (
        "radiologist",
        Role.radiologist,
        "王医生",
    )
    event = session.exec(select(AuditEvent)).one()
    assert (event.action, event.actor, event.source_address) == (
        AuditAction.login,
        "radiologist",
        "127.0.0.1",
    )
    stored = session.exec(select(User)).one()
    assert stored.last_login_at == NOW


def test_wrong_password_and_unknown_user_look_the_same(session: Session) -> None:
    with pytest.raises(LoginFailed) as wrong:
        _login(session, "nope")
    with pytest.raises(LoginFailed) as unknown:
        authenticate(session, username="nobody", password="x", settings=Settings(), now=NOW)
    assert wrong.value.refusal is unknown.value.refusal is LoginRefusal.invalid
    assert str(wrong.value) == str(unknown.value)


def test_repeated_failures_lock_the_account_for_a_while(session: Session) -> None:
    for attempt in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(LoginFailed) as failure:
            _login(session, f"wrong{attempt}")
        session.commit()
        assert failure.value.refusal is LoginRefusal.invalid
    with pytest.raises(LoginFailed) as locked:
        _login(session, "wrong-last")
    session.commit()
    assert locked.value.refusal is LoginRefusal.locked
    with pytest.raises(LoginFailed) as still_locked:
        _login(session, "huren-demo", now=NOW + timedelta(minutes=5))
    assert still_locked.value.refusal is LoginRefusal.locked
    _login(session, "huren-demo", now=NOW + timedelta(minutes=16))
    failures = session.exec(
        select(AuditEvent).where(AuditEvent.action == AuditAction.login_failed)
    ).all()
    assert len(failures) == MAX_FAILED_LOGINS + 1


def test_demo_accounts_are_refused_in_production(session: Session) -> None:
    production = Settings(env="production", secret_key="s" * 40)  # type: ignore[arg-type]
    with pytest.raises(LoginFailed) as refused:
        _login(session, "huren-demo", settings=production)
    assert refused.value.refusal is LoginRefusal.demo_refused


def test_inactive_accounts_cannot_sign_in(session: Session) -> None:
    user = session.exec(select(User)).one()
    user.active = False
    session.add(user)
    session.commit()
    with pytest.raises(LoginFailed) as refused:
        _login(session, "huren-demo")
    assert refused.value.refusal is LoginRefusal.inactive
