"""The audit trail as the QC officer and the administrator read it: search, page, export.

Who sees what: an actor sees the events of their own facility and every
facility under it in the region tree (as administration scopes facilities).
Events with no facility (API clients, the hub's own commands, sign-ins of
unknown names) belong to the region as a whole: only actors at a bureau or
the platform see those. The search runs and pages on the server; the export
is the same search as a FHIR Bundle of AuditEvents, and is itself audited.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_
from sqlalchemy import select as select_rows
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from fhir.audit import AuditParties, audit_bundle
from integration.permissions import Action, Actor, require
from models import AuditEvent, Facility, Patient, PatientIdentifier
from models.enums import AuditAction, AuditOutcome, FacilityKind
from models.errors import ValidationError

EXPORT_LIMIT = 10_000  # events in one exported Bundle; narrow the search for more
_WHOLE_REGION = frozenset({FacilityKind.bureau, FacilityKind.platform})
_PATIENT_MATCHES = 500  # patients a name search may stand for


@dataclass(frozen=True)
class AuditQuery:
    person: str = ""  # part of the username or API client name
    patient: str = ""  # a patient's name, resident ID or other identifier
    action: str = ""  # an AuditAction value, "" for all
    entity: str = ""  # an entity type (Patient, Study, Report, User…) or Type/id
    since: date | None = None  # local days, both ends included
    until: date | None = None
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class AuditRow:
    event_id: int
    recorded_at: datetime
    action: AuditAction
    outcome: AuditOutcome
    actor: str
    facility_name: str
    source_address: str
    entity_type: str
    entity_id: str
    patient_name: str
    detail: str
    sealed: bool


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class AuditExport:
    filename: str
    document: str  # the Bundle as JSON
    events: int
    truncated: bool  # more matched than EXPORT_LIMIT


def _scope(session: Session, actor: Actor) -> Any:
    """The condition on AuditEvent that keeps to the actor's part of the region."""
    tree = (
        select_rows(col(Facility.id).label("id"))
        .where(col(Facility.id) == actor.facility_id)
        .cte("audit_scope", recursive=True)
    )
    child = aliased(Facility)
    tree = tree.union_all(select_rows(col(child.id)).where(col(child.parent_id) == tree.c.id))
    own = col(AuditEvent.facility_id).in_(select_rows(tree.c.id))
    home = session.get(Facility, actor.facility_id)
    if home is not None and home.kind in _WHOLE_REGION:
        return or_(own, col(AuditEvent.facility_id).is_(None))
    return own


def _patients(session: Session, term: str) -> list[int]:
    found = set(
        session.execute(
            select_rows(col(PatientIdentifier.patient_id)).where(
                col(PatientIdentifier.value) == term
            )
        ).scalars()
    )
    found |= set(
        session.execute(
            select_rows(col(Patient.id))
            .where(col(Patient.name).contains(term, autoescape=True))
            .limit(_PATIENT_MATCHES)
        ).scalars()
    )
    return sorted(int(patient) for patient in found)


def _bounds(query: AuditQuery, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    if query.since and query.until and query.since > query.until:
        raise ValidationError("the first day comes after the last", field="since")
    start = datetime.combine(query.since, time(0), tzinfo=zone) if query.since else None
    end = (
        datetime.combine(query.until + timedelta(days=1), time(0), tzinfo=zone)
        if query.until
        else None
    )
    return start, end


def _filtered(session: Session, actor: Actor, query: AuditQuery, zone: ZoneInfo) -> Select[Any]:
    conditions = [_scope(session, actor)]
    if query.person.strip():
        conditions.append(col(AuditEvent.actor).contains(query.person.strip(), autoescape=True))
    if query.patient.strip():
        conditions.append(col(AuditEvent.patient_id).in_(_patients(session, query.patient.strip())))
    if query.action:
        try:
            conditions.append(col(AuditEvent.action) == AuditAction(query.action))
        except ValueError as exc:
            raise ValidationError("no such action", field="action") from exc
    entity = query.entity.strip()
    if entity:
        kind, _, ident = entity.partition("/")
        conditions.append(func.lower(col(AuditEvent.entity_type)) == kind.strip().lower())
        if ident.strip():
            conditions.append(col(AuditEvent.entity_id) == ident.strip())
    start, end = _bounds(query, zone)
    if start is not None:
        conditions.append(col(AuditEvent.recorded_at) >= start)
    if end is not None:
        conditions.append(col(AuditEvent.recorded_at) < end)
    return select_rows(AuditEvent).where(and_(*conditions))


def search(session: Session, *, actor: Actor, query: AuditQuery, zone: ZoneInfo) -> AuditPage:
    """One page of matching events, newest first."""
    require(actor, Action.read_audit_trail)
    matching = _filtered(session, actor, query, zone)
    total = int(
        session.execute(select_rows(func.count()).select_from(matching.subquery())).scalar_one()
    )
    size = max(1, min(query.page_size, 200))
    pages = max(1, math.ceil(total / size))
    page = max(1, min(query.page, pages))
    events = (
        session.execute(
            matching.order_by(col(AuditEvent.recorded_at).desc(), col(AuditEvent.id).desc())
            .offset((page - 1) * size)
            .limit(size)
        )
        .scalars()
        .all()
    )
    facilities, patients = _names(session, events)
    rows = tuple(
        AuditRow(
            event_id=int(event.id or 0),
            recorded_at=event.recorded_at,
            action=event.action,
            outcome=event.outcome,
            actor=event.actor,
            facility_name=facilities.get(event.facility_id or 0, ("", ""))[1],
            source_address=event.source_address,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            patient_name=patients.get(event.patient_id or 0, ""),
            detail=event.detail,
            sealed=bool(event.hash),
        )
        for event in events
    )
    return AuditPage(rows=rows, total=total, page=page, pages=pages)


def _names(session: Session, events: Any) -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    facility_ids = {e.facility_id for e in events if e.facility_id}
    patient_ids = {e.patient_id for e in events if e.patient_id}
    facilities = {
        int(f.id or 0): (f.code, f.name)
        for f in session.execute(
            select_rows(Facility).where(col(Facility.id).in_(facility_ids or {0}))
        ).scalars()
    }
    patients = {
        int(p.id or 0): p.name
        for p in session.execute(
            select_rows(Patient).where(col(Patient.id).in_(patient_ids or {0}))
        ).scalars()
    }
    return facilities, patients


def export(
    session: Session,
    *,
    actor: Actor,
    query: AuditQuery,
    zone: ZoneInfo,
    now: datetime,
    hub_name: str,
    source_address: str = "",
) -> AuditExport:
    """Every event of the search (up to EXPORT_LIMIT, oldest first) as a FHIR Bundle."""
    require(actor, Action.read_audit_trail)
    matching = _filtered(session, actor, query, zone)
    events = (
        session.execute(matching.order_by(col(AuditEvent.id)).limit(EXPORT_LIMIT + 1))
        .scalars()
        .all()
    )
    truncated = len(events) > EXPORT_LIMIT
    events = events[:EXPORT_LIMIT]
    facilities, _ = _names(session, events)
    bundle = audit_bundle(
        [
            (
                event,
                AuditParties(
                    facility_code=facilities.get(event.facility_id or 0, ("", ""))[0],
                    facility_name=facilities.get(event.facility_id or 0, ("", ""))[1],
                ),
            )
            for event in events
        ],
        observer=hub_name,
        timestamp=now,
    )
    filters = {
        name: value
        for name, value in (
            ("person", query.person),
            ("patient", query.patient),
            ("action", query.action),
            ("entity", query.entity),
            ("since", query.since.isoformat() if query.since else ""),
            ("until", query.until.isoformat() if query.until else ""),
        )
        if value
    }
    session.add(
        AuditEvent(
            recorded_at=now,
            action=AuditAction.export,
            actor=actor.username,
            actor_user_id=actor.user_id,
            facility_id=actor.facility_id,
            source_address=source_address[:64],
            entity_type="Bundle",
            entity_id="AuditEvent",
            detail=json.dumps(
                {"events": len(events), "truncated": truncated, **filters}, ensure_ascii=False
            ),
        )
    )
    return AuditExport(
        filename=f"audit-events-{now.astimezone(zone):%Y%m%d-%H%M%S}.json",
        document=bundle.model_dump_json(indent=1),
        events=len(events),
        truncated=truncated,
    )
