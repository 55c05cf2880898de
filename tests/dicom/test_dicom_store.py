"""The file store: layout, atomic writes, crashes, full disks, and encoding as received."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from io import BytesIO
from pathlib import Path

import pytest
from dicom_helpers import ZONE, sample
from pydicom import dcmread

from dicom.errors import InvalidInstance, StorageFull
from dicom.instance import InstanceFacts, facts_from, read_instance
from dicom.store import FileStore, encode_received, part10_prefix

ROOT = Path(__file__).resolve().parents[2]


def _received(name: str) -> tuple[bytes, InstanceFacts]:
    encoded = sample(name).read_bytes()
    return encoded, facts_from(read_instance(encoded), zone=ZONE)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


def test_write_lays_out_study_series_sop(tmp_path: Path) -> None:
    encoded, facts = _received("CT_small.dcm")
    stored = FileStore(tmp_path).write(encoded, facts)
    assert stored.path == (
        f"dicom/{facts.study_instance_uid}/{facts.series_instance_uid}/{facts.sop_instance_uid}.dcm"
    )
    assert (tmp_path / stored.path).read_bytes() == encoded
    assert stored.size_bytes == len(encoded)
    assert stored.sha256 == hashlib.sha256(encoded).hexdigest()
    assert _leftovers(tmp_path) == []


def test_versions_get_their_own_names(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    encoded, facts = _received("CT_small.dcm")
    first = store.write(encoded, facts)
    second = store.write(encoded + b"\0\0", facts, version=2)
    assert second.path == first.path.removesuffix(".dcm") + ".v2.dcm"
    assert store.read(first.path) == encoded
    assert store.read(second.path) == encoded + b"\0\0"
    with pytest.raises(ValueError):
        store.write(encoded, facts, version=0)


def test_read_exists_and_open_dataset(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    encoded, facts = _received("MR_small_jp2klossless.dcm")
    stored = store.write(encoded, facts)
    assert store.exists(stored.path)
    assert not store.exists("dicom/1.2/1.3/1.4.dcm")
    dataset = store.open_dataset(stored.path)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert dataset.PixelData == dcmread(sample("MR_small_jp2klossless.dcm")).PixelData


def test_remove(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    encoded, facts = _received("CT_small.dcm")
    stored = store.write(encoded, facts)
    assert store.remove(stored.path)
    assert not store.exists(stored.path)
    assert not store.remove(stored.path)
    with pytest.raises(ValueError):
        store.remove("../outside.dcm")


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "dicom/../../x", ""])
def test_paths_stay_under_the_root(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError):
        FileStore(tmp_path).read(path)


def test_uids_are_checked_before_they_become_file_names(tmp_path: Path) -> None:
    encoded, facts = _received("CT_small.dcm")
    hostile = InstanceFacts(**{**facts.__dict__, "series_instance_uid": "../../../tmp"})
    with pytest.raises(InvalidInstance):
        FileStore(tmp_path).write(encoded, hostile)
    assert not any(tmp_path.rglob("*.dcm"))


def test_full_disk_raises_storage_full_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded, facts = _received("CT_small.dcm")
    store = FileStore(tmp_path)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageFull) as caught:
        store.write(encoded, facts)
    assert caught.value.status == 0xA700
    assert not store.exists(store.relative_path(facts))
    assert _leftovers(tmp_path) == []


def test_full_disk_on_fsync_is_storage_full_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded, facts = _received("CT_small.dcm")
    store = FileStore(tmp_path)
    store.write(encoded, facts, version=2)  # the directories exist: the file's fsync fails

    def full(fd: int) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageFull):
        store.write(encoded, facts)
    assert _leftovers(tmp_path) == []
    assert not store.exists(store.relative_path(facts))


def test_full_disk_creating_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded, facts = _received("CT_small.dcm")

    def full(path: object, mode: int = 0o777) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "mkdir", full)
    with pytest.raises(StorageFull):
        FileStore(tmp_path).write(encoded, facts)


def test_other_write_errors_propagate_and_clean_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded, facts = _received("CT_small.dcm")

    def broken(fd: int, data: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", broken)
    with pytest.raises(OSError) as caught:
        FileStore(tmp_path).write(encoded, facts)
    assert not isinstance(caught.value, StorageFull)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("moment", ["before_fsync", "before_rename"])
def test_crash_mid_write_leaves_only_a_temporary_that_is_swept(tmp_path: Path, moment: str) -> None:
    """A process killed mid-write (os._exit) never leaves a file under the final name."""
    encoded, facts = _received("CT_small.dcm")
    target = "fsync" if moment == "before_fsync" else "replace"
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from zoneinfo import ZoneInfo
        from dicom.instance import facts_from, read_instance
        from dicom.store import FileStore
        encoded = Path({str(sample("CT_small.dcm"))!r}).read_bytes()
        facts = facts_from(read_instance(encoded), zone=ZoneInfo("Asia/Shanghai"))
        store = FileStore(Path({str(tmp_path)!r}))
        store.write(encoded, facts, version=2)  # directories in place
        os.{target} = lambda *args: os._exit(9)
        store.write(encoded, facts)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 9, done.stderr
    store = FileStore(tmp_path)
    assert not store.exists(store.relative_path(facts))
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].name.startswith(".")
    assert store.sweep_temporary() == 1
    assert _leftovers(tmp_path) == []
    assert store.sweep_temporary() == 0
    # The archive still works after the sweep.
    assert store.read(store.write(encoded, facts).path) == encoded


def test_sweep_on_an_empty_root(tmp_path: Path) -> None:
    assert FileStore(tmp_path / "nothing-yet").sweep_temporary() == 0


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_jp2klossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb_rle.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_encode_received_keeps_the_transfer_syntax(name: str) -> None:
    original = dcmread(sample(name))
    encoded = encode_received(original, original.file_meta)
    again = read_instance(encoded)
    assert again.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert again.PixelData == original.PixelData
    assert again.SOPInstanceUID == original.SOPInstanceUID
    assert encoded[128:132] == b"DICM"


def test_encode_received_fills_missing_media_storage_uids() -> None:
    original = dcmread(sample("CT_small.dcm"))
    meta = original.file_meta
    del meta.MediaStorageSOPInstanceUID
    again = read_instance(encode_received(original, meta))
    assert again.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID


def test_encode_received_needs_a_transfer_syntax() -> None:
    original = dcmread(sample("CT_small.dcm"))
    meta = original.file_meta
    del meta.TransferSyntaxUID
    with pytest.raises(InvalidInstance):
        encode_received(original, meta)


def test_part10_prefix_is_what_pynetdicom_writes() -> None:
    from pynetdicom.dsutils import create_file_meta, encode_file_meta

    meta = create_file_meta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
        transfer_syntax="1.2.840.10008.1.2.4.90",
    )
    expected = b"\0" * 128 + b"DICM" + encode_file_meta(meta)
    assert (
        part10_prefix(
            "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1", "1.2.840.10008.1.2.4.90"
        )
        == expected
    )
    with_source = part10_prefix("1.2.3", "1.2.4", "1.2.840.10008.1.2.1", source_aet="CLINIC01")
    received = dcmread(BytesIO(with_source + b"\x08\x00\x16\x00UI\x06\x001.2.3\0"))
    assert received.file_meta.SourceApplicationEntityTitle == "CLINIC01"
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
