"""`huren serve`: one process running the hub's listeners until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import httpx
import uvicorn

from dicom.server import DicomServer
from dicom.store import FileStore
from hl7.mllp import MllpServer
from integration.api_clients import TokenChecker
from integration.archive import Archive
from integration.audit_chain import Sealer
from integration.audit_trail import AuditWriter
from integration.avoidable import NightlyCheck
from integration.cds import CdsHooks
from integration.cds_auth import CdsAuthenticator, load_clients
from integration.database import Database
from integration.dicomweb import DicomWeb
from integration.directory import Directory
from integration.fhir_api import FhirApi
from integration.fhir_exchange import FHIR_BATCHING, send_fhir
from integration.http import build_http_app
from integration.imaging import CallerPolicy, Stabiliser, StudyQueryService, WorklistService
from integration.intake import Intake
from integration.outbox import OutboxWorker
from integration.report_return import send_hl7
from integration.roles import EVERY_ROLE, Role
from integration.settings import Settings
from integration.tls import listener_context
from models.enums import OutboxChannel

log = logging.getLogger("huren.hub")


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub decides when everything stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _start_http(
    settings: Settings,
    database: Database,
    fhir: FhirApi,
    dicomweb: DicomWeb,
    cds: CdsHooks,
    stack: contextlib.AsyncExitStack,
) -> tuple[_HttpServer, asyncio.Task[None]]:
    http = _HttpServer(
        uvicorn.Config(
            build_http_app(
                database=database,
                fhir=fhir,
                dicomweb=dicomweb,
                cds=cds,
                cds_max_body=settings.cds_max_body,
            ),
            host=settings.bind,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(http.serve(), name="http")

    async def stop_http() -> None:
        http.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("HTTP server did not stop in time; cancelled")

    stack.push_async_callback(stop_http)
    while not http.started:
        if task.done():
            await task
            raise OSError(f"HTTP could not listen on {settings.bind}:{settings.http_port}")
        await asyncio.sleep(0.02)
    return http, task


def _in_background(
    stack: contextlib.AsyncExitStack,
    name: str,
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Start a worker loop now; at shutdown, tell it to stop and wait for it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop), name=name)

    async def finish() -> None:
        stop.set()
        await task

    stack.push_async_callback(finish)


def stable_worker_id(settings: Settings) -> str:
    """The same outbox worker id across restarts of this hub, so it takes back its own leases."""
    place = hashlib.sha1(str(settings.data_dir.resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()[:40]}:{place}"


def _start_background(
    stack: contextlib.AsyncExitStack, database: Database, settings: Settings
) -> None:
    # Started first, so it stops last: its final round seals what the others wrote.
    _in_background(
        stack,
        "audit-sealer",
        Sealer(engine=database.engine, interval=settings.audit_seal_seconds).run,
    )
    upstream = httpx.AsyncClient()
    stack.push_async_callback(upstream.aclose)
    worker = OutboxWorker(
        database=database,
        settings=settings,
        worker_id=stable_worker_id(settings),
        senders={
            OutboxChannel.hl7: lambda parcel: send_hl7(parcel, settings=settings),
            OutboxChannel.fhir: lambda parcel: send_fhir(
                parcel, settings=settings, client=upstream
            ),
        },
        batching={OutboxChannel.fhir: FHIR_BATCHING},
        batch=settings.outbox_claim_rows,
    )
    _in_background(stack, "outbox", worker.run)
    _in_background(stack, "stabiliser", Stabiliser(database=database, settings=settings).run)
    _in_background(
        stack, "recognition-check", NightlyCheck(database=database, zone=settings.zone).run
    )


async def _start_mllp(
    stack: contextlib.AsyncExitStack, database: Database, settings: Settings, directory: Directory
) -> MllpServer:
    intake = Intake(database=database, directory=directory, settings=settings)
    await intake.start()
    stack.push_async_callback(intake.stop)
    mllp = MllpServer(
        intake.handle,
        host=settings.bind,
        port=settings.mllp_port,
        max_frame=settings.mllp_max_frame,
        idle_timeout=settings.mllp_idle_timeout,
        on_reject=intake.reject_frame,
        allowed_networks=settings.mllp_network_allow_list,
        ssl_context=listener_context(settings, "mllp"),
    )
    unknown = sorted(c for c in settings.mllp_sender_allow_list if not directory.facility(c))
    if unknown:
        log.warning("HUREN_MLLP_ALLOWED_SENDERS names unknown facilities: %s", unknown)
    await mllp.start()
    stack.push_async_callback(mllp.stop)
    return mllp


async def _start_dicom(
    stack: contextlib.AsyncExitStack,
    database: Database,
    settings: Settings,
    directory: Directory,
    files: FileStore,
) -> DicomServer:
    archive = Archive(database=database, settings=settings, directory=directory, files=files)
    archive.start()
    stack.callback(archive.stop)
    dicom = DicomServer(
        ae_title=settings.dicom_aet,
        host=settings.bind,
        port=settings.dicom_port,
        storage=archive,
        worklist=WorklistService(database=database, settings=settings, directory=directory),
        query=StudyQueryService(database=database, settings=settings, files=files),
        callers=CallerPolicy(database=database, settings=settings, directory=directory),
        zone=settings.zone,
        ssl_context=listener_context(settings, "dicom"),
    )
    await asyncio.to_thread(dicom.start)

    async def stop_dicom() -> None:
        await asyncio.to_thread(dicom.stop)

    stack.push_async_callback(stop_dicom)
    return dicom


async def _start_web(
    stack: contextlib.AsyncExitStack, database: Database, settings: Settings, files: FileStore
) -> tuple[_HttpServer, asyncio.Task[None]]:
    audit = AuditWriter(database=database)
    audit.start()
    stack.callback(audit.stop)
    tokens = TokenChecker(database.engine)
    fhir = FhirApi(database=database, settings=settings, tokens=tokens, audit=audit)
    dicomweb = DicomWeb(database=database, files=files, tokens=tokens, audit=audit)
    clients = load_clients(settings.cds_clients) if settings.cds_clients else {}
    cds = CdsHooks(database=database, settings=settings, authenticator=CdsAuthenticator(clients))
    cds.start()
    stack.callback(cds.stop)
    return await _start_http(settings, database, fhir, dicomweb, cds, stack)


async def _orphaned(parent: int) -> None:
    """Returns once the process that started this one has gone (a supervised role's guard)."""
    while os.getppid() == parent:
        await asyncio.sleep(1)


async def serve(
    settings: Settings,
    *,
    roles: frozenset[Role] = EVERY_ROLE,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
    supervisor: int | None = None,
) -> None:
    """Upgrade the schema if needed, start the listeners of ``roles``, run until ``stop`` is set.

    Shutdown runs in reverse: stop HTTP, stop accepting HL7 (in-flight
    messages are answered), drain the intake writer, stop the outbox worker.
    ``ready`` is called once everything listens. Under a ``supervisor`` (its
    pid), SIGINT is left to it and the process stops when the supervisor is gone.
    """
    settings.check_production()
    database = Database.from_settings(settings)
    if database.needs_upgrade():
        log.info("upgrading database schema")
        await asyncio.to_thread(database.upgrade)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # Under a supervisor, SIGINT is the supervisor's (the command line ignores it from the start).
    signals = (signal.SIGTERM,) if supervisor else (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(database.dispose)
        for signum in signals:
            stack.callback(loop.remove_signal_handler, signum)
        if Role.background in roles:
            _start_background(stack, database, settings)
        directory = Directory(database.engine)
        files = FileStore(settings.data_dir)
        listening: list[str] = []
        served: list[asyncio.Task[None]] = []
        if Role.mllp in roles:
            mllp = await _start_mllp(stack, database, settings, directory)
            listening.append(f"MLLP {settings.bind}:{mllp.port}")
        if Role.dicom in roles:
            dicom = await _start_dicom(stack, database, settings, directory, files)
            listening.append(f"DICOM {settings.dicom_aet}@{settings.bind}:{dicom.port}")
        if Role.http in roles:
            # HTTP comes up last, so /healthz answering means every listener is ready.
            http, http_task = await _start_web(stack, database, settings, files)
            ports = [s.getsockname()[1] for srv in http.servers for s in (srv.sockets or [])]
            port = ports[0] if ports else "?"
            listening.insert(0, f"HTTP http://{settings.bind}:{port}/healthz")
            served.append(http_task)
        watchers: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if supervisor:
            watchers.append(asyncio.ensure_future(_orphaned(supervisor)))

        # What start-up built lives as long as the hub: out of the collector's sight, a full
        # collection no longer walks ~180k objects (a 90 ms pause for every request in
        # flight, measured under the CDS load).
        gc.collect()
        gc.freeze()
        names = ", ".join(sorted(roles)) if roles != EVERY_ROLE else "every role"
        log.info("hub ready (%s): %s", names, ", ".join(listening) or "no listener")
        if ready is not None:
            ready()
        await asyncio.wait([*watchers, *served], return_when=asyncio.FIRST_COMPLETED)
        for watcher in watchers:
            watcher.cancel()
        log.info("hub stopping")
    log.info("hub stopped")
