"""Transaction Bundles for pushing to another server, and OperationOutcome for errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fhir.identifiers import SID, conditional_query
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.resource import Resource

FULL_URL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, SID)

Severity = Literal["fatal", "error", "warning", "information"]


def full_url(resource_type: str, resource_id: str) -> str:
    """A stable ``urn:uuid:`` for a hub resource, so a re-sent bundle is byte-identical."""
    return f"urn:uuid:{uuid.uuid5(FULL_URL_NAMESPACE, f'{resource_type}/{resource_id}')}"


def rewrite_references(node: Any, targets: Mapping[str, str]) -> Any:
    """A copy of resource JSON with every ``reference`` found in ``targets`` replaced."""
    if isinstance(node, dict):
        return {
            key: (
                targets.get(value, value)
                if key == "reference" and isinstance(value, str)
                else rewrite_references(value, targets)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rewrite_references(item, targets) for item in node]
    return node


def transaction_bundle(resources: Sequence[Resource]) -> Bundle:
    """A transaction of conditional updates (PUT ``Type?identifier=…``).

    The receiving server matches on business identifiers, so the hub's local
    ids are dropped from the entries, and references between entries become
    the entries' ``urn:uuid`` fullUrls (the server resolves them to its own
    ids). References to resources outside the bundle are left as they are.
    """
    keyed: list[tuple[str, Resource]] = []
    targets: dict[str, str] = {}
    for resource in resources:
        resource_type = resource.get_resource_type()
        if not resource.id:
            raise ValueError(f"{resource_type} without an id cannot go into a transaction")
        key = f"{resource_type}/{resource.id}"
        if key in targets:
            raise ValueError(f"{key} appears twice in the transaction")
        targets[key] = full_url(resource_type, resource.id)
        keyed.append((key, resource))
    entries = []
    for key, resource in keyed:
        data = rewrite_references(json.loads(resource.model_dump_json()), targets)
        data.pop("id", None)
        entries.append(
            BundleEntry(
                fullUrl=targets[key],
                resource=type(resource).model_validate(data),
                request=BundleEntryRequest(method="PUT", url=conditional_query(resource)),
            )
        )
    return Bundle(type="transaction", entry=entries or None)


def operation_outcome(
    severity: Severity,
    code: str,
    diagnostics: str,
    *,
    expression: str | None = None,
) -> OperationOutcome:
    """One issue, as the FHIR API returns errors (``code`` from the issue-type value set)."""
    return OperationOutcome(
        issue=[
            OperationOutcomeIssue(
                severity=severity,
                code=code,
                diagnostics=diagnostics,
                expression=[expression] if expression else None,
            )
        ]
    )
