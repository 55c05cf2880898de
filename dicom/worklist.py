"""Modality Worklist (MWL C-FIND): parse what a modality asks, match orders, answer.

Pure functions. The hub's provider turns open orders into
:class:`WorklistItem` values, pre-filters them in SQL with the coarse keys of
:class:`WorklistQuery` (date range, modality, station AE) and calls
:func:`matches` for the exact DICOM semantics, then :func:`worklist_response`
for each match. Attributes follow the IHE Scheduled Workflow mapping: the
Scheduled Procedure Step Sequence (station AE title, start date/time,
modality, SPS ID, description, status), Requested Procedure ID, Accession
Number, Study Instance UID and the patient's name, ID, birth date and sex.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from dicom.errors import IDENTIFIER_MISMATCH, DicomError
from dicom.matching import (
    TimeRange,
    combined_range,
    element,
    fill_response,
    in_time_of_day,
    key_text,
    name_matches,
    parse_date_range,
    parse_time_range,
    wildcard_matches,
)

__all__ = [
    "WorklistItem",
    "WorklistQuery",
    "matches",
    "parse_worklist_query",
    "worklist_response",
]

_PRIORITIES = {"STAT": "STAT", "EMERGENCY": "STAT", "HIGH": "HIGH", "ROUTINE": "ROUTINE"}
_PRIORITIES.update({"MEDIUM": "MEDIUM", "LOW": "LOW"})


@dataclass(frozen=True)
class WorklistItem:
    """One scheduled procedure step, built by the hub from an open order.

    ``patient_name`` and the physicians are DICOM PN text (``李^建国``, or
    ``Li^Jianguo=李^建国``); ``scheduled_start`` is aware; ``priority`` is
    ``STAT`` or ``ROUTINE`` (the domain's ``emergency``/``routine`` are mapped).
    """

    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    birth_date: date | None
    sex: str
    accession_number: str
    requested_procedure_id: str
    requested_procedure_description: str
    study_instance_uid: str
    sps_id: str
    sps_description: str
    modality: str
    station_aet: str
    station_name: str
    scheduled_start: datetime
    performing_physician: str
    referring_physician: str
    priority: str
    admission_id: str
    body_part: str


@dataclass(frozen=True)
class WorklistQuery:
    """The matching keys a modality sent; None means universal matching.

    ``start_from``/``start_to`` are aware datetimes (the combined
    ScheduledProcedureStepStartDate/Time range, either end open). A time
    range without a date (rare) is kept as ``time_of_day`` and matched
    against the local time of each item in ``zone``.
    """

    modality: str | None
    station_aet: str | None
    start_from: datetime | None
    start_to: datetime | None
    patient_id: str | None
    accession_number: str | None
    patient_name: str | None
    time_of_day: TimeRange | None = None
    zone: tzinfo = UTC


def parse_worklist_query(identifier: Dataset, *, zone: ZoneInfo) -> WorklistQuery:
    """Read the matching keys of an MWL C-FIND identifier.

    Raises :class:`DicomError`: 0xA900 for malformed keys (a bad date range,
    several SPS items, several values where one is allowed), 0xC000 when a
    key cannot be decoded at all.
    """
    steps = identifier.get("ScheduledProcedureStepSequence")
    step = Dataset()
    if steps:
        if len(steps) > 1:
            raise DicomError(
                "the Scheduled Procedure Step Sequence of a query holds one item",
                field="ScheduledProcedureStepSequence",
                status=IDENTIFIER_MISMATCH,
            )
        step = steps[0]
    modality = key_text(step, "Modality") or key_text(identifier, "Modality")
    station = key_text(step, "ScheduledStationAETitle")
    dates = parse_date_range(
        key_text(step, "ScheduledProcedureStepStartDate"), keyword="ScheduledProcedureStepStartDate"
    )
    times = parse_time_range(
        key_text(step, "ScheduledProcedureStepStartTime"), keyword="ScheduledProcedureStepStartTime"
    )
    start_from, start_to = combined_range(dates, times, zone)
    return WorklistQuery(
        modality=modality,
        station_aet=station,
        start_from=start_from.astimezone(UTC) if start_from else None,
        start_to=start_to.astimezone(UTC) if start_to else None,
        patient_id=key_text(identifier, "PatientID"),
        accession_number=key_text(identifier, "AccessionNumber"),
        patient_name=key_text(identifier, "PatientName"),
        time_of_day=times if dates is None else None,
        zone=zone,
    )


def matches(item: WorklistItem, query: WorklistQuery) -> bool:
    """Whether ``item`` answers ``query`` under DICOM matching rules (PS3.4 C.2.2.2)."""
    start = item.scheduled_start
    return (
        wildcard_matches(item.modality, query.modality)
        and wildcard_matches(item.station_aet, query.station_aet)
        and (query.start_from is None or start >= query.start_from)
        and (query.start_to is None or start <= query.start_to)
        and in_time_of_day(start, query.time_of_day, query.zone)
        and wildcard_matches(item.patient_id, query.patient_id)
        and wildcard_matches(item.accession_number, query.accession_number)
        and name_matches(item.patient_name, query.patient_name)
    )


def _da(day: date | None) -> str:
    return day.strftime("%Y%m%d") if day else ""


def _priority(value: str) -> str:
    return _PRIORITIES.get(value.strip().upper(), "ROUTINE" if value else "")


def _step_values(item: WorklistItem, zone: tzinfo) -> dict[str, Any]:
    local = item.scheduled_start.astimezone(zone)
    return {
        "ScheduledStationAETitle": item.station_aet,
        "ScheduledStationName": item.station_name,
        "ScheduledProcedureStepStartDate": local.strftime("%Y%m%d"),
        "ScheduledProcedureStepStartTime": local.strftime("%H%M%S"),
        "Modality": item.modality,
        "ScheduledPerformingPhysicianName": item.performing_physician,
        "ScheduledProcedureStepDescription": item.sps_description,
        "ScheduledProcedureStepID": item.sps_id,
        "ScheduledProcedureStepStatus": "SCHEDULED",
        "BodyPartExamined": item.body_part,
    }


_FULL_STEP = (
    ("ScheduledStationAETitle", 0x00400001, "AE"),
    ("ScheduledProcedureStepStartDate", 0x00400002, "DA"),
    ("ScheduledProcedureStepStartTime", 0x00400003, "TM"),
    ("Modality", 0x00080060, "CS"),
    ("ScheduledPerformingPhysicianName", 0x00400006, "PN"),
    ("ScheduledProcedureStepDescription", 0x00400007, "LO"),
    ("ScheduledStationName", 0x00400010, "SH"),
    ("ScheduledProcedureStepID", 0x00400009, "SH"),
    ("ScheduledProcedureStepStatus", 0x00400020, "CS"),
)


def worklist_response(
    item: WorklistItem, identifier: Dataset, *, zone: ZoneInfo, charset: str = "ISO_IR 192"
) -> Dataset:
    """The C-FIND response for one item: exactly the requested keys, plus Specific Character Set.

    An empty Scheduled Procedure Step Sequence in the request (or an empty
    item) returns the whole step. Names are encoded in ``charset`` when the
    response is sent (ISO_IR 192 is UTF-8, so Chinese names travel intact).
    """
    values: dict[str, Any] = {
        "PatientName": item.patient_name,
        "PatientID": item.patient_id,
        "IssuerOfPatientID": item.issuer_of_patient_id,
        "PatientBirthDate": _da(item.birth_date),
        "PatientSex": item.sex.upper(),
        "AccessionNumber": item.accession_number,
        "RequestedProcedureID": item.requested_procedure_id,
        "RequestedProcedureDescription": item.requested_procedure_description,
        "StudyInstanceUID": item.study_instance_uid,
        "RequestedProcedurePriority": _priority(item.priority),
        "ReferringPhysicianName": item.referring_physician,
        "AdmissionID": item.admission_id,
        "BodyPartExamined": item.body_part,
        "Modality": item.modality,
    }
    step_values = _step_values(item, zone)

    def step(requested: Dataset) -> Dataset:
        if len(requested) == 0:
            full = Dataset()
            for keyword, tag, vr in _FULL_STEP:
                full.add(element(tag, vr, step_values[keyword]))
            return full
        return fill_response(requested, step_values)

    response = fill_response(identifier, values, sequences={"ScheduledProcedureStepSequence": step})
    response.add(element(0x00080005, "CS", charset))
    return response
