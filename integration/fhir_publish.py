"""From domain changes to FHIR: store the mapped resources and queue them for the province.

Called inside the transaction that made the change (a study completing, a
report signed or amended), so the stored resources, the outbox row and the
change commit together. A resource whose content did not change keeps its
version and queues nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from fhir.resources.R4B.resource import Resource
from sqlalchemy import Connection
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, or_, select

from fhir.bundle import transaction_bundle
from fhir.mapping import (
    diagnostic_report_from,
    endpoint_from,
    imaging_study_from,
    organization_from,
    patient_from,
    practitioner_from,
    service_request_from,
)
from fhir.pdf import report_pdf
from integration.database import Database
from integration.fhir_store import Outcome, StoredResource, put_resource
from integration.outbox import enqueue
from integration.progress import progress_bar
from integration.settings import Settings
from models import (
    ExamType,
    Facility,
    Instance,
    Order,
    Patient,
    PatientIdentifier,
    QcQualification,
    Report,
    Series,
    Study,
    User,
    metadata,
)
from models.enums import OutboxChannel

log = logging.getLogger("huren.fhir.publish")
STUDY = metadata.tables["study"]
REPORT = metadata.tables["report"]


def wado_base(settings: Settings) -> str:
    return f"{settings.base_url}/dicomweb"


def _json(resource: Resource) -> dict[str, Any]:
    return dict(json.loads(resource.model_dump_json()))


def _store(
    connection: Connection, resources: list[Resource], *, now: datetime
) -> list[tuple[StoredResource, Outcome]]:
    stored = []
    for resource in resources:
        logical_id = str(resource.id)
        stored.append(
            put_resource(
                connection, resource=_json(resource), logical_id=logical_id, origin="", now=now
            )
        )
    return stored


def _queue(
    connection: Connection,
    *,
    resources: list[Resource],
    primary: StoredResource,
    settings: Settings,
    now: datetime,
    subject_type: str,
    subject_id: int,
) -> bool:
    if not settings.upstream_fhir_url:
        return False
    bundle = transaction_bundle(resources)
    return enqueue(
        connection,
        channel=OutboxChannel.fhir,
        destination=settings.upstream_fhir_url,
        idempotency_key=f"fhir:{primary.reference}/_history/{primary.version_id}",
        payload=bundle.model_dump_json(exclude_none=True).encode(),
        content_type="application/fhir+json",
        now=now,
        subject_type=subject_type,
        subject_id=subject_id,
    )


def _keep(
    connection: Connection,
    resources: list[Resource],
    *,
    settings: Settings,
    now: datetime,
    subject: tuple[str, int],
) -> StoredResource:
    """Store the resources (the last is the one published) and queue them if it changed."""
    primary, outcome = _store(connection, resources, now=now)[-1]
    if outcome != "unchanged":
        _queue(
            connection,
            resources=resources,
            primary=primary,
            settings=settings,
            now=now,
            subject_type=subject[0],
            subject_id=subject[1],
        )
    return primary


def qc_qualified(session: Session, *, facility_id: int, on: date) -> bool:
    """Whether the facility held imaging QC qualification on ``on``."""
    period = session.exec(
        select(QcQualification).where(
            QcQualification.facility_id == facility_id,
            QcQualification.valid_from <= on,
            or_(col(QcQualification.valid_until).is_(None), col(QcQualification.valid_until) >= on),
        )
    ).first()
    return period is not None


def _directory_resources(session: Session, study: Study) -> tuple[list[Resource], Facility]:
    """Patient, the performing facility (and its reading centre), for a study's bundle."""
    facility = session.get(Facility, study.facility_id)
    if facility is None:
        raise LookupError(f"facility {study.facility_id} of study {study.id} is gone")
    resources: list[Resource] = []
    if study.patient_id is not None:
        patient = session.get(Patient, study.patient_id)
        if patient is not None:
            identifiers = session.exec(
                select(PatientIdentifier).where(PatientIdentifier.patient_id == patient.id)
            ).all()
            resources.append(patient_from(patient, identifiers))
    resources.append(organization_from(facility))
    if study.reading_centre_id and study.reading_centre_id != facility.id:
        centre = session.get(Facility, study.reading_centre_id)
        if centre is not None:
            resources.append(organization_from(centre))
    return resources, facility


def _study_resources(session: Session, study: Study, settings: Settings) -> list[Resource]:
    resources, facility = _directory_resources(session, study)
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    if study.order_id is not None:
        order = session.get(Order, study.order_id)
        if order is not None:
            order_exam = session.get(ExamType, order.exam_type_id)
            ordering = session.get(Facility, order.ordering_facility_id)
            performing = session.get(Facility, order.performing_facility_id)
            if order_exam and ordering and performing:
                if ordering.id != facility.id:
                    resources.append(organization_from(ordering))
                resources.append(
                    service_request_from(
                        order,
                        order_exam,
                        ordering_facility=ordering,
                        performing_facility=performing,
                    )
                )
    series = session.exec(select(Series).where(Series.study_id == study.id)).all()
    instances = session.exec(select(Instance).where(Instance.study_id == study.id)).all()
    resources.append(endpoint_from(base_url=wado_base(settings)))
    resources.append(imaging_study_from(study, series, instances, facility=facility, exam=exam))
    return resources


def publish_study(
    connection: Connection, *, study_id: int, settings: Settings, now: datetime
) -> StoredResource | None:
    """Store the study's ImagingStudy (and what it refers to); queue it if it changed."""
    session = Session(bind=connection)
    study = session.get(Study, study_id)
    if study is None:
        return None
    try:
        resources = _study_resources(session, study, settings)
    except Exception:  # a mapping fault must not hold up the study; publish again later
        log.exception("study %d: FHIR resources not made; run huren fhir publish", study_id)
        return None
    return _keep(
        connection, resources, settings=settings, now=now, subject=("ImagingStudy", study_id)
    )


def publish_report(
    connection: Connection, *, report_id: int, settings: Settings, now: datetime
) -> StoredResource | None:
    """Store the DiagnosticReport with its study, PDF and interpreters; queue it if it changed."""
    session = Session(bind=connection)
    report = session.get(Report, report_id)
    if report is None:
        return None
    study = session.get(Study, report.study_id)
    if study is None or study.patient_id is None:
        log.warning("report %d: its study has no patient yet; not published", report_id)
        return None
    try:
        resources = _report_resources(session, report, study, settings)
    except Exception:  # a mapping fault must not undo the signing; publish again later
        log.exception("report %d: FHIR resources not made; run huren fhir publish", report_id)
        return None
    return _keep(
        connection, resources, settings=settings, now=now, subject=("DiagnosticReport", report_id)
    )


def _report_resources(
    session: Session, report: Report, study: Study, settings: Settings
) -> list[Resource]:
    assert study.patient_id is not None
    patient = session.get(Patient, study.patient_id)
    author = session.get(User, report.author_id)
    auditor = session.get(User, report.auditor_id) if report.auditor_id else None
    reading_centre = session.get(Facility, report.reading_centre_id)
    if patient is None or author is None or reading_centre is None:
        raise LookupError(f"report {report.id} refers to rows that are gone")
    resources = _study_resources(session, study, settings)
    facility = session.get(Facility, study.facility_id)
    assert facility is not None  # _study_resources checked it
    exam = session.get(ExamType, study.exam_type_id) if study.exam_type_id else None
    order = session.get(Order, study.order_id) if study.order_id else None
    for user in (author, auditor):
        if user is not None:
            home = session.get(Facility, user.facility_id)
            if home is not None:
                resources.append(practitioner_from(user, home))
    on = (study.started_at or study.received_at).astimezone(settings.zone).date()
    pdf = report_pdf(
        report,
        study=study,
        patient=patient,
        exam=exam,
        author=author,
        auditor=auditor,
        facility=facility,
        reading_centre=reading_centre,
    )
    resources.append(
        diagnostic_report_from(
            report,
            study=study,
            patient_id=study.patient_id,
            exam=exam,
            order=order,
            author=author,
            auditor=auditor,
            facility=facility,
            reading_centre=reading_centre,
            qc_qualified=qc_qualified(session, facility_id=facility.id or 0, on=on),
            pdf=pdf,
        )
    )
    return resources


def publish_local_patient(
    connection: Connection, *, patient_id: int, now: datetime
) -> StoredResource | None:
    """Store the hub's own Patient resource (e.g. when another node refers to the person)."""
    session = Session(bind=connection)
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    identifiers = session.exec(
        select(PatientIdentifier).where(PatientIdentifier.patient_id == patient_id)
    ).all()
    stored, _ = put_resource(
        connection,
        resource=_json(patient_from(patient, identifiers)),
        logical_id=str(patient_id),
        origin="",
        now=now,
    )
    return stored


def publish_since(
    database: Database, *, settings: Settings, days: int, now: datetime, quiet: bool = True
) -> tuple[int, int]:
    """Publish studies completed in the last ``days`` days and their reports (a backfill).

    One transaction per study, so a long run can be stopped and run again.
    """
    since = now - timedelta(days=days)
    with database.engine.connect() as connection:
        rows = connection.execute(
            sa_select(STUDY.c.id, REPORT.c.id.label("report_id"))
            .select_from(STUDY.outerjoin(REPORT, REPORT.c.study_id == STUDY.c.id))
            .where(STUDY.c.completed_at >= since)
            .order_by(STUDY.c.completed_at)
        ).all()
    studies = reports = 0
    with progress_bar("FHIR", len(rows), enabled=not quiet) as advance:
        for row in rows:
            with database.engine.begin() as connection:
                # A report's bundle holds its ImagingStudy too: map the study once.
                if row.report_id is not None and publish_report(
                    connection, report_id=row.report_id, settings=settings, now=now
                ):
                    reports += 1
                    studies += 1
                elif publish_study(connection, study_id=row.id, settings=settings, now=now):
                    studies += 1
            advance(1)
    return studies, reports


__all__ = [
    "publish_local_patient",
    "publish_report",
    "publish_since",
    "publish_study",
    "qc_qualified",
    "wado_base",
]
