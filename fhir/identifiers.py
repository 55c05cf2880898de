"""Identifier systems, logical ids and the searches used for conditional writes, defined once.

Every system the hub mints lives under ``SID`` (``https://huren.health/fhir/sid/``).
The domain is fictional: it names the hub's own namespaces and is never resolved,
so a URL here is a stable name, not a place to fetch from. Per-facility systems
append the facility code (``SID + "mrn/<code>"``) because an MRN, placer number,
filler number or accession number is unique only within the facility that
assigned it.

Logical ids of the hub's resources are its database ids as strings; they are
local to this hub. Business identifiers are what another server matches on,
which is why every mapped resource carries one and ``conditional_query``
prefers the globally unique ones (resident ID, Study Instance UID).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.namingsystem import NamingSystem, NamingSystemUniqueId
from fhir.resources.R4B.resource import Resource

SID = "https://huren.health/fhir/sid/"
FHIR_VERSION = "4.0.1"

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
IDENTIFIER_TYPE_DISPLAY: Mapping[str, str] = {
    "MR": "Medical record number",
    "PLAC": "Placer Identifier",
    "FILL": "Filler Identifier",
    "ACSN": "Accession ID",
    "HC": "Health Card Number",
}

RESIDENT_ID_SYSTEM = SID + "resident-id"
HEALTH_CARD_SYSTEM = SID + "health-card"
DICOM_UID_SYSTEM = "urn:dicom:uid"
FACILITY_SYSTEM = SID + "facility"
REPORT_SYSTEM = SID + "report"
ENDPOINT_SYSTEM = SID + "endpoint"
EXAM_TYPE_SYSTEM = SID + "exam-type"
PROFESSIONAL_TITLE_SYSTEM = SID + "professional-title"
ROLE_SYSTEM = SID + "role"

HR_TAG_SYSTEM = SID + "recognition"
HR_TAG_CODE = "HR"
HR_TAG_DISPLAY = "互认"

RESIDENT_ID_NAMING_SYSTEM_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def _per_facility(kind: str, facility_code: str) -> str:
    return SID + f"{kind}/{quote(facility_code, safe='')}"


def mrn_system(facility_code: str) -> str:
    """Medical record numbers assigned by one facility (identifier type ``MR``)."""
    return _per_facility("mrn", facility_code)


def other_identifier_system(authority: str) -> str:
    """Identifiers of no known kind keep their assigning authority in the system."""
    return _per_facility("other", authority)


def placer_system(ordering_facility_code: str) -> str:
    """Placer order numbers (ORC-2/OBR-2), unique within the ordering facility."""
    return _per_facility("placer", ordering_facility_code)


def filler_system(performing_facility_code: str) -> str:
    """Filler order numbers (ORC-3/OBR-3), unique within the performing facility."""
    return _per_facility("filler", performing_facility_code)


def accession_system(performing_facility_code: str) -> str:
    """Accession numbers, unique within the performing facility."""
    return _per_facility("accession", performing_facility_code)


def practitioner_system(facility_code: str) -> str:
    """Practitioners by username, scoped by the facility that employs them."""
    return _per_facility("practitioner", facility_code)


def practitioner_role_system(facility_code: str) -> str:
    """A user's role at a facility, by username (one role per user in Huren)."""
    return _per_facility("practitioner-role", facility_code)


def dicom_uid(uid: str) -> str:
    """A DICOM UID as the ``urn:oid:`` value that ``urn:dicom:uid`` identifiers carry."""
    return f"urn:oid:{uid}"


def identifier_type(code: str, text: str | None = None) -> CodeableConcept:
    """A v2-0203 identifier type (MR, PLAC, FILL, ACSN, HC, or NN + ISO 3166 alpha-3)."""
    return CodeableConcept(
        coding=[Coding(system=V2_0203, code=code, display=IDENTIFIER_TYPE_DISPLAY.get(code))],
        text=text,
    )


def resident_id_type() -> CodeableConcept:
    """``NNCHN``: v2-0203's NNxxx pattern, national person identifier of China."""
    return identifier_type("NNCHN", "居民身份证号")


def local_id(db_id: int) -> str:
    """The logical id of a hub resource: its database id."""
    return str(db_id)


def saved_id(db_id: int | None, what: str) -> int:
    """The database id of a row that must have been saved before it is mapped."""
    if db_id is None:
        raise ValueError(f"{what} has no database id: save it before mapping it to FHIR")
    return db_id


def reference(resource_type: str, db_id: int) -> str:
    """A relative literal reference to a hub resource, e.g. ``ImagingStudy/12``."""
    return f"{resource_type}/{local_id(db_id)}"


def resident_id_naming_system() -> NamingSystem:
    """Declares the resident-ID system so a receiver can tell what the values are."""
    return NamingSystem(
        id="resident-id",
        name="HurenResidentId",
        status="active",
        kind="identifier",
        date=RESIDENT_ID_NAMING_SYSTEM_DATE,
        publisher="Huren regional imaging hub",
        responsible="中华人民共和国公安部 (Ministry of Public Security of the PRC)",
        type=resident_id_type(),
        description=(
            "居民身份证号：GB 11643 公民身份号码，18 位，末位为 ISO 7064 MOD 11-2 校验码。"
            " Resident identity card number: the 18-digit citizen identification number"
            " of GB 11643, whose last character is an ISO 7064 MOD 11-2 check digit."
        ),
        jurisdiction=[CodeableConcept(coding=[Coding(system="urn:iso:std:iso:3166", code="CN")])],
        uniqueId=[NamingSystemUniqueId(type="uri", value=RESIDENT_ID_SYSTEM, preferred=True)],
    )


def _search_text(text: str) -> str:
    """Escapes FHIR search separators, then percent-encodes for a URL query."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,")
    return quote(escaped.replace("$", "\\$"), safe=":/")


def _has_type(identifier: Identifier, code: str) -> bool:
    codings = identifier.type.coding if identifier.type and identifier.type.coding else []
    return any(coding.system == V2_0203 and coding.code == code for coding in codings)


def _match_identifier(resource_type: str, identifiers: Sequence[Identifier]) -> tuple[str, str]:
    usable = [(i, i.system, i.value) for i in identifiers if i.system and i.value]
    if not usable:
        raise ValueError(f"{resource_type} has no identifier with system and value to match on")
    preferred_system = {
        "Patient": RESIDENT_ID_SYSTEM,
        "ImagingStudy": DICOM_UID_SYSTEM,
        "DiagnosticReport": REPORT_SYSTEM,
    }.get(resource_type)
    for _, system, value in usable:
        if system == preferred_system:
            return system, value
    if resource_type == "ServiceRequest":
        for identifier, system, value in usable:
            if _has_type(identifier, "PLAC"):
                return system, value
    _, system, value = usable[0]
    return system, value


def conditional_query(resource: Resource) -> str:
    """The search that identifies ``resource`` on another server, for conditional PUT.

    Patients match on the resident ID when they have one, studies on the Study
    Instance UID, reports on the study's UID, orders on the placer number;
    anything else on its first identifier.
    """
    resource_type = resource.get_resource_type()
    identifiers: Sequence[Identifier] = getattr(resource, "identifier", None) or []
    system, value = _match_identifier(resource_type, identifiers)
    return f"{resource_type}?identifier={_search_text(system)}|{_search_text(value)}"


__all__ = [
    "DICOM_UID_SYSTEM",
    "ENDPOINT_SYSTEM",
    "EXAM_TYPE_SYSTEM",
    "FACILITY_SYSTEM",
    "FHIR_VERSION",
    "HEALTH_CARD_SYSTEM",
    "HR_TAG_CODE",
    "HR_TAG_DISPLAY",
    "HR_TAG_SYSTEM",
    "PROFESSIONAL_TITLE_SYSTEM",
    "REPORT_SYSTEM",
    "RESIDENT_ID_SYSTEM",
    "ROLE_SYSTEM",
    "SID",
    "V2_0203",
    "accession_system",
    "conditional_query",
    "dicom_uid",
    "filler_system",
    "identifier_type",
    "local_id",
    "mrn_system",
    "other_identifier_system",
    "placer_system",
    "practitioner_role_system",
    "practitioner_system",
    "reference",
    "resident_id_naming_system",
    "resident_id_type",
    "saved_id",
]
