"""Test databases on either backend, made fast by copying instead of rebuilding.

The hub-level suites run once on SQLite and once on PostgreSQL (when
``HUREN_TEST_POSTGRES_URL`` names a server). Every test still gets a database
of its own, created before it and dropped after it, but building one is a
copy: PostgreSQL databases are made with ``CREATE DATABASE … TEMPLATE`` from a
database migrated once per session, and a seeded demo county is seeded once
per set of options and copied for every later test that asks for the same
one (a template database on PostgreSQL, a file copy on SQLite).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from integration.database import Database
from integration.demo.seed import DemoOptions, DemoSummary, seed_demo_region
from integration.settings import Settings
from models import migrate
from models.engine import create_db_engine

POSTGRES_ENV = "HUREN_TEST_POSTGRES_URL"
PREFIX = "huren_test_"
# Tests need no durability from PostgreSQL's commits: spare them the WAL flush.
FAST_COMMITS = "-c synchronous_commit=off"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_admin_url() -> str:
    """The server the PostgreSQL tests use, or a skip that says how to run them."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(
            f"PostgreSQL tests skipped: set {POSTGRES_ENV} (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run them"
        )
    return url


class PostgresServer:
    """Creates and drops this session's databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = make_url(admin_url)
        self._admin: Engine = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        self._session = uuid.uuid4().hex[:8]
        self._migrated: str | None = None
        self.templates: list[str] = []
        # Dropping a database waits for a checkpoint (about a second here): done on the side.
        self._doomed: queue.Queue[str | None] = queue.Queue()
        self._dropper = threading.Thread(target=self._drop_doomed, name="drop-databases")
        try:
            with self._admin.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            self._admin.dispose()
            pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
        self._dropper.start()

    def url(self, name: str) -> str:
        target: URL = self._admin_url.set(database=name).update_query_dict(
            {"options": FAST_COMMITS}
        )
        return target.render_as_string(hide_password=False)

    def new_name(self, kind: str = "") -> str:
        return f"{PREFIX}{self._session}_{kind}{uuid.uuid4().hex[:10]}"

    def execute(self, sql: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(sql))

    def create(self, name: str, *, template: str | None = None) -> None:
        source = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{source}')

    def drop(self, name: str) -> None:
        """Drop ``name`` soon (its connections are ended); a test need not wait for it."""
        self._doomed.put(name)

    def replace(self, name: str, *, template: str) -> None:
        """Make ``name`` a fresh copy of ``template``; the old one is renamed and dropped."""
        old = self.new_name("old_")
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        self.execute(f'ALTER DATABASE "{name}" RENAME TO "{old}"')
        self.drop(old)
        self.create(name, template=template)

    def _drop_doomed(self) -> None:
        while (name := self._doomed.get()) is not None:
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def migrated_template(self) -> str:
        """A database at the schema's head, migrated once per session, to copy from."""
        if self._migrated is None:
            name = self.new_name("migrated_")
            self.create(name)
            self.templates.append(name)
            engine = create_db_engine(self.url(name))
            try:
                migrate.upgrade(engine)
            finally:
                engine.dispose()
            self._migrated = name
        return self._migrated

    def migrated_database(self) -> str:
        """A fresh database at the schema's head; the caller drops it."""
        name = self.new_name()
        self.create(name, template=self.migrated_template())
        return name

    def close(self) -> None:
        for name in self.templates:
            self.drop(name)
        self._doomed.put(None)
        self._dropper.join()
        self._admin.dispose()


def postgres_database_name(url: str) -> str:
    name = make_url(url).database
    assert name, url
    return name


@dataclass
class DemoSnapshots:
    """Seeds each demo county once per session, then hands out copies of it."""

    folder: Path
    server: PostgresServer | None = None
    _seeded: dict[tuple[object, ...], tuple[str, DemoSummary]] = field(default_factory=dict)

    def seed(self, database: Database, *, settings: Settings, options: DemoOptions) -> DemoSummary:
        """``seed_demo_region`` into the empty ``database``, from a copy when one exists.

        ``database`` keeps working afterwards: its pool is emptied, and new
        connections reach the copy.
        """
        options = replace(options, progress=False)
        key = (
            repr(options),
            settings.zone.key,
            str(settings.exam_catalogue),
            settings.demo_password.get_secret_value(),
            database.engine.dialect.name,
        )
        known = self._seeded.get(key)
        if known is not None and database.is_empty():
            snapshot, summary = known
            database.dispose()
            self._restore(settings, snapshot)
            return summary
        summary = seed_demo_region(database, settings=settings, options=options)
        if database.engine.dialect.name == "sqlite":
            with database.engine.connect() as connection:  # everything into the main file
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database.dispose()
        self._seeded[key] = (self._save(settings), summary)
        return summary

    def _save(self, settings: Settings) -> str:
        url = settings.resolved_database_url
        if make_url(url).get_backend_name() == "sqlite":
            copy = self.folder / f"{uuid.uuid4().hex}.db"
            shutil.copyfile(_sqlite_path(url), copy)
            return str(copy)
        assert self.server is not None
        name = self.server.new_name("seeded_")
        self.server.create(name, template=postgres_database_name(url))
        self.server.templates.append(name)
        return name

    def _restore(self, settings: Settings, snapshot: str) -> None:
        url = settings.resolved_database_url
        if make_url(url).get_backend_name() == "sqlite":
            path = _sqlite_path(url)
            for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(snapshot, path)
            return
        assert self.server is not None
        self.server.replace(postgres_database_name(url), template=snapshot)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database, url
    return Path(database)
