"""What the HTTP benchmarks share: ports, `huren serve` as a process, the bound's server.

Not a benchmark itself (``make bench`` skips files starting with ``_``). The
scripts load it by path, because their own folder must stay off ``sys.path``
(``bench/fhir.py`` would shadow the ``fhir`` package).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from math import ceil
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without HUREN_* settings, plus the hub's data and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env.update(HUREN_DATA_DIR=str(data_dir), HUREN_BIND="127.0.0.1", **extra)
    return env


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, limit: float = 120) -> None:
    """Until ``url`` answers JSON; stops the run if the server exits or stays silent."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise SystemExit(f"{url}: server exited early with {process.returncode}\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                json.loads(response.read())
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {limit} s")


@contextmanager
def _running(
    command: Sequence[str], env: dict[str, str] | None, port: int, log: Path
) -> Iterator[tuple[str, int]]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process, log)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def hub(data_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """``huren serve`` on ``data_dir`` (free ports, loopback); yields its base URL and pid."""
    port = free_port()
    env = hub_env(
        data_dir,
        HUREN_HTTP_PORT=str(port),
        HUREN_MLLP_PORT=str(free_port()),
        HUREN_DICOM_PORT=str(free_port()),
    )
    with _running([sys.executable, "-m", "integration.cli", "serve"], env, port, log) as hub:
        yield hub


@contextmanager
def bound_process(
    script: str, flag: str, spec: dict[str, Any], folder: Path
) -> Iterator[tuple[str, int]]:
    """``script flag SPEC`` (the benchmark's bound app) in its own process; URL and pid."""
    spec = {**spec, "port": free_port()}
    path = folder / f"bound-{spec['port']}.json"
    path.write_text(json.dumps(spec))
    log = folder / f"bound-{spec['port']}.log"
    with _running([sys.executable, script, flag, str(path)], None, spec["port"], log) as bound:
        yield bound


def serve(app: Any, port: int) -> None:
    """Run ``app`` with the hub's uvicorn settings (integration/hub.py): only the app differs."""
    uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    ).run()


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[max(0, ceil(q * len(ordered)) - 1)] * 1000
