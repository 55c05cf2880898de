"""Reports and their revisions, QC events, consultations and critical results."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import ConsultationStatus, ImageGrade, ReportStatus
from models.types import UtcDateTime, text_enum, utc_now


class Report(SQLModel, table=True):
    """The current state of a study's report; every signed change is a ReportRevision."""

    __tablename__ = "report"
    __table_args__ = (
        Index("ix_report_status_final", "status", "finalised_at"),
        Index("ix_report_centre_final", "reading_centre_id", "finalised_at"),
        CheckConstraint(
            "status = 'preliminary' OR status = 'cancelled' OR finalised_at IS NOT NULL",
            name="signed_has_time",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", unique=True)
    order_id: int | None = Field(default=None, foreign_key="exam_order.id", index=True)
    reading_centre_id: int = Field(foreign_key="facility.id")
    status: ReportStatus = Field(sa_type=text_enum(ReportStatus))
    findings: str = Field(default="", sa_type=Text)
    impression: str = Field(default="", sa_type=Text)
    author_id: int = Field(foreign_key="app_user.id", index=True)
    auditor_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    preliminary_at: datetime = Field(sa_type=UtcDateTime)
    finalised_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    amended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    corrected: bool = False  # the auditor changed the preliminary, or it was amended
    positive: bool | None = None
    critical: bool = False
    image_grade: ImageGrade | None = Field(default=None, sa_type=text_enum(ImageGrade, 1))
    version: int = 1
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


class ReportRevision(SQLModel, table=True):
    """An immutable snapshot taken at each preliminary, sign-off, correction or amendment."""

    __tablename__ = "report_revision"
    __table_args__ = (UniqueConstraint("report_id", "version", name="uq_revision_version"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    version: int
    status: ReportStatus = Field(sa_type=text_enum(ReportStatus))
    findings: str = Field(default="", sa_type=Text)
    impression: str = Field(default="", sa_type=Text)
    editor_id: int = Field(foreign_key="app_user.id")
    reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)
    content_hash: str = Field(default="", max_length=64)
    previous_hash: str = Field(default="", max_length=64)


class QcEvent(SQLModel, table=True):
    """An image-quality judgement: a grade on audit, or a retake request."""

    __tablename__ = "qc_event"
    __table_args__ = (Index("ix_qcevent_facility_time", "facility_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    facility_id: int = Field(foreign_key="facility.id")
    technologist: str = Field(default="", max_length=64)
    reviewer_id: int = Field(foreign_key="app_user.id")
    grade: ImageGrade | None = Field(default=None, sa_type=text_enum(ImageGrade, 1))
    artefact: bool = False
    retake_requested: bool = False
    retake_reason: str | None = Field(default=None, max_length=32)
    retake_study_id: int | None = Field(default=None, foreign_key="study.id")
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_type=UtcDateTime)


class Consultation(SQLModel, table=True):
    """A difficult case escalated to a named expert or a higher centre."""

    __tablename__ = "consultation"
    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    requested_by_id: int = Field(foreign_key="app_user.id")
    from_centre_id: int = Field(foreign_key="facility.id")
    expert_id: int | None = Field(default=None, foreign_key="app_user.id")
    expert_facility_id: int = Field(foreign_key="facility.id")
    question: str = Field(sa_type=Text)
    opinion: str = Field(default="", sa_type=Text)
    status: ConsultationStatus = Field(
        default=ConsultationStatus.requested, sa_type=text_enum(ConsultationStatus)
    )
    requested_at: datetime = Field(sa_type=UtcDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CriticalResult(SQLModel, table=True):
    """危急值: flagged on a report; the ordering clinic must be told within 10 minutes."""

    __tablename__ = "critical_result"
    __table_args__ = (
        CheckConstraint(
            "notified_at IS NULL OR notified_at >= flagged_at", name="notified_after_flag"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    study_id: int = Field(foreign_key="study.id")
    patient_id: int = Field(foreign_key="patient.id")
    facility_id: int = Field(foreign_key="facility.id", index=True)  # the clinic to notify
    flagged_by_id: int = Field(foreign_key="app_user.id")
    description: str = Field(max_length=500)
    flagged_at: datetime = Field(sa_type=UtcDateTime)
    notified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    notified_to: str = Field(default="", max_length=64)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    acknowledged_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
