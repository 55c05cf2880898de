"""Constraints enforced by the database and the ORM, on a real SQLite file."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, select

from models import (
    AuditEvent,
    ExamType,
    Facility,
    Patient,
    PatientIdentifier,
    RecognitionDecision,
    User,
)
from models.enums import (
    AuditAction,
    FacilityKind,
    FacilityLevel,
    IdentifierKind,
    Modality,
    ProfessionalTitle,
    RecognitionOutcome,
    RecognitionSource,
    Role,
)
from models.errors import InvalidResidentId
from models.migrate import upgrade


@pytest.fixture
def session(database_engine: Engine) -> Iterator[Session]:
    upgrade(database_engine)
    with Session(database_engine) as session:
        session.add(
            Facility(
                code="T01",
                name="测试卫生院",
                level=FacilityLevel.township,
                kind=FacilityKind.health_centre,
            )
        )
        session.commit()
        yield session


def _facility_id(session: Session) -> int:
    facility = session.exec(select(Facility)).one()
    assert facility.id is not None
    return facility.id


def test_auditor_needs_attending_title_or_above(session: Session) -> None:
    facility_id = _facility_id(session)
    session.add(
        User(
            username="a1",
            display_name="甲",
            role=Role.auditor,
            title=ProfessionalTitle.associate_chief,
            facility_id=facility_id,
            password_hash="x",
        )
    )
    session.commit()
    session.add(
        User(
            username="a2",
            display_name="乙",
            role=Role.auditor,
            title=ProfessionalTitle.resident,
            facility_id=facility_id,
            password_hash="x",
        )
    )
    with pytest.raises(IntegrityError, match="auditor_title"):
        session.commit()


def test_resident_id_is_checked_on_every_orm_write(session: Session) -> None:
    patient = Patient(name="张三")
    session.add(patient)
    session.flush()
    assert patient.id is not None
    session.add(
        PatientIdentifier(
            patient_id=patient.id,
            kind=IdentifierKind.resident_id,
            authority="whatever",
            value="11010519491231002x",
        )
    )
    session.commit()
    stored = session.exec(select(PatientIdentifier)).one()
    assert (stored.value, stored.authority) == ("11010519491231002X", "CN")

    session.add(
        PatientIdentifier(
            patient_id=patient.id,
            kind=IdentifierKind.resident_id,
            authority="CN",
            value="110105194912310021",
        )
    )
    with pytest.raises(InvalidResidentId, match="check character"):
        session.flush()


def test_an_identifier_value_belongs_to_one_patient(session: Session) -> None:
    first, second = Patient(name="甲"), Patient(name="乙")
    session.add_all([first, second])
    session.flush()
    for patient in (first, second):
        assert patient.id is not None
        session.add(
            PatientIdentifier(
                patient_id=patient.id, kind=IdentifierKind.mrn, authority="T01", value="MRN001"
            )
        )
    with pytest.raises(IntegrityError, match=r"(?i)unique"):
        session.commit()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(
        User(
            username="ghost",
            display_name="无",
            role=Role.clinician,
            facility_id=999,
            password_hash="x",
        )
    )
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        session.commit()


def test_datetimes_are_stored_utc_and_come_back_aware(session: Session) -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 25, 9, 30, tzinfo=shanghai)
    session.add(AuditEvent(recorded_at=local, action=AuditAction.read, actor="t"))
    session.commit()
    session.expire_all()
    stored = session.exec(select(AuditEvent)).one()
    assert stored.recorded_at == local
    assert stored.recorded_at.tzinfo is UTC
    assert stored.recorded_at.hour == 1


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(
        AuditEvent(recorded_at=datetime(2026, 11, 25, 9, 30), action=AuditAction.read, actor="t")
    )
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()


def test_a_refusal_needs_a_reason(session: Session) -> None:
    facility_id = _facility_id(session)
    patient = Patient(name="李四")
    exam = ExamType(
        code="DX-CHEST-PA",
        name_zh="胸部正位",
        name_en="Chest PA",
        modality=Modality.DX,
        body_part="CHEST",
    )
    session.add_all([patient, exam])
    session.flush()
    assert patient.id is not None and exam.id is not None
    session.add(
        RecognitionDecision(
            patient_id=patient.id,
            requested_exam_type_id=exam.id,
            facility_id=facility_id,
            outcome=RecognitionOutcome.refused,
            source=RecognitionSource.portal,
            decided_at=datetime.now(UTC),
        )
    )
    with pytest.raises(IntegrityError, match="refusal_has_reason"):
        session.commit()


def test_enums_are_stored_by_value_and_unknown_values_refused(session: Session) -> None:
    facility = session.exec(select(Facility)).one()
    assert facility.level is FacilityLevel.township
    facility.level = "galaxy"  # type: ignore[assignment]
    session.add(facility)
    with pytest.raises(StatementError, match="galaxy"):
        session.commit()


def test_qc_period_cannot_end_before_it_starts(session: Session) -> None:
    from models import QcQualification

    session.add(
        QcQualification(
            facility_id=_facility_id(session),
            valid_from=date(2026, 5, 1),
            valid_until=date(2026, 4, 1),
        )
    )
    with pytest.raises(IntegrityError, match="qc_period"):
        session.commit()
