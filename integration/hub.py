"""`huren serve`: one process running the hub's listeners until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator

import uvicorn

from integration.database import Database
from integration.http import build_http_app
from integration.settings import Settings

log = logging.getLogger("huren.hub")


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub decides when everything stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Upgrade the schema if needed, start the listeners, and run until ``stop`` is set."""
    settings.check_production()
    database = Database.from_settings(settings)
    if database.needs_upgrade():
        log.info("upgrading database schema")
        await asyncio.to_thread(database.upgrade)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    http = _HttpServer(
        uvicorn.Config(
            build_http_app(database=database),
            host=settings.bind,
            port=settings.http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    http_task = asyncio.create_task(http.serve(), name="http")
    try:
        while not http.started:
            if http_task.done():
                await http_task
                raise OSError(
                    f"HTTP server could not listen on {settings.bind}:{settings.http_port}"
                )
            await asyncio.sleep(0.02)
        ports = [s.getsockname()[1] for srv in http.servers for s in (srv.sockets or [])]
        log.info("hub ready: HTTP http://%s:%s/healthz", settings.bind, ports[0] if ports else "?")
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if http_task.done():
            await http_task
    finally:
        log.info("hub stopping")
        http.should_exit = True
        try:
            await asyncio.wait_for(http_task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("HTTP server did not stop in time; cancelled")
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        database.dispose()
        log.info("hub stopped")
