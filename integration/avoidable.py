"""Exams done although a recognisable prior existed and nobody recorded why: the QC list.

For each study performed in a period, the rules are run as of its exam
date on the patient's earlier exams of the same type. When one counted and
no refusal (with its reason) was recorded for that patient and exam type
around the order, the exam was avoidable: it goes on the QC officer's list
with its fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, select

from integration.priors import Person, catalogue, find_person, local_priors
from integration.recognition import Prior, Rules, judge
from models import metadata
from models.enums import RecognitionOutcome

T = metadata.tables
DECISION_WINDOW = timedelta(days=3)  # a refusal this close to the order explains it


@dataclass(frozen=True)
class AvoidableExam:
    study_uid: str
    patient_id: int
    exam_code: str
    exam_name: str
    facility: str
    performed_on: date
    prior: Prior
    fee_fen: int


def avoidable_exams(
    connection: Connection,
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    rules: Rules | None = None,
) -> list[AvoidableExam]:
    """Avoidable exams among the studies completed in [start, end), oldest first."""
    rules = rules or Rules()
    study, exam, facility, decision = (
        T["study"],
        T["exam_type"],
        T["facility"],
        T["recognition_decision"],
    )
    exams = {spec.code: spec for spec in catalogue(connection)}
    rows = connection.execute(
        select(
            study.c.study_instance_uid,
            study.c.patient_id,
            study.c.exam_type_id,
            study.c.started_at,
            study.c.received_at,
            exam.c.code,
            facility.c.name.label("facility_name"),
        )
        .join(exam, exam.c.id == study.c.exam_type_id)
        .join(facility, facility.c.id == study.c.facility_id)
        .where(
            study.c.completed_at >= start,
            study.c.completed_at < end,
            study.c.patient_id.is_not(None),
            study.c.source_node.is_(None),
        )
        .order_by(study.c.completed_at)
    ).all()
    people: dict[int, tuple[Person | None, list[Prior]]] = {}
    found: list[AvoidableExam] = []
    for row in rows:
        requested = exams.get(row.code)
        if requested is None or not requested.recognised:
            continue
        if row.patient_id not in people:
            person = find_person(connection, fhir_id=str(row.patient_id))
            priors = local_priors(connection, person=person, zone=zone) if person else []
            people[row.patient_id] = (person, priors)
        _person, priors = people[row.patient_id]
        moment: datetime = row.started_at or row.received_at
        performed_on = moment.astimezone(zone).date()
        earlier = [
            prior
            for prior in priors
            if prior.exam_code == row.code
            and prior.key != row.study_instance_uid
            and prior.performed_on < performed_on
        ]
        counted = [
            prior
            for prior in earlier
            if judge(prior, requested=requested, on=performed_on, rules=rules).recognisable
        ]
        if not counted:
            continue
        refused = connection.execute(
            select(decision.c.id).where(
                and_(
                    decision.c.patient_id == row.patient_id,
                    decision.c.requested_exam_type_id == row.exam_type_id,
                    decision.c.outcome == RecognitionOutcome.refused,
                    decision.c.decided_at >= moment - DECISION_WINDOW,
                    decision.c.decided_at <= moment + timedelta(hours=1),
                )
            )
        ).first()
        if refused is not None:
            continue
        newest = max(counted, key=lambda prior: prior.performed_on)
        found.append(
            AvoidableExam(
                study_uid=row.study_instance_uid,
                patient_id=int(row.patient_id),
                exam_code=row.code,
                exam_name=requested.name,
                facility=row.facility_name,
                performed_on=performed_on,
                prior=newest,
                fee_fen=requested.fee_fen,
            )
        )
    return found


def total_fee_fen(exams: Sequence[AvoidableExam]) -> int:
    return sum(exam.fee_fen for exam in exams)
