"""The regional patient index: find or create the patient a message speaks of.

Patients are linked across facilities by their resident ID. Without one, a
facility MRN already known links them. Without either, name + birth date +
sex (+ phone) are scored: a confident match links, a doubtful one creates a
new patient flagged for review with a PatientLink, never a silent merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from models import metadata
from models.enums import IdentifierKind, LinkStatus, Sex
from models.errors import Conflict, InvalidResidentId
from models.identity import normalise_resident_id
from models.patients import RESIDENT_ID_AUTHORITY

PATIENT = metadata.tables["patient"]
IDENTIFIER = metadata.tables["patient_identifier"]
LINK = metadata.tables["patient_link"]

# Statements built once: intake runs them for every message, and building a
# statement costs more than executing it.
_KNOWN = (
    select(
        IDENTIFIER.c.kind,
        IDENTIFIER.c.authority,
        IDENTIFIER.c.value,
        IDENTIFIER.c.patient_id,
        PATIENT.c.merged_into_id,
    )
    .join(PATIENT, PATIENT.c.id == IDENTIFIER.c.patient_id)
    .where(IDENTIFIER.c.value.in_(bindparam("values", expanding=True)))
)
_MERGED_INTO = select(PATIENT.c.merged_into_id).where(PATIENT.c.id == bindparam("patient_id"))
_CURRENT = select(
    PATIENT.c.name, PATIENT.c.sex, PATIENT.c.birth_date, PATIENT.c.phone, PATIENT.c.address
).where(PATIENT.c.id == bindparam("patient_id"))
_SAME_PERSON = (
    select(PATIENT.c.id, PATIENT.c.name, PATIENT.c.birth_date, PATIENT.c.sex, PATIENT.c.phone)
    .where(
        PATIENT.c.name == bindparam("name"),
        PATIENT.c.birth_date == bindparam("birth_date"),
        PATIENT.c.merged_into_id.is_(None),
    )
    .limit(20)
)
_RESIDENT_ID_OF = select(IDENTIFIER.c.value).where(
    IDENTIFIER.c.patient_id == bindparam("patient_id"),
    IDENTIFIER.c.kind == IdentifierKind.resident_id,
)
_INSERT_PATIENT = insert(PATIENT)
_INSERT_IDENTIFIER = insert(IDENTIFIER)


@dataclass(frozen=True)
class Identity:
    """One identifier as a message states it (already mapped from PID-3)."""

    kind: IdentifierKind
    authority: str
    value: str


@dataclass(frozen=True)
class Demographics:
    identifiers: tuple[Identity, ...]
    name: str
    birth_date: date | None
    sex: Sex
    phone: str = ""
    address: str = ""


@dataclass(frozen=True)
class Resolution:
    patient_id: int
    created: bool
    needs_review: bool


def _normalised(identity: Identity, *, default_authority: str) -> Identity:
    if identity.kind is IdentifierKind.resident_id:
        try:
            value = normalise_resident_id(identity.value)
        except InvalidResidentId as exc:
            raise InvalidResidentId(str(exc), field="PID-3") from exc
        return Identity(IdentifierKind.resident_id, RESIDENT_ID_AUTHORITY, value)
    return Identity(identity.kind, identity.authority or default_authority, identity.value.strip())


def _survivor(connection: Connection, patient_id: int) -> int:
    """Follow merges to the patient that absorbed this one."""
    seen = {patient_id}
    while True:
        merged_into = connection.execute(_MERGED_INTO, {"patient_id": patient_id}).scalar()
        if merged_into is None or merged_into in seen:
            return patient_id
        seen.add(merged_into)
        patient_id = merged_into


def match_score(incoming: Demographics, candidate: Any) -> float:
    """How sure we are that ``candidate`` (a patient row) is the same person, 0..1."""
    if not incoming.name or incoming.birth_date is None:
        return 0.0
    if candidate.name != incoming.name or candidate.birth_date != incoming.birth_date:
        return 0.0
    if incoming.sex in (Sex.male, Sex.female) and candidate.sex != incoming.sex:
        return 0.0
    score = 0.85
    if incoming.phone and candidate.phone and incoming.phone == candidate.phone:
        score += 0.1
    elif incoming.phone and candidate.phone:
        score -= 0.2
    return round(score, 3)


def resolve_patient(
    connection: Connection,
    *,
    demographics: Demographics,
    default_authority: str,
    now: datetime,
    link_threshold: float,
    review_threshold: float,
    overwrite: bool,
) -> Resolution:
    """Find (or create) the patient, add identifiers it lacked, update demographics.

    ``overwrite`` (ADT) replaces stored demographics with the message's; orders
    only fill what is blank.
    """
    identities = [
        _normalised(identity, default_authority=default_authority)
        for identity in demographics.identifiers
        if identity.value.strip()
    ]
    resident = next((i for i in identities if i.kind is IdentifierKind.resident_id), None)
    known = _known_identifiers(connection, identities)

    patient_id: int | None = None
    if resident is not None and (resident.kind, resident.authority, resident.value) in known:
        patient_id = known[(resident.kind, resident.authority, resident.value)]
    else:
        for identity in identities:
            owner = known.get((identity.kind, identity.authority, identity.value))
            if owner is not None:
                patient_id = owner
                break

    created, needs_review = False, False
    candidate_for_review: tuple[int, float] | None = None
    if patient_id is None:
        best = _best_demographic_match(connection, demographics, resident)
        if best is not None and best[1] >= link_threshold:
            patient_id = best[0]
        elif best is not None and best[1] >= review_threshold:
            candidate_for_review = best
    if patient_id is None:
        patient_id = _create(
            connection, demographics, now=now, needs_review=candidate_for_review is not None
        )
        created = True
        if candidate_for_review is not None:
            needs_review = True
            _link(
                connection,
                patient_id,
                candidate_for_review[0],
                candidate_for_review[1],
                "same name, birth date and sex; no shared identifier",
                now,
            )
    else:
        _update(connection, patient_id, demographics, now=now, overwrite=overwrite)

    new_identifiers = []
    for identity in identities:
        owner = known.get((identity.kind, identity.authority, identity.value))
        if owner is not None and owner != patient_id:
            needs_review = True
            _flag(connection, patient_id)
            _link(
                connection,
                patient_id,
                owner,
                1.0,
                f"{identity.kind.value} {identity.value} belongs to another patient",
                now,
            )
            continue
        if owner is None:
            if identity.kind is IdentifierKind.resident_id and not created:
                _check_single_resident_id(connection, patient_id, identity.value)
            new_identifiers.append(
                {
                    "patient_id": patient_id,
                    "kind": identity.kind,
                    "authority": identity.authority,
                    "value": identity.value,
                }
            )
    if new_identifiers:
        connection.execute(_INSERT_IDENTIFIER, new_identifiers)
    return Resolution(patient_id=patient_id, created=created, needs_review=needs_review)


def _known_identifiers(
    connection: Connection, identities: Sequence[Identity]
) -> dict[tuple[IdentifierKind, str, str], int]:
    """Who holds each identifier, following merges to the surviving patient."""
    if not identities:
        return {}
    rows = connection.execute(
        _KNOWN, {"values": sorted({identity.value for identity in identities})}
    ).all()
    wanted = {(i.kind, i.authority, i.value) for i in identities}
    return {
        (row.kind, row.authority, row.value): (
            row.patient_id if row.merged_into_id is None else _survivor(connection, row.patient_id)
        )
        for row in rows
        if (row.kind, row.authority, row.value) in wanted
    }


def _best_demographic_match(
    connection: Connection, demographics: Demographics, resident: Identity | None
) -> tuple[int, float] | None:
    if not demographics.name or demographics.birth_date is None:
        return None
    rows = connection.execute(
        _SAME_PERSON, {"name": demographics.name, "birth_date": demographics.birth_date}
    ).all()
    best: tuple[int, float] | None = None
    for row in rows:
        if resident is not None and _has_other_resident_id(connection, row.id, resident.value):
            continue  # a different resident ID is a different person
        score = match_score(demographics, row)
        if score > 0 and (best is None or score > best[1]):
            best = (row.id, score)
    return best


def _has_other_resident_id(connection: Connection, patient_id: int, value: str) -> bool:
    stored = connection.execute(_RESIDENT_ID_OF, {"patient_id": patient_id}).scalar()
    return stored is not None and stored != value


def _check_single_resident_id(connection: Connection, patient_id: int, value: str) -> None:
    if _has_other_resident_id(connection, patient_id, value):
        raise Conflict(
            f"PID-3: resident ID {value} differs from the one recorded for this patient",
            field="PID-3",
        )


def _create(
    connection: Connection, demographics: Demographics, *, now: datetime, needs_review: bool
) -> int:
    result = connection.execute(
        _INSERT_PATIENT,
        {
            "name": demographics.name or "未知",
            "sex": demographics.sex,
            "birth_date": demographics.birth_date,
            "phone": demographics.phone[:32],
            "address": demographics.address[:255],
            "merged_into_id": None,
            "needs_review": needs_review,
            "created_at": now,
            "updated_at": now,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _update(
    connection: Connection,
    patient_id: int,
    demographics: Demographics,
    *,
    now: datetime,
    overwrite: bool,
) -> None:
    current = connection.execute(_CURRENT, {"patient_id": patient_id}).one()
    incoming: dict[str, Any] = {
        "name": demographics.name,
        "birth_date": demographics.birth_date,
        "sex": demographics.sex if demographics.sex is not Sex.unknown else None,
        "phone": demographics.phone[:32],
        "address": demographics.address[:255],
    }
    changes = {
        column: value
        for column, value in incoming.items()
        if value not in (None, "")
        and value != getattr(current, column)
        and (overwrite or getattr(current, column) in (None, "", Sex.unknown))
    }
    if changes:
        connection.execute(
            update(PATIENT).where(PATIENT.c.id == patient_id).values(**changes, updated_at=now)
        )


def _flag(connection: Connection, patient_id: int) -> None:
    connection.execute(update(PATIENT).where(PATIENT.c.id == patient_id).values(needs_review=True))


def _link(
    connection: Connection,
    patient_id: int,
    candidate_id: int,
    score: float,
    reason: str,
    now: datetime,
) -> None:
    exists = connection.execute(
        select(LINK.c.id).where(
            or_(
                and_(LINK.c.patient_id == patient_id, LINK.c.candidate_id == candidate_id),
                and_(LINK.c.patient_id == candidate_id, LINK.c.candidate_id == patient_id),
            )
        )
    ).first()
    if exists is None:
        connection.execute(
            insert(LINK).values(
                patient_id=patient_id,
                candidate_id=candidate_id,
                score=score,
                reason=reason[:200],
                status=LinkStatus.pending,
                created_at=now,
            )
        )


def merge_patients(
    connection: Connection, *, survivor_id: int, prior_id: int, now: datetime
) -> None:
    """ADT^A40: move everything of ``prior_id`` to ``survivor_id`` and mark the merge."""
    if survivor_id == prior_id:
        return
    survivor_keys = {
        (row.kind, row.authority, row.value)
        for row in connection.execute(
            select(IDENTIFIER.c.kind, IDENTIFIER.c.authority, IDENTIFIER.c.value).where(
                IDENTIFIER.c.patient_id == survivor_id
            )
        )
    }
    for row in connection.execute(
        select(
            IDENTIFIER.c.id, IDENTIFIER.c.kind, IDENTIFIER.c.authority, IDENTIFIER.c.value
        ).where(IDENTIFIER.c.patient_id == prior_id)
    ).all():
        if (row.kind, row.authority, row.value) in survivor_keys:
            continue
        if row.kind == IdentifierKind.resident_id:
            _check_single_resident_id(connection, survivor_id, row.value)
        connection.execute(
            update(IDENTIFIER).where(IDENTIFIER.c.id == row.id).values(patient_id=survivor_id)
        )
    for table_name in ("exam_order", "study", "recognition_decision", "critical_result"):
        table = metadata.tables[table_name]
        connection.execute(
            update(table).where(table.c.patient_id == prior_id).values(patient_id=survivor_id)
        )
    connection.execute(
        update(PATIENT)
        .where(PATIENT.c.id == prior_id)
        .values(merged_into_id=survivor_id, updated_at=now)
    )


def find_patient(
    connection: Connection, identities: Sequence[Identity], *, default_authority: str
) -> int | None:
    normalised = [
        _normalised(i, default_authority=default_authority) for i in identities if i.value.strip()
    ]
    known = _known_identifiers(connection, normalised)
    for identity in normalised:
        owner = known.get((identity.kind, identity.authority, identity.value))
        if owner is not None:
            return _survivor(connection, owner)
    return None
