"""The hub's HTTP application: /healthz, and when given FHIR, WADO-RS and CDS Hooks."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration import __version__
from integration.cds import CdsHooks
from integration.database import Database
from integration.dicomweb import DicomWeb
from integration.fhir_api import FhirApi


def build_http_app(
    *,
    database: Database,
    fhir: FhirApi | None = None,
    dicomweb: DicomWeb | None = None,
    cds: CdsHooks | None = None,
    cds_max_body: int = 4 << 20,
) -> Starlette:
    """A fresh Starlette app bound to ``database`` (the caller owns its lifetime)."""

    def probe_database() -> str | None:
        from models.migrate import current_revision

        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return current_revision(database.engine)

    async def healthz(_request: Request) -> JSONResponse:
        checked_at = datetime.now(UTC).isoformat()
        try:
            schema = await anyio.to_thread.run_sync(probe_database)
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unavailable", "database": type(exc).__name__, "time": checked_at},
                status_code=503,
            )
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "database": database.engine.dialect.name,
                "schema": schema,
                "time": checked_at,
            }
        )

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    if cds is not None:
        # Each hook route reads its whole body: capped before the handler sees it.
        routes += [
            Route(
                route.path,
                BodyLimit(request_response(route.endpoint), cds_max_body),
                methods=list(route.methods or ()),
            )
            for route in cds.routes()
            if isinstance(route, Route)
        ]
    if fhir is not None:
        fhir_app = fhir.app()
        # A Mount does not match the bare base, where transactions are POSTed.
        routes += [
            Route("/fhir", _AtBase(fhir_app, "/fhir"), methods=["POST"]),
            Mount("/fhir", app=fhir_app),
        ]
    if dicomweb is not None:
        routes.append(Mount("/dicomweb", app=dicomweb.app()))
    return Starlette(routes=routes)


class _AtBase:
    """Hands a request for the bare ``prefix`` to a mounted app as its ``/``."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self._app = app
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner = dict(scope)
        inner["path"] = "/"
        inner["root_path"] = scope.get("root_path", "") + self._prefix
        await self._app(inner, receive, send)


class BodyLimit:
    """Reads a request body up to ``limit`` bytes before the app sees it; larger ones get 413.

    The CDS Hooks and REST handlers read whole bodies into memory; without a
    limit any caller, before its token is even looked at, could make the hub
    hold as much as it cares to send. A declared Content-Length over the
    limit is refused without reading; a chunked body is counted as it comes.
    The app then gets the body in one piece, as it would have read it anyway.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._limit:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self._app(scope, _replay(message, receive), send)  # e.g. a disconnect
                return
            body += message.get("body", b"")
            if len(body) > self._limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self._app(scope, _replay(whole, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse(
            {"error": f"the request body is larger than {self._limit} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await answer(scope, receive, send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive that hands out ``first`` once, then whatever the server sends next."""
    pending = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
