"""Keeping CDS cards with plain SQL: what SQLAlchemy reads back, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from integration.cds import keep_cards
from integration.database import Database, fetch_rows
from models import metadata
from models import migrate as migrations
from models.catalogue import load_catalogue, sync_catalogue


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    migrations.upgrade(engine)
    database = Database(engine)
    with database.session() as session:
        sync_catalogue(session, entries=load_catalogue())
    return database


def _card(uuid: str, exam_type_id: int, issued_at: datetime, **change: Any) -> dict[str, Any]:
    return {
        "card_uuid": uuid,
        "hook_instance": "instance-1",
        "service": "huren-prior-exams-sign",
        "patient_id": None,
        "requested_exam_type_id": exam_type_id,
        "prior_key": "2.25.1",
        "prior_study_id": None,
        "prior_report_id": None,
        "prior_source": "province",
        "recognisable": True,
        "facility_id": None,
        "clinician_ref": "Practitioner/7",
        "draft_order_ref": "ServiceRequest/draft-1",
        "avoidable_fee_fen": 6000,
        "issued_at": issued_at,
    } | change


def test_kept_cards_read_back_as_written_and_a_repeat_keeps_the_first(database: Database) -> None:
    with database.engine.connect() as connection:
        (exam_type_id,) = connection.execute(text("SELECT min(id) FROM exam_type")).one()
    issued = datetime(2026, 11, 25, 16, 30, 5, 123456, tzinfo=timezone(timedelta(hours=8)))
    first = _card("00000000-0000-5000-8000-000000000001", exam_type_id, issued)
    second = _card("00000000-0000-5000-8000-000000000002", exam_type_id, issued, recognisable=False)
    with database.engine.begin() as connection:
        keep_cards(connection, [first, second])
    with database.engine.begin() as connection:  # the same instance asking again
        keep_cards(connection, [first | {"clinician_ref": "someone else"}])
    table = metadata.tables["recognition_card"]
    with database.engine.connect() as connection:
        rows = connection.execute(select(table).order_by(table.c.card_uuid)).all()
        assert fetch_rows(connection, "SELECT count(*) FROM recognition_card") == [(2,)]
    assert [(row.card_uuid, row.recognisable, row.clinician_ref) for row in rows] == [
        (first["card_uuid"], True, "Practitioner/7"),
        (second["card_uuid"], False, "Practitioner/7"),
    ]
    assert rows[0].issued_at == issued and rows[0].issued_at.tzinfo is not None
    assert rows[0].issued_at.astimezone(UTC) == datetime(2026, 11, 25, 8, 30, 5, 123456, UTC)
    assert rows[0].avoidable_fee_fen == 6000 and rows[0].prior_source == "province"
