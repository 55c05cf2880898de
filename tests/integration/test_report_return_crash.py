"""`kill -9` of the hub while its outbox sends ORU^R01 to a clinic HIS.

Delivery is at-least-once: a crash between the HIS's ACK and the hub's
record of it means that message is sent once more after the restart, with
the same bytes and so the same MSH-10. The HIS deduplicates by MSH-10 (as
the HL7 rules ask a receiver to), so what counts is the distinct control
ids it saw: every queued report version exactly once, in queue order, and
each report's versions in order. Re-sends are counted and shown.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from hl7.er7 import parse_message
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.report_return import queue_report_return
from integration.settings import Settings
from models import metadata
from tests.conftest import free_port
from tests.hub_helpers import ClinicHis, start_hub

pytestmark = pytest.mark.slow

T = metadata.tables
FAST_RETRIES = {
    "outbox_backoff_seconds": "0.1",
    "outbox_backoff_max_seconds": "0.5",
    "outbox_poll_seconds": "0.1",
    "outbox_max_attempts": "1000",
}


def _queue_reports(folder: Path, his_port: int) -> list[str]:
    """Every final report's ORU, then a correction (version 3) of every fifth: the control ids."""
    settings = Settings(data_dir=folder)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=11, exams=300, until=date(2026, 11, 20), progress=False),
    )
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        connection.execute(update(T["facility"]).values(hl7_host="127.0.0.1", hl7_port=his_port))
        connection.execute(text("DELETE FROM outbox WHERE channel = 'hl7'"))
        finals = [
            row.id
            for row in connection.execute(
                text(
                    "SELECT id FROM report WHERE status = 'final' AND order_id IS NOT NULL "
                    "ORDER BY id"
                )
            )
        ]
        for report_id in finals:
            assert queue_report_return(connection, report_id=report_id, now=now, settings=settings)
        for report_id in finals[::5]:
            connection.execute(
                update(T["report"])
                .where(T["report"].c.id == report_id)
                .values(status="corrected", version=T["report"].c.version + 1, amended_at=now)
            )
            assert queue_report_return(connection, report_id=report_id, now=now, settings=settings)
        queued = [
            row.payload
            for row in connection.execute(
                text("SELECT payload FROM outbox WHERE channel = 'hl7' ORDER BY id")
            )
        ]
    database.dispose()
    return [parse_message(bytes(payload)).control_id for payload in queued]


def _outbox(database: Path) -> dict[str, int]:
    with sqlite3.connect(database, timeout=30) as connection:
        rows = connection.execute(
            "SELECT status, count(*) FROM outbox WHERE channel = 'hl7' GROUP BY 1"
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def _wait(condition: Any, *, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def his_port() -> Iterator[int]:
    yield free_port()


def test_every_report_version_reaches_the_his_once_in_order_through_a_kill(
    tmp_path: Path, his_port: int
) -> None:
    queued = _queue_reports(tmp_path, his_port)
    assert len(queued) > 60, "the seed should have finalised enough reports to matter"
    assert len(set(queued)) == len(queued)
    http_port = free_port()
    database = tmp_path / "huren.db"

    with ClinicHis(his_port, delay=0.01) as his:
        hub = start_hub(tmp_path, http_port=http_port, settings=FAST_RETRIES)
        try:
            _wait(lambda: len(his.control_ids) >= len(queued) // 3, limit=60, what="the first ORUs")
            os.kill(hub.pid, signal.SIGKILL)  # mid-stream: an ORU may be ACKed but not recorded
            hub.wait(timeout=10)
            before_restart = len(his.control_ids)
            left = _outbox(database)
            assert left.get("pending", 0) + left.get("in_flight", 0) > 0, "killed too late"

            hub = start_hub(tmp_path, http_port=http_port, settings=FAST_RETRIES)
            _wait(
                lambda: set(_outbox(database)) == {"delivered"},
                limit=120,
                what="the outbox to drain after the restart",
            )
        finally:
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                hub.wait(timeout=30)

    assert _outbox(database) == {"delivered": len(queued)}
    distinct = list(dict.fromkeys(his.control_ids))  # first sight of each control id, in order
    resent = len(his.control_ids) - len(distinct)
    print(
        f"ORU kill -9: {len(queued)} queued, {len(his.control_ids)} received, "
        f"{len(distinct)} distinct, "
        f"{resent} re-sent after the crash (killed after {before_restart})"
    )
    assert distinct == queued  # every version exactly once, in queue order
    for report_versions in _versions_by_report(distinct).values():
        assert report_versions == sorted(report_versions)
    # Re-sends are the crash window only: messages the HIS took before the kill, whose
    # delivery the hub had not recorded yet; each at most once more, with the same bytes.
    times = Counter(his.control_ids)
    repeated = [control_id for control_id, n in times.items() if n > 1]
    assert max(times.values()) <= 2
    assert set(repeated) <= set(his.control_ids[:before_restart])
    assert all(len(his.payloads[control_id]) == 1 for control_id in repeated)


def _versions_by_report(control_ids: list[str]) -> dict[int, list[int]]:
    versions: dict[int, list[int]] = {}
    for control_id in control_ids:  # HR<report id>V<version>
        report, _, version = control_id.removeprefix("HR").partition("V")
        versions.setdefault(int(report), []).append(int(version))
    return versions
