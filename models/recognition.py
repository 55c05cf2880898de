"""What clinicians decided when told a recognisable prior exists."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import RecognitionOutcome, RecognitionSource, RefusalReason
from models.types import UtcDateTime, text_enum


class RecognitionDecision(SQLModel, table=True):
    """Accepted (no new exam) or refused with one of the national reasons."""

    __tablename__ = "recognition_decision"
    __table_args__ = (
        CheckConstraint(
            "outcome = 'accepted' OR refusal_reason IS NOT NULL", name="refusal_has_reason"
        ),
        Index("ix_recognition_patient_time", "patient_id", "decided_at"),
        Index("ix_recognition_outcome_time", "outcome", "decided_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id")
    requested_exam_type_id: int = Field(foreign_key="exam_type.id")
    prior_study_id: int | None = Field(default=None, foreign_key="study.id")
    prior_report_id: int | None = Field(default=None, foreign_key="report.id")
    facility_id: int = Field(foreign_key="facility.id", index=True)  # where the clinician orders
    clinician_id: int | None = Field(default=None, foreign_key="app_user.id")
    clinician_ref: str = Field(default="", max_length=128)  # CDS Hooks userId when external
    outcome: RecognitionOutcome = Field(sa_type=text_enum(RecognitionOutcome))
    refusal_reason: RefusalReason | None = Field(default=None, sa_type=text_enum(RefusalReason))
    comment: str = Field(default="", max_length=500)
    source: RecognitionSource = Field(sa_type=text_enum(RecognitionSource))
    card_id: str = Field(default="", max_length=64)
    new_order_id: int | None = Field(default=None, foreign_key="exam_order.id")
    avoided_fee_fen: int = 0  # the fee not charged because the prior was reused
    decided_at: datetime = Field(sa_type=UtcDateTime)


class RecognitionCard(SQLModel, table=True):
    """A card the CDS service showed, kept so that its feedback can be recorded against it."""

    __tablename__ = "recognition_card"

    id: int | None = Field(default=None, primary_key=True)
    card_uuid: str = Field(max_length=36, unique=True)
    hook_instance: str = Field(max_length=64)
    service: str = Field(max_length=64)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    requested_exam_type_id: int = Field(foreign_key="exam_type.id")
    prior_key: str = Field(max_length=64)  # Study Instance UID of the prior
    prior_study_id: int | None = Field(default=None, foreign_key="study.id")
    prior_report_id: int | None = Field(default=None, foreign_key="report.id")
    prior_source: str = Field(default="", max_length=64)  # "" here, else the sending node
    recognisable: bool
    facility_id: int | None = Field(default=None, foreign_key="facility.id")  # where ordered
    clinician_ref: str = Field(default="", max_length=128)
    draft_order_ref: str = Field(default="", max_length=128)
    avoidable_fee_fen: int = 0
    issued_at: datetime = Field(sa_type=UtcDateTime)


class RefusalSample(SQLModel, table=True):
    """One refusal drawn into a month's 10% audit sample, and the reviewer's finding."""

    __tablename__ = "refusal_sample"
    __table_args__ = (UniqueConstraint("month", "decision_id", name="uq_refusal_sample"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, index=True)  # YYYY-MM, in the region's time zone
    seed: str = Field(max_length=64)  # what drew it, so the draw can be repeated and checked
    decision_id: int = Field(foreign_key="recognition_decision.id")
    drawn_at: datetime = Field(sa_type=UtcDateTime)
    justified: bool | None = None  # None until reviewed
    note: str = Field(default="", max_length=500)
    reviewer_id: int | None = Field(default=None, foreign_key="app_user.id")
    reviewed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class AvoidableExam(SQLModel, table=True):
    """An exam done although a recognisable prior existed and no refusal was recorded."""

    __tablename__ = "avoidable_exam"

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", unique=True)
    patient_id: int = Field(foreign_key="patient.id")
    exam_type_id: int = Field(foreign_key="exam_type.id")
    facility_id: int = Field(foreign_key="facility.id", index=True)
    performed_on: date = Field(index=True)
    prior_key: str = Field(max_length=64)  # the prior's Study Instance UID
    prior_facility: str = Field(max_length=120)
    prior_performed_on: date
    fee_fen: int
    found_at: datetime = Field(sa_type=UtcDateTime)
