"""Shared fixtures: real SQLite files, an optional real PostgreSQL, free ports."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

# Importing the Reflex app in tests must not run the JS toolchain (see STACK.md).
os.environ.setdefault("__REFLEX_SKIP_COMPILE", "true")

from models.engine import create_db_engine
from tests.databases import (
    BACKENDS,
    POSTGRES_ENV,
    DemoSnapshots,
    PostgresServer,
    postgres_admin_url,
)

_LEFT_OUT = pytest.StashKey[int]()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'huren.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_db_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """This session's PostgreSQL databases; skipped without HUREN_TEST_POSTGRES_URL."""
    server = PostgresServer(postgres_admin_url())
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = postgres_server.new_name()
    postgres_server.create(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop(name)


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_db_engine(postgres_url)
    yield engine
    engine.dispose()


def _database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""  # the default: huren.db under the test's data directory
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.migrated_database()
    try:
        yield server.url(name)
    finally:
        server.drop(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """``HUREN_DATABASE_URL`` for one test, once per backend: SQLite ("" = the default file
    under the data directory) and a fresh PostgreSQL database at the schema's head."""
    yield from _database_url(request)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Like ``database_url``, shared by a module's tests."""
    yield from _database_url(request)


@pytest.fixture
def database_engine(database_url: str, sqlite_url: str) -> Iterator[Engine]:
    """An engine on the test's database, once per backend (not migrated on SQLite)."""
    engine = create_db_engine(database_url or sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def demo_snapshots(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DemoSnapshots:
    """Seeds a demo county once per options and backend; later tests get copies."""
    server = request.getfixturevalue("postgres_server") if os.environ.get(POSTGRES_ENV) else None
    return DemoSnapshots(folder=tmp_path_factory.mktemp("demo-snapshots"), server=server)


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(POSTGRES_ENV):
        return f"PostgreSQL tests: on ({POSTGRES_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({POSTGRES_ENV} is not set)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a server, leave the PostgreSQL tests out (one summary line instead of hundreds)."""
    if os.environ.get(POSTGRES_ENV):
        return
    left_out = [item for item in items if item.get_closest_marker("postgres") is not None]
    if left_out:
        config.stash[_LEFT_OUT] = len(left_out)
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item.get_closest_marker("postgres") is None]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left_out = terminalreporter.config.stash.get(_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"PostgreSQL tests skipped: {left_out} not run, set {POSTGRES_ENV} to run them"
        )
