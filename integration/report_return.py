"""Sending the report back to the ordering clinic as ORU^R01, through the outbox.

`queue_report_return` is called in the same transaction that makes a report
final (or corrects it); one outbox row per report version, so a version is
never queued twice. `send_hl7` is the outbox sender: AA (or CA) delivers, AE
retries, AR dead-letters.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from hl7.er7 import parse_message
from hl7.errors import ER7Error
from hl7.mllp import MllpClient
from hl7.orders import PatientIdentity
from hl7.oru import Clinician, ReportMessage, build_oru
from integration.outbox import DeliveryError, Parcel, enqueue
from integration.settings import Settings
from models import metadata
from models.enums import IdentifierKind, OutboxChannel, ReportStatus

log = logging.getLogger("huren.report_return")
T = metadata.tables

_OBR25: dict[ReportStatus, Literal["P", "F", "C"]] = {
    ReportStatus.preliminary: "P",
    ReportStatus.final: "F",
    ReportStatus.amended: "C",
    ReportStatus.corrected: "C",
}


def _clinician(connection: Connection, user_id: int | None) -> Clinician | None:
    if user_id is None:
        return None
    row = connection.execute(
        select(T["app_user"].c.username, T["app_user"].c.display_name).where(
            T["app_user"].c.id == user_id
        )
    ).first()
    return Clinician(id=row.username, name=row.display_name) if row else None


def queue_report_return(
    connection: Connection, *, report_id: int, now: datetime, settings: Settings
) -> bool:
    """Queue this report version for the ordering facility's HIS; False when nothing to send.

    Nothing is sent for a report without an order, or for a facility with no
    HL7 endpoint configured (it reads reports in the portal instead).
    """
    report = connection.execute(select(T["report"]).where(T["report"].c.id == report_id)).one()
    status = ReportStatus(report.status)
    if status not in _OBR25 or report.order_id is None:
        return False
    order = connection.execute(
        select(T["exam_order"]).where(T["exam_order"].c.id == report.order_id)
    ).one()
    facility = connection.execute(
        select(T["facility"]).where(T["facility"].c.id == order.ordering_facility_id)
    ).one()
    if not facility.hl7_host or not facility.hl7_port:
        log.info("report %s: %s has no HL7 endpoint; nothing queued", report_id, facility.code)
        return False
    patient = connection.execute(
        select(T["patient"]).where(T["patient"].c.id == order.patient_id)
    ).one()
    identifiers = connection.execute(
        select(T["patient_identifier"]).where(T["patient_identifier"].c.patient_id == patient.id)
    ).all()
    exam = connection.execute(
        select(T["exam_type"]).where(T["exam_type"].c.id == order.exam_type_id)
    ).one()
    study = connection.execute(select(T["study"]).where(T["study"].c.id == report.study_id)).one()
    message = ReportMessage(
        patient_identifiers=tuple(
            PatientIdentity(value=row.value, kind=IdentifierKind(row.kind), authority=row.authority)
            for row in identifiers
            if row.kind == IdentifierKind.resident_id or row.authority == facility.code
        ),
        patient_name=patient.name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        receiving_application="HIS",
        receiving_facility=facility.code,
        placer_number=order.placer_number,
        filler_number=order.filler_number or order.accession_number,
        accession_number=order.accession_number,
        exam_code=exam.code,
        exam_text=exam.name_zh,
        status=_OBR25[status],
        observed_at=study.started_at,
        findings=report.findings,
        impression=report.impression,
        interpreter=_clinician(connection, report.author_id),
        auditor=_clinician(connection, report.auditor_id),
        critical=report.critical,
        report_version=report.version,
        reported_at=report.amended_at or report.finalised_at or report.preliminary_at,
        modality=exam.modality,
        study_instance_uid=study.study_instance_uid,
    )
    payload = build_oru(
        message,
        control_id=f"HR{report_id}V{report.version}",
        now=now,
        charset=facility.hl7_charset or settings.hl7_default_charset,
    )
    return enqueue(
        connection,
        channel=OutboxChannel.hl7,
        destination=f"mllp://{facility.hl7_host}:{facility.hl7_port}",
        idempotency_key=f"oru:{report_id}:v{report.version}",
        payload=payload,
        now=now,
        content_type="application/hl7-v2",
        subject_type="Report",
        subject_id=report_id,
    )


async def send_hl7(parcel: Parcel, *, settings: Settings) -> None:
    """Deliver one HL7 message over MLLP and judge the clinic's ACK."""
    target = urlsplit(parcel.destination)
    if target.scheme != "mllp" or not target.hostname or not target.port:
        raise DeliveryError(f"not an MLLP destination: {parcel.destination}", retryable=False)
    async with MllpClient(
        target.hostname, target.port, timeout=settings.hl7_send_timeout
    ) as client:
        reply = await client.send(parcel.payload)
    try:
        ack = parse_message(reply)
    except ER7Error as exc:
        raise DeliveryError(f"unreadable ACK: {exc}") from exc
    msa = ack.segment("MSA")
    code = msa.get(1) if msa else ""
    text = msa.get(3) if msa else ""
    if code in ("AA", "CA"):
        return
    if code in ("AR", "CR"):
        raise DeliveryError(f"{code} from the clinic: {text}", retryable=False)
    raise DeliveryError(f"{code or 'no MSA'} from the clinic: {text}")
