"""The hash chains: sealed rows verify; an edited, deleted or truncated record is found.

The database refuses UPDATE and DELETE on the audit trail and revisions
(triggers of migration 0008); the tamper tests drop those triggers first, as
someone with the database owner's rights could, and the chain still tells.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import DatabaseError

from integration.audit_chain import GENESIS, Sealed, audit_hash, seal, verify
from integration.cli import main
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.settings import Settings
from models import metadata
from models.engine import create_db_engine
from models.enums import AuditAction

AUDIT = metadata.tables["audit_event"]
START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _audit_rows(engine: Engine, count: int, *, first: int = 0) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(AUDIT),
            [
                {
                    "recorded_at": START + timedelta(seconds=first + n),
                    "action": AuditAction.read,
                    "outcome": "success",
                    "actor": f"user{(first + n) % 7}",
                    "source_address": "127.0.0.1",
                    "entity_type": "Patient",
                    "entity_id": str(first + n),
                    "detail": "查看病历",
                }
                for n in range(count)
            ],
        )


def _drop_guards(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for table in ("audit_event", "report_revision"):
                connection.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
        else:
            for table in ("audit_event", "report_revision"):
                connection.execute(text(f"DROP TRIGGER {table}_append_only_update"))
                connection.execute(text(f"DROP TRIGGER {table}_append_only_delete"))


def _kinds(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        return [(p.table, p.kind, p.row) for p in verify(connection).problems]


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    Database(sqlite_engine).upgrade()
    return sqlite_engine


def test_sealed_rows_verify_and_new_rows_extend_the_chain(engine: Engine) -> None:
    _audit_rows(engine, 50)
    assert seal(engine).audit_rows == 50
    with engine.connect() as connection:
        first = verify(connection)
        genesis = connection.execute(text("SELECT previous_hash FROM audit_event WHERE id = 1"))
        assert genesis.scalar_one() == GENESIS
    assert first.ok and first.audit_sealed == 50 and first.head_id == 50
    _audit_rows(engine, 10, first=50)
    assert seal(engine).audit_rows == 10
    assert seal(engine).audit_rows == 0  # nothing left: a second seal writes nothing
    with engine.connect() as connection:
        second = verify(connection)
    assert second.ok and second.head_id == 60 and second.head_hash != first.head_hash


def test_the_database_refuses_changes_but_lets_the_sealer_seal_once(engine: Engine) -> None:
    _audit_rows(engine, 3)
    with (
        engine.begin() as connection,
        pytest.raises(DatabaseError, match="append-only"),
    ):  # unsealed content may not change either
        connection.execute(text("UPDATE audit_event SET actor = 'x' WHERE id = 1"))
    seal(engine)
    for statement in (
        "UPDATE audit_event SET detail = 'nothing to see' WHERE id = 2",
        "UPDATE audit_event SET hash = 'f' || substr(hash, 2) WHERE id = 2",
        "DELETE FROM audit_event WHERE id = 2",
    ):
        with engine.begin() as connection, pytest.raises(DatabaseError, match="append-only"):
            connection.execute(text(statement))


def test_an_edited_row_is_named(engine: Engine) -> None:
    _audit_rows(engine, 20)
    seal(engine)
    _drop_guards(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET actor = 'nobody' WHERE id = 7"))
    assert _kinds(engine) == [("audit_event", "edited", "7")]


def test_a_rehashed_edit_breaks_the_next_link_and_a_rewrite_moves_the_head(
    engine: Engine,
) -> None:
    _audit_rows(engine, 20)
    seal(engine)
    with engine.connect() as connection:
        noted = verify(connection).head_hash
    _drop_guards(engine)
    with engine.begin() as connection:  # edit row 7 and give it a valid hash of its own
        row = connection.execute(AUDIT.select().where(AUDIT.c.id == 7)).mappings().one()
        forged = audit_hash(
            {**row, "actor": "nobody"}, previous_id=6, previous_hash=row["previous_hash"]
        )
        connection.execute(
            text("UPDATE audit_event SET actor = 'nobody', hash = :h WHERE id = 7"), {"h": forged}
        )
    assert _kinds(engine) == [("audit_event", "broken_link", "8")]
    with engine.begin() as connection:  # rewriting every later seal hides it from the chain...
        connection.execute(text("UPDATE audit_event SET hash = '' WHERE id > 7"))
    seal(engine)
    with engine.connect() as connection:
        rewritten = verify(connection)
    assert rewritten.ok and rewritten.head_hash != noted  # ...but not from a noted head


def test_deleted_rows_are_reported_as_a_gap(engine: Engine) -> None:
    _audit_rows(engine, 20)
    seal(engine)
    with engine.connect() as connection:
        head = verify(connection).head_hash
    _drop_guards(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_event WHERE id IN (8, 9)"))
    problems = _kinds(engine)
    assert problems == [("audit_event", "deleted", "10")]
    with engine.connect() as connection:
        found = verify(connection)
    assert "ids 8..9" in found.problems[0].detail
    assert found.head_hash == head  # the head is untouched; truncation shows against a noted head
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_event WHERE id > 18"))
    with engine.connect() as connection:
        assert verify(connection).head_id == 18


def test_ids_rolled_back_before_sealing_are_not_deletions(engine: Engine) -> None:
    _audit_rows(engine, 5)
    with engine.begin() as connection:  # an id handed out and never committed (as on PostgreSQL)
        connection.execute(
            text(
                "INSERT INTO audit_event (id, recorded_at, action, outcome, actor, "
                "source_address, entity_type, entity_id, detail, previous_hash, hash) "
                "VALUES (9, :at, 'read', 'success', 'a', '', '', '', '', '', '')"
            ),
            {"at": START},
        )
    seal(engine)
    with engine.connect() as connection:
        result = verify(connection)
    assert result.ok and result.never_committed == ((6, 8),)
    with engine.begin() as connection:  # a row slipped in under the head later: it shows
        connection.execute(
            text(
                "INSERT INTO audit_event (id, recorded_at, action, outcome, actor, "
                "source_address, entity_type, entity_id, detail, previous_hash, hash) "
                "VALUES (7, :at, 'read', 'success', 'late', '', '', '', '', '', '')"
            ),
            {"at": START},
        )
    assert seal(engine).audit_rows == 0  # never sealed behind the head
    assert _kinds(engine) == [("audit_event", "unsealed_behind", "9")]
    with engine.connect() as connection:
        assert verify(connection).audit_rows == 7


def test_the_cli_exits_1_on_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUREN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUREN_DATABASE_URL", raising=False)
    assert main(["audit", "seal"]) == 0
    engine = create_db_engine(f"sqlite:///{tmp_path / 'huren.db'}")
    try:
        _audit_rows(engine, 4)
        assert main(["audit", "verify"]) == 0
        head = capsys.readouterr().out.split("head ")[1].split()[:2]
        assert main(["audit", "verify", "--expect-head", ":".join(head)]) == 0
        _drop_guards(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET detail = 'x' WHERE id = 2"))
        assert main(["audit", "verify", "--no-seal"]) == 1
        assert "PROBLEM audit_event 2: edited" in capsys.readouterr().out
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET detail = '' WHERE id = 2"))
            connection.execute(text("DELETE FROM audit_event WHERE id = 4"))
        assert main(["audit", "verify", "--expect-head", ":".join(head)]) == 1
        assert "rows after it were removed" in capsys.readouterr().out
    finally:
        engine.dispose()


@pytest.fixture
def seeded(engine: Engine, tmp_path: object) -> Engine:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    seed_demo_region(
        Database(engine),
        settings=settings,
        options=DemoOptions(seed=5, exams=60, until=date(2026, 11, 20), progress=False),
    )
    return engine


def test_revisions_are_chained_per_report_and_tampering_shows(seeded: Engine) -> None:
    sealed = seal(seeded)
    assert sealed.revisions > 60
    with seeded.connect() as connection:
        result = verify(connection)
        assert result.ok and result.revisions_sealed == result.revisions
        top = connection.execute(text("SELECT max(id) FROM report_revision")).scalar_one()
        two = (
            connection.execute(
                text(
                    "SELECT report_id FROM report_revision GROUP BY report_id "
                    "HAVING count(*) >= 2 ORDER BY report_id LIMIT 3"
                )
            )
            .scalars()
            .all()
        )
    assert sealed.revision_floor == top  # the background sealer reads only newer ones next
    assert seal(seeded, revision_floor=top) == Sealed(0, 0, top)
    _drop_guards(seeded)
    edited, middle, last = two
    with seeded.begin() as connection:
        connection.execute(
            text(
                "UPDATE report_revision SET impression = impression || ' 未见异常' "
                "WHERE report_id = :r AND version = 2"
            ),
            {"r": edited},
        )
        connection.execute(
            text("DELETE FROM report_revision WHERE report_id = :r AND version = 1"), {"r": middle}
        )
        connection.execute(
            text(
                "DELETE FROM report_revision WHERE report_id = :r AND version = "
                "(SELECT max(version) FROM report_revision WHERE report_id = :r)"
            ),
            {"r": last},
        )
    found = {(kind, row.split(" v")[0]) for _table, kind, row in _kinds(seeded)}
    assert found == {
        ("edited", f"report {edited}"),
        ("missing_version", f"report {middle}"),
        ("missing_version", f"report {last}"),
    }


@pytest.mark.postgres
def test_postgres_chain_stays_whole_while_writers_race_two_sealers(
    postgres_engine: Engine,
) -> None:
    """Writers commit out of id order on PostgreSQL (one keeps its transaction open a while);
    two sealers, as two hubs would run, never seal past a hole nor fork the chain."""
    Database(postgres_engine).upgrade()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for n in range(40):
                _audit_rows(postgres_engine, 5, first=offset * 1000 + n * 5)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def slow_writer() -> None:  # holds a smaller id uncommitted while others commit larger ones
        try:
            for n in range(4):
                with postgres_engine.begin() as connection:
                    connection.execute(
                        insert(AUDIT).values(
                            recorded_at=START,
                            action=AuditAction.update,
                            actor="slow",
                            entity_type="Report",
                            entity_id=str(n),
                        )
                    )
                    time.sleep(0.3)
        except BaseException as exc:
            errors.append(exc)

    def sealer() -> None:
        try:
            while not stop.is_set():
                seal(postgres_engine, batch=7)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    writers.append(threading.Thread(target=slow_writer))
    sealing = [threading.Thread(target=sealer) for _ in range(2)]
    for thread in sealing:
        thread.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in sealing:
        thread.join()
    assert not errors
    seal(postgres_engine)
    with postgres_engine.connect() as connection:
        result = verify(connection)
    assert result.ok, [p.describe() for p in result.problems]
    assert result.audit_rows == result.audit_sealed == 804
    with postgres_engine.begin() as connection, pytest.raises(DatabaseError, match="append-only"):
        connection.execute(text("DELETE FROM audit_event WHERE id = 3"))
    with postgres_engine.begin() as connection, pytest.raises(DatabaseError, match="append-only"):
        connection.execute(text("TRUNCATE audit_event"))
    _drop_guards(postgres_engine)
    with postgres_engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET detail = 'x' WHERE id = 3"))
    assert _kinds(postgres_engine) == [("audit_event", "edited", "3")]
