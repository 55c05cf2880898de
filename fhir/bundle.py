"""Transaction Bundles for pushing to another server, and OperationOutcome for errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl

from fhir.identifiers import SID, conditional_query
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.resource import Resource
from fhir.search import split_search_value, unescape_search_value

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


class TransactionBatch:
    """Several transaction Bundles to one server as one transaction, while none of them clash.

    A server resolves every entry of a transaction before it writes any, so an
    entry that a later Bundle would have found written by an earlier one
    (the same identifier, id or fullUrl) must not share their transaction: the
    Bundle that would clash is refused and starts the next batch. An entry
    equal to one already taken is dropped (a study's Organization and Endpoint
    recur in every Bundle): applied again it would change nothing. Identifiers
    are compared by value alone, whatever their system, so a doubt splits the
    batch instead of merging it. Bundles with anything but conditional PUT and
    POST entries are refused, and travel on their own: an update by id could
    take away an identifier a later Bundle matches on. (A conditional update
    can too, when its resource has lost an identifier the stored copy still
    has and a later Bundle in the batch matches on exactly that one: merged,
    that Bundle updates the resource instead of creating another.)
    """

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._holders: dict[str, int] = {}  # fullUrl or identifier value -> entry index
        self.bundles = 0

    def add(self, bundle: Mapping[str, Any]) -> bool:
        """Take all of ``bundle``'s entries into the batch, or none of them (False)."""
        if set(bundle) - {"resourceType", "type", "entry"} or bundle.get("type") != "transaction":
            return False
        if bundle.get("resourceType") != "Bundle" or not isinstance(bundle.get("entry", []), list):
            return False
        new: list[dict[str, Any]] = []
        holders: dict[str, int] = {}
        for entry in bundle.get("entry") or []:
            claims = _claims(entry)
            if claims is None:
                return False
            held = [self._holders[claim] for claim in claims if claim in self._holders]
            if held:
                if _repeatable(entry) and entry == self._entries[held[0]]:
                    continue  # the same write again: it would leave the same state
                return False
            index = len(self._entries) + len(new)
            new.append(entry)
            holders.update(dict.fromkeys(claims, index))
        self._entries += new
        self._holders.update(holders)
        self.bundles += 1
        return True

    def bundle(self) -> dict[str, Any]:
        """The batch as one transaction Bundle (JSON), entries in the order taken."""
        return {"resourceType": "Bundle", "type": "transaction", "entry": list(self._entries)}


def _repeatable(entry: Mapping[str, Any]) -> bool:
    """Whether sending ``entry`` twice leaves one resource: not so for a plain create."""
    request = entry.get("request") or {}
    return request.get("method") == "PUT" or bool(request.get("ifNoneExist"))


def _claims(entry: Any) -> set[str] | None:
    """What an entry touches on the server; None when it is not one a batch may carry."""
    if not isinstance(entry, dict):
        return None
    resource, request = entry.get("resource"), entry.get("request")
    if not isinstance(resource, dict) or not isinstance(request, dict):
        return None
    resource_type, method = resource.get("resourceType"), request.get("method")
    url, condition = request.get("url"), request.get("ifNoneExist")
    if not isinstance(resource_type, str) or not isinstance(url, str):
        return None
    claims = {f"fullUrl {entry['fullUrl']}"} if entry.get("fullUrl") else set()
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            claims.add(f"identifier {resource_type} {identifier['value']}")
    if method == "PUT" and "?" not in url:
        return None  # an update by id: which identifiers it takes away is unknown here
    query = url.partition("?")[2] if method == "PUT" else condition
    if method == "POST" and not condition:
        return claims
    if method not in ("PUT", "POST") or not isinstance(query, str):
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier":
        return None
    value = unescape_search_value(split_search_value(pairs[0][1], "|", maxsplit=1)[-1])
    claims.add(f"identifier {resource_type} {value}")
    return claims


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
