"""The append-only audit trail and the settlement statements signed per half-year."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import AuditAction, AuditOutcome
from models.types import UtcDateTime, text_enum, utc_now


class AuditEvent(SQLModel, table=True):
    """Who saw or changed what, from where (IHE ATNA / FHIR AuditEvent in spirit).

    ``previous_hash``/``hash`` chain the rows so a deleted or edited one shows.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_time", "recorded_at"),
        Index("ix_audit_patient_time", "patient_id", "recorded_at"),
        Index("ix_audit_actor_time", "actor", "recorded_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    action: AuditAction = Field(sa_type=text_enum(AuditAction))
    outcome: AuditOutcome = Field(default=AuditOutcome.success, sa_type=text_enum(AuditOutcome))
    actor: str = Field(max_length=128)  # username, or the client name of a token
    actor_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    facility_id: int | None = Field(default=None, foreign_key="facility.id")
    source_address: str = Field(default="", max_length=64)
    entity_type: str = Field(default="", max_length=32)
    entity_id: str = Field(default="", max_length=64)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    detail: str = Field(default="", sa_type=Text)
    previous_hash: str = Field(default="", max_length=64)
    hash: str = Field(default="", max_length=64)


class SettlementStatement(SQLModel, table=True):
    """Reading fees owed to a reading hospital for a half-year, per clinic, in fen."""

    __tablename__ = "settlement_statement"
    __table_args__ = (
        UniqueConstraint("period", "reading_centre_id", "clinic_id", name="uq_settlement"),
    )

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=8)  # e.g. 2026H1
    reading_centre_id: int = Field(foreign_key="facility.id")
    clinic_id: int = Field(foreign_key="facility.id")
    report_count: int
    body_part_count: int
    rate_fen: int  # per body part
    clinic_share_fen: int
    bureau_share_fen: int
    total_fen: int
    generated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    generated_by_id: int | None = Field(default=None, foreign_key="app_user.id")
