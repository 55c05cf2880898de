"""Matching a complete study to its order, and putting it on the reading worklist.

Order of evidence: the Accession Number at the performing facility, then the
Study Instance UID the order carried (IPC-3 / ZDS), then patient + modality +
day with a confidence score. A study that matches nothing (or too weakly)
waits in the reconciliation queue for a person. Demographics in the images
that disagree with the order's patient are flagged, never copied over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from models import metadata
from models.enums import OrderStatus, ReadingStatus, StudyStatus
from models.errors import Conflict, NotFound
from models.lifecycle import ORDER_TRANSITIONS, check_transition

log = logging.getLogger("huren.reconcile")
STUDY = metadata.tables["study"]
ORDER = metadata.tables["exam_order"]
PATIENT = metadata.tables["patient"]
IDENTIFIER = metadata.tables["patient_identifier"]
EXAM = metadata.tables["exam_type"]
FACILITY = metadata.tables["facility"]
QC = metadata.tables["qc_event"]


class AlreadyComplete(Conflict):
    """Another stabiliser (another hub) completed the study first."""


@dataclass(frozen=True)
class Candidate:
    """An open order that might be the one a study was taken for."""

    order_id: int
    patient_identifiers: frozenset[str]
    patient_name: str
    modality: str
    scheduled_day: str  # local YYYY-MM-DD


@dataclass(frozen=True)
class Match:
    order_id: int
    method: str  # accession, study_uid, demographics
    confidence: float


def score(
    candidate: Candidate, *, patient_id: str, patient_name: str, modality: str, study_day: str
) -> float:
    """Confidence that a study (its DICOM patient, modality, day) belongs to ``candidate``."""
    value = 0.0
    if patient_id and patient_id in candidate.patient_identifiers:
        value += 0.6
    elif patient_name and patient_name == candidate.patient_name:
        value += 0.35
    if modality and modality == candidate.modality:
        value += 0.2
    if study_day and study_day == candidate.scheduled_day:
        value += 0.2
    return round(value, 3)


def _display_name(dicom_name: str) -> str:
    return dicom_name.replace("^", "").replace(" ", "").strip()


def find_match(
    connection: Connection, study: Any, *, zone: ZoneInfo, min_confidence: float
) -> Match | None:
    if study.accession_number:
        row = connection.execute(
            select(ORDER.c.id).where(
                ORDER.c.performing_facility_id == study.facility_id,
                ORDER.c.accession_number == study.accession_number,
            )
        ).first()
        if row is not None:
            return Match(row.id, "accession", 1.0)
    row = connection.execute(
        select(ORDER.c.id).where(ORDER.c.study_instance_uid == study.study_instance_uid)
    ).first()
    if row is not None:
        return Match(row.id, "study_uid", 1.0)

    started = study.started_at or study.received_at
    local_day = started.astimezone(zone).date()
    window_start = datetime.combine(local_day, datetime.min.time(), tzinfo=zone) - timedelta(days=1)
    rows = connection.execute(
        select(
            ORDER.c.id, ORDER.c.patient_id, ORDER.c.scheduled_at, EXAM.c.modality, PATIENT.c.name
        )
        .join(EXAM, EXAM.c.id == ORDER.c.exam_type_id)
        .join(PATIENT, PATIENT.c.id == ORDER.c.patient_id)
        .where(
            ORDER.c.performing_facility_id == study.facility_id,
            ORDER.c.status.in_([OrderStatus.scheduled, OrderStatus.in_progress]),
            ORDER.c.scheduled_at >= window_start,
            ORDER.c.scheduled_at < window_start + timedelta(days=3),
        )
    ).all()
    best: Match | None = None
    for row in rows:
        taken = connection.execute(
            select(STUDY.c.id).where(
                STUDY.c.order_id == row.id, STUDY.c.quality_rejected.is_(False)
            )
        ).first()
        if taken is not None:
            continue
        identifiers = frozenset(
            r.value
            for r in connection.execute(
                select(IDENTIFIER.c.value).where(IDENTIFIER.c.patient_id == row.patient_id)
            )
        )
        candidate = Candidate(
            order_id=row.id,
            patient_identifiers=identifiers,
            patient_name=row.name,
            modality=row.modality,
            scheduled_day=(
                row.scheduled_at.astimezone(zone).date().isoformat() if row.scheduled_at else ""
            ),
        )
        value = score(
            candidate,
            patient_id=study.dicom_patient_id,
            patient_name=_display_name(study.dicom_patient_name),
            modality=study.modalities.split("\\")[0],
            study_day=local_day.isoformat(),
        )
        if value >= min_confidence and (best is None or value > best.confidence):
            best = Match(row.id, "demographics", value)
    return best


def attach(connection: Connection, *, study_id: int, order_id: int, now: datetime) -> None:
    """Tie a study to its order: patient, exam, priority; order in progress; worklist entry."""
    study = connection.execute(select(STUDY).where(STUDY.c.id == study_id)).one()
    order = connection.execute(select(ORDER).where(ORDER.c.id == order_id)).one()
    if order.status in (OrderStatus.cancelled, OrderStatus.discontinued):
        raise Conflict(f"order {order.accession_number} was {order.status}; not attached")
    conflict = _demographics_conflict(connection, study, order.patient_id)
    previous = connection.execute(
        select(STUDY.c.id)
        .where(
            STUDY.c.order_id == order_id, STUDY.c.quality_rejected.is_(True), STUDY.c.id != study_id
        )
        .order_by(STUDY.c.id.desc())
    ).first()
    facility = connection.execute(
        select(FACILITY.c.reading_centre_id).where(FACILITY.c.id == study.facility_id)
    ).one()
    connection.execute(
        update(STUDY)
        .where(STUDY.c.id == study_id)
        .values(
            order_id=order_id,
            patient_id=order.patient_id,
            exam_type_id=order.exam_type_id,
            priority=order.priority,
            accession_number=study.accession_number or order.accession_number,
            demographics_conflict=conflict,
            retake_of_study_id=previous.id if previous else None,
            reading_centre_id=facility.reading_centre_id or study.facility_id,
            reading_status=ReadingStatus.awaiting_preliminary
            if study.status == StudyStatus.complete
            else study.reading_status,
        )
    )
    if previous is not None:
        connection.execute(
            update(QC)
            .where(QC.c.study_id == previous.id, QC.c.retake_requested.is_(True))
            .values(retake_study_id=study_id)
        )
    if order.status == OrderStatus.scheduled:
        check_transition(ORDER_TRANSITIONS, OrderStatus.scheduled, OrderStatus.in_progress)
        connection.execute(
            update(ORDER)
            .where(ORDER.c.id == order_id)
            .values(status=OrderStatus.in_progress, updated_at=now)
        )
    if conflict:
        log.warning(
            "study %s: patient in the images differs from order %s's patient",
            study.study_instance_uid,
            order.accession_number,
        )


def _demographics_conflict(connection: Connection, study: Any, patient_id: int) -> bool:
    """Do the images name another patient than the order? (ID unknown, or another name.)"""
    patient = connection.execute(select(PATIENT.c.name).where(PATIENT.c.id == patient_id)).one()
    identifiers = {
        r.value
        for r in connection.execute(
            select(IDENTIFIER.c.value).where(IDENTIFIER.c.patient_id == patient_id)
        )
    }
    if study.dicom_patient_id and identifiers and study.dicom_patient_id not in identifiers:
        return True
    name = _display_name(study.dicom_patient_name)
    return bool(name) and not _same_name(name, patient.name)


def _same_name(image_name: str, registered: str) -> bool:
    """Images often carry a romanised name: compare only names in the same script."""
    if image_name.isascii() != registered.isascii():
        return True
    return image_name.lower() == registered.replace(" ", "").lower()


def complete_study(
    connection: Connection, *, study_id: int, now: datetime, zone: ZoneInfo, min_confidence: float
) -> Match | None:
    """Mark a stable study complete (the turnaround clock starts) and try to reconcile it.

    Only a study still receiving is completed: when several hubs share the
    database, their stabilisers may pick the same study, and the one whose
    update finds it no longer receiving (the row lock makes it wait for the
    other's commit) leaves it alone. Raises ``AlreadyComplete`` then.
    """
    taken = connection.execute(
        update(STUDY)
        .where(STUDY.c.id == study_id, STUDY.c.status == StudyStatus.receiving)
        .values(status=StudyStatus.complete, completed_at=now)
    )
    if taken.rowcount != 1:
        raise AlreadyComplete(f"study {study_id} is no longer receiving")
    study = connection.execute(select(STUDY).where(STUDY.c.id == study_id)).one()
    match = (
        None
        if study.order_id
        else find_match(connection, study, zone=zone, min_confidence=min_confidence)
    )
    if match is not None:
        attach(connection, study_id=study_id, order_id=match.order_id, now=now)
    elif study.order_id:
        attach(connection, study_id=study_id, order_id=study.order_id, now=now)
    else:
        log.info(
            "study %s from facility %s matches no order: reconciliation queue",
            study.study_instance_uid,
            study.facility_id,
        )
    return match


def reconcile_manually(
    connection: Connection, *, study_uid: str, accession_number: str, now: datetime
) -> int:
    """A person's decision (portal or CLI): this study belongs to that order."""
    study = connection.execute(
        select(STUDY.c.id, STUDY.c.facility_id).where(STUDY.c.study_instance_uid == study_uid)
    ).first()
    if study is None:
        raise NotFound(f"no study {study_uid}")
    order = connection.execute(
        select(ORDER.c.id).where(
            ORDER.c.accession_number == accession_number,
            ORDER.c.performing_facility_id == study.facility_id,
        )
    ).first()
    if order is None:
        raise NotFound(f"no order with accession {accession_number} at the study's facility")
    attach(connection, study_id=study.id, order_id=order.id, now=now)
    return int(order.id)


def unmatched(connection: Connection) -> list[Any]:
    """The reconciliation queue: complete studies with no order."""
    return list(
        connection.execute(
            select(
                STUDY.c.id,
                STUDY.c.study_instance_uid,
                STUDY.c.facility_id,
                STUDY.c.accession_number,
                STUDY.c.dicom_patient_id,
                STUDY.c.dicom_patient_name,
                STUDY.c.modalities,
                STUDY.c.completed_at,
            )
            .where(
                STUDY.c.status == StudyStatus.complete,
                STUDY.c.order_id.is_(None),
                STUDY.c.source_node.is_(None),
            )
            .order_by(STUDY.c.completed_at)
        )
    )
