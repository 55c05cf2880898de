"""Administration: the people who sign in, the facilities of the region, the exam catalogue.

An administrator manages the users and facilities of their own facility's part
of the region tree (their facility and everything under it by ``parent_id``:
a county bureau's administrator runs the county); the exam catalogue is one
for the whole hub. Every function takes the acting user as an `Actor`, checks
the action with `permissions.require` and the facility next to the rows it
touches, and writes an audit row naming what changed (never a password).

Form values arrive as the text the administrator typed; they are parsed here so
that every refusal carries the form field it is about (``HurenError.field``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, or_
from sqlalchemy import select as select_rows
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from hl7.er7 import codec_for
from integration.accounts import hash_password, verify_password
from integration.permissions import Action, Actor, require
from integration.reading_desk import record_view
from integration.settings import Settings, check_ae_title
from models import ExamType, Facility, FacilityAeTitle, QcQualification, User
from models.enums import (
    AUDITOR_TITLES,
    AuditAction,
    FacilityKind,
    FacilityLevel,
    Modality,
    ProfessionalTitle,
    Role,
)
from models.errors import Conflict, NotFound, PermissionDenied, ValidationError

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128
MAX_PAGE_SIZE = 100
MAX_FEE = Decimal("100000.00")  # yuan; far above any single exam's fee
MAX_VALIDITY_DAYS = 3650
# MSH-18 values a clinic's ORU may be sent in: the ones that carry Chinese names.
HL7_CHARSETS: tuple[str, ...] = ("UNICODE UTF-8", "GB 18030", "GBK")
# Kinds that never read images, so cannot be anyone's reading centre.
_NEVER_READS = frozenset({FacilityKind.bureau, FacilityKind.platform, FacilityKind.clinic})
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


# --------------------------------------------------------------------------- shared


def _pages(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


def _like(term: str) -> str:
    """A LIKE pattern that finds ``term`` anywhere, with LIKE's own wildcards taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _count(session: Session, statement: Select[*tuple[Any, ...]]) -> int:
    return int(
        session.execute(select_rows(func.count()).select_from(statement.subquery())).scalar_one()
    )


def _scope_ids(actor: Actor) -> Select[Any]:
    """Ids of the actor's facility and every facility under it (a recursive query)."""
    tree = (
        select_rows(col(Facility.id).label("id"))
        .where(col(Facility.id) == actor.facility_id)
        .cte("admin_scope", recursive=True)
    )
    child = aliased(Facility)
    tree = tree.union_all(select_rows(col(child.id)).where(col(child.parent_id) == tree.c.id))
    return select_rows(tree.c.id)


def _in_scope(session: Session, actor: Actor, facility_id: int) -> bool:
    return (
        session.execute(
            select_rows(col(Facility.id))
            .where(col(Facility.id) == facility_id)
            .where(col(Facility.id).in_(_scope_ids(actor)))
        ).first()
        is not None
    )


def _facility_in_scope(session: Session, actor: Actor, facility_id: int) -> Facility:
    facility = session.get(Facility, facility_id)
    if facility is None or facility.id is None:
        raise NotFound(f"facility {facility_id} does not exist", field="facility_id")
    if not _in_scope(session, actor, facility.id):
        raise PermissionDenied(f"facility {facility.code} is outside {actor.username}'s region")
    return facility


def _audit(
    session: Session,
    *,
    actor: Actor,
    action: AuditAction,
    entity_type: str,
    entity_id: int,
    detail: str,
    now: datetime,
    source_address: str,
) -> None:
    record_view(
        session,
        actor=actor,
        entity_type=entity_type,
        entity_id=entity_id,
        patient_id=None,
        now=now,
        source_address=source_address,
        action=action,
        detail=detail,
    )


def _changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """'field: old -> new' for every value that differs, in the order given."""
    return [
        f"{name}: {_shown(before[name])} -> {_shown(value)}"
        for name, value in after.items()
        if before[name] != value
    ]


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


def _text(value: str, *, field: str, limit: int, required: bool = True) -> str:
    cleaned = " ".join(value.split())
    if required and not cleaned:
        raise ValidationError(f"{field} is required", field=field)
    if len(cleaned) > limit:
        raise ValidationError(f"{field} has more than {limit} characters", field=field)
    return cleaned


def parse_day(value: str | date | None, *, field: str, required: bool) -> date | None:
    """An ISO date (YYYY-MM-DD, as a date input sends it); empty only when not required."""
    if isinstance(value, date):
        return value
    text = (value or "").strip()
    if not text:
        if required:
            raise ValidationError(f"{field} is required", field=field)
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not a date", field=field) from None


def parse_port(value: str | int | None, *, field: str) -> int | None:
    """A TCP port 1-65535; empty means none."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValidationError(f"{field}: a port is a whole number 1-65535", field=field)
    return int(text)


def check_host(value: str, *, field: str) -> str:
    """A host name (RFC 1123) or an IPv4/IPv6 address."""
    host = value.strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if (
        not host
        or len(host) > 253
        or not all(_HOST_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError(f"{field}: {host!r} is not a host name or IP address", field=field)
    return host.rstrip(".").lower()


def parse_fee(value: str, *, field: str = "fee") -> int:
    """Yuan with at most two decimals (``12``, ``12.5``, ``12.50``) as fen."""
    text = value.strip().replace(",", "").removeprefix("¥").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValidationError(f"{field}: {value!r} is not an amount", field=field) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_FEE:
        raise ValidationError(f"{field}: must be between 0 and {MAX_FEE} yuan", field=field)
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationError(f"{field}: at most 2 decimals (fen)", field=field)
    return int(amount * 100)


def fen_to_yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


# --------------------------------------------------------------------------- users


class UserSort(StrEnum):
    username = "username"
    display_name = "display_name"
    role = "role"
    facility = "facility"
    last_login = "last_login"


class UserStatus(StrEnum):
    any = "any"
    active = "active"
    inactive = "inactive"
    locked = "locked"


@dataclass(frozen=True)
class UserQuery:
    text: str = ""  # part of the username or the display name
    role: str = ""  # a Role value, "" for all
    facility_id: int | None = None
    status: UserStatus = UserStatus.any
    sort: UserSort = UserSort.username
    descending: bool = False
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class UserRow:
    user_id: int
    username: str
    display_name: str
    role: Role
    title: ProfessionalTitle
    facility_id: int
    facility_code: str
    facility_name: str
    facility_name_en: str
    active: bool
    locked_until: datetime | None  # only while the lock lasts
    last_login_at: datetime | None
    is_demo: bool


@dataclass(frozen=True)
class UserPage:
    rows: tuple[UserRow, ...]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class FacilityChoice:
    facility_id: int
    code: str
    name: str
    name_en: str


@dataclass(frozen=True)
class NewUser:
    username: str
    display_name: str
    role: str
    title: str
    facility_id: int | None
    password: str


@dataclass(frozen=True)
class UserChange:
    display_name: str
    role: str
    title: str
    facility_id: int | None
    active: bool


def _user_row(user: User, facility: Facility, now: datetime) -> UserRow:
    assert user.id is not None
    locked = user.locked_until if user.locked_until and user.locked_until > now else None
    return UserRow(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        title=user.title,
        facility_id=user.facility_id,
        facility_code=facility.code,
        facility_name=facility.name,
        facility_name_en=facility.name_en,
        active=user.active,
        locked_until=locked,
        last_login_at=user.last_login_at,
        is_demo=user.is_demo,
    )


def list_users(session: Session, *, actor: Actor, query: UserQuery, now: datetime) -> UserPage:
    """One page of the users at the actor's facilities, filtered and sorted on the server."""
    require(actor, Action.manage_users)
    page_size = min(max(query.page_size, 1), MAX_PAGE_SIZE)
    statement = (
        select_rows(User, Facility)
        .join(Facility, col(Facility.id) == User.facility_id)
        .where(col(User.facility_id).in_(_scope_ids(actor)))
    )
    term = query.text.strip()
    if term:
        pattern = _like(term)
        statement = statement.where(
            or_(
                col(User.username).ilike(pattern, escape="\\"),
                col(User.display_name).ilike(pattern, escape="\\"),
            )
        )
    if query.role:
        try:
            statement = statement.where(col(User.role) == Role(query.role))
        except ValueError:
            raise ValidationError(f"unknown role {query.role!r}", field="role") from None
    if query.facility_id:
        statement = statement.where(col(User.facility_id) == query.facility_id)
    if query.status is UserStatus.active:
        statement = statement.where(col(User.active).is_(True))
    elif query.status is UserStatus.inactive:
        statement = statement.where(col(User.active).is_(False))
    elif query.status is UserStatus.locked:
        statement = statement.where(col(User.locked_until) > now)
    total = _count(session, statement)
    pages = _pages(total, page_size)
    page = min(max(query.page, 1), pages)
    key = {
        UserSort.username: col(User.username),
        UserSort.display_name: col(User.display_name),
        UserSort.role: col(User.role),
        UserSort.facility: col(Facility.code),
        UserSort.last_login: col(User.last_login_at),
    }[query.sort]
    ordered = key.desc() if query.descending else key.asc()
    if query.sort is UserSort.last_login:  # never signed in: last either way
        ordered = ordered.nulls_last()
    items = session.execute(
        statement.order_by(ordered, col(User.id)).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return UserPage(
        rows=tuple(_user_row(user, facility, now) for user, facility in items),
        total=total,
        page=page,
        pages=pages,
    )


def facility_choices(session: Session, *, actor: Actor) -> tuple[FacilityChoice, ...]:
    """The active facilities a user of this administrator may be placed at, by code."""
    require(actor, Action.manage_users)
    rows = session.exec(
        select(Facility)
        .where(col(Facility.id).in_(_scope_ids(actor)), col(Facility.active).is_(True))
        .order_by(col(Facility.code))
    ).all()
    return tuple(
        FacilityChoice(facility_id=int(f.id or 0), code=f.code, name=f.name, name_en=f.name_en)
        for f in rows
    )


def user_detail(session: Session, *, actor: Actor, user_id: int, now: datetime) -> UserRow:
    require(actor, Action.manage_users)
    user = _user_in_scope(session, actor, user_id)
    facility = session.get(Facility, user.facility_id)
    assert facility is not None
    return _user_row(user, facility, now)


def _user_in_scope(session: Session, actor: Actor, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.id is None:
        raise NotFound(f"user {user_id} does not exist")
    if not _in_scope(session, actor, user.facility_id):
        raise PermissionDenied(f"user {user.username} works outside {actor.username}'s region")
    return user


def _role_and_title(role: str, title: str) -> tuple[Role, ProfessionalTitle]:
    try:
        chosen_role = Role(role)
    except ValueError:
        raise ValidationError(f"unknown role {role!r}", field="role") from None
    try:
        chosen_title = ProfessionalTitle(title or ProfessionalTitle.none.value)
    except ValueError:
        raise ValidationError(f"unknown title {title!r}", field="title") from None
    # The database refuses this too (CHECK auditor_title); say it at the field first.
    if chosen_role is Role.auditor and chosen_title not in AUDITOR_TITLES:
        raise ValidationError("an auditor holds attending title or above", field="title")
    return chosen_role, chosen_title


def _placement(session: Session, actor: Actor, facility_id: int | None) -> Facility:
    if not facility_id:
        raise ValidationError("choose the user's facility", field="facility_id")
    facility = session.get(Facility, facility_id)
    if facility is None or facility.id is None or not facility.active:
        raise ValidationError(f"facility {facility_id} does not exist", field="facility_id")
    if not _in_scope(session, actor, facility.id):
        raise ValidationError(f"{facility.code} is outside your region", field="facility_id")
    return facility


def check_password(password: str, *, username: str, settings: Settings) -> str:
    """A new password: long enough, not the username, not the published demo password."""
    if len(password) < PASSWORD_MIN_LENGTH or not password.strip():
        raise ValidationError(
            f"a password has at least {PASSWORD_MIN_LENGTH} characters", field="password"
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValidationError(
            f"a password has at most {PASSWORD_MAX_LENGTH} characters", field="password"
        )
    if password.strip().lower() == username.strip().lower():
        raise ValidationError("the password must differ from the username", field="password")
    if password == settings.demo_password.get_secret_value():
        raise ValidationError("the demo password is public; choose another", field="password")
    return password


def _username_taken(session: Session, username: str, *, other_than: int | None = None) -> bool:
    statement = select(User.id).where(func.lower(User.username) == username.lower())
    if other_than is not None:
        statement = statement.where(col(User.id) != other_than)
    return session.exec(statement).first() is not None


def create_user(
    session: Session,
    *,
    actor: Actor,
    new: NewUser,
    settings: Settings,
    now: datetime,
    source_address: str = "",
) -> int:
    """A new account at one of the actor's facilities; returns its id.

    Fields are checked in the order the form shows them, so the first wrong one
    is named.
    """
    require(actor, Action.manage_users)
    username = new.username.strip()
    if not username:
        raise ValidationError("username is required", field="username")
    if not _USERNAME.match(username):
        raise ValidationError(
            "a username has 3-64 letters, digits, dots, hyphens or underscores", field="username"
        )
    if _username_taken(session, username):
        raise Conflict(f"the username {username} is taken", field="username")
    display_name = _text(new.display_name, field="display_name", limit=64)
    role, title = _role_and_title(new.role, new.title)
    facility = _placement(session, actor, new.facility_id)
    password = check_password(new.password, username=username, settings=settings)
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        title=title,
        facility_id=int(facility.id or 0),
        password_hash=hash_password(password),
        created_at=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # someone took the name a moment ago
        raise Conflict(f"the username {username} is taken", field="username") from None
    assert user.id is not None
    _audit(
        session,
        actor=actor,
        action=AuditAction.create,
        entity_type="User",
        entity_id=user.id,
        detail=(
            f"created {username}: role {role.value}, title {title.value}, facility {facility.code}"
        ),
        now=now,
        source_address=source_address,
    )
    return user.id


def update_user(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    change: UserChange,
    now: datetime,
    source_address: str = "",
) -> tuple[str, ...]:
    """Change name, role, title, facility or active; returns what changed ("" audit if nothing)."""
    require(actor, Action.manage_users)
    user = _user_in_scope(session, actor, user_id)
    display_name = _text(change.display_name, field="display_name", limit=64)
    role, title = _role_and_title(change.role, change.title)
    facility = _placement(session, actor, change.facility_id)
    if user.id == actor.user_id:
        # An administrator cannot lock themself out (and so leave nobody to manage users).
        if not change.active:
            raise ValidationError("you cannot deactivate your own account", field="active")
        if role is not user.role:
            raise ValidationError("you cannot change your own role", field="role")
    before: dict[str, object] = {
        "display_name": user.display_name,
        "role": user.role,
        "title": user.title,
        "facility_id": user.facility_id,
        "active": user.active,
    }
    after: dict[str, object] = {
        "display_name": display_name,
        "role": role,
        "title": title,
        "facility_id": int(facility.id or 0),
        "active": change.active,
    }
    changes = _changes(before, after)
    if not changes:
        return ()
    user.display_name, user.role, user.title = display_name, role, title
    user.facility_id, user.active = int(facility.id or 0), change.active
    session.add(user)
    session.flush()
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="User",
        entity_id=int(user.id or 0),
        detail=f"{user.username}: " + "; ".join(changes),
        now=now,
        source_address=source_address,
    )
    return tuple(name for name in after if before[name] != after[name])


def reset_password(
    session: Session,
    *,
    actor: Actor,
    user_id: int,
    password: str,
    settings: Settings,
    now: datetime,
    source_address: str = "",
) -> None:
    """Set a new password (told to the user in person) and lift any lockout with it."""
    require(actor, Action.manage_users)
    user = _user_in_scope(session, actor, user_id)
    check_password(password, username=user.username, settings=settings)
    if verify_password(user.password_hash, password):
        raise ValidationError("the new password is the current one", field="password")
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="User",
        entity_id=int(user.id or 0),
        detail=f"{user.username}: password reset",
        now=now,
        source_address=source_address,
    )


def unlock_user(
    session: Session, *, actor: Actor, user_id: int, now: datetime, source_address: str = ""
) -> bool:
    """Lift a lockout after failed sign-ins; False when there was nothing to lift."""
    require(actor, Action.manage_users)
    user = _user_in_scope(session, actor, user_id)
    if user.locked_until is None and user.failed_logins == 0:
        return False
    detail = f"{user.username}: unlocked (failed logins {user.failed_logins})"
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="User",
        entity_id=int(user.id or 0),
        detail=detail,
        now=now,
        source_address=source_address,
    )
    return True


# --------------------------------------------------------------------------- facilities


class FacilitySort(StrEnum):
    code = "code"
    name = "name"
    level = "level"


@dataclass(frozen=True)
class FacilityQuery:
    text: str = ""  # part of the code or either name
    level: str = ""  # a FacilityLevel value, "" for all
    reading_centres_only: bool = False
    sort: FacilitySort = FacilitySort.code
    descending: bool = False
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class FacilityRow:
    facility_id: int
    code: str
    name: str
    name_en: str
    level: FacilityLevel
    kind: FacilityKind
    is_reading_centre: bool
    reading_centre_id: int | None
    reading_centre_code: str
    reading_centre_name: str
    reading_centre_name_en: str
    hl7_host: str
    hl7_port: int | None
    hl7_charset: str
    qc_qualified_today: bool
    ae_titles: tuple[str, ...]
    active: bool


@dataclass(frozen=True)
class FacilityPage:
    rows: tuple[FacilityRow, ...]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class QcPeriod:
    qc_id: int
    valid_from: date
    valid_until: date | None
    certificate: str
    current: bool  # holds on the day asked about


@dataclass(frozen=True)
class AeTitleRow:
    ae_title_id: int
    ae_title: str
    modality: str
    station_name: str
    host: str
    port: int | None


@dataclass(frozen=True)
class FacilityDetail:
    facility: FacilityRow
    qc_periods: tuple[QcPeriod, ...]  # newest first
    ae_titles: tuple[AeTitleRow, ...]
    centre_choices: tuple[FacilityChoice, ...]  # every active reading centre of the hub
    uploaders: int  # other facilities that name this one as their reading centre


def _qualified_ids(session: Session, facility_ids: Sequence[int], today: date) -> set[int]:
    if not facility_ids:
        return set()
    rows = session.exec(
        select(QcQualification.facility_id).where(
            col(QcQualification.facility_id).in_(facility_ids),
            col(QcQualification.valid_from) <= today,
            or_(
                col(QcQualification.valid_until).is_(None),
                col(QcQualification.valid_until) >= today,
            ),
        )
    ).all()
    return set(rows)


def _ae_titles_of(session: Session, facility_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if not facility_ids:
        return found
    for facility_id, title in session.exec(
        select(FacilityAeTitle.facility_id, FacilityAeTitle.ae_title)
        .where(col(FacilityAeTitle.facility_id).in_(facility_ids))
        .order_by(col(FacilityAeTitle.ae_title))
    ).all():
        found.setdefault(facility_id, []).append(title)
    return found


def _facility_rows(
    session: Session, items: Sequence[tuple[Facility, Facility | None]], today: date
) -> tuple[FacilityRow, ...]:
    ids = [int(f.id or 0) for f, _ in items]
    qualified = _qualified_ids(session, ids, today)
    titles = _ae_titles_of(session, ids)
    return tuple(
        FacilityRow(
            facility_id=int(f.id or 0),
            code=f.code,
            name=f.name,
            name_en=f.name_en,
            level=f.level,
            kind=f.kind,
            is_reading_centre=f.is_reading_centre,
            reading_centre_id=f.reading_centre_id,
            reading_centre_code=centre.code if centre else "",
            reading_centre_name=centre.name if centre else "",
            reading_centre_name_en=centre.name_en if centre else "",
            hl7_host=f.hl7_host or "",
            hl7_port=f.hl7_port,
            hl7_charset=f.hl7_charset,
            qc_qualified_today=int(f.id or 0) in qualified,
            ae_titles=tuple(titles.get(int(f.id or 0), ())),
            active=f.active,
        )
        for f, centre in items
    )


def list_facilities(
    session: Session, *, actor: Actor, query: FacilityQuery, today: date
) -> FacilityPage:
    """One page of the actor's facilities with routing, HL7, QC status today and AE titles."""
    require(actor, Action.manage_facilities)
    page_size = min(max(query.page_size, 1), MAX_PAGE_SIZE)
    centre = aliased(Facility)
    statement = (
        select_rows(Facility, centre)
        .outerjoin(centre, col(centre.id) == Facility.reading_centre_id)
        .where(col(Facility.id).in_(_scope_ids(actor)))
    )
    term = query.text.strip()
    if term:
        pattern = _like(term)
        statement = statement.where(
            or_(
                col(Facility.code).ilike(pattern, escape="\\"),
                col(Facility.name).ilike(pattern, escape="\\"),
                col(Facility.name_en).ilike(pattern, escape="\\"),
            )
        )
    if query.level:
        try:
            statement = statement.where(col(Facility.level) == FacilityLevel(query.level))
        except ValueError:
            raise ValidationError(f"unknown level {query.level!r}", field="level") from None
    if query.reading_centres_only:
        statement = statement.where(col(Facility.is_reading_centre).is_(True))
    total = _count(session, statement)
    pages = _pages(total, page_size)
    page = min(max(query.page, 1), pages)
    key = {
        FacilitySort.code: col(Facility.code),
        FacilitySort.name: col(Facility.name),
        FacilitySort.level: col(Facility.level),
    }[query.sort]
    items = session.execute(
        statement.order_by(key.desc() if query.descending else key.asc(), col(Facility.code))
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return FacilityPage(
        rows=_facility_rows(session, [(f, c) for f, c in items], today),
        total=total,
        page=page,
        pages=pages,
    )


def facility_detail(
    session: Session, *, actor: Actor, facility_id: int, today: date
) -> FacilityDetail:
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    centre = (
        session.get(Facility, facility.reading_centre_id) if facility.reading_centre_id else None
    )
    periods = session.exec(
        select(QcQualification)
        .where(QcQualification.facility_id == facility.id)
        .order_by(col(QcQualification.valid_from).desc())
    ).all()
    titles = session.exec(
        select(FacilityAeTitle)
        .where(FacilityAeTitle.facility_id == facility.id)
        .order_by(col(FacilityAeTitle.ae_title))
    ).all()
    centres = session.exec(
        select(Facility)
        .where(col(Facility.is_reading_centre).is_(True), col(Facility.active).is_(True))
        .order_by(col(Facility.code))
    ).all()
    return FacilityDetail(
        facility=_facility_rows(session, [(facility, centre)], today)[0],
        qc_periods=tuple(
            QcPeriod(
                qc_id=int(p.id or 0),
                valid_from=p.valid_from,
                valid_until=p.valid_until,
                certificate=p.certificate,
                current=p.valid_from <= today and (p.valid_until is None or p.valid_until >= today),
            )
            for p in periods
        ),
        ae_titles=tuple(
            AeTitleRow(
                ae_title_id=int(t.id or 0),
                ae_title=t.ae_title,
                modality=t.modality,
                station_name=t.station_name,
                host=t.host or "",
                port=t.port,
            )
            for t in titles
        ),
        centre_choices=tuple(
            FacilityChoice(facility_id=int(c.id or 0), code=c.code, name=c.name, name_en=c.name_en)
            for c in centres
        ),
        uploaders=_uploaders(session, int(facility.id or 0)),
    )


def _uploaders(session: Session, facility_id: int) -> int:
    return int(
        session.execute(
            select_rows(func.count())
            .select_from(Facility)
            .where(col(Facility.reading_centre_id) == facility_id, col(Facility.id) != facility_id)
        ).scalar_one()
    )


def _facility_changed(
    session: Session,
    *,
    actor: Actor,
    facility: Facility,
    changes: list[str],
    now: datetime,
    source_address: str,
) -> None:
    session.add(facility)
    session.flush()
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="Facility",
        entity_id=int(facility.id or 0),
        detail=f"{facility.code}: " + "; ".join(changes),
        now=now,
        source_address=source_address,
    )


def set_reading_centre(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    reading_centre_id: int | None,
    now: datetime,
    source_address: str = "",
) -> bool:
    """Where the facility's studies are read; None: nowhere (a bureau, a village clinic).

    The centre must be an active reading centre; a facility names itself only
    when it is a reading centre reading its own studies (as the county hospitals do).
    """
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    if reading_centre_id:
        centre = session.get(Facility, reading_centre_id)
        if centre is None or not centre.active:
            raise ValidationError(
                f"facility {reading_centre_id} does not exist", field="reading_centre_id"
            )
        if not centre.is_reading_centre:
            raise ValidationError(
                f"{centre.code} is not a reading centre", field="reading_centre_id"
            )
        if centre.id == facility.id and not facility.is_reading_centre:
            raise ValidationError(
                "a facility cannot be its own reading centre", field="reading_centre_id"
            )
    new_id = reading_centre_id or None
    if new_id == facility.reading_centre_id:
        return False
    old_code = _code_of(session, facility.reading_centre_id)
    facility.reading_centre_id = new_id
    _facility_changed(
        session,
        actor=actor,
        facility=facility,
        changes=[f"reading centre: {old_code} -> {_code_of(session, new_id)}"],
        now=now,
        source_address=source_address,
    )
    return True


def _code_of(session: Session, facility_id: int | None) -> str:
    if facility_id is None:
        return "-"
    found = session.get(Facility, facility_id)
    return found.code if found else str(facility_id)


def set_reading_centre_flag(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    is_reading_centre: bool,
    now: datetime,
    source_address: str = "",
) -> bool:
    """Make a facility a reading centre, or stop it being one once nobody uploads to it."""
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    if is_reading_centre == facility.is_reading_centre:
        return False
    changes = [f"reading centre flag: {facility.is_reading_centre} -> {is_reading_centre}"]
    if is_reading_centre:
        if facility.kind in _NEVER_READS:
            raise ValidationError(
                f"a {facility.kind.value} does not read images", field="is_reading_centre"
            )
    else:
        uploaders = _uploaders(session, int(facility.id or 0))
        if uploaders:
            raise Conflict(
                f"{uploaders} facilities still upload to {facility.code}; move them first",
                field="is_reading_centre",
            )
        if facility.reading_centre_id == facility.id:
            facility.reading_centre_id = None
            changes.append(f"reading centre: {facility.code} -> -")
    facility.is_reading_centre = is_reading_centre
    _facility_changed(
        session,
        actor=actor,
        facility=facility,
        changes=changes,
        now=now,
        source_address=source_address,
    )
    return True


def set_routing(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    is_reading_centre: bool,
    reading_centre_id: int | None,
    now: datetime,
    source_address: str = "",
) -> bool:
    """The routing form in one transaction: the flag and the centre, in the order that works.

    A facility becoming a reading centre is flagged first so it may name itself;
    one stopping is flagged last, after its own route has moved.
    """
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    was_centre = facility.is_reading_centre
    common: dict[str, Any] = {
        "actor": actor,
        "facility_id": facility_id,
        "now": now,
        "source_address": source_address,
    }
    changed = False
    if is_reading_centre and not was_centre:
        changed |= set_reading_centre_flag(session, is_reading_centre=True, **common)
    changed |= set_reading_centre(session, reading_centre_id=reading_centre_id, **common)
    if was_centre and not is_reading_centre:
        changed |= set_reading_centre_flag(session, is_reading_centre=False, **common)
    return changed


def set_hl7_endpoint(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    host: str,
    port: str | int | None,
    charset: str,
    now: datetime,
    source_address: str = "",
) -> bool:
    """Where finished reports go back as ORU^R01 (MLLP), and in which MSH-18 charset.

    Host and port together, or both empty for a facility that takes no reports by HL7.
    """
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    new_host = check_host(host, field="hl7_host") if host.strip() else None
    new_port = parse_port(port, field="hl7_port")
    if new_host and new_port is None:
        raise ValidationError("a host needs its port", field="hl7_port")
    if new_port is not None and not new_host:
        raise ValidationError("a port needs its host", field="hl7_host")
    chosen = " ".join(charset.split()).upper()
    if chosen not in HL7_CHARSETS or codec_for(chosen) is None:
        raise ValidationError(f"unsupported HL7 charset {charset!r}", field="hl7_charset")
    before: dict[str, object] = {
        "hl7_host": facility.hl7_host,
        "hl7_port": facility.hl7_port,
        "hl7_charset": facility.hl7_charset,
    }
    after: dict[str, object] = {"hl7_host": new_host, "hl7_port": new_port, "hl7_charset": chosen}
    changes = _changes(before, after)
    if not changes:
        return False
    facility.hl7_host, facility.hl7_port, facility.hl7_charset = new_host, new_port, chosen
    _facility_changed(
        session,
        actor=actor,
        facility=facility,
        changes=changes,
        now=now,
        source_address=source_address,
    )
    return True


def add_qc_period(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    valid_from: str | date,
    valid_until: str | date | None,
    certificate: str,
    now: datetime,
    source_address: str = "",
) -> int:
    """A QC-qualification period; it may not overlap another of the same facility."""
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    start = parse_day(valid_from, field="valid_from", required=True)
    assert start is not None
    end = parse_day(valid_until, field="valid_until", required=False)
    if end is not None and end < start:
        raise ValidationError("the period ends before it starts", field="valid_until")
    number = _text(certificate, field="certificate", limit=64, required=False)
    overlapping = session.exec(
        select(QcQualification).where(
            QcQualification.facility_id == facility.id,
            or_(
                col(QcQualification.valid_until).is_(None),
                col(QcQualification.valid_until) >= start,
            ),
            *(() if end is None else (col(QcQualification.valid_from) <= end,)),
        )
    ).first()
    if overlapping is not None:
        until = overlapping.valid_until.isoformat() if overlapping.valid_until else "open"
        raise Conflict(
            f"overlaps the period {overlapping.valid_from.isoformat()} - {until}",
            field="valid_from",
        )
    period = QcQualification(
        facility_id=int(facility.id or 0), valid_from=start, valid_until=end, certificate=number
    )
    session.add(period)
    session.flush()
    assert period.id is not None
    _audit(
        session,
        actor=actor,
        action=AuditAction.create,
        entity_type="QcQualification",
        entity_id=period.id,
        detail=(
            f"{facility.code}: QC qualification {start.isoformat()} - "
            f"{end.isoformat() if end else 'open'}" + (f", certificate {number}" if number else "")
        ),
        now=now,
        source_address=source_address,
    )
    return period.id


def end_qc_period(
    session: Session,
    *,
    actor: Actor,
    qc_id: int,
    valid_until: str | date,
    now: datetime,
    source_address: str = "",
) -> None:
    """Close an open QC-qualification period on its last valid day."""
    require(actor, Action.manage_facilities)
    period = session.get(QcQualification, qc_id)
    if period is None or period.id is None:
        raise NotFound(f"QC qualification {qc_id} does not exist")
    facility = _facility_in_scope(session, actor, period.facility_id)
    if period.valid_until is not None:
        raise Conflict("this period has already ended", field="valid_until")
    end = parse_day(valid_until, field="valid_until", required=True)
    assert end is not None
    if end < period.valid_from:
        raise ValidationError("the period ends before it starts", field="valid_until")
    period.valid_until = end
    session.add(period)
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="QcQualification",
        entity_id=period.id,
        detail=(
            f"{facility.code}: QC qualification from {period.valid_from.isoformat()} "
            f"ended {end.isoformat()}"
        ),
        now=now,
        source_address=source_address,
    )


def add_ae_title(
    session: Session,
    *,
    actor: Actor,
    facility_id: int,
    ae_title: str,
    modality: str,
    station_name: str,
    host: str,
    port: str | int | None,
    settings: Settings,
    now: datetime,
    source_address: str = "",
) -> int:
    """A DICOM AE of the facility; its title is unique in the hub (it names the caller)."""
    require(actor, Action.manage_facilities)
    facility = _facility_in_scope(session, actor, facility_id)
    try:
        title = check_ae_title(ae_title)
    except ValueError as error:
        raise ValidationError(str(error), field="ae_title") from None
    if title == settings.dicom_aet:
        raise Conflict(f"{title} is the hub's own AE title", field="ae_title")
    taken = session.exec(
        select(FacilityAeTitle.facility_id).where(FacilityAeTitle.ae_title == title)
    ).first()
    if taken is not None:
        raise Conflict(f"{title} is already used by {_code_of(session, taken)}", field="ae_title")
    chosen_modality = modality.strip().upper()
    if chosen_modality and chosen_modality not in {m.value for m in Modality}:
        raise ValidationError(f"unknown modality {modality!r}", field="modality")
    station = _text(station_name, field="station_name", limit=64, required=False)
    move_host = check_host(host, field="ae_host") if host.strip() else None
    move_port = parse_port(port, field="ae_port")
    if (move_host is None) != (move_port is None):
        field = "ae_port" if move_host else "ae_host"
        raise ValidationError("give both host and port for C-MOVE, or neither", field=field)
    row = FacilityAeTitle(
        facility_id=int(facility.id or 0),
        ae_title=title,
        station_name=station,
        modality=chosen_modality,
        host=move_host,
        port=move_port,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{title} is already used", field="ae_title") from None
    assert row.id is not None
    _audit(
        session,
        actor=actor,
        action=AuditAction.create,
        entity_type="FacilityAeTitle",
        entity_id=row.id,
        detail=f"{facility.code}: AE title {title}"
        + (f" ({chosen_modality})" if chosen_modality else "")
        + (f" at {move_host}:{move_port}" if move_host else ""),
        now=now,
        source_address=source_address,
    )
    return row.id


def remove_ae_title(
    session: Session, *, actor: Actor, ae_title_id: int, now: datetime, source_address: str = ""
) -> None:
    """Forget an AE title: the hub no longer knows that caller."""
    require(actor, Action.manage_facilities)
    row = session.get(FacilityAeTitle, ae_title_id)
    if row is None or row.id is None:
        raise NotFound(f"AE title {ae_title_id} does not exist")
    facility = _facility_in_scope(session, actor, row.facility_id)
    detail = f"{facility.code}: AE title {row.ae_title} removed"
    entity_id = row.id
    session.delete(row)
    session.flush()
    _audit(
        session,
        actor=actor,
        action=AuditAction.delete,
        entity_type="FacilityAeTitle",
        entity_id=entity_id,
        detail=detail,
        now=now,
        source_address=source_address,
    )


# --------------------------------------------------------------------------- the catalogue


class CatalogueSort(StrEnum):
    code = "code"
    modality = "modality"
    fee = "fee"
    validity = "validity"


@dataclass(frozen=True)
class CatalogueQuery:
    text: str = ""  # part of the code or either name
    modality: str = ""
    recognised: bool | None = None
    sort: CatalogueSort = CatalogueSort.code
    descending: bool = False
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class CatalogueRow:
    exam_type_id: int
    code: str
    name_zh: str
    name_en: str
    modality: str
    body_part: str
    body_part_count: int
    fee_fen: int
    recognised: bool
    validity_days: int
    active: bool


@dataclass(frozen=True)
class CataloguePage:
    rows: tuple[CatalogueRow, ...]
    total: int
    page: int
    pages: int
    modalities: tuple[str, ...]  # the filter's choices


@dataclass(frozen=True)
class ExamTypeChange:
    fee_yuan: str
    recognised: bool
    validity_days: str | int
    active: bool


def _catalogue_row(exam: ExamType) -> CatalogueRow:
    return CatalogueRow(
        exam_type_id=int(exam.id or 0),
        code=exam.code,
        name_zh=exam.name_zh,
        name_en=exam.name_en,
        modality=exam.modality.value,
        body_part=exam.body_part,
        body_part_count=exam.body_part_count,
        fee_fen=exam.fee_fen,
        recognised=exam.recognised,
        validity_days=exam.validity_days,
        active=exam.active,
    )


def list_catalogue(session: Session, *, actor: Actor, query: CatalogueQuery) -> CataloguePage:
    """One page of the exam catalogue, filtered and sorted on the server."""
    require(actor, Action.manage_catalogue)
    page_size = min(max(query.page_size, 1), MAX_PAGE_SIZE)
    statement = select_rows(ExamType)
    term = query.text.strip()
    if term:
        pattern = _like(term)
        statement = statement.where(
            or_(
                col(ExamType.code).ilike(pattern, escape="\\"),
                col(ExamType.name_zh).ilike(pattern, escape="\\"),
                col(ExamType.name_en).ilike(pattern, escape="\\"),
            )
        )
    if query.modality:
        try:
            statement = statement.where(col(ExamType.modality) == Modality(query.modality))
        except ValueError:
            raise ValidationError(
                f"unknown modality {query.modality!r}", field="modality"
            ) from None
    if query.recognised is not None:
        statement = statement.where(col(ExamType.recognised).is_(query.recognised))
    total = _count(session, statement)
    pages = _pages(total, page_size)
    page = min(max(query.page, 1), pages)
    key = {
        CatalogueSort.code: col(ExamType.code),
        CatalogueSort.modality: col(ExamType.modality),
        CatalogueSort.fee: col(ExamType.fee_fen),
        CatalogueSort.validity: col(ExamType.validity_days),
    }[query.sort]
    exams = session.execute(
        statement.order_by(key.desc() if query.descending else key.asc(), col(ExamType.code))
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).scalars()
    modalities = tuple(
        sorted({str(m) for m in session.exec(select(ExamType.modality).distinct()).all()})
    )
    return CataloguePage(
        rows=tuple(_catalogue_row(exam) for exam in exams),
        total=total,
        page=page,
        pages=pages,
        modalities=modalities,
    )


def exam_type_detail(session: Session, *, actor: Actor, exam_type_id: int) -> CatalogueRow:
    require(actor, Action.manage_catalogue)
    exam = session.get(ExamType, exam_type_id)
    if exam is None:
        raise NotFound(f"exam type {exam_type_id} does not exist")
    return _catalogue_row(exam)


def update_exam_type(
    session: Session,
    *,
    actor: Actor,
    exam_type_id: int,
    change: ExamTypeChange,
    now: datetime,
    source_address: str = "",
) -> tuple[str, ...]:
    """Fee per body part, the recognised (HR) flag, its validity window, active; what changed."""
    require(actor, Action.manage_catalogue)
    exam = session.get(ExamType, exam_type_id)
    if exam is None or exam.id is None:
        raise NotFound(f"exam type {exam_type_id} does not exist")
    fee_fen = parse_fee(change.fee_yuan, field="fee")
    days_text = str(change.validity_days).strip()
    if not days_text.isascii() or not days_text.isdigit() or int(days_text) > MAX_VALIDITY_DAYS:
        raise ValidationError(
            f"validity is a whole number of days 0-{MAX_VALIDITY_DAYS}", field="validity_days"
        )
    days = int(days_text)
    if change.recognised and days < 1:
        raise ValidationError("a recognised exam needs a validity window", field="validity_days")
    before: dict[str, object] = {
        "fee": fen_to_yuan(exam.fee_fen),
        "recognised": exam.recognised,
        "validity_days": exam.validity_days,
        "active": exam.active,
    }
    after: dict[str, object] = {
        "fee": fen_to_yuan(fee_fen),
        "recognised": change.recognised,
        "validity_days": days,
        "active": change.active,
    }
    changes = _changes(before, after)
    if not changes:
        return ()
    exam.fee_fen, exam.recognised = fee_fen, change.recognised
    exam.validity_days, exam.active = days, change.active
    session.add(exam)
    session.flush()
    _audit(
        session,
        actor=actor,
        action=AuditAction.update,
        entity_type="ExamType",
        entity_id=exam.id,
        detail=f"{exam.code}: " + "; ".join(changes),
        now=now,
        source_address=source_address,
    )
    return tuple(name for name in after if before[name] != after[name])
