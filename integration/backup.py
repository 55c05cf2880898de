"""`huren backup` and `huren restore`: the database and the DICOM store, consistent while running.

Consistent means: every instance file the backed-up index references is in
the backup, byte for byte as indexed. The database is copied first, as one
snapshot (SQLite's online backup API; on PostgreSQL `pg_dump` run on a
snapshot exported from a transaction that stays open), and the list of files
to copy is read from that same snapshot. Files the hub stores afterwards are
not in the snapshot's index and are left out, as they should be: instance
files are never rewritten in place (a differing re-send is a new version
under a new name), so the files the snapshot names are still there to copy.

The folder holds ``manifest.json`` (format, time, schema revision, the audit
chain's head, the database file's SHA-256, each instance file with its size
and SHA-256), the database file and ``files/`` mirroring the data directory.
Restore checks every hash before it writes anything into an empty data
directory, then verifies the hash chains and the head against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, create_engine, insert, select, text
from sqlalchemy.engine import URL, make_url

from integration.audit_chain import Verification, seal, verify
from integration.database import Database
from integration.settings import Settings
from models import metadata
from models.engine import create_db_engine
from models.enums import AuditAction, AuditOutcome
from models.errors import HurenError
from models.migrate import current_revision

MANIFEST = "manifest.json"
FILES = "files"
FORMAT = 1
_SQLITE_FILE = "huren.db"
_POSTGRES_FILE = "huren.pgdump"
_CHUNK = 1 << 20
INSTANCE = metadata.tables["instance"]
AUDIT = metadata.tables["audit_event"]


class BackupError(HurenError):
    """A backup or restore that cannot be made sound; nothing it says is half-done silently."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the data directory, POSIX separators
    size: int
    sha256: str


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    kind: str  # sqlite | postgresql
    files: int
    bytes: int
    audit_head: str  # "id:hash", or "" when the trail is empty
    audit_problems: tuple[str, ...]  # what `huren audit verify` finds in the snapshot


@dataclass(frozen=True)
class RestoreResult:
    kind: str
    files: int
    bytes: int
    verification: Verification
    head_matches: bool

    @property
    def ok(self) -> bool:
        return self.verification.ok and self.head_matches


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> tuple[int, str]:
    """Copy while hashing what was read; (size, sha256) of the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return size, digest.hexdigest()


def _inside(root: Path, relative: str) -> Path:
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts:
        raise BackupError(f"refusing a path outside the data directory: {relative!r}")
    return root.joinpath(*parts.parts)


def _libpq(url: URL) -> tuple[dict[str, str], str]:
    """The PG* variables for the server of ``url`` (no password on a command line)."""
    env = {**os.environ}
    for name, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
    ):
        if value:
            env[name] = str(value)
    return env, str(url.database or "")


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools of the server's "
            "version (Debian: postgresql-client) to back up or restore a PostgreSQL hub"
        )
    return found


def _referenced(connection: Connection) -> list[StoredFile]:
    rows = connection.execute(
        select(INSTANCE.c.path, INSTANCE.c.size_bytes, INSTANCE.c.sha256).order_by(INSTANCE.c.id)
    )
    return [StoredFile(row.path, int(row.size_bytes), row.sha256) for row in rows]


def _head(result: Verification) -> str:
    return f"{result.head_id}:{result.head_hash}" if result.head_id else ""


def _record_backup(database: Database, *, folder: Path, now: datetime) -> None:
    """A backup copies every record: it is an export, and the trail says so."""
    with database.engine.begin() as connection:
        connection.execute(
            insert(AUDIT).values(
                recorded_at=now,
                action=AuditAction.export,
                outcome=AuditOutcome.success,
                actor="huren backup",
                source_address="localhost",
                entity_type="Backup",
                entity_id=now.strftime("%Y%m%dT%H%M%SZ"),
                detail=str(folder)[:500],
                previous_hash="",
                hash="",
            )
        )


def backup(settings: Settings, *, output: Path, now: datetime | None = None) -> BackupResult:
    """Write a backup of the running (or stopped) hub into ``output``, a new or empty folder."""
    now = now or datetime.now(UTC)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BackupError(f"{output} exists and is not an empty folder")
    output.mkdir(parents=True, exist_ok=True)
    database = Database.from_settings(settings)
    try:
        _record_backup(database, folder=output, now=now)
        seal(database.engine)  # the copy then carries a sealed trail, up to this backup
        kind = "postgresql" if database.engine.dialect.name == "postgresql" else "sqlite"
        if kind == "postgresql":
            name = _POSTGRES_FILE
            files, checked = _dump_postgres(database, settings, output / name)
        else:
            name = _SQLITE_FILE
            files, checked = _copy_sqlite(database, output / name)
        revision = current_revision(database.engine)
    finally:
        database.dispose()
    copied, total, problems = _copy_files(settings.data_dir, output / FILES, files)
    if problems:
        raise BackupError(
            f"{len(problems)} indexed instance files could not be copied as indexed "
            f"(first: {problems[0]}); the backup in {output} is incomplete"
        )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": now.isoformat(),
        "database": {"kind": kind, "file": name, "sha256": _sha256(output / name)},
        "schema_revision": revision,
        "audit_head": _head(checked),
        # A tampered source is still backed up (losing it helps no one), and says so.
        "audit_problems": [problem.describe() for problem in checked.problems],
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in copied],
    }
    temporary = output / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    temporary.replace(output / MANIFEST)  # the manifest last: its presence marks a whole backup
    return BackupResult(
        output,
        kind,
        len(copied),
        total,
        _head(checked),
        tuple(problem.describe() for problem in checked.problems),
    )


def _copy_sqlite(database: Database, target: Path) -> tuple[list[StoredFile], Verification]:
    """SQLite's online backup: one consistent snapshot, writers carry on meanwhile."""
    source_path = database.engine.url.database
    if not source_path or source_path == ":memory:":
        raise BackupError("only a SQLite database in a file can be backed up")
    source = sqlite3.connect(source_path, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # all pages in one step: a single read transaction
    finally:
        copy.close()
        source.close()
    engine = create_db_engine(f"sqlite:///{target.as_posix()}")
    try:
        with engine.connect() as connection:
            files = _referenced(connection)
            checked = verify(connection)
        with engine.connect() as connection:  # leave one self-contained file, no WAL beside it
            connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
    finally:
        engine.dispose()
    return files, checked


def _dump_postgres(
    database: Database, settings: Settings, target: Path
) -> tuple[list[StoredFile], Verification]:
    """pg_dump on a snapshot held open here, and the file list read in that same snapshot."""
    tool = _pg_tool("pg_dump")
    env, name = _libpq(make_url(settings.resolved_database_url))
    snapshot_reader = database.engine.connect().execution_options(
        isolation_level="REPEATABLE READ", postgresql_readonly=True
    )
    with snapshot_reader as connection, connection.begin():
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        dumped = subprocess.run(
            [tool, "--format=custom", f"--snapshot={snapshot}", f"--file={target}", name],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if dumped.returncode != 0:
            raise BackupError(f"pg_dump failed: {dumped.stderr.strip()[-500:]}")
        files = _referenced(connection)
        checked = verify(connection)
    return files, checked


def _copy_files(
    data_dir: Path, target: Path, files: Iterable[StoredFile]
) -> tuple[list[StoredFile], int, list[str]]:
    copied: list[StoredFile] = []
    problems: list[str] = []
    total = 0
    for stored in files:
        source = _inside(data_dir, stored.path)
        try:
            size, digest = _copy(source, _inside(target, stored.path))
        except FileNotFoundError:
            problems.append(f"{stored.path}: missing from the store")
            continue
        except FileExistsError:  # two index rows naming one file (should not happen)
            continue
        if (size, digest) != (stored.size, stored.sha256):
            problems.append(f"{stored.path}: differs from its index entry")
            continue
        copied.append(stored)
        total += size
    return copied, total, problems


# --------------------------------------------------------------------------- restore


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} holds no {MANIFEST}: not a (finished) Huren backup")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def _check_backup(folder: Path, manifest: dict[str, Any]) -> None:
    """Every hash in the manifest, before anything is written."""
    database = manifest["database"]
    if _sha256(folder / database["file"]) != database["sha256"]:
        raise BackupError("the database file of the backup does not match its manifest")
    for entry in manifest["files"]:
        path = _inside(folder / FILES, entry["path"])
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            raise BackupError(f"{entry['path']} is missing from the backup or changed")


def restore(settings: Settings, *, folder: Path) -> RestoreResult:
    """Restore ``folder`` into the configured, empty data directory (and empty database)."""
    manifest = read_manifest(folder)
    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore only into an empty data directory")
    url = make_url(settings.resolved_database_url)
    kind = "postgresql" if url.get_backend_name() == "postgresql" else "sqlite"
    if kind != manifest["database"]["kind"]:
        raise BackupError(
            f"the backup holds a {manifest['database']['kind']} database; "
            f"HUREN_DATABASE_URL points at {kind}"
        )
    _check_backup(folder, manifest)
    data_dir.mkdir(parents=True, exist_ok=True)
    source = folder / manifest["database"]["file"]
    if kind == "sqlite":
        target = Path(url.database or "")
        if target.exists():
            raise BackupError(f"{target} exists: restore only into an empty place")
        _copy(source, target)
    else:
        _restore_postgres(url, source)
    total = 0
    for entry in manifest["files"]:
        size, digest = _copy(
            _inside(folder / FILES, entry["path"]), _inside(data_dir, entry["path"])
        )
        if digest != entry["sha256"]:
            raise BackupError(f"{entry['path']} changed while it was restored")
        total += size
    database = Database.from_settings(settings)
    try:
        with database.engine.connect() as connection:
            checked = verify(connection)
    finally:
        database.dispose()
    return RestoreResult(
        kind, len(manifest["files"]), total, checked, _head(checked) == manifest["audit_head"]
    )


def _restore_postgres(url: URL, dump: Path) -> None:
    tool = _pg_tool("pg_restore")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(f"database {url.database} is not empty: restore only into an empty one")
    env, name = _libpq(url)
    restored = subprocess.run(
        [tool, "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={name}", str(dump)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if restored.returncode != 0:
        raise BackupError(f"pg_restore failed: {restored.stderr.strip()[-500:]}")
