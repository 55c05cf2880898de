"""Disk full during C-STORE: a failure status, no half files, and the hub keeps answering.

The hub's data directory (where the DICOM files go) is a small tmpfs of its
own; the database lives elsewhere (HUREN_DATABASE_URL), as a production
deployment keeps them. A filler file takes most of the space, the modality
sends until the hub refuses, then the filler is removed and sending resumes
on the same, unrestarted hub.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from integration.database import Database
from integration.settings import Settings
from tests.conftest import free_port
from tests.hub_helpers import add_township, start_hub

pytestmark = pytest.mark.slow

DCMTK = Path("/usr/bin")
AET = "QLT07CT"
SIZE = "2m"  # the tmpfs; the filler leaves a few CT_small instances of room
ROOM = 400 * 1024


@dataclass
class FullHub:
    process: subprocess.Popen[bytes]
    data: Path
    database: Path
    dicom_port: int
    filler: Path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of SIZE mounted for this test (needs root; skipped with the reason if not)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def hub(tmp_path: Path, small_disk: Path) -> Iterator[FullHub]:
    database_file = tmp_path / "db" / "huren.db"
    url = f"sqlite:///{database_file}"
    settings = Settings(data_dir=small_disk, database_url=url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        add_township(connection, "QL-T07", ae_title=AET)
    database.dispose()
    dicom_port = free_port()
    process = start_hub(
        small_disk, http_port=free_port(), dicom_port=dicom_port, settings={"database_url": url}
    )
    free = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(free.f_bavail * free.f_frsize - ROOM, 0))
    try:
        yield FullHub(process, small_disk, database_file, dicom_port, filler)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _instance(study: str) -> Dataset:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.StudyInstanceUID = study
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def _association(hub: FullHub) -> object:
    ae = AE(ae_title=AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    ae.add_requested_context(
        CTImageStorage, dcmread(get_testdata_file("CT_small.dcm")).file_meta.TransferSyntaxUID
    )
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", hub.dicom_port, ae_title="HUREN")
    assert association.is_established
    return association


def _files(hub: FullHub) -> list[Path]:
    return [p for p in (hub.data / "dicom").rglob("*") if p.is_file()]


def test_a_full_disk_refuses_cleanly_and_storing_resumes_when_space_is_freed(
    hub: FullHub,
) -> None:
    study = generate_uid()
    stored: list[str] = []
    refused: list[tuple[str, int]] = []
    association = _association(hub)
    try:
        for _ in range(200):  # a bounded loop: the room fits about ten
            dataset = _instance(study)
            status = association.send_c_store(dataset)  # type: ignore[attr-defined]
            assert status and "Status" in status, "no status: the hub must always answer"
            if status.Status == 0x0000:
                stored.append(dataset.SOPInstanceUID)
                continue
            refused.append((dataset.SOPInstanceUID, int(status.Status)))
            if len(refused) >= 3:
                break
        assert association.send_c_echo().Status == 0x0000  # type: ignore[attr-defined]
    finally:
        association.release()  # type: ignore[attr-defined]
    assert stored, "the room left should have taken a few instances"
    assert len(refused) == 3
    assert {status for _uid, status in refused} == {0xA700}  # Refused: Out of Resources

    # dcmtk's storescu too gets the failure, as a status (not a dropped association)
    probe = hub.data.parent / "probe.dcm"
    _instance(study).save_as(probe, enforce_file_format=True)
    done = subprocess.run(
        [
            str(DCMTK / "storescu"),
            "-aet",
            AET,
            "-aec",
            "HUREN",
            "-v",
            "-to",
            "15",
            "127.0.0.1",
            str(hub.dicom_port),
            str(probe),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = (done.stdout + done.stderr).lower()
    assert done.returncode != 0 and "refused: outofresources" in said, said

    with sqlite3.connect(hub.database) as connection:
        indexed = dict(connection.execute("SELECT sop_instance_uid, path FROM instance"))
    assert sorted(indexed) == sorted(stored)  # no row for a refused instance
    on_disk = _files(hub)
    assert not [p for p in on_disk if p.name.endswith(".tmp")], "a half file stayed behind"
    assert sorted(str(p.relative_to(hub.data)) for p in on_disk) == sorted(indexed.values())
    for path in on_disk:
        assert dcmread(path).SOPInstanceUID in stored  # whole, readable files only

    # Space is freed: the same hub takes the refused instances on a new association.
    hub.filler.unlink()
    association = _association(hub)
    try:
        for uid, _status in refused:
            dataset = _instance(study)
            dataset.SOPInstanceUID = uid
            dataset.file_meta.MediaStorageSOPInstanceUID = uid
            assert association.send_c_store(dataset).Status == 0x0000  # type: ignore[attr-defined]
    finally:
        association.release()  # type: ignore[attr-defined]
    with sqlite3.connect(hub.database) as connection:
        count = connection.execute("SELECT count(*) FROM instance").fetchone()[0]
        study_row = connection.execute(
            "SELECT num_instances FROM study WHERE study_instance_uid = ?", (study,)
        ).fetchone()
    assert count == len(stored) + len(refused)
    assert study_row == (count,)
