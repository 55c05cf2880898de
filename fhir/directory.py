"""Who and where: Patient, Organization, Practitioner, PractitionerRole and the hub's Endpoint."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from fhir.identifiers import (
    ENDPOINT_SYSTEM,
    FACILITY_SYSTEM,
    HEALTH_CARD_SYSTEM,
    PROFESSIONAL_TITLE_SYSTEM,
    RESIDENT_ID_SYSTEM,
    ROLE_SYSTEM,
    identifier_type,
    local_id,
    mrn_system,
    other_identifier_system,
    practitioner_role_system,
    practitioner_system,
    reference,
    resident_id_type,
    saved_id,
)
from fhir.resources.R4B.address import Address
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.patient import PatientLink as FhirPatientLink
from fhir.resources.R4B.practitioner import Practitioner, PractitionerQualification
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.reference import Reference
from fhir.terminology import (
    ENDPOINT_CONNECTION_TYPE,
    GENDER,
    ORGANIZATION_KIND,
    ORGANIZATION_TYPE,
    ROLE,
    ROLE_SNOMED,
    SNOMED,
    TITLE,
)
from models.enums import IdentifierKind, ProfessionalTitle
from models.patients import Patient, PatientIdentifier
from models.region import Facility, User

WADO_RS_ENDPOINT_ID = "wado-rs"

_CJK_NAME = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]{2,4}")


def human_name(name: str) -> HumanName:
    """A Chinese name is one string; family/given are derived only when that is safe.

    Two to four CJK characters are split as one-character surname + given name.
    Compound surnames (欧阳, 司马) are split wrongly by that rule, so ``text``
    stays the authoritative form; anything else (Latin, names with ·) is text only.
    """
    name = name.strip()
    if _CJK_NAME.fullmatch(name):
        return HumanName(use="official", text=name, family=name[0], given=[name[1:]])
    return HumanName(use="official", text=name)


def facility_reference(facility: Facility) -> Reference:
    """A literal reference to a facility's Organization, with its name for display."""
    return Reference(
        reference=reference("Organization", saved_id(facility.id, "Facility")),
        display=facility.name,
    )


def _facility_assigner(code: str) -> Reference:
    """A logical reference to the facility that assigned an identifier."""
    return Reference(type="Organization", identifier=Identifier(system=FACILITY_SYSTEM, value=code))


def _patient_identifier(row: PatientIdentifier, facility_codes: Mapping[str, str]) -> Identifier:
    if row.kind == IdentifierKind.resident_id:
        return Identifier(
            use="official", type=resident_id_type(), system=RESIDENT_ID_SYSTEM, value=row.value
        )
    code = facility_codes.get(row.authority, row.authority)
    if row.kind == IdentifierKind.mrn:
        return Identifier(
            use="usual",
            type=identifier_type("MR"),
            system=mrn_system(code),
            value=row.value,
            assigner=_facility_assigner(code),
        )
    if row.kind == IdentifierKind.health_card:
        return Identifier(
            use="secondary",
            type=identifier_type("HC", "居民健康卡"),
            system=HEALTH_CARD_SYSTEM,
            value=row.value,
        )
    return Identifier(use="secondary", system=other_identifier_system(code), value=row.value)


def patient_from(
    patient: Patient,
    identifiers: Sequence[PatientIdentifier],
    facility_codes: Mapping[str, str] | None = None,
) -> FhirPatient:
    """The EMPI patient with its resident ID, per-facility MRNs and health card.

    ``facility_codes`` maps an identifier's stored authority to the facility code
    of its system, for HIS whose assigning-authority names (PID-3.4) differ
    from the hub's facility codes; authorities not in it are facility codes.
    A merged patient is inactive and points at the survivor (``replaced-by``).
    """
    codes = facility_codes or {}
    ordered = sorted(
        identifiers,
        key=lambda row: (row.kind != IdentifierKind.resident_id, row.kind.value, row.authority),
    )
    merged_into = patient.merged_into_id
    return FhirPatient(
        id=local_id(saved_id(patient.id, "Patient")),
        identifier=[_patient_identifier(row, codes) for row in ordered] or None,
        active=merged_into is None,
        name=[human_name(patient.name)] if patient.name.strip() else None,
        telecom=[ContactPoint(system="phone", value=patient.phone)] if patient.phone else None,
        gender=GENDER[patient.sex],
        birthDate=patient.birth_date,
        address=[Address(text=patient.address)] if patient.address else None,
        link=(
            [
                FhirPatientLink(
                    other=Reference(reference=reference("Patient", merged_into)),
                    type="replaced-by",
                )
            ]
            if merged_into is not None
            else None
        ),
    )


def organization_from(facility: Facility) -> Organization:
    """A facility of the region as an Organization, placed in the region tree by partOf."""
    code, display, text = ORGANIZATION_KIND[facility.kind]
    return Organization(
        id=local_id(saved_id(facility.id, "Facility")),
        identifier=[Identifier(use="official", system=FACILITY_SYSTEM, value=facility.code)],
        active=facility.active,
        type=[
            CodeableConcept(
                coding=[Coding(system=ORGANIZATION_TYPE, code=code, display=display)], text=text
            )
        ],
        name=facility.name,
        alias=[facility.name_en] if facility.name_en else None,
        partOf=(
            Reference(reference=reference("Organization", facility.parent_id))
            if facility.parent_id is not None
            else None
        ),
    )


def _qualification(title: ProfessionalTitle) -> PractitionerQualification | None:
    if title not in TITLE:
        return None
    display, text = TITLE[title]
    return PractitionerQualification(
        code=CodeableConcept(
            coding=[Coding(system=PROFESSIONAL_TITLE_SYSTEM, code=title.value, display=display)],
            text=text,
        )
    )


def practitioner_from(user: User, facility: Facility) -> Practitioner:
    """A portal user as a Practitioner; the professional title is its qualification."""
    qualification = _qualification(user.title)
    return Practitioner(
        id=local_id(saved_id(user.id, "User")),
        identifier=[Identifier(system=practitioner_system(facility.code), value=user.username)],
        active=user.active,
        name=[HumanName(use="official", text=user.display_name)],
        qualification=[qualification] if qualification else None,
    )


def practitioner_role_from(user: User, facility: Facility) -> PractitionerRole:
    """What the user does at their facility; shares the user's id (another resource type)."""
    user_id = saved_id(user.id, "User")
    display, text = ROLE[user.role]
    codings = [Coding(system=ROLE_SYSTEM, code=user.role.value, display=display)]
    snomed = ROLE_SNOMED.get(user.role)
    if snomed is not None:
        codings.insert(0, Coding(system=SNOMED, code=snomed[0], display=snomed[1]))
    return PractitionerRole(
        id=local_id(user_id),
        identifier=[
            Identifier(system=practitioner_role_system(facility.code), value=user.username)
        ],
        active=user.active,
        practitioner=Reference(
            reference=reference("Practitioner", user_id), display=user.display_name
        ),
        organization=facility_reference(facility),
        code=[CodeableConcept(coding=codings, text=text)],
    )


def endpoint_from(*, base_url: str) -> Endpoint:
    """The hub's DICOMweb WADO-RS service, which ImagingStudy.endpoint points at."""
    return Endpoint(
        id=WADO_RS_ENDPOINT_ID,
        identifier=[Identifier(system=ENDPOINT_SYSTEM, value=base_url)],
        status="active",
        connectionType=Coding(
            system=ENDPOINT_CONNECTION_TYPE, code="dicom-wado-rs", display="DICOM WADO-RS"
        ),
        name="Huren WADO-RS",
        payloadType=[CodeableConcept(text="DICOM")],
        payloadMimeType=["application/dicom"],
        address=base_url,
    )
