"""A split hub: each role of `huren serve` in a process of its own, watched by this one.

One Python process runs on one core at a time however many listeners it has,
so under HL7, DICOM and CDS Hooks load at once each stream gets a share of a
core (`bench/soak.py`). Split, the background workers, MLLP, DICOM and HTTP
run as four `huren serve --role` processes on the same database and settings,
and the operating system spreads them over the cores.

The supervisor migrates the schema once, starts the roles in order (each
signals readiness through a pipe; the listeners together, then HTTP, so /healthz answering still
means every listener is up) and stops them in reverse on SIGTERM or SIGINT.
If one role process dies, the rest are stopped and the supervisor exits 1,
so that the service manager restarts the hub whole; a role whose supervisor
is gone stops by itself.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

from integration.database import Database
from integration.roles import Role
from integration.settings import Settings

log = logging.getLogger("huren.supervisor")

START_ORDER = (Role.background, Role.mllp, Role.dicom, Role.http)
START_LIMIT_S = 120.0
STOP_LIMIT_S = 90.0  # for all roles together; systemd's TimeoutStopSec must exceed it
READY = b"ready\n"


@dataclass(frozen=True)
class RoleProcess:
    role: Role
    process: subprocess.Popen[bytes]


def _spawn(role: Role, *, verbose: bool) -> tuple[subprocess.Popen[bytes], int]:
    """The role's process and the read end of the pipe it announces readiness on."""
    readable, writable = os.pipe()
    command = [sys.executable, "-m", "integration.cli"]
    if verbose:
        command.append("--verbose")
    command += ["serve", "--role", role.value, "--ready-fd", str(writable)]
    command += ["--supervisor-pid", str(os.getpid())]
    try:
        # A group of its own: a terminal's Ctrl-C reaches the supervisor only, which stops the
        # roles in order (and not one of them in the middle of its imports).
        process = subprocess.Popen(command, pass_fds=(writable,), process_group=0)
    except BaseException:
        os.close(readable)
        raise
    finally:
        os.close(writable)
    return process, readable


def _await_ready(readable: int, process: subprocess.Popen[bytes], stop: threading.Event) -> bool:
    """True once the role wrote READY; False if it exited, the limit passed or a stop came."""
    deadline = time.monotonic() + START_LIMIT_S
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([readable], [], [], 0.2)
            if ready:
                return os.read(readable, len(READY)) == READY
            if process.poll() is not None:
                return False
        return False
    finally:
        os.close(readable)


def _stop(running: list[RoleProcess]) -> None:
    """SIGTERM to each role in reverse start order, waiting for each; SIGKILL to whatever is
    left once STOP_LIMIT_S has passed in all (a service manager's stop timeout is one figure)."""
    deadline = time.monotonic() + STOP_LIMIT_S
    for child in reversed(running):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("the %s process did not stop in time; killed", child.role)
            child.process.kill()
            child.process.wait()


def supervise(settings: Settings, *, verbose: bool = False) -> int:
    """Run the hub as one process per role until SIGTERM/SIGINT; 0 after a clean stop."""
    settings.check_production()
    database = Database.from_settings(settings)
    try:
        if database.needs_upgrade():
            log.info("upgrading database schema")
            database.upgrade()
    finally:
        database.dispose()

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    running: list[RoleProcess] = []
    try:
        # The listeners start side by side; HTTP after them, as in one process.
        for wave in (START_ORDER[:-1], START_ORDER[-1:]):
            starting = []
            for role in wave:
                process, readable = _spawn(role, verbose=verbose)
                running.append(RoleProcess(role, process))
                starting.append((role, process, readable))
            for n, (role, process, readable) in enumerate(starting):
                if not _await_ready(readable, process, stop):
                    for _, _, unread in starting[n + 1 :]:
                        os.close(unread)
                    if stop.is_set():
                        return 0
                    log.error("the %s process did not start (exit %s)", role, process.poll())
                    return 1
        pids = ", ".join(f"{child.role} {child.process.pid}" for child in running)
        log.info("hub ready, split: %s", pids)
        while not stop.wait(0.5):
            for child in running:
                code = child.process.poll()
                if code is not None:
                    log.error("the %s process exited with %s; stopping the hub", child.role, code)
                    return 1
        log.info("hub stopping")
        return 0
    finally:
        _stop(running)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("hub stopped")
