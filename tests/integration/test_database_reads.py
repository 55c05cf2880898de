"""Plain-SQL reads: one snapshot per block on SQLite, parameters in the driver's style."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from integration.database import Database, fetch_rows, read_snapshot


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE reading (name VARCHAR(20), value INTEGER)"))
        connection.execute(text("INSERT INTO reading VALUES ('a', 1), ('b', 2)"))
    return Database(engine)


def _add(database: Database, name: str, value: int) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO reading VALUES (:n, :v)"), {"n": name, "v": value})


def test_rows_come_back_with_bound_parameters(database: Database) -> None:
    with database.snapshot() as connection:
        rows = fetch_rows(
            connection, "SELECT name, value FROM reading WHERE value >= ? ORDER BY name", (2,)
        )
        quoted = fetch_rows(connection, "SELECT count(*) FROM reading WHERE name = ?", ("'; --",))
    assert rows == [("b", 2)] and quoted == [(0,)]


def test_a_snapshot_sees_one_state_of_the_database(database: Database) -> None:
    with database.snapshot() as connection:
        before = fetch_rows(connection, "SELECT count(*) FROM reading")
        _add(database, "c", 3)  # committed by another connection meanwhile
        during = fetch_rows(connection, "SELECT count(*) FROM reading")
    with database.snapshot() as connection:
        after = fetch_rows(connection, "SELECT count(*) FROM reading")
    assert before == [(2,)] and after == [(3,)]
    if database.engine.dialect.name == "sqlite":
        assert during == [(2,)]  # one read transaction: the block's snapshot holds


def test_a_held_connection_starts_each_snapshot_afresh(sqlite_engine: Engine) -> None:
    database = Database(sqlite_engine)
    with sqlite_engine.begin() as connection:
        connection.execute(text("CREATE TABLE reading (value INTEGER)"))
    with sqlite_engine.connect() as held:
        driver = held.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN")  # as a failure could leave it
        driver.execute("SELECT count(*) FROM reading").fetchall()
        with database.engine.begin() as other:
            other.execute(text("INSERT INTO reading VALUES (1)"))
        with read_snapshot(held):
            assert fetch_rows(held, "SELECT count(*) FROM reading") == [(1,)]
        assert not driver.in_transaction
