"""Passwords and logins: argon2 hashes, lockout after repeated failures, demo accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from integration.settings import Settings
from models import AuditEvent, User
from models.enums import AuditAction, AuditOutcome, ProfessionalTitle, Role
from models.errors import AuthenticationError

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class LoginRefusal(StrEnum):
    """Why a login failed; the portal words each one, never revealing which part was wrong."""

    invalid = "invalid"
    locked = "locked"
    inactive = "inactive"
    demo_refused = "demo_refused"


class LoginFailed(AuthenticationError):
    def __init__(self, refusal: LoginRefusal, *, locked_until: datetime | None = None) -> None:
        super().__init__(f"login refused: {refusal.value}")
        self.refusal = refusal
        self.locked_until = locked_until


@dataclass(frozen=True)
class SignedInUser:
    """What the portal may keep about the person behind a session."""

    id: int
    username: str
    display_name: str
    role: Role
    title: ProfessionalTitle
    facility_id: int


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    settings: Settings,
    now: datetime,
    source_address: str = "",
) -> SignedInUser:
    """Check a username and password, count failures, and record the attempt.

    The caller commits; a failed attempt still writes its audit event and
    failure count, so the caller must commit before re-raising.
    """
    user = session.exec(select(User).where(User.username == username.strip())).first()

    def record(ok: bool, detail: str) -> None:
        _record(
            session,
            actor=user.username if user else username.strip()[:128],
            user=user,
            ok=ok,
            now=now,
            source_address=source_address,
            detail=detail,
        )

    if user is None or user.id is None:
        record(False, "unknown user")
        raise LoginFailed(LoginRefusal.invalid)
    if user.is_demo and not settings.demo_accounts_allowed:
        record(False, "demo account refused in production")
        raise LoginFailed(LoginRefusal.demo_refused)
    if not user.active:
        record(False, "inactive account")
        raise LoginFailed(LoginRefusal.inactive)
    if user.locked_until is not None and user.locked_until > now:
        record(False, "locked")
        raise LoginFailed(LoginRefusal.locked, locked_until=user.locked_until)
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.add(user)
        record(False, "wrong password")
        if user.locked_until is not None and user.locked_until > now:
            raise LoginFailed(LoginRefusal.locked, locked_until=user.locked_until)
        raise LoginFailed(LoginRefusal.invalid)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    record(True, "")
    return SignedInUser(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        title=user.title,
        facility_id=user.facility_id,
    )


def _record(
    session: Session,
    *,
    actor: str,
    user: User | None,
    ok: bool,
    now: datetime,
    source_address: str,
    detail: str,
) -> None:
    session.add(
        AuditEvent(
            recorded_at=now,
            action=AuditAction.login if ok else AuditAction.login_failed,
            outcome=AuditOutcome.success if ok else AuditOutcome.failure,
            actor=actor or "?",
            actor_user_id=user.id if user else None,
            facility_id=user.facility_id if user else None,
            source_address=source_address[:64],
            entity_type="User",
            entity_id=str(user.id) if user else "",
            detail=detail,
        )
    )
