"""The database locked for longer than the busy timeout: clean errors to senders, then recovery.

A second connection holds ``BEGIN EXCLUSIVE`` on the hub's SQLite file while a
clinic sends an order (MLLP) and a modality an image (C-STORE). Each must get
an answer it understands, an AE ACK and a DICOM failure status, within its
own timeout, and once the lock is gone the same hub process takes the next
message and image without a restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from bench.mllp import orm
from hl7.er7 import parse_message
from hl7.mllp import MllpClient
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.settings import Settings
from tests.conftest import free_port
from tests.fhir_hub import huren
from tests.hub_helpers import start_hub

pytestmark = pytest.mark.slow

BUSY_TIMEOUT = 1.0  # seconds the hub waits for the lock before it answers with an error
HELD = 4.0  # the lock is held longer than that, but well under the senders' timeouts
SENDER_TIMEOUT = 15.0
DATA = Path(__file__).parents[1] / "data" / "fhir"


@dataclass
class Hub:
    process: Popen[bytes]
    folder: Path
    mllp_port: int
    dicom_port: int
    http_port: int
    modality_aet: str
    token: str

    @property
    def database(self) -> Path:
        return self.folder / "huren.db"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database, settings=settings, options=DemoOptions(seed=5, exams=30, progress=False)
    )
    database.dispose()
    with sqlite3.connect(tmp_path / "huren.db") as connection:
        aet = connection.execute(
            "SELECT ae_title FROM facility_ae_title WHERE modality = 'CT' ORDER BY id LIMIT 1"
        ).fetchone()[0]
    token = huren(
        tmp_path, "token", "create", "--client", "lock-test", "--scope", "system/*.write"
    ).splitlines()[-1]
    mllp_port, dicom_port, http_port = free_port(), free_port(), free_port()
    process = start_hub(
        tmp_path,
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        settings={"database_busy_timeout": str(BUSY_TIMEOUT)},
    )
    try:
        yield Hub(process, tmp_path, mllp_port, dicom_port, http_port, aet, token)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _ct(study: str) -> Dataset:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.StudyInstanceUID = study
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def _c_store(hub: Hub, dataset: Dataset) -> int:
    """One C-STORE on its own association; the status, or -1 when none came."""
    ae = AE(ae_title=hub.modality_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = SENDER_TIMEOUT
    ae.add_requested_context(CTImageStorage, dataset.file_meta.TransferSyntaxUID)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", hub.dicom_port, ae_title="HUREN")
    assert association.is_established
    try:
        status = association.send_c_store(dataset)
        return int(status.Status) if status and "Status" in status else -1
    finally:
        association.release()


def _c_echo(hub: Hub) -> int:
    ae = AE(ae_title=hub.modality_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = SENDER_TIMEOUT
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", hub.dicom_port, ae_title="HUREN")
    assert association.is_established
    try:
        status = association.send_c_echo()
        return int(status.Status) if status and "Status" in status else -1
    finally:
        association.release()


def _post_bundle(hub: Hub) -> httpx.Response:
    patient = json.loads((DATA / "patient-example.json").read_text())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }
    return httpx.post(
        f"http://127.0.0.1:{hub.http_port}/fhir",
        json=bundle,
        headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/fhir+json"},
        timeout=SENDER_TIMEOUT,
    )


async def _send(hub: Hub, message: bytes) -> str:
    async with MllpClient("127.0.0.1", hub.mllp_port, timeout=SENDER_TIMEOUT) as client:
        msa = parse_message(await client.send(message)).segment("MSA")
    assert msa is not None
    return msa.get(1)


def test_a_locked_database_gives_clean_errors_and_the_hub_recovers(hub: Hub) -> None:
    study = generate_uid()
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        holder = sqlite3.connect(hub.database, isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(HELD + 30)
            holder.execute("ROLLBACK")
        finally:
            holder.close()

    lock = threading.Thread(target=hold_the_lock)
    lock.start()
    try:
        assert locked.wait(10)
        results: dict[str, object] = {}
        store = threading.Thread(target=lambda: results.update(store=_c_store(hub, _ct(study))))
        store.start()
        results["ack"] = asyncio.run(_send(hub, orm(7_001)))
        store.join(SENDER_TIMEOUT + 5)
        assert not store.is_alive(), "the C-STORE hung on the locked database"
        results["echo"] = _c_echo(hub)  # the DICOM side still answers what needs no writing
        results["fhir"] = _post_bundle(hub)
    finally:
        release.set()
        lock.join(30)

    assert results["ack"] == "AE"
    assert results["store"] == 0xA700  # refused: out of resources, for now
    assert results["echo"] == 0x0000
    refused = results["fhir"]
    assert isinstance(refused, httpx.Response) and refused.status_code == 503
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert refused.headers["Retry-After"]

    with sqlite3.connect(hub.database) as connection:
        assert connection.execute(
            "SELECT count(*) FROM study WHERE study_instance_uid = ?", (study,)
        ).fetchone() == (0,)
        assert connection.execute(
            "SELECT count(*) FROM fhir_resource WHERE resource_type = 'Patient' "
            "AND origin = 'lock-test'"
        ).fetchone() == (0,)
    assert not [p for p in (hub.folder / "dicom").rglob("*") if p.is_file()]  # no half files

    # The same process, without a restart: the re-sent order and image are taken.
    assert asyncio.run(_send(hub, orm(7_001))) == "AA"
    assert _c_store(hub, _ct(study)) == 0x0000
    assert _post_bundle(hub).status_code == 200
    with sqlite3.connect(hub.database) as connection:
        placers = connection.execute(
            "SELECT count(*) FROM exam_order WHERE placer_number = ?", (f"P{7_001:09d}",)
        ).fetchone()[0]
        statuses = [
            row[0]
            for row in connection.execute(
                "SELECT status FROM inbound_message WHERE control_id = ? ORDER BY id",
                (f"BENCH{7_001:08d}",),
            )
        ]
    assert placers == 1
    assert statuses[-1] == "accepted"
