"""Which database errors are transient (the sender is told to resend later) and which are not,
raised by a real SQLite file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from integration.database import unavailable
from models.engine import create_db_engine


def _error(engine_url: str, statement: str) -> SQLAlchemyError:
    engine = create_db_engine(engine_url, busy_timeout=0.2)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} did not fail")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM known",
        "SELEC 1",
        "CREATE TABLE known (id INTEGER)",
        "SELECT no_such_function(1)",
        "SELECT * FROM known AS a, known AS b WHERE id = 1",  # ambiguous column name
    ],
)
def test_mistakes_are_not_transient(tmp_path: Path, statement: str) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE known (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert unavailable(_error(url, statement)) is None


def test_a_lock_held_past_the_busy_timeout_is_transient(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    holder = create_db_engine(url)
    with holder.begin() as connection:
        connection.execute(text("CREATE TABLE known (id INTEGER PRIMARY KEY)"))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.begin() as connection:
            connection.execute(text("INSERT INTO known (id) VALUES (1)"))
            locked.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10)
        error = unavailable(_error(url, "INSERT INTO known (id) VALUES (2)"))
    finally:
        release.set()
        thread.join(10)
        holder.dispose()
    assert error is not None and "locked" in str(error)


def test_an_unreachable_file_is_transient(tmp_path: Path) -> None:
    (tmp_path / "hub.db").mkdir()  # a folder where the file should be
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    error = unavailable(_error(url, "SELECT 1"))
    assert error is not None and "unable to open" in str(error)
