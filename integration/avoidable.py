"""Exams done although a recognisable prior existed and nobody recorded why: the QC list.

For each study performed in a period, the rules are run as of its exam
date on the patient's earlier exams of the same type. When one counted and
no refusal (with its reason) was recorded for that patient and exam type
around the order, the exam was avoidable: it goes on the QC officer's list
with its fee.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, insert, select

from integration.database import Database, log_failed_round
from integration.priors import Person, catalogue, find_person, local_priors
from integration.recognition import Prior, Rules, judge
from models import metadata
from models.enums import RecognitionOutcome

log = logging.getLogger("huren.recognition")
T = metadata.tables
DECISION_WINDOW = timedelta(days=3)  # a refusal this close to the order explains it


@dataclass(frozen=True)
class AvoidableExam:
    study_id: int
    study_uid: str
    exam_type_id: int
    facility_id: int
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
            study.c.id,
            study.c.study_instance_uid,
            study.c.facility_id,
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
                study_id=int(row.id),
                study_uid=row.study_instance_uid,
                exam_type_id=int(row.exam_type_id),
                facility_id=int(row.facility_id),
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


def record(connection: Connection, found: Sequence[AvoidableExam], *, now: datetime) -> int:
    """Put newly found avoidable exams on the QC list; returns how many were new."""
    listed = T["avoidable_exam"]
    known = {
        int(row.study_id)
        for row in connection.execute(
            select(listed.c.study_id).where(listed.c.study_id.in_([e.study_id for e in found]))
        )
    }
    fresh = [exam for exam in found if exam.study_id not in known]
    if fresh:
        connection.execute(
            insert(listed),
            [
                {
                    "study_id": exam.study_id,
                    "patient_id": exam.patient_id,
                    "exam_type_id": exam.exam_type_id,
                    "facility_id": exam.facility_id,
                    "performed_on": exam.performed_on,
                    "prior_key": exam.prior.key[:64],
                    "prior_facility": exam.prior.facility[:120],
                    "prior_performed_on": exam.prior.performed_on,
                    "fee_fen": exam.fee_fen,
                    "found_at": now,
                }
                for exam in fresh
            ],
        )
    return len(fresh)


def next_run(now: datetime, *, zone: ZoneInfo, at: time_of_day = time_of_day(2, 0)) -> datetime:
    """The next nightly run (02:00 in the region's zone) after ``now``, in UTC."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


class NightlyCheck:
    """Runs the avoidable-exam check every night over the last few days, for the QC list."""

    def __init__(
        self,
        *,
        database: Database,
        zone: ZoneInfo,
        days: int = 3,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._zone = zone
        self._days = days
        self._clock = clock

    def run_once(self) -> int:
        now = self._clock()
        with self._database.engine.begin() as connection:
            found = avoidable_exams(
                connection, start=now - timedelta(days=self._days), end=now, zone=self._zone
            )
            added = record(connection, found, now=now)
        log.info("nightly recognition check: %d avoidable exams added to the QC list", added)
        return added

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = (next_run(self._clock(), zone=self._zone) - self._clock()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 1.0))
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.run_once)
            except Exception as exc:  # tomorrow is another night; the error is logged
                log_failed_round(log, "nightly recognition check failed", exc)
