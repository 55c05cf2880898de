"""The audit trail as FHIR R4 AuditEvent (IHE ATNA / BALP in spirit), and a Bundle of them.

Types follow DICOM's audit vocabulary: logins and logouts are "User
Authentication" (DCM 110114) with the Login/Logout subtype, an export is
"Export" (110106), a view or change of a patient's record is "Patient Record"
(110110), anything else "Application Activity" (110100). The hub's seal (the
row's hash in the chain) travels as an extension, so a receiver can match the
exported event to the hub's tamper-evident trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fhir.bundle import full_url
from fhir.identifiers import FACILITY_SYSTEM, SID, local_id, reference, saved_id
from fhir.resources.R4B.auditevent import (
    AuditEvent as FhirAuditEvent,
)
from fhir.resources.R4B.auditevent import (
    AuditEventAgent,
    AuditEventAgentNetwork,
    AuditEventEntity,
    AuditEventSource,
)
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from models.audit import AuditEvent
from models.enums import AuditAction, AuditOutcome

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_TYPE_IP = "2"
USER_SYSTEM = SID + "user"
API_CLIENT_SYSTEM = SID + "api-client"
ENTITY_SYSTEM = SID + "audit-entity/"
SEAL_EXTENSION = SID + "audit-seal"

_ACTION_CODE = {
    AuditAction.create: "C",
    AuditAction.read: "R",
    AuditAction.update: "U",
    AuditAction.delete: "D",
    AuditAction.export: "R",  # DICOM: an export reads the data it sends out
    AuditAction.execute: "E",
    AuditAction.login: "E",
    AuditAction.login_failed: "E",
    AuditAction.logout: "E",
}
_LOGIN = Coding(system=DCM, code="110122", display="Login")
_LOGOUT = Coding(system=DCM, code="110123", display="Logout")


@dataclass(frozen=True)
class AuditParties:
    """What the row names only by id, for display in the resource."""

    facility_code: str = ""
    facility_name: str = ""


def _type(event: AuditEvent) -> tuple[Coding, list[Coding] | None]:
    if event.action in (AuditAction.login, AuditAction.login_failed):
        return Coding(system=DCM, code="110114", display="User Authentication"), [_LOGIN]
    if event.action == AuditAction.logout:
        return Coding(system=DCM, code="110114", display="User Authentication"), [_LOGOUT]
    if event.action == AuditAction.export:
        return Coding(system=DCM, code="110106", display="Export"), None
    if event.patient_id is not None:
        return Coding(system=DCM, code="110110", display="Patient Record"), None
    return Coding(system=DCM, code="110100", display="Application Activity"), None


def _who(event: AuditEvent) -> Reference:
    if event.actor_user_id is not None:  # a portal user: the hub's Practitioner
        return Reference(
            reference=reference("Practitioner", event.actor_user_id),
            identifier=Identifier(system=USER_SYSTEM, value=event.actor),
            display=event.actor,
        )
    return Reference(  # an API client, a CLI command, or a name that failed to sign in
        identifier=Identifier(system=API_CLIENT_SYSTEM, value=event.actor or "unknown"),
        display=event.actor or "unknown",
    )


def audit_event_from(event: AuditEvent, parties: AuditParties, *, observer: str) -> FhirAuditEvent:
    """One audit row as an AuditEvent; ``observer`` names the hub that recorded it."""
    kind, subtype = _type(event)
    agents = [
        AuditEventAgent(
            who=_who(event),
            requestor=True,
            network=AuditEventAgentNetwork(address=event.source_address, type=NETWORK_TYPE_IP)
            if event.source_address
            else None,
        )
    ]
    if event.facility_id is not None:  # the facility the person acted for
        agents.append(
            AuditEventAgent(
                who=Reference(
                    reference=reference("Organization", event.facility_id),
                    identifier=Identifier(system=FACILITY_SYSTEM, value=parties.facility_code)
                    if parties.facility_code
                    else None,
                    display=parties.facility_name or None,
                ),
                requestor=False,
            )
        )
    entities: list[AuditEventEntity] = []
    if event.entity_type:
        entities.append(
            AuditEventEntity(
                what=Reference(
                    identifier=Identifier(
                        system=ENTITY_SYSTEM + event.entity_type, value=event.entity_id or "-"
                    ),
                    display=f"{event.entity_type}/{event.entity_id}".rstrip("/"),
                ),
                type=Coding(system=ENTITY_TYPE, code="2", display="System Object"),
                description=event.detail or None,
            )
        )
    if event.patient_id is not None:
        entities.append(
            AuditEventEntity(
                what=Reference(reference=reference("Patient", event.patient_id)),
                type=Coding(system=ENTITY_TYPE, code="1", display="Person"),
                role=Coding(system=OBJECT_ROLE, code="1", display="Patient"),
            )
        )
    return FhirAuditEvent(
        id=local_id(saved_id(event.id, "AuditEvent")),
        extension=[Extension(url=SEAL_EXTENSION, valueString=event.hash)] if event.hash else None,
        type=kind,
        subtype=subtype,
        action=_ACTION_CODE[event.action],
        recorded=event.recorded_at.astimezone(UTC),
        outcome="0" if event.outcome == AuditOutcome.success else "4",
        outcomeDesc=(event.detail or None) if event.outcome == AuditOutcome.failure else None,
        agent=agents,
        source=AuditEventSource(
            observer=Reference(display=observer),
            type=[Coding(system=SOURCE_TYPE, code="4", display="Application Server")],
        ),
        entity=entities or None,
    )


def audit_bundle(
    events: Sequence[tuple[AuditEvent, AuditParties]], *, observer: str, timestamp: datetime
) -> Bundle:
    """A Bundle of type collection: an export, not a search answer or a transaction."""
    resources = [audit_event_from(event, parties, observer=observer) for event, parties in events]
    return Bundle(
        type="collection",
        timestamp=timestamp.astimezone(UTC),
        entry=[
            BundleEntry(fullUrl=full_url("AuditEvent", str(resource.id)), resource=resource)
            for resource in resources
        ]
        or None,
    )
