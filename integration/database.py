"""The hub's handle on its database: one engine per process, sessions on demand."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from integration.settings import Settings
from models import Facility
from models import migrate as migrations
from models.engine import create_db_engine
from models.errors import DatabaseUnavailable

# SQLite raises OperationalError for mistakes in the statement or the schema too (its generic
# SQLITE_ERROR: no such table, syntax, ...); those never pass by waiting, and a sender told
# "resend later" would resend forever. BUSY, LOCKED, CANTOPEN, IOERR and FULL do pass.
_SQLITE_ERROR = 1


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as a DatabaseUnavailable when it is transient (locked, unreachable), else None.

    A lock held past the busy timeout, a lost connection or an exhausted pool
    will pass; a constraint, a programming error or a schema that does not
    match the code will not, and is not translated.
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    mistake = (
        isinstance(exc, OperationalError)
        and getattr(exc.orig, "sqlite_errorcode", None) == _SQLITE_ERROR
    )
    transient = (isinstance(exc, (OperationalError, PoolTimeout)) and not mistake) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not transient or not isinstance(exc, SQLAlchemyError):
        return None
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    error = DatabaseUnavailable(f"database unavailable: {reason}")
    error.__cause__ = exc
    return error


def log_failed_round(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a background round that failed: one line while the database is unavailable
    (that passes, and a traceback per round from every loop would bury the log), else
    the traceback."""
    transient = unavailable(exc)
    if transient is not None:
        logger.warning("%s: %s", what, transient)
    else:
        logger.error("%s", what, exc_info=exc)


@dataclass(frozen=True)
class Database:
    engine: Engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            create_db_engine(
                settings.resolved_database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
                busy_timeout=settings.database_busy_timeout,
            )
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection for a group of reads that should see one state of the database
        (see :func:`read_snapshot`)."""
        with self.engine.connect() as connection, read_snapshot(connection):
            yield connection

    def upgrade(self) -> None:
        migrations.upgrade(self.engine)

    def needs_upgrade(self) -> bool:
        return migrations.needs_upgrade(self.engine)

    def is_empty(self) -> bool:
        """True when no facility exists yet: the cue for `make run` to seed the demo."""
        with Session(self.engine) as session:
            count: int = session.execute(select(func.count()).select_from(Facility)).scalar_one()
            return count == 0

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def read_snapshot(connection: Connection) -> Iterator[None]:
    """Reads in the block see one state of the database; nothing written in it is kept.

    On SQLite the block is one read transaction: one snapshot, and one look at the
    WAL instead of one per statement (seven lookups: 144 -> 62 µs). On PostgreSQL
    the reads share the transaction the driver opens (read committed), rolled back.
    """
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        if driver.in_transaction:  # left open by a failure: never read through a stale one
            driver.rollback()
        driver.execute("BEGIN")
    try:
        yield
    finally:
        driver.rollback()


@lru_cache(maxsize=256)
def _in_style(sql: str, paramstyle: str) -> str:
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")


def fetch_rows(
    connection: Connection, sql: str, parameters: Sequence[object] = ()
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (``?`` placeholders, no ``%``) run straight on the DBAPI connection.

    For the lookups a caller waits on (the CDS service): SQLAlchemy's statement
    and result layers cost ten times more than SQLite's indexed read itself.
    It runs inside ``connection``'s transaction, if any, and the pool still
    resets the connection when it is returned. Values come back as the driver
    gives them: on SQLite, text for times and dates and 0/1 for booleans (see
    :func:`instant` and :func:`day`).
    """
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_in_style(sql, connection.dialect.paramstyle), tuple(parameters))
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


def execute_rows(connection: Connection, sql: str, rows: Sequence[Sequence[object]]) -> None:
    """``sql`` (``?`` placeholders) once per row, straight on the DBAPI connection, inside
    ``connection``'s transaction (see :func:`fetch_rows`; times via :func:`instant_value`)."""
    if not rows:
        return
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_in_style(sql, connection.dialect.paramstyle), rows)
    finally:
        cursor.close()


def instant_value(connection: Connection, moment: datetime) -> datetime | str:
    """An aware ``moment`` as a UtcDateTime column stores it, for a DBAPI parameter."""
    utc = moment.astimezone(UTC)
    if connection.dialect.name == "sqlite":
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DateTime text
    return utc


def instant(value: datetime | str) -> datetime:
    """A UTC-aware datetime from what the driver returned for a UtcDateTime column."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def day(value: date | str) -> date:
    """A date from what the driver returned for a Date column."""
    return value if isinstance(value, date) else date.fromisoformat(value)
