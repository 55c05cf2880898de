"""Gathering priors for the recognition rules: the hub's own studies and other nodes' reports."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, text

from fhir.identifiers import HR_TAG_SYSTEM, RESIDENT_ID_SYSTEM
from integration.database import Database, day, fetch_rows, instant
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.fhir_exchange import accept_transaction
from integration.priors import catalogue, find_person, priors_of
from integration.recognition import Reason, Rules, verdicts
from integration.settings import Settings
from tests.hub_helpers import hub_environment

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Database:
    folder = tmp_path_factory.mktemp("region")
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "demo", "seed", "--scale", "tiny", "--quiet"],
        env=hub_environment(folder, database_url=module_database_url),
        check=True,
        capture_output=True,
        timeout=300,
    )
    database = Database.from_settings(Settings(data_dir=folder, database_url=module_database_url))  # type: ignore[arg-type]
    yield database  # type: ignore[misc]
    database.dispose()


def _returning_patient(connection: Connection) -> tuple[int, str]:
    """A patient with at least two complete studies of one exam type, both reported final."""
    row = connection.execute(
        text(
            "SELECT s.patient_id, e.code FROM study s JOIN report r ON r.study_id = s.id "
            "JOIN exam_type e ON e.id = s.exam_type_id WHERE r.status = 'final' "
            "AND s.completed_at IS NOT NULL GROUP BY 1, 2 HAVING count(*) >= 2 "
            "ORDER BY max(s.started_at) DESC LIMIT 1"
        )
    ).one()
    return int(row.patient_id), str(row.code)


def test_driver_values_become_aware_instants_and_days() -> None:
    assert instant("2026-11-25 08:30:00.000001") == datetime(2026, 11, 25, 8, 30, 0, 1, tzinfo=UTC)
    aware = datetime(2026, 11, 25, 16, 30, tzinfo=ZONE)
    assert instant(aware) is aware
    assert day("2026-11-25") == day(date(2026, 11, 25)) == date(2026, 11, 25)


def test_the_same_person_is_found_by_fhir_id_and_by_resident_id(region: Database) -> None:
    with region.engine.connect() as connection:
        patient_id, _ = _returning_patient(connection)
        by_id = find_person(connection, fhir_id=str(patient_id))
        assert by_id is not None and by_id.patient_ids[0] == patient_id
        assert by_id.resident_id and len(by_id.resident_id) == 18
        assert find_person(connection, resident_id=by_id.resident_id) == by_id
        assert find_person(connection, fhir_id="no-such-patient") is None
        assert find_person(connection, resident_id="110101199003070000") is None


def test_local_priors_carry_the_facts_the_rules_need(region: Database) -> None:
    with region.engine.connect() as connection:
        patient_id, code = _returning_patient(connection)
        person = find_person(connection, fhir_id=str(patient_id))
        assert person is not None
        exams = catalogue(connection)
        priors = priors_of(connection, person=person, exams=exams, zone=ZONE)
        studies = connection.execute(
            text("SELECT count(*) FROM study WHERE patient_id = :p AND completed_at IS NOT NULL"),
            {"p": patient_id},
        ).scalar()
    assert len(priors) == studies
    requested = next(exam for exam in exams if exam.code == code)
    found = verdicts(priors, requested=requested, on=date.today(), rules=Rules())
    assert len(found) >= 2 and all(v.prior.exam_code == code for v in found)
    for verdict in found:
        assert (Reason.report_not_final in verdict.reasons) == (
            verdict.prior.report_status is None
            or verdict.prior.report_status.value == "preliminary"
        )
        assert verdict.prior.recognised_item == requested.recognised


def test_kinds_narrow_the_priors_to_the_exam_types_asked_for(region: Database) -> None:
    with region.engine.connect() as connection:
        patient_id, code = _returning_patient(connection)
        person = find_person(connection, fhir_id=str(patient_id))
        assert person is not None
        exams = catalogue(connection)
        every = priors_of(connection, person=person, exams=exams, zone=ZONE)
        narrowed = priors_of(connection, person=person, exams=exams, zone=ZONE, kinds={code})
        nothing = priors_of(connection, person=person, exams=exams, zone=ZONE, kinds=set())
    assert len({prior.exam_code for prior in every}) >= 1
    assert sorted(narrowed, key=lambda p: p.key) == sorted(
        (prior for prior in every if prior.exam_code == code), key=lambda p: p.key
    )
    assert len(narrowed) >= 2 and nothing == []


def test_a_report_from_another_node_counts_by_its_hr_tag(region: Database) -> None:
    with region.engine.connect() as connection:  # rolled back at the end
        patient_id, code = _returning_patient(connection)
        person = find_person(connection, fhir_id=str(patient_id))
        assert person is not None and person.resident_id
        exams = catalogue(connection)
        requested = next(exam for exam in exams if exam.code == code)
        local = json.loads(
            connection.execute(
                text(
                    "SELECT body FROM fhir_resource WHERE resource_type = 'DiagnosticReport' "
                    "AND origin = '' LIMIT 1"
                )
            ).scalar_one()
        )
        report = copy.deepcopy(local)
        for key in ("id", "meta", "basedOn", "imagingStudy", "resultsInterpreter", "presentedForm"):
            report.pop(key, None)
        report["code"] = (
            {"coding": [{"system": "http://loinc.org", "code": requested.loinc}]}
            if requested.loinc
            else {"coding": [{"system": "https://huren.health/fhir/sid/exam-type", "code": code}]}
        )
        report["identifier"] = [
            {"system": "https://huren.health/fhir/sid/report", "value": "2.25.4242"}
        ]
        report["effectiveDateTime"] = NOW.isoformat()
        report["status"] = "final"
        report["conclusion"] = "外院：未见明显异常。"
        report["meta"] = {"tag": [{"system": HR_TAG_SYSTEM, "code": "HR"}]}
        report["subject"] = {"reference": "urn:uuid:7f1d1c2e-0000-4000-8000-000000000001"}
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:7f1d1c2e-0000-4000-8000-000000000001",
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": person.resident_id}],
                        "name": [{"text": "外院患者"}],
                    },
                    "request": {
                        "method": "PUT",
                        "url": f"Patient?identifier={RESIDENT_ID_SYSTEM}|{person.resident_id}",
                    },
                },
                {
                    "resource": report,
                    "request": {
                        "method": "PUT",
                        "url": "DiagnosticReport?identifier=https://huren.health/fhir/sid/report|2.25.4242",
                    },
                },
            ],
        }
        accept_transaction(
            connection, bundle, origin="province", now=NOW, location=lambda s: s.reference
        )
        priors = priors_of(connection, person=person, exams=exams, zone=ZONE)
        remote = [prior for prior in priors if prior.source == "province"]
        assert [prior.key for prior in remote] == ["2.25.4242"]
        verdict = verdicts(
            remote, requested=requested, on=NOW.astimezone(ZONE).date(), rules=Rules()
        )[0]
        assert verdict.prior.conclusion == "外院：未见明显异常。"
        assert verdict.recognisable == requested.recognised
        # The same report without the HR tag: the sender did not vouch for it.
        untagged = copy.deepcopy(bundle)
        untagged["entry"][1]["resource"]["meta"] = {}
        accept_transaction(
            connection, untagged, origin="province", now=NOW, location=lambda s: s.reference
        )
        remote = [
            p for p in priors_of(connection, person=person, exams=exams, zone=ZONE) if p.source
        ]
        verdict = verdicts(
            remote, requested=requested, on=NOW.astimezone(ZONE).date(), rules=Rules()
        )[0]
        assert Reason.facility_not_qualified in verdict.reasons
        connection.rollback()  # leave the shared region as it was


@pytest.mark.postgres
def test_the_lookups_run_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database, settings=settings, options=DemoOptions(seed=7, exams=400, progress=False)
    )
    try:
        with database.engine.connect() as connection:
            patient_id, code = _returning_patient(connection)
            person = find_person(connection, fhir_id=str(patient_id))
            assert person is not None and person.resident_id
            assert find_person(connection, resident_id=person.resident_id) == person
            exams = catalogue(connection)
            priors = priors_of(connection, person=person, exams=exams, zone=ZONE)
            studies = connection.execute(
                text(
                    "SELECT count(*) FROM study WHERE patient_id = :p AND completed_at IS NOT NULL"
                ),
                {"p": patient_id},
            ).scalar()
            assert fetch_rows(connection, "SELECT ? || ?", ("a", "b")) == [("ab",)]
        assert len(priors) == studies
        requested = next(exam for exam in exams if exam.code == code)
        found = verdicts(priors, requested=requested, on=date.today(), rules=Rules())
        assert len(found) >= 2 and all(isinstance(v.prior.performed_on, date) for v in found)
    finally:
        database.dispose()
