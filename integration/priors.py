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

from sqlalchemy import Connection, bindparam, select

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


_PATIENTS, _IDENTIFIERS = T["patient"], T["patient_identifier"]
_RESOURCES, _TOKENS = T["fhir_resource"], T["fhir_token"]
# Built once with bound parameters: the CDS service runs these on every call.
_SURVIVOR = select(_PATIENTS.c.id, _PATIENTS.c.merged_into_id).where(
    _PATIENTS.c.id == bindparam("patient")
)
_PATIENT_BODY = select(_RESOURCES.c.body).where(
    _RESOURCES.c.resource_type == "Patient", _RESOURCES.c.logical_id == bindparam("logical")
)
_BY_RESIDENT_ID = select(_IDENTIFIERS.c.patient_id).where(
    _IDENTIFIERS.c.kind == IdentifierKind.resident_id, _IDENTIFIERS.c.value == bindparam("value")
)
_RESIDENT_ID_OF = select(_IDENTIFIERS.c.value).where(
    _IDENTIFIERS.c.patient_id == bindparam("patient"),
    _IDENTIFIERS.c.kind == IdentifierKind.resident_id,
)
_MERGED_INTO = select(_PATIENTS.c.id).where(_PATIENTS.c.merged_into_id == bindparam("patient"))
_PATIENT_RESOURCES_WITH = select(_RESOURCES.c.logical_id).where(
    _RESOURCES.c.id.in_(
        select(_TOKENS.c.resource_id).where(
            _TOKENS.c.resource_type == "Patient",
            _TOKENS.c.parameter == "identifier",
            _TOKENS.c.system == RESIDENT_ID_SYSTEM,
            _TOKENS.c.value == bindparam("value"),
        )
    )
)


def _survivor(connection: Connection, patient_id: int) -> int | None:
    """The patient a record was merged into, or the record itself; None when there is none."""
    row = connection.execute(_SURVIVOR, {"patient": patient_id}).first()
    return None if row is None else int(row.merged_into_id or row.id)


def find_person(
    connection: Connection, *, fhir_id: str | None = None, resident_id: str | None = None
) -> Person | None:
    """The person behind a FHIR Patient id or a resident ID; None when nobody here knows them."""
    patient_id: int | None = None
    if fhir_id is not None and fhir_id.isascii() and fhir_id.isdigit() and len(fhir_id) < 19:
        patient_id = _survivor(connection, int(fhir_id))
    if patient_id is None and fhir_id is not None:
        body = connection.execute(_PATIENT_BODY, {"logical": fhir_id}).scalar()
        if body is None:
            return None
        for identifier in json.loads(body).get("identifier") or []:
            if identifier.get("system") == RESIDENT_ID_SYSTEM and identifier.get("value"):
                resident_id = str(identifier["value"])
    if patient_id is None and resident_id:
        found = connection.execute(_BY_RESIDENT_ID, {"value": resident_id}).scalar()
        if found is not None:
            patient_id = _survivor(connection, int(found))
    if patient_id is not None and resident_id is None:
        resident_id = connection.execute(_RESIDENT_ID_OF, {"patient": patient_id}).scalar()
    patient_ids: list[int] = []
    if patient_id is not None:
        patient_ids = [patient_id] + [
            int(row.id) for row in connection.execute(_MERGED_INTO, {"patient": patient_id})
        ]
    fhir_ids = {str(known) for known in patient_ids}
    if fhir_id is not None:
        fhir_ids.add(fhir_id)
    if resident_id:
        fhir_ids.update(
            str(row.logical_id)
            for row in connection.execute(_PATIENT_RESOURCES_WITH, {"value": resident_id})
        )
    if not patient_ids and not fhir_ids:
        return None
    return Person(
        patient_ids=tuple(patient_ids), fhir_ids=tuple(sorted(fhir_ids)), resident_id=resident_id
    )


def _qualified(periods: Sequence[tuple[date, date | None]], on: date) -> bool:
    return any(start <= on and (end is None or on <= end) for start, end in periods)


_STUDY, _EXAM, _FACILITY, _REPORT = T["study"], T["exam_type"], T["facility"], T["report"]
_LOCAL_PRIORS = (
    select(
        _STUDY.c.id,
        _STUDY.c.study_instance_uid,
        _STUDY.c.started_at,
        _STUDY.c.received_at,
        _STUDY.c.quality_rejected,
        _STUDY.c.facility_id,
        _EXAM.c.code,
        _EXAM.c.modality,
        _EXAM.c.body_part,
        _EXAM.c.recognised,
        _FACILITY.c.name.label("facility_name"),
        _REPORT.c.id.label("report_id"),
        _REPORT.c.status.label("report_status"),
        _REPORT.c.impression,
    )
    .join(_EXAM, _EXAM.c.id == _STUDY.c.exam_type_id)
    .join(_FACILITY, _FACILITY.c.id == _STUDY.c.facility_id)
    .outerjoin(_REPORT, _REPORT.c.study_id == _STUDY.c.id)
    .where(
        _STUDY.c.patient_id.in_(bindparam("patients", expanding=True)),
        _STUDY.c.completed_at.is_not(None),
    )
)
_REMOTE_REPORTS = select(_RESOURCES.c.logical_id, _RESOURCES.c.origin, _RESOURCES.c.body).where(
    _RESOURCES.c.resource_type == "DiagnosticReport",
    _RESOURCES.c.subject_id.in_(bindparam("subjects", expanding=True)),
    _RESOURCES.c.origin != "",
)


def local_priors(connection: Connection, *, person: Person, zone: ZoneInfo) -> list[Prior]:
    """The hub's own studies of the person with their reports (complete studies only)."""
    if not person.patient_ids:
        return []
    rows = connection.execute(_LOCAL_PRIORS, {"patients": list(person.patient_ids)}).all()

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
    by_code = {exam.code: exam for exam in exams}
    by_loinc = {exam.loinc: exam for exam in exams if exam.loinc}
    priors = []
    for row in connection.execute(_REMOTE_REPORTS, {"subjects": list(person.fhir_ids)}):
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
