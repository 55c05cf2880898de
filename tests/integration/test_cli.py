"""The operator commands as a person runs them: `huren hl7 replay`, `outbox`, `dicom …`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from pydicom.data import get_testdata_file
from sqlalchemy import insert, select, text, update

from integration.database import Database
from integration.directory import Directory
from integration.intake import Intake
from integration.outbox import enqueue
from integration.settings import Settings
from models import metadata
from models.enums import OutboxChannel, OutboxStatus
from tests.hub_helpers import township_region

T = metadata.tables
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "hl7" / "orm_o01_v231_obr18.hl7"


def huren(hub: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The command run against ``hub``'s data directory and database, as an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env["HUREN_DATA_DIR"] = str(hub.data_dir)
    env["HUREN_DATABASE_URL"] = hub.database_url
    return subprocess.run(
        [sys.executable, "-m", "integration.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _region(folder: Path, database_url: str) -> tuple[Database, Settings]:
    return township_region(folder, database_url, code="ZAZWSY", ae_title="ZAZWSYCT")


def test_hl7_replay_applies_a_stored_failure_after_the_fix(
    tmp_path: Path, database_url: str
) -> None:
    database, settings = _region(tmp_path, database_url)

    async def send() -> bytes:
        intake = Intake(database=database, directory=Directory(database.engine), settings=settings)
        await intake.start()
        try:
            return await intake.handle(SAMPLE.read_bytes(), "127.0.0.1:1")
        finally:
            await intake.stop()

    assert b"MSA|AE|" in asyncio.run(send())  # CT0101 is not in the catalogue yet
    with database.engine.begin() as connection:
        exam_id = connection.execute(
            select(T["exam_type"].c.id).where(T["exam_type"].c.code == "CT-CHEST-PLAIN")
        ).scalar_one()
        connection.execute(
            insert(T["exam_code_alias"]).values(
                facility_id=None, code="CT0101", exam_type_id=exam_id
            )
        )
    replayed = huren(settings, "hl7", "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "ZA20240305000123: applied" in replayed.stdout
    assert "1 of 1 stored messages applied" in replayed.stdout
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM exam_order")).scalar_one() == 1
    again = huren(settings, "hl7", "replay")
    assert "0 of 0 stored messages applied" in again.stdout
    database.dispose()


def test_outbox_status_and_retry(tmp_path: Path, database_url: str) -> None:
    database, settings = _region(tmp_path, database_url)
    assert "the outbox is empty" in huren(settings, "outbox", "status").stdout
    with database.engine.begin() as connection:
        enqueue(
            connection,
            channel=OutboxChannel.hl7,
            destination="mllp://127.0.0.1:9",
            idempotency_key="oru:1:v2",
            payload=b"MSH",
            now=datetime.now(UTC),
        )
        connection.execute(
            update(T["outbox"]).values(status=OutboxStatus.dead, attempts=12, last_error="refused")
        )
    status = huren(settings, "outbox", "status")
    assert "hl7: 0 pending, 0 in flight, 0 delivered, 1 dead" in status.stdout
    retried = huren(settings, "outbox", "retry")
    assert "1 dead-lettered messages queued again" in retried.stdout
    assert "hl7: 1 pending" in huren(settings, "outbox", "status").stdout
    database.dispose()


def test_dicom_import_then_reconcile_by_hand(tmp_path: Path, database_url: str) -> None:
    database, settings = _region(tmp_path / "hub", database_url)
    folder = tmp_path / "history"
    folder.mkdir()
    ct = get_testdata_file("CT_small.dcm", download=False)
    assert ct is not None
    shutil.copy(ct, folder / "ct.dcm")
    (folder / "readme.txt").write_text("not DICOM")

    imported = huren(settings, "dicom", "import", str(folder), "--facility", "ZAZWSY", "--quiet")
    assert imported.returncode == 1  # one file was refused, and the exit code says so
    assert "1 instances stored, 1 files refused" in imported.stdout
    waiting = huren(settings, "dicom", "unmatched")
    assert "1 studies wait for reconciliation" in waiting.stdout
    study_uid = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert study_uid in waiting.stdout

    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        facility_id = connection.execute(text("SELECT id FROM facility")).scalar_one()
        exam_id = connection.execute(text("SELECT id FROM exam_type LIMIT 1")).scalar_one()
        patient_id = connection.execute(
            insert(T["patient"]).values(
                name="王小明",
                sex="M",
                birth_date=date(1970, 1, 1),
                phone="",
                address="",
                needs_review=False,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        connection.execute(
            insert(T["exam_order"]).values(
                accession_number="HAND01",
                placer_number="P-HAND01",
                patient_id=patient_id,
                exam_type_id=exam_id,
                ordering_facility_id=facility_id,
                performing_facility_id=facility_id,
                priority="routine",
                patient_class="O",
                status="scheduled",
                reason="",
                body_part_count=1,
                requested_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    attached = huren(settings, "dicom", "reconcile", study_uid, "HAND01")
    assert attached.returncode == 0, attached.stderr
    assert "0 studies wait" in huren(settings, "dicom", "unmatched").stdout
    with database.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT s.reading_status, o.status FROM study s JOIN exam_order o "
                "ON o.id = s.order_id"
            )
        ).one()
    assert tuple(row) == ("awaiting_preliminary", "in_progress")
    missing = huren(settings, "dicom", "reconcile", study_uid, "NOPE")
    assert missing.returncode == 2 and "no order with accession NOPE" in missing.stderr
    database.dispose()
