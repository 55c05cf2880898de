"""ORU^R01 back to the ordering clinic: through the outbox, to a test HIS that is down, then up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from hl7.ack import build_ack
from hl7.er7 import parse_message
from hl7.mllp import MllpServer
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.outbox import OUTBOX, OutboxWorker
from integration.report_return import queue_report_return, send_hl7
from integration.settings import Settings
from models import metadata
from models.enums import OutboxChannel, OutboxStatus
from tests.conftest import free_port
from tests.databases import DemoSnapshots

T = metadata.tables


class ClinicHis:
    """A clinic HIS on 127.0.0.1 that records ORUs and answers with ``answer`` (AA/AE/AR)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[bytes] = []
        self.answers: list[str] = []  # consumed first; then AA
        self.server = MllpServer(self._handle, host="127.0.0.1", port=port)

    async def _handle(self, payload: bytes, _peer: Any) -> bytes:
        self.received.append(payload)
        code = self.answers.pop(0) if self.answers else "AA"
        return build_ack(
            parse_message(payload),
            code=code,
            text="",
            control_id="HIS1",  # type: ignore[arg-type]
            now=datetime.now(UTC),
        )


@pytest.fixture
def region(
    tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots
) -> Iterator[tuple[Database, Settings, int, int]]:
    """A tiny demo county; one final report whose clinic HIS listens on a free port."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        outbox_backoff_seconds=0.05,  # type: ignore[arg-type]
        outbox_backoff_max_seconds=0.2,
        outbox_max_attempts=50,
    )
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=3, exams=300, until=date(2026, 11, 20), progress=False),
    )
    port = free_port()
    with database.engine.begin() as connection:
        report = connection.execute(
            text(
                "SELECT r.id, o.ordering_facility_id FROM report r JOIN exam_order o "
                "ON o.id = r.order_id WHERE r.status = 'final' AND NOT r.critical "
                "ORDER BY r.id LIMIT 1"
            )
        ).one()
        connection.execute(
            update(T["facility"])
            .where(T["facility"].c.id == report.ordering_facility_id)
            .values(hl7_host="127.0.0.1", hl7_port=port)
        )
    yield database, settings, report.id, port
    database.dispose()


def _deliver_until(worker: OutboxWorker, done: Any, limit: float = 20.0) -> None:
    async def loop() -> None:
        deadline = time.monotonic() + limit
        while not done() and time.monotonic() < deadline:
            await worker.run_once()
            await asyncio.sleep(0.05)

    asyncio.run(loop())


def _outbox(database: Database) -> list[Any]:
    with database.engine.connect() as connection:
        return list(connection.execute(select(OUTBOX).order_by(OUTBOX.c.id)))


def test_oru_waits_for_a_his_that_is_down_then_arrives_once(
    region: tuple[Database, Settings, int, int],
) -> None:
    database, settings, report_id, port = region
    with database.engine.begin() as connection:
        assert queue_report_return(
            connection, report_id=report_id, now=datetime.now(UTC), settings=settings
        )
        assert not queue_report_return(
            connection, report_id=report_id, now=datetime.now(UTC), settings=settings
        )
    worker = OutboxWorker(
        database=database,
        settings=settings,
        senders={OutboxChannel.hl7: lambda p: send_hl7(p, settings=settings)},
    )

    asyncio.run(worker.run_once())  # nobody listens yet
    [row] = _outbox(database)
    assert row.status == OutboxStatus.pending and row.attempts == 1
    assert "Connect" in row.last_error or "refused" in row.last_error.lower()

    his = ClinicHis(port)
    his.answers = ["AE"]  # the HIS is up but busy once

    async def with_his() -> None:
        await his.server.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await worker.run_once()
                if _outbox(database)[0].status == OutboxStatus.delivered:
                    break
                await asyncio.sleep(0.05)
        finally:
            await his.server.stop()

    asyncio.run(with_his())
    [row] = _outbox(database)
    assert row.status == OutboxStatus.delivered and row.attempts == 3
    assert len(his.received) == 2 and his.received[0] == his.received[1]  # same bytes re-sent

    oru = parse_message(his.received[-1])
    assert oru.message_type == "ORU^R01"
    assert oru.control_id == f"HR{report_id}V2"
    obr = oru.segment("OBR")
    assert obr is not None and obr.get(25) == "F"
    with database.engine.connect() as connection:
        report = connection.execute(select(T["report"]).where(T["report"].c.id == report_id)).one()
    texts = "".join(seg.get(5) for seg in oru.all("OBX"))
    assert report.impression.splitlines()[0][:10] in texts
    assert report.findings.splitlines()[0][:10] in texts


def test_a_correction_is_a_new_version_sent_as_c(
    region: tuple[Database, Settings, int, int],
) -> None:
    database, settings, report_id, port = region
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        queue_report_return(connection, report_id=report_id, now=now, settings=settings)
        connection.execute(
            update(T["report"])
            .where(T["report"].c.id == report_id)
            .values(
                status="corrected", version=3, impression="更正：右肺下叶小结节。", amended_at=now
            )
        )
        assert queue_report_return(connection, report_id=report_id, now=now, settings=settings)
    worker = OutboxWorker(
        database=database,
        settings=settings,
        senders={OutboxChannel.hl7: lambda p: send_hl7(p, settings=settings)},
    )
    his = ClinicHis(port)

    async def deliver() -> None:
        await his.server.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(his.received) < 2:
                await worker.run_once()
                await asyncio.sleep(0.02)
        finally:
            await his.server.stop()

    asyncio.run(deliver())
    statuses = [parse_message(m).segment("OBR").get(25) for m in his.received]  # type: ignore[union-attr]
    assert statuses == ["F", "C"]  # in order, each version once
    assert [row.status for row in _outbox(database)] == [OutboxStatus.delivered] * 2


def test_a_rejection_by_the_his_is_dead_lettered_with_its_reason(
    region: tuple[Database, Settings, int, int],
) -> None:
    database, settings, report_id, port = region
    with database.engine.begin() as connection:
        queue_report_return(
            connection, report_id=report_id, now=datetime.now(UTC), settings=settings
        )
    worker = OutboxWorker(
        database=database,
        settings=settings,
        senders={OutboxChannel.hl7: lambda p: send_hl7(p, settings=settings)},
    )
    his = ClinicHis(port)
    his.answers = ["AR"]

    async def deliver() -> None:
        await his.server.start()
        try:
            await worker.run_once()
        finally:
            await his.server.stop()

    asyncio.run(deliver())
    [row] = _outbox(database)
    assert row.status == OutboxStatus.dead and "AR" in row.last_error
