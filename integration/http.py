"""The hub's HTTP application. Later floors mount the FHIR API and CDS Hooks here."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integration import __version__
from integration.database import Database


def build_http_app(*, database: Database) -> Starlette:
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

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
