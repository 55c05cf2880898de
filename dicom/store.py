"""The archive's file store: one Part-10 file per instance, written atomically.

Layout under the data directory: ``dicom/<study>/<series>/<sop>.dcm``, and a
differing re-send kept as ``<sop>.v2.dcm``, ``<sop>.v3.dcm``… A file is
written to a hidden temporary name under ``dicom/.incoming``, fsynced, renamed
into place and the directory fsynced (:meth:`FileStore.write`, or
``stage``/``publish``/``sync_published`` for a batch), so after a crash a
name either holds a complete file or does not exist; temporaries left behind are removed by
:meth:`FileStore.sweep_temporary` on start. The store knows nothing of the
database: the caller indexes what :meth:`FileStore.write` returns.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

from dicom.errors import InvalidInstance, StorageFull
from dicom.instance import InstanceFacts, is_valid_uid, syntax_flags

__all__ = [
    "ARCHIVE_DIR",
    "FileStore",
    "StagedFile",
    "StoredFile",
    "encode_received",
    "part10_prefix",
]

ARCHIVE_DIR = "dicom"
INCOMING_DIR = ".incoming"  # staged files wait here, under the archive, for their names
_TEMP_SUFFIX = ".tmp"
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_CHUNK = 1 << 20
_DEFER = 64 * 1024  # values above this stay on disk until used (pixel data on retrieve)

log = logging.getLogger("huren.dicom.store")


@dataclass(frozen=True)
class StagedFile:
    """An instance written and fsynced under a temporary name, not yet published."""

    temporary: Path
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class StoredFile:
    """Where an instance landed: ``path`` relative to the store root, with size and SHA-256."""

    path: str
    size_bytes: int
    sha256: str


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """Writes and reads instance files under ``root`` (the hub's data directory)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def relative_path(facts: InstanceFacts, *, version: int = 1) -> str:
        """The store path of one instance version (UIDs are digits and dots only)."""
        for uid in (facts.study_instance_uid, facts.series_instance_uid, facts.sop_instance_uid):
            if not is_valid_uid(uid):
                raise InvalidInstance(f"{uid[:80]!r} is not a UID; refusing it as a file name")
        if version < 1:
            raise ValueError("version starts at 1")
        name = facts.sop_instance_uid + (f".v{version}" if version > 1 else "") + ".dcm"
        return "/".join((ARCHIVE_DIR, facts.study_instance_uid, facts.series_instance_uid, name))

    def write(self, encoded: bytes, facts: InstanceFacts, *, version: int = 1) -> StoredFile:
        """Store ``encoded`` durably under its final name, replacing any file there.

        Raises :class:`StorageFull` (0xA700) when the disk is full; the
        temporary file is removed and nothing appears under the final name.
        """
        staged = self.stage(encoded)
        try:
            stored = self.publish(staged, facts, version=version)
        except BaseException:
            self.discard(staged)
            raise
        self.sync_published([stored])
        return stored

    def stage(self, encoded: bytes) -> StagedFile:
        """Write ``encoded`` to a hidden temporary file and fsync it.

        Staging needs nothing from the data set, so the archive runs it while
        the instance is decoded, and publishes a whole batch under one lock.
        """
        incoming = self.root / ARCHIVE_DIR / INCOMING_DIR
        self._make_directories(incoming)
        temporary = incoming / f".{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        digest = hashlib.sha256(encoded).hexdigest()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(encoded)
                while view:
                    written = os.write(fd, view[:_CHUNK])
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._discard(temporary)
            if exc.errno in _FULL:
                raise StorageFull(f"file store full writing {temporary.name}: {exc}") from exc
            raise
        return StagedFile(temporary=temporary, size_bytes=len(encoded), sha256=digest)

    def publish(self, staged: StagedFile, facts: InstanceFacts, *, version: int = 1) -> StoredFile:
        """Rename a staged file to its final name; durable once :meth:`sync_published` ran."""
        relative = self.relative_path(facts, version=version)
        final = self.root / relative
        try:
            self._make_directories(final.parent)
            os.replace(staged.temporary, final)
        except OSError as exc:
            if exc.errno in _FULL:
                raise StorageFull(f"file store full publishing {relative}: {exc}") from exc
            raise
        return StoredFile(path=relative, size_bytes=staged.size_bytes, sha256=staged.sha256)

    def discard(self, staged: StagedFile) -> None:
        """Drop a staged file that will not be published (a duplicate, or a failure)."""
        self._discard(staged.temporary)

    def sync_published(self, stored: Iterable[StoredFile]) -> None:
        """fsync each directory that received a file once, so the renames survive a crash.

        A failure here means a file is complete under its name but its entry
        may not survive a crash: the caller reports failure and the sender
        retries (a rewrite is harmless).
        """
        for directory in dict.fromkeys(self._resolve(file.path).parent for file in stored):
            try:
                _fsync_directory(directory)
            except OSError as exc:
                if exc.errno in _FULL:
                    raise StorageFull(f"file store full syncing {directory}: {exc}") from exc
                raise

    def _make_directories(self, directory: Path) -> None:
        """Create missing directories, fsyncing each parent so new entries survive a crash."""
        if directory.is_dir():
            return
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir()
                _fsync_directory(path.parent)
            except FileExistsError:
                continue  # another association created (and syncs) it
            except OSError as exc:
                if exc.errno in _FULL:
                    raise StorageFull(f"file store full creating {path}: {exc}") from exc
                raise

    @staticmethod
    def _discard(temporary: Path) -> None:
        try:
            temporary.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove temporary file %s: %s", temporary, exc)

    def _resolve(self, path: str) -> Path:
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"store paths are relative and stay under the root: {path!r}")
        return self.root.joinpath(*relative.parts)

    def read(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()

    def exists(self, path: str) -> bool:
        return self._resolve(path).is_file()

    def remove(self, path: str) -> bool:
        """Delete a stored file (one whose indexing failed); False if it was not there."""
        full = self._resolve(path)
        try:
            full.unlink()
        except FileNotFoundError:
            return False
        _fsync_directory(full.parent)
        return True

    def open_dataset(self, path: str) -> Dataset:
        """The stored instance with its file meta; large values (pixel data) are read on use."""
        return dcmread(self._resolve(path), defer_size=_DEFER)

    def sweep_temporary(self) -> int:
        """Remove temporary files a crash left behind; returns how many. Run before serving."""
        removed = 0
        archive = self.root / ARCHIVE_DIR
        if not archive.is_dir():
            return 0
        for directory, _subdirectories, files in os.walk(archive):
            for name in files:
                if name.startswith(".") and name.endswith(_TEMP_SUFFIX):
                    self._discard(Path(directory) / name)
                    removed += 1
        if removed:
            log.warning("removed %d temporary file(s) left by an interrupted write", removed)
        return removed


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian (0002,xxxx) element; value already padded to even length."""
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def part10_prefix(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    *,
    source_aet: str = "",
    implementation_class_uid: str = PYNETDICOM_IMPLEMENTATION_UID,
    implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION,
) -> bytes:
    """Preamble, ``DICM`` and file meta for a received data set, encoded directly.

    The same meta pynetdicom's ``encoded_dataset()`` writes (plus the
    sending AE as Source Application Entity Title), without pydicom's
    writer: this runs for every C-STORE.
    """
    elements = [
        _meta_element(0x0001, b"OB", b"\x00\x01"),
        _meta_element(0x0002, b"UI", _padded(sop_class_uid, b"\0")),
        _meta_element(0x0003, b"UI", _padded(sop_instance_uid, b"\0")),
        _meta_element(0x0010, b"UI", _padded(transfer_syntax_uid, b"\0")),
        _meta_element(0x0012, b"UI", _padded(implementation_class_uid, b"\0")),
    ]
    if implementation_version:
        elements.append(_meta_element(0x0013, b"SH", _padded(implementation_version, b" ")))
    if source_aet:
        elements.append(_meta_element(0x0016, b"AE", _padded(source_aet, b" ")))
    body = b"".join(elements)
    length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return b"\0" * 128 + b"DICM" + length + body


def encode_received(dataset: Dataset, file_meta: FileMetaDataset) -> bytes:
    """A Part-10 file (preamble, meta, data set) in the transfer syntax of ``file_meta``.

    Pixel data is written as it is held — encapsulated fragments stay
    compressed — so an instance read from a file is archived as sent, with
    no decompression or recompression. (The C-STORE server does not need
    this: pynetdicom hands over the received bytes directly.)
    """
    meta = FileMetaDataset(file_meta)
    if "TransferSyntaxUID" not in meta:
        raise InvalidInstance("file meta lacks the transfer syntax (0002,0010)")
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in dataset:
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in dataset:
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    implicit, little, deflated = syntax_flags(meta.TransferSyntaxUID)
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    try:
        write_file_meta_info(head, meta, enforce_standard=True)
    except ValueError as exc:
        raise InvalidInstance(f"file meta cannot be written: {exc}") from None
    body = DicomBytesIO()
    body.is_implicit_VR = implicit
    body.is_little_endian = little
    write_dataset(body, dataset)
    encoded = body.getvalue()
    if deflated:
        packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
        encoded = packer.compress(encoded) + packer.flush()
    return head.getvalue() + encoded
