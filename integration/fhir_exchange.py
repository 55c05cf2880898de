"""Exchange with other FHIR nodes: accept their transaction Bundles, push ours to the province.

Accepting follows FHIR's transaction rules for the subset nodes use: every
entry is a conditional update (``PUT Type?identifier=system|value``), a
plain update (``PUT Type/id``) or a create (``POST Type``, optionally with
``ifNoneExist``); references to other entries' fullUrls are rewritten to
the ids they get here; all entries commit together or none does. A
resource this hub produced is never overwritten by another node's copy,
and a Patient whose resident ID the hub knows is the hub's own patient.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, bindparam, select

from fhir.bundle import TransactionBatch, rewrite_references
from fhir.identifiers import RESIDENT_ID_SYSTEM
from fhir.search import SUPPORTED_TYPES, split_search_value, unescape_search_value
from integration.fhir_publish import publish_local_patient
from integration.fhir_store import (
    StoredResource,
    find_by_identifier,
    put_resource,
    read_resource,
)
from integration.outbox import Batching, DeliveryError, Parcel
from integration.settings import Settings
from models import metadata
from models.enums import IdentifierKind
from models.errors import Conflict, ValidationError

IDENTIFIER = metadata.tables["patient_identifier"]
# Built once, so SQLAlchemy reuses its compiled form for every Patient a transaction brings.
_BY_RESIDENT_ID = select(IDENTIFIER.c.patient_id).where(
    IDENTIFIER.c.kind == IdentifierKind.resident_id, IDENTIFIER.c.value == bindparam("value")
)
_LOGICAL_ID = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.")


class PreconditionFailed(Conflict):
    """A conditional update matched more than one resource (HTTP 412)."""


@dataclass
class _Entry:
    resource: dict[str, Any]
    resource_type: str
    full_url: str | None
    logical_id: str = ""
    skip: bool = False  # an existing resource stands (the hub's own, or a known patient)
    minted: bool = False  # the id was made here just now: nothing is stored under it
    status: str = ""


def validate_bundle(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of a transaction Bundle, validated with fhir.resources (R4B) in one pass.

    The Bundle model validates each entry's resource as its own type, so one
    validation covers everything; the error names the element that failed.
    """
    if raw.get("resourceType") != "Bundle":
        raise ValidationError("POST /fhir takes a Bundle", field="resourceType")
    if raw.get("type") != "transaction":
        raise ValidationError("only transaction Bundles are accepted here", field="Bundle.type")
    entries = raw.get("entry") or []
    if not isinstance(entries, list):
        raise ValidationError("Bundle.entry must be an array", field="Bundle.entry")
    for number, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise ValidationError(
                f"entry {number} has no resource", field=f"Bundle.entry[{number}]"
            )
        resource_type = str(resource.get("resourceType", ""))
        if resource_type not in SUPPORTED_TYPES:
            raise ValidationError(
                f"entry {number}: {resource_type or 'a resource without type'} is not kept here",
                field=f"Bundle.entry[{number}].resource",
            )
    try:
        Bundle.model_validate(raw)
    except PydanticValidationError as exc:
        raise ValidationError(
            _pydantic_message("Bundle", exc), field=_expression(exc) or "Bundle"
        ) from None
    return entries


def _expression(exc: PydanticValidationError) -> str:
    """FHIRPath-like location of the first error: ``Bundle.entry[1].resource.status``."""
    errors = exc.errors()
    if not errors:
        return ""
    path = "Bundle"
    for part in errors[0]["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_message(what: str, exc: PydanticValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return f"{what} is not valid FHIR R4: {exc}"
    where = ".".join(str(part) for part in errors[0]["loc"])
    return f"{what} is not valid FHIR R4: {where}: {errors[0]['msg']}"


def _identifier_query(url: str, resource_type: str, number: int) -> tuple[str | None, str]:
    split = urlsplit(url)
    if split.path.rstrip("/").split("/")[-1] != resource_type:
        raise ValidationError(
            f"entry {number}: request url {url!r} does not name {resource_type}",
            field=f"Bundle.entry[{number}].request.url",
        )
    pairs = parse_qsl(split.query, keep_blank_values=True)
    # FHIR escapes \ | , $ in search values (as fhir.identifiers.conditional_query does)
    pieces = split_search_value(pairs[0][1], "|", maxsplit=1) if len(pairs) == 1 else []
    if len(pairs) != 1 or pairs[0][0] != "identifier" or not pieces[-1]:
        raise ValidationError(
            f"entry {number}: conditional writes match on one identifier=system|value",
            field=f"Bundle.entry[{number}].request.url",
        )
    value = unescape_search_value(pieces[-1])
    return (unescape_search_value(pieces[0]) if len(pieces) == 2 else None), value


def _known_patient(connection: Connection, resource: Mapping[str, Any]) -> int | None:
    """The hub's patient with this resource's resident ID, if there is one."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == RESIDENT_ID_SYSTEM and identifier.get("value"):
            row = connection.execute(_BY_RESIDENT_ID, {"value": str(identifier["value"])}).first()
            if row is not None:
                return int(row.patient_id)
    return None


def _resolve(
    connection: Connection, entry: _Entry, raw: Mapping[str, Any], number: int, now: datetime
) -> None:
    request = raw.get("request") or {}
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", ""))
    matches: list[StoredResource] = []
    if method == "PUT" and "?" in url:
        system, value = _identifier_query(url, entry.resource_type, number)
        matches = find_by_identifier(
            connection, resource_type=entry.resource_type, system=system, value=value
        )
    elif method == "PUT":
        parts = url.strip("/").split("/")
        if len(parts) != 2 or parts[0] != entry.resource_type or not set(parts[1]) <= _LOGICAL_ID:
            raise ValidationError(
                f"entry {number}: PUT needs {entry.resource_type}/id or a conditional url",
                field=f"Bundle.entry[{number}].request.url",
            )
        existing = read_resource(connection, resource_type=entry.resource_type, logical_id=parts[1])
        if existing is not None:
            matches = [existing]
        elif parts[1].isdigit():
            raise ValidationError(
                f"entry {number}: numeric ids are the hub's own; send a conditional update "
                "by identifier instead",
                field=f"Bundle.entry[{number}].request.url",
            )
        else:
            entry.logical_id = parts[1]
    elif method == "POST":
        condition = request.get("ifNoneExist")
        if condition:
            system, value = _identifier_query(
                f"{entry.resource_type}?{condition}", entry.resource_type, number
            )
            matches = find_by_identifier(
                connection, resource_type=entry.resource_type, system=system, value=value
            )
            if matches:
                entry.skip = True
    else:
        raise ValidationError(
            f"entry {number}: method {method or 'missing'} is not accepted (PUT or POST)",
            field=f"Bundle.entry[{number}].request.method",
        )
    own = [match for match in matches if match.origin == ""]
    if own:
        entry.logical_id, entry.skip = own[0].logical_id, True
        return
    if entry.resource_type == "Patient" and not matches:
        patient_id = _known_patient(connection, entry.resource)
        if patient_id is not None:
            publish_local_patient(connection, patient_id=patient_id, now=now)
            entry.logical_id, entry.skip = str(patient_id), True
            return
    if len(matches) > 1:
        raise PreconditionFailed(
            f"entry {number}: {url} matches {len(matches)} resources",
            field=f"Bundle.entry[{number}].request.url",
        )
    if matches:
        entry.logical_id = matches[0].logical_id
    elif not entry.logical_id:
        entry.logical_id, entry.minted = str(uuid.uuid4()), True


def accept_transaction(
    connection: Connection,
    raw: Mapping[str, Any],
    *,
    origin: str,
    now: datetime,
    location: Callable[[StoredResource], str],
) -> dict[str, Any]:
    """Apply a transaction Bundle in the caller's transaction; the transaction-response Bundle."""
    raw_entries = validate_bundle(raw)
    entries = [
        _Entry(
            resource=dict(item["resource"]),
            resource_type=str(item["resource"]["resourceType"]),
            full_url=item.get("fullUrl"),
        )
        for item in raw_entries
    ]
    for number, (entry, item) in enumerate(zip(entries, raw_entries, strict=True)):
        _resolve(connection, entry, item, number, now)
    targets = {
        entry.full_url: f"{entry.resource_type}/{entry.logical_id}"
        for entry in entries
        if entry.full_url
    }
    responses = []
    for entry in entries:
        if entry.skip:
            stored = read_resource(
                connection, resource_type=entry.resource_type, logical_id=entry.logical_id
            )
            if stored is None:
                raise LookupError(f"{entry.resource_type}/{entry.logical_id} vanished")
            status = "200 OK"
        else:
            resource = rewrite_references(entry.resource, targets)
            stored, outcome = put_resource(
                connection,
                resource=resource,
                logical_id=entry.logical_id,
                origin=origin,
                now=now,
                new=entry.minted,
            )
            status = "201 Created" if outcome == "created" else "200 OK"
        responses.append(
            {
                "response": {
                    "status": status,
                    "location": location(stored),
                    "etag": f'W/"{stored.version_id}"',
                    "lastModified": stored.last_updated.isoformat(timespec="milliseconds"),
                }
            }
        )
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


class _TransactionCombiner:
    """Queued transaction Bundles (JSON bytes) merged into one, for the outbox."""

    def __init__(self) -> None:
        self._batch = TransactionBatch()

    def add(self, payload: bytes) -> bool:
        try:
            bundle = json.loads(payload)
        except ValueError:
            return False
        return isinstance(bundle, dict) and self._batch.add(bundle)

    def payload(self) -> bytes:
        return json.dumps(self._batch.bundle(), ensure_ascii=False, separators=(",", ":")).encode()


# Up to 25 queued Bundles in one POST (two to a round of the worker's 50): the receiver's
# per-request costs (HTTP, token, audit row, commit) are paid once per POST, and the
# Organization and Endpoint the Bundles share are validated and looked up once.
FHIR_BATCHING = Batching(combiner=_TransactionCombiner, most=25, max_bytes=1 << 20)


async def send_fhir(parcel: Parcel, *, settings: Settings, client: httpx.AsyncClient) -> None:
    """POST one queued transaction Bundle upstream; 4xx other than 408/429 dead-letters it."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    token = settings.upstream_fhir_token.get_secret_value()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = await client.post(
            parcel.destination,
            content=parcel.payload,
            headers=headers,
            timeout=settings.fhir_send_timeout,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if answer.status_code < 300:
        return
    detail = answer.text[:500]
    retryable = answer.status_code >= 500 or answer.status_code in (408, 429)
    raise DeliveryError(f"HTTP {answer.status_code}: {detail}", retryable=retryable)


__all__ = [
    "FHIR_BATCHING",
    "PreconditionFailed",
    "accept_transaction",
    "send_fhir",
    "validate_bundle",
]
