"""Applying order events (ORC-1 NW/XO/CA/DC/SC) to the order table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from integration.directory import Directory, ExamRef, FacilityRef
from models import metadata
from models.enums import OrderStatus, PatientClass, Priority
from models.errors import Conflict, NotFound, TransitionError, ValidationError
from models.lifecycle import ORDER_TRANSITIONS, check_transition

ORDER = metadata.tables["exam_order"]
# Built once: intake runs these for every order message.
_BY_PLACER = select(ORDER.c.id, ORDER.c.status, ORDER.c.patient_id).where(
    ORDER.c.ordering_facility_id == bindparam("facility_id"),
    ORDER.c.placer_number == bindparam("placer_number"),
)
_BY_ACCESSION = select(ORDER.c.id).where(
    ORDER.c.performing_facility_id == bindparam("facility_id"),
    ORDER.c.accession_number == bindparam("accession_number"),
)
_BY_STUDY_UID = select(ORDER.c.id).where(ORDER.c.study_instance_uid == bindparam("uid"))
_INSERT = insert(ORDER)

# ORC-5 (HL7 table 0038) values the hub understands, as order statuses.
ORDER_STATUS_CODES: dict[str, OrderStatus] = {
    "SC": OrderStatus.scheduled,
    "IP": OrderStatus.in_progress,
    "A": OrderStatus.in_progress,
    "CM": OrderStatus.completed,
    "CA": OrderStatus.cancelled,
    "DC": OrderStatus.discontinued,
}


class OrderFieldError(ValidationError):
    """An order field the hub cannot accept; ``hl7_error_code`` follows HL7 table 0357."""

    def __init__(self, message: str, *, field: str, hl7_error_code: str = "103") -> None:
        super().__init__(message, field=field)
        self.hl7_error_code = hl7_error_code


@dataclass(frozen=True)
class OrderRequest:
    """An order event in the hub's words, whichever message (ORM, OMI, FHIR) carried it."""

    control: str  # NW, XO, CA, DC, SC
    placer_number: str
    filler_number: str
    accession_number: str
    exam_code: str
    exam_coding_system: str
    exam_alt_code: str
    exam_alt_system: str
    priority: Priority
    patient_class: PatientClass
    ordering_provider: str
    reason: str
    requested_at: datetime | None
    scheduled_at: datetime | None
    study_instance_uid: str
    requested_procedure_id: str
    sps_id: str
    station_aet: str
    order_status: str = ""


@dataclass(frozen=True)
class OrderOutcome:
    order_id: int
    status: OrderStatus
    created: bool


def new_study_uid() -> str:
    """A DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2), unique without a registry."""
    return f"2.25.{uuid.uuid4().int}"


def new_accession() -> str:
    """Accession for orders that arrive without one: 'HR' + 14 hex digits fits DICOM SH."""
    return f"HR{uuid.uuid4().hex[:14].upper()}"


def _exam(directory: Directory, request: OrderRequest, facility: FacilityRef) -> ExamRef:
    exam = directory.exam_type(
        request.exam_code, system=request.exam_coding_system, facility_id=facility.id
    )
    if exam is None and request.exam_alt_code:
        exam = directory.exam_type(
            request.exam_alt_code, system=request.exam_alt_system, facility_id=facility.id
        )
    if exam is None:
        raise OrderFieldError(
            f"exam code {request.exam_code or '(empty)'} is not in the catalogue "
            "and has no alias for this facility",
            field="OBR-4",
        )
    return exam


def apply_order(
    connection: Connection,
    *,
    request: OrderRequest,
    patient_id: int,
    sender: FacilityRef,
    ordering: FacilityRef,
    directory: Directory,
    now: datetime,
    source_message_id: int | None,
    check_unique: bool = True,
) -> OrderOutcome:
    """Create, change, cancel, discontinue or re-status one order; idempotent per event.

    ``check_unique`` False leaves accession and Study UID clashes to the unique
    constraints (an IntegrityError) instead of looking first: the fast path.
    """
    existing = connection.execute(
        _BY_PLACER, {"facility_id": ordering.id, "placer_number": request.placer_number}
    ).first()
    control = request.control.upper()
    if control == "NW":
        if existing is None:
            return _create(
                connection,
                request=request,
                patient_id=patient_id,
                sender=sender,
                ordering=ordering,
                directory=directory,
                now=now,
                source_message_id=source_message_id,
                check_unique=check_unique,
            )
        if existing.patient_id != patient_id:
            raise Conflict(
                f"ORC-2: placer number {request.placer_number} already names an "
                "order of another patient",
                field="ORC-2",
            )
        control = "XO"
    if existing is None:
        raise NotFound(
            f"ORC-2: no order with placer number {request.placer_number} from {ordering.code}",
            field="ORC-2",
        )
    status = OrderStatus(existing.status)
    if control == "XO":
        return _change(
            connection,
            order_id=existing.id,
            status=status,
            request=request,
            sender=sender,
            directory=directory,
            now=now,
        )
    if control == "CA":
        target = OrderStatus.cancelled
        if status is OrderStatus.in_progress:
            raise TransitionError(
                "ORC-1 CA: the exam has started; send DC to discontinue it", field="ORC-1"
            )
    elif control == "DC":
        target = (
            OrderStatus.cancelled if status is OrderStatus.scheduled else OrderStatus.discontinued
        )
    elif control == "SC":
        code = request.order_status.upper()
        if code not in ORDER_STATUS_CODES:
            raise OrderFieldError(
                f"ORC-5 order status {code or '(empty)'} is not supported", field="ORC-5"
            )
        target = ORDER_STATUS_CODES[code]
    else:
        raise OrderFieldError(
            f"ORC-1 order control {control} is not supported", field="ORC-1", hl7_error_code="103"
        )
    if target is not status:
        try:
            check_transition(ORDER_TRANSITIONS, status, target)
        except TransitionError as exc:
            raise TransitionError(str(exc), field="ORC-1" if control != "SC" else "ORC-5") from exc
        connection.execute(
            update(ORDER).where(ORDER.c.id == existing.id).values(status=target, updated_at=now)
        )
    return OrderOutcome(order_id=existing.id, status=target, created=False)


def _create(
    connection: Connection,
    *,
    request: OrderRequest,
    patient_id: int,
    sender: FacilityRef,
    ordering: FacilityRef,
    directory: Directory,
    now: datetime,
    source_message_id: int | None,
    check_unique: bool,
) -> OrderOutcome:
    exam = _exam(directory, request, sender)
    accession = request.accession_number or new_accession()
    if len(accession) > 16:
        raise OrderFieldError(
            f"accession number {accession} is longer than 16 characters",
            field="OBR-18",
            hl7_error_code="102",
        )
    if check_unique:
        clash = connection.execute(
            _BY_ACCESSION, {"facility_id": sender.id, "accession_number": accession}
        ).first()
        if clash is not None:
            raise Conflict(
                f"accession number {accession} is already used by another order",
                field="OBR-18",
            )
    study_uid = request.study_instance_uid or new_study_uid()
    if request.study_instance_uid and check_unique:
        taken = connection.execute(_BY_STUDY_UID, {"uid": study_uid}).first()
        if taken is not None:
            raise Conflict(
                f"Study Instance UID {study_uid} already belongs to another order",
                field="IPC-3",
            )
    requested_at = request.requested_at or now
    result = connection.execute(
        _INSERT,
        {
            "accession_number": accession,
            "placer_number": request.placer_number,
            "filler_number": request.filler_number or None,
            "patient_id": patient_id,
            "exam_type_id": exam.id,
            "ordering_facility_id": ordering.id,
            "performing_facility_id": sender.id,
            "ordering_provider": request.ordering_provider[:64],
            "ordering_user_id": None,
            "priority": request.priority,
            "patient_class": request.patient_class,
            "status": OrderStatus.scheduled,
            "reason": request.reason[:500],
            "body_part_count": exam.body_part_count,
            "requested_at": requested_at,
            "scheduled_at": request.scheduled_at or requested_at,
            "scheduled_station_aet": request.station_aet
            or directory.ae_title(sender.id, exam.modality),
            "sps_id": request.sps_id or None,
            "requested_procedure_id": request.requested_procedure_id or None,
            "study_instance_uid": study_uid,
            "source_message_id": source_message_id,
            "created_at": now,
            "updated_at": now,
        },
    )
    key = result.inserted_primary_key
    assert key is not None
    return OrderOutcome(order_id=int(key[0]), status=OrderStatus.scheduled, created=True)


def _change(
    connection: Connection,
    *,
    order_id: int,
    status: OrderStatus,
    request: OrderRequest,
    sender: FacilityRef,
    directory: Directory,
    now: datetime,
) -> OrderOutcome:
    """XO: details change freely before the exam starts; afterwards only priority and reason."""
    changes: dict[str, object] = {"priority": request.priority, "updated_at": now}
    if request.reason:
        changes["reason"] = request.reason[:500]
    if status is OrderStatus.scheduled:
        exam = _exam(directory, request, sender)
        changes.update(
            exam_type_id=exam.id,
            body_part_count=exam.body_part_count,
            patient_class=request.patient_class,
        )
        if request.scheduled_at:
            changes["scheduled_at"] = request.scheduled_at
        if request.ordering_provider:
            changes["ordering_provider"] = request.ordering_provider[:64]
        if request.station_aet:
            changes["scheduled_station_aet"] = request.station_aet
    elif status is not OrderStatus.in_progress:
        raise TransitionError(
            f"ORC-1 XO: the order is {status.value} and cannot change", field="ORC-1"
        )
    connection.execute(update(ORDER).where(ORDER.c.id == order_id).values(**changes))
    return OrderOutcome(order_id=order_id, status=status, created=False)
