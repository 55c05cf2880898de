"""The /fhir API served for real (uvicorn on 127.0.0.1, a seeded SQLite file), driven with httpx.

The region comes from ``huren demo seed --scale tiny``, which publishes the last
days' studies and reports; expectations are worked out from the domain tables
and the stored resources, independently of the search code under test.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.reference import Reference
from sqlalchemy import Engine, func, select, text

from fhir.bundle import transaction_bundle
from fhir.identifiers import DICOM_UID_SYSTEM, REPORT_SYSTEM, RESIDENT_ID_SYSTEM
from integration.database import Database
from integration.fhir_exchange import FHIR_BATCHING, send_fhir
from integration.outbox import OutboxWorker, enqueue
from integration.settings import Settings
from models import metadata
from models.engine import create_db_engine
from models.enums import OutboxChannel, Sex
from models.identity import make_resident_id
from tests.conftest import free_port
from tests.fhir_hub import (
    ServedApi,
    copy_region,
    huren,
    search_all,
    seed_region,
    served_api,
)
from tests.hub_helpers import start_hub

T = metadata.tables
DCM = "http://dicom.nema.org/resources/ontology/DCM"
FHIR_JSON = "application/fhir+json"
SERVED = {
    "Patient": {"identifier": "token", "name": "string", "birthdate": "date"},
    "ServiceRequest": {
        "patient": "reference",
        "identifier": "token",
        "status": "token",
        "authored": "date",
    },
    "ImagingStudy": {
        "patient": "reference",
        "identifier": "token",
        "modality": "token",
        "started": "date",
        "status": "token",
    },
    "DiagnosticReport": {
        "patient": "reference",
        "identifier": "token",
        "status": "token",
        "date": "date",
        "based-on": "reference",
    },
    "Organization": {"identifier": "token"},
    "Practitioner": {"identifier": "token"},
    "PractitionerRole": {"identifier": "token"},
    "Endpoint": {"identifier": "token"},
}


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A seeded demo region (never served itself) and the tokens of its API clients."""
    folder = tmp_path_factory.mktemp("region")
    return folder, seed_region(folder)


@pytest.fixture(scope="module")
def tokens(region: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return region[1]


@pytest.fixture(scope="module")
def api(
    region: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApi]:
    """The region served for the tests that only read (searches, reads, the audit of reads)."""
    with served_api(copy_region(region[0], tmp_path_factory.mktemp("served"))) as served:
        yield served


@pytest.fixture
def writable(region: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[ServedApi]:
    """A private copy of the region, served with a 64 KiB body limit, for tests that write."""
    with served_api(copy_region(region[0], tmp_path / "region"), max_body=64 * 1024) as served:
        yield served


@pytest.fixture(scope="module")
def reader(api: ServedApi, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    with api.client(tokens["reader"]) as client:
        yield client


# --- helpers ------------------------------------------------------------------------------------


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def identifiers(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (i.get("system", ""), i["value"]) for i in resource.get("identifier", []) if "value" in i
    ]


def subject_id(resource: dict[str, Any]) -> str | None:
    reference = (resource.get("subject") or {}).get("reference", "")
    return reference.split("/")[-1] if reference.startswith("Patient/") else None


def matching(resources: dict[str, dict[str, Any]], keep: Any) -> set[str]:
    return {logical_id for logical_id, resource in resources.items() if keep(resource)}


def found(client: httpx.Client, resource_type: str, *params: tuple[str, str]) -> set[str]:
    """The ids a search finds (all pages); each exactly once, as many as Bundle.total says."""
    resources, total = search_all(client, resource_type, list(params))
    ids = [resource["id"] for resource in resources]
    assert all(resource["resourceType"] == resource_type for resource in resources)
    assert len(ids) == len(set(ids)) == total
    return set(ids)


def outcome(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Checks an OperationOutcome answer; its single issue."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code, issue
    return dict(issue)


def audit_rows(engine: Engine, after: int) -> list[Any]:
    return rows(
        engine,
        "SELECT action, actor, source_address, entity_type, entity_id, patient_id, detail "
        "FROM audit_event WHERE id > :after ORDER BY id",
        after=after,
    )


def last_audit_id(engine: Engine) -> int:
    return int(rows(engine, "SELECT coalesce(max(id), 0) FROM audit_event")[0][0])


def resource_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(T["fhir_resource"])).scalar_one()
        )


# --- metadata, authentication, authorisation ---------------------------------------------------


def test_metadata_needs_no_token_and_lists_every_type_and_parameter(api: ServedApi) -> None:
    with api.client() as client:
        answer = client.get("/metadata")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    statement = answer.json()
    CapabilityStatement.model_validate(statement)  # valid FHIR
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == api.base
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    assert {"code": "transaction"} in rest["interaction"]
    served = {resource["type"]: resource for resource in rest["resource"]}
    assert set(served) == set(SERVED)
    for resource_type, parameters in SERVED.items():
        resource = served[resource_type]
        declared = {param["name"]: param["type"] for param in resource["searchParam"]}
        assert declared == parameters, resource_type
        assert {"code": "read"} in resource["interaction"]
        assert {"code": "search-type"} in resource["interaction"]
    assert served["DiagnosticReport"]["searchInclude"] == ["DiagnosticReport:imaging-study"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Token abc",
        "Basic cmVhZGVyOnNlY3JldA==",
        "Bearer hrn_not-a-token",
        "hrn_x",
    ],
)
def test_without_a_valid_token_401(api: ServedApi, authorization: str | None) -> None:
    study_id = next(iter(api.stored("ImagingStudy")))
    headers = {} if authorization is None else {"Authorization": authorization}
    with api.client() as client:
        for answer in (
            client.get(f"/ImagingStudy/{study_id}", headers=headers),
            client.get("/ImagingStudy", headers=headers),
            client.get("/Organization", headers=headers),
            client.post("/", content=b'{"resourceType":"Bundle"}', headers=headers),
        ):
            issue = outcome(answer, 401, "login")
            assert "token" in issue["diagnostics"].lower()
            assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_bearer_scheme_is_case_insensitive(api: ServedApi, tokens: dict[str, str]) -> None:
    with api.client() as client:
        answer = client.get(
            "/Endpoint/wado-rs", headers={"Authorization": f"bearer {tokens['reader']}"}
        )
    assert answer.status_code == 200


def test_a_scope_without_the_type_is_403(api: ServedApi, tokens: dict[str, str]) -> None:
    study_id = next(iter(api.stored("ImagingStudy")))
    patient_id = next(iter(api.stored("Patient")))
    with api.client(tokens["patient-reader"]) as client:
        assert client.get(f"/Patient/{patient_id}").status_code == 200
        assert client.get("/Patient", params={"_summary": "count"}).status_code == 200
        issue = outcome(client.get(f"/ImagingStudy/{study_id}"), 403, "forbidden")
        assert "patient-reader" in issue["diagnostics"]
        assert "ImagingStudy" in issue["diagnostics"]
        # the answer is the same whether the resource exists or not
        outcome(client.get("/ImagingStudy/no-such-study"), 403, "forbidden")
        outcome(client.get("/DiagnosticReport", params={"status": "final"}), 403, "forbidden")
        outcome(client.get("/Organization"), 403, "forbidden")
    with api.client(tokens["report-reader"]) as client:
        assert client.get("/DiagnosticReport").status_code == 200
        # _include would hand out ImagingStudies, which this client may not read
        answer = client.get(
            "/DiagnosticReport", params={"_include": "DiagnosticReport:imaging-study"}
        )
        outcome(answer, 403, "forbidden")


def test_read_only_scopes_cannot_write(writable: ServedApi, tokens: dict[str, str]) -> None:
    bundle = province_bundle(resident=new_resident_id(writable.engine), uid="2.25.403")
    before = resource_count(writable.engine)
    for client_name in ("reader", "patient-reader"):
        with writable.client(tokens[client_name]) as client:
            issue = outcome(client.post("/", json=bundle), 403, "forbidden")
            assert client_name in issue["diagnostics"] and "write" in issue["diagnostics"]
    # SMART v2: system/*.rs plus system/ImagingStudy.cud writes studies, not patients
    with writable.client(tokens["imaging-writer"]) as client:
        issue = outcome(client.post("/", json=bundle), 403, "forbidden")
        assert re.search(r"may not write (Patient|DiagnosticReport)$", issue["diagnostics"])
        assert resource_count(writable.engine) == before
        patient_id = next(iter(writable.stored("Patient")))
        study_only = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": study_json("2.25.404", subject=f"Patient/{patient_id}"),
                    "request": {
                        "method": "PUT",
                        "url": f"ImagingStudy?identifier={DICOM_UID_SYSTEM}|urn:oid:2.25.404",
                    },
                }
            ],
        }
        answer = client.post("/", json=study_only)
        assert answer.status_code == 200, answer.text
        assert answer.json()["entry"][0]["response"]["status"] == "201 Created"
    assert resource_count(writable.engine) == before + 1


def test_a_revoked_token_stops_working(writable: ServedApi, tokens: dict[str, str]) -> None:
    with writable.client(tokens["reader"]) as client:
        assert client.get("/Endpoint/wado-rs").status_code == 200
        huren(writable.data_dir, "token", "revoke", "--client", "reader")
        outcome(client.get("/Endpoint/wado-rs"), 401, "login")
    with writable.client(tokens["writer"]) as client:  # others are untouched
        assert client.get("/Endpoint/wado-rs").status_code == 200
    listed = huren(writable.data_dir, "token", "list")
    assert re.search(r"^reader\s+revoked", listed, re.MULTILINE)
    assert re.search(r"^writer\s+active", listed, re.MULTILINE)


def test_huren_serve_answers_fhir_and_a_fresh_hub_refuses_a_revoked_token(
    region: tuple[Path, dict[str, str]], tokens: dict[str, str], tmp_path: Path
) -> None:
    """The real hub process wires the API (its token cache is 30 s, so revoke, then restart)."""
    folder = copy_region(region[0], tmp_path / "hub")
    engine = create_db_engine(f"sqlite:///{folder / 'huren.db'}")
    query = "SELECT logical_id FROM fhir_resource WHERE resource_type = 'Patient'"
    try:
        patient_id = str(rows(engine, query)[0].logical_id)
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {tokens['reader']}"}
    for revoked in (False, True):
        port = free_port()
        hub = start_hub(folder, http_port=port)
        try:
            base = f"http://127.0.0.1:{port}/fhir"
            with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
                statement = client.get("/metadata").json()
                assert statement["fhirVersion"] == "4.0.1"
                assert statement["implementation"]["url"] == base
                answer = client.get(f"/Patient/{patient_id}", headers=headers)
                if revoked:
                    outcome(answer, 401, "login")
                else:
                    assert answer.status_code == 200
                    assert answer.json()["id"] == patient_id
        finally:
            hub.send_signal(signal.SIGTERM)
            hub.wait(timeout=30)
        assert hub.returncode == 0
        if not revoked:
            huren(folder, "token", "revoke", "--client", "reader")


# --- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource_type",
    [
        "Patient",
        "ServiceRequest",
        "ImagingStudy",
        "DiagnosticReport",
        "Organization",
        "Practitioner",
        "Endpoint",
    ],
)
def test_read_answers_the_stored_json_with_etag(
    api: ServedApi, reader: httpx.Client, resource_type: str
) -> None:
    stored = rows(
        api.engine,
        "SELECT logical_id, version_id, body FROM fhir_resource WHERE resource_type = :t "
        "ORDER BY id",
        t=resource_type,
    )
    assert stored, f"the demo seed published no {resource_type}"
    for row in stored[:3]:
        answer = reader.get(f"/{resource_type}/{row.logical_id}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(FHIR_JSON)
        assert answer.headers["etag"] == f'W/"{row.version_id}"'
        assert answer.headers["last-modified"].endswith(" GMT")
        assert answer.content.decode() == row.body
        body = answer.json()
        assert body["resourceType"] == resource_type and body["id"] == row.logical_id
        assert body["meta"]["versionId"] == str(row.version_id)


def test_read_patient_matches_the_hub_patient(api: ServedApi, reader: httpx.Client) -> None:
    people = rows(
        api.engine,
        "SELECT p.id, p.name, p.birth_date, i.value FROM patient p "
        "JOIN patient_identifier i ON i.patient_id = p.id AND i.kind = 'resident_id' "
        "WHERE CAST(p.id AS TEXT) IN (SELECT logical_id FROM fhir_resource "
        "WHERE resource_type = 'Patient') ORDER BY p.id",
    )
    assert people
    for person in people[:5]:
        body = reader.get(f"/Patient/{person.id}").json()
        assert body["name"][0]["text"] == person.name
        assert body["birthDate"] == str(person.birth_date)
        assert (RESIDENT_ID_SYSTEM, person.value) in identifiers(body)


def test_unknown_ids_and_unserved_types_are_404(api: ServedApi, reader: httpx.Client) -> None:
    for resource_type in SERVED:
        issue = outcome(reader.get(f"/{resource_type}/no-such-id"), 404, "not-found")
        assert f"{resource_type}/no-such-id" in issue["diagnostics"]
    for path in ("/Observation/1", "/Observation", "/Binary/1", "/AuditEvent"):
        issue = outcome(reader.get(path), 404, "not-supported")
        assert issue["expression"] == ["type"]
    study_id = next(iter(api.stored("ImagingStudy")))
    outcome(reader.get(f"/ImagingStudy/{study_id}/_history/1"), 404, "not-found")


# --- searches ------------------------------------------------------------------------------------


def test_patient_search_parameters(api: ServedApi, reader: httpx.Client) -> None:
    patients = api.stored("Patient")
    residents = rows(
        api.engine,
        "SELECT patient_id, value FROM patient_identifier WHERE kind = 'resident_id'",
    )
    published = [(str(r.patient_id), r.value) for r in residents if str(r.patient_id) in patients]
    assert len(published) >= 3
    for patient_id, resident in published:
        assert found(reader, "Patient", ("identifier", f"{RESIDENT_ID_SYSTEM}|{resident}")) == {
            patient_id
        }
        assert found(reader, "Patient", ("identifier", resident)) == {patient_id}
        assert found(reader, "Patient", ("identifier", f"urn:other|{resident}")) == set()
    (a, ra), (b, rb) = published[:2]
    assert found(reader, "Patient", ("identifier", f"{ra},{RESIDENT_ID_SYSTEM}|{rb}")) == {a, b}
    for patient_id, body in list(patients.items())[:5]:
        for system, value in identifiers(body):
            if system != RESIDENT_ID_SYSTEM:  # an MRN: one facility's number
                expected = matching(patients, lambda r, s=system, v=value: (s, v) in identifiers(r))
                assert found(reader, "Patient", ("identifier", f"{system}|{value}")) == expected
                assert patient_id in expected

    names = rows(api.engine, "SELECT id, name FROM patient")
    family_names = {body["name"][0]["family"] for body in patients.values()}
    for family in sorted(family_names):
        expected = {str(r.id) for r in names if family in r.name and str(r.id) in patients}
        assert found(reader, "Patient", ("name", family)) == expected
        assert found(reader, "Patient", ("name:contains", family)) == expected
    some = next(iter(patients.values()))["name"][0]["text"]
    assert some in {r.name for r in names}
    assert found(reader, "Patient", ("name", some)) == {
        str(r.id) for r in names if some in r.name and str(r.id) in patients
    }

    born = {
        logical_id: date.fromisoformat(body["birthDate"]) for logical_id, body in patients.items()
    }
    for day in sorted(set(born.values()))[:5]:
        expected = {logical_id for logical_id, b in born.items() if b == day}
        assert found(reader, "Patient", ("birthdate", day.isoformat())) == expected
        assert found(reader, "Patient", ("birthdate", f"eq{day:%Y-%m}")) == {
            logical_id
            for logical_id, b in born.items()
            if (b.year, b.month) == (day.year, day.month)
        }
    middle = sorted(born.values())[len(born) // 2]
    before = found(reader, "Patient", ("birthdate", f"lt{middle.isoformat()}"))
    after = found(reader, "Patient", ("birthdate", f"ge{middle.isoformat()}"))
    assert before == {logical_id for logical_id, b in born.items() if b < middle}
    assert before | after == set(born) and not before & after
    assert found(reader, "Patient", ("birthdate", f"gt{middle.year}")) == {
        logical_id for logical_id, b in born.items() if b.year > middle.year
    }
    assert found(reader, "Patient", ("birthdate", f"le{middle.year}")) == {
        logical_id for logical_id, b in born.items() if b.year <= middle.year
    }


def test_imaging_study_search_parameters(api: ServedApi, reader: httpx.Client) -> None:
    studies = api.stored("ImagingStudy")
    assert len(studies) >= 5
    facts = {
        str(row.id): row
        for row in rows(
            api.engine,
            "SELECT id, patient_id, study_instance_uid, accession_number, modalities, status "
            "FROM study",
        )
        if str(row.id) in studies
    }
    assert set(facts) == set(studies)  # every stored ImagingStudy is a study of the hub
    for patient in {row.patient_id for row in facts.values()}:
        expected = {i for i, row in facts.items() if row.patient_id == patient}
        assert found(reader, "ImagingStudy", ("patient", str(patient))) == expected
        assert found(reader, "ImagingStudy", ("patient", f"Patient/{patient}")) == expected
        assert (
            found(reader, "ImagingStudy", ("patient", f"{api.base}/Patient/{patient}")) == expected
        )
    two = sorted({row.patient_id for row in facts.values()})[:2]
    assert found(reader, "ImagingStudy", ("patient", f"{two[0]},{two[1]}")) == {
        i for i, row in facts.items() if row.patient_id in two
    }
    for study_id, row in facts.items():
        uid = f"urn:oid:{row.study_instance_uid}"
        assert found(reader, "ImagingStudy", ("identifier", f"{DICOM_UID_SYSTEM}|{uid}")) == {
            study_id
        }
        if row.accession_number:
            accession = row.accession_number
            same = {i for i, r in facts.items() if r.accession_number == accession}
            assert found(reader, "ImagingStudy", ("identifier", accession)) == same
    modalities = {m for row in facts.values() for m in row.modalities.split("\\")}
    for modality in modalities:
        expected = {i for i, row in facts.items() if modality in row.modalities.split("\\")}
        assert found(reader, "ImagingStudy", ("modality", modality)) == expected
        assert found(reader, "ImagingStudy", ("modality", f"{DCM}|{modality}")) == expected
    assert found(reader, "ImagingStudy", ("modality", ",".join(sorted(modalities)))) == set(studies)
    assert found(reader, "ImagingStudy", ("modality", "MG")) == (
        {i for i, row in facts.items() if "MG" in row.modalities.split("\\")}
    )
    available = {i for i, row in facts.items() if row.status == "complete"}
    assert available  # a study is published when complete
    assert found(reader, "ImagingStudy", ("status", "available")) == available
    assert found(reader, "ImagingStudy", ("status", "registered,cancelled")) == (
        set(studies) - available
    )

    started = {i: moment(body["started"]) for i, body in studies.items()}
    for day in sorted({m.date() for m in started.values()}):
        assert found(reader, "ImagingStudy", ("started", day.isoformat())) == {
            i for i, m in started.items() if m.date() == day
        }
    pivot = sorted(started.values())[len(started) // 2]
    stamp = pivot.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert found(reader, "ImagingStudy", ("started", f"lt{stamp}")) == {
        i for i, m in started.items() if m < pivot.replace(microsecond=0)
    }
    assert found(reader, "ImagingStudy", ("started", f"ge{stamp}")) == {
        i for i, m in started.items() if m >= pivot.replace(microsecond=0)
    }
    assert found(reader, "ImagingStudy", ("started", stamp)) == {
        i for i, m in started.items() if m.replace(microsecond=0) == pivot.replace(microsecond=0)
    }
    first, last = min(started.values()), max(started.values())
    assert found(
        reader,
        "ImagingStudy",
        ("started", f"ge{first:%Y-%m-%d}"),
        ("started", f"le{last:%Y-%m-%d}"),
    ) == set(studies)
    assert found(reader, "ImagingStudy", ("started", f"gt{last:%Y-%m-%d}")) == set()


def test_diagnostic_report_search_parameters(api: ServedApi, reader: httpx.Client) -> None:
    reports = api.stored("DiagnosticReport")
    assert len(reports) >= 5
    facts = {
        str(row.id): row
        for row in rows(
            api.engine,
            "SELECT r.id, r.status, r.order_id, s.patient_id, s.id AS study_id "
            "FROM report r JOIN study s ON s.id = r.study_id",
        )
        if str(row.id) in reports
    }
    assert set(facts) == set(reports)
    for patient in {row.patient_id for row in facts.values()}:
        assert found(reader, "DiagnosticReport", ("patient", str(patient))) == {
            i for i, row in facts.items() if row.patient_id == patient
        }
    for report_id, body in reports.items():
        for system, value in identifiers(body):
            assert found(reader, "DiagnosticReport", ("identifier", f"{system}|{value}")) == {
                report_id
            }
        assert body["imagingStudy"] == [{"reference": f"ImagingStudy/{facts[report_id].study_id}"}]
    for order in {row.order_id for row in facts.values()}:
        expected = {i for i, row in facts.items() if row.order_id == order}
        assert (
            found(reader, "DiagnosticReport", ("based-on", f"ServiceRequest/{order}")) == expected
        )
        assert found(reader, "DiagnosticReport", ("based-on", str(order))) == expected
    statuses = {row.status for row in facts.values()}
    for status in statuses:
        assert found(reader, "DiagnosticReport", ("status", status)) == {
            i for i, row in facts.items() if row.status == status
        }
    assert found(reader, "DiagnosticReport", ("status", "preliminary,entered-in-error")) == {
        i for i, row in facts.items() if row.status == "preliminary"
    }
    effective = {i: moment(body["effectiveDateTime"]) for i, body in reports.items()}
    for day in sorted({m.date() for m in effective.values()}):
        assert found(reader, "DiagnosticReport", ("date", day.isoformat())) == {
            i for i, m in effective.items() if m.date() == day
        }
        assert found(reader, "DiagnosticReport", ("date", f"gt{day.isoformat()}")) == {
            i for i, m in effective.items() if m.date() > day
        }


def test_service_request_search_parameters(api: ServedApi, reader: httpx.Client) -> None:
    orders = api.stored("ServiceRequest")
    assert len(orders) >= 5
    facts = {
        str(row.id): row
        for row in rows(api.engine, "SELECT id, patient_id, accession_number FROM exam_order")
        if str(row.id) in orders
    }
    assert set(facts) == set(orders)
    for patient in {row.patient_id for row in facts.values()}:
        assert found(reader, "ServiceRequest", ("patient", str(patient))) == {
            i for i, row in facts.items() if row.patient_id == patient
        }
    for order_id, body in orders.items():
        for system, value in identifiers(body):
            expected = matching(orders, lambda r, s=system, v=value: (s, v) in identifiers(r))
            assert found(reader, "ServiceRequest", ("identifier", f"{system}|{value}")) == expected
            assert order_id in expected
        assert found(
            reader, "ServiceRequest", ("identifier", facts[order_id].accession_number)
        ) >= {order_id}
    for status in {body["status"] for body in orders.values()}:
        assert found(reader, "ServiceRequest", ("status", status)) == matching(
            orders, lambda r, s=status: r["status"] == s
        )
    authored = {i: moment(body["authoredOn"]) for i, body in orders.items()}
    for day in sorted({m.date() for m in authored.values()}):
        assert found(reader, "ServiceRequest", ("authored", day.isoformat())) == {
            i for i, m in authored.items() if m.date() == day
        }
        assert found(reader, "ServiceRequest", ("authored", f"lt{day.isoformat()}")) == {
            i for i, m in authored.items() if m.date() < day
        }
        assert found(reader, "ServiceRequest", ("authored", f"le{day.isoformat()}")) == {
            i for i, m in authored.items() if m.date() <= day
        }


@pytest.mark.parametrize(
    "resource_type", ["Organization", "Practitioner", "PractitionerRole", "Endpoint"]
)
def test_directory_search_by_identifier(
    api: ServedApi, reader: httpx.Client, resource_type: str
) -> None:
    stored = api.stored(resource_type)
    assert found(reader, resource_type) == set(stored)
    for logical_id, body in list(stored.items())[:5]:
        for system, value in identifiers(body):
            assert found(reader, resource_type, ("identifier", f"{system}|{value}")) == {logical_id}


def test_paging_by_next_links_collects_every_match_once(
    api: ServedApi, reader: httpx.Client
) -> None:
    studies = api.stored("ImagingStudy")
    answer = reader.get("/ImagingStudy", params={"_count": "3"})
    bundle = answer.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(studies)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert pages <= len(studies) // 3 + 2, "next links do not end"
        assert bundle["total"] == len(studies)
        entries = bundle.get("entry", [])
        assert len(entries) <= 3
        for entry in entries:
            assert entry["search"]["mode"] == "match"
            assert entry["fullUrl"] == f"{api.base}/ImagingStudy/{entry['resource']['id']}"
        seen += [entry["resource"]["id"] for entry in entries]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith(f"{api.base}/ImagingStudy?")
        assert ("previous" in links) == (pages > 1)
        if "next" not in links:
            break
        assert len(entries) == 3
        assert links["next"].startswith(f"{api.base}/ImagingStudy?")
        bundle = reader.get(links["next"]).json()
    assert len(seen) == len(set(seen)) == len(studies)
    assert set(seen) == set(studies)
    assert pages == -(-len(studies) // 3)


def test_paging_keeps_the_filters(api: ServedApi, reader: httpx.Client) -> None:
    studies = api.stored("ImagingStudy")
    modality = next(iter(studies.values()))["modality"][0]["code"]
    expected = matching(studies, lambda r: any(c["code"] == modality for c in r["modality"]))
    seen: list[str] = []
    url: str | None = f"{api.base}/ImagingStudy?modality={modality}&_count=1"
    for _ in range(len(expected) + 1):
        if url is None:
            break
        bundle = reader.get(url).json()
        assert bundle["total"] == len(expected)
        seen += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        assert url is None or f"modality={modality}" in url
    assert url is None
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize(
    ("resource_type", "field"),
    [("ImagingStudy", "started"), ("DiagnosticReport", "effectiveDateTime")],
)
def test_sort_by_date(api: ServedApi, reader: httpx.Client, resource_type: str, field: str) -> None:
    stored = api.stored(resource_type)
    for sort, descending in (("-date", True), ("date", False)):
        seen: list[datetime] = []
        url: str | None = f"{api.base}/{resource_type}?_sort={sort}&_count=4"
        for _ in range(len(stored)):
            if url is None:
                break
            bundle = reader.get(url).json()
            seen += [moment(entry["resource"][field]) for entry in bundle.get("entry", [])]
            url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        assert len(seen) == len(stored)
        assert seen == sorted(seen, reverse=descending)


def test_sort_by_last_updated(api: ServedApi, reader: httpx.Client) -> None:
    bundle = reader.get("/Patient", params={"_sort": "-_lastUpdated", "_count": "200"}).json()
    stamps = [moment(entry["resource"]["meta"]["lastUpdated"]) for entry in bundle["entry"]]
    assert len(stamps) == len(api.stored("Patient"))
    assert stamps == sorted(stamps, reverse=True)


def test_include_adds_the_imaging_studies(api: ServedApi, reader: httpx.Client) -> None:
    reports = api.stored("DiagnosticReport")
    studies = api.stored("ImagingStudy")
    bundle = reader.get(
        "/DiagnosticReport",
        params={"_include": "DiagnosticReport:imaging-study", "_count": "200"},
    ).json()
    assert bundle["total"] == len(reports)
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert {e["resource"]["id"] for e in matches} == set(reports)
    wanted = {
        reference["reference"].split("/")[1]
        for body in reports.values()
        for reference in body["imagingStudy"]
    }
    assert wanted <= set(studies)
    assert sorted(e["resource"]["id"] for e in included) == sorted(wanted)  # each once
    for entry in included:
        assert entry["resource"]["resourceType"] == "ImagingStudy"
        assert entry["fullUrl"] == f"{api.base}/ImagingStudy/{entry['resource']['id']}"
        assert entry["resource"] == studies[entry["resource"]["id"]]
    # with a filter, only the matching reports' studies come along
    body = next(iter(reports.values()))
    patient = subject_id(body)
    bundle = reader.get(
        "/DiagnosticReport",
        params={"patient": patient, "_include": "DiagnosticReport:imaging-study"},
    ).json()
    mine = matching(reports, lambda r: subject_id(r) == patient)
    assert {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"} == mine
    assert {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"} == {
        reference["reference"].split("/")[1]
        for i in mine
        for reference in reports[i]["imagingStudy"]
    }
    assert bundle["total"] == len(mine)


def test_summary_count(api: ServedApi, reader: httpx.Client) -> None:
    studies = api.stored("ImagingStudy")
    for params in ({"_summary": "count"}, {"_count": "0"}):
        bundle = reader.get("/ImagingStudy", params=params).json()
        assert bundle["total"] == len(studies)
        assert "entry" not in bundle
        assert [link["relation"] for link in bundle["link"]] == ["self"]  # nothing to page
    study = next(iter(studies.values()))
    patient = subject_id(study)
    bundle = reader.get("/ImagingStudy", params={"patient": patient, "_summary": "count"}).json()
    assert bundle["total"] == len(matching(studies, lambda r: subject_id(r) == patient))
    assert "entry" not in bundle


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/Patient", {"gender": "male"}, "gender"),
        ("/ImagingStudy", {"bodysite": "CHEST"}, "bodysite"),
        ("/ImagingStudy", {"_sort": "modality"}, "_sort"),
        ("/ImagingStudy", {"_count": "many"}, "_count"),
        ("/ImagingStudy", {"_offset": "-3"}, "_offset"),
        ("/ImagingStudy", {"started": "ne2026-03-02"}, "started"),
        ("/ImagingStudy", {"started": "last week"}, "started"),
        ("/ImagingStudy", {"modality:missing": "true"}, "modality"),
        ("/ImagingStudy", {"patient": "Practitioner/3"}, "patient"),
        ("/ImagingStudy", {"_include": "DiagnosticReport:imaging-study"}, "_include"),
        ("/DiagnosticReport", {"_include": "DiagnosticReport:subject"}, "_include"),
        ("/DiagnosticReport", {"_summary": "true"}, "_summary"),
        ("/DiagnosticReport", {"_revinclude": "Provenance:target"}, "_revinclude"),
        ("/Patient", {"birthdate": "sa1950"}, "birthdate"),
        ("/Patient", {"identifier": ""}, "identifier"),
        ("/Organization", {"name": "县医院"}, "name"),
    ],
)
def test_invalid_searches_are_400_naming_the_parameter(
    reader: httpx.Client, path: str, params: dict[str, str], parameter: str
) -> None:
    issue = outcome(reader.get(path, params=params), 400, "invalid")
    assert issue["expression"] == [parameter]
    assert parameter in issue["diagnostics"]


def test_sql_metacharacters_in_a_search_find_nothing(api: ServedApi, reader: httpx.Client) -> None:
    for params in (
        {"identifier": "x' OR 1=1 --"},
        {"name": "x' OR '1'='1"},
        {"name": "%"},
        {"name": "_"},
    ):
        assert found(reader, "Patient", *params.items()) == set(), params
    assert found(reader, "ImagingStudy", ("patient", "1 OR 1=1")) == set()
    assert found(reader, "ImagingStudy", ("modality", "CT' --")) == set()
    assert found(reader, "ImagingStudy") == set(api.stored("ImagingStudy"))  # nothing broke


# --- the audit trail of reads --------------------------------------------------------------------


def test_reads_and_searches_are_audited(api: ServedApi, reader: httpx.Client) -> None:
    studies = api.stored("ImagingStudy")
    study_id, study = next(iter(studies.items()))
    patient = subject_id(study)
    assert patient is not None and patient.isdigit()
    report_id = next(iter(api.stored("DiagnosticReport")))
    report_patient = subject_id(api.stored("DiagnosticReport")[report_id])
    before = last_audit_id(api.engine)

    assert reader.get(f"/Patient/{patient}").status_code == 200
    assert reader.get(f"/ImagingStudy/{study_id}").status_code == 200
    assert reader.get(f"/DiagnosticReport/{report_id}").status_code == 200
    assert reader.get("/ImagingStudy", params={"patient": patient}).status_code == 200
    assert reader.get("/ImagingStudy", params={"modality": "DX"}).status_code == 200
    # a patient the hub does not have: the search answers (nothing), the audit keeps no link
    assert reader.get("/ImagingStudy", params={"patient": "99999999"}).json()["total"] == 0
    assert (
        reader.get("/ImagingStudy", params={"patient": "123456789012345678901234"}).json()["total"]
        == 0
    )
    # not patient data, refused, or unknown: nothing to audit
    assert reader.get("/Organization").status_code == 200
    assert reader.get("/metadata").status_code == 200
    assert reader.get("/ImagingStudy/no-such-study").status_code == 404
    with api.client() as anonymous:
        assert anonymous.get(f"/ImagingStudy/{study_id}").status_code == 401

    audited = audit_rows(api.engine, before)
    assert [(r.action, r.entity_type, r.entity_id, r.patient_id) for r in audited] == [
        ("read", "Patient", patient, int(patient)),
        ("read", "ImagingStudy", study_id, int(patient)),
        ("read", "DiagnosticReport", report_id, int(report_patient or 0)),
        ("read", "ImagingStudy", "", int(patient)),
        ("read", "ImagingStudy", "", None),
        ("read", "ImagingStudy", "", None),
        ("read", "ImagingStudy", "", None),
    ]
    assert {r.actor for r in audited} == {"reader"}
    assert {r.source_address for r in audited} == {"127.0.0.1"}
    assert audited[3].detail == f"search patient={patient}"
    assert audited[4].detail == "search modality=DX"
    assert audited[5].detail == "search patient=99999999"


# --- transactions --------------------------------------------------------------------------------


def new_resident_id(engine: Engine, sequence: int = 7) -> str:
    """A valid resident ID the hub does not know."""
    known = {r.value for r in rows(engine, "SELECT value FROM patient_identifier")}
    for day in range(1, 29):
        candidate = make_resident_id("110105", date(1961, 2, day), sequence, Sex.male)
        if candidate not in known:
            return candidate
    raise AssertionError("no free resident ID")


def study_json(uid: str, *, subject: str, description: str = "胸部CT平扫") -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}],
        "status": "available",
        "modality": [{"system": DCM, "code": "CT"}],
        "subject": {"reference": subject},
        "started": "2026-03-02T01:05:00Z",
        "description": description,
    }


def province_bundle(
    *,
    resident: str,
    uid: str,
    name: str = "王小明",
    description: str = "胸部CT平扫",
    key: str = "",
) -> dict[str, Any]:
    """A transaction as another node sends it: conditional PUTs, references by urn:uuid.

    ``key`` goes into the sender's ids, and with them the fullUrls.
    """
    patient = Patient(
        id=f"prov-p{key}",
        identifier=[Identifier(system=RESIDENT_ID_SYSTEM, value=resident)],
        name=[HumanName(text=name, family=name[0], given=[name[1:]])],
        gender="male",
        birthDate=date(1961, 2, 1),
    )
    study = ImagingStudy(
        id=f"prov-s{key}",
        identifier=[Identifier(system=DICOM_UID_SYSTEM, value=f"urn:oid:{uid}")],
        status="available",
        modality=[Coding(system=DCM, code="CT")],
        subject=Reference(reference=f"Patient/prov-p{key}"),
        started=datetime(2026, 3, 2, 1, 5, tzinfo=UTC),
        description=description,
    )
    report = DiagnosticReport(
        id=f"prov-r{key}",
        identifier=[Identifier(system=REPORT_SYSTEM, value=uid)],
        status="final",
        code=CodeableConcept(text="胸部CT平扫"),
        subject=Reference(reference=f"Patient/prov-p{key}"),
        imagingStudy=[Reference(reference=f"ImagingStudy/prov-s{key}")],
        effectiveDateTime=datetime(2026, 3, 2, 1, 5, tzinfo=UTC),
        conclusion="胸部CT平扫未见明显异常。",
    )
    bundle = transaction_bundle([patient, study, report])
    return dict(json.loads(bundle.model_dump_json(exclude_none=True)))


LOCATION = re.compile(r"^(?P<base>.+)/(?P<type>[A-Za-z]+)/(?P<id>[^/]+)/_history/(?P<version>\d+)$")


def responses(answer: httpx.Response) -> list[tuple[str, str, str, int, str]]:
    """(status, type, id, version, etag) of each entry of a transaction-response."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction-response"
    found_entries = []
    for entry in bundle["entry"]:
        response = entry["response"]
        match = LOCATION.match(response["location"])
        assert match is not None, response["location"]
        assert response["etag"] == f'W/"{match["version"]}"'
        assert response["lastModified"]
        found_entries.append(
            (
                response["status"],
                match["type"],
                match["id"],
                int(match["version"]),
                match["base"],
            )
        )
    return found_entries


def test_transaction_creates_then_replays_then_versions(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    bundle = province_bundle(resident=new_resident_id(writable.engine), uid="2.25.1001")
    before_count = resource_count(writable.engine)
    before_audit = last_audit_id(writable.engine)
    with writable.client(tokens["writer"]) as client:
        first = responses(client.post("", json=bundle))  # the base itself, no slash
        assert [(s, t, v) for s, t, _, v, _ in first] == [
            ("201 Created", "Patient", 1),
            ("201 Created", "ImagingStudy", 1),
            ("201 Created", "DiagnosticReport", 1),
        ]
        assert {base for *_, base in first} == {writable.base}
        (_, _, patient, _, _), (_, _, study, _, _), (_, _, report, _, _) = first
        assert resource_count(writable.engine) == before_count + 3

        stored_study = client.get(f"/ImagingStudy/{study}").json()
        assert stored_study["subject"] == {"reference": f"Patient/{patient}"}  # urn rewritten
        assert stored_study["meta"]["versionId"] == "1"
        stored_report = client.get(f"/DiagnosticReport/{report}").json()
        assert stored_report["subject"] == {"reference": f"Patient/{patient}"}
        assert stored_report["imagingStudy"] == [{"reference": f"ImagingStudy/{study}"}]
        assert client.get(f"/Patient/{patient}").json()["name"][0]["text"] == "王小明"
        assert found(client, "DiagnosticReport", ("patient", patient)) == {report}
        assert found(client, "ImagingStudy", ("identifier", "urn:oid:2.25.1001")) == {study}
        origins = rows(
            writable.engine,
            "SELECT DISTINCT origin FROM fhir_resource WHERE logical_id IN (:a, :b, :c)",
            a=patient,
            b=study,
            c=report,
        )
        assert [row.origin for row in origins] == ["writer"]

        again = responses(client.post("/", json=bundle))
        assert [(s, t, i, v) for s, t, i, v, _ in again] == [
            ("200 OK", t, i, v) for _, t, i, v, _ in first
        ]
        assert resource_count(writable.engine) == before_count + 3

        changed = province_bundle(
            resident=bundle["entry"][0]["resource"]["identifier"][0]["value"],
            uid="2.25.1001",
            description="胸部CT增强",
        )
        third = responses(client.post("/", json=changed))
        assert [(s, t, i, v) for s, t, i, v, _ in third] == [
            ("200 OK", "Patient", patient, 1),
            ("200 OK", "ImagingStudy", study, 2),
            ("200 OK", "DiagnosticReport", report, 1),
        ]
        answer = client.get(f"/ImagingStudy/{study}")
        assert answer.headers["etag"] == 'W/"2"'
        assert answer.json()["description"] == "胸部CT增强"
        assert answer.json()["meta"]["versionId"] == "2"
    assert resource_count(writable.engine) == before_count + 3

    audited = audit_rows(writable.engine, before_audit)
    transactions = [r for r in audited if r.entity_type == "Bundle"]
    assert len(transactions) == 3
    for row in transactions:
        assert (row.action, row.actor, row.source_address) == ("update", "writer", "127.0.0.1")
        assert row.detail == "transaction of 3 entries"


def test_a_known_resident_id_is_the_hubs_own_patient(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    published = set(writable.stored("Patient"))
    people = rows(
        writable.engine,
        "SELECT p.id, p.name, i.value FROM patient p JOIN patient_identifier i "
        "ON i.patient_id = p.id AND i.kind = 'resident_id' ORDER BY p.id",
    )
    unpublished = next(p for p in people if str(p.id) not in published)
    already = next(p for p in people if str(p.id) in published)
    already_body = rows(
        writable.engine,
        "SELECT body FROM fhir_resource WHERE resource_type = 'Patient' AND logical_id = :i",
        i=str(already.id),
    )[0].body
    with writable.client(tokens["writer"]) as client:
        for number, person in enumerate((unpublished, already)):
            bundle = province_bundle(resident=person.value, uid=f"2.25.200{number}", name="冒名者")
            (patient_entry, study_entry, _) = responses(client.post("/", json=bundle))
            assert patient_entry[:3] == ("200 OK", "Patient", str(person.id))
            body = client.get(f"/Patient/{person.id}").json()
            assert body["name"][0]["text"] == person.name  # the hub's, not the sender's
            assert (RESIDENT_ID_SYSTEM, person.value) in identifiers(body)
            study = client.get(f"/ImagingStudy/{study_entry[2]}").json()
            assert study["subject"] == {"reference": f"Patient/{person.id}"}
    origin, body = rows(
        writable.engine,
        "SELECT origin, body FROM fhir_resource WHERE resource_type = 'Patient' "
        "AND logical_id IN (:a, :b) ORDER BY logical_id = :b",
        a=str(unpublished.id),
        b=str(already.id),
    )[1]
    assert origin == "" and body == already_body  # untouched, byte for byte
    assert (
        rows(
            writable.engine,
            "SELECT origin FROM fhir_resource WHERE resource_type = 'Patient' AND logical_id = :a",
            a=str(unpublished.id),
        )[0].origin
        == ""
    )  # published by the hub itself, from its own rows
    assert not rows(
        writable.engine,
        "SELECT id FROM fhir_resource WHERE resource_type = 'Patient' AND body LIKE :n",
        n="%冒名者%",
    )


def test_the_hubs_own_resources_are_never_overwritten(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    study_id, study = next(iter(writable.stored("ImagingStudy").items()))
    uid = next(value for system, value in identifiers(study) if system == DICOM_UID_SYSTEM)
    original = rows(
        writable.engine,
        "SELECT version_id, origin, body FROM fhir_resource "
        "WHERE resource_type = 'ImagingStudy' AND logical_id = :i",
        i=study_id,
    )[0]
    assert original.origin == ""
    hostile = study_json(
        uid.removeprefix("urn:oid:"), subject="Patient/elsewhere", description="改写"
    )
    hostile["status"] = "entered-in-error"
    with writable.client(tokens["writer"]) as client:
        for url in (
            f"ImagingStudy?identifier={DICOM_UID_SYSTEM}|{uid}",
            f"ImagingStudy/{study_id}",
        ):
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": hostile, "request": {"method": "PUT", "url": url}}],
            }
            ((status, kind, logical_id, version, _),) = responses(client.post("/", json=bundle))
            assert (status, kind, logical_id, version) == (
                "200 OK",
                "ImagingStudy",
                study_id,
                original.version_id,
            )
    now = rows(
        writable.engine,
        "SELECT version_id, origin, body FROM fhir_resource "
        "WHERE resource_type = 'ImagingStudy' AND logical_id = :i",
        i=study_id,
    )[0]
    assert tuple(now) == tuple(original)


def test_two_resources_with_the_identifier_are_412(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    def patient_entry(url: str, name: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:province:mrn", "value": "DUP-1"}],
                "name": [{"text": name}],
            },
            "request": {"method": "PUT", "url": url},
        }

    def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}

    with writable.client(tokens["writer"]) as client:
        for logical_id in ("dup-a", "dup-b"):
            ((status, *_),) = responses(
                client.post("/", json=bundle(patient_entry(f"Patient/{logical_id}", "甲")))
            )
            assert status == "201 Created"
        count = resource_count(writable.engine)
        conditional = patient_entry("Patient?identifier=urn:province:mrn|DUP-1", "乙")
        issue = outcome(client.post("/", json=bundle(conditional)), 412, "multiple-matches")
        assert issue["expression"] == ["Bundle.entry[0].request.url"]
        assert "2" in issue["diagnostics"]
        # an earlier, valid entry of the same transaction is not kept either
        fresh = patient_entry("Patient?identifier=urn:province:mrn|NEW-1", "丙")
        outcome(client.post("/", json=bundle(fresh, conditional)), 412, "multiple-matches")
        assert resource_count(writable.engine) == count
        assert found(client, "Patient", ("identifier", "urn:province:mrn|NEW-1")) == set()
        for logical_id in ("dup-a", "dup-b"):
            assert client.get(f"/Patient/{logical_id}").json()["name"] == [{"text": "甲"}]


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        ("status", "status"),
        ("subject", "subject"),
        ("unknown element", "colour"),
    ],
)
def test_an_invalid_resource_is_400_and_nothing_is_stored(
    writable: ServedApi, tokens: dict[str, str], broken: str, where: str
) -> None:
    bundle = province_bundle(resident=new_resident_id(writable.engine), uid="2.25.3001")
    study = bundle["entry"][1]["resource"]
    if broken == "unknown element":
        study["colour"] = "blue"
    else:
        del study[where]
    before = resource_count(writable.engine)
    tokens_before = rows(writable.engine, "SELECT count(*) FROM fhir_token")[0][0]
    with writable.client(tokens["writer"]) as client:
        issue = outcome(client.post("/", json=bundle), 400, "invalid")
    assert issue["expression"] == [f"Bundle.entry[1].resource.{where}"]
    assert f"entry.1.resource.{where}" in issue["diagnostics"]  # which entry, which element
    assert resource_count(writable.engine) == before  # not even the valid Patient before it
    assert rows(writable.engine, "SELECT count(*) FROM fhir_token")[0][0] == tokens_before
    assert not rows(writable.engine, "SELECT id FROM fhir_token WHERE value = 'urn:oid:2.25.3001'")


@pytest.mark.parametrize(
    ("body", "code", "expression"),
    [
        (b"not json at all", "structure", None),
        (b'{"resourceType": "Bundle", "type": "transaction"', "structure", None),
        (b"[1, 2, 3]", "structure", None),
        (b'"a string"', "structure", None),
        (b'{"resourceType": "Patient", "name": [{"text": "x"}]}', "invalid", "resourceType"),
        (b'{"resourceType": "Bundle", "type": "batch", "entry": []}', "invalid", "Bundle.type"),
        (
            b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": '
            b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, '
            b'"request": {"method": "POST", "url": "Observation"}}]}',
            "invalid",
            "Bundle.entry[0].resource",
        ),
        (
            b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": '
            b'{"resourceType": "Patient"}, "request": {"method": "DELETE", "url": "Patient/1"}}]}',
            "invalid",
            "Bundle.entry[0].request.method",
        ),
    ],
)
def test_bodies_that_are_not_a_transaction_are_400(
    writable: ServedApi,
    tokens: dict[str, str],
    body: bytes,
    code: str,
    expression: str | None,
) -> None:
    before = resource_count(writable.engine)
    with writable.client(tokens["writer"]) as client:
        answer = client.post("/", content=body, headers={"Content-Type": FHIR_JSON})
    issue = outcome(answer, 400, code)
    assert issue.get("expression") == ([expression] if expression else None)
    assert resource_count(writable.engine) == before


def test_a_body_above_the_limit_is_413(writable: ServedApi, tokens: dict[str, str]) -> None:
    assert writable.settings.fhir_max_body == 64 * 1024
    bundle = province_bundle(resident=new_resident_id(writable.engine), uid="2.25.4001")
    body = json.dumps(bundle).encode()
    padded = body[:-1] + b" " * (64 * 1024) + b"}"  # still a valid transaction, only too big
    assert json.loads(padded) == bundle
    before = resource_count(writable.engine)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(padded), 4096):
            yield padded[start : start + 4096]

    with writable.client(tokens["writer"]) as client:
        issue = outcome(client.post("/", content=padded), 413, "too-costly")
        assert str(64 * 1024) in issue["diagnostics"]
        # without Content-Length (chunked), the limit holds while reading
        outcome(client.post("/", content=chunks()), 413, "too-costly")
        assert resource_count(writable.engine) == before
        # just under the limit is fine
        assert len(body) < 64 * 1024
        assert client.post("/", content=body).status_code == 200
    assert resource_count(writable.engine) == before + 3


def test_escaped_identifier_values_match_when_replayed(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    """The hub's conditional URLs escape \\ | , $ in values (FHIR search escaping); intake and
    search read them back, so a replay updates instead of creating a duplicate."""
    values = ["MRN,1", "A|B", "C\\D", "E$F"]
    patients = [
        Patient(
            id=f"p{number}",
            identifier=[Identifier(system="urn:province:mrn", value=value)],
            name=[HumanName(text=f"病人{number}")],
        )
        for number, value in enumerate(values)
    ]
    bundle = json.loads(transaction_bundle(patients).model_dump_json(exclude_none=True))
    assert all("%5C" in entry["request"]["url"] for entry in bundle["entry"])  # escaped
    before = resource_count(writable.engine)
    with writable.client(tokens["writer"]) as client:
        first = responses(client.post("/", json=bundle))
        again = responses(client.post("/", json=bundle))
        assert [entry[0] for entry in first] == ["201 Created"] * len(values)
        assert [entry[:4] for entry in again] == [("200 OK", *entry[1:4]) for entry in first]
        assert resource_count(writable.engine) == before + len(values)
        for value, (_, _, logical_id, _, _) in zip(values, first, strict=True):
            body = client.get(f"/Patient/{logical_id}").json()
            assert identifiers(body) == [("urn:province:mrn", value)]
            escaped = re.sub(r"([\\|,$])", r"\\\1", value)
            assert found(client, "Patient", ("identifier", f"urn:province:mrn|{escaped}")) == {
                logical_id
            }


def test_numeric_ids_are_kept_for_the_hubs_own_resources(
    writable: ServedApi, tokens: dict[str, str]
) -> None:
    """Another node may not claim Patient/123 by a plain PUT: the hub publishes its own there."""
    taken = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"text": "外来"}]},
                "request": {"method": "PUT", "url": "Patient/987654"},
            }
        ],
    }
    before = resource_count(writable.engine)
    with writable.client(tokens["writer"]) as client:
        issue = outcome(client.post("/", json=taken), 400, "invalid")
    assert "conditional update" in issue["diagnostics"]
    assert issue["expression"] == ["Bundle.entry[0].request.url"]
    assert resource_count(writable.engine) == before


# --- the outbox pushing here, several queued Bundles to one POST ---------------------------------


def _push(
    served: ServedApi, token: str, folder: Path, bundles: list[dict[str, Any]], rounds: int
) -> tuple[Database, list[int]]:
    """Queue ``bundles`` in a fresh hub's outbox for ``served``; deliveries of each worker round."""
    settings = Settings(
        data_dir=folder, database_url="", upstream_fhir_url=served.base, upstream_fhir_token=token
    )
    county = Database.from_settings(settings)
    county.upgrade()
    with county.engine.begin() as connection:
        for number, bundle in enumerate(bundles):
            enqueue(
                connection,
                channel=OutboxChannel.fhir,
                destination=served.base,
                idempotency_key=f"fhir:bundle/{number}",
                payload=json.dumps(bundle, ensure_ascii=False).encode(),
                content_type=FHIR_JSON,
                now=datetime.now(UTC),
            )

    async def deliver() -> list[int]:
        async with httpx.AsyncClient(trust_env=False) as client:
            worker = OutboxWorker(
                database=county,
                settings=settings,
                senders={
                    OutboxChannel.fhir: lambda parcel: send_fhir(
                        parcel, settings=settings, client=client
                    )
                },
                batching={OutboxChannel.fhir: FHIR_BATCHING},
            )
            return [await worker.run_once() for _ in range(rounds)]

    return county, asyncio.run(deliver())


def _outbox_rows(county: Database) -> list[tuple[str, str, int, str]]:
    return [
        (row.idempotency_key, row.status, row.attempts, row.last_error)
        for row in rows(
            county.engine,
            "SELECT idempotency_key, status, attempts, last_error FROM outbox ORDER BY id",
        )
    ]


def _transactions_since(engine: Engine, audit_id: int) -> list[str]:
    return [
        row.detail
        for row in rows(
            engine,
            "SELECT detail FROM audit_event WHERE entity_type = 'Bundle' AND id > :since "
            "ORDER BY id",
            since=audit_id,
        )
    ]


def test_queued_bundles_arrive_as_one_transaction_and_land_as_if_sent_one_by_one(
    writable: ServedApi, tokens: dict[str, str], tmp_path: Path
) -> None:
    residents = [new_resident_id(writable.engine, sequence) for sequence in (11, 13, 15)]
    bundles = [
        province_bundle(resident=resident, uid=f"2.25.500{n}", key=str(n))
        for n, resident in enumerate(residents)
    ]
    bundles.append(bundles[0])  # a replay of the first: harmless
    before, audited = resource_count(writable.engine), last_audit_id(writable.engine)
    county, delivered = _push(writable, tokens["writer"], tmp_path / "county", bundles, rounds=2)
    assert delivered == [4, 0]
    assert [status for _, status, _, _ in _outbox_rows(county)] == ["delivered"] * 4
    assert _transactions_since(writable.engine, audited) == ["transaction of 9 entries"]  # one POST
    assert resource_count(writable.engine) == before + 9
    with writable.client(tokens["reader"]) as client:
        for n, resident in enumerate(residents):
            (patient,) = found(
                client, "Patient", ("identifier", f"{RESIDENT_ID_SYSTEM}|{resident}")
            )
            (study,) = found(client, "ImagingStudy", ("identifier", f"urn:oid:2.25.500{n}"))
            stored = client.get(f"/ImagingStudy/{study}").json()
            assert stored["subject"] == {"reference": f"Patient/{patient}"}  # its own patient
            assert stored["meta"]["versionId"] == "1"


def test_an_invalid_bundle_in_a_merged_post_dead_letters_alone(
    writable: ServedApi, tokens: dict[str, str], tmp_path: Path
) -> None:
    residents = [new_resident_id(writable.engine, sequence) for sequence in (17, 19, 21)]
    bundles = [
        province_bundle(resident=resident, uid=f"2.25.600{n}", key=str(n))
        for n, resident in enumerate(residents)
    ]
    del bundles[1]["entry"][1]["resource"]["status"]
    before, audited = resource_count(writable.engine), last_audit_id(writable.engine)
    county, delivered = _push(writable, tokens["writer"], tmp_path / "county", bundles, rounds=2)
    assert delivered == [1, 1]  # the first alone, then (after the culprit) the third
    (first, culprit, third) = _outbox_rows(county)
    assert first[1:] == ("delivered", 1, "") and third[1:] == ("delivered", 1, "")
    assert culprit[1:3] == ("dead", 1)
    assert "HTTP 400" in culprit[3] and "Bundle.entry[1].resource.status" in culprit[3]
    assert _transactions_since(writable.engine, audited) == ["transaction of 3 entries"] * 2
    assert resource_count(writable.engine) == before + 6  # nothing of the invalid one
    with writable.client(tokens["reader"]) as client:
        assert found(client, "ImagingStudy", ("identifier", "urn:oid:2.25.6001")) == set()
        for uid in ("2.25.6000", "2.25.6002"):
            assert len(found(client, "ImagingStudy", ("identifier", f"urn:oid:{uid}"))) == 1
