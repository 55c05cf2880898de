"""Gathering a patient's priors for the recognition rules: the hub's own and other nodes'.

The person is found through the EMPI (the hub's patient, those merged into
it, and every Patient resource carrying the same resident ID, wherever it
came from); the priors are the hub's studies with their reports, and the
DiagnosticReports other nodes sent through the FHIR API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from fhir.identifiers import (
    EXAM_TYPE_SYSTEM,
    HR_TAG_CODE,
    HR_TAG_SYSTEM,
    REPORT_SYSTEM,
    RESIDENT_ID_SYSTEM,
)
from fhir.search import parse_instant, reference_id
from integration.recognition import ExamSpec, Prior
from models import metadata
from models.enums import IdentifierKind, ReportStatus

T = metadata.tables
LOINC = "http://loinc.org"


@dataclass(frozen=True)
class Person:
    """Everything that stands for one patient: the hub's ids and FHIR Patient ids."""

    patient_ids: tuple[int, ...]
    fhir_ids: tuple[str, ...]
    resident_id: str | None


def catalogue(connection: Connection) -> list[ExamSpec]:
    exam = T["exam_type"]
    return [
        ExamSpec(
            code=row.code,
            name=row.name_zh,
            modality=str(row.modality),
            body_part=row.body_part,
            recognised=row.recognised,
            validity_days=row.validity_days,
            loinc=row.loinc,
            fee_fen=row.fee_fen * max(row.body_part_count, 1),
        )
        for row in connection.execute(select(exam).where(exam.c.active.is_(True)))
    ]


def _survivor(connection: Connection, patient_id: int) -> int | None:
    """The patient a record was merged into, or the record itself; None when there is none."""
    patients = T["patient"]
    row = connection.execute(
        select(patients.c.id, patients.c.merged_into_id).where(patients.c.id == patient_id)
    ).first()
    return None if row is None else int(row.merged_into_id or row.id)


def find_person(
    connection: Connection, *, fhir_id: str | None = None, resident_id: str | None = None
) -> Person | None:
    """The person behind a FHIR Patient id or a resident ID; None when nobody here knows them."""
    patients, identifiers = T["patient"], T["patient_identifier"]
    resources, tokens = T["fhir_resource"], T["fhir_token"]
    patient_id: int | None = None
    if fhir_id is not None and fhir_id.isascii() and fhir_id.isdigit() and len(fhir_id) < 19:
        patient_id = _survivor(connection, int(fhir_id))
    if patient_id is None and fhir_id is not None:
        body = connection.execute(
            select(resources.c.body).where(
                resources.c.resource_type == "Patient", resources.c.logical_id == fhir_id
            )
        ).scalar()
        if body is None:
            return None
        for identifier in json.loads(body).get("identifier") or []:
            if identifier.get("system") == RESIDENT_ID_SYSTEM and identifier.get("value"):
                resident_id = str(identifier["value"])
    if patient_id is None and resident_id:
        found = connection.execute(
            select(identifiers.c.patient_id).where(
                identifiers.c.kind == IdentifierKind.resident_id,
                identifiers.c.value == resident_id,
            )
        ).scalar()
        if found is not None:
            patient_id = _survivor(connection, int(found))
    if patient_id is not None and resident_id is None:
        resident_id = connection.execute(
            select(identifiers.c.value).where(
                identifiers.c.patient_id == patient_id,
                identifiers.c.kind == IdentifierKind.resident_id,
            )
        ).scalar()
    patient_ids: list[int] = []
    if patient_id is not None:
        patient_ids = [patient_id] + [
            int(row.id)
            for row in connection.execute(
                select(patients.c.id).where(patients.c.merged_into_id == patient_id)
            )
        ]
    fhir_ids = {str(known) for known in patient_ids}
    if fhir_id is not None:
        fhir_ids.add(fhir_id)
    if resident_id:
        fhir_ids.update(
            str(row.logical_id)
            for row in connection.execute(
                select(resources.c.logical_id).where(
                    resources.c.id.in_(
                        select(tokens.c.resource_id).where(
                            tokens.c.resource_type == "Patient",
                            tokens.c.parameter == "identifier",
                            tokens.c.system == RESIDENT_ID_SYSTEM,
                            tokens.c.value == resident_id,
                        )
                    )
                )
            )
        )
    if not patient_ids and not fhir_ids:
        return None
    return Person(
        patient_ids=tuple(patient_ids), fhir_ids=tuple(sorted(fhir_ids)), resident_id=resident_id
    )


def _qualified(periods: Sequence[tuple[date, date | None]], on: date) -> bool:
    return any(start <= on and (end is None or on <= end) for start, end in periods)


def local_priors(connection: Connection, *, person: Person, zone: ZoneInfo) -> list[Prior]:
    """The hub's own studies of the person with their reports (complete studies only)."""
    if not person.patient_ids:
        return []
    study, exam, facility, report = T["study"], T["exam_type"], T["facility"], T["report"]
    rows = connection.execute(
        select(
            study.c.id,
            study.c.study_instance_uid,
            study.c.started_at,
            study.c.received_at,
            study.c.quality_rejected,
            study.c.facility_id,
            exam.c.code,
            exam.c.modality,
            exam.c.body_part,
            exam.c.recognised,
            facility.c.name.label("facility_name"),
            report.c.id.label("report_id"),
            report.c.status.label("report_status"),
            report.c.impression,
        )
        .join(exam, exam.c.id == study.c.exam_type_id)
        .join(facility, facility.c.id == study.c.facility_id)
        .outerjoin(report, report.c.study_id == study.c.id)
        .where(study.c.patient_id.in_(person.patient_ids), study.c.completed_at.is_not(None))
    ).all()
    qc = T["qc_qualification"]
    periods: dict[int, list[tuple[date, date | None]]] = {}
    facilities = {row.facility_id for row in rows}
    if facilities:
        for period in connection.execute(select(qc).where(qc.c.facility_id.in_(facilities))):
            periods.setdefault(period.facility_id, []).append(
                (period.valid_from, period.valid_until)
            )
    priors = []
    for row in rows:
        moment: datetime = row.started_at or row.received_at
        on = moment.astimezone(zone).date()
        priors.append(
            Prior(
                key=row.study_instance_uid,
                exam_code=row.code,
                modality=str(row.modality),
                body_part=row.body_part,
                performed_on=on,
                facility=row.facility_name,
                report_status=ReportStatus(row.report_status) if row.report_status else None,
                quality_rejected=bool(row.quality_rejected),
                facility_qualified=_qualified(periods.get(row.facility_id, []), on),
                recognised_item=bool(row.recognised),
                conclusion=row.impression or "",
                report_ref=f"DiagnosticReport/{row.report_id}" if row.report_id else "",
                study_ref=f"ImagingStudy/{row.id}",
                source="",
            )
        )
    return priors


def remote_priors(
    connection: Connection, *, person: Person, exams: Sequence[ExamSpec], zone: ZoneInfo
) -> list[Prior]:
    """DiagnosticReports other nodes sent about the person, read through their HR tag."""
    if not person.fhir_ids:
        return []
    resources = T["fhir_resource"]
    by_code = {exam.code: exam for exam in exams}
    by_loinc = {exam.loinc: exam for exam in exams if exam.loinc}
    priors = []
    for row in connection.execute(
        select(resources.c.logical_id, resources.c.origin, resources.c.body).where(
            resources.c.resource_type == "DiagnosticReport",
            resources.c.subject_id.in_(person.fhir_ids),
            resources.c.origin != "",
        )
    ):
        report = json.loads(row.body)
        exam = None
        for coding in (report.get("code") or {}).get("coding") or []:
            if coding.get("system") == EXAM_TYPE_SYSTEM and coding.get("code") in by_code:
                exam = by_code[coding["code"]]
            elif coding.get("system") == LOINC and exam is None:
                exam = by_loinc.get(coding.get("code"))
        if exam is None:
            continue  # an exam this region's catalogue does not know cannot stand in for one
        moment = parse_instant(report.get("effectiveDateTime")) or parse_instant(
            report.get("issued")
        )
        if moment is None:
            continue
        tagged = any(
            tag.get("system") == HR_TAG_SYSTEM and tag.get("code") == HR_TAG_CODE
            for tag in (report.get("meta") or {}).get("tag") or []
        )
        key = next(
            (
                str(identifier.get("value"))
                for identifier in report.get("identifier") or []
                if identifier.get("system") == REPORT_SYSTEM
            ),
            f"{row.origin}/{row.logical_id}",
        )
        status = report.get("status")
        performers = report.get("performer") or [{}]
        studies = report.get("imagingStudy") or [{}]
        study_id = reference_id(studies[0].get("reference"), "ImagingStudy")
        priors.append(
            Prior(
                key=key,
                exam_code=exam.code,
                modality=exam.modality,
                body_part=exam.body_part,
                performed_on=moment.astimezone(zone).date(),
                facility=str(performers[0].get("display") or row.origin),
                report_status=ReportStatus(status) if status in set(ReportStatus) else None,
                quality_rejected=False,
                facility_qualified=tagged,
                recognised_item=tagged and exam.recognised,
                conclusion=str(report.get("conclusion") or ""),
                report_ref=f"DiagnosticReport/{row.logical_id}",
                study_ref=f"ImagingStudy/{study_id}" if study_id else "",
                source=row.origin,
            )
        )
    return priors


def priors_of(
    connection: Connection, *, person: Person, exams: Sequence[ExamSpec], zone: ZoneInfo
) -> list[Prior]:
    """Every prior of the person, each exam once (the hub's own copy wins over an echo)."""
    found: dict[str, Prior] = {}
    for prior in local_priors(connection, person=person, zone=zone) + remote_priors(
        connection, person=person, exams=exams, zone=zone
    ):
        found.setdefault(prior.key, prior)
    return list(found.values())
