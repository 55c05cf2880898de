"""The domain's vocabularies. Values are what the database and the wire carry."""

from __future__ import annotations

from enum import StrEnum


class FacilityLevel(StrEnum):
    village = "village"
    township = "township"
    county = "county"
    city = "city"
    province = "province"


class FacilityKind(StrEnum):
    """What a facility does in the region, apart from its administrative level."""

    clinic = "clinic"  # village clinic: refers patients, no modality
    health_centre = "health_centre"  # township health centre: takes images, uploads
    hospital = "hospital"  # county hospital: takes images, may be a reading centre
    bureau = "bureau"  # health bureau: watches, never reads
    platform = "platform"  # provincial recognition platform (a FHIR node)


class Role(StrEnum):
    admin = "admin"
    radiologist = "radiologist"
    auditor = "auditor"
    clinician = "clinician"
    leader = "leader"
    qc = "qc"
    technologist = "technologist"


class ProfessionalTitle(StrEnum):
    """Chinese professional titles, lowest first; auditors need attending or above."""

    none = "none"
    technician = "technician"  # 技士/技师
    resident = "resident"  # 住院医师
    attending = "attending"  # 主治医师
    associate_chief = "associate_chief"  # 副主任医师
    chief = "chief"  # 主任医师

    @property
    def rank(self) -> int:
        return list(ProfessionalTitle).index(self)


AUDITOR_TITLES: frozenset[ProfessionalTitle] = frozenset(
    {ProfessionalTitle.attending, ProfessionalTitle.associate_chief, ProfessionalTitle.chief}
)


class Sex(StrEnum):
    """HL7 table 0001 / DICOM (0010,0040) values."""

    male = "M"
    female = "F"
    other = "O"
    unknown = "U"


class IdentifierKind(StrEnum):
    resident_id = "resident_id"  # 居民身份证号, 18 digits, GB 11643
    mrn = "mrn"  # medical record number, assigned by one facility
    health_card = "health_card"  # 居民健康卡
    other = "other"


class LinkStatus(StrEnum):
    pending = "pending"  # waiting for a person
    confirmed = "confirmed"  # same person: merge
    rejected = "rejected"  # different people


class Modality(StrEnum):
    DX = "DX"
    CR = "CR"
    CT = "CT"
    MR = "MR"
    US = "US"
    MG = "MG"
    XA = "XA"
    RF = "RF"
    NM = "NM"
    PT = "PT"
    OT = "OT"


class Priority(StrEnum):
    routine = "routine"
    emergency = "emergency"  # HL7 STAT


class PatientClass(StrEnum):
    """PV1-2, reduced to what the turnaround rules care about."""

    outpatient = "O"
    inpatient = "I"
    emergency = "E"
    physical_exam = "P"
    unknown = "U"


class OrderStatus(StrEnum):
    scheduled = "scheduled"  # NW accepted, on the worklist
    in_progress = "in_progress"  # images arriving / being read
    completed = "completed"  # final report exists
    cancelled = "cancelled"  # CA before start
    discontinued = "discontinued"  # DC after start


class StudyStatus(StrEnum):
    receiving = "receiving"  # instances still arriving
    complete = "complete"  # stabilised: the turnaround clock runs


class ReadingStatus(StrEnum):
    """Where a complete study stands on its reading centre's worklist."""

    awaiting_preliminary = "awaiting_preliminary"
    awaiting_audit = "awaiting_audit"
    final = "final"
    retake_requested = "retake_requested"


class ReportStatus(StrEnum):
    """FHIR DiagnosticReport.status subset that a radiology report moves through."""

    preliminary = "preliminary"
    final = "final"
    amended = "amended"
    corrected = "corrected"
    cancelled = "cancelled"


class ImageGrade(StrEnum):
    """Image quality grade given on audit (甲/乙/丙/丁 in the QC documents)."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


class ConsultationStatus(StrEnum):
    requested = "requested"
    answered = "answered"
    cancelled = "cancelled"


class RecognitionOutcome(StrEnum):
    accepted = "accepted"  # the prior is reused, no new exam
    refused = "refused"  # a new exam is ordered; reason recorded


class RefusalReason(StrEnum):
    """The national reasons a clinician may give for not reusing a recognisable prior."""

    condition_changed = "condition_changed"  # 病情变化
    conflicts_with_clinical = "conflicts_with_clinical"  # 结果与临床表现不符
    emergency = "emergency"  # 急诊、急救
    rapid_change = "rapid_change"  # 项目变化快
    other = "other"


class RecognitionSource(StrEnum):
    cds_hooks = "cds_hooks"
    portal = "portal"
    rest = "rest"


class InboundStatus(StrEnum):
    accepted = "accepted"  # applied, AA sent
    failed = "failed"  # AE sent; kept for replay
    rejected = "rejected"  # AR sent; kept for replay
    replayed = "replayed"  # applied later by `huren hl7 replay`


class OutboxStatus(StrEnum):
    pending = "pending"
    in_flight = "in_flight"
    delivered = "delivered"
    dead = "dead"  # gave up after the configured attempts; last error kept


class OutboxChannel(StrEnum):
    fhir = "fhir"  # transaction Bundle to the provincial platform
    hl7 = "hl7"  # ORU^R01 back to the ordering clinic


class AuditAction(StrEnum):
    """Modelled on FHIR AuditEvent.action plus the events the bureau asks about."""

    login = "login"
    login_failed = "login_failed"
    logout = "logout"
    read = "read"
    create = "create"
    update = "update"
    delete = "delete"
    export = "export"
    execute = "execute"


class AuditOutcome(StrEnum):
    success = "success"
    failure = "failure"
