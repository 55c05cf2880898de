"""Creating engines: SQLite (embedded default) tuned for a durable hub, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SqliteSync = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def create_db_engine(
    url: str,
    *,
    sqlite_synchronous: SqliteSync = "FULL",
    busy_timeout: float = 30.0,
    echo: bool = False,
) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    ``synchronous=FULL`` makes every commit survive power loss, which is what
    "acknowledged means stored" asks of an embedded database. ``busy_timeout``
    (seconds) bounds how long a write waits for a lock before it fails: the
    senders waiting on it need an answer (AE, a DICOM failure) before their
    own timeout, not a hang.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        return engine
    if parsed.get_driver_name() == "psycopg":
        # libpq: a server that stops answering (packets dropped, not refused) is given up
        # within seconds, so a sender gets its transient error instead of a hang.
        timeout = max(1, round(busy_timeout))
        return create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": timeout,
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )
    return create_engine(url, echo=echo, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
