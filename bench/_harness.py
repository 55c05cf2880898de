"""What the benchmarks share: ports, `huren serve` as a process, the bound's server, figures.

Not a benchmark itself (``make bench`` skips files starting with ``_``). The
scripts load it by path, because their own folder must stay off ``sys.path``
(``bench/fhir.py`` would shadow the ``fhir`` package); ``load_sibling`` loads
the other shared modules (``bench/_clients.py``) the same way.
"""

from __future__ import annotations

import importlib.util
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
from types import ModuleType
from typing import Any, NamedTuple

import uvicorn

HERE = Path(__file__).resolve().parent


def load_sibling(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module, loaded by path (bench/ stays off ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(f"bench{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without HUREN_* settings, plus the hub's data and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env.update(HUREN_DATA_DIR=str(data_dir), HUREN_BIND="127.0.0.1", **extra)
    return env


def huren(env: dict[str, str], *args: str, limit: float = 900) -> str:
    """``huren ARGS`` with ``env``; its standard output (the run stops if it fails)."""
    done = subprocess.run(
        [sys.executable, "-m", "integration.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"huren {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def demo_region(root: Path, *, fhir_days: int = 0, **settings: str) -> float:
    """``huren demo seed --scale tiny`` into ``root`` with ``settings``; seconds taken.

    ``fhir_days`` > 0 also stores (and, with an upstream URL in ``settings``, queues)
    the FHIR resources of the studies and reports of that many last days.
    """
    started = time.perf_counter()
    env = hub_env(root, **{f"HUREN_{name.upper()}": value for name, value in settings.items()})
    huren(env, "demo", "seed", "--scale", "tiny", "--quiet", "--fhir-days", str(fhir_days))
    return time.perf_counter() - started


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


class HubProcess(NamedTuple):
    """A running ``huren serve``: where it listens and its process."""

    url: str
    process: subprocess.Popen[bytes]
    mllp_port: int
    dicom_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def hub_process(
    data_dir: Path, log: Path, *, http_port: int | None = None, **settings: str
) -> Iterator[HubProcess]:
    """``huren serve`` on ``data_dir`` (free ports unless ``http_port``, loopback) with
    ``settings`` (names without the ``HUREN_`` prefix); stopped with SIGTERM at the end."""
    port = http_port or free_port()
    mllp_port, dicom_port = free_port(), free_port()
    env = hub_env(
        data_dir,
        HUREN_HTTP_PORT=str(port),
        HUREN_MLLP_PORT=str(mllp_port),
        HUREN_DICOM_PORT=str(dicom_port),
        **{f"HUREN_{name.upper()}": value for name, value in settings.items()},
    )
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "integration.cli", "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process, log)
        yield HubProcess(f"http://127.0.0.1:{port}", process, mllp_port, dicom_port, log)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)


@contextmanager
def hub(data_dir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """``huren serve`` on ``data_dir`` (free ports, loopback); yields its base URL and pid."""
    with hub_process(data_dir, log) as running:
        yield running.url, running.pid


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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a split hub's role processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone since the listing
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        tree.append(current)
        waiting.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and its descendants (Linux /proc)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            if member == pid:
                raise ProcessLookupError(pid) from None
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_megabytes(pid: int) -> float:
    """Resident memory now of process ``pid`` and its descendants (VmRSS in /proc), in MB."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            if member == pid:
                raise ProcessLookupError(pid) from None
            continue
        total += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    return total / 1024


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[max(0, ceil(q * len(ordered)) - 1)] * 1000
