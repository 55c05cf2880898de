"""The hub's HTTP side under hostile input: SQL in search parameters, no token, huge bodies.

Everything runs against the real application served by uvicorn on 127.0.0.1
over a seeded demo region (``tests/fhir_hub.py``); expectations are read
straight from the database, not from the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, text

from dicom.store import FileStore
from integration.api_clients import TokenChecker
from integration.audit_trail import AuditWriter
from integration.cds import CdsHooks
from integration.database import Database
from integration.dicomweb import DicomWeb
from integration.fhir_api import FhirApi
from integration.http import build_http_app
from integration.settings import Settings
from tests.conftest import free_port
from tests.fhir_hub import ServedApi, copy_region, seed_region, served_api

PATIENT_TYPES = ("Patient", "ServiceRequest", "ImagingStudy", "DiagnosticReport")
PARAMETERS = {
    "Patient": ("identifier", "name", "birthdate", "_id"),
    "ServiceRequest": ("patient", "identifier", "status", "authored"),
    "ImagingStudy": ("patient", "identifier", "modality", "started", "status"),
    "DiagnosticReport": ("patient", "identifier", "status", "date", "based-on"),
    "Organization": ("identifier",),
}
INJECTIONS = (
    "' OR 1=1--",
    "' OR '1'='1",
    "x'; DROP TABLE fhir_resource;--",
    "x%27%3B DROP TABLE patient;--",  # sent literally: httpx encodes the % again
    "1 UNION SELECT body FROM fhir_resource--",
    '" OR ""="',
    "1); DELETE FROM fhir_resource WHERE (1=1",
    "%",
    "_",
    "\\",
    "x\x00y",
    "ge2020-01-01' OR '1'='1",
    "http://x|' OR 1=1--",
    "Patient/1 OR 1=1",
)
TABLES = ("fhir_resource", "fhir_token", "patient", "patient_identifier", "study", "report")


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("region")
    return folder, seed_region(folder)


@pytest.fixture(scope="module")
def api(
    region: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApi]:
    with served_api(copy_region(region[0], tmp_path_factory.mktemp("served"))) as served:
        yield served


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in TABLES
        }


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


# --- SQL injection --------------------------------------------------------------------------------


def test_sql_in_any_search_parameter_finds_nothing_and_changes_nothing(
    api: ServedApi, region: tuple[Path, dict[str, str]]
) -> None:
    before = counts(api.engine)
    answers: dict[int, int] = {}
    with api.client(region[1]["reader"]) as client:
        for resource_type, parameters in PARAMETERS.items():
            for parameter in parameters:
                for payload in INJECTIONS:
                    answer = client.get(f"/{resource_type}", params={parameter: payload})
                    answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
                    assert answer.status_code in (200, 400), (parameter, payload, answer.text)
                    if answer.status_code == 200:
                        found = matches(answer.json())
                        assert found == [], (resource_type, parameter, payload, len(found))
                        assert answer.json()["total"] == 0
        # the same payloads where the API expects paging, sorting and ids
        for name in ("_count", "_offset", "_sort", "_summary", "_include"):
            for payload in INJECTIONS:
                answer = client.get("/ImagingStudy", params={name: payload})
                assert answer.status_code == 400, (name, payload, answer.text)
        # percent-encoded in the URL itself, as a crafted link would carry it
        for query in (
            "identifier=x%27%3B%20DROP%20TABLE%20patient%3B--",
            "name=%27%20OR%201%3D1--",
            "name=%25%27%20OR%20%27%25%27%3D%27",
        ):
            answer = client.get(f"/Patient?{query}")
            assert answer.status_code == 200 and answer.json()["total"] == 0, query
        for payload in ("1' OR '1'='1", "1 OR 1=1", "1;DROP TABLE patient"):
            assert client.get(f"/Patient/{payload}").status_code == 404
    assert answers.get(200) and answers.get(400)  # both paths were exercised
    assert counts(api.engine) == before
    with api.engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"


def test_a_quote_in_a_name_is_matched_literally(
    region: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Bound parameters, not string building: a real O'Brien is found, and only by his name."""
    with served_api(copy_region(region[0], tmp_path / "region")) as served:
        with served.engine.begin() as connection:
            row = connection.execute(
                text(
                    "SELECT id, name_text FROM fhir_resource WHERE resource_type = 'Patient' "
                    "ORDER BY id LIMIT 1"
                )
            ).one()
            connection.execute(
                text("UPDATE fhir_resource SET name_text = :name WHERE id = :id"),
                {"name": "o'brien' or '1'='1 %_", "id": row.id},
            )
        with served.client(region[1]["reader"]) as client:
            for probe in ("O'Brien", "' or '1'='1", "%_", "brien' or"):
                bundle = client.get("/Patient", params={"name": probe}).json()
                assert bundle["total"] == 1, probe
            assert client.get("/Patient", params={"name": "' OR 1=1--"}).json()["total"] == 0


# --- no token, no patient data --------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer hrn_guess", "Basic YTpi"])
def test_no_patient_data_without_a_valid_token(api: ServedApi, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with api.engine.connect() as connection:
        names = [
            str(n)
            for n in connection.execute(
                text("SELECT name FROM patient WHERE name != '' LIMIT 50")
            ).scalars()
        ]
    with api.client() as client:
        for resource_type in PATIENT_TYPES:
            some_id = next(iter(api.stored(resource_type)))
            for answer in (
                client.get(f"/{resource_type}", headers=headers),
                client.get(f"/{resource_type}/{some_id}", headers=headers),
                client.get(f"/{resource_type}", params={"_summary": "count"}, headers=headers),
            ):
                assert answer.status_code == 401, (resource_type, answer.text)
                assert not any(name in answer.text for name in names)
        assert client.get("/metadata").status_code == 200  # no patient data in it


# --- body limits on the CDS Hooks and REST endpoints ----------------------------------------------


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def served_hub(data_dir: Path, *, cds_max_body: int) -> Iterator[str]:
    """The whole HTTP app (FHIR, WADO-RS, CDS Hooks, REST) on a free port; yields its base URL."""
    port = free_port()
    settings = Settings(
        data_dir=data_dir, bind="127.0.0.1", http_port=port, cds_max_body=cds_max_body
    )
    database = Database.from_settings(settings)
    database.upgrade()
    audit = AuditWriter(database=database)
    audit.start()
    tokens = TokenChecker(database.engine)
    app = build_http_app(
        database=database,
        fhir=FhirApi(database=database, settings=settings, tokens=tokens, audit=audit),
        dicomweb=DicomWeb(database=database, files=FileStore(data_dir), tokens=tokens, audit=audit),
        cds=CdsHooks(database=database, settings=settings),
        cds_max_body=settings.cds_max_body,
    )
    server = _ThreadServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        audit.stop()
        database.dispose()


def hook_request(padding: int) -> dict[str, Any]:
    return {
        "hookInstance": "limit-test",
        "hook": "order-sign",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "nobody",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": []},
        },
        "prefetch": {"note": "x" * padding},
    }


def raw_request(base: str, head: str) -> str:
    """Send request headers only (a body is promised, never sent); the status line back."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_cds_and_rest_bodies_over_the_limit_are_413(
    region: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    limit = 64 * 1024
    with served_hub(copy_region(region[0], tmp_path / "region"), cds_max_body=limit) as base:
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
            hook = "/cds-services/huren-prior-exams-sign"
            small = client.post(hook, json=hook_request(1000))
            assert small.status_code == 200, small.text
            assert small.json() == {"cards": []}

            big = client.post(hook, json=hook_request(limit))
            assert big.status_code == 413
            assert str(limit) in big.json()["error"]
            feedback = client.post(f"{hook}/feedback", json={"feedback": ["x" * limit]})
            assert feedback.status_code == 413

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
                for _ in range(10):
                    yield b" " * (limit // 4)

            chunked = client.post(hook, content=chunks())
            assert chunked.status_code == 413

            # the REST check takes no body; a body sent anyway is held to the same limit
            verdicts = client.request(
                "GET", "/recognition/verdicts?exam=X&patient=1", content=b"x" * (limit + 1)
            )
            assert verdicts.status_code == 413
            assert client.get("/recognition/verdicts?exam=X&patient=1").status_code == 400

        # a huge declared length is refused before any of it is read
        for path in ("/cds-services/huren-prior-exams-sign", "/recognition/verdicts"):
            method = "POST" if path.startswith("/cds") else "GET"
            status = raw_request(
                base,
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 10000000000\r\n\r\n",
            )
            assert status.startswith("HTTP/1.1 413"), (path, status)


def test_cds_without_clients_serves_loopback_callers_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    database = Database.from_settings(settings)
    database.upgrade()
    app = build_http_app(database=database, cds=CdsHooks(database=database, settings=settings))

    async def call(host: str) -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            hook = await client.post("/cds-services/huren-prior-exams-sign", json=hook_request(10))
            rest = await client.get("/recognition/verdicts?exam=X&patient=1")
            return hook.status_code, rest.status_code

    try:
        assert asyncio.run(call("10.20.30.40")) == (403, 403)
        assert asyncio.run(call("127.0.0.1")) == (200, 400)
    finally:
        database.dispose()
