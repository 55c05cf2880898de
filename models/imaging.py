"""Studies, series and instances held by the hub's archive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import Priority, ReadingStatus, StudyStatus
from models.types import UtcDateTime, text_enum, utc_now


class Study(SQLModel, table=True):
    """A DICOM study. ``completed_at`` (stable at the hub) starts the turnaround clock."""

    __tablename__ = "study"
    __table_args__ = (
        Index("ix_study_worklist", "reading_centre_id", "reading_status", "completed_at"),
        Index("ix_study_prior", "patient_id", "exam_type_id", "started_at"),
        Index("ix_study_facility_started", "facility_id", "started_at"),
        Index("ix_study_status_last", "status", "last_instance_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_instance_uid: str = Field(max_length=64, unique=True)
    order_id: int | None = Field(default=None, foreign_key="exam_order.id", index=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    exam_type_id: int | None = Field(default=None, foreign_key="exam_type.id")
    facility_id: int = Field(foreign_key="facility.id")  # where the images were taken
    reading_centre_id: int | None = Field(default=None, foreign_key="facility.id")
    accession_number: str | None = Field(default=None, max_length=16, index=True)
    modalities: str = Field(default="", max_length=64)  # ModalitiesInStudy, backslash-joined
    body_part: str = Field(default="", max_length=16)
    description: str = Field(default="", max_length=128)
    station_name: str = Field(default="", max_length=64)
    priority: Priority = Field(default=Priority.routine, sa_type=text_enum(Priority))
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    received_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    last_instance_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    status: StudyStatus = Field(default=StudyStatus.receiving, sa_type=text_enum(StudyStatus))
    reading_status: ReadingStatus | None = Field(default=None, sa_type=text_enum(ReadingStatus))
    num_series: int = 0
    num_instances: int = 0
    quality_rejected: bool = False
    retake_of_study_id: int | None = Field(default=None, foreign_key="study.id")
    claimed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    dicom_patient_id: str = Field(default="", max_length=64)
    dicom_patient_name: str = Field(default="", max_length=128)
    demographics_conflict: bool = False
    source_node: str | None = Field(default=None, max_length=64)  # None: taken in this region


class Series(SQLModel, table=True):
    __tablename__ = "series"
    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    series_instance_uid: str = Field(max_length=64, unique=True)
    number: int | None = None
    modality: str = Field(max_length=16)
    body_part: str = Field(default="", max_length=16)
    laterality: str = Field(default="", max_length=2)
    description: str = Field(default="", max_length=128)
    station_name: str = Field(default="", max_length=64)
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    num_instances: int = 0


class Instance(SQLModel, table=True):
    """One stored SOP instance; a differing re-send of the same UID is a new version."""

    __tablename__ = "instance"
    __table_args__ = (UniqueConstraint("sop_instance_uid", "version", name="uq_instance_version"),)

    id: int | None = Field(default=None, primary_key=True)
    series_id: int = Field(foreign_key="series.id", index=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    sop_instance_uid: str = Field(max_length=64, index=True)
    sop_class_uid: str = Field(max_length=64)
    number: int | None = None
    transfer_syntax_uid: str = Field(max_length=64)
    path: str = Field(max_length=512)  # relative to the data directory
    size_bytes: int
    sha256: str = Field(max_length=64)
    version: int = 1
    received_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
