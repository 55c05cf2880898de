"""Study Root Query/Retrieve (C-FIND, and the keys C-MOVE/C-GET select by): pure functions.

The hub's provider reads studies and series from its index into
:class:`StudyRecord`/:class:`SeriesRecord` (pre-filtering in SQL with the
coarse keys of :class:`StudyQuery`), keeps those that :func:`study_matches`
or :func:`series_matches`, and answers with :func:`study_response` or
:func:`series_response`. Hierarchical rules of PS3.4 C.4.1: below STUDY
level the Study Instance UID is required; below SERIES the Series Instance UID.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal

from pydicom.dataset import Dataset

from dicom.errors import IDENTIFIER_MISMATCH, DicomError
from dicom.instance import is_valid_uid
from dicom.matching import (
    DateRange,
    TimeRange,
    element,
    fill_response,
    key_text,
    key_values,
    match_any,
    name_matches,
    parse_date_range,
    parse_time_range,
    wildcard_matches,
)

__all__ = [
    "InstanceRecord",
    "QueryLevel",
    "SeriesRecord",
    "StudyQuery",
    "StudyRecord",
    "instance_matches",
    "instance_response",
    "parse_study_query",
    "series_matches",
    "series_response",
    "study_matches",
    "study_response",
]

QueryLevel = Literal["STUDY", "SERIES", "IMAGE"]
_LEVELS: tuple[QueryLevel, ...] = ("STUDY", "SERIES", "IMAGE")


@dataclass(frozen=True)
class StudyRecord:
    """A study as the index holds it; ``patient_name`` is DICOM PN text."""

    study_instance_uid: str
    patient_id: str
    patient_name: str
    birth_date: date | None
    sex: str
    accession_number: str
    study_date: date | None
    study_time: time | None
    modalities: tuple[str, ...]
    description: str
    num_series: int
    num_instances: int
    referring_physician: str
    study_id: str = ""


@dataclass(frozen=True)
class SeriesRecord:
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    num_instances: int
    series_date: date | None = None
    series_time: time | None = None


@dataclass(frozen=True)
class InstanceRecord:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None


@dataclass(frozen=True)
class StudyQuery:
    """Matching keys of a Study Root identifier; None or empty tuples are universal.

    Study date and time ranges are kept as the modality wrote them (local
    dates and times), because the index stores a study's date as the images
    carry it.
    """

    level: QueryLevel
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_instance_uids: tuple[str, ...] = ()
    study_dates: DateRange | None = None
    study_times: TimeRange | None = None
    modalities_in_study: tuple[str, ...] = ()
    study_description: str | None = None
    study_id: str | None = None
    series_instance_uids: tuple[str, ...] = ()
    modality: str | None = None
    series_number: int | None = None
    sop_instance_uids: tuple[str, ...] = ()


def _uids(identifier: Dataset, keyword: str) -> tuple[str, ...]:
    values = tuple(key_values(identifier, keyword))
    for uid in values:
        if not is_valid_uid(uid):
            raise DicomError(
                f"{keyword} {uid[:80]!r} is not a UID", field=keyword, status=IDENTIFIER_MISMATCH
            )
    return values


def parse_study_query(identifier: Dataset) -> StudyQuery:
    """Read a Study Root identifier (C-FIND, C-MOVE or C-GET).

    Raises :class:`DicomError` (0xA900) for a missing or unknown Query/Retrieve
    Level, a missing higher-level unique key, or malformed values.
    """
    level = (key_text(identifier, "QueryRetrieveLevel") or "").upper()
    if level not in _LEVELS:
        raise DicomError(
            f"QueryRetrieveLevel {level!r} is not one of STUDY, SERIES, IMAGE (Study Root)",
            field="QueryRetrieveLevel",
            status=IDENTIFIER_MISMATCH,
        )
    studies = _uids(identifier, "StudyInstanceUID")
    series = _uids(identifier, "SeriesInstanceUID")
    sops = _uids(identifier, "SOPInstanceUID")
    if level in ("SERIES", "IMAGE") and len(studies) != 1:
        raise DicomError(
            f"a {level} level query names exactly one Study Instance UID",
            field="StudyInstanceUID",
            status=IDENTIFIER_MISMATCH,
        )
    if level == "IMAGE" and len(series) != 1:
        raise DicomError(
            "an IMAGE level query names exactly one Series Instance UID",
            field="SeriesInstanceUID",
            status=IDENTIFIER_MISMATCH,
        )
    number = key_text(identifier, "SeriesNumber")
    try:
        series_number = int(number) if number is not None and "*" not in number else None
    except ValueError:
        raise DicomError(
            f"SeriesNumber {number!r} is not an integer",
            field="SeriesNumber",
            status=IDENTIFIER_MISMATCH,
        ) from None
    return StudyQuery(
        level=level,
        patient_id=key_text(identifier, "PatientID"),
        patient_name=key_text(identifier, "PatientName"),
        accession_number=key_text(identifier, "AccessionNumber"),
        study_instance_uids=studies,
        study_dates=parse_date_range(key_text(identifier, "StudyDate"), keyword="StudyDate"),
        study_times=parse_time_range(key_text(identifier, "StudyTime"), keyword="StudyTime"),
        modalities_in_study=tuple(key_values(identifier, "ModalitiesInStudy")),
        study_description=key_text(identifier, "StudyDescription"),
        study_id=key_text(identifier, "StudyID"),
        series_instance_uids=series,
        modality=key_text(identifier, "Modality"),
        series_number=series_number,
        sop_instance_uids=sops,
    )


def _in_moment_range(
    day: date | None, clock: time | None, dates: DateRange | None, times: TimeRange | None
) -> bool:
    """Combined DA/TM range matching on local values; a record lacking the value fails the key."""
    if dates is None and times is None:
        return True
    if dates is None:
        low_clock, high_clock = times or (None, None)
        return (
            clock is not None
            and (low_clock is None or clock >= low_clock)
            and (high_clock is None or clock <= high_clock)
        )
    if day is None:
        return False
    low_day, high_day = dates
    if clock is None or times is None:
        return (low_day is None or day >= low_day) and (high_day is None or day <= high_day)
    moment = datetime.combine(day, clock)
    low = datetime.combine(low_day, times[0] or time(0, 0)) if low_day else None
    high = datetime.combine(high_day, times[1] or time(23, 59, 59, 999999)) if high_day else None
    return (low is None or moment >= low) and (high is None or moment <= high)


def study_matches(record: StudyRecord, query: StudyQuery) -> bool:
    """Study-level keys (and patient keys, which Study Root carries at study level)."""
    return (
        (not query.study_instance_uids or record.study_instance_uid in query.study_instance_uids)
        and wildcard_matches(record.patient_id, query.patient_id)
        and name_matches(record.patient_name, query.patient_name)
        and wildcard_matches(record.accession_number, query.accession_number)
        and wildcard_matches(record.study_id, query.study_id)
        and wildcard_matches(record.description, query.study_description, ignore_case=True)
        and (
            not query.modalities_in_study
            or any(match_any(m, query.modalities_in_study) for m in record.modalities)
        )
        and _in_moment_range(
            record.study_date, record.study_time, query.study_dates, query.study_times
        )
    )


def series_matches(record: SeriesRecord, query: StudyQuery) -> bool:
    """Series-level keys; the study was fixed by the query's unique Study Instance UID."""
    return (
        (not query.study_instance_uids or record.study_instance_uid in query.study_instance_uids)
        and (
            not query.series_instance_uids
            or record.series_instance_uid in query.series_instance_uids
        )
        and wildcard_matches(record.modality, query.modality)
        and (query.series_number is None or record.series_number == query.series_number)
    )


def instance_matches(record: InstanceRecord, query: StudyQuery) -> bool:
    return (
        (not query.study_instance_uids or record.study_instance_uid in query.study_instance_uids)
        and (
            not query.series_instance_uids
            or record.series_instance_uid in query.series_instance_uids
        )
        and (not query.sop_instance_uids or record.sop_instance_uid in query.sop_instance_uids)
    )


def _da(day: date | None) -> str:
    return day.strftime("%Y%m%d") if day else ""


def _tm(clock: time | None) -> str:
    return clock.strftime("%H%M%S") if clock else ""


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def _finish(
    response: Dataset, level: QueryLevel, charset: str, retrieve_aet: str, identifier: Dataset
) -> Dataset:
    response.add(element(0x00080005, "CS", charset))
    response.add(element(0x00080052, "CS", level))
    if retrieve_aet and "RetrieveAETitle" in identifier:
        response.add(element(0x00080054, "AE", retrieve_aet))
    return response


def study_response(
    record: StudyRecord,
    identifier: Dataset,
    *,
    retrieve_aet: str = "",
    charset: str = "ISO_IR 192",
) -> Dataset:
    """A STUDY level response: the requested keys, Query/Retrieve Level and character set."""
    values: dict[str, Any] = {
        "StudyInstanceUID": record.study_instance_uid,
        "PatientID": record.patient_id,
        "PatientName": record.patient_name,
        "PatientBirthDate": _da(record.birth_date),
        "PatientSex": record.sex.upper(),
        "AccessionNumber": record.accession_number,
        "StudyDate": _da(record.study_date),
        "StudyTime": _tm(record.study_time),
        "ModalitiesInStudy": "\\".join(record.modalities),
        "StudyDescription": record.description,
        "StudyID": record.study_id,
        "NumberOfStudyRelatedSeries": str(record.num_series),
        "NumberOfStudyRelatedInstances": str(record.num_instances),
        "ReferringPhysicianName": record.referring_physician,
        "InstanceAvailability": "ONLINE",
    }
    response = fill_response(identifier, values)
    return _finish(response, "STUDY", charset, retrieve_aet, identifier)


def series_response(
    record: SeriesRecord,
    identifier: Dataset,
    *,
    retrieve_aet: str = "",
    charset: str = "ISO_IR 192",
) -> Dataset:
    """A SERIES level response (Study Instance UID is echoed, as the hierarchy requires)."""
    values: dict[str, Any] = {
        "StudyInstanceUID": record.study_instance_uid,
        "SeriesInstanceUID": record.series_instance_uid,
        "Modality": record.modality,
        "SeriesNumber": _number(record.series_number),
        "SeriesDescription": record.description,
        "BodyPartExamined": record.body_part,
        "SeriesDate": _da(record.series_date),
        "SeriesTime": _tm(record.series_time),
        "NumberOfSeriesRelatedInstances": str(record.num_instances),
        "InstanceAvailability": "ONLINE",
    }
    response = fill_response(identifier, values)
    if "StudyInstanceUID" not in response:
        response.add(element(0x0020000D, "UI", record.study_instance_uid))
    return _finish(response, "SERIES", charset, retrieve_aet, identifier)


def instance_response(
    record: InstanceRecord,
    identifier: Dataset,
    *,
    retrieve_aet: str = "",
    charset: str = "ISO_IR 192",
) -> Dataset:
    """An IMAGE level response."""
    values: dict[str, Any] = {
        "StudyInstanceUID": record.study_instance_uid,
        "SeriesInstanceUID": record.series_instance_uid,
        "SOPInstanceUID": record.sop_instance_uid,
        "SOPClassUID": record.sop_class_uid,
        "InstanceNumber": _number(record.instance_number),
        "InstanceAvailability": "ONLINE",
    }
    response = fill_response(identifier, values)
    for keyword, tag, uid in (
        ("StudyInstanceUID", 0x0020000D, record.study_instance_uid),
        ("SeriesInstanceUID", 0x0020000E, record.series_instance_uid),
    ):
        if keyword not in response:
            response.add(element(tag, "UI", uid))
    return _finish(response, "IMAGE", charset, retrieve_aet, identifier)
