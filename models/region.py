"""Facilities of the region, their QC qualification, AE titles, and the people who log in."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from models.enums import FacilityKind, FacilityLevel, ProfessionalTitle, Role
from models.types import UtcDateTime, text_enum, utc_now


class Facility(SQLModel, table=True):
    """A node of the region tree; townships upload to the reading centre named here."""

    __tablename__ = "facility"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    name_en: str = Field(default="", max_length=160)
    level: FacilityLevel = Field(sa_type=text_enum(FacilityLevel))
    kind: FacilityKind = Field(sa_type=text_enum(FacilityKind))
    parent_id: int | None = Field(default=None, foreign_key="facility.id", index=True)
    reading_centre_id: int | None = Field(default=None, foreign_key="facility.id", index=True)
    is_reading_centre: bool = False
    area_code: str = Field(default="", max_length=6)
    hl7_host: str | None = Field(default=None, max_length=255)
    hl7_port: int | None = None
    hl7_charset: str = Field(default="UNICODE UTF-8", max_length=32)
    fhir_endpoint: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class QcQualification(SQLModel, table=True):
    """A period in which a facility held imaging QC qualification (recognition needs it)."""

    __tablename__ = "qc_qualification"
    __table_args__ = (
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="qc_period"),
        Index("ix_qcqualification_facility_period", "facility_id", "valid_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    facility_id: int = Field(foreign_key="facility.id")
    valid_from: date
    valid_until: date | None = None
    certificate: str = Field(default="", max_length=64)


class FacilityAeTitle(SQLModel, table=True):
    """A DICOM application entity at a facility: lets the hub know who is calling."""

    __tablename__ = "facility_ae_title"
    id: int | None = Field(default=None, primary_key=True)
    facility_id: int = Field(foreign_key="facility.id", index=True)
    ae_title: str = Field(max_length=16, unique=True)
    station_name: str = Field(default="", max_length=64)
    modality: str = Field(default="", max_length=16)
    host: str | None = Field(default=None, max_length=255)  # where C-MOVE sends to this AE
    port: int | None = None


class User(SQLModel, table=True):
    """Someone who logs in to the portal. Auditors hold attending title or above."""

    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint(
            "role <> 'auditor' OR title IN ('attending', 'associate_chief', 'chief')",
            name="auditor_title",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=64)
    role: Role = Field(sa_type=text_enum(Role))
    title: ProfessionalTitle = Field(
        default=ProfessionalTitle.none, sa_type=text_enum(ProfessionalTitle)
    )
    facility_id: int = Field(foreign_key="facility.id", index=True)
    password_hash: str = Field(max_length=255)
    is_demo: bool = False
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


__all__ = ["Facility", "FacilityAeTitle", "QcQualification", "User"]
