"""Gathering a patient's priors for the recognition rules: the hub's own and other nodes'.

The person is found through the EMPI (the hub's patient, those merged into
it, and every Patient resource carrying the same resident ID, wherever it
came from); the priors are the hub's studies with their reports, and the
DiagnosticReports other nodes sent through the FHIR API.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
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
from integration.database import day, fetch_rows, instant
from integration.recognition import ExamSpec, Prior
from models import metadata
from models.enums import ReportStatus

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


# Plain SQL with bound parameters, run on the DBAPI connection (integration.database.fetch_rows):
# the CDS service runs these on every call, and each is one indexed read.
_SURVIVOR = "SELECT id, merged_into_id FROM patient WHERE id = ?"
_PATIENT_BODY = "SELECT body FROM fhir_resource WHERE resource_type = 'Patient' AND logical_id = ?"
_BY_RESIDENT_ID = (
    "SELECT coalesce(p.merged_into_id, p.id) FROM patient_identifier i"
    " JOIN patient p ON p.id = i.patient_id"
    " WHERE i.kind = 'resident_id' AND i.value = ? LIMIT 1"
)
_RESIDENT_ID_OF = (
    "SELECT value FROM patient_identifier WHERE patient_id = ? AND kind = 'resident_id' LIMIT 1"
)
_MERGED_INTO = "SELECT id FROM patient WHERE merged_into_id = ?"
_PATIENT_RESOURCES_WITH = (
    "SELECT logical_id FROM fhir_resource WHERE id IN (SELECT resource_id FROM fhir_token"
    " WHERE resource_type = 'Patient' AND parameter = 'identifier' AND system = ? AND value = ?)"
)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _survivor(connection: Connection, patient_id: int) -> int | None:
    """The patient a record was merged into, or the record itself; None when there is none."""
    rows = fetch_rows(connection, _SURVIVOR, (patient_id,))
    return None if not rows else int(rows[0][1] or rows[0][0])


def find_person(
    connection: Connection, *, fhir_id: str | None = None, resident_id: str | None = None
) -> Person | None:
    """The person behind a FHIR Patient id or a resident ID; None when nobody here knows them."""
    patient_id: int | None = None
    if fhir_id is not None and fhir_id.isascii() and fhir_id.isdigit() and len(fhir_id) < 19:
        patient_id = _survivor(connection, int(fhir_id))
    if patient_id is None and fhir_id is not None:
        bodies = fetch_rows(connection, _PATIENT_BODY, (fhir_id,))
        if not bodies:
            return None
        for identifier in json.loads(bodies[0][0]).get("identifier") or []:
            if identifier.get("system") == RESIDENT_ID_SYSTEM and identifier.get("value"):
                resident_id = str(identifier["value"])
    if patient_id is None and resident_id:
        found = fetch_rows(connection, _BY_RESIDENT_ID, (resident_id,))
        if found:
            patient_id = int(found[0][0])
    if patient_id is not None and resident_id is None:
        known = fetch_rows(connection, _RESIDENT_ID_OF, (patient_id,))
        resident_id = str(known[0][0]) if known else None
    patient_ids: list[int] = []
    if patient_id is not None:
        patient_ids = [patient_id] + [
            int(row[0]) for row in fetch_rows(connection, _MERGED_INTO, (patient_id,))
        ]
    fhir_ids = {str(known) for known in patient_ids}
    if fhir_id is not None:
        fhir_ids.add(fhir_id)
    if resident_id:
        fhir_ids.update(
            str(row[0])
            for row in fetch_rows(
                connection, _PATIENT_RESOURCES_WITH, (RESIDENT_ID_SYSTEM, resident_id)
            )
        )
    if not patient_ids and not fhir_ids:
        return None
    return Person(
        patient_ids=tuple(patient_ids), fhir_ids=tuple(sorted(fhir_ids)), resident_id=resident_id
    )


def _qualified(periods: Sequence[tuple[date, date | None]], on: date) -> bool:
    return any(start <= on and (end is None or on <= end) for start, end in periods)


_LOCAL_PRIORS = (
    "SELECT s.id, s.study_instance_uid, coalesce(s.started_at, s.received_at),"
    " s.quality_rejected, s.facility_id, e.code, e.modality, e.body_part, e.recognised,"
    " f.name, r.id, r.status, r.impression"
    " FROM study s JOIN exam_type e ON e.id = s.exam_type_id"
    " JOIN facility f ON f.id = s.facility_id"
    " LEFT JOIN report r ON r.study_id = s.id"
    " WHERE s.patient_id IN ({patients}) AND s.completed_at IS NOT NULL{kinds}"
)
_QC_PERIODS = (
    "SELECT facility_id, valid_from, valid_until FROM qc_qualification"
    " WHERE facility_id IN ({facilities})"
)
_REMOTE_REPORTS = (
    "SELECT logical_id, origin, body FROM fhir_resource"
    " WHERE resource_type = 'DiagnosticReport' AND subject_id IN ({subjects}) AND origin != ''"
)


def local_priors(
    connection: Connection,
    *,
    person: Person,
    zone: ZoneInfo,
    kinds: Collection[str] | None = None,
) -> list[Prior]:
    """The hub's own studies of the person with their reports (complete studies only).

    ``kinds``: only studies of these exam codes (None: all), for a caller that
    knows which exam types can matter.
    """
    if not person.patient_ids or (kinds is not None and not kinds):
        return []
    codes = sorted(kinds) if kinds is not None else []
    rows = fetch_rows(
        connection,
        _LOCAL_PRIORS.format(
            patients=_marks(len(person.patient_ids)),
            kinds=f" AND e.code IN ({_marks(len(codes))})" if kinds is not None else "",
        ),
        (*person.patient_ids, *codes),
    )
    periods: dict[int, list[tuple[date, date | None]]] = {}
    facilities = sorted({row[4] for row in rows})
    if facilities:
        for facility_id, valid_from, valid_until in fetch_rows(
            connection, _QC_PERIODS.format(facilities=_marks(len(facilities))), facilities
        ):
            periods.setdefault(facility_id, []).append(
                (day(valid_from), day(valid_until) if valid_until is not None else None)
            )
    priors = []
    for (
        study_id,
        uid,
        moment,
        rejected,
        facility_id,
        code,
        modality,
        body_part,
        recognised,
        facility_name,
        report_id,
        report_status,
        impression,
    ) in rows:
        on = instant(moment).astimezone(zone).date()
        priors.append(
            Prior(
                key=uid,
                exam_code=code,
                modality=str(modality),
                body_part=body_part,
                performed_on=on,
                facility=facility_name,
                report_status=ReportStatus(report_status) if report_status else None,
                quality_rejected=bool(rejected),
                facility_qualified=_qualified(periods.get(facility_id, []), on),
                recognised_item=bool(recognised),
                conclusion=impression or "",
                report_ref=f"DiagnosticReport/{report_id}" if report_id else "",
                study_ref=f"ImagingStudy/{study_id}",
                source="",
            )
        )
    return priors


def remote_priors(
    connection: Connection,
    *,
    person: Person,
    exams: Sequence[ExamSpec],
    zone: ZoneInfo,
    kinds: Collection[str] | None = None,
) -> list[Prior]:
    """DiagnosticReports other nodes sent about the person, read through their HR tag."""
    if not person.fhir_ids or (kinds is not None and not kinds):
        return []
    subjects = person.fhir_ids
    rows = fetch_rows(connection, _REMOTE_REPORTS.format(subjects=_marks(len(subjects))), subjects)
    if not rows:
        return []
    by_code = {exam.code: exam for exam in exams}
    by_loinc = {exam.loinc: exam for exam in exams if exam.loinc}
    priors = []
    for logical_id, origin, body in rows:
        report = json.loads(body)
        exam = None
        for coding in (report.get("code") or {}).get("coding") or []:
            if coding.get("system") == EXAM_TYPE_SYSTEM and coding.get("code") in by_code:
                exam = by_code[coding["code"]]
            elif coding.get("system") == LOINC and exam is None:
                exam = by_loinc.get(coding.get("code"))
        if exam is None:
            continue  # an exam this region's catalogue does not know cannot stand in for one
        if kinds is not None and exam.code not in kinds:
            continue
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
            f"{origin}/{logical_id}",
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
                facility=str(performers[0].get("display") or origin),
                report_status=ReportStatus(status) if status in set(ReportStatus) else None,
                quality_rejected=False,
                facility_qualified=tagged,
                recognised_item=tagged and exam.recognised,
                conclusion=str(report.get("conclusion") or ""),
                report_ref=f"DiagnosticReport/{logical_id}",
                study_ref=f"ImagingStudy/{study_id}" if study_id else "",
                source=origin,
            )
        )
    return priors


def priors_of(
    connection: Connection,
    *,
    person: Person,
    exams: Sequence[ExamSpec],
    zone: ZoneInfo,
    kinds: Collection[str] | None = None,
) -> list[Prior]:
    """Every prior of the person, each exam once (the hub's own copy wins over an echo).

    ``kinds`` narrows them to these exam codes (None: every exam), e.g. the
    types that :func:`integration.recognition.stands_for` the requested ones.
    """
    found: dict[str, Prior] = {}
    for prior in local_priors(connection, person=person, zone=zone, kinds=kinds) + remote_priors(
        connection, person=person, exams=exams, zone=zone, kinds=kinds
    ):
        found.setdefault(prior.key, prior)
    return list(found.values())
