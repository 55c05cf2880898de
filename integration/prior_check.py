"""The clinician's prior-exam check in the portal, and the QC officer's monthly refusal audit.

The same rules as the CDS Hooks service (`integration.recognition`) over the
same priors (`integration.priors`); here a clinician finds the patient, picks
the exam, reads the verdicts and records accept or refuse. Patients of other
facilities are found only by their resident ID: a name search covers the
actor's own facility's patients, so the check opens no window onto the
region's records beyond the priors of the patient at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlalchemy import select as select_rows
from sqlmodel import Session, col, select

from integration.permissions import Action, Actor, require
from integration.priors import catalogue, find_person, priors_of
from integration.reading_desk import mask_resident_id, record_view, user_names
from integration.recognition import ExamSpec, Rules, verdicts
from integration.refusal_audit import draw_month, month_bounds, review, sample_report
from models import (
    AuditEvent,
    AvoidableExam,
    ExamType,
    Facility,
    Order,
    Patient,
    PatientIdentifier,
    RecognitionDecision,
    Report,
    Study,
    metadata,
)
from models.enums import (
    AuditAction,
    IdentifierKind,
    RecognitionOutcome,
    RecognitionSource,
    RefusalReason,
)
from models.errors import NotFound, ValidationError
from models.identity import normalise_resident_id

MAX_HITS = 20


@dataclass(frozen=True)
class PatientHit:
    patient_id: int
    name: str
    sex: str
    birth_date: date | None
    resident_id: str  # masked


def find_patients(
    session: Session, *, actor: Actor, term: str, now: datetime
) -> tuple[PatientHit, ...]:
    """A resident ID finds the person anywhere in the region; a name, only at one's facility."""
    require(actor, Action.check_priors)
    term = term.strip()
    if len(term) < 2:
        raise ValidationError(
            "enter a resident ID or at least two characters of the name", field="term"
        )
    if term[:17].isdigit() and len(term) == 18:
        try:
            resident = normalise_resident_id(term)
        except ValidationError:
            raise ValidationError("this resident ID fails its check digit", field="term") from None
        statement = (
            select(Patient)
            .join(PatientIdentifier, col(PatientIdentifier.patient_id) == Patient.id)
            .where(
                col(PatientIdentifier.kind) == IdentifierKind.resident_id,
                col(PatientIdentifier.value) == resident,
                col(Patient.merged_into_id).is_(None),
            )
        )
    else:
        like = f"%{term.replace('%', '').replace('_', '')}%"
        ours = select(Order.patient_id).where(
            or_(
                col(Order.ordering_facility_id) == actor.facility_id,
                col(Order.performing_facility_id) == actor.facility_id,
            )
        )
        statement = (
            select(Patient)
            .where(
                col(Patient.name).like(like),
                col(Patient.id).in_(ours),
                col(Patient.merged_into_id).is_(None),
            )
            .order_by(col(Patient.name), col(Patient.id))
        )
    patients = session.exec(statement.limit(MAX_HITS)).all()
    residents = {
        identifier.patient_id: identifier.value
        for identifier in session.exec(
            select(PatientIdentifier).where(
                col(PatientIdentifier.patient_id).in_([p.id for p in patients] or [0]),
                col(PatientIdentifier.kind) == IdentifierKind.resident_id,
            )
        ).all()
    }
    session.add(_search_audit(actor, term if not term.isdigit() else mask_resident_id(term), now))
    return tuple(
        PatientHit(
            patient_id=int(p.id or 0),
            name=p.name,
            sex=p.sex.value,
            birth_date=p.birth_date,
            resident_id=mask_resident_id(residents.get(int(p.id or 0), "")),
        )
        for p in patients
    )


def _search_audit(actor: Actor, term: str, now: datetime) -> AuditEvent:
    return AuditEvent(
        recorded_at=now,
        action=AuditAction.execute,
        actor=actor.username,
        actor_user_id=actor.user_id,
        facility_id=actor.facility_id,
        entity_type="Patient",
        entity_id="search",
        detail=f"prior-exam check search: {term}",
    )


@dataclass(frozen=True)
class ExamChoice:
    code: str
    name_zh: str
    name_en: str
    modality: str
    recognised: bool


def exam_choices(session: Session, *, actor: Actor) -> tuple[ExamChoice, ...]:
    require(actor, Action.check_priors)
    return tuple(
        ExamChoice(e.code, e.name_zh, e.name_en, e.modality.value, e.recognised)
        for e in session.exec(
            select(ExamType).where(col(ExamType.active).is_(True)).order_by(col(ExamType.code))
        ).all()
    )


@dataclass(frozen=True)
class VerdictLine:
    key: str  # the prior's Study Instance UID
    exam_code: str
    performed_on: date
    facility: str
    source: str  # "" here, else the node that sent it
    recognisable: bool
    reasons: tuple[str, ...]  # recognition.Reason values
    valid_until: date
    same_type: bool
    conclusion: str
    study_id: int | None  # the hub's own study: its report can be opened


@dataclass(frozen=True)
class PriorCheck:
    patient_id: int
    exam: ExamSpec
    lines: tuple[VerdictLine, ...]

    @property
    def recognisable(self) -> tuple[VerdictLine, ...]:
        return tuple(line for line in self.lines if line.recognisable)


def _exam(session: Session, code: str) -> ExamSpec:
    exam = next((e for e in catalogue(session.connection()) if e.code == code), None)
    if exam is None:
        raise ValidationError("choose an exam from the catalogue", field="exam")
    return exam


def check(
    session: Session,
    *,
    actor: Actor,
    patient_id: int,
    exam_code: str,
    now: datetime,
    rules: Rules,
    zone: ZoneInfo,
) -> PriorCheck:
    """Every prior of the patient that could stand for the exam, with its verdict; audited."""
    require(actor, Action.check_priors)
    exam = _exam(session, exam_code)
    connection = session.connection()
    person = find_person(connection, fhir_id=str(patient_id))
    if person is None or patient_id not in person.patient_ids:
        raise NotFound(f"patient {patient_id} does not exist")
    priors = priors_of(connection, person=person, exams=catalogue(connection), zone=zone)
    today = now.astimezone(zone).date()
    found = verdicts(priors, requested=exam, on=today, rules=rules)
    record_view(
        session,
        actor=actor,
        entity_type="Patient",
        entity_id=patient_id,
        patient_id=patient_id,
        now=now,
        detail=f"prior-exam check for {exam.code}",
    )
    return PriorCheck(
        patient_id=patient_id,
        exam=exam,
        lines=tuple(
            VerdictLine(
                key=v.prior.key,
                exam_code=v.prior.exam_code,
                performed_on=v.prior.performed_on,
                facility=v.prior.facility,
                source=v.prior.source,
                recognisable=v.recognisable,
                reasons=tuple(r.value for r in v.reasons),
                valid_until=v.valid_until,
                same_type=v.same_type,
                conclusion=v.prior.conclusion,
                study_id=int(v.prior.study_ref.split("/")[1])
                if not v.prior.source and v.prior.study_ref
                else None,
            )
            for v in found
        ),
    )


@dataclass(frozen=True)
class PriorReport:
    study_id: int
    exam_name: str
    facility: str
    performed: datetime | None
    status: str
    findings: str
    impression: str
    author: str
    auditor: str


def prior_report(
    session: Session, *, actor: Actor, patient_id: int, study_id: int, now: datetime
) -> PriorReport:
    """The report of a prior, for the clinician weighing it (only the patient's own studies)."""
    require(actor, Action.check_priors)
    connection = session.connection()
    person = find_person(connection, fhir_id=str(patient_id))
    study = session.get(Study, study_id)
    if study is None or person is None or study.patient_id not in person.patient_ids:
        raise NotFound("no such prior of this patient")
    report = session.exec(select(Report).where(col(Report.study_id) == study_id)).first()
    if report is None:
        raise NotFound("this prior has no report")
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    site = session.get(Facility, study.facility_id)
    names = user_names(
        session, {report.author_id} | ({report.auditor_id} if report.auditor_id else set())
    )
    record_view(
        session,
        actor=actor,
        entity_type="DiagnosticReport",
        entity_id=int(report.id or 0),
        patient_id=study.patient_id,
        now=now,
        detail="prior-exam check",
    )
    return PriorReport(
        study_id=study_id,
        exam_name=exam.name_zh if exam else study.description,
        facility=site.name if site else "",
        performed=study.started_at or study.completed_at,
        status=report.status.value,
        findings=report.findings,
        impression=report.impression,
        author=names.get(report.author_id, ""),
        auditor=names.get(report.auditor_id, "") if report.auditor_id else "",
    )


def decide(
    session: Session,
    *,
    actor: Actor,
    patient_id: int,
    exam_code: str,
    prior_key: str,
    accepted: bool,
    reason: str,
    comment: str,
    now: datetime,
    rules: Rules,
    zone: ZoneInfo,
) -> RecognitionDecision:
    """Record the clinician's answer to a recognisable prior: reuse it, or refuse with a reason."""
    require(actor, Action.check_priors)
    found = check(
        session,
        actor=actor,
        patient_id=patient_id,
        exam_code=exam_code,
        now=now,
        rules=rules,
        zone=zone,
    )
    line = next((v for v in found.recognisable if v.key == prior_key), None)
    if line is None:
        raise ValidationError("this prior is not recognisable for the exam", field="prior")
    refusal: RefusalReason | None = None
    if not accepted:
        try:
            refusal = RefusalReason(reason)
        except ValueError:
            raise ValidationError(
                "choose the reason for not reusing the prior", field="reason"
            ) from None
        if refusal is RefusalReason.other and not comment.strip():
            raise ValidationError("say why, when the reason is 'other'", field="comment")
    if len(comment) > 500:
        raise ValidationError("keep the comment under 500 characters", field="comment")
    exam_type = session.exec(select(ExamType).where(col(ExamType.code) == exam_code)).one()
    prior_report_id = (
        session.exec(select(Report.id).where(col(Report.study_id) == line.study_id)).first()
        if line.study_id
        else None
    )
    decision = RecognitionDecision(
        patient_id=patient_id,
        requested_exam_type_id=int(exam_type.id or 0),
        prior_study_id=line.study_id,
        prior_report_id=prior_report_id,
        facility_id=actor.facility_id,
        clinician_id=actor.user_id,
        clinician_ref=actor.username,
        outcome=RecognitionOutcome.accepted if accepted else RecognitionOutcome.refused,
        refusal_reason=refusal,
        comment=comment.strip(),
        source=RecognitionSource.portal,
        avoided_fee_fen=found.exam.fee_fen if accepted else 0,
        decided_at=now,
    )
    session.add(decision)
    session.flush()
    return decision


# ------------------------------------------------------------------ the monthly refusal audit


@dataclass(frozen=True)
class SampledRefusal:
    decision_id: int
    decided_at: datetime
    patient_name: str
    exam_name: str
    facility: str
    clinician: str
    reason: str  # RefusalReason value
    comment: str
    prior_facility: str
    prior_performed: datetime | None
    justified: bool | None
    note: str
    reviewer: str


@dataclass(frozen=True)
class AvoidableLine:
    """An exam on the nightly check's list: done though a recognisable prior existed."""

    study_id: int
    performed_on: date
    patient_name: str
    exam_name: str
    facility: str
    prior_facility: str
    prior_performed_on: date
    fee_fen: int


@dataclass(frozen=True)
class RefusalAudit:
    month: str
    seed: str
    refusals: int
    drawn: int
    reviewed: int
    justified: int
    drawable: bool  # the month has ended, so its sample can be drawn
    sample: tuple[SampledRefusal, ...]
    avoidable: tuple[AvoidableLine, ...]  # the month's avoidable exams, oldest first
    avoidable_fee_fen: int


def avoidable_in_month(session: Session, *, month: str, zone: ZoneInfo) -> list[AvoidableLine]:
    """The exams the nightly check listed for the month (by local exam date)."""
    start, end = month_bounds(month, zone)
    first, following = start.astimezone(zone).date(), end.astimezone(zone).date()
    rows = session.exec(
        select(AvoidableExam, Patient.name, ExamType.name_zh, Facility.name)
        .join(Patient, col(Patient.id) == AvoidableExam.patient_id)
        .join(ExamType, col(ExamType.id) == AvoidableExam.exam_type_id)
        .join(Facility, col(Facility.id) == AvoidableExam.facility_id)
        .where(AvoidableExam.performed_on >= first, AvoidableExam.performed_on < following)
        .order_by(col(AvoidableExam.performed_on), col(AvoidableExam.study_id))
    ).all()
    return [
        AvoidableLine(
            study_id=found.study_id,
            performed_on=found.performed_on,
            patient_name=patient,
            exam_name=exam,
            facility=facility,
            prior_facility=found.prior_facility,
            prior_performed_on=found.prior_performed_on,
            fee_fen=found.fee_fen,
        )
        for found, patient, exam, facility in rows
    ]


def refusal_audit(
    session: Session, *, actor: Actor, month: str, now: datetime, zone: ZoneInfo, draw: bool
) -> RefusalAudit:
    """The month's sample with its reviews; ``draw`` draws it first if not drawn yet."""
    require(actor, Action.review_refusals)
    _, end = month_bounds(month, zone)
    connection = session.connection()
    if draw:
        draw_month(connection, month=month, zone=zone, now=now)
    summary = sample_report(connection, month=month, zone=zone)
    samples = metadata.tables["refusal_sample"]
    rows = session.execute(
        select_rows(samples, RecognitionDecision, Patient, ExamType, Facility)
        .join(RecognitionDecision, col(RecognitionDecision.id) == samples.c.decision_id)
        .join(Patient, col(Patient.id) == RecognitionDecision.patient_id)
        .join(ExamType, col(ExamType.id) == RecognitionDecision.requested_exam_type_id)
        .join(Facility, col(Facility.id) == RecognitionDecision.facility_id)
        .where(samples.c.month == month)
        .order_by(samples.c.decision_id)
    ).all()
    people = {int(r.reviewer_id) for r in rows if r.reviewer_id} | {
        int(r[-4].clinician_id) for r in rows if r[-4].clinician_id
    }
    names = user_names(session, people)
    prior_ids = [r[-4].prior_study_id for r in rows if r[-4].prior_study_id]
    priors = {
        int(s.id or 0): s
        for s in session.exec(select(Study).where(col(Study.id).in_(prior_ids or [0]))).all()
    }
    prior_sites = {
        int(f.id or 0): f.name
        for f in session.exec(
            select(Facility).where(
                col(Facility.id).in_({s.facility_id for s in priors.values()} or {0})
            )
        ).all()
    }
    sample = []
    for row in rows:
        decision, patient, exam, site = row[-4], row[-3], row[-2], row[-1]
        prior = priors.get(int(decision.prior_study_id or 0))
        sample.append(
            SampledRefusal(
                decision_id=int(decision.id or 0),
                decided_at=decision.decided_at,
                patient_name=patient.name,
                exam_name=exam.name_zh,
                facility=site.name,
                clinician=names.get(int(decision.clinician_id or 0), decision.clinician_ref),
                reason=decision.refusal_reason.value if decision.refusal_reason else "",
                comment=decision.comment,
                prior_facility=prior_sites.get(prior.facility_id, "") if prior else "",
                prior_performed=(prior.started_at or prior.completed_at) if prior else None,
                justified=row.justified,
                note=row.note,
                reviewer=names.get(int(row.reviewer_id), "") if row.reviewer_id else "",
            )
        )
    avoidable = avoidable_in_month(session, month=month, zone=zone)
    return RefusalAudit(
        month=month,
        seed=summary.seed,
        refusals=summary.refusals,
        drawn=summary.drawn,
        reviewed=summary.reviewed,
        justified=summary.justified,
        drawable=end <= now,
        sample=tuple(sample),
        avoidable=tuple(avoidable),
        avoidable_fee_fen=sum(line.fee_fen for line in avoidable),
    )


def review_refusal(
    session: Session,
    *,
    actor: Actor,
    month: str,
    decision_id: int,
    justified: bool,
    note: str,
    now: datetime,
) -> None:
    require(actor, Action.review_refusals)
    if len(note) > 500:
        raise ValidationError("keep the note under 500 characters", field="note")
    if not justified and not note.strip():
        raise ValidationError("say why the refusal was not justified", field="note")
    review(
        session.connection(),
        month=month,
        decision_id=decision_id,
        justified=justified,
        note=note.strip(),
        reviewer_id=actor.user_id,
        now=now,
    )
