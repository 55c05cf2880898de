"""Shared fixtures: real SQLite files, an optional real PostgreSQL, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

# Importing the Reflex app in tests must not run the JS toolchain (see STACK.md).
os.environ.setdefault("__REFLEX_SKIP_COMPILE", "true")

from models.engine import create_db_engine

POSTGRES_ENV = "HUREN_TEST_POSTGRES_URL"


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


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(
            f"PostgreSQL tests skipped: set {POSTGRES_ENV} (e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run them"
        )
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_url = make_url(_postgres_admin_url())
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"huren_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_db_engine(postgres_url)
    yield engine
    engine.dispose()


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(POSTGRES_ENV):
        return f"PostgreSQL tests: on ({POSTGRES_ENV} is set)"
    return f"PostgreSQL tests: SKIPPED ({POSTGRES_ENV} is not set)"
