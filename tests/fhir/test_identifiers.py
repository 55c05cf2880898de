"""Identifier systems, logical ids, the resident-ID NamingSystem and conditional queries."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.namingsystem import NamingSystem
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

from fhir.identifiers import (
    DICOM_UID_SYSTEM,
    FACILITY_SYSTEM,
    FHIR_VERSION,
    HR_TAG_SYSTEM,
    REPORT_SYSTEM,
    RESIDENT_ID_SYSTEM,
    SID,
    V2_0203,
    accession_system,
    conditional_query,
    dicom_uid,
    filler_system,
    identifier_type,
    local_id,
    mrn_system,
    placer_system,
    practitioner_role_system,
    practitioner_system,
    reference,
    resident_id_naming_system,
    saved_id,
)


def test_systems_hang_off_one_base() -> None:
    assert SID == "https://huren.health/fhir/sid/"
    assert FHIR_VERSION == "4.0.1"
    assert RESIDENT_ID_SYSTEM == "https://huren.health/fhir/sid/resident-id"
    assert FACILITY_SYSTEM == "https://huren.health/fhir/sid/facility"
    assert REPORT_SYSTEM == "https://huren.health/fhir/sid/report"
    assert HR_TAG_SYSTEM == "https://huren.health/fhir/sid/recognition"
    assert DICOM_UID_SYSTEM == "urn:dicom:uid"


def test_per_facility_systems_carry_the_facility_code() -> None:
    assert mrn_system("HR-T01") == "https://huren.health/fhir/sid/mrn/HR-T01"
    assert placer_system("HR-T01") == "https://huren.health/fhir/sid/placer/HR-T01"
    assert filler_system("HR-C01") == "https://huren.health/fhir/sid/filler/HR-C01"
    assert accession_system("HR-C01") == "https://huren.health/fhir/sid/accession/HR-C01"
    assert practitioner_system("HR-C01") == "https://huren.health/fhir/sid/practitioner/HR-C01"
    assert practitioner_role_system("HR-C01") == SID + "practitioner-role/HR-C01"


def test_a_facility_code_that_is_not_url_safe_is_encoded() -> None:
    assert mrn_system("东关 01/x") == SID + "mrn/%E4%B8%9C%E5%85%B3%2001%2Fx"


def test_local_ids_and_references_are_database_ids() -> None:
    assert local_id(12) == "12"
    assert reference("ImagingStudy", 12) == "ImagingStudy/12"
    assert dicom_uid("1.2.3") == "urn:oid:1.2.3"
    assert saved_id(5, "Study") == 5
    with pytest.raises(ValueError, match="Study has no database id"):
        saved_id(None, "Study")


def test_identifier_types_are_v2_0203_codes() -> None:
    for code in ("MR", "PLAC", "FILL", "ACSN"):
        concept = identifier_type(code)
        assert concept.coding is not None
        assert (concept.coding[0].system, concept.coding[0].code) == (V2_0203, code)
    accession = identifier_type("ACSN")
    assert accession.coding is not None
    assert accession.coding[0].display == "Accession ID"


def test_resident_id_naming_system() -> None:
    system = resident_id_naming_system()
    assert isinstance(system, NamingSystem)
    assert (system.id, system.status, system.kind) == ("resident-id", "active", "identifier")
    assert system.uniqueId is not None
    assert [(u.type, u.value, u.preferred) for u in system.uniqueId] == [
        ("uri", RESIDENT_ID_SYSTEM, True)
    ]
    assert system.description is not None
    assert "居民身份证号" in system.description
    assert "GB 11643" in system.description
    assert "18-digit" in system.description
    assert system.type is not None and system.type.coding is not None
    assert system.type.coding[0].code == "NNCHN"
    again = NamingSystem.model_validate_json(system.model_dump_json())
    assert again == system


def _patient(*identifiers: Identifier) -> Patient:
    return Patient(id="1", identifier=list(identifiers) or None)


def test_patients_match_on_the_resident_id_first() -> None:
    mrn = Identifier(system=mrn_system("HR-T01"), value="0042")
    resident = Identifier(system=RESIDENT_ID_SYSTEM, value="11010519491231002X")
    assert conditional_query(_patient(mrn, resident)) == (
        "Patient?identifier=https://huren.health/fhir/sid/resident-id|11010519491231002X"
    )
    assert conditional_query(_patient(mrn)) == (
        "Patient?identifier=https://huren.health/fhir/sid/mrn/HR-T01|0042"
    )


def test_values_are_url_encoded_and_search_separators_escaped() -> None:
    mrn = Identifier(system=mrn_system("HR-T01"), value="MRN 42|b,c 张")
    assert conditional_query(_patient(mrn)) == (
        "Patient?identifier=https://huren.health/fhir/sid/mrn/HR-T01"
        "|MRN%2042%5C%7Cb%5C%2Cc%20%E5%BC%A0"
    )


def test_service_requests_match_on_the_placer_number() -> None:
    accession = Identifier(
        type=identifier_type("ACSN"), system=accession_system("HR-T01"), value="A1"
    )
    placer = Identifier(type=identifier_type("PLAC"), system=placer_system("HR-T01"), value="P1")
    request = ServiceRequest(
        id="3",
        status="active",
        intent="order",
        subject={"reference": "Patient/1"},
        identifier=[accession, placer],
    )
    assert conditional_query(request) == (
        "ServiceRequest?identifier=https://huren.health/fhir/sid/placer/HR-T01|P1"
    )


def test_other_resources_match_on_their_first_identifier() -> None:
    organization = Organization(
        id="1", identifier=[Identifier(system=FACILITY_SYSTEM, value="HR-C01")]
    )
    assert conditional_query(organization) == (
        "Organization?identifier=https://huren.health/fhir/sid/facility|HR-C01"
    )
    endpoint = Endpoint(
        id="wado-rs",
        status="active",
        connectionType=Coding(code="dicom-wado-rs"),
        payloadType=[CodeableConcept(text="DICOM")],
        address="http://127.0.0.1:8080/dicomweb",
        identifier=[Identifier(system=SID + "endpoint", value="http://127.0.0.1:8080/dicomweb")],
    )
    assert conditional_query(endpoint) == (
        "Endpoint?identifier=https://huren.health/fhir/sid/endpoint|http://127.0.0.1:8080/dicomweb"
    )


def test_a_resource_without_a_usable_identifier_has_no_conditional_query() -> None:
    with pytest.raises(ValueError, match="no identifier"):
        conditional_query(_patient())
    with pytest.raises(ValueError, match="no identifier"):
        conditional_query(_patient(Identifier(value="no-system")))
