"""In-memory hub rows for the FHIR mapping tests: a county reading centre, a township, one CT."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fhir.resources.R4B.resource import Resource

from models.catalogue import ExamType
from models.enums import (
    FacilityKind,
    FacilityLevel,
    IdentifierKind,
    Modality,
    OrderStatus,
    Priority,
    ProfessionalTitle,
    ReportStatus,
    Role,
    Sex,
    StudyStatus,
)
from models.imaging import Instance, Series, Study
from models.orders import Order
from models.patients import Patient, PatientIdentifier
from models.region import Facility, User
from models.reporting import Report

STUDY_UID = "1.2.156.112605.14038010222575.20260302.1"
RESIDENT_ID = "11010519491231002X"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def county() -> Facility:
    return Facility(
        id=1,
        code="HR-C01",
        name="互认县人民医院",
        name_en="Huren County People's Hospital",
        level=FacilityLevel.county,
        kind=FacilityKind.hospital,
        parent_id=9,
        is_reading_centre=True,
    )


def township() -> Facility:
    return Facility(
        id=2,
        code="HR-T01",
        name="东关镇卫生院",
        level=FacilityLevel.township,
        kind=FacilityKind.health_centre,
        parent_id=1,
        reading_centre_id=1,
    )


def patient(**changes: object) -> Patient:
    row = Patient(
        id=7,
        name="张三丰",
        sex=Sex.male,
        birth_date=date(1949, 12, 31),
        phone="13800138000",
        address="互认县东关镇幸福村 12 号",
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def identifiers() -> list[PatientIdentifier]:
    return [
        PatientIdentifier(
            id=1, patient_id=7, kind=IdentifierKind.mrn, authority="HR-T01", value="MRN 0042"
        ),
        PatientIdentifier(
            id=2, patient_id=7, kind=IdentifierKind.resident_id, authority="CN", value=RESIDENT_ID
        ),
        PatientIdentifier(
            id=3, patient_id=7, kind=IdentifierKind.health_card, authority="CN", value="HC-778899"
        ),
    ]


def exam(**changes: object) -> ExamType:
    row = ExamType(
        id=3,
        code="CT-CHEST-PLAIN",
        name_zh="胸部CT平扫",
        name_en="CT chest without contrast",
        modality=Modality.CT,
        body_part="CHEST",
        loinc="29252-4",
        fee_fen=20000,
        recognised=True,
        validity_days=30,
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def order(**changes: object) -> Order:
    row = Order(
        id=11,
        accession_number="A20260302001",
        placer_number="P 7788",
        filler_number="F-1",
        patient_id=7,
        exam_type_id=3,
        ordering_facility_id=2,
        performing_facility_id=2,
        ordering_provider="李医生",
        priority=Priority.routine,
        status=OrderStatus.scheduled,
        reason="咳嗽两周",
        requested_at=at(2, 0, 30),
        scheduled_at=at(2, 1, 0),
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def study(**changes: object) -> Study:
    row = Study(
        id=12,
        study_instance_uid=STUDY_UID,
        order_id=11,
        patient_id=7,
        exam_type_id=3,
        facility_id=2,
        reading_centre_id=1,
        accession_number="A20260302001",
        modalities="CT\\SR",
        body_part="CHEST",
        description="胸部CT平扫",
        started_at=at(2, 1, 5),
        status=StudyStatus.complete,
        dicom_patient_id="T01-0042",
        dicom_patient_name="ZHANG^SANFENG",
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def series_rows() -> list[Series]:
    return [
        Series(
            id=22,
            study_id=12,
            series_instance_uid=STUDY_UID + ".2",
            number=2,
            modality="CT",
            body_part="CHEST",
            laterality="",
            description="肺窗",
            started_at=at(2, 1, 6),
            num_instances=2,
        ),
        Series(
            id=21,
            study_id=12,
            series_instance_uid=STUDY_UID + ".1",
            number=1,
            modality="CT",
            body_part="CAROTID",
            laterality="L",
            description="定位像",
            started_at=at(2, 1, 5),
            num_instances=1,
        ),
    ]


def instance(series_id: int, uid: str, number: int, version: int = 1) -> Instance:
    return Instance(
        id=100 + number * 10 + version,
        series_id=series_id,
        study_id=12,
        sop_instance_uid=uid,
        sop_class_uid=CT_IMAGE_STORAGE,
        number=number,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        path=f"studies/{uid}.dcm",
        size_bytes=1024,
        sha256="0" * 64,
        version=version,
    )


def instance_rows() -> list[Instance]:
    return [
        instance(22, STUDY_UID + ".2.2", 2),
        instance(22, STUDY_UID + ".2.1", 1),
        instance(22, STUDY_UID + ".2.1", 1, version=2),
        instance(21, STUDY_UID + ".1.1", 1),
    ]


def radiologist() -> User:
    return User(
        id=31,
        username="wangfang",
        display_name="王芳",
        role=Role.radiologist,
        title=ProfessionalTitle.resident,
        facility_id=1,
        password_hash="x",
    )


def auditor() -> User:
    return User(
        id=32,
        username="liuqiang",
        display_name="刘强",
        role=Role.auditor,
        title=ProfessionalTitle.associate_chief,
        facility_id=1,
        password_hash="x",
    )


def report(**changes: object) -> Report:
    row = Report(
        id=41,
        study_id=12,
        order_id=11,
        reading_centre_id=1,
        status=ReportStatus.final,
        findings="双肺纹理清晰，未见明确实质性病变。\n纵隔居中，心影不大。",
        impression="胸部CT平扫未见明显异常。",
        author_id=31,
        auditor_id=32,
        preliminary_at=at(2, 1, 20),
        finalised_at=at(2, 1, 40),
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def roundtrip(resource: Resource) -> None:
    """The resource survives JSON and back through the R4B model unchanged."""
    again = type(resource).model_validate_json(resource.model_dump_json())
    assert again == resource
    assert again.model_dump_json() == resource.model_dump_json()
