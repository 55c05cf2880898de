"""WADO-RS retrieve (``/dicomweb``): the images behind an ImagingStudy's endpoint.

Studies, series and single instances come back as ``multipart/related;
type="application/dicom"``, the stored Part-10 files as they were received
(compressed transfer syntaxes included). The same bearer tokens as the FHIR
API apply (scope ``ImagingStudy`` read), and every retrieve is audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import anyio.to_thread
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dicom.store import FileStore
from integration.api_clients import TokenChecker
from integration.audit_trail import AuditEntry, AuditWriter
from integration.database import Database
from models import metadata
from models.enums import AuditAction

STUDY = metadata.tables["study"]
SERIES = metadata.tables["series"]
INSTANCE = metadata.tables["instance"]
_ACCEPTABLE = ("multipart/related", "*/*", "application/dicom", "multipart/*")


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class DicomWeb:
    """Builds the ``/dicomweb`` application over the archive's index and files."""

    def __init__(
        self, *, database: Database, files: FileStore, tokens: TokenChecker, audit: AuditWriter
    ) -> None:
        self._database = database
        self._files = files
        self._tokens = tokens
        self._audit = audit

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/studies/{study}", self.retrieve, methods=["GET"]),
                Route("/studies/{study}/series/{series}", self.retrieve, methods=["GET"]),
                Route(
                    "/studies/{study}/series/{series}/instances/{instance}",
                    self.retrieve,
                    methods=["GET"],
                ),
            ]
        )

    def _paths(
        self, study: str, series: str | None, instance: str | None
    ) -> tuple[list[str], int | None]:
        """The newest version of each matching instance, in series and instance order."""
        statement = (
            select(
                INSTANCE.c.path,
                INSTANCE.c.sop_instance_uid,
                INSTANCE.c.version,
                STUDY.c.patient_id,
            )
            .join(STUDY, STUDY.c.id == INSTANCE.c.study_id)
            .join(SERIES, SERIES.c.id == INSTANCE.c.series_id)
            .where(STUDY.c.study_instance_uid == study)
            .order_by(SERIES.c.number, SERIES.c.id, INSTANCE.c.number, INSTANCE.c.id)
        )
        if series is not None:
            statement = statement.where(SERIES.c.series_instance_uid == series)
        if instance is not None:
            statement = statement.where(INSTANCE.c.sop_instance_uid == instance)
        latest: dict[str, tuple[int, str]] = {}
        patient_id = None
        with self._database.engine.connect() as connection:
            for row in connection.execute(statement):
                patient_id = row.patient_id
                known = latest.get(row.sop_instance_uid)
                if known is None or known[0] < row.version:
                    latest[row.sop_instance_uid] = (row.version, row.path)
        return [path for _version, path in latest.values()], patient_id

    async def retrieve(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        grant = self._tokens.check(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            return _problem(401, "send Authorization: Bearer <token> of a known client")
        if not grant.allows("ImagingStudy", "read"):
            return _problem(403, f"client {grant.client} may not read images")
        accept = request.headers.get("accept", "*/*")
        if not any(kind in accept for kind in _ACCEPTABLE):
            return _problem(406, 'this service answers multipart/related; type="application/dicom"')
        study = request.path_params["study"]
        series = request.path_params.get("series")
        instance = request.path_params.get("instance")
        paths, patient_id = await anyio.to_thread.run_sync(self._paths, study, series, instance)
        if not paths:
            return _problem(404, "no such study, series or instance here")
        client = request.client
        await self._audit.record(
            AuditEntry(
                action=AuditAction.read,
                actor=grant.client,
                source_address=client.host if client else "",
                entity_type="ImagingStudy",
                entity_id=study[:64],
                detail=f"WADO-RS retrieve of {len(paths)} instances",
                patient_id=patient_id,
            )
        )
        boundary = secrets.token_hex(16)
        files = self._files

        def parts() -> Iterator[bytes]:
            for path in paths:
                yield (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
                yield files.read(path)
                yield b"\r\n"
            yield f"--{boundary}--\r\n".encode()

        return StreamingResponse(
            parts(),
            media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )
