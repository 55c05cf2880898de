"""`kill -9` of the hub during C-STORE: every instance that got success is on disk and indexed."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from integration.database import Database
from integration.settings import Settings
from tests.conftest import free_port
from tests.hub_helpers import add_township, start_hub

pytestmark = [
    pytest.mark.slow,
    # pynetdicom leaves its socket to the garbage collector when the peer dies mid-association.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def test_acknowledged_instances_survive_kill_9(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        add_township(connection, "QL-T03", ae_title="QLT03CT")
    database.dispose()
    dicom_port, http_port = free_port(), free_port()
    hub = start_hub(tmp_path, http_port=http_port, dicom_port=dicom_port)

    template = dcmread(get_testdata_file("CT_small.dcm"))
    stored: list[str] = []
    stop = threading.Event()

    def modality() -> None:
        ae = AE(ae_title="QLT03CT")
        ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 5
        ae.add_requested_context(CTImageStorage, template.file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", dicom_port, ae_title="HUREN")
        if not assoc.is_established:
            return
        study = generate_uid()
        for _ in range(5000):
            if stop.is_set() or not assoc.is_established:
                break
            dataset = template.copy()
            dataset.StudyInstanceUID = study
            dataset.SOPInstanceUID = generate_uid()
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            status = assoc.send_c_store(dataset)
            if status and status.Status == 0x0000:
                stored.append(dataset.SOPInstanceUID)
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()  # the hub died: close our end now, not at garbage collection
        ae.shutdown()

    threads_before = threading.active_count()
    sender = threading.Thread(target=modality)
    sender.start()
    deadline = time.monotonic() + 60
    while len(stored) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(hub.pid, signal.SIGKILL)
    hub.wait(timeout=10)
    stop.set()
    sender.join(timeout=60)
    deadline = time.monotonic() + 15  # pynetdicom's own threads wind down after the abort
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    assert len(stored) >= 100

    with sqlite3.connect(tmp_path / "huren.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        indexed = dict(connection.execute("SELECT sop_instance_uid, path FROM instance"))
    missing = [uid for uid in stored if uid not in indexed]
    assert missing == []
    for uid in stored:
        assert dcmread(tmp_path / indexed[uid]).SOPInstanceUID == uid  # complete, readable

    # A restart sweeps temporary files; no half-written file is ever under a final name.
    hub = start_hub(tmp_path, http_port=http_port, dicom_port=dicom_port)
    hub.send_signal(signal.SIGTERM)
    hub.wait(timeout=30)
    files = [p for p in (tmp_path / "dicom").rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    for path in files:
        dcmread(path)  # every file there reads as a whole DICOM instance
    gc.collect()  # collect pynetdicom's abandoned socket here, where its warning is expected
