"""The reading desk and the clinic view on a real SQLite file with the demo county.

A fresh study from township QL-T01 arrives at its reading centre QL-H01; the
radiologist claims and reports it, the auditor corrects and signs, the clinic
reads the report and acknowledges a critical result; retakes and consultations
go their own ways. Every step is checked for who may take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from integration import clinic, reading_desk
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.permissions import Actor
from integration.reconcile import attach
from integration.settings import Settings
from integration.sla import Clock, ReadingCalendar
from models import AuditEvent, Facility, Order, Report, Study, User
from models.enums import (
    AuditAction,
    ConsultationStatus,
    OrderStatus,
    Priority,
    ReadingStatus,
    ReportStatus,
    StudyStatus,
)
from models.errors import AuthenticationError, Conflict, PermissionDenied, ValidationError
from tests.databases import DemoSnapshots

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@dataclass
class Desk:
    database: Database
    settings: Settings
    calendar: ReadingCalendar
    study_id: int
    order_id: int
    radiologist: Actor
    auditor: Actor
    colleague: Actor  # another radiologist at the same centre
    technologist: Actor  # at the township that took the images and ordered
    clinician_elsewhere: Actor  # at another township
    expert: Actor  # an auditor at another county hospital

    def actor(self, session: Session, username: str) -> Actor:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.id is not None
        return reading_desk.load_actor(session, user_id=user.id, settings=self.settings)


def _new_study(session: Session, order: Order, centre_id: int, uid: str, **extra: object) -> Study:
    values: dict[str, object] = {
        "status": StudyStatus.complete,
        "reading_status": ReadingStatus.awaiting_preliminary,
        "received_at": NOW - timedelta(minutes=5),
        "completed_at": NOW,
        "num_series": 1,
        "num_instances": 3,
        **extra,
    }
    study = Study(
        study_instance_uid=uid,
        order_id=order.id,
        patient_id=order.patient_id,
        exam_type_id=order.exam_type_id,
        facility_id=order.performing_facility_id,
        reading_centre_id=centre_id,
        accession_number=order.accession_number,
        **values,  # type: ignore[arg-type]
    )
    session.add(study)
    session.flush()
    return study


@pytest.fixture
def desk(tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots) -> Iterator[Desk]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=9, exams=200, until=date(2026, 11, 20), progress=False),
    )
    with Session(database.engine, expire_on_commit=False) as session:
        t01 = session.exec(select(Facility).where(Facility.code == "QL-T01")).one()
        order = session.exec(
            select(Order).where(
                Order.status == OrderStatus.scheduled, Order.performing_facility_id == t01.id
            )
        ).first()
        assert order is not None and t01.reading_centre_id is not None
        order.ordering_facility_id = t01.id  # type: ignore[assignment]
        session.add(order)
        study = _new_study(session, order, t01.reading_centre_id, "2.25.9001")
        # Someone at another county hospital, attending or above, to consult.
        h01 = session.get(Facility, t01.reading_centre_id)
        assert h01 is not None
        other = session.exec(
            select(User)
            .join(Facility, col(Facility.id) == User.facility_id)
            .where(
                col(Facility.is_reading_centre).is_(True),
                col(Facility.id) != h01.id,
                User.username.endswith(".aud1"),  # type: ignore[attr-defined]
            )
        ).first()
        colleague = session.exec(
            select(User).where(
                User.facility_id == h01.id,
                User.username.endswith(".rad1"),  # type: ignore[attr-defined]
            )
        ).first()
        session.commit()
        assert other is not None and colleague is not None and study.id and order.id
        calendar = ReadingCalendar.from_settings(settings)
        made = Desk(
            database,
            settings,
            calendar,
            study.id,
            order.id,
            *(
                reading_desk.load_actor(session, user_id=user_id, settings=settings)
                for user_id in (
                    session.exec(select(User.id).where(User.username == "radiologist")).one(),
                    session.exec(select(User.id).where(User.username == "auditor")).one(),
                    colleague.id,
                    session.exec(select(User.id).where(User.username == "technologist")).one(),
                    session.exec(select(User.id).where(User.username == "clinician")).one(),
                    other.id,
                )
                if user_id is not None
            ),
        )
    yield made
    database.dispose()


def worklist_ids(desk: Desk, actor: Actor, **query: object) -> list[int]:
    with desk.database.session() as session:
        page = reading_desk.worklist(
            session,
            actor=actor,
            query=reading_desk.WorklistQuery(**query),  # type: ignore[arg-type]
            now=NOW + timedelta(minutes=1),
            calendar=desk.calendar,
        )
    return [row.study_id for row in page.rows]


def test_worklist_puts_emergencies_first_and_filters_on_the_server(desk: Desk) -> None:
    with desk.database.session() as session:
        order = session.get(Order, desk.order_id)
        assert order is not None
        urgent = _new_study(
            session,
            order,
            desk.radiologist.facility_id,
            "2.25.9002",
            priority=Priority.emergency,
            completed_at=NOW + timedelta(seconds=30),
        )
        urgent_id = urgent.id
    ids = worklist_ids(desk, desk.radiologist, page_size=100)
    assert ids.index(urgent_id) < ids.index(desk.study_id)  # type: ignore[arg-type]
    by_arrival = worklist_ids(desk, desk.radiologist, sort="arrival", page_size=100)
    assert by_arrival.index(desk.study_id) < by_arrival.index(urgent_id)  # type: ignore[arg-type]
    with desk.database.session() as session:
        page = reading_desk.worklist(
            session,
            actor=desk.radiologist,
            query=reading_desk.WorklistQuery(page_size=1),
            now=NOW + timedelta(minutes=1),
            calendar=desk.calendar,
        )
        first = page.rows[0]
        assert page.total >= 2 and page.pages == page.total and len(page.rows) == 1
        assert page.counts["awaiting_preliminary"] >= 2
        assert first.priority is Priority.emergency
        assert first.due_at == NOW + timedelta(seconds=30) + timedelta(minutes=30)
        assert first.clock is Clock.running
        own_clinic = urgent.facility_id
        other_clinic = next(c[0] for c in page.clinics if c[0] != own_clinic)
        modality = first.modality
    assert desk.study_id in worklist_ids(
        desk, desk.radiologist, clinic_id=own_clinic, page_size=100
    )
    assert desk.study_id not in worklist_ids(
        desk, desk.radiologist, clinic_id=other_clinic, page_size=100
    )
    assert desk.study_id in worklist_ids(desk, desk.radiologist, modality=modality, page_size=100)
    other_modality = "MG" if modality != "MG" else "CT"
    assert desk.study_id not in worklist_ids(
        desk, desk.radiologist, modality=other_modality, page_size=100
    )
    overdue = worklist_ids(desk, desk.radiologist, view="overdue", page_size=100)
    assert desk.study_id not in overdue
    with desk.database.session() as session:
        late = reading_desk.worklist(
            session,
            actor=desk.radiologist,
            query=reading_desk.WorklistQuery(view=reading_desk.WorklistView.overdue),
            now=NOW + timedelta(minutes=45),
            calendar=desk.calendar,
        )
    assert desk.study_id in [row.study_id for row in late.rows]
    with pytest.raises(PermissionDenied):
        worklist_ids(desk, desk.technologist)


def test_a_claim_holds_others_off_until_it_lapses(desk: Desk) -> None:
    with desk.database.session() as session:
        until = reading_desk.claim(
            session, actor=desk.radiologist, study_id=desk.study_id, now=NOW, minutes=20
        )
        assert until == NOW + timedelta(minutes=20)
    with desk.database.session() as session, pytest.raises(Conflict) as taken:
        reading_desk.claim(
            session,
            actor=desk.colleague,
            study_id=desk.study_id,
            now=NOW + timedelta(minutes=5),
            minutes=20,
        )
    assert desk.radiologist.display_name in str(taken.value)
    with desk.database.session() as session, pytest.raises(Conflict):
        reading_desk.write_preliminary(
            session,
            actor=desk.colleague,
            study_id=desk.study_id,
            findings="所见",
            impression="意见",
            now=NOW + timedelta(minutes=6),
            settings=desk.settings,
        )
    with desk.database.session() as session:
        page = reading_desk.worklist(
            session,
            actor=desk.colleague,
            query=reading_desk.WorklistQuery(page_size=100),
            now=NOW + timedelta(minutes=6),
            calendar=desk.calendar,
        )
        row = next(r for r in page.rows if r.study_id == desk.study_id)
        assert row.claimed_by == desk.radiologist.display_name and not row.claimed_by_me
    with desk.database.session() as session:  # lapsed: the colleague may take it
        reading_desk.claim(
            session,
            actor=desk.colleague,
            study_id=desk.study_id,
            now=NOW + timedelta(minutes=21),
            minutes=20,
        )
        reading_desk.release(session, actor=desk.colleague, study_id=desk.study_id)
        study = session.get(Study, desk.study_id)
        assert study is not None and study.claimed_by_id is None
    with desk.database.session() as session, pytest.raises(PermissionDenied):
        reading_desk.claim(session, actor=desk.expert, study_id=desk.study_id, now=NOW, minutes=20)


def test_preliminary_correction_history_and_the_clinic_reads_it(desk: Desk) -> None:
    with desk.database.session() as session:
        reading_desk.write_preliminary(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            findings="双肺纹理清晰。",
            impression="胸部未见明显异常。",
            critical="",
            now=NOW + timedelta(minutes=10),
            settings=desk.settings,
        )
    with desk.database.session() as session:
        assert reading_desk.worklist(
            session,
            actor=desk.auditor,
            query=reading_desk.WorklistQuery(view=reading_desk.WorklistView.awaiting_audit),
            now=NOW + timedelta(minutes=11),
            calendar=desk.calendar,
        ).rows[0].due_at == NOW + timedelta(minutes=40)
    with desk.database.session() as session, pytest.raises(PermissionDenied):
        reading_desk.sign(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            findings="x",
            impression="y",
            grade="A",
            now=NOW,
            settings=desk.settings,
        )
    with desk.database.session() as session, pytest.raises(ValidationError) as bad_grade:
        reading_desk.sign(
            session,
            actor=desk.auditor,
            study_id=desk.study_id,
            findings="x",
            impression="y",
            grade="E",
            now=NOW,
            settings=desk.settings,
        )
    assert bad_grade.value.field == "grade"
    with desk.database.session() as session:
        reading_desk.sign(
            session,
            actor=desk.auditor,
            study_id=desk.study_id,
            findings="双肺纹理清晰。",
            impression="右肺下叶小结节，建议随访。",
            grade="B",
            now=NOW + timedelta(minutes=25),
            settings=desk.settings,
        )
    with desk.database.session() as session:
        case = reading_desk.reading_case(
            session,
            actor=desk.auditor,
            study_id=desk.study_id,
            now=NOW + timedelta(minutes=30),
            calendar=desk.calendar,
            source_address="127.0.0.1",
        )
    assert case.report_status is ReportStatus.final and case.image_grade == "B"
    assert case.clock is Clock.done
    newest, first = case.revisions
    assert newest.changed and newest.reason == "审核修改" and not first.changed
    removed = "".join(
        s.text for s in newest.impression if s.kind is reading_desk.SegmentKind.removed
    )
    added = "".join(s.text for s in newest.impression if s.kind is reading_desk.SegmentKind.added)
    assert "未见明显异常" in removed and "小结节" in added
    assert case.template.key and case.template.impression

    with desk.database.session() as session:
        page = clinic.clinic_orders(
            session,
            actor=desk.technologist,
            query=clinic.ClinicQuery(view=clinic.ClinicView.reported, search=case.accession),
            now=NOW + timedelta(minutes=31),
            calendar=desk.calendar,
        )
        assert [row.study_id for row in page.rows] == [desk.study_id]
        assert page.rows[0].report_signed
        returned = clinic.returned_report(
            session, actor=desk.technologist, study_id=desk.study_id, now=NOW
        )
        assert returned.impression == "右肺下叶小结节，建议随访。"
        assert returned.auditor == desk.auditor.display_name
        name, pdf = clinic.returned_report_pdf(
            session, actor=desk.technologist, study_id=desk.study_id, now=NOW
        )
        assert name.endswith(".pdf") and pdf.startswith(b"%PDF")
        with pytest.raises(PermissionDenied):
            clinic.returned_report(
                session, actor=desk.clinician_elsewhere, study_id=desk.study_id, now=NOW
            )
        actions = session.exec(
            select(AuditEvent.action, AuditEvent.actor).where(
                AuditEvent.entity_type.in_(("Study", "DiagnosticReport"))  # type: ignore[attr-defined]
            )
        ).all()
    assert (AuditAction.read, desk.auditor.username) in actions
    assert (AuditAction.export, desk.technologist.username) in actions


def test_critical_result_is_shown_to_the_clinic_until_acknowledged(desk: Desk) -> None:
    with desk.database.session() as session, pytest.raises(ValidationError):
        reading_desk.flag_critical(
            session, actor=desk.radiologist, study_id=desk.study_id, description="气胸", now=NOW
        )
    with desk.database.session() as session:
        reading_desk.write_preliminary(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            findings="右侧胸腔无肺纹理透亮区，右肺压缩约70%。",
            impression="右侧大量气胸。",
            critical="右侧大量气胸，请立即处理",
            now=NOW + timedelta(minutes=8),
            settings=desk.settings,
        )
    with desk.database.session() as session:
        waiting = clinic.clinic_critical_results(session, actor=desk.technologist)
        assert [c.study_id for c in waiting] == [desk.study_id]
        line = waiting[0].result
        assert line.notify_due == NOW + timedelta(minutes=18) and line.notified_at is None
        assert clinic.clinic_critical_results(session, actor=desk.clinician_elsewhere) == ()
        with pytest.raises(PermissionDenied):
            reading_desk.acknowledge_critical(
                session, actor=desk.clinician_elsewhere, critical_id=line.id, now=NOW
            )
        with pytest.raises(ValidationError):
            reading_desk.record_notification(
                session, actor=desk.radiologist, critical_id=line.id, notified_to=" ", now=NOW
            )
        reading_desk.record_notification(
            session,
            actor=desk.radiologist,
            critical_id=line.id,
            notified_to="值班医生 李强",
            now=NOW + timedelta(minutes=12),
        )
    with desk.database.session() as session:
        reading_desk.acknowledge_critical(
            session, actor=desk.technologist, critical_id=line.id, now=NOW + timedelta(minutes=14)
        )
    with desk.database.session() as session:
        assert clinic.clinic_critical_results(session, actor=desk.technologist) == ()
        done = clinic.clinic_critical_results(
            session, actor=desk.technologist, include_acknowledged=True
        )[0].result
        assert done.notified_at == NOW + timedelta(minutes=12)
        assert done.notified_to == "值班医生 李强"
        assert done.acknowledged_by == desk.technologist.display_name
        report = session.exec(select(Report).where(Report.study_id == desk.study_id)).one()
        assert report.critical


def test_retake_stops_the_clock_and_a_new_study_resumes_it(desk: Desk) -> None:
    with desk.database.session() as session, pytest.raises(ValidationError):
        reading_desk.request_retake(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            reason="blurry",
            note="",
            now=NOW,
        )
    with desk.database.session() as session:
        reading_desk.request_retake(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            reason="motion_artifact",
            note="患者移动，请重新摄片",
            now=NOW + timedelta(minutes=3),
        )
    with desk.database.session() as session:
        requests = clinic.retake_requests(session, actor=desk.technologist)
        assert [r.study_id for r in requests] == [desk.study_id]
        assert requests[0].reason == "motion_artifact"
        row = clinic.clinic_orders(
            session,
            actor=desk.technologist,
            query=clinic.ClinicQuery(view=clinic.ClinicView.retake),
            now=NOW + timedelta(hours=2),
            calendar=desk.calendar,
        ).rows[0]
        assert row.study_id == desk.study_id and row.clock is Clock.stopped
        order = session.get(Order, desk.order_id)
        assert order is not None
        retake = _new_study(
            session,
            order,
            desk.radiologist.facility_id,
            "2.25.9003",
            completed_at=NOW + timedelta(hours=1),
        )
        assert retake.id is not None
        attach(
            session.connection(),
            study_id=retake.id,
            order_id=desk.order_id,
            now=NOW + timedelta(hours=1),
        )
    with desk.database.session() as session:
        assert clinic.retake_requests(session, actor=desk.technologist) == ()
        renewed = session.get(Study, retake.id)
        assert renewed is not None and renewed.retake_of_study_id == desk.study_id
    page_ids = worklist_ids(desk, desk.radiologist, page_size=100)
    assert retake.id in page_ids and desk.study_id not in page_ids


def test_consultation_goes_to_the_expert_and_comes_back_to_the_case(desk: Desk) -> None:
    with desk.database.session() as session:
        experts = reading_desk.experts(session, actor=desk.radiologist)
        assert desk.expert.user_id in [e.user_id for e in experts]
        assert desk.radiologist.user_id not in [e.user_id for e in experts]
        with pytest.raises(PermissionDenied):  # not consulted yet
            reading_desk.reading_case(
                session, actor=desk.expert, study_id=desk.study_id, now=NOW, calendar=desk.calendar
            )
        with pytest.raises(ValidationError) as empty:
            reading_desk.request_consultation(
                session,
                actor=desk.radiologist,
                study_id=desk.study_id,
                expert_id=desk.expert.user_id,
                question="  ",
                now=NOW,
            )
        assert empty.value.field == "question"
        reading_desk.request_consultation(
            session,
            actor=desk.radiologist,
            study_id=desk.study_id,
            expert_id=desk.expert.user_id,
            question="右肺门影增大，请会诊是否需增强CT。",
            now=NOW,
        )
    with desk.database.session() as session:
        inbox = reading_desk.consultation_inbox(session, actor=desk.expert)
        assert [i.study_id for i in inbox] == [desk.study_id]
        assert reading_desk.consultation_inbox(session, actor=desk.colleague) == ()
        reading_desk.reading_case(
            session, actor=desk.expert, study_id=desk.study_id, now=NOW, calendar=desk.calendar
        )
        with pytest.raises(PermissionDenied):
            reading_desk.answer_consultation(
                session, actor=desk.colleague, consultation_id=inbox[0].id, opinion="x", now=NOW
            )
        reading_desk.answer_consultation(
            session,
            actor=desk.expert,
            consultation_id=inbox[0].id,
            opinion="建议胸部增强CT。",
            now=NOW + timedelta(minutes=20),
        )
    with desk.database.session() as session:
        case = reading_desk.reading_case(
            session, actor=desk.radiologist, study_id=desk.study_id, now=NOW, calendar=desk.calendar
        )
        assert case.consultations[0].status is ConsultationStatus.answered
        assert case.consultations[0].opinion == "建议胸部增强CT。"
        with pytest.raises(Conflict):
            reading_desk.answer_consultation(
                session, actor=desk.expert, consultation_id=inbox[0].id, opinion="再议", now=NOW
            )


def test_a_deactivated_account_is_refused_on_its_next_request(desk: Desk) -> None:
    with desk.database.session() as session:
        user = session.get(User, desk.radiologist.user_id)
        assert user is not None
        user.active = False
        session.add(user)
    with desk.database.session() as session, pytest.raises(AuthenticationError):
        reading_desk.load_actor(session, user_id=desk.radiologist.user_id, settings=desk.settings)


def test_mask_resident_id() -> None:
    assert reading_desk.mask_resident_id("11010519491231002X") == "110105********002X"
    assert reading_desk.mask_resident_id("123") == "123"
