"""Migrations build exactly the models' schema, up and down, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from models import metadata
from models.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    needs_upgrade,
    upgrade,
)


def _check_round_trip(engine: Engine) -> None:
    assert needs_upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    assert not needs_upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == [], f"migrations and models disagree: {differences}"

    indexes = {index["name"] for index in inspect(engine).get_indexes("study")}
    assert {"ix_study_worklist", "ix_study_prior"} <= indexes

    upgrade(engine)  # a second upgrade is a no-op
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)


def test_migrations_on_sqlite(sqlite_engine: Engine) -> None:
    _check_round_trip(sqlite_engine)


@pytest.mark.postgres
def test_migrations_on_postgresql(postgres_engine: Engine) -> None:
    _check_round_trip(postgres_engine)


def test_a_percent_encoded_url_reaches_alembic_intact() -> None:
    """A password like "p@ss%" is percent-encoded in the URL; the ini parser must not choke."""
    url = "postgresql+psycopg://hub:p%40ss%25@db.invalid:5432/huren?options=-c+a%3Db"
    engine = create_engine(url)
    try:
        assert alembic_config(engine).get_main_option("sqlalchemy.url") == url
    finally:
        engine.dispose()
