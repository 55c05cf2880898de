"""HL7 intake speed: ORM^O01 parsed, persisted (durably) and acknowledged, over 8 connections.

Goal: >= 1,000 ORM^O01/s end-to-end into `huren serve` on 127.0.0.1. The
bound, measured in the same run with the same client, is a naive MLLP echo
server in its own process that answers every frame with a canned ACK: the
cost of the sockets and framing alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# Run as ``python bench/mllp.py``, this file's folder comes first on sys.path and its
# neighbours (fhir.py, dicom.py) would shadow the packages the shared clients import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_harness", _HERE / "_harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
clients = harness.load_sibling("_clients")

from hl7.mllp import MllpClient, MllpDecoder, frame  # noqa: E402
from models.enums import Sex  # noqa: E402
from models.identity import make_resident_id  # noqa: E402

GOAL = 1000.0
CONNECTIONS = 8
FACILITY = "QL-T01"
ZONE = ZoneInfo("Asia/Shanghai")
CANNED_ACK = b"MSH|^~\\&|HUREN|HUREN|||20261125||ACK|1|P|2.5\rMSA|AA|1\r"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def orm(n: int) -> bytes:
    born = date(1950 + n % 60, 1 + n % 12, 1 + n % 28)
    sex = Sex.male if n % 2 else Sex.female
    return clients.orm(
        facility=FACILITY,
        control_id=f"BENCH{n:08d}",
        placer=f"P{n:09d}",
        accession=f"A{n:09d}",
        exam=("DX-CHEST-PA", "胸部正位片(DR)", "DX"),
        resident_id=make_resident_id("390521", born, n % 100, sex),
        mrn=f"MRN{n:08d}",
        name=f"测试^患者{n % 1000}",
        born=born,
        sex=sex,
        sent_at=datetime(2026, 11, 25, 9, 30, tzinfo=ZONE),
        scheduled_at=datetime(2026, 11, 25, 10, 0, tzinfo=ZONE),
    )


async def _client(port: int, messages: list[bytes], deadline: float) -> tuple[int, int]:
    accepted = refused = 0
    async with MllpClient("127.0.0.1", port, timeout=30) as client:
        for payload in messages:
            if time.monotonic() > deadline:
                break
            reply = await client.send(payload)
            if b"MSA|AA|" in reply:
                accepted += 1
            else:
                refused += 1
    return accepted, refused


async def _load(port: int, messages: list[bytes], budget: float) -> tuple[int, int, float]:
    deadline = time.monotonic() + budget
    shares = [messages[i::CONNECTIONS] for i in range(CONNECTIONS)]
    started = time.perf_counter()
    results = await asyncio.gather(*(_client(port, share, deadline) for share in shares))
    elapsed = time.perf_counter() - started
    return sum(r[0] for r in results), sum(r[1] for r in results), elapsed


async def _echo_server(port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = MllpDecoder()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := await reader.read(65536):
            for _payload in decoder.feed(data):
                writer.write(frame(CANNED_ACK))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _wait_for(url: str, process: subprocess.Popen[bytes], limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hub exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                json.loads(response.read())
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {limit} s")


def _wait_port(port: int, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"port {port} did not open")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--small", action="store_true", help="4,000 messages")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per load phase")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(_echo_server(args.echo_server))
        return 0
    count = 4_000 if args.small else args.messages
    messages = [orm(n) for n in range(count)]
    huren = [sys.executable, "-m", "integration.cli"]

    with tempfile.TemporaryDirectory(prefix="huren-bench-mllp-") as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
        env.update(HUREN_DATA_DIR=folder, HUREN_BIND="127.0.0.1")
        subprocess.run(
            [*huren, "demo", "seed", "--scale", "tiny", "--quiet"],
            env=env,
            check=True,
            capture_output=True,
        )
        mllp_port, http_port = free_port(), free_port()
        env.update(
            HUREN_MLLP_PORT=str(mllp_port),
            HUREN_HTTP_PORT=str(http_port),
            HUREN_DICOM_PORT=str(free_port()),
        )
        hub = subprocess.Popen(
            [*huren, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_for(f"http://127.0.0.1:{http_port}/healthz", hub)
            asyncio.run(_load(mllp_port, [orm(10_000_000 + n) for n in range(200)], 30))
            accepted, refused, elapsed = asyncio.run(_load(mllp_port, messages, args.budget))
        finally:
            hub.terminate()
            hub.wait(timeout=30)

    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, __file__, "--echo-server", str(echo_port)])
    try:
        _wait_port(echo_port)
        echoed, _, echo_elapsed = asyncio.run(_load(echo_port, messages, args.budget))
    finally:
        echo.terminate()
        echo.wait(timeout=10)

    rate = accepted / elapsed
    bound = echoed / echo_elapsed
    print(
        f"hub: {accepted} AA, {refused} other of {count} in {elapsed:.1f} s over "
        f"{CONNECTIONS} connections; echo server: {echoed} in {echo_elapsed:.1f} s"
    )
    verdict = "met" if rate >= GOAL and refused == 0 else "missed"
    print(
        f"GOAL mllp-ingest: {rate:.0f} msg/s (bound {bound:.0f}, ratio {rate / bound:.2f}) "
        f"goal >={GOAL:.0f} msg/s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
