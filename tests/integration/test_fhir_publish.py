"""Publishing: domain changes become stored FHIR resources and, with an upstream, queued bundles."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

import integration.fhir_publish as publishing
from integration.database import Database
from integration.fhir_publish import publish_report, publish_study
from integration.imaging import Stabiliser
from integration.settings import Settings
from tests.hub_helpers import hub_environment

NOW = datetime.now(UTC)


@pytest.fixture
def region(tmp_path: Path, database_url: str) -> Iterator[tuple[Database, Settings]]:
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "demo", "seed", "--scale", "tiny", "--quiet",
         "--fhir-days", "0"],
        env=hub_environment(tmp_path, database_url=database_url),
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, upstream_fhir_url="http://127.0.0.1:9/fhir"
    )  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    yield database, settings
    database.dispose()


def _count(database: Database, sql: str) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def test_a_signed_report_is_stored_with_its_pdf_and_queued_once(
    region: tuple[Database, Settings],
) -> None:
    database, settings = region
    with database.engine.connect() as connection:
        report_id = connection.execute(
            text("SELECT id FROM report WHERE status = 'final' ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert _count(database, "SELECT count(*) FROM fhir_resource") == 0
    with database.engine.begin() as connection:
        stored = publish_report(connection, report_id=report_id, settings=settings, now=NOW)
    assert stored is not None and stored.reference == f"DiagnosticReport/{report_id}"
    report = stored.parsed()
    forms = {form["contentType"].split(";")[0] for form in report["presentedForm"]}
    assert forms == {"text/plain", "application/pdf"}
    assert report["status"] == "final"
    queued = _count(database, "SELECT count(*) FROM outbox WHERE channel = 'fhir'")
    assert queued == 1
    with database.engine.connect() as connection:
        payload = json.loads(connection.execute(text("SELECT payload FROM outbox")).scalar_one())
    kinds = [entry["resource"]["resourceType"] for entry in payload["entry"]]
    assert kinds[-1] == "DiagnosticReport" and "ImagingStudy" in kinds and "Patient" in kinds
    assert all(entry["request"]["method"] == "PUT" for entry in payload["entry"])
    # The same content again: no new version, nothing queued.
    with database.engine.begin() as connection:
        again = publish_report(connection, report_id=report_id, settings=settings, now=NOW)
    assert again is not None and again.version_id == stored.version_id
    assert _count(database, "SELECT count(*) FROM outbox") == 1


def test_a_mapping_fault_does_not_hold_up_a_study(
    region: tuple[Database, Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database, settings = region
    with database.engine.begin() as connection:
        study_id = connection.execute(
            text("SELECT id FROM study WHERE status = 'complete' ORDER BY id DESC LIMIT 1")
        ).scalar_one()
        connection.execute(
            text("UPDATE study SET status = 'receiving', completed_at = NULL WHERE id = :s"),
            {"s": study_id},
        )

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("a mapper bug")

    monkeypatch.setattr(publishing, "imaging_study_from", broken)
    with caplog.at_level(logging.ERROR, logger="huren.fhir.publish"):
        Stabiliser(database=database, settings=settings).complete(study_id, now=NOW)
    assert (
        _count(
            database, f"SELECT count(*) FROM study WHERE id = {study_id} AND status = 'complete'"
        )
        == 1
    )
    assert _count(database, "SELECT count(*) FROM fhir_resource") == 0
    assert "run huren fhir publish" in caplog.text
    monkeypatch.undo()
    with database.engine.begin() as connection:
        assert publish_study(connection, study_id=study_id, settings=settings, now=NOW) is not None
    assert (
        _count(database, "SELECT count(*) FROM fhir_resource WHERE resource_type = 'ImagingStudy'")
        == 1
    )
