"""Patients (the regional EMPI) and their identifiers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from models.enums import IdentifierKind, LinkStatus, Sex
from models.identity import normalise_resident_id
from models.types import UtcDateTime, text_enum, utc_now

RESIDENT_ID_AUTHORITY = "CN"


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (Index("ix_patient_demographics", "name", "birth_date", "sex"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    sex: Sex = Field(default=Sex.unknown, sa_type=text_enum(Sex, 1))
    birth_date: date | None = None
    phone: str = Field(default="", max_length=32)
    address: str = Field(default="", max_length=255)
    merged_into_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    needs_review: bool = False  # a doubtful identity link waiting for a person to decide
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class PatientIdentifier(SQLModel, table=True):
    """PID-3 repetitions: the resident ID (authority ``CN``) and per-facility MRNs."""

    __tablename__ = "patient_identifier"
    __table_args__ = (
        UniqueConstraint("kind", "authority", "value", name="uq_patientidentifier_value"),
        CheckConstraint("kind <> 'resident_id' OR length(value) = 18", name="resident_id_length"),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    kind: IdentifierKind = Field(sa_type=text_enum(IdentifierKind))
    authority: str = Field(max_length=32)  # facility code for an MRN, CN for resident IDs
    value: str = Field(max_length=64, index=True)


@event.listens_for(PatientIdentifier, "before_insert")
@event.listens_for(PatientIdentifier, "before_update")
def _check_resident_id(_mapper: Any, _connection: Any, target: PatientIdentifier) -> None:
    """Every ORM write of a resident ID passes the GB 11643 check, whoever writes it."""
    if target.kind == IdentifierKind.resident_id:
        target.value = normalise_resident_id(target.value)
        target.authority = RESIDENT_ID_AUTHORITY


class PatientLink(SQLModel, table=True):
    """A doubtful identity match (same name, birth date, sex; no shared identifier).

    The hub does not merge on a guess: it keeps both patients and records the
    candidate pair here for a person to confirm or reject.
    """

    __tablename__ = "patient_link"
    __table_args__ = (UniqueConstraint("patient_id", "candidate_id", name="uq_patient_link"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    candidate_id: int = Field(foreign_key="patient.id", index=True)
    score: float
    reason: str = Field(default="", max_length=200)
    status: LinkStatus = Field(default=LinkStatus.pending, sa_type=text_enum(LinkStatus))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    decided_by_id: int | None = Field(default=None, foreign_key="app_user.id")
