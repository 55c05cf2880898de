"""The hub's handle on its database: one engine per process, sessions on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from integration.settings import Settings
from models import Facility
from models import migrate as migrations
from models.engine import create_db_engine
from models.errors import DatabaseUnavailable


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as a DatabaseUnavailable when it is transient (locked, unreachable), else None.

    A lock held past the busy timeout, a lost connection or an exhausted pool
    will pass; a constraint or a programming error will not, and is not
    translated.
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    transient = isinstance(exc, (OperationalError, PoolTimeout)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not transient or not isinstance(exc, SQLAlchemyError):
        return None
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    error = DatabaseUnavailable(f"database unavailable: {reason}")
    error.__cause__ = exc
    return error


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
