"""Code systems and the domain-to-FHIR code tables the mappers share."""

from __future__ import annotations

from collections.abc import Mapping

from fhir.identifiers import EXAM_TYPE_SYSTEM
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from models.catalogue import ExamType
from models.enums import (
    FacilityKind,
    OrderStatus,
    Priority,
    ProfessionalTitle,
    Role,
    Sex,
)

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RFC_3986 = "urn:ietf:rfc:3986"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
ENDPOINT_CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"

GENDER: Mapping[Sex, str] = {
    Sex.male: "male",
    Sex.female: "female",
    Sex.other: "other",
    Sex.unknown: "unknown",
}

SEX_ZH: Mapping[Sex, str] = {
    Sex.male: "男",
    Sex.female: "女",
    Sex.other: "其他",
    Sex.unknown: "未知",
}

ORGANIZATION_KIND: Mapping[FacilityKind, tuple[str, str, str]] = {
    FacilityKind.hospital: ("prov", "Healthcare Provider", "县级医院"),
    FacilityKind.health_centre: ("prov", "Healthcare Provider", "乡镇卫生院"),
    FacilityKind.clinic: ("prov", "Healthcare Provider", "村卫生室"),
    FacilityKind.bureau: ("govt", "Government", "卫生健康行政部门"),
    FacilityKind.platform: ("other", "Other", "省级检查检验结果互认平台"),
}

TITLE: Mapping[ProfessionalTitle, tuple[str, str]] = {
    ProfessionalTitle.technician: ("Technician", "技师"),
    ProfessionalTitle.resident: ("Resident physician", "住院医师"),
    ProfessionalTitle.attending: ("Attending physician", "主治医师"),
    ProfessionalTitle.associate_chief: ("Associate chief physician", "副主任医师"),
    ProfessionalTitle.chief: ("Chief physician", "主任医师"),
}

ROLE: Mapping[Role, tuple[str, str]] = {
    Role.admin: ("Administrator", "系统管理员"),
    Role.radiologist: ("Radiologist", "放射科医师"),
    Role.auditor: ("Auditing radiologist", "审核医师"),
    Role.clinician: ("Clinician", "临床医师"),
    Role.leader: ("Health bureau leader", "卫生健康局管理人员"),
    Role.qc: ("Quality control officer", "质控员"),
    Role.technologist: ("Radiologic technologist", "放射技师"),
}

ROLE_SNOMED: Mapping[Role, tuple[str, str]] = {
    Role.radiologist: ("66862007", "Radiologist"),
    Role.auditor: ("66862007", "Radiologist"),
    Role.clinician: ("158965000", "Medical practitioner"),
}

SERVICE_REQUEST_STATUS: Mapping[OrderStatus, str] = {
    OrderStatus.scheduled: "active",
    OrderStatus.in_progress: "active",
    OrderStatus.completed: "completed",
    OrderStatus.cancelled: "revoked",
    OrderStatus.discontinued: "revoked",
}
"""R4 request-status has no "cancelled"; ``revoked`` is a request terminated before
full completion, which is what both HL7 CA (before start) and DC (after start) mean.
"""

SERVICE_REQUEST_PRIORITY: Mapping[Priority, str] = {
    Priority.routine: "routine",
    Priority.emergency: "stat",
}


def imaging_category() -> CodeableConcept:
    return CodeableConcept(
        coding=[Coding(system=SNOMED, code="363679005", display="Imaging")], text="影像检查"
    )


BODY_PART_SNOMED: Mapping[str, tuple[str, str]] = {
    "CHEST": ("51185008", "Thoracic structure"),
    "ABDOMEN": ("113345001", "Abdominal structure"),
    "HEAD": ("69536005", "Head structure"),
    "SKULL": ("89546000", "Bone structure of cranium"),
    "BRAIN": ("12738006", "Brain structure"),
    "NECK": ("45048000", "Neck structure"),
    "PELVIS": ("12921003", "Pelvic structure"),
    "SPINE": ("421060004", "Structure of vertebral column"),
    "CSPINE": ("122494005", "Cervical spine structure"),
    "TSPINE": ("122495006", "Thoracic spine structure"),
    "LSPINE": ("122496007", "Lumbar spine structure"),
    "KNEE": ("72696002", "Knee region structure"),
    "HAND": ("85562004", "Hand structure"),
    "FOOT": ("56459004", "Foot structure"),
    "SHOULDER": ("16982005", "Shoulder region structure"),
    "BREAST": ("76752008", "Breast structure"),
    "HEART": ("80891009", "Heart structure"),
    "THYROID": ("69748006", "Thyroid structure"),
    "KIDNEY": ("64033007", "Kidney structure"),
    "UTERUS": ("35039007", "Uterine structure"),
}
"""DICOM Body Part Examined values whose SNOMED CT concept is certain; others travel as text."""

LATERALITY_SNOMED: Mapping[str, tuple[str, str]] = {
    "L": ("7771000", "Left"),
    "R": ("24028007", "Right"),
    "B": ("51440002", "Right and left"),
}


def body_site_coding(body_part: str) -> Coding | None:
    """SNOMED CT for a DICOM body part when known; otherwise a system-less display."""
    value = body_part.strip().upper()
    if not value:
        return None
    known = BODY_PART_SNOMED.get(value)
    if known is None:
        return Coding(display=value)
    code, display = known
    return Coding(system=SNOMED, code=code, display=display)


def laterality_coding(laterality: str) -> Coding | None:
    known = LATERALITY_SNOMED.get(laterality.strip().upper())
    if known is None:
        return None
    code, display = known
    return Coding(system=SNOMED, code=code, display=display)


def modality_coding(modality: str) -> Coding:
    return Coding(system=DCM, code=modality)


def exam_codings(exam: ExamType) -> tuple[Coding, Coding | None]:
    """The catalogue coding and, when the catalogue has one, the LOINC coding."""
    catalogue = Coding(system=EXAM_TYPE_SYSTEM, code=exam.code, display=exam.name_zh)
    loinc = Coding(system=LOINC, code=exam.loinc) if exam.loinc else None
    return catalogue, loinc


def exam_concept(exam: ExamType) -> CodeableConcept:
    """An exam as orders and studies name it: catalogue code first, LOINC alongside."""
    catalogue, loinc = exam_codings(exam)
    return CodeableConcept(
        coding=[catalogue] if loinc is None else [catalogue, loinc], text=exam.name_zh
    )
