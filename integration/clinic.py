"""The clinic's view: its own orders and studies with their status and clock, the reports
that came back (on screen and as PDF), retake requests and critical results to acknowledge.

A clinic sees what it ordered or imaged, nothing else; every function scopes
its rows to the actor's facility.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, or_
from sqlalchemy import select as select_rows
from sqlmodel import Session, col, select

from fhir.pdf import report_pdf
from fhir.report import age_at
from integration.permissions import Action, Actor, require
from integration.reading_desk import (
    CriticalLine,
    critical_line,
    record_view,
    study_deadlines,
    user_names,
)
from integration.sla import Clock, ReadingCalendar, clock, current_due
from models import (
    Consultation,
    CriticalResult,
    ExamType,
    Facility,
    Order,
    Patient,
    QcEvent,
    Report,
    Study,
    User,
)
from models.enums import (
    AuditAction,
    ConsultationStatus,
    OrderStatus,
    Priority,
    ReadingStatus,
    ReportStatus,
)
from models.errors import NotFound, PermissionDenied
from models.lifecycle import SIGNED_REPORT_STATUSES


class ClinicView(StrEnum):
    all = "all"
    waiting_images = "waiting_images"  # ordered, no images yet
    reading = "reading"  # images at the reading centre, no signed report
    reported = "reported"  # a signed report came back
    retake = "retake"  # the images were rejected: take them again


@dataclass(frozen=True)
class ClinicQuery:
    view: ClinicView = ClinicView.all
    search: str = ""  # patient name or accession
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class ClinicRow:
    order_id: int
    accession: str
    patient_name: str
    sex: str
    age: str
    exam_name: str
    exam_name_en: str
    priority: Priority
    requested_at: datetime
    order_status: OrderStatus
    study_id: int | None
    reading_status: ReadingStatus | None
    due_at: datetime | None
    clock: Clock
    report_status: ReportStatus | None
    report_signed: bool
    critical_open: bool  # a critical result nobody here has acknowledged


@dataclass(frozen=True)
class ClinicPage:
    rows: tuple[ClinicRow, ...]
    total: int
    page: int
    pages: int


def clinic_orders(
    session: Session,
    *,
    actor: Actor,
    query: ClinicQuery,
    now: datetime,
    calendar: ReadingCalendar,
) -> ClinicPage:
    """The facility's orders, newest first, each with its latest study and report."""
    require(actor, Action.view_clinic)
    page_size = min(max(query.page_size, 1), 100)
    latest = (
        select_rows(func.max(col(Study.id)).label("study_id"), col(Study.order_id))
        .where(col(Study.order_id).is_not(None))
        .group_by(col(Study.order_id))
        .subquery()
    )
    statement = (
        select_rows(Order, Patient, ExamType, Study, Report)
        .join(Patient, col(Patient.id) == Order.patient_id)
        .join(ExamType, col(ExamType.id) == Order.exam_type_id)
        .outerjoin(latest, latest.c.order_id == Order.id)
        .outerjoin(Study, col(Study.id) == latest.c.study_id)
        .outerjoin(Report, col(Report.study_id) == Study.id)
        .where(
            or_(
                col(Order.ordering_facility_id) == actor.facility_id,
                col(Order.performing_facility_id) == actor.facility_id,
            )
        )
    )
    term = query.search.strip()
    if term:
        like = f"%{term.replace('%', '').replace('_', '')}%"
        statement = statement.where(
            or_(col(Patient.name).like(like), col(Order.accession_number).like(like))
        )
    if query.view is ClinicView.waiting_images:
        statement = statement.where(
            col(Study.id).is_(None), col(Order.status) == OrderStatus.scheduled
        )
    elif query.view is ClinicView.reading:
        statement = statement.where(
            col(Study.reading_status).in_(
                (ReadingStatus.awaiting_preliminary, ReadingStatus.awaiting_audit)
            )
        )
    elif query.view is ClinicView.reported:
        statement = statement.where(col(Report.status).in_(SIGNED_REPORT_STATUSES))
    elif query.view is ClinicView.retake:
        statement = statement.where(col(Study.reading_status) == ReadingStatus.retake_requested)
    total = int(
        session.execute(select_rows(func.count()).select_from(statement.subquery())).scalar_one()
    )
    pages = max(1, -(-total // page_size))
    page = min(max(query.page, 1), pages)
    items = session.execute(
        statement.order_by(col(Order.requested_at).desc(), col(Order.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    study_ids = [study.id for _, _, _, study, _ in items if study is not None]
    open_critical = set(
        session.exec(
            select(CriticalResult.study_id).where(
                col(CriticalResult.study_id).in_(study_ids or [0]),
                col(CriticalResult.acknowledged_at).is_(None),
                col(CriticalResult.facility_id) == actor.facility_id,
            )
        ).all()
    )
    rows = []
    for order, patient, exam, study, report in items:
        due = (
            study_deadlines(study, report.preliminary_at if report else None, calendar)
            if study is not None
            else None
        )
        status = study.reading_status if study is not None else None
        due_at = current_due(status, due) if due else None
        rows.append(
            ClinicRow(
                order_id=int(order.id or 0),
                accession=order.accession_number,
                patient_name=patient.name,
                sex=patient.sex.value,
                age=age_at(patient.birth_date, now.date()),
                exam_name=exam.name_zh,
                exam_name_en=exam.name_en,
                priority=order.priority,
                requested_at=order.requested_at,
                order_status=order.status,
                study_id=study.id if study is not None else None,
                reading_status=status,
                due_at=due_at,
                clock=clock(status, due_at, now) if study is not None else Clock.done,
                report_status=report.status if report is not None else None,
                report_signed=report is not None and report.status in SIGNED_REPORT_STATUSES,
                critical_open=study is not None and study.id in open_critical,
            )
        )
    return ClinicPage(rows=tuple(rows), total=total, page=page, pages=pages)


@dataclass(frozen=True)
class RetakeRequest:
    study_id: int
    accession: str
    patient_name: str
    exam_name: str
    exam_name_en: str
    reason: str  # a reading_desk.RETAKE_REASONS code
    note: str
    requested_by: str
    requested_at: datetime


def retake_requests(session: Session, *, actor: Actor) -> tuple[RetakeRequest, ...]:
    """Rejected images of this facility still waiting for their retake."""
    require(actor, Action.view_clinic)
    rows = session.execute(
        select_rows(QcEvent, Study, Patient, ExamType, User)
        .join(Study, col(Study.id) == QcEvent.study_id)
        .outerjoin(Patient, col(Patient.id) == Study.patient_id)
        .outerjoin(ExamType, col(ExamType.id) == Study.exam_type_id)
        .join(User, col(User.id) == QcEvent.reviewer_id)
        .where(
            col(QcEvent.retake_requested).is_(True),
            col(QcEvent.retake_study_id).is_(None),
            col(Study.facility_id) == actor.facility_id,
        )
        .order_by(col(QcEvent.created_at).desc())
        .limit(200)
    ).all()
    return tuple(
        RetakeRequest(
            study_id=int(study.id or 0),
            accession=study.accession_number or "",
            patient_name=patient.name if patient else study.dicom_patient_name,
            exam_name=exam.name_zh if exam else study.description,
            exam_name_en=exam.name_en if exam else study.description,
            reason=event.retake_reason or "",
            note=event.note,
            requested_by=reviewer.display_name,
            requested_at=event.created_at,
        )
        for event, study, patient, exam, reviewer in rows
    )


@dataclass(frozen=True)
class ClinicCritical:
    study_id: int
    accession: str
    patient_name: str
    exam_name: str
    exam_name_en: str
    result: CriticalLine


def clinic_critical_results(
    session: Session, *, actor: Actor, include_acknowledged: bool = False
) -> tuple[ClinicCritical, ...]:
    """Critical results for this facility; unacknowledged ones stay until someone here confirms."""
    require(actor, Action.view_clinic)
    statement = (
        select_rows(CriticalResult, Study, Patient, ExamType)
        .join(Study, col(Study.id) == CriticalResult.study_id)
        .join(Patient, col(Patient.id) == CriticalResult.patient_id)
        .outerjoin(ExamType, col(ExamType.id) == Study.exam_type_id)
        .where(col(CriticalResult.facility_id) == actor.facility_id)
        .order_by(col(CriticalResult.flagged_at).desc())
        .limit(100)
    )
    if not include_acknowledged:
        statement = statement.where(col(CriticalResult.acknowledged_at).is_(None))
    rows = session.execute(statement).all()
    names = user_names(session, {result.flagged_by_id for result, _, _, _ in rows})
    return tuple(
        ClinicCritical(
            study_id=int(study.id or 0),
            accession=study.accession_number or "",
            patient_name=patient.name,
            exam_name=exam.name_zh if exam else study.description,
            exam_name_en=exam.name_en if exam else study.description,
            result=critical_line(result, names),
        )
        for result, study, patient, exam in rows
    )


@dataclass(frozen=True)
class ReturnedReport:
    """A signed report as the clinic reads and prints it."""

    study_id: int
    accession: str
    patient_name: str
    sex: str
    age: str
    exam_name: str
    exam_name_en: str
    clinic_name: str
    reading_centre_name: str
    status: ReportStatus
    findings: str
    impression: str
    author: str
    auditor: str
    preliminary_at: datetime
    finalised_at: datetime | None
    amended_at: datetime | None
    critical: bool
    opinions: tuple[str, ...]  # consultation opinions attached to the case


def _clinic_study(session: Session, actor: Actor, study_id: int) -> tuple[Study, Report]:
    require(actor, Action.view_clinic)
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    order = session.get(Order, study.order_id) if study.order_id else None
    ours = study.facility_id == actor.facility_id or (
        order is not None and order.ordering_facility_id == actor.facility_id
    )
    if not ours:
        raise PermissionDenied("this study belongs to another facility")
    report = session.exec(select(Report).where(col(Report.study_id) == study_id)).first()
    if report is None or report.status not in SIGNED_REPORT_STATUSES:
        raise NotFound("no signed report yet for this study")
    return study, report


def returned_report(
    session: Session, *, actor: Actor, study_id: int, now: datetime, source_address: str = ""
) -> ReturnedReport:
    study, report = _clinic_study(session, actor, study_id)
    patient = session.get(Patient, study.patient_id) if study.patient_id else None
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    clinic = session.get(Facility, study.facility_id)
    centre = session.get(Facility, report.reading_centre_id)
    names = user_names(
        session, {report.author_id} | ({report.auditor_id} if report.auditor_id else set())
    )
    opinions = session.exec(
        select(Consultation.opinion).where(
            col(Consultation.study_id) == study_id,
            col(Consultation.status) == ConsultationStatus.answered,
        )
    ).all()
    record_view(
        session,
        actor=actor,
        entity_type="DiagnosticReport",
        entity_id=int(report.id or 0),
        patient_id=study.patient_id,
        now=now,
        source_address=source_address,
    )
    return ReturnedReport(
        study_id=study_id,
        accession=study.accession_number or "",
        patient_name=patient.name if patient else study.dicom_patient_name,
        sex=patient.sex.value if patient else "",
        age=age_at(patient.birth_date, now.date()) if patient else "",
        exam_name=exam.name_zh if exam else study.description,
        exam_name_en=exam.name_en if exam else study.description,
        clinic_name=clinic.name if clinic else "",
        reading_centre_name=centre.name if centre else "",
        status=report.status,
        findings=report.findings,
        impression=report.impression,
        author=names.get(report.author_id, ""),
        auditor=names.get(report.auditor_id, "") if report.auditor_id else "",
        preliminary_at=report.preliminary_at,
        finalised_at=report.finalised_at,
        amended_at=report.amended_at,
        critical=report.critical,
        opinions=tuple(opinions),
    )


def returned_report_pdf(
    session: Session, *, actor: Actor, study_id: int, now: datetime, source_address: str = ""
) -> tuple[str, bytes]:
    """The signed report as an A4 PDF (file name, bytes); the export is audited."""
    study, report = _clinic_study(session, actor, study_id)
    patient = session.get(Patient, study.patient_id) if study.patient_id else None
    if patient is None:
        raise NotFound("the study has no registered patient")
    author = session.get(User, report.author_id)
    auditor = session.get(User, report.auditor_id) if report.auditor_id else None
    clinic = session.get(Facility, study.facility_id)
    centre = session.get(Facility, report.reading_centre_id)
    assert author is not None and clinic is not None and centre is not None
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    document = report_pdf(
        report,
        study=study,
        patient=patient,
        exam=exam,
        author=author,
        auditor=auditor,
        facility=clinic,
        reading_centre=centre,
    )
    record_view(
        session,
        actor=actor,
        entity_type="DiagnosticReport",
        entity_id=int(report.id or 0),
        patient_id=study.patient_id,
        now=now,
        source_address=source_address,
        action=AuditAction.export,
        detail="PDF",
    )
    return f"report-{study.accession_number or study_id}.pdf", document
