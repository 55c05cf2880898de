"""The FHIR REST API (``/fhir``): read, search and transactions, with tokens and an audit trail.

Answers are the stored JSON as it stands (never re-validated on a read);
search Bundles are assembled around it. Every request but ``metadata``
needs ``Authorization: Bearer <token>`` whose scopes allow the resource
type; every read or search of patient data is on the audit trail before the
answer leaves. Errors are OperationOutcomes with the matching HTTP status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir.bundle import operation_outcome
from fhir.capability import capability_statement
from fhir.search import SUPPORTED_TYPES, SearchQuery, parse_search
from integration import __version__
from integration.api_clients import Access, Grant, TokenChecker
from integration.audit_trail import AUDIT, AuditEntry, AuditWriter, audit_row
from integration.database import Database, unavailable
from integration.fhir_exchange import PreconditionFailed, accept_transaction
from integration.fhir_store import StoredResource, included_studies, read_resource, search
from integration.settings import Settings
from models import metadata
from models.enums import AuditAction
from models.errors import Conflict, DatabaseUnavailable, HurenError, ValidationError

log = logging.getLogger("huren.fhir.api")
FHIR_JSON = "application/fhir+json"
PATIENT_DATA = frozenset({"Patient", "ServiceRequest", "ImagingStudy", "DiagnosticReport"})
PATIENT = metadata.tables["patient"]


class FhirProblem(HurenError):
    """Internal: an error answer, raised anywhere in a handler, sent as an OperationOutcome."""

    def __init__(self, status: int, code: str, message: str, *, expression: str | None = None):
        super().__init__(message, field=expression)
        self.status = status
        self.code = code
        self.expression = expression


def _outcome(status: int, code: str, message: str, expression: str | None = None) -> Response:
    body = operation_outcome("error", code, message, expression=expression).model_dump_json(
        exclude_none=True
    )
    headers = {"WWW-Authenticate": 'Bearer realm="huren"'} if status == 401 else None
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _resource_response(stored: StoredResource, status: int = 200) -> Response:
    return Response(
        stored.body,
        status_code=status,
        media_type=FHIR_JSON,
        headers={
            "ETag": f'W/"{stored.version_id}"',
            "Last-Modified": stored.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
    )


def _own_patient(logical_id: str | None) -> int | None:
    """The hub's patient one of its own resources is about (its Patient ids are patient ids)."""
    if logical_id and logical_id.isascii() and logical_id.isdigit() and len(logical_id) <= 18:
        return int(logical_id)
    return None


def _patient_id(connection: Connection, logical_id: str | None) -> int | None:
    """The hub's own patient behind a Patient logical id (its ids are the patients' ids).

    Only a patient the hub has: the audit row refers to the patient table, so
    any other id (a search for an unknown number, a remote node's reference)
    would fail the audit write and with it the request.
    """
    if not logical_id or not (logical_id.isascii() and logical_id.isdigit()):
        return None
    if len(logical_id) > 18:  # beyond a 64-bit integer: no row has it
        return None
    found = connection.execute(select(PATIENT.c.id).where(PATIENT.c.id == int(logical_id))).first()
    return None if found is None else int(found.id)


class FhirApi:
    """Builds the ``/fhir`` application; the caller owns the database and the writers."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        tokens: TokenChecker,
        audit: AuditWriter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._settings = settings
        self._tokens = tokens
        self._audit = audit
        self._clock = clock
        self.base = f"{settings.base_url}/fhir"
        self._capability = capability_statement(
            base_url=self.base, version=__version__, published=clock()
        ).model_dump_json(exclude_none=True)

    def app(self) -> Starlette:
        routes = [
            Route("/metadata", self.metadata, methods=["GET"]),
            Route("/", self.transaction, methods=["POST"]),
            Route("/{resource_type}", self.search, methods=["GET"]),
            Route("/{resource_type}/{logical_id}", self.read, methods=["GET"]),
        ]
        return Starlette(
            routes=routes,
            exception_handlers={
                FhirProblem: self._problem,  # type: ignore[dict-item]
                HTTPException: self._http_problem,  # type: ignore[dict-item]
                SQLAlchemyError: self._storage_problem,
                DatabaseUnavailable: self._storage_problem,
            },
        )

    # --- edges ---------------------------------------------------------------------------

    async def _problem(self, _request: Request, exc: FhirProblem) -> Response:
        return _outcome(exc.status, exc.code, str(exc), exc.expression)

    async def _http_problem(self, _request: Request, exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return _outcome(exc.status_code, code, str(exc.detail))

    async def _storage_problem(self, _request: Request, exc: Exception) -> Response:
        """A locked or unreachable database is 503 (retry later); anything else stays a 500."""
        transient = unavailable(exc)
        if transient is None:
            log.error("FHIR request failed in the database: %s", exc)
            return _outcome(500, "exception", "the hub could not complete the request")
        log.warning("FHIR request refused: %s", transient)
        response = _outcome(
            503, "transient", "the hub's database is busy or unreachable; retry later"
        )
        response.headers["Retry-After"] = "5"
        return response

    def _grant(self, request: Request, resource_type: str, access: Access) -> Grant:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise FhirProblem(401, "login", "send Authorization: Bearer <token>")
        grant = self._tokens.check(token.strip())
        if grant is None:
            raise FhirProblem(401, "login", "the token is unknown or revoked")
        if not grant.allows(resource_type, access):
            raise FhirProblem(
                403, "forbidden", f"client {grant.client} may not {access} {resource_type}"
            )
        return grant

    async def _record(self, request: Request, grant: Grant, **fields: Any) -> None:
        client = request.client
        await self._audit.record(
            AuditEntry(actor=grant.client, source_address=client.host if client else "", **fields)
        )

    @staticmethod
    def _served(resource_type: str) -> None:
        if resource_type not in SUPPORTED_TYPES:
            raise FhirProblem(
                404, "not-supported", f"{resource_type} is not served here", expression="type"
            )

    # --- handlers ------------------------------------------------------------------------

    async def metadata(self, _request: Request) -> Response:
        return Response(self._capability, media_type=FHIR_JSON)

    async def read(self, request: Request) -> Response:
        resource_type = request.path_params["resource_type"]
        logical_id = request.path_params["logical_id"]
        self._served(resource_type)
        grant = self._grant(request, resource_type, "read")

        def fetch(connection: Connection) -> tuple[StoredResource | None, int | None]:
            stored = read_resource(connection, resource_type=resource_type, logical_id=logical_id)
            if stored is None or resource_type not in PATIENT_DATA:
                return stored, None
            subject = logical_id if resource_type == "Patient" else stored.subject_id
            if stored.origin == "":
                return stored, _own_patient(subject)
            return stored, _patient_id(connection, subject)  # another node's: check it

        stored, patient_id = await self._in_thread(fetch)
        if stored is None:
            raise FhirProblem(404, "not-found", f"{resource_type}/{logical_id} is not known")
        if resource_type in PATIENT_DATA:
            await self._record(
                request,
                grant,
                action=AuditAction.read,
                entity_type=resource_type,
                entity_id=logical_id,
                patient_id=patient_id,
            )
        return _resource_response(stored)

    async def search(self, request: Request) -> Response:
        resource_type = request.path_params["resource_type"]
        self._served(resource_type)
        grant = self._grant(request, resource_type, "read")
        try:
            query = parse_search(resource_type, list(request.query_params.multi_items()))
        except ValidationError as exc:
            raise FhirProblem(400, "invalid", str(exc), expression=exc.field) from None
        if query.includes:
            self._grant(request, "ImagingStudy", "read")

        subjects = query.subjects or ()

        def run(
            connection: Connection,
        ) -> tuple[list[StoredResource], int, bool, list[StoredResource], int | None]:
            page, total, more = search(connection, query)
            included = included_studies(connection, page) if query.includes else []
            patient_id = _patient_id(connection, subjects[0]) if len(subjects) == 1 else None
            return page, total, more, included, patient_id

        page, total, more, included, patient_id = await self._in_thread(run)
        if resource_type in PATIENT_DATA:
            await self._record(
                request,
                grant,
                action=AuditAction.read,
                entity_type=resource_type,
                entity_id="",
                detail=f"search {request.url.query}"[:2000],
                patient_id=patient_id,
            )
        return Response(
            self._searchset(request, query, page, total, more, included), media_type=FHIR_JSON
        )

    async def transaction(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._settings.fhir_max_body:
            raise FhirProblem(
                413, "too-costly", f"bodies over {self._settings.fhir_max_body} bytes"
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._settings.fhir_max_body:
                raise FhirProblem(
                    413, "too-costly", f"bodies over {self._settings.fhir_max_body} bytes"
                )
        try:
            raw = json.loads(body)
        except ValueError as exc:
            raise FhirProblem(400, "structure", f"the body is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise FhirProblem(400, "structure", "the body is not a FHIR resource")
        entries = raw.get("entry")
        if entries is not None and not isinstance(entries, list):
            raise FhirProblem(
                400, "structure", "Bundle.entry must be an array", expression="Bundle.entry"
            )
        types = {  # the scopes to check; the Bundle's shape is validated in full later
            str(resource.get("resourceType", ""))
            for entry in entries or []
            if isinstance(entry, dict) and isinstance(resource := entry.get("resource"), dict)
        }
        grant = self._grant(request, "Bundle", "write") if not types else None
        for resource_type in sorted(types):
            grant = self._grant(request, resource_type or "Resource", "write")
        assert grant is not None
        now = self._clock()

        client = request.client

        def apply() -> dict[str, Any]:
            with self._database.engine.begin() as connection:
                answer = accept_transaction(
                    connection,
                    raw,
                    origin=grant.client,
                    now=now,
                    location=lambda stored: (
                        f"{self.base}/{stored.reference}/_history/{stored.version_id}"
                    ),
                )
                # On the trail in the same commit as the resources: one fsync, not two.
                entry = AuditEntry(
                    action=AuditAction.update,
                    actor=grant.client,
                    source_address=client.host if client else "",
                    entity_type="Bundle",
                    entity_id="",
                    detail=f"transaction of {len(answer['entry'])} entries",
                )
                connection.execute(insert(AUDIT), [audit_row(entry, now=now)])
                return answer

        try:
            answer = await anyio.to_thread.run_sync(apply)
        except PreconditionFailed as exc:
            raise FhirProblem(412, "multiple-matches", str(exc), expression=exc.field) from None
        except ValidationError as exc:
            raise FhirProblem(400, "invalid", str(exc), expression=exc.field) from None
        except Conflict as exc:
            raise FhirProblem(409, "conflict", str(exc), expression=exc.field) from None
        except DatabaseUnavailable:
            raise
        except HurenError as exc:
            raise FhirProblem(400, "processing", str(exc), expression=exc.field) from None
        return Response(
            json.dumps(answer, ensure_ascii=False, separators=(",", ":")), media_type=FHIR_JSON
        )

    # --- helpers -------------------------------------------------------------------------

    async def _in_thread(self, work: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            with self._database.engine.connect() as connection:
                return work(connection)

        return await anyio.to_thread.run_sync(run)

    def _page_url(self, request: Request, query: SearchQuery, offset: int) -> str:
        kept = [
            (name, value)
            for name, value in request.query_params.multi_items()
            if name not in ("_offset", "_count")
        ]
        kept += [("_count", str(query.count)), ("_offset", str(offset))]
        return f"{self.base}/{query.resource_type}?{urlencode(kept)}"

    def _searchset(
        self,
        request: Request,
        query: SearchQuery,
        page: list[StoredResource],
        total: int,
        more: bool,
        included: list[StoredResource],
    ) -> str:
        links = [{"relation": "self", "url": self._page_url(request, query, query.offset)}]
        if more:
            links.append(
                {
                    "relation": "next",
                    "url": self._page_url(request, query, query.offset + query.count),
                }
            )
        if query.offset > 0:
            links.append(
                {
                    "relation": "previous",
                    "url": self._page_url(request, query, max(0, query.offset - query.count)),
                }
            )
        head = json.dumps(
            {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links},
            separators=(",", ":"),
        )
        entries = [
            f'{{"fullUrl":{json.dumps(f"{self.base}/{stored.reference}")},"resource":{stored.body},'
            f'"search":{{"mode":"{mode}"}}}}'
            for mode, group in (("match", page), ("include", included))
            for stored in group
        ]
        if not entries:
            return head
        return f'{head[:-1]},"entry":[{",".join(entries)}]}}'
