"""Audit rows as FHIR R4 AuditEvents and a collection Bundle, checked by the R4B models."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir_samples import roundtrip

from fhir.audit import (
    API_CLIENT_SYSTEM,
    DCM,
    SEAL_EXTENSION,
    USER_SYSTEM,
    AuditParties,
    audit_bundle,
    audit_event_from,
)
from models.audit import AuditEvent
from models.enums import AuditAction, AuditOutcome

AT = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
HERE = AuditParties(facility_code="QL-H01", facility_name="青岚县人民医院")


def _row(**values: object) -> AuditEvent:
    base: dict[str, object] = {
        "id": 41,
        "recorded_at": AT,
        "action": AuditAction.read,
        "actor": "radiologist",
        "actor_user_id": 5,
        "facility_id": 3,
        "source_address": "10.0.0.7",
        "entity_type": "Study",
        "entity_id": "12",
        "patient_id": 9,
        "hash": "ab" * 32,
    }
    base.update(values)
    return AuditEvent(**base)  # type: ignore[arg-type]


def test_a_view_of_a_patient_record() -> None:
    mapped = audit_event_from(_row(), HERE, observer="Huren hub")
    roundtrip(mapped)
    assert (mapped.type.system, mapped.type.code) == (DCM, "110110")
    assert mapped.action == "R" and mapped.outcome == "0" and mapped.id == "41"
    person, facility = mapped.agent
    assert person.requestor and person.who is not None
    assert person.who.reference == "Practitioner/5"
    assert person.who.identifier is not None and person.who.identifier.system == USER_SYSTEM
    assert person.network is not None and person.network.address == "10.0.0.7"
    assert facility.who is not None and facility.who.reference == "Organization/3"
    assert facility.who.display == "青岚县人民医院"
    assert mapped.entity is not None
    study, patient = mapped.entity
    assert study.what is not None and study.what.display == "Study/12"
    assert patient.what is not None and patient.what.reference == "Patient/9"
    assert patient.role is not None and patient.role.code == "1"
    assert mapped.extension is not None
    assert (mapped.extension[0].url, mapped.extension[0].valueString) == (SEAL_EXTENSION, "ab" * 32)


def test_sign_in_failure_and_sign_out() -> None:
    failed = audit_event_from(
        _row(
            action=AuditAction.login_failed,
            outcome=AuditOutcome.failure,
            actor="nobody",
            actor_user_id=None,
            facility_id=None,
            patient_id=None,
            entity_type="User",
            entity_id="",
            detail="wrong password",
            hash="",
        ),
        AuditParties(),
        observer="Huren hub",
    )
    roundtrip(failed)
    assert failed.type.code == "110114" and failed.subtype is not None
    assert failed.subtype[0].code == "110122"
    assert failed.outcome == "4" and failed.outcomeDesc == "wrong password"
    assert len(failed.agent) == 1 and failed.extension is None
    who = failed.agent[0].who
    assert who is not None and who.identifier is not None
    assert (who.identifier.system, who.identifier.value) == (API_CLIENT_SYSTEM, "nobody")
    out = audit_event_from(_row(action=AuditAction.logout, patient_id=None), HERE, observer="h")
    assert out.subtype is not None and out.subtype[0].code == "110123" and out.action == "E"


def test_an_export_bundle_is_a_collection() -> None:
    rows = [(_row(id=n, action=AuditAction.export), HERE) for n in (1, 2)]
    bundle = audit_bundle(rows, observer="Huren hub", timestamp=AT)
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again.type == "collection" and again.entry is not None and len(again.entry) == 2
    resource = again.entry[0].resource
    assert isinstance(resource, FhirAuditEvent) and resource.type.code == "110106"
    assert again.entry[0].fullUrl is not None and again.entry[0].fullUrl.startswith("urn:uuid:")
    empty = audit_bundle([], observer="Huren hub", timestamp=AT)
    assert empty.entry is None
