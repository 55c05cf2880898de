"""Floor 1: the tables, the domain's vocabularies, the engine and data access.

Imports nothing of Huren's other packages.
"""

from sqlmodel import SQLModel

# Named constraints let Alembic alter SQLite tables (batch mode) and PostgreSQL alike.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from models.audit import AuditEvent, SettlementStatement  # noqa: E402
from models.catalogue import ExamCodeAlias, ExamType  # noqa: E402
from models.errors import HurenError  # noqa: E402
from models.exchange import ApiClient, FhirResource, FhirToken  # noqa: E402
from models.imaging import Instance, Series, Study  # noqa: E402
from models.messaging import InboundMessage, Outbox  # noqa: E402
from models.orders import Order  # noqa: E402
from models.patients import Patient, PatientIdentifier, PatientLink  # noqa: E402
from models.recognition import (  # noqa: E402
    AvoidableExam,
    RecognitionCard,
    RecognitionDecision,
    RefusalSample,
)
from models.region import Facility, FacilityAeTitle, QcQualification, User  # noqa: E402
from models.reporting import (  # noqa: E402
    Consultation,
    CriticalResult,
    QcEvent,
    Report,
    ReportRevision,
)

metadata = SQLModel.metadata

__all__ = [
    "ApiClient",
    "AuditEvent",
    "AvoidableExam",
    "Consultation",
    "CriticalResult",
    "ExamCodeAlias",
    "ExamType",
    "Facility",
    "FacilityAeTitle",
    "FhirResource",
    "FhirToken",
    "HurenError",
    "InboundMessage",
    "Instance",
    "Order",
    "Outbox",
    "Patient",
    "PatientIdentifier",
    "PatientLink",
    "QcEvent",
    "QcQualification",
    "RecognitionCard",
    "RecognitionDecision",
    "RefusalSample",
    "Report",
    "ReportRevision",
    "Series",
    "SettlementStatement",
    "Study",
    "User",
    "metadata",
]
