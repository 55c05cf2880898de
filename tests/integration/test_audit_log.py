"""Searching and exporting the audit trail: filters, paging, who sees what, the export audited.

The demo `qc` officer works at the county hospital QL-H01 and sees the events
of that hospital (and anything under it); the demo `admin` at the county
bureau sees the county's, and the events that belong to no facility.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, col, select

from integration.audit_chain import seal
from integration.audit_log import AuditQuery, export, search
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.permissions import Actor
from integration.reading_desk import load_actor
from integration.settings import Settings
from models import AuditEvent, Facility, Patient, PatientIdentifier, User
from models.enums import AuditAction, AuditOutcome, IdentifierKind
from models.errors import PermissionDenied, ValidationError

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Settings]]:
    data_dir: Path = tmp_path_factory.mktemp("audit-log")
    settings = Settings(data_dir=data_dir)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=9, exams=60, until=date(2026, 11, 20), progress=False),
    )
    with Session(database.engine) as session:
        hospital = session.exec(select(Facility).where(Facility.code == "QL-H01")).one()
        other = session.exec(select(Facility).where(Facility.code == "QL-H02")).one()
        radiologist = session.exec(
            select(User).where(User.facility_id == hospital.id, User.role == "radiologist")
        ).first()
        assert radiologist is not None
        patient = session.exec(select(Patient).order_by(col(Patient.id))).first()
        assert patient is not None
        events = [
            AuditEvent(
                recorded_at=START + timedelta(hours=n),
                action=AuditAction.read,
                actor=radiologist.username,
                actor_user_id=radiologist.id,
                facility_id=hospital.id,
                source_address="10.0.0.7",
                entity_type="Study",
                entity_id=str(100 + n),
                patient_id=patient.id if n % 2 == 0 else None,
            )
            for n in range(30)
        ]
        events.append(
            AuditEvent(
                recorded_at=START,
                action=AuditAction.login_failed,
                outcome=AuditOutcome.failure,
                actor="h02-someone",
                facility_id=other.id,
                entity_type="User",
                detail="wrong password",
            )
        )
        events.append(
            AuditEvent(
                recorded_at=START + timedelta(days=3),
                action=AuditAction.read,
                actor="province",
                source_address="192.0.2.1",
                entity_type="ImagingStudy",
                entity_id="7",
                patient_id=patient.id,
            )
        )
        session.add_all(events)
        session.commit()
    seal(database.engine)
    yield database, settings
    database.dispose()


def _actor(database: Database, settings: Settings, username: str) -> Actor:
    with Session(database.engine) as session:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        assert user_id is not None
        return load_actor(session, user_id=user_id, settings=settings)


def _search(hub: tuple[Database, Settings], username: str, **query: object) -> list[str]:
    database, settings = hub
    with Session(database.engine) as session:
        page = search(
            session,
            actor=_actor(database, settings, username),
            query=AuditQuery(page_size=200, **query),  # type: ignore[arg-type]
            zone=ZONE,
        )
    return [f"{row.actor}:{row.entity_type}/{row.entity_id}" for row in page.rows]


def test_each_officer_sees_their_part_of_the_region(hub: tuple[Database, Settings]) -> None:
    qc = _search(hub, "qc")
    assert len(qc) == 30 and all(":Study/" in row for row in qc)
    admin = _search(hub, "admin")
    assert len(admin) == 32  # the county's hospitals, and the API read with no facility
    assert "province:ImagingStudy/7" in admin and "h02-someone:User/" in admin


def test_filters_narrow_the_search(hub: tuple[Database, Settings]) -> None:
    database, _ = hub
    with Session(database.engine) as session:
        patient = session.exec(select(Patient).order_by(col(Patient.id))).first()
        assert patient is not None
        resident = session.exec(
            select(PatientIdentifier.value).where(
                PatientIdentifier.patient_id == patient.id,
                PatientIdentifier.kind == IdentifierKind.resident_id,
            )
        ).first()
    assert len(_search(hub, "admin", patient=patient.name)) >= 16
    if resident:
        assert len(_search(hub, "admin", patient=resident)) == 16
    assert _search(hub, "admin", action="login_failed") == ["h02-someone:User/"]
    assert _search(hub, "admin", entity="imagingstudy/7") == ["province:ImagingStudy/7"]
    assert len(_search(hub, "admin", person="prov")) == 1
    # 09:00 + n hours Shanghai: the first 15 events fall on 10 November, local time
    assert len(_search(hub, "qc", since=date(2026, 11, 10), until=date(2026, 11, 10))) == 15
    with pytest.raises(ValidationError):
        _search(hub, "qc", since=date(2026, 11, 11), until=date(2026, 11, 10))
    with pytest.raises(PermissionDenied):
        _search(hub, "radiologist")


def test_pages_are_cut_on_the_server_newest_first(hub: tuple[Database, Settings]) -> None:
    database, settings = hub
    with Session(database.engine) as session:
        actor = _actor(database, settings, "qc")
        first = search(session, actor=actor, query=AuditQuery(page_size=12), zone=ZONE)
        last = search(session, actor=actor, query=AuditQuery(page=9, page_size=12), zone=ZONE)
    assert (first.total, first.pages, len(first.rows)) == (30, 3, 12)
    assert first.rows[0].recorded_at > first.rows[-1].recorded_at
    assert first.rows[0].sealed
    assert (last.page, len(last.rows)) == (3, 6)  # a page past the end shows the last one


def test_export_is_a_valid_fhir_bundle_and_is_audited(hub: tuple[Database, Settings]) -> None:
    database, settings = hub
    now = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    with Session(database.engine) as session:
        made = export(
            session,
            actor=_actor(database, settings, "admin"),
            query=AuditQuery(action="read"),
            zone=ZONE,
            now=now,
            hub_name="Huren test hub",
            source_address="10.1.1.1",
        )
        session.commit()
    assert made.events == 31 and not made.truncated
    assert made.filename == "audit-events-20261121-110000.json"
    bundle = Bundle.model_validate_json(made.document)
    assert bundle.type == "collection" and bundle.entry is not None
    resources = [entry.resource for entry in bundle.entry]
    assert all(isinstance(r, FhirAuditEvent) for r in resources)
    first = json.loads(made.document)["entry"][0]["resource"]
    assert first["action"] == "R" and first["agent"][0]["requestor"] is True
    assert first["extension"][0]["valueString"]  # the seal travels with the event
    with Session(database.engine) as session:
        recorded = session.exec(
            select(AuditEvent).where(AuditEvent.action == AuditAction.export)
        ).one()
    assert recorded.actor == "admin" and recorded.source_address == "10.1.1.1"
    assert json.loads(recorded.detail) == {"events": 31, "truncated": False, "action": "read"}
