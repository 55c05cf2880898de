"""The hub's HTTP application: /healthz, and when given FHIR, WADO-RS and CDS Hooks."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

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
        routes += cds.routes()
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
