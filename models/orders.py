"""Orders placed by a clinic's HIS (or the portal) for an exam from the catalogue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import OrderStatus, PatientClass, Priority
from models.types import UtcDateTime, text_enum, utc_now


class Order(SQLModel, table=True):
    """ORC/OBR (or IPC) of an order; accession is unique within its performing facility."""

    __tablename__ = "exam_order"
    __table_args__ = (
        UniqueConstraint("ordering_facility_id", "placer_number", name="uq_order_placer"),
        UniqueConstraint("performing_facility_id", "accession_number", name="uq_order_accession"),
        Index("ix_order_patient_exam", "patient_id", "exam_type_id", "requested_at"),
        Index("ix_order_worklist", "performing_facility_id", "status", "scheduled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(max_length=16, index=True)  # DICOM SH
    placer_number: str = Field(max_length=64)
    filler_number: str | None = Field(default=None, max_length=64)
    patient_id: int = Field(foreign_key="patient.id")
    exam_type_id: int = Field(foreign_key="exam_type.id")
    ordering_facility_id: int = Field(foreign_key="facility.id")
    performing_facility_id: int = Field(foreign_key="facility.id")
    ordering_provider: str = Field(default="", max_length=64)
    ordering_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    priority: Priority = Field(default=Priority.routine, sa_type=text_enum(Priority))
    patient_class: PatientClass = Field(
        default=PatientClass.outpatient, sa_type=text_enum(PatientClass, 1)
    )
    status: OrderStatus = Field(default=OrderStatus.scheduled, sa_type=text_enum(OrderStatus))
    reason: str = Field(default="", max_length=500)
    body_part_count: int = 1
    requested_at: datetime = Field(sa_type=UtcDateTime)
    scheduled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    scheduled_station_aet: str | None = Field(default=None, max_length=16)
    sps_id: str | None = Field(default=None, max_length=16)
    requested_procedure_id: str | None = Field(default=None, max_length=16)
    study_instance_uid: str | None = Field(default=None, max_length=64, unique=True)
    source_message_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
