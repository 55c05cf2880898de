"""The reading desk's use-cases: the worklist, claims, the case, signing, retakes, critical results.

Every function takes the acting user as an `Actor` loaded from the database
for this request (`load_actor`), checks the action with `permissions.require`
and checks the facility next to the rows it reads. The portal keeps only the
plain values returned here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_
from sqlalchemy import select as select_rows
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from fhir.report import age_at
from integration import reporting
from integration.permissions import Action, Actor, actions_of, require
from integration.priors import catalogue, find_person, priors_of
from integration.report_templates import ReportTemplate, template_for
from integration.settings import Settings
from integration.sla import (
    Clock,
    Deadlines,
    ReadingCalendar,
    clock,
    current_due,
    deadlines,
)
from models import (
    AuditEvent,
    Consultation,
    CriticalResult,
    ExamType,
    Facility,
    Order,
    Patient,
    PatientIdentifier,
    QcEvent,
    Report,
    ReportRevision,
    Series,
    Study,
    User,
)
from models.enums import (
    AUDITOR_TITLES,
    AuditAction,
    ConsultationStatus,
    IdentifierKind,
    ImageGrade,
    Priority,
    ReadingStatus,
    ReportStatus,
    Role,
)
from models.errors import AuthenticationError, Conflict, NotFound, PermissionDenied, ValidationError
from models.lifecycle import READING_TRANSITIONS, REPORT_TRANSITIONS, check_transition

CRITICAL_NOTIFY_LIMIT = timedelta(minutes=10)  # national indicator: clinic told within 10 min
OPEN_STATUSES = (
    ReadingStatus.awaiting_preliminary,
    ReadingStatus.awaiting_audit,
    ReadingStatus.retake_requested,
)
_OPEN_CAP = 5000  # open studies of one centre read at once; far above a real backlog

# Image-quality reasons an auditor or radiologist can pick when asking for a retake.
RETAKE_REASONS: tuple[str, ...] = (
    "positioning",
    "motion_artifact",
    "underexposure",
    "overexposure",
    "foreign_body_artifact",
    "incomplete_coverage",
    "insufficient_inspiration",
    "missing_projection",
    "collimation",
    "grid_artifact",
    "side_marker",
    "wrong_patient",
)


def load_actor(session: Session, *, user_id: int, settings: Settings) -> Actor:
    """The user behind a portal session, as the database has them now (not as at sign-in)."""
    user = session.get(User, user_id) if user_id > 0 else None
    if user is None or user.id is None or not user.active:
        raise AuthenticationError("the signed-in account no longer exists or was deactivated")
    if user.is_demo and not settings.demo_accounts_allowed:
        raise AuthenticationError("demo accounts are refused in production")
    return Actor(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        title=user.title,
        facility_id=user.facility_id,
    )


def record_view(
    session: Session,
    *,
    actor: Actor,
    entity_type: str,
    entity_id: int,
    patient_id: int | None,
    now: datetime,
    source_address: str = "",
    action: AuditAction = AuditAction.read,
    detail: str = "",
) -> None:
    """An audit row for a person seeing (or exporting) a patient's record in the portal."""
    session.add(
        AuditEvent(
            recorded_at=now,
            action=action,
            actor=actor.username,
            actor_user_id=actor.user_id,
            facility_id=actor.facility_id,
            source_address=source_address[:64],
            entity_type=entity_type,
            entity_id=str(entity_id),
            patient_id=patient_id,
            detail=detail,
        )
    )


# --------------------------------------------------------------------------- the worklist


class WorklistView(StrEnum):
    open = "open"  # everything not yet final at the centre
    awaiting_preliminary = "awaiting_preliminary"
    awaiting_audit = "awaiting_audit"
    overdue = "overdue"
    mine = "mine"  # claimed by me
    retake_requested = "retake_requested"
    final = "final"  # signed, newest first


class WorklistSort(StrEnum):
    priority = "priority"  # emergency first, then by arrival (the region's reading order)
    arrival = "arrival"
    due = "due"
    clinic = "clinic"


@dataclass(frozen=True)
class WorklistQuery:
    view: WorklistView = WorklistView.open
    clinic_id: int | None = None
    modality: str = ""
    sort: WorklistSort = WorklistSort.priority
    descending: bool = False
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class WorklistRow:
    study_id: int
    accession: str
    patient_name: str
    sex: str
    age: str
    exam_name: str
    exam_name_en: str
    modality: str
    clinic_name: str
    clinic_name_en: str
    priority: Priority
    reading_status: ReadingStatus
    arrived_at: datetime
    due_at: datetime | None
    clock: Clock
    claimed_by: str  # display name of a live claim, else ""
    claimed_by_me: bool
    num_instances: int


@dataclass(frozen=True)
class WorklistPage:
    rows: tuple[WorklistRow, ...]
    total: int
    page: int
    pages: int
    counts: dict[str, int]  # per WorklistView value (not for final)
    clinics: tuple[tuple[int, str, str], ...]  # id, name, name_en: the filter's choices
    modalities: tuple[str, ...]


def _live_claim(study: Study, now: datetime) -> bool:
    return (
        study.claimed_by_id is not None
        and study.claimed_until is not None
        and study.claimed_until > now
    )


def study_deadlines(
    study: Study, preliminary_at: datetime | None, calendar: ReadingCalendar
) -> Deadlines | None:
    if study.completed_at is None:
        return None
    return deadlines(
        completed_at=study.completed_at,
        priority=study.priority,
        preliminary_at=preliminary_at,
        calendar=calendar,
    )


def _pages(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


def worklist(
    session: Session,
    *,
    actor: Actor,
    query: WorklistQuery,
    now: datetime,
    calendar: ReadingCalendar,
) -> WorklistPage:
    """One page of the actor's reading centre's worklist, filtered and sorted on the server."""
    require(actor, Action.read_worklist)
    page_size = min(max(query.page_size, 1), 100)
    clinic = aliased(Facility)
    claimer = aliased(User)
    base = (
        select_rows(Study, Patient, ExamType, clinic, Report, claimer)
        .join(clinic, col(clinic.id) == Study.facility_id)
        .outerjoin(Patient, col(Patient.id) == Study.patient_id)
        .outerjoin(ExamType, col(ExamType.id) == Study.exam_type_id)
        .outerjoin(Report, col(Report.study_id) == Study.id)
        .outerjoin(claimer, col(claimer.id) == Study.claimed_by_id)
        .where(col(Study.reading_centre_id) == actor.facility_id)
    )
    if query.clinic_id:
        base = base.where(col(Study.facility_id) == query.clinic_id)
    if query.modality:
        base = base.where(col(ExamType.modality) == query.modality)

    def row_of(
        item: tuple[Study, Patient | None, ExamType | None, Facility, Report | None, User | None],
    ) -> WorklistRow:
        study, patient, exam, site, report, who = item
        assert study.id is not None
        due = study_deadlines(study, report.preliminary_at if report else None, calendar)
        status = study.reading_status or ReadingStatus.awaiting_preliminary
        due_at = current_due(status, due) if due else None
        live = _live_claim(study, now)
        return WorklistRow(
            study_id=study.id,
            accession=study.accession_number or "",
            patient_name=patient.name if patient else study.dicom_patient_name,
            sex=patient.sex.value if patient else "",
            age=age_at(patient.birth_date, now.date()) if patient else "",
            exam_name=exam.name_zh if exam else study.description,
            exam_name_en=exam.name_en if exam else study.description,
            modality=exam.modality.value if exam else study.modalities,
            clinic_name=site.name,
            clinic_name_en=site.name_en,
            priority=study.priority,
            reading_status=status,
            arrived_at=study.completed_at or study.received_at,
            due_at=due_at,
            clock=clock(status, due_at, now),
            claimed_by=who.display_name if live and who else "",
            claimed_by_me=live and study.claimed_by_id == actor.user_id,
            num_instances=study.num_instances,
        )

    clinics = tuple(
        (int(site.id or 0), site.name, site.name_en)
        for site in session.exec(
            select(Facility)
            .where(col(Facility.reading_centre_id) == actor.facility_id)
            .order_by(col(Facility.code))
        ).all()
    )
    modalities = tuple(
        sorted({str(m) for m in session.exec(select(ExamType.modality).distinct()).all()})
    )

    if query.view is WorklistView.final:
        signed = base.where(col(Study.reading_status) == ReadingStatus.final)
        total = int(
            session.execute(select_rows(func.count()).select_from(signed.subquery())).scalar_one()
        )
        pages = _pages(total, page_size)
        page = min(max(query.page, 1), pages)
        items = session.execute(
            signed.order_by(col(Report.finalised_at).desc(), col(Study.id).desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        ).all()
        return WorklistPage(
            rows=tuple(row_of(item) for item in items),
            total=total,
            page=page,
            pages=pages,
            counts={},
            clinics=clinics,
            modalities=modalities,
        )

    open_rows = [
        row_of(item)
        for item in session.execute(
            base.where(col(Study.reading_status).in_(OPEN_STATUSES)).limit(_OPEN_CAP)
        ).all()
    ]
    selectors: dict[WorklistView, Callable[[WorklistRow], bool]] = {
        WorklistView.open: lambda r: r.reading_status is not ReadingStatus.retake_requested,
        WorklistView.awaiting_preliminary: lambda r: (
            r.reading_status is ReadingStatus.awaiting_preliminary
        ),
        WorklistView.awaiting_audit: lambda r: r.reading_status is ReadingStatus.awaiting_audit,
        WorklistView.overdue: lambda r: r.clock is Clock.overdue,
        WorklistView.mine: lambda r: r.claimed_by_me,
        WorklistView.retake_requested: lambda r: r.reading_status is ReadingStatus.retake_requested,
    }
    counts = {view.value: sum(1 for r in open_rows if pick(r)) for view, pick in selectors.items()}
    chosen = [r for r in open_rows if selectors[query.view](r)]
    chosen.sort(key=lambda r: (r.arrived_at, r.study_id), reverse=query.descending)
    far = datetime.max.replace(tzinfo=now.tzinfo)
    if query.sort is WorklistSort.priority:
        chosen.sort(key=lambda r: r.priority is not Priority.emergency)
    elif query.sort is WorklistSort.due:
        chosen.sort(key=lambda r: r.due_at or far, reverse=query.descending)
    elif query.sort is WorklistSort.clinic:
        chosen.sort(key=lambda r: r.clinic_name, reverse=query.descending)
    total = len(chosen)
    pages = _pages(total, page_size)
    page = min(max(query.page, 1), pages)
    return WorklistPage(
        rows=tuple(chosen[(page - 1) * page_size : page * page_size]),
        total=total,
        page=page,
        pages=pages,
        counts=counts,
        clinics=clinics,
        modalities=modalities,
    )


# --------------------------------------------------------------------------- claims


def _centre_study(session: Session, actor: Actor, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    if study.reading_centre_id != actor.facility_id:
        raise PermissionDenied("this study is read at another reading centre")
    return study


def _holder_name(session: Session, study: Study) -> str:
    holder = session.get(User, study.claimed_by_id) if study.claimed_by_id else None
    return holder.display_name if holder else "?"


def _check_not_taken(session: Session, study: Study, actor: Actor, now: datetime) -> None:
    if _live_claim(study, now) and study.claimed_by_id != actor.user_id:
        raise Conflict(f"{_holder_name(session, study)} is reading this study", field="claim")


def claim(
    session: Session, *, actor: Actor, study_id: int, now: datetime, minutes: int
) -> datetime:
    """Take a study so colleagues see it as taken; a claim lapses after ``minutes``.

    The row is re-read under the write, so two radiologists clicking together
    cannot both hold it.
    """
    require(actor, Action.claim)
    study = _centre_study(session, actor, study_id)
    if study.reading_status not in (
        ReadingStatus.awaiting_preliminary,
        ReadingStatus.awaiting_audit,
    ):
        raise ValidationError("only studies waiting for a report can be claimed", field="claim")
    until = now + timedelta(minutes=minutes)
    claimed = session.connection().execute(
        Study.__table__.update()  # type: ignore[attr-defined]
        .where(
            Study.__table__.c.id == study_id,  # type: ignore[attr-defined]
            or_(
                Study.__table__.c.claimed_by_id.is_(None),  # type: ignore[attr-defined]
                Study.__table__.c.claimed_by_id == actor.user_id,  # type: ignore[attr-defined]
                Study.__table__.c.claimed_until <= now,  # type: ignore[attr-defined]
            ),
        )
        .values(claimed_by_id=actor.user_id, claimed_until=until)
    )
    if claimed.rowcount != 1:
        session.refresh(study)
        raise Conflict(f"{_holder_name(session, study)} is reading this study", field="claim")
    session.refresh(study)
    return until


def release(session: Session, *, actor: Actor, study_id: int) -> None:
    """Give a claimed study back to the worklist (only its holder can)."""
    require(actor, Action.claim)
    study = _centre_study(session, actor, study_id)
    if study.claimed_by_id == actor.user_id:
        study.claimed_by_id = None
        study.claimed_until = None
        session.add(study)


def _clear_claim(study: Study) -> None:
    study.claimed_by_id = None
    study.claimed_until = None


# --------------------------------------------------------------------------- the case


class SegmentKind(StrEnum):
    same = "same"
    added = "added"
    removed = "removed"


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    text: str


def text_diff(before: str, after: str) -> tuple[Segment, ...]:
    """Character-level differences (Chinese has no spaces to split words on)."""
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    segments: list[Segment] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(Segment(SegmentKind.same, before[a0:a1]))
            continue
        if a1 > a0:
            segments.append(Segment(SegmentKind.removed, before[a0:a1]))
        if b1 > b0:
            segments.append(Segment(SegmentKind.added, after[b0:b1]))
    return tuple(segments)


@dataclass(frozen=True)
class RevisionLine:
    version: int
    status: ReportStatus
    editor: str
    created_at: datetime
    reason: str
    findings: tuple[Segment, ...]  # against the version before
    impression: tuple[Segment, ...]
    changed: bool


def revision_history(
    revisions: Sequence[ReportRevision], editors: dict[int, str]
) -> tuple[RevisionLine, ...]:
    """Each signed version with what it changed against the one before (newest first)."""
    lines: list[RevisionLine] = []
    previous: ReportRevision | None = None
    for revision in sorted(revisions, key=lambda r: r.version):
        # The first version is shown as written, not as all-new text.
        before_f = previous.findings if previous else revision.findings
        before_i = previous.impression if previous else revision.impression
        lines.append(
            RevisionLine(
                version=revision.version,
                status=revision.status,
                editor=editors.get(revision.editor_id, "?"),
                created_at=revision.created_at,
                reason=revision.reason,
                findings=text_diff(before_f, revision.findings),
                impression=text_diff(before_i, revision.impression),
                changed=previous is not None
                and reporting.is_correction(
                    (previous.findings, previous.impression),
                    (revision.findings, revision.impression),
                ),
            )
        )
        previous = revision
    return tuple(reversed(lines))


@dataclass(frozen=True)
class SeriesLine:
    number: int | None
    modality: str
    body_part: str
    description: str
    instances: int


@dataclass(frozen=True)
class PriorLine:
    performed_on: date
    exam_code: str
    facility: str
    report_status: str
    conclusion: str
    study_id: int | None  # the hub's own study, for a link; None for another node's


@dataclass(frozen=True)
class ConsultationLine:
    id: int
    requested_by: str
    expert: str
    expert_facility: str
    question: str
    opinion: str
    status: ConsultationStatus
    requested_at: datetime
    answered_at: datetime | None


@dataclass(frozen=True)
class CriticalLine:
    id: int
    description: str
    flagged_by: str
    flagged_at: datetime
    notify_due: datetime
    notified_at: datetime | None
    notified_to: str
    acknowledged_at: datetime | None
    acknowledged_by: str


@dataclass(frozen=True)
class ReadingCase:
    study_id: int
    study_uid: str
    accession: str
    priority: Priority
    reading_status: ReadingStatus | None
    arrived_at: datetime | None
    preliminary_due: datetime | None
    final_due: datetime | None
    due_at: datetime | None
    clock: Clock
    patient_id: int | None
    patient_name: str
    sex: str
    birth_date: date | None
    age: str
    resident_id: str  # masked: the middle digits hidden
    exam_code: str
    exam_name: str
    exam_name_en: str
    modality: str
    body_part: str
    clinic_name: str
    clinic_name_en: str
    ordering_provider: str
    reason: str
    requested_at: datetime | None
    num_series: int
    num_instances: int
    series: tuple[SeriesLine, ...]
    demographics_conflict: bool
    retake_of_study_id: int | None
    report_status: ReportStatus | None
    findings: str
    impression: str
    author: str
    auditor: str
    preliminary_at: datetime | None
    finalised_at: datetime | None
    image_grade: str
    critical: bool
    claimed_by: str
    claimed_by_me: bool
    claimed_until: datetime | None
    template: ReportTemplate
    revisions: tuple[RevisionLine, ...] = ()
    priors: tuple[PriorLine, ...] = ()
    consultations: tuple[ConsultationLine, ...] = ()
    critical_results: tuple[CriticalLine, ...] = ()
    retake_reason: str = ""
    retake_note: str = ""
    actions: frozenset[str] = field(default_factory=frozenset)


def mask_resident_id(value: str) -> str:
    """Show the region and the last four characters only (110105********1234)."""
    if len(value) != 18:
        return value
    return f"{value[:6]}{'*' * 8}{value[-4:]}"


def _may_see_case(session: Session, actor: Actor, study: Study) -> bool:
    if actor.role in (Role.radiologist, Role.auditor) and (
        study.reading_centre_id == actor.facility_id
    ):
        return True
    if actor.role not in (Role.radiologist, Role.auditor):
        return False
    consulted = session.exec(
        select(Consultation.id).where(
            col(Consultation.study_id) == study.id,
            or_(
                col(Consultation.expert_id) == actor.user_id,
                col(Consultation.expert_facility_id) == actor.facility_id,
            ),
        )
    ).first()
    return consulted is not None


def user_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        int(user.id or 0): user.display_name
        for user in session.exec(select(User).where(col(User.id).in_(ids))).all()
    }


def check_case_access(session: Session, *, actor: Actor, study_id: int) -> Study:
    """The study, if the actor may open its case (its reading centre, or a consulted expert)."""
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    if not _may_see_case(session, actor, study):
        raise PermissionDenied("this study is read at another reading centre")
    return study


def reading_case(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    now: datetime,
    calendar: ReadingCalendar,
    source_address: str = "",
) -> ReadingCase:
    """Everything the report editor shows about one study; the view is audited."""
    study = check_case_access(session, actor=actor, study_id=study_id)
    patient = session.get(Patient, study.patient_id) if study.patient_id else None
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    order = session.get(Order, study.order_id) if study.order_id else None
    clinic = session.get(Facility, study.facility_id)
    report = session.exec(select(Report).where(col(Report.study_id) == study_id)).first()
    resident = (
        session.exec(
            select(PatientIdentifier.value).where(
                col(PatientIdentifier.patient_id) == patient.id,
                col(PatientIdentifier.kind) == IdentifierKind.resident_id,
            )
        ).first()
        if patient
        else None
    )
    series = tuple(
        SeriesLine(s.number, s.modality, s.body_part, s.description, s.num_instances)
        for s in session.exec(
            select(Series).where(col(Series.study_id) == study_id).order_by(col(Series.number))
        ).all()
    )
    revisions_rows = (
        reporting.revisions(session, report_id=report.id) if report and report.id else []
    )
    consultations = session.exec(
        select(Consultation)
        .where(col(Consultation.study_id) == study_id)
        .order_by(col(Consultation.requested_at))
    ).all()
    criticals = session.exec(
        select(CriticalResult)
        .where(col(CriticalResult.study_id) == study_id)
        .order_by(col(CriticalResult.flagged_at))
    ).all()
    retake = session.exec(
        select(QcEvent)
        .where(col(QcEvent.study_id) == study_id, col(QcEvent.retake_requested).is_(True))
        .order_by(col(QcEvent.created_at).desc())
    ).first()
    people = {r.editor_id for r in revisions_rows}
    people |= {c.requested_by_id for c in consultations} | {
        c.expert_id for c in consultations if c.expert_id
    }
    people |= {c.flagged_by_id for c in criticals}
    if report:
        people |= {report.author_id} | ({report.auditor_id} if report.auditor_id else set())
    if study.claimed_by_id:
        people.add(study.claimed_by_id)
    names = user_names(session, people)
    centres = {
        int(f.id or 0): f.name
        for f in session.exec(
            select(Facility).where(
                col(Facility.id).in_({c.expert_facility_id for c in consultations} or {0})
            )
        ).all()
    }
    due = study_deadlines(study, report.preliminary_at if report else None, calendar)
    due_at = current_due(study.reading_status, due) if due else None
    live = _live_claim(study, now)
    prior_lines: tuple[PriorLine, ...] = ()
    if patient is not None and patient.id is not None:
        connection = session.connection()
        person = find_person(connection, fhir_id=str(patient.id))
        if person is not None:
            priors = priors_of(
                connection, person=person, exams=catalogue(connection), zone=calendar.zone
            )
            prior_lines = tuple(
                sorted(
                    (
                        PriorLine(
                            performed_on=p.performed_on,
                            exam_code=p.exam_code,
                            facility=p.facility,
                            report_status=p.report_status.value if p.report_status else "",
                            conclusion=p.conclusion,
                            study_id=int(p.study_ref.split("/")[1])
                            if not p.source and p.study_ref
                            else None,
                        )
                        for p in priors
                        if p.key != study.study_instance_uid
                    ),
                    key=lambda line: line.performed_on,
                    reverse=True,
                )
            )
    record_view(
        session,
        actor=actor,
        entity_type="Study",
        entity_id=study_id,
        patient_id=study.patient_id,
        now=now,
        source_address=source_address,
    )
    return ReadingCase(
        study_id=study_id,
        study_uid=study.study_instance_uid,
        accession=study.accession_number or "",
        priority=study.priority,
        reading_status=study.reading_status,
        arrived_at=study.completed_at,
        preliminary_due=due.preliminary_due if due else None,
        final_due=due.final_due if due else None,
        due_at=due_at,
        clock=clock(study.reading_status, due_at, now),
        patient_id=study.patient_id,
        patient_name=patient.name if patient else study.dicom_patient_name,
        sex=patient.sex.value if patient else "",
        birth_date=patient.birth_date if patient else None,
        age=age_at(patient.birth_date, now.date()) if patient else "",
        resident_id=mask_resident_id(resident) if resident else "",
        exam_code=exam.code if exam else "",
        exam_name=exam.name_zh if exam else study.description,
        exam_name_en=exam.name_en if exam else study.description,
        modality=exam.modality.value if exam else study.modalities,
        body_part=exam.body_part if exam else study.body_part,
        clinic_name=clinic.name if clinic else "",
        clinic_name_en=clinic.name_en if clinic else "",
        ordering_provider=order.ordering_provider if order else "",
        reason=order.reason if order else "",
        requested_at=order.requested_at if order else None,
        num_series=study.num_series,
        num_instances=study.num_instances,
        series=series,
        demographics_conflict=study.demographics_conflict,
        retake_of_study_id=study.retake_of_study_id,
        report_status=report.status if report else None,
        findings=report.findings if report else "",
        impression=report.impression if report else "",
        author=names.get(report.author_id, "") if report else "",
        auditor=names.get(report.auditor_id, "") if report and report.auditor_id else "",
        preliminary_at=report.preliminary_at if report else None,
        finalised_at=report.finalised_at if report else None,
        image_grade=report.image_grade.value if report and report.image_grade else "",
        critical=bool(report and report.critical),
        claimed_by=names.get(study.claimed_by_id, "") if live and study.claimed_by_id else "",
        claimed_by_me=live and study.claimed_by_id == actor.user_id,
        claimed_until=study.claimed_until if live else None,
        template=template_for(
            exam.modality.value if exam else study.modalities,
            exam.body_part if exam else study.body_part,
        ),
        revisions=revision_history(revisions_rows, names),
        priors=prior_lines,
        consultations=tuple(
            ConsultationLine(
                id=int(c.id or 0),
                requested_by=names.get(c.requested_by_id, "?"),
                expert=names.get(c.expert_id, "") if c.expert_id else "",
                expert_facility=centres.get(c.expert_facility_id, ""),
                question=c.question,
                opinion=c.opinion,
                status=c.status,
                requested_at=c.requested_at,
                answered_at=c.answered_at,
            )
            for c in consultations
        ),
        critical_results=tuple(critical_line(c, names) for c in criticals),
        retake_reason=retake.retake_reason or "" if retake else "",
        retake_note=retake.note if retake else "",
        actions=frozenset(a.value for a in actions_of(actor.role, actor.title))
        if study.reading_centre_id == actor.facility_id
        else frozenset({Action.answer_consultation.value}),
    )


def critical_line(result: CriticalResult, names: dict[int, str]) -> CriticalLine:
    return CriticalLine(
        id=int(result.id or 0),
        description=result.description,
        flagged_by=names.get(result.flagged_by_id, "?"),
        flagged_at=result.flagged_at,
        notify_due=result.flagged_at + CRITICAL_NOTIFY_LIMIT,
        notified_at=result.notified_at,
        notified_to=result.notified_to,
        acknowledged_at=result.acknowledged_at,
        acknowledged_by=result.acknowledged_by,
    )


# --------------------------------------------------------------------------- signing


def _signer(actor: Actor) -> reporting.Signer:
    return reporting.Signer(actor.user_id, actor.role, actor.title, actor.facility_id)


def _flag(
    session: Session, *, actor: Actor, study: Study, report: Report, description: str, now: datetime
) -> CriticalResult:
    description = description.strip()
    if not description:
        raise ValidationError("describe the critical finding", field="critical")
    if len(description) > 500:
        raise ValidationError("keep the critical finding under 500 characters", field="critical")
    if study.patient_id is None:
        raise ValidationError("the study has no patient to notify about", field="critical")
    assert report.id is not None and study.id is not None
    order = session.get(Order, study.order_id) if study.order_id else None
    result = CriticalResult(
        report_id=report.id,
        study_id=study.id,
        patient_id=study.patient_id,
        facility_id=order.ordering_facility_id if order else study.facility_id,
        flagged_by_id=actor.user_id,
        description=description,
        flagged_at=now,
        created_at=now,
    )
    report.critical = True
    session.add(report)
    session.add(result)
    session.flush()
    return result


def _write_step(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    critical: str,
    now: datetime,
    step: Callable[[], Report],
) -> Report:
    """A signed step on a study nobody else holds: the step, the claim released, the
    critical result (if one is described) flagged on the report just written."""
    study = _centre_study(session, actor, study_id)
    _check_not_taken(session, study, actor, now)
    report = step()
    _clear_claim(study)
    session.add(study)
    if critical.strip():
        _flag(session, actor=actor, study=study, report=report, description=critical, now=now)
    return report


def write_preliminary(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    findings: str,
    impression: str,
    critical: str = "",
    now: datetime,
    settings: Settings,
) -> Report:
    """The radiologist's preliminary; a critical finding given here starts its 10-minute clock."""
    require(actor, Action.write_preliminary)
    return _write_step(
        session,
        actor=actor,
        study_id=study_id,
        critical=critical,
        now=now,
        step=lambda: reporting.submit_preliminary(
            session,
            study_id=study_id,
            signer=_signer(actor),
            findings=findings,
            impression=impression,
            now=now,
            settings=settings,
        ),
    )


def sign(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    findings: str,
    impression: str,
    grade: str,
    critical: str = "",
    now: datetime,
    settings: Settings,
) -> Report:
    """The audit: final as written or edited (a correction), with the image grade."""
    require(actor, Action.audit)
    try:
        image_grade = ImageGrade(grade)
    except ValueError:
        raise ValidationError("grade the images A, B, C or D", field="grade") from None
    return _write_step(
        session,
        actor=actor,
        study_id=study_id,
        critical=critical,
        now=now,
        step=lambda: reporting.sign_final(
            session,
            study_id=study_id,
            signer=_signer(actor),
            findings=findings,
            impression=impression,
            grade=image_grade,
            now=now,
            settings=settings,
        ),
    )


def amend_report(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    findings: str,
    impression: str,
    reason: str,
    status: str,
    now: datetime,
    settings: Settings,
) -> Report:
    require(actor, Action.amend)
    try:
        new_status = ReportStatus(status)
    except ValueError:
        raise ValidationError("choose amended or corrected", field="status") from None
    return reporting.amend(
        session,
        study_id=study_id,
        signer=_signer(actor),
        findings=findings,
        impression=impression,
        reason=reason,
        status=new_status,
        now=now,
        settings=settings,
    )


def flag_critical(
    session: Session, *, actor: Actor, study_id: int, description: str, now: datetime
) -> CriticalResult:
    """Flag a critical result on a report already written."""
    require(actor, Action.flag_critical)
    study = _centre_study(session, actor, study_id)
    report = session.exec(select(Report).where(col(Report.study_id) == study_id)).first()
    if report is None:
        raise ValidationError(
            "write the report first; a critical result is flagged on a report", field="critical"
        )
    return _flag(session, actor=actor, study=study, report=report, description=description, now=now)


def record_notification(
    session: Session, *, actor: Actor, critical_id: int, notified_to: str, now: datetime
) -> None:
    """The reading side told the clinic (by phone, say): whom, and when."""
    require(actor, Action.notify_critical)
    result = session.get(CriticalResult, critical_id)
    if result is None:
        raise NotFound(f"critical result {critical_id} does not exist")
    _centre_study(session, actor, result.study_id)
    whom = notified_to.strip()
    if not whom:
        raise ValidationError("name the person at the clinic who was told", field="notified_to")
    if result.notified_at is None:
        result.notified_at = now
    result.notified_to = whom[:64]
    session.add(result)


def acknowledge_critical(
    session: Session, *, actor: Actor, critical_id: int, now: datetime
) -> None:
    """The clinic confirms it has the critical result; the portal counts as telling it."""
    require(actor, Action.acknowledge_critical)
    result = session.get(CriticalResult, critical_id)
    if result is None:
        raise NotFound(f"critical result {critical_id} does not exist")
    if result.facility_id != actor.facility_id:
        raise PermissionDenied("this critical result is for another facility")
    if result.acknowledged_at is not None:
        return
    if result.notified_at is None:
        result.notified_at = now
        result.notified_to = actor.display_name[:64]
    result.acknowledged_at = now
    result.acknowledged_by = actor.display_name[:64]
    session.add(result)


# --------------------------------------------------------------------------- retakes


def request_retake(
    session: Session, *, actor: Actor, study_id: int, reason: str, note: str, now: datetime
) -> QcEvent:
    """Reject the images: the clinic is asked to retake; no reading clock runs meanwhile.

    A new study for the same order starts a fresh clock (reconciliation links it
    to this one through ``retake_of_study_id``).
    """
    require(actor, Action.request_retake)
    if reason not in RETAKE_REASONS:
        raise ValidationError("choose why the images cannot be read", field="reason")
    if len(note) > 500:
        raise ValidationError("keep the note under 500 characters", field="note")
    study = _centre_study(session, actor, study_id)
    _check_not_taken(session, study, actor, now)
    if study.reading_status is None:
        raise ValidationError("the study is still arriving", field="study")
    study.reading_status = check_transition(
        READING_TRANSITIONS, study.reading_status, ReadingStatus.retake_requested
    )
    study.quality_rejected = True
    _clear_claim(study)
    session.add(study)
    report = session.exec(select(Report).where(col(Report.study_id) == study_id)).first()
    if report is not None and report.status is ReportStatus.preliminary:
        report.status = check_transition(REPORT_TRANSITIONS, report.status, ReportStatus.cancelled)
        report.updated_at = now
        session.add(report)
    event = QcEvent(
        study_id=study_id,
        facility_id=study.facility_id,
        reviewer_id=actor.user_id,
        grade=ImageGrade.D,
        artefact=reason.endswith("artifact"),
        retake_requested=True,
        retake_reason=reason,
        note=note.strip(),
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


# --------------------------------------------------------------------------- consultations


@dataclass(frozen=True)
class Expert:
    user_id: int
    name: str
    title: str
    facility_id: int
    facility_name: str
    facility_name_en: str


def experts(session: Session, *, actor: Actor) -> tuple[Expert, ...]:
    """Attending-or-above readers at other reading centres and higher-level hospitals."""
    require(actor, Action.request_consultation)
    rows = session.exec(
        select(User, Facility)
        .join(Facility, col(Facility.id) == User.facility_id)
        .where(
            col(User.active).is_(True),
            col(User.role).in_((Role.radiologist, Role.auditor)),
            col(User.title).in_(AUDITOR_TITLES),
            col(User.id) != actor.user_id,
            col(Facility.is_reading_centre).is_(True),
        )
        .order_by(col(Facility.code), col(User.display_name))
    ).all()
    return tuple(
        Expert(
            int(user.id or 0),
            user.display_name,
            user.title.value,
            int(site.id or 0),
            site.name,
            site.name_en,
        )
        for user, site in rows
    )


def request_consultation(
    session: Session,
    *,
    actor: Actor,
    study_id: int,
    expert_id: int,
    question: str,
    now: datetime,
) -> Consultation:
    require(actor, Action.request_consultation)
    study = _centre_study(session, actor, study_id)
    question = question.strip()
    if not question:
        raise ValidationError("write the question for the expert", field="question")
    if len(question) > 2000:
        raise ValidationError("keep the question under 2000 characters", field="question")
    expert = session.get(User, expert_id) if expert_id else None
    if (
        expert is None
        or not expert.active
        or expert.role not in (Role.radiologist, Role.auditor)
        or expert.id == actor.user_id
    ):
        raise ValidationError("choose an expert from the list", field="expert")
    consultation = Consultation(
        study_id=int(study.id or 0),
        requested_by_id=actor.user_id,
        from_centre_id=actor.facility_id,
        expert_id=expert.id,
        expert_facility_id=expert.facility_id,
        question=question,
        requested_at=now,
    )
    session.add(consultation)
    session.flush()
    return consultation


@dataclass(frozen=True)
class ConsultationItem:
    id: int
    study_id: int
    patient_name: str
    exam_name: str
    exam_name_en: str
    from_centre: str
    from_centre_en: str
    requested_by: str
    question: str
    opinion: str
    status: ConsultationStatus
    requested_at: datetime
    answered_at: datetime | None


def consultation_inbox(
    session: Session, *, actor: Actor, include_answered: bool = False
) -> tuple[ConsultationItem, ...]:
    """Consultations asked of the actor, or of their centre without a named expert."""
    require(actor, Action.answer_consultation)
    centre = aliased(Facility)
    statement = (
        select_rows(Consultation, Study, Patient, ExamType, centre, User)
        .join(Study, col(Study.id) == Consultation.study_id)
        .outerjoin(Patient, col(Patient.id) == Study.patient_id)
        .outerjoin(ExamType, col(ExamType.id) == Study.exam_type_id)
        .join(centre, col(centre.id) == Consultation.from_centre_id)
        .join(User, col(User.id) == Consultation.requested_by_id)
        .where(
            or_(
                col(Consultation.expert_id) == actor.user_id,
                (col(Consultation.expert_id).is_(None))
                & (col(Consultation.expert_facility_id) == actor.facility_id),
            )
        )
        .order_by(col(Consultation.requested_at).desc())
        .limit(200)
    )
    if not include_answered:
        statement = statement.where(col(Consultation.status) == ConsultationStatus.requested)
    return tuple(
        ConsultationItem(
            id=int(c.id or 0),
            study_id=int(s.id or 0),
            patient_name=p.name if p else s.dicom_patient_name,
            exam_name=e.name_zh if e else s.description,
            exam_name_en=e.name_en if e else s.description,
            from_centre=f.name,
            from_centre_en=f.name_en,
            requested_by=u.display_name,
            question=c.question,
            opinion=c.opinion,
            status=c.status,
            requested_at=c.requested_at,
            answered_at=c.answered_at,
        )
        for c, s, p, e, f, u in session.execute(statement).all()
    )


def answer_consultation(
    session: Session, *, actor: Actor, consultation_id: int, opinion: str, now: datetime
) -> None:
    """The expert's opinion, attached to the case (shown beside the report)."""
    require(actor, Action.answer_consultation)
    consultation = session.get(Consultation, consultation_id)
    if consultation is None:
        raise NotFound(f"consultation {consultation_id} does not exist")
    mine = consultation.expert_id == actor.user_id or (
        consultation.expert_id is None and consultation.expert_facility_id == actor.facility_id
    )
    if not mine:
        raise PermissionDenied("this consultation was asked of someone else")
    if consultation.status is not ConsultationStatus.requested:
        raise Conflict("this consultation is already answered", field="opinion")
    opinion = opinion.strip()
    if not opinion:
        raise ValidationError("write your opinion", field="opinion")
    if len(opinion) > 4000:
        raise ValidationError("keep the opinion under 4000 characters", field="opinion")
    consultation.opinion = opinion
    consultation.status = ConsultationStatus.answered
    consultation.answered_at = now
    consultation.expert_id = actor.user_id
    session.add(consultation)
