"""Patient, Organization, Practitioner, PractitionerRole and Endpoint from hub rows."""

from __future__ import annotations

import json

import pytest
from fhir_samples import county, identifiers, patient, radiologist, roundtrip, township

from fhir.identifiers import (
    FACILITY_SYSTEM,
    HEALTH_CARD_SYSTEM,
    RESIDENT_ID_SYSTEM,
    SID,
    V2_0203,
    mrn_system,
)
from fhir.mapping import (
    endpoint_from,
    human_name,
    organization_from,
    patient_from,
    practitioner_from,
    practitioner_role_from,
)
from models.enums import FacilityKind, IdentifierKind, ProfessionalTitle, Role, Sex
from models.patients import PatientIdentifier


def test_patient_identifiers_resident_id_first() -> None:
    mapped = patient_from(patient(), identifiers())
    roundtrip(mapped)
    assert mapped.id == "7"
    assert mapped.identifier is not None
    rows = [(i.system, i.value, i.use) for i in mapped.identifier]
    assert rows == [
        (RESIDENT_ID_SYSTEM, "11010519491231002X", "official"),
        (HEALTH_CARD_SYSTEM, "HC-778899", "secondary"),
        (mrn_system("HR-T01"), "MRN 0042", "usual"),
    ]
    resident, card, mrn = mapped.identifier
    assert resident.type is not None and resident.type.coding is not None
    assert (resident.type.coding[0].system, resident.type.coding[0].code) == (V2_0203, "NNCHN")
    assert resident.type.text == "居民身份证号"
    assert card.type is not None and card.type.coding is not None
    assert card.type.coding[0].code == "HC"
    assert mrn.type is not None and mrn.type.coding is not None
    assert mrn.type.coding[0].code == "MR"
    assert mrn.assigner is not None and mrn.assigner.identifier is not None
    assert (mrn.assigner.identifier.system, mrn.assigner.identifier.value) == (
        FACILITY_SYSTEM,
        "HR-T01",
    )


def test_patient_demographics_and_chinese_name_survive_json() -> None:
    mapped = patient_from(patient(), identifiers())
    assert mapped.gender == "male"
    assert mapped.birthDate is not None and mapped.birthDate.isoformat() == "1949-12-31"
    assert mapped.active is True
    assert mapped.link is None
    assert mapped.telecom is not None
    assert [(t.system, t.value) for t in mapped.telecom] == [("phone", "13800138000")]
    assert mapped.address is not None and mapped.address[0].text == "互认县东关镇幸福村 12 号"
    wire = json.loads(mapped.model_dump_json())
    assert wire["name"] == [
        {"use": "official", "text": "张三丰", "family": "张", "given": ["三丰"]}
    ]
    assert "张三丰" in mapped.model_dump_json()


def test_mrn_authority_can_be_mapped_to_a_facility_code() -> None:
    rows = [
        PatientIdentifier(
            id=9, patient_id=7, kind=IdentifierKind.mrn, authority="DGZWSY", value="0042"
        )
    ]
    mapped = patient_from(patient(), rows, {"DGZWSY": "HR-T01"})
    assert mapped.identifier is not None
    assert mapped.identifier[0].system == mrn_system("HR-T01")
    unmapped = patient_from(patient(), rows)
    assert unmapped.identifier is not None
    assert unmapped.identifier[0].system == mrn_system("DGZWSY")


@pytest.mark.parametrize(
    ("sex", "gender"),
    [(Sex.male, "male"), (Sex.female, "female"), (Sex.other, "other"), (Sex.unknown, "unknown")],
)
def test_gender_from_sex(sex: Sex, gender: str) -> None:
    assert patient_from(patient(sex=sex), []).gender == gender


def test_merged_patient_is_inactive_and_points_at_the_survivor() -> None:
    mapped = patient_from(patient(merged_into_id=3), identifiers())
    roundtrip(mapped)
    assert mapped.active is False
    assert mapped.link is not None
    assert [(link.type, link.other.reference) for link in mapped.link] == [
        ("replaced-by", "Patient/3")
    ]


def test_patient_without_identifiers_phone_or_address() -> None:
    mapped = patient_from(patient(phone="", address="", birth_date=None), [])
    roundtrip(mapped)
    assert mapped.identifier is None
    assert mapped.telecom is None
    assert mapped.address is None
    assert mapped.birthDate is None


@pytest.mark.parametrize(
    ("name", "family", "given"),
    [
        ("王芳", "王", ["芳"]),
        ("张三丰", "张", ["三丰"]),
        ("欧阳娜娜", "欧", ["阳娜娜"]),
        ("𠮷田一", "𠮷", ["田一"]),
        ("王", None, None),
        ("诸葛孔明亮", None, None),
        ("买买提·艾力", None, None),
        ("爱新觉罗溥仪", None, None),
        ("John Smith", None, None),
    ],
)
def test_human_name_split_only_for_two_to_four_cjk_characters(
    name: str, family: str | None, given: list[str] | None
) -> None:
    mapped = human_name(name)
    assert mapped.text == name
    assert mapped.use == "official"
    assert mapped.family == family
    assert mapped.given == given


def test_patient_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="Patient has no database id"):
        patient_from(patient(id=None), [])


def test_organization_from_facility() -> None:
    mapped = organization_from(county())
    roundtrip(mapped)
    assert mapped.id == "1"
    assert mapped.identifier is not None
    assert [(i.system, i.value) for i in mapped.identifier] == [(FACILITY_SYSTEM, "HR-C01")]
    assert mapped.name == "互认县人民医院"
    assert mapped.alias == ["Huren County People's Hospital"]
    assert mapped.partOf is not None and mapped.partOf.reference == "Organization/9"
    assert mapped.active is True
    assert mapped.type is not None and mapped.type[0].coding is not None
    coding = mapped.type[0].coding[0]
    assert (coding.system, coding.code) == (
        "http://terminology.hl7.org/CodeSystem/organization-type",
        "prov",
    )
    assert mapped.type[0].text == "县级医院"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (FacilityKind.hospital, "prov"),
        (FacilityKind.health_centre, "prov"),
        (FacilityKind.clinic, "prov"),
        (FacilityKind.bureau, "govt"),
        (FacilityKind.platform, "other"),
    ],
)
def test_organization_type_from_facility_kind(kind: FacilityKind, code: str) -> None:
    facility = township()
    facility.kind = kind
    mapped = organization_from(facility)
    assert mapped.type is not None and mapped.type[0].coding is not None
    assert mapped.type[0].coding[0].code == code
    assert mapped.type[0].text


def test_organization_without_parent_or_english_name() -> None:
    facility = township()
    facility.parent_id = None
    facility.active = False
    mapped = organization_from(facility)
    assert mapped.partOf is None
    assert mapped.alias is None
    assert mapped.active is False


def test_practitioner_from_user() -> None:
    mapped = practitioner_from(radiologist(), county())
    roundtrip(mapped)
    assert mapped.id == "31"
    assert mapped.identifier is not None
    assert [(i.system, i.value) for i in mapped.identifier] == [
        (SID + "practitioner/HR-C01", "wangfang")
    ]
    assert mapped.name is not None and mapped.name[0].text == "王芳"
    assert mapped.qualification is not None
    code = mapped.qualification[0].code
    assert code.text == "住院医师"
    assert code.coding is not None
    assert (code.coding[0].system, code.coding[0].code) == (
        SID + "professional-title",
        "resident",
    )


def test_practitioner_without_title_has_no_qualification() -> None:
    user = radiologist()
    user.title = ProfessionalTitle.none
    assert practitioner_from(user, county()).qualification is None


@pytest.mark.parametrize(
    ("role", "snomed", "text"),
    [
        (Role.radiologist, "66862007", "放射科医师"),
        (Role.auditor, "66862007", "审核医师"),
        (Role.clinician, "158965000", "临床医师"),
        (Role.qc, None, "质控员"),
        (Role.technologist, None, "放射技师"),
    ],
)
def test_practitioner_role_code_from_role(role: Role, snomed: str | None, text: str) -> None:
    user = radiologist()
    user.role = role
    mapped = practitioner_role_from(user, county())
    roundtrip(mapped)
    assert mapped.id == "31"
    assert mapped.practitioner is not None and mapped.practitioner.reference == "Practitioner/31"
    assert mapped.organization is not None
    assert mapped.organization.reference == "Organization/1"
    assert mapped.identifier is not None
    assert [(i.system, i.value) for i in mapped.identifier] == [
        (SID + "practitioner-role/HR-C01", "wangfang")
    ]
    assert mapped.code is not None and mapped.code[0].coding is not None
    assert mapped.code[0].text == text
    codes = {(c.system, c.code) for c in mapped.code[0].coding}
    assert (SID + "role", role.value) in codes
    assert (("http://snomed.info/sct", snomed) in codes) == (snomed is not None)


def test_endpoint_for_wado_rs() -> None:
    mapped = endpoint_from(base_url="http://127.0.0.1:8080/dicomweb")
    roundtrip(mapped)
    assert mapped.id == "wado-rs"
    assert mapped.status == "active"
    assert mapped.address == "http://127.0.0.1:8080/dicomweb"
    assert (mapped.connectionType.system, mapped.connectionType.code) == (
        "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
        "dicom-wado-rs",
    )
    assert mapped.payloadMimeType == ["application/dicom"]
    assert [p.text for p in mapped.payloadType] == ["DICOM"]
    assert mapped.identifier is not None
    assert [(i.system, i.value) for i in mapped.identifier] == [
        (SID + "endpoint", "http://127.0.0.1:8080/dicomweb")
    ]
