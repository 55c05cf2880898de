"""The province's FHIR server and a clinic's HIS down, slow, then answering errors, then well.

A real outbox worker sends to real listeners on 127.0.0.1: an MLLP HIS and an
HTTP FHIR server, each switched through four phases. The worker's clock is a
test clock moved forward a fixed step per round, so backoff is checked
exactly: after every failure the next attempt is due no later than
``outbox_backoff_max_seconds`` later. Meanwhile new messages keep arriving:
the queues grow, nothing is dead-lettered, and once the receivers are well
everything arrives, each message once (by its id), in the order queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hl7.ack import build_ack
from hl7.er7 import parse_message
from hl7.mllp import MllpServer
from integration.database import Database
from integration.fhir_exchange import FHIR_BATCHING, send_fhir
from integration.outbox import OUTBOX, OutboxWorker, enqueue
from integration.report_return import send_hl7
from integration.settings import Settings
from models.enums import OutboxChannel, OutboxStatus
from tests.conftest import free_port

pytestmark = pytest.mark.slow

BACKOFF_MAX = 2.0  # seconds of the test clock
STEP = timedelta(seconds=0.25)  # the test clock per worker round
SEND_TIMEOUT = 0.3  # real seconds; "slow" receivers answer after twice that
PHASES = ("down", "slow", "errors", "well")


@dataclass
class Receiver:
    """What a test receiver does now, and every id it took (in order, repeats included)."""

    mode: str = "down"
    seen: list[str] = field(default_factory=list)
    answers: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _province_app(receiver: Receiver) -> Starlette:
    async def transaction(request: Request) -> Response:
        body = json.loads(await request.body())
        if receiver.mode == "slow":
            await asyncio.sleep(SEND_TIMEOUT * 2)
        elif receiver.mode == "errors":
            receiver.answers += 1
            status = 503 if receiver.answers % 2 else 500
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=status)
        receiver.seen += [
            entry["resource"]["identifier"][0]["value"] for entry in body.get("entry", [])
        ]
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [{"response": {"status": "200 OK"}} for _ in body.get("entry", [])],
            }
        )

    return Starlette(routes=[Route("/fhir", transaction, methods=["POST"])])


@contextlib.contextmanager
def province(receiver: Receiver, port: int) -> Iterator[None]:
    server = _ThreadServer(
        uvicorn.Config(
            _province_app(receiver), host="127.0.0.1", port=port, log_level="error", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "province did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def _his(receiver: Receiver, port: int) -> MllpServer:
    async def handle(payload: bytes, _peer: Any) -> bytes:
        message = parse_message(payload)
        code = "AA"
        if receiver.mode == "slow":
            await asyncio.sleep(SEND_TIMEOUT * 2)
        elif receiver.mode == "errors":
            code = "AE"
        if code == "AA":
            receiver.seen.append(message.control_id)
        return build_ack(message, code=code, text="", control_id="HIS", now=datetime.now(UTC))

    return MllpServer(handle, host="127.0.0.1", port=port)


def _oru(n: int) -> bytes:
    return (
        f"MSH|^~\\&|HUREN|HUREN|HIS|QL-T01|20261201080000||ORU^R01|HR{n}V1|P|2.5.1\r"
        f"PID|1||MRN{n}^^^QL-T01^MR||测试^患者\r"
        f"OBR|1|P{n}|A{n}|DX^胸片|||20261201080000|||||||||||||||20261201080000|||F\r"
    ).encode()


def _bundle(n: int) -> bytes:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:seq", "value": f"seq-{n}"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
                "resource": patient,
                "request": {"method": "PUT", "url": f"Patient?identifier=urn:test:seq|seq-{n}"},
            }
        ],
    }
    return json.dumps(bundle).encode()


def test_outages_slowness_and_errors_lose_nothing_and_backoff_stays_bounded(
    tmp_path: Path,
) -> None:
    his_port, province_port = free_port(), free_port()
    settings = Settings(
        data_dir=tmp_path,  # type: ignore[arg-type]
        outbox_backoff_seconds=0.1,
        outbox_backoff_max_seconds=BACKOFF_MAX,
        outbox_max_attempts=10_000,
        hl7_send_timeout=SEND_TIMEOUT,
        fhir_send_timeout=SEND_TIMEOUT,
    )
    database = Database.from_settings(settings)
    database.upgrade()
    clock = Clock()
    his, fhir = Receiver(), Receiver()
    queued: dict[OutboxChannel, list[str]] = {OutboxChannel.hl7: [], OutboxChannel.fhir: []}
    counter = iter(range(1, 10_000))

    def add_messages(count: int) -> None:
        with database.engine.begin() as connection:
            for _ in range(count):
                n = next(counter)
                enqueue(
                    connection,
                    channel=OutboxChannel.hl7,
                    destination=f"mllp://127.0.0.1:{his_port}",
                    idempotency_key=f"oru:{n}",
                    payload=_oru(n),
                    content_type="application/hl7-v2",
                    now=clock(),
                )
                enqueue(
                    connection,
                    channel=OutboxChannel.fhir,
                    destination=f"http://127.0.0.1:{province_port}/fhir",
                    idempotency_key=f"fhir:{n}",
                    payload=_bundle(n),
                    content_type="application/fhir+json",
                    now=clock(),
                )
                queued[OutboxChannel.hl7].append(f"HR{n}V1")
                queued[OutboxChannel.fhir].append(f"seq-{n}")

    def rows() -> list[Any]:
        with database.engine.connect() as connection:
            return list(connection.execute(select(OUTBOX).order_by(OUTBOX.c.id)))

    spacing: list[float] = []  # next attempt minus the failure's time, test-clock seconds
    pending_by_phase: dict[str, int] = {}

    async def run() -> None:
        upstream = httpx.AsyncClient()
        worker = OutboxWorker(
            database=database,
            settings=settings,
            clock=clock,
            senders={
                OutboxChannel.hl7: lambda p: send_hl7(p, settings=settings),
                OutboxChannel.fhir: lambda p: send_fhir(p, settings=settings, client=upstream),
            },
            batching={OutboxChannel.fhir: FHIR_BATCHING},
        )
        server = _his(his, his_port)
        attempts = {row.id: row.attempts for row in rows()}
        listening = contextlib.ExitStack()
        try:
            for phase in PHASES:
                his.mode = fhir.mode = phase
                if phase == "slow":  # both come up, but answer after the send timeout
                    await server.start()
                    listening.enter_context(province(fhir, province_port))
                for round_number in range(40 if phase != "well" else 400):
                    if phase != "well" and round_number % 4 == 0:
                        add_messages(2)  # the clinics and the stabiliser keep producing
                    failed_at = clock()
                    await worker.run_once()
                    for row in rows():
                        if row.attempts > attempts.get(row.id, 0) and row.status == "pending":
                            next_at = row.next_attempt_at.replace(tzinfo=UTC)
                            spacing.append((next_at - failed_at).total_seconds())
                        attempts[row.id] = row.attempts
                    clock.now += STEP
                    if phase == "well" and all(r.status == OutboxStatus.delivered for r in rows()):
                        break
                pending_by_phase[phase] = sum(1 for r in rows() if r.status == "pending")
        finally:
            await server.stop(grace=1)
            await upstream.aclose()
            listening.close()

    asyncio.run(run())

    final = rows()
    print(
        f"outbox faults: {len(final)} messages, pending after each phase {pending_by_phase}, "
        f"{len(spacing)} failures, longest wait {max(spacing):.2f} s (bound {BACKOFF_MAX} s)"
    )
    assert {row.status for row in final} == {OutboxStatus.delivered}  # nothing lost, none dead
    assert pending_by_phase["down"] < pending_by_phase["slow"] < pending_by_phase["errors"]
    assert spacing and max(spacing) <= BACKOFF_MAX  # bounded, exactly (the test clock)
    assert max(spacing) > BACKOFF_MAX / 2  # and the bound was actually reached
    for receiver, channel in ((his, OutboxChannel.hl7), (fhir, OutboxChannel.fhir)):
        assert list(dict.fromkeys(receiver.seen)) == queued[channel]  # each once, in order
    database.dispose()
