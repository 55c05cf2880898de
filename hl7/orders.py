"""Orders and patient events read out of parsed messages, as neutral values.

Pure mapping, no database and no I/O: the intake use-case applies what comes
out. Field choices follow the HL7 V2-to-FHIR IG and the IHE Scheduled
Workflow profile, with the variants Chinese HIS systems send (accession in
OBR-18 and a ZDS Study Instance UID in v2.3.1 ORMs, resident IDs in PID-3).
Every error names the segment or field and carries the HL7 error code its
ACK should report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hl7.er7 import Message, Repetition, Segment, SegmentGroup, parse_date, parse_ts
from hl7.errors import ER7Error, MappingError, UnsupportedMessage
from models.enums import IdentifierKind, PatientClass, Priority, Sex
from models.errors import InvalidResidentId
from models.identity import normalise_resident_id

__all__ = [
    "CONTROLS",
    "SUPPORTED_VERSIONS",
    "OrderEvent",
    "OrderMessage",
    "PatientDemographics",
    "PatientIdentity",
    "PatientMerge",
    "PatientUpdate",
    "map_message",
    "map_patient",
    "person_name",
]

SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
PROCESSING_IDS = frozenset({"P", "T", "D"})
CONTROLS = frozenset({"NW", "XO", "CA", "DC", "SC"})
_NEEDS_DETAIL = frozenset({"NW", "XO"})  # a cancel or status change may come without OBR/IPC
_SUPPORTED_EVENTS: dict[str, frozenset[str]] = {
    "ORM": frozenset({"O01"}),
    "OMI": frozenset({"O23"}),
    "ADT": frozenset({"A01", "A04", "A08", "A40"}),
}

_RESIDENT_TYPES = frozenset({"RI", "NNCHN", "ID", "NI"})
_RESIDENT_AUTHORITIES = frozenset(
    {"CHN", "NNCHN", "GB11643", "RESIDENT", "RESIDENT_ID", "身份证", "居民身份证"}
)
_SEX = {
    "M": Sex.male,
    "F": Sex.female,
    "O": Sex.other,
    "A": Sex.other,
    "U": Sex.unknown,
    "N": Sex.unknown,
    "1": Sex.male,
    "2": Sex.female,
    "男": Sex.male,
    "女": Sex.female,
}
_PATIENT_CLASS = {
    "E": PatientClass.emergency,
    "I": PatientClass.inpatient,
    "O": PatientClass.outpatient,
    "P": PatientClass.physical_exam,
}
_MODALITIES = frozenset({"DX", "CR", "CT", "MR", "US", "MG", "XA", "RF", "NM", "PT", "OT"})
_MODALITY_ALIASES = {"DR": "DX", "MRI": "MR"}
_STAT = frozenset({"S", "STAT", "急", "急诊"})
_SH_MAX = 16  # DICOM SH: accession, requested procedure id, SPS id
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+\Z")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


@dataclass(frozen=True)
class PatientIdentity:
    """One patient identifier (a PID-3 or MRG-1 repetition)."""

    value: str
    kind: IdentifierKind
    authority: str  # CX-4.1 assigning authority, "" when the sender gave none


@dataclass(frozen=True)
class PatientDemographics:
    identifiers: tuple[PatientIdentity, ...]
    name: str
    birth_date: date | None
    sex: Sex
    phone: str
    address: str
    patient_class: PatientClass


@dataclass(frozen=True)
class OrderEvent:
    """One ORC group: what the order is, and what to do with it (``control``)."""

    control: str
    order_status: str
    placer_number: str
    filler_number: str
    accession_number: str
    study_instance_uid: str
    requested_procedure_id: str
    sps_id: str
    modality: str
    station_aet: str
    exam_code: str
    exam_coding_system: str
    exam_text: str
    exam_alt_code: str
    exam_alt_system: str
    priority: Priority
    ordering_provider: str
    reason: str
    requested_at: datetime | None
    scheduled_at: datetime | None
    body_part_count: int = 1


@dataclass(frozen=True)
class OrderMessage:
    patient: PatientDemographics
    orders: tuple[OrderEvent, ...]
    ordering_facility: str


@dataclass(frozen=True)
class PatientUpdate:
    event: str  # A01, A04 or A08
    patient: PatientDemographics


@dataclass(frozen=True)
class PatientMerge:
    patient: PatientDemographics  # the surviving patient (PID)
    prior_identifiers: tuple[PatientIdentity, ...]  # MRG-1: the identifiers merged away


def map_message(message: Message, *, zone: ZoneInfo) -> OrderMessage | PatientUpdate | PatientMerge:
    """The order or patient event a message carries; raises HL7Error subclasses."""
    _check_header(message)
    code, trigger = message.message_code, message.trigger
    if code == "ADT":
        patient = map_patient(message)
        if trigger == "A40":
            return _merge(message, patient)
        return PatientUpdate(event=trigger, patient=patient)
    return _orders(message, zone=zone, omi=code == "OMI")


def _check_header(message: Message) -> None:
    code, trigger = message.message_code, message.trigger
    if code not in _SUPPORTED_EVENTS:
        raise UnsupportedMessage(
            f"message type {code!r} is not supported", field="MSH-9", hl7_error_code="200"
        )
    if trigger not in _SUPPORTED_EVENTS[code]:
        raise UnsupportedMessage(
            f"event {trigger!r} of {code} is not supported", field="MSH-9", hl7_error_code="201"
        )
    if message.version not in SUPPORTED_VERSIONS:
        raise UnsupportedMessage(
            f"HL7 version {message.version!r} is not supported "
            f"(accepted: {', '.join(sorted(SUPPORTED_VERSIONS))})",
            field="MSH-12",
            hl7_error_code="203",
        )
    processing_id = message.processing_id
    if not processing_id:
        raise UnsupportedMessage(
            "MSH-11 (processing id) is empty", field="MSH-11", hl7_error_code="101"
        )
    if processing_id not in PROCESSING_IDS:
        raise UnsupportedMessage(
            f"processing id {processing_id!r} is not supported",
            field="MSH-11",
            hl7_error_code="202",
        )


# ---------------------------------------------------------------- patients


def _blank(value: str) -> str:
    """HL7's explicit null ``""`` reads as empty: the hub never stores the quotes."""
    value = value.strip()
    return "" if value == '""' else value


def person_name(family: str, given: str) -> str:
    """Chinese names join family and given without a space; others read "given family"."""
    family, given = _blank(family), _blank(given)
    if not given:
        return family
    if not family:
        return given
    if _CJK.search(family) or _CJK.search(given):
        return family + given
    return f"{given} {family}"


def _xpn(repetitions: list[Repetition]) -> str:
    """The legal name (type L) if marked, else the first one that has a name."""
    chosen = next((r for r in repetitions if r.get(7) == "L"), None)
    for repetition in [chosen] if chosen else repetitions:
        name = person_name(repetition.get(1), repetition.get(2))
        if name:
            return name
    return ""


def _xcn(repetitions: list[Repetition]) -> str:
    for repetition in repetitions:
        name = person_name(repetition.get(2), repetition.get(3))
        if name:
            return name
    return ""


def _identity(repetition: Repetition, where: str) -> PatientIdentity | None:
    value = _blank(repetition.get(1))
    if not value:
        return None
    type_code = _blank(repetition.get(5)).upper()
    authority = _blank(repetition.get(4))
    says_resident = type_code in _RESIDENT_TYPES or authority.upper() in _RESIDENT_AUTHORITIES
    if says_resident or (not type_code and len(value) == 18):
        try:
            value = normalise_resident_id(value)
        except InvalidResidentId as exc:
            if says_resident:
                raise MappingError(f"{where}: {exc}", field=where, hl7_error_code="102") from None
        else:
            return PatientIdentity(value, IdentifierKind.resident_id, authority)
    return PatientIdentity(value, IdentifierKind.mrn, authority)


def _identities(repetitions: Iterable[Repetition], where: str) -> tuple[PatientIdentity, ...]:
    found: list[PatientIdentity] = []
    for repetition in repetitions:
        identity = _identity(repetition, where)
        if identity is not None and identity not in found:
            found.append(identity)
    return tuple(found)


def _phone(pid: Segment) -> str:
    for repetition in pid.repetitions(13):
        number = _blank(repetition.get(1)) or _blank(repetition.get(12))
        if not number:
            number = _blank(repetition.get(6)) + _blank(repetition.get(7))
        if number:
            return number
    return ""


def _address(pid: Segment) -> str:
    for repetition in pid.repetitions(11):
        street, other, city, state, postal, country = (
            _blank(repetition.get(i)) for i in range(1, 7)
        )
        county = _blank(repetition.get(9))
        if _CJK.search(street + other + city + state + county):
            parts: list[str] = []
            for part in (state, city, county, street, other):
                if part and not any(part in kept for kept in parts):
                    parts.append(part)
            text = "".join(parts)
        else:
            text = ", ".join(
                p for p in (street, other, city, f"{state} {postal}".strip(), country) if p
            )
        if text:
            return text
    return ""


def map_patient(message: Message) -> PatientDemographics:
    """The patient of a message, from PID (required) and PV1 (optional)."""
    pid = message.segment("PID")
    if pid is None:
        raise MappingError(
            f"{message.message_type} has no PID segment", field="PID", hl7_error_code="100"
        )
    identifiers = list(_identities(pid.repetitions(3), "PID-3"))
    ssn = _blank(pid.get(19))  # some HIS carry the resident ID in PID-19 (SSN)
    if len(ssn) == 18:
        try:
            resident = PatientIdentity(normalise_resident_id(ssn), IdentifierKind.resident_id, "")
        except InvalidResidentId:
            pass
        else:
            if all(i.value != resident.value for i in identifiers):
                identifiers.append(resident)
    if not identifiers:
        raise MappingError(
            "PID-3 (patient identifier list) is empty", field="PID-3", hl7_error_code="101"
        )
    try:
        birth_date = parse_date(_blank(pid.get(7)))
    except ER7Error as exc:
        raise MappingError(f"PID-7: {exc}", field="PID-7", hl7_error_code="102") from None
    pv1 = message.segment("PV1")
    patient_class = PatientClass.unknown
    if pv1 is not None:
        patient_class = _PATIENT_CLASS.get(_blank(pv1.get(2)).upper(), PatientClass.unknown)
    return PatientDemographics(
        identifiers=tuple(identifiers),
        name=_xpn(pid.repetitions(5)),
        birth_date=birth_date,
        sex=_SEX.get(_blank(pid.get(8)).upper(), Sex.unknown),
        phone=_phone(pid),
        address=_address(pid),
        patient_class=patient_class,
    )


def _merge(message: Message, patient: PatientDemographics) -> PatientMerge:
    merges = message.all("MRG")
    if not merges:
        raise MappingError("ADT^A40 has no MRG segment", field="MRG", hl7_error_code="100")
    if len(merges) > 1 or len(message.all("PID")) > 1:
        raise MappingError(
            "ADT^A40 with several patient pairs is not supported; send one merge per message",
            field="MRG",
            hl7_error_code="100",
        )
    prior = _identities(merges[0].repetitions(1), "MRG-1")
    if not prior:
        raise MappingError(
            "MRG-1 (prior patient identifier list) is empty", field="MRG-1", hl7_error_code="101"
        )
    return PatientMerge(patient=patient, prior_identifiers=prior)


# ---------------------------------------------------------------- orders


def _orders(message: Message, *, zone: ZoneInfo, omi: bool) -> OrderMessage:
    patient = map_patient(message)
    groups = message.groups("ORC")
    if not groups:
        raise MappingError(
            f"{message.message_type} has no ORC segment", field="ORC", hl7_error_code="100"
        )
    orders = tuple(_order(group, zone=zone, omi=omi) for group in groups)
    return OrderMessage(
        patient=patient,
        orders=orders,
        ordering_facility=_ordering_facility(message, groups[0].head),
    )


def _ordering_facility(message: Message, orc: Segment) -> str:
    return (
        _blank(orc.get(21, 10))
        or _blank(orc.get(21, 1))
        or _blank(orc.get(17, 1))
        or message.sending_facility
    )


def _sh(value: str, field: str, what: str) -> str:
    if len(value) > _SH_MAX:
        raise MappingError(
            f"{what} {value!r} is longer than {_SH_MAX} characters",
            field=field,
            hl7_error_code="102",
        )
    return value


def _ts(segment: Segment | None, field: int, component: int, zone: ZoneInfo) -> datetime | None:
    if segment is None:
        return None
    value = _blank(segment.get(field, component))
    try:
        return parse_ts(value, zone=zone)
    except ER7Error as exc:
        raise MappingError(
            f"{segment.name}-{field}: {exc}", field=f"{segment.name}-{field}", hl7_error_code="102"
        ) from None


def _first(*candidates: tuple[Segment | None, int, int]) -> tuple[str, str]:
    """The first non-empty value among (segment, field, component), with its field name."""
    for segment, field, component in candidates:
        if segment is not None:
            value = _blank(segment.get(field, component))
            if value:
                return value, f"{segment.name}-{field}"
    return "", ""


def _modality(value: str) -> str:
    code = _MODALITY_ALIASES.get(value.upper(), value.upper())
    return code if code in _MODALITIES else ""


def _order(group: SegmentGroup, *, zone: ZoneInfo, omi: bool) -> OrderEvent:
    orc = group.head
    obr, ipc, tq1, zds = (group.segment(name) for name in ("OBR", "IPC", "TQ1", "ZDS"))
    control = _blank(orc.get(1)).upper()
    if not control:
        raise MappingError("ORC-1 (order control) is empty", field="ORC-1", hl7_error_code="101")
    if control not in CONTROLS:
        raise MappingError(
            f"order control {control!r} is not supported (accepted: {', '.join(sorted(CONTROLS))})",
            field="ORC-1",
            hl7_error_code="103",
        )
    if control in _NEEDS_DETAIL:
        if obr is None:
            raise MappingError(
                f"ORC {group.index} ({control}) has no OBR segment",
                field="OBR",
                hl7_error_code="100",
            )
        if omi and ipc is None:
            raise MappingError(
                f"ORC {group.index} ({control}) has no IPC segment",
                field="IPC",
                hl7_error_code="100",
            )

    placer, _ = _first((orc, 2, 1), (obr, 2, 1))
    if not placer:
        raise MappingError(
            "placer order number missing in ORC-2 and OBR-2",
            field="ORC-2/OBR-2",
            hl7_error_code="101",
        )
    filler, _ = _first((orc, 3, 1), (obr, 3, 1))

    accession, where = _first((ipc, 1, 1), (obr, 18, 1))
    accession = _sh(accession, where, "accession number")
    procedure_id, where = _first((ipc, 2, 1), (obr, 19, 1))
    procedure_id = _sh(procedure_id, where, "requested procedure id")
    sps_id, where = _first((ipc, 4, 1), (obr, 20, 1))
    sps_id = _sh(sps_id, where, "scheduled procedure step id")
    study_uid, where = _first((ipc, 3, 1), (zds, 1, 1))
    if study_uid and (len(study_uid) > 64 or not _UID.match(study_uid)):
        raise MappingError(f"{study_uid!r} is not a DICOM UID", field=where, hl7_error_code="102")
    modality_code, _ = _first((ipc, 5, 1), (obr, 24, 1))

    exam_code = _blank(obr.get(4, 1)) if obr is not None else ""
    if control in _NEEDS_DETAIL and not exam_code:
        raise MappingError(
            "OBR-4 (universal service identifier) is empty", field="OBR-4", hl7_error_code="101"
        )

    def obr_value(field: int, component: int = 1) -> str:
        return _blank(obr.get(field, component)) if obr is not None else ""

    priorities = [
        obr_value(5),
        _blank(orc.get(7, 6)),
        _blank(tq1.get(9, 1)) if tq1 is not None else "",
    ]
    priority = (
        Priority.emergency if any(p.upper() in _STAT for p in priorities) else Priority.routine
    )

    provider = _xcn(orc.repetitions(12)) or (_xcn(obr.repetitions(16)) if obr else "")
    reasons = [(_blank(r.get(2)) or _blank(r.get(1))) for r in obr.repetitions(31)] if obr else []
    reason = "; ".join(r for r in reasons if r) or obr_value(13)

    requested_at = _ts(orc, 9, 1, zone) or _ts(obr, 6, 1, zone)
    scheduled_at = _ts(obr, 36, 1, zone) or _ts(tq1, 7, 1, zone) or _ts(orc, 7, 4, zone)

    return OrderEvent(
        control=control,
        order_status=_blank(orc.get(5)),
        placer_number=placer,
        filler_number=filler,
        accession_number=accession,
        study_instance_uid=study_uid,
        requested_procedure_id=procedure_id,
        sps_id=sps_id,
        modality=_modality(modality_code),
        station_aet=_blank(ipc.get(9)) if ipc is not None else "",
        exam_code=exam_code,
        exam_coding_system=obr_value(4, 3),
        exam_text=obr_value(4, 2),
        exam_alt_code=obr_value(4, 4),
        exam_alt_system=obr_value(4, 6),
        priority=priority,
        ordering_provider=provider,
        reason=reason,
        requested_at=requested_at,
        scheduled_at=scheduled_at,
    )
