"""The clinician's prior-exam check and the QC officer's refusal audit, on the demo county.

A township study is reported and signed at its reading centre; a clinician at
another township finds the patient by resident ID, sees the prior as
recognisable, and records reuse or refusal; the QC officer draws and reviews
the month's sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from integration import prior_check, reading_desk
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.permissions import Actor
from integration.recognition import Rules
from integration.settings import Settings
from models import (
    AuditEvent,
    ExamType,
    Facility,
    PatientIdentifier,
    QcQualification,
    RecognitionDecision,
    Study,
    User,
)
from models.enums import IdentifierKind, RecognitionOutcome, RecognitionSource, RefusalReason
from models.errors import PermissionDenied, ValidationError
from tests.databases import DemoSnapshots
from tests.hub_helpers import study_for_reading

SIGNED_AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Region:
    database: Database
    settings: Settings
    study_id: int
    patient_id: int
    exam_code: str
    resident_id: str
    clinician: Actor  # at QL-T02
    technologist: Actor
    qc: Actor


@pytest.fixture
def region(tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots) -> Iterator[Region]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=4, exams=200, until=date(2026, 11, 20), progress=False),
    )

    def actor(session: Session, username: str) -> Actor:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        assert user_id is not None
        return reading_desk.load_actor(session, user_id=user_id, settings=settings)

    with database.session() as session:
        study_id, _ = study_for_reading(
            session, clinic_code="QL-T01", uid="2.25.4242", completed_at=SIGNED_AT
        )
        study = session.get(Study, study_id)
        assert study is not None and study.patient_id is not None
        exam = session.get(ExamType, study.exam_type_id)
        assert exam is not None
        exam.recognised, exam.validity_days = True, 180  # an HR item, whatever the draw gave
        session.add(exam)
        t01 = session.exec(select(Facility).where(Facility.code == "QL-T01")).one()
        session.add(QcQualification(facility_id=int(t01.id or 0), valid_from=date(2020, 1, 1)))
        resident = session.exec(
            select(PatientIdentifier.value).where(
                PatientIdentifier.patient_id == study.patient_id,
                PatientIdentifier.kind == IdentifierKind.resident_id,
            )
        ).first()
        assert resident is not None
        radiologist, auditor = actor(session, "radiologist"), actor(session, "auditor")
        made = Region(
            database,
            settings,
            study_id,
            study.patient_id,
            exam.code,
            resident,
            actor(session, "clinician"),
            actor(session, "technologist"),
            actor(session, "qc"),
        )
    with database.session() as session:
        reading_desk.write_preliminary(
            session,
            actor=radiologist,
            study_id=study_id,
            findings="两肺纹理清晰。",
            impression="胸部未见明显异常。",
            now=SIGNED_AT,
            settings=settings,
        )
        reading_desk.sign(
            session,
            actor=auditor,
            study_id=study_id,
            findings="两肺纹理清晰。",
            impression="胸部未见明显异常。",
            grade="A",
            now=SIGNED_AT + timedelta(minutes=5),
            settings=settings,
        )
    yield made
    database.dispose()


def test_a_resident_id_finds_the_patient_anywhere_a_name_only_at_home(region: Region) -> None:
    now = SIGNED_AT + timedelta(days=1)
    with region.database.session() as session:
        hits = prior_check.find_patients(
            session, actor=region.clinician, term=region.resident_id, now=now
        )
        assert [h.patient_id for h in hits] == [region.patient_id]
        assert hits[0].resident_id.count("*") == 8
        name = hits[0].name
        # The patient was ordered at QL-T01: a QL-T02 clinician cannot find them by name ...
        assert region.patient_id not in [
            h.patient_id
            for h in prior_check.find_patients(session, actor=region.clinician, term=name, now=now)
        ]
        with pytest.raises(ValidationError) as short:
            prior_check.find_patients(session, actor=region.clinician, term="王", now=now)
        assert short.value.field == "term"
        bad = region.resident_id[:17] + ("0" if region.resident_id[17] != "0" else "1")
        with pytest.raises(ValidationError):
            prior_check.find_patients(session, actor=region.clinician, term=bad, now=now)
        with pytest.raises(PermissionDenied):
            prior_check.find_patients(
                session, actor=region.technologist, term=region.resident_id, now=now
            )
        searches = session.exec(
            select(AuditEvent).where(
                AuditEvent.actor == region.clinician.username, AuditEvent.entity_id == "search"
            )
        ).all()
        assert searches and all("*" in event.detail for event in searches if "3" in event.detail)


def test_the_signed_prior_is_recognisable_and_reuse_is_recorded(region: Region) -> None:
    now = SIGNED_AT + timedelta(days=2)
    with region.database.session() as session:
        found = prior_check.check(
            session,
            actor=region.clinician,
            patient_id=region.patient_id,
            exam_code=region.exam_code,
            now=now,
            rules=Rules(),
            zone=ZONE,
        )
        line = next(line for line in found.lines if line.study_id == region.study_id)
        assert line.recognisable and line.reasons == ()
        assert line.valid_until == date(2026, 11, 24) + timedelta(days=180)
        report = prior_check.prior_report(
            session,
            actor=region.clinician,
            patient_id=region.patient_id,
            study_id=region.study_id,
            now=now,
        )
        assert report.impression == "胸部未见明显异常。" and report.status == "final"
        prior_check.decide(
            session,
            actor=region.clinician,
            patient_id=region.patient_id,
            exam_code=region.exam_code,
            prior_key=line.key,
            accepted=True,
            reason="",
            comment="",
            now=now,
            rules=Rules(),
            zone=ZONE,
        )
    with region.database.session() as session:
        decision = session.exec(
            select(RecognitionDecision).where(
                RecognitionDecision.source == RecognitionSource.portal,
                RecognitionDecision.decided_at == now,
            )
        ).one()
        assert decision.outcome is RecognitionOutcome.accepted
        assert decision.prior_study_id == region.study_id and decision.avoided_fee_fen > 0
        assert decision.clinician_id == region.clinician.user_id
        assert decision.facility_id == region.clinician.facility_id


def test_an_expired_prior_says_why_and_cannot_be_decided(region: Region) -> None:
    later = SIGNED_AT + timedelta(days=200)
    with region.database.session() as session:
        found = prior_check.check(
            session,
            actor=region.clinician,
            patient_id=region.patient_id,
            exam_code=region.exam_code,
            now=later,
            rules=Rules(),
            zone=ZONE,
        )
        line = next(line for line in found.lines if line.study_id == region.study_id)
        assert not line.recognisable and line.reasons == ("expired",)
        with pytest.raises(ValidationError) as gone:
            prior_check.decide(
                session,
                actor=region.clinician,
                patient_id=region.patient_id,
                exam_code=region.exam_code,
                prior_key=line.key,
                accepted=True,
                reason="",
                comment="",
                now=later,
                rules=Rules(),
                zone=ZONE,
            )
        assert gone.value.field == "prior"


def test_refusals_need_a_reason_and_are_sampled_and_reviewed(region: Region) -> None:
    now = SIGNED_AT + timedelta(days=1)
    with region.database.session() as session:
        key = next(
            line.key
            for line in prior_check.check(
                session,
                actor=region.clinician,
                patient_id=region.patient_id,
                exam_code=region.exam_code,
                now=now,
                rules=Rules(),
                zone=ZONE,
            ).recognisable
        )

        def refuse(reason: str, comment: str) -> None:
            prior_check.decide(
                session,
                actor=region.clinician,
                patient_id=region.patient_id,
                exam_code=region.exam_code,
                prior_key=key,
                accepted=False,
                reason=reason,
                comment=comment,
                now=now,
                rules=Rules(),
                zone=ZONE,
            )

        with pytest.raises(ValidationError) as no_reason:
            refuse("", "")
        assert no_reason.value.field == "reason"
        with pytest.raises(ValidationError) as bare_other:
            refuse(RefusalReason.other.value, " ")
        assert bare_other.value.field == "comment"
        refuse(RefusalReason.condition_changed.value, "胸痛加重")
    month = "2026-11"
    with region.database.session() as session:
        with pytest.raises(PermissionDenied):
            prior_check.refusal_audit(
                session, actor=region.clinician, month=month, now=now, zone=ZONE, draw=False
            )
        with pytest.raises(ValidationError):  # the month has not ended at `now`
            prior_check.refusal_audit(
                session, actor=region.qc, month=month, now=now, zone=ZONE, draw=True
            )
    after = datetime(2026, 12, 3, tzinfo=UTC)
    with region.database.session() as session:
        audit = prior_check.refusal_audit(
            session, actor=region.qc, month=month, now=after, zone=ZONE, draw=True
        )
        assert audit.drawable and audit.drawn == len(audit.sample) >= 1
        assert audit.drawn == -(-audit.refusals // 10)  # ceil(10%)
        again = prior_check.refusal_audit(
            session, actor=region.qc, month=month, now=after, zone=ZONE, draw=True
        )
        assert [s.decision_id for s in again.sample] == [s.decision_id for s in audit.sample]
        first = audit.sample[0].decision_id
        with pytest.raises(ValidationError) as unexplained:
            prior_check.review_refusal(
                session,
                actor=region.qc,
                month=month,
                decision_id=first,
                justified=False,
                note="",
                now=after,
            )
        assert unexplained.value.field == "note"
        prior_check.review_refusal(
            session,
            actor=region.qc,
            month=month,
            decision_id=first,
            justified=False,
            note="病情记录未见变化",
            now=after,
        )
    with region.database.session() as session:
        reviewed = prior_check.refusal_audit(
            session, actor=region.qc, month=month, now=after, zone=ZONE, draw=False
        )
        assert reviewed.reviewed == 1 and reviewed.justified == 0
        done = next(s for s in reviewed.sample if s.decision_id == first)
        assert done.justified is False and done.reviewer == region.qc.display_name


def test_the_months_avoidable_exams_are_listed_with_their_cost(region: Region) -> None:
    from integration.avoidable import avoidable_exams, record

    repeated_at = SIGNED_AT + timedelta(days=2)
    with region.database.session() as session:
        repeat_id, _ = study_for_reading(
            session, clinic_code="QL-T01", uid="2.25.4343", completed_at=repeated_at
        )
        repeat = session.get(Study, repeat_id)
        exam = session.exec(select(ExamType).where(ExamType.code == region.exam_code)).one()
        clinic = session.exec(select(Facility).where(Facility.code == "QL-T01")).one()
        assert repeat is not None and repeat.patient_id == region.patient_id
    with region.database.engine.begin() as connection:
        found = avoidable_exams(
            connection,
            start=repeated_at - timedelta(hours=1),
            end=repeated_at + timedelta(hours=1),
            zone=ZONE,
        )
        assert [e.study_id for e in found] == [repeat_id]
        assert record(connection, found, now=repeated_at) == 1
    after = datetime(2026, 12, 3, tzinfo=UTC)
    with region.database.session() as session:
        with pytest.raises(PermissionDenied):
            prior_check.refusal_audit(
                session, actor=region.clinician, month="2026-11", now=after, zone=ZONE, draw=False
            )
        audit = prior_check.refusal_audit(
            session, actor=region.qc, month="2026-11", now=after, zone=ZONE, draw=False
        )
        (line,) = audit.avoidable
        assert line.study_id == repeat_id and line.performed_on == date(2026, 11, 26)
        assert (line.exam_name, line.facility) == (exam.name_zh, clinic.name)
        assert line.prior_performed_on == SIGNED_AT.astimezone(ZONE).date()
        assert line.fee_fen == exam.fee_fen == audit.avoidable_fee_fen > 0
        earlier = prior_check.refusal_audit(
            session, actor=region.qc, month="2026-10", now=after, zone=ZONE, draw=False
        )
        assert earlier.avoidable == () and earlier.avoidable_fee_fen == 0
