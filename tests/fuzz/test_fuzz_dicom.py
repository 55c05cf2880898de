"""Mutated DICOM data sets sent to the running hub: always a status, never half a study.

Budget: 200 mutated CT_small instances over pynetdicom (the file meta kept,
the data set's bytes edited and streamed as they are, so the hub's own
parser meets them) and 12 over dcmtk's storescu. Afterwards every indexed
instance is a whole readable file, every file is indexed, no temporary file
is left, and each study's counts match its rows.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections import Counter
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification

from tests.fuzz.conftest import FuzzHub, Tally
from tests.fuzz.mutate import BYTE_EDITS, mutate_bytes

pytestmark = pytest.mark.slow

SEED = 20261206
DCMTK = Path("/usr/bin")
CASES = 200
DCMTK_CASES = 12


def _instance(study: tuple[str, str]) -> bytes:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study  # each study its own series
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _mutated(encoded: bytes, rng: random.Random) -> bytes:
    """The data set after the file meta edited; the meta (and the preamble) left intact."""
    (meta_length,) = struct.unpack("<I", encoded[140:144])
    body_start = 144 + meta_length
    # half the cases keep every length (bit flips only): those reach the data set's values
    kinds = ("flip",) if rng.random() < 0.5 else BYTE_EDITS
    body = mutate_bytes(encoded[body_start:], rng, edits=rng.randint(1, 4), kinds=kinds)
    return encoded[:body_start] + body


def _associate(hub: FuzzHub) -> Association:
    ae = AE(ae_title=hub.modality_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", hub.dicom_port, ae_title="HUREN")
    assert association.is_established
    return association


def test_mutated_instances_always_get_a_status_and_leave_no_half_study(
    fuzz_hub: FuzzHub, tally: Tally, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # bytes as they are
    rng = random.Random(SEED)
    studies = [(generate_uid(), generate_uid()) for _ in range(5)]
    statuses: Counter[int] = Counter()
    association = _associate(fuzz_hub)
    try:
        for case in range(CASES):
            path = tmp_path / f"case-{case}.dcm"
            path.write_bytes(_mutated(_instance(rng.choice(studies)), rng))
            status = association.send_c_store(path)
            assert status and "Status" in status, f"case {case}: no status (seed {SEED})"
            statuses[int(status.Status)] += 1
            if not association.is_established:  # the hub may end a broken association
                association = _associate(fuzz_hub)
        assert association.send_c_echo().Status == 0x0000
    finally:
        association.release()
    tally.add("dicom c-store via pynetdicom (mutation)", CASES)
    print("DICOM fuzz statuses:", {f"0x{s:04X}": n for s, n in sorted(statuses.items())})
    assert statuses[0x0000] and sum(statuses.values()) - statuses[0x0000]

    said: Counter[str] = Counter()
    for case in range(DCMTK_CASES):
        path = tmp_path / f"dcmtk-{case}.dcm"
        path.write_bytes(_mutated(_instance(rng.choice(studies)), rng))
        done = subprocess.run(
            [str(DCMTK / "storescu"), "-v", "-aet", fuzz_hub.modality_aet, "-aec", "HUREN",
             "-to", "20", "-xs", "127.0.0.1", str(fuzz_hub.dicom_port), str(path)],
            capture_output=True, text=True, errors="replace", timeout=60, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        if "Received Store Response" in output:
            said["answered"] += 1
        else:  # storescu found its own file unreadable and gave up before or while sending
            said["refused by storescu"] += 1
        assert fuzz_hub.alive()
    tally.add("dicom c-store via dcmtk storescu (mutation)", DCMTK_CASES)
    print("dcmtk storescu:", dict(said))
    assert said["answered"]
    _assert_archive_consistent(fuzz_hub, [study for study, _series in studies])


def _assert_archive_consistent(hub: FuzzHub, studies: list[str]) -> None:
    archive = hub.folder / "dicom"
    files = {p for p in archive.rglob("*") if p.is_file()}
    assert not [p for p in files if p.name.endswith(".tmp")], "a temporary file was left"
    indexed = dict(hub.query("SELECT path, sop_instance_uid FROM instance"))
    assert {str(p.relative_to(hub.folder)) for p in files} == set(indexed)
    for path, uid in indexed.items():
        assert dcmread(hub.folder / str(path), stop_before_pixels=True).SOPInstanceUID == uid
    marks = ",".join("?" * len(studies))
    for study_id, counted, series_count in hub.query(
        f"SELECT id, num_instances, num_series FROM study WHERE study_instance_uid IN ({marks})",
        *studies,
    ):
        rows = hub.query(
            "SELECT count(DISTINCT sop_instance_uid), count(DISTINCT series_id) FROM instance "
            "WHERE study_id = ?",
            study_id,
        )
        assert rows == [(counted, series_count)], f"study {study_id}: counts and rows differ"
