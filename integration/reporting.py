"""The two-step report: preliminary by a radiologist, audit to final, amendments after.

Every signed step writes an immutable ReportRevision. Signing final (and any
later correction) queues the ORU^R01 back to the ordering clinic in the same
transaction, so a report is never final without its delivery being on its way.
The rules (who may sign, what counts as a correction) are pure functions so
they can be tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from integration.audit_chain import revision_seal
from integration.fhir_publish import publish_report
from integration.report_return import queue_report_return
from integration.settings import Settings
from models import Order, QcEvent, Report, ReportRevision, Study
from models.enums import (
    AUDITOR_TITLES,
    ImageGrade,
    OrderStatus,
    ProfessionalTitle,
    ReadingStatus,
    ReportStatus,
    Role,
)
from models.errors import NotFound, PermissionDenied, ValidationError
from models.lifecycle import (
    ORDER_TRANSITIONS,
    READING_TRANSITIONS,
    REPORT_TRANSITIONS,
    check_transition,
)


@dataclass(frozen=True)
class Signer:
    """The person signing, as the portal knows them after login."""

    user_id: int
    role: Role
    title: ProfessionalTitle
    facility_id: int


def may_write_preliminary(signer: Signer) -> bool:
    return signer.role in (Role.radiologist, Role.auditor)


def may_audit(signer: Signer) -> bool:
    """Auditors hold attending title or above (the region's rule)."""
    return signer.role is Role.auditor and signer.title in AUDITOR_TITLES


def is_correction(preliminary: tuple[str, str], final: tuple[str, str]) -> bool:
    """A final whose findings or impression differ from the preliminary (whitespace aside)."""

    def normal(text: str) -> str:
        return " ".join(text.split())

    return any(normal(a) != normal(b) for a, b in zip(preliminary, final, strict=True))


def _text(findings: str, impression: str) -> tuple[str, str]:
    if not impression.strip():
        raise ValidationError("the impression (诊断意见) is required", field="impression")
    if not findings.strip():
        raise ValidationError("the findings (影像所见) are required", field="findings")
    return findings.strip(), impression.strip()


def _study_for(session: Session, study_id: int, signer: Signer) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    if study.reading_centre_id != signer.facility_id:
        raise PermissionDenied("this study is read at another reading centre")
    return study


def _revise(
    session: Session, report: Report, *, editor_id: int, reason: str, now: datetime
) -> None:
    assert report.id is not None
    revision = ReportRevision(
        report_id=report.id,
        version=report.version,
        status=report.status,
        findings=report.findings,
        impression=report.impression,
        editor_id=editor_id,
        reason=reason,
        created_at=now,
    )
    before = None
    if report.version > 1:  # the report row is locked by this change: the chain is ours to extend
        before = session.exec(
            select(ReportRevision.content_hash).where(
                ReportRevision.report_id == report.id,
                ReportRevision.version == report.version - 1,
            )
        ).first()
    revision.previous_hash, revision.content_hash = revision_seal(
        revision.model_dump(), previous_content_hash=before
    )
    session.add(revision)


def submit_preliminary(
    session: Session,
    *,
    study_id: int,
    signer: Signer,
    findings: str,
    impression: str,
    now: datetime,
    settings: Settings,
) -> Report:
    """The radiologist's preliminary report; the study moves to awaiting audit."""
    if not may_write_preliminary(signer):
        raise PermissionDenied("only radiologists and auditors write reports")
    findings, impression = _text(findings, impression)
    study = _study_for(session, study_id, signer)
    current = study.reading_status
    if current is None:
        raise ValidationError(
            "the study is still arriving; wait until it is complete", field="study"
        )
    study.reading_status = check_transition(
        READING_TRANSITIONS, current, ReadingStatus.awaiting_audit
    )
    report = session.exec(select(Report).where(Report.study_id == study_id)).first()
    if report is None:
        report = Report(
            study_id=study_id,
            order_id=study.order_id,
            reading_centre_id=study.reading_centre_id or signer.facility_id,
            status=ReportStatus.preliminary,
            findings=findings,
            impression=impression,
            author_id=signer.user_id,
            preliminary_at=now,
            version=1,
            updated_at=now,
        )
    else:
        check_transition(REPORT_TRANSITIONS, report.status, ReportStatus.preliminary)
        report.findings, report.impression = findings, impression
        report.author_id, report.preliminary_at = signer.user_id, now
        report.version += 1
        report.updated_at = now
    session.add(report)
    session.flush()
    _revise(session, report, editor_id=signer.user_id, reason="", now=now)
    if study.order_id is not None:
        order = session.get(Order, study.order_id)
        if order is not None and order.status is OrderStatus.scheduled:
            order.status = check_transition(
                ORDER_TRANSITIONS, order.status, OrderStatus.in_progress
            )
            order.updated_at = now
            session.add(order)
    session.add(study)
    session.flush()
    assert report.id is not None
    publish_report(session.connection(), report_id=report.id, now=now, settings=settings)
    return report


def sign_final(
    session: Session,
    *,
    study_id: int,
    signer: Signer,
    findings: str,
    impression: str,
    grade: ImageGrade,
    now: datetime,
    settings: Settings,
    technologist: str = "",
) -> Report:
    """The audit: sign final as written, or edited (a correction, kept as a revision)."""
    if not may_audit(signer):
        raise PermissionDenied("only auditors of attending title or above sign reports final")
    findings, impression = _text(findings, impression)
    study = _study_for(session, study_id, signer)
    report = session.exec(select(Report).where(Report.study_id == study_id)).first()
    if report is None or study.reading_status is None:
        raise ValidationError("there is no preliminary report to audit", field="study")
    study.reading_status = check_transition(
        READING_TRANSITIONS, study.reading_status, ReadingStatus.final
    )
    check_transition(REPORT_TRANSITIONS, report.status, ReportStatus.final)
    corrected = is_correction((report.findings, report.impression), (findings, impression))
    report.status = ReportStatus.final
    report.findings, report.impression = findings, impression
    report.auditor_id, report.finalised_at = signer.user_id, now
    report.corrected = corrected
    report.image_grade = grade
    report.version += 1
    report.updated_at = now
    session.add(report)
    session.flush()
    _revise(
        session, report, editor_id=signer.user_id, reason="审核修改" if corrected else "", now=now
    )
    session.add(
        QcEvent(
            study_id=study_id,
            facility_id=study.facility_id,
            technologist=technologist,
            reviewer_id=signer.user_id,
            grade=grade,
            artefact=grade in (ImageGrade.C, ImageGrade.D),
            created_at=now,
        )
    )
    if study.order_id is not None:
        order = session.get(Order, study.order_id)
        if order is not None and order.status in (OrderStatus.scheduled, OrderStatus.in_progress):
            order.status = check_transition(ORDER_TRANSITIONS, order.status, OrderStatus.completed)
            order.updated_at = now
            session.add(order)
    session.add(study)
    session.flush()
    assert report.id is not None
    queue_report_return(session.connection(), report_id=report.id, now=now, settings=settings)
    publish_report(session.connection(), report_id=report.id, now=now, settings=settings)
    return report


def amend(
    session: Session,
    *,
    study_id: int,
    signer: Signer,
    findings: str,
    impression: str,
    reason: str,
    status: ReportStatus,
    now: datetime,
    settings: Settings,
) -> Report:
    """A change after final: status amended or corrected, with the reason on record."""
    if not may_audit(signer):
        raise PermissionDenied("only auditors amend signed reports")
    if status not in (ReportStatus.amended, ReportStatus.corrected):
        raise ValidationError("an amendment is either amended or corrected", field="status")
    if not reason.strip():
        raise ValidationError("give the reason for changing a signed report", field="reason")
    findings, impression = _text(findings, impression)
    _study_for(session, study_id, signer)
    report = session.exec(select(Report).where(Report.study_id == study_id)).first()
    if report is None:
        raise NotFound(f"study {study_id} has no report")
    report.status = check_transition(REPORT_TRANSITIONS, report.status, status)
    report.findings, report.impression = findings, impression
    report.amended_at, report.corrected = now, True
    report.version += 1
    report.updated_at = now
    session.add(report)
    session.flush()
    _revise(session, report, editor_id=signer.user_id, reason=reason.strip(), now=now)
    session.flush()
    assert report.id is not None
    queue_report_return(session.connection(), report_id=report.id, now=now, settings=settings)
    publish_report(session.connection(), report_id=report.id, now=now, settings=settings)
    return report


def revisions(session: Session, *, report_id: int) -> list[ReportRevision]:
    return list(
        session.exec(
            select(ReportRevision)
            .where(ReportRevision.report_id == report_id)
            .order_by(col(ReportRevision.version))
        ).all()
    )
