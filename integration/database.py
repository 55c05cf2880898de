"""The hub's handle on its database: one engine per process, sessions on demand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from integration.settings import Settings
from models import Facility
from models import migrate as migrations
from models.engine import create_db_engine


@dataclass(frozen=True)
class Database:
    engine: Engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            create_db_engine(
                settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous
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
