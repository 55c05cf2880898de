"""`kill -9` of the hub while clinics send orders: every AA-acknowledged message survives."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bench.mllp import orm
from hl7.er7 import parse_message
from hl7.mllp import MllpClient
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.settings import Settings
from tests.conftest import free_port
from tests.hub_helpers import start_hub

pytestmark = pytest.mark.slow


async def _send_until_killed(port: int, offset: int, acked: list[str], count: int) -> None:
    try:
        async with MllpClient("127.0.0.1", port, timeout=10) as client:
            for n in range(count):
                reply = await client.send(orm(offset + n))
                msa = parse_message(reply).segment("MSA")
                if msa is not None and msa.get(1) == "AA":
                    acked.append(msa.get(2))
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return  # the hub died under us: what was acknowledged must be there


def test_every_acknowledged_message_survives_kill_9(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database, settings=settings, options=DemoOptions(seed=5, exams=50, progress=False)
    )
    database.dispose()
    mllp_port, http_port = free_port(), free_port()
    hub = start_hub(tmp_path, http_port=http_port, mllp_port=mllp_port)
    acked: list[str] = []

    async def load() -> None:
        senders = [
            asyncio.create_task(_send_until_killed(mllp_port, k * 100_000, acked, 5_000))
            for k in range(4)
        ]
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        os.kill(hub.pid, signal.SIGKILL)  # mid-stream, with messages in flight
        await asyncio.wait_for(asyncio.gather(*senders), timeout=30)

    asyncio.run(load())
    hub.wait(timeout=10)
    assert len(acked) >= 300

    database_file = tmp_path / "huren.db"
    with sqlite3.connect(database_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {
            row[0]
            for row in connection.execute(
                "SELECT control_id FROM inbound_message WHERE status = 'accepted'"
            )
        }
        orders = {row[0] for row in connection.execute("SELECT placer_number FROM exam_order")}
    missing = [control_id for control_id in acked if control_id not in stored]
    assert missing == []
    for control_id in acked:
        assert f"P{int(control_id.removeprefix('BENCH')):09d}" in orders

    # After a restart the clinics re-send what got no ACK: nothing is applied twice.
    hub = start_hub(tmp_path, http_port=http_port, mllp_port=mllp_port)
    try:

        async def resend() -> list[str]:
            codes = []
            async with MllpClient("127.0.0.1", mllp_port, timeout=10) as client:
                for control_id in acked[:50]:
                    n = int(control_id.removeprefix("BENCH"))
                    codes.append(parse_message(await client.send(orm(n))).segment("MSA").get(1))  # type: ignore[union-attr]
            return codes

        assert set(asyncio.run(resend())) == {"AA"}
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
    with sqlite3.connect(database_file) as connection:
        placers = [row[0] for row in connection.execute("SELECT placer_number FROM exam_order")]
    assert len(placers) == len(set(placers))
