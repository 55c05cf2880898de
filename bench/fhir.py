"""FHIR API speed over 1M stored ImagingStudies, and the outbox pushing to a second hub.

Goals: ``GET /fhir/ImagingStudy/{id}`` answers in p50 <= 5 ms and p99 <= 20 ms,
and ``GET /fhir/ImagingStudy?patient=<id>&_sort=-date`` in p99 <= 30 ms, with
1,000,000 ImagingStudies (over 200,000 patients) in the database; the outbox
pushes >= 500 resources/s to a local second hub.

Ours: ``huren serve`` in its own process over a SQLite database seeded with
ImagingStudy and Patient resources exactly as ``put_resource`` stores them
(bodies from the real mappers, ~1.7 KB, then ids, UIDs and dates varied; the
search columns and token rows from ``index_of`` likewise), plus the patients'
rows the audit trail refers to. Every request carries a bearer token and
every answer waits for its audit row. The bound for reads and searches,
measured in the same run, is a plain Starlette app in the same uvicorn setup
in its own process, answering the same stored JSON straight from the same
SQLite file with sqlite3 and the same SQL the hub runs (captured from it),
the search hits assembled into the same kind of Bundle: no token, no audit,
no thread hop. The client is httpx on one keep-alive connection, sequential
requests after a warm-up; ours and the bound take turns over several rounds
with the same random ids, and the latencies are pooled.

Push: transaction Bundles of 5 resources (Patient, Organization,
ServiceRequest, Endpoint, ImagingStudy from the real mappers, as the hub
queues them) are queued in a county database and delivered by the
``OutboxWorker`` with ``send_fhir`` to a second ``huren serve`` (the
province, which validates and stores them), up to 25 queued Bundles merged
into one transaction as the hub does (``FHIR_BATCHING``). The bound is the
same POSTs of the same payloads sent sequentially with httpx, without an
outbox, to the plain app's endpoint that reads the body and answers 200.
Also printed: the same payloads POSTed one by one straight to another fresh
province without the outbox (what receiving them singly costs). The three
take turns over the same rounds, each round with its own share of the
Bundles. Ratios are ours / bound: above 1 is slower for latencies, below 1 is
slower for rates.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import ceil
from pathlib import Path
from typing import Any

# Run as ``python bench/fhir.py``, this file's folder comes first on sys.path and its
# name would shadow the ``fhir`` package it measures.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_harness", _HERE / "_harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

import httpx  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from fhir.mapping import (  # noqa: E402
    endpoint_from,
    imaging_study_from,
    organization_from,
    patient_from,
    service_request_from,
    transaction_bundle,
)
from fhir.search import parse_search  # noqa: E402
from integration.api_clients import create_client  # noqa: E402
from integration.database import Database  # noqa: E402
from integration.fhir_exchange import FHIR_BATCHING, send_fhir  # noqa: E402
from integration.fhir_store import put_resource, read_resource, search  # noqa: E402
from integration.outbox import OUTBOX, OutboxWorker, enqueue  # noqa: E402
from integration.settings import Settings  # noqa: E402
from models.catalogue import ExamType  # noqa: E402
from models.enums import (  # noqa: E402
    FacilityKind,
    FacilityLevel,
    IdentifierKind,
    Modality,
    OrderStatus,
    OutboxChannel,
    OutboxStatus,
    Priority,
    Sex,
    StudyStatus,
)
from models.imaging import Instance, Series, Study  # noqa: E402
from models.orders import Order  # noqa: E402
from models.patients import Patient, PatientIdentifier  # noqa: E402
from models.region import Facility  # noqa: E402

GOAL_READ_P50_MS = 5.0
GOAL_READ_P99_MS = 20.0
GOAL_SEARCH_P99_MS = 30.0
GOAL_PUSH_PER_S = 500.0
SCOPES = "system/*.read system/*.write"
FHIR_JSON = "application/fhir+json"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SEED_NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CHUNK = 20_000  # studies per executemany transaction while seeding

# Values of the template rows that each seeded row replaces with its own (string
# substitution in the stored body, the search columns and the token rows).
MARKERS = {
    "uid": "1.2.156.112605.1618033",
    "acc": "ACC3141592",
    "day": "2011-11-11",
    "sid": "4815162",
    "oid": "2718281",
    "pid": "8675309",
    "rid": "110105194912317777",
    "mrn": "MRN-5551212",
    "hc": "HC-6662323",
}


# --- hub rows, as the mappers take them ---------------------------------------------------


def county() -> Facility:
    return Facility(
        id=1,
        code="HR-C01",
        name="互认县人民医院",
        name_en="Huren County People's Hospital",
        level=FacilityLevel.county,
        kind=FacilityKind.hospital,
        parent_id=9,
        is_reading_centre=True,
    )


def township() -> Facility:
    return Facility(
        id=2,
        code="HR-T01",
        name="东关镇卫生院",
        level=FacilityLevel.township,
        kind=FacilityKind.health_centre,
        parent_id=1,
        reading_centre_id=1,
    )


def exam() -> ExamType:
    return ExamType(
        id=3,
        code="CT-CHEST-PLAIN",
        name_zh="胸部CT平扫",
        name_en="CT chest without contrast",
        modality=Modality.CT,
        body_part="CHEST",
        loinc="29252-4",
        fee_fen=20000,
        recognised=True,
        validity_days=30,
    )


@dataclass(frozen=True)
class Rows:
    patient: Patient
    identifiers: list[PatientIdentifier]
    order: Order
    study: Study
    series: list[Series]
    instances: list[Instance]


def hub_rows(values: dict[str, str]) -> Rows:
    """One patient with one CT study (one series, one instance) and its order."""
    pid, sid, oid, uid = int(values["pid"]), int(values["sid"]), int(values["oid"]), values["uid"]
    day = date.fromisoformat(values["day"])
    at = datetime(day.year, day.month, day.day, 1, 5, tzinfo=UTC)
    patient = Patient(
        id=pid,
        name="张三丰",
        sex=Sex.male,
        birth_date=date(1949, 12, 31),
        phone="13800138000",
        address="互认县东关镇幸福村 12 号",
        created_at=SEED_NOW,
        updated_at=SEED_NOW,
    )
    identifiers = [
        PatientIdentifier(patient_id=pid, kind=kind, authority=authority, value=values[key])
        for kind, authority, key in (
            (IdentifierKind.mrn, "HR-T01", "mrn"),
            (IdentifierKind.resident_id, "CN", "rid"),
            (IdentifierKind.health_card, "CN", "hc"),
        )
    ]
    order = Order(
        id=oid,
        accession_number=values["acc"],
        placer_number=f"P{oid}",
        filler_number=f"F{oid}",
        patient_id=pid,
        exam_type_id=3,
        ordering_facility_id=2,
        performing_facility_id=2,
        ordering_provider="李医生",
        priority=Priority.routine,
        status=OrderStatus.completed,
        reason="咳嗽两周",
        requested_at=at - timedelta(minutes=35),
        scheduled_at=at - timedelta(minutes=5),
    )
    study = Study(
        id=sid,
        study_instance_uid=uid,
        order_id=oid,
        patient_id=pid,
        exam_type_id=3,
        facility_id=2,
        reading_centre_id=1,
        accession_number=values["acc"],
        modalities="CT",
        body_part="CHEST",
        description="胸部CT平扫",
        started_at=at,
        status=StudyStatus.complete,
    )
    series = [
        Series(
            id=sid,
            study_id=sid,
            series_instance_uid=f"{uid}.1",
            number=1,
            modality="CT",
            body_part="CHEST",
            laterality="",
            description="肺窗",
            started_at=at + timedelta(minutes=1),
            num_instances=1,
        )
    ]
    instances = [
        Instance(
            id=sid * 10 + number,
            series_id=sid,
            study_id=sid,
            sop_instance_uid=f"{uid}.1.{number}",
            sop_class_uid=CT_IMAGE_STORAGE,
            number=number,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            path=f"studies/{uid}.1.{number}.dcm",
            size_bytes=525_000,
            sha256="0" * 64,
            version=1,
        )
        for number in (1,)
    ]
    return Rows(patient, identifiers, order, study, series, instances)


def mapped(rows: Rows) -> tuple[Any, Any]:
    """The Patient and ImagingStudy resources of ``rows`` (fhir.resources models)."""
    patient = patient_from(rows.patient, rows.identifiers)
    study = imaging_study_from(
        rows.study, rows.series, rows.instances, facility=township(), exam=exam()
    )
    return patient, study


def as_json(resource: Any) -> dict[str, Any]:
    return dict(json.loads(resource.model_dump_json()))


# --- seeding ------------------------------------------------------------------------------


def _format(text: str) -> str | None:
    """``text`` as a %-format with the markers as fields; None if no marker occurs in it."""
    found = text.replace("%", "%%")
    for key, marker in sorted(MARKERS.items(), key=lambda item: -len(item[1])):
        found = found.replace(marker, f"%({key})s")
    if found == text.replace("%", "%%"):
        return None
    if found % MARKERS != text:
        raise SystemExit(f"template substitution does not round-trip: {text[:80]}")
    return found


@dataclass
class RowTemplate:
    """A stored row with its marker-bearing cells as formats."""

    cells: list[tuple[str | None, Any]]  # (format or None, constant)

    @classmethod
    def of(cls, values: Sequence[Any]) -> RowTemplate:
        return cls([(_format(v) if isinstance(v, str) else None, v) for v in values])

    def row(self, values: dict[str, str]) -> tuple[Any, ...]:
        return tuple(cell % values if cell is not None else v for cell, v in self.cells)


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in con.execute(f"PRAGMA table_info({table})")]


@dataclass
class Seeded:
    settings: Settings
    studies: int
    patients: int
    seconds: float
    body_bytes: int


def seed(root: Path, studies: int, rng: random.Random, say: Callable[[str], None]) -> Seeded:
    """A hub database with ``studies`` ImagingStudies over studies/5 patients."""
    settings = Settings(data_dir=root, database_url="")
    database = Database.from_settings(settings)
    database.upgrade()
    started = time.perf_counter()
    rows = hub_rows(MARKERS)
    patient, study = mapped(rows)
    with database.session() as session:
        session.add(rows.patient)
    with database.engine.begin() as connection:
        for resource in (patient, study):
            put_resource(
                connection,
                resource=as_json(resource),
                logical_id=str(resource.id),
                origin="",
                now=SEED_NOW,
            )
    database.dispose()

    con = sqlite3.connect(root / "huren.db", isolation_level=None)
    templates: dict[str, tuple[RowTemplate, list[RowTemplate]]] = {}
    resource_columns = _columns(con, "fhir_resource")
    for values in con.execute("SELECT * FROM fhir_resource").fetchall():
        row_id, resource_type = values[0], values[1]
        tokens = con.execute(
            "SELECT resource_type, parameter, system, value FROM fhir_token"
            " WHERE resource_id = ? ORDER BY id",
            (row_id,),
        ).fetchall()
        templates[resource_type] = (
            RowTemplate.of(values[1:]),
            [RowTemplate.of(token) for token in tokens],
        )
    patient_columns = _columns(con, "patient")
    patient_template = RowTemplate.of(
        con.execute("SELECT * FROM patient WHERE id = ?", (int(MARKERS["pid"]),)).fetchone()[1:]
    )
    con.execute("DELETE FROM fhir_token")
    con.execute("DELETE FROM fhir_resource")
    con.execute("DELETE FROM patient")
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('fhir_resource', 'fhir_token')"
    ).fetchall()
    for name, _sql in indexes:
        con.execute(f"DROP INDEX {name}")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")

    insert_resource = (
        f"INSERT INTO fhir_resource ({', '.join(resource_columns)}) "
        f"VALUES ({', '.join('?' * len(resource_columns))})"
    )
    insert_token = (
        "INSERT INTO fhir_token (resource_id, resource_type, parameter, system, value) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    insert_patient = (
        f"INSERT INTO patient ({', '.join(patient_columns)}) "
        f"VALUES ({', '.join('?' * len(patient_columns))})"
    )
    patients = max(1, studies // 5)

    def patient_values(p: int) -> dict[str, str]:
        return {
            "pid": str(p),
            "rid": f"1101051949{p:08d}",
            "mrn": f"MRN-{p:07d}",
            "hc": f"HC-{p:07d}",
        }

    def write(kind: str, numbered: Iterator[tuple[int, dict[str, str]]]) -> None:
        resource, tokens = templates[kind]
        res_rows, token_rows, person_rows = [], [], []
        for row_id, values in numbered:
            res_rows.append((row_id, *resource.row(values)))
            token_rows += [(row_id, *token.row(values)) for token in tokens]
            if kind == "Patient":
                person_rows.append((int(values["pid"]), *patient_template.row(values)))
        con.execute("BEGIN")
        con.executemany(insert_resource, res_rows)
        con.executemany(insert_token, token_rows)
        if person_rows:
            con.executemany(insert_patient, person_rows)
        con.execute("COMMIT")

    for start in range(1, patients + 1, CHUNK):
        stop = min(start + CHUNK, patients + 1)
        write("Patient", ((p, patient_values(p)) for p in range(start, stop)))
    days = [(date(2018, 1, 1) + timedelta(days=d)).isoformat() for d in range(3000)]
    for start in range(1, studies + 1, CHUNK):
        stop = min(start + CHUNK, studies + 1)
        write(
            "ImagingStudy",
            (
                (
                    patients + n,
                    {
                        "sid": str(n),
                        "oid": str(n),
                        "uid": f"1.2.156.112605.77.{n}",
                        "acc": f"A{n:09d}",
                        "day": days[rng.randrange(len(days))],
                        **patient_values(rng.randrange(1, patients + 1)),
                    },
                )
                for n in range(start, stop)
            ),
        )
        if start // CHUNK % 10 == 9:
            say(f"  seeded {stop - 1} studies, {time.perf_counter() - started:.0f} s")
    for _name, sql in indexes:
        con.execute(sql)
    con.execute("PRAGMA journal_mode=WAL")
    body_bytes = con.execute(
        "SELECT length(CAST(body AS BLOB)) FROM fhir_resource WHERE resource_type = 'ImagingStudy'"
        " LIMIT 1"
    ).fetchone()[0]
    con.close()
    seconds = time.perf_counter() - started
    return Seeded(settings, studies, patients, seconds, body_bytes)


def check_seeded(database: Database, seeded: Seeded) -> None:
    """The hub's own data access finds seeded rows, and a seeded body is valid R4."""
    from fhir.resources.R4B.imagingstudy import ImagingStudy

    with database.engine.connect() as connection:
        stored = read_resource(
            connection, resource_type="ImagingStudy", logical_id=str(seeded.studies)
        )
        assert stored is not None, "a seeded study is not found by read_resource"
        ImagingStudy.model_validate_json(stored.body)
        subject = stored.parsed()["subject"]["reference"].split("/")[1]
        page, _, _ = search(
            connection, parse_search("ImagingStudy", [("patient", subject), ("_sort", "-date")])
        )
        assert any(hit.logical_id == str(seeded.studies) for hit in page), "search misses it"


def captured_sql(database: Database) -> dict[str, Any]:
    """The SQL (and parameters) the hub runs for a read and for a patient search."""
    mark = "BENCH-MARK"
    grabbed: list[tuple[str, tuple[Any, ...]]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        grabbed.append((statement, tuple(parameters)))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        with database.engine.connect() as connection:
            read_resource(connection, resource_type="ImagingStudy", logical_id=mark)
            read_sql = grabbed[-1]
            search(
                connection, parse_search("ImagingStudy", [("patient", mark), ("_sort", "-date")])
            )
            search_sql = grabbed[-1]
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    return {
        name: {"sql": sql, "params": list(params), "mark": params.index(mark)}
        for name, (sql, params) in (("read", read_sql), ("search", search_sql))
    }


# --- the plain app (the bound), in its own process ----------------------------------------


def _column(cursor: sqlite3.Cursor, name: str) -> int:
    """Where a column is in the hub's captured SQL, which may gain columns over time."""
    return [described[0] for described in cursor.description].index(name)


def plain_app(spec: dict[str, Any]) -> Starlette:
    """Read and search answered straight from SQLite with the hub's SQL; a POST sink."""
    con = sqlite3.connect(spec["db"]) if spec.get("db") else None
    base = spec.get("base", "")

    def bound(name: str, value: str) -> list[Any]:
        params = list(spec[name]["params"])
        params[spec[name]["mark"]] = value
        return params

    async def healthz(_request: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    async def read(request: Request) -> Response:
        assert con is not None
        resource_type = request.path_params["resource_type"]
        if resource_type != "ImagingStudy":  # the captured SQL names this type
            return Response(status_code=404)
        cursor = con.execute(spec["read"]["sql"], bound("read", request.path_params["logical_id"]))
        row = cursor.fetchone()
        if row is None:
            return Response(status_code=404)
        return Response(row[_column(cursor, "body")], media_type=FHIR_JSON)

    async def search_studies(request: Request) -> Response:
        assert con is not None
        patient = request.query_params["patient"]
        cursor = con.execute(spec["search"]["sql"], bound("search", patient))
        body_at = _column(cursor, "body")
        rows = cursor.fetchall()
        page = rows[:20]
        head = json.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(page),
                "link": [{"relation": "self", "url": f"{base}/ImagingStudy?{request.url.query}"}],
            },
            separators=(",", ":"),
        )
        entries = [
            f'{{"fullUrl":{json.dumps(f"{base}/{row[1]}/{row[2]}")},"resource":{row[body_at]},'
            '"search":{"mode":"match"}}'
            for row in page
        ]
        body = f'{head[:-1]},"entry":[{",".join(entries)}]}}' if entries else head
        return Response(body, media_type=FHIR_JSON)

    async def sink(request: Request) -> Response:
        await request.body()
        return Response(
            '{"resourceType":"Bundle","type":"transaction-response"}', media_type=FHIR_JSON
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/fhir", sink, methods=["POST"]),
            Route("/fhir/ImagingStudy", search_studies, methods=["GET"]),
            Route("/fhir/{resource_type}/{logical_id}", read, methods=["GET"]),
        ]
    )


# --- processes ----------------------------------------------------------------------------


# --- reads and searches -------------------------------------------------------------------


def read_paths(rng: random.Random, studies: int, count: int) -> list[str]:
    return [f"/fhir/ImagingStudy/{rng.randint(1, studies)}" for _ in range(count)]


def search_paths(rng: random.Random, patients: int, count: int) -> list[str]:
    return [
        f"/fhir/ImagingStudy?patient={rng.randint(1, patients)}&_sort=-date" for _ in range(count)
    ]


def timed_gets(client: httpx.Client, paths: Sequence[str], deadline: float) -> list[float]:
    latencies = []
    for path in paths:
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: HTTP {answer.status_code}: {answer.text[:300]}")
        latencies.append(elapsed)
    return latencies


def same_answers(ours: httpx.Client, bound: httpx.Client, study: int, patient: int) -> None:
    """Both servers give the same stored JSON for a read, and the same hits for a search."""
    mine, theirs = ours.get(f"/fhir/ImagingStudy/{study}"), bound.get(f"/fhir/ImagingStudy/{study}")
    if mine.status_code != 200 or mine.content != theirs.content:
        raise SystemExit(f"read differs: HTTP {mine.status_code} {mine.text[:300]}")
    path = f"/fhir/ImagingStudy?patient={patient}&_sort=-date"
    mine, theirs = ours.get(path), bound.get(path)
    if mine.status_code != 200:
        raise SystemExit(f"search: HTTP {mine.status_code} {mine.text[:300]}")
    hits = [
        [entry["resource"] for entry in answer.json().get("entry", [])] for answer in (mine, theirs)
    ]
    if hits[0] != hits[1] or mine.json()["total"] != theirs.json()["total"]:
        raise SystemExit("search answers differ between the hub and the bound")


def audit_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "huren.db") as con:
        return int(con.execute("SELECT count(*) FROM audit_event").fetchone()[0])


# --- the outbox push ----------------------------------------------------------------------


def bundles(count: int, first: int) -> list[bytes]:
    """Transaction Bundles of one study each, built as the hub queues them (fhir_publish)."""
    payloads = []
    facility = township()
    endpoint = endpoint_from(base_url="http://127.0.0.1:8080/dicomweb")
    for k in range(first, first + count):
        rows = hub_rows(
            {
                "pid": str(k),
                "sid": str(k),
                "oid": str(k),
                "uid": f"1.2.156.112605.88.{k}",
                "acc": f"B{k:09d}",
                "day": (date(2026, 1, 1) + timedelta(days=k % 300)).isoformat(),
                "rid": f"3205821960{k:08d}",
                "mrn": f"MRN-{k:07d}",
                "hc": f"HC-{k:07d}",
            }
        )
        patient, study = mapped(rows)
        order = service_request_from(
            rows.order, exam(), ordering_facility=facility, performing_facility=facility
        )
        resources = [patient, organization_from(facility), order, endpoint, study]
        payloads.append(transaction_bundle(resources).model_dump_json(exclude_none=True).encode())
    return payloads


def province(root: Path) -> tuple[Path, str]:
    """A fresh hub database with an API client for the county; its token."""
    settings = Settings(data_dir=root, database_url="")
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        token = create_client(connection, name="county", scopes=SCOPES, now=datetime.now(UTC))
    database.dispose()
    return root, token


def queue(database: Database, destination: str, payloads: Sequence[bytes], first: int) -> None:
    now = datetime.now(UTC) - timedelta(seconds=1)
    with database.engine.begin() as connection:
        for n, payload in enumerate(payloads, start=first):
            enqueue(
                connection,
                channel=OutboxChannel.fhir,
                destination=destination,
                idempotency_key=f"fhir:ImagingStudy/{n}/_history/1",
                payload=payload,
                content_type=FHIR_JSON,
                now=now,
                subject_type="ImagingStudy",
                subject_id=n,
            )


def drain(
    database: Database, settings: Settings, expected: int, deadline: float
) -> tuple[int, float]:
    """Run the outbox worker until ``expected`` rows are delivered; (delivered, seconds)."""

    async def run() -> tuple[int, float]:
        async with httpx.AsyncClient() as client:
            worker = OutboxWorker(
                database=database,
                settings=settings,
                senders={
                    OutboxChannel.fhir: lambda parcel: send_fhir(
                        parcel, settings=settings, client=client
                    )
                },
                batching={OutboxChannel.fhir: FHIR_BATCHING},
            )
            delivered = 0
            started = time.perf_counter()
            while delivered < expected and time.monotonic() < deadline:
                done = await worker.run_once()
                delivered += done
                if done == 0:
                    with database.engine.connect() as connection:
                        failed = connection.execute(
                            select(OUTBOX.c.last_error).where(OUTBOX.c.last_error != "").limit(1)
                        ).first()
                    if failed is not None:
                        raise SystemExit(f"outbox delivery failed: {failed.last_error[:500]}")
                    await asyncio.sleep(0.01)
            return delivered, time.perf_counter() - started

    return asyncio.run(run())


def post_all(
    url: str, token: str | None, payloads: Sequence[bytes], deadline: float
) -> tuple[int, float]:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    sent = 0
    with httpx.Client(headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for payload in payloads:
            if time.monotonic() > deadline:
                break
            answer = client.post(url, content=payload)
            if answer.status_code != 200:
                raise SystemExit(f"POST {url}: HTTP {answer.status_code}: {answer.text[:300]}")
            sent += 1
        return sent, time.perf_counter() - started


def stored_studies(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "huren.db") as con:
        return int(
            con.execute(
                "SELECT count(*) FROM fhir_resource WHERE resource_type = 'ImagingStudy'"
            ).fetchone()[0]
        )


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--bundles", type=int, default=2000, help="5 resources each")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per phase at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--small",
        action="store_true",
        help="20,000 studies, 1,000 reads, 500 searches, 400 bundles",
    )
    parser.add_argument("--plain-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        spec = json.loads(Path(args.plain_server).read_text())
        harness.serve(plain_app(spec), spec["port"])
        return 0
    if args.small:
        args.studies, args.reads, args.searches, args.bundles = 20_000, 1000, 500, 400
    rng = random.Random(args.seed)
    began = time.perf_counter()

    def say(text: str) -> None:
        print(text, flush=True)

    with tempfile.TemporaryDirectory(prefix="huren-bench-fhir-") as temporary:
        base = Path(temporary)
        seeded = seed(base / "county", args.studies, rng, say)
        database = Database.from_settings(seeded.settings)
        check_seeded(database, seeded)
        spec = {"db": str(base / "county" / "huren.db"), **captured_sql(database)}
        with database.engine.begin() as connection:
            token = create_client(connection, name="bench", scopes=SCOPES, now=datetime.now(UTC))
        database.dispose()
        size = (base / "county" / "huren.db").stat().st_size
        say(
            f"seeded {seeded.studies} ImagingStudies ({seeded.body_bytes} bytes each) over "
            f"{seeded.patients} patients in {seeded.seconds:.1f} s; database {size / 1e9:.2f} GB"
        )

        # Reads and searches: the hub and the plain app take turns with the same requests.
        audited_before = audit_rows(base / "county")
        latencies: dict[str, dict[str, list[float]]] = {
            "ours": {"read": [], "search": []},
            "bound": {"read": [], "search": []},
        }
        with (
            harness.hub(base / "county", base / "hub.log") as (hub_url, hub_pid),
            harness.bound_process(
                __file__, "--plain-server", {**spec, "base": f"{hub_url}/fhir"}, base
            ) as (plain_url, _),
        ):
            auth = {"Authorization": f"Bearer {token}"}
            clients = {
                "ours": httpx.Client(base_url=hub_url, headers=auth, timeout=30),
                "bound": httpx.Client(base_url=plain_url, headers=auth, timeout=30),
            }
            say(f"hub pid {hub_pid} at {hub_url}; bound at {plain_url}")
            try:
                same_answers(clients["ours"], clients["bound"], seeded.studies, seeded.patients)
                deadline = time.monotonic() + args.budget
                for client in clients.values():  # warm-up: imports, caches, connections
                    timed_gets(client, read_paths(rng, seeded.studies, 200), deadline)
                    timed_gets(client, search_paths(rng, seeded.patients, 100), deadline)
                for round_ in range(args.rounds):
                    reads = read_paths(rng, seeded.studies, args.reads // args.rounds)
                    searches = search_paths(rng, seeded.patients, args.searches // args.rounds)
                    order = ["ours", "bound"] if round_ % 2 == 0 else ["bound", "ours"]
                    for name in order:
                        latencies[name]["read"] += timed_gets(clients[name], reads, deadline)
                        latencies[name]["search"] += timed_gets(clients[name], searches, deadline)
            finally:
                for client in clients.values():
                    client.close()
        audited = audit_rows(base / "county") - audited_before
        requests = 2 + 300 + sum(len(v) for v in latencies["ours"].values())
        if audited != requests:
            raise SystemExit(f"{requests} requests to the hub but {audited} audit rows")
        read_phase = time.perf_counter() - began
        figures = {
            (name, kind, q): harness.percentile(latencies[name][kind], q)
            for name in latencies
            for kind in ("read", "search")
            for q in (0.5, 0.99)
        }
        for kind in ("read", "search"):
            say(
                f"{kind}: {len(latencies['ours'][kind])} by the hub, p50 "
                f"{figures['ours', kind, 0.5]:.2f} ms, p99 {figures['ours', kind, 0.99]:.2f} ms; "
                f"{len(latencies['bound'][kind])} by the plain app, p50 "
                f"{figures['bound', kind, 0.5]:.2f} ms, p99 {figures['bound', kind, 0.99]:.2f} ms"
            )
        say(
            f"  ({audited} audit rows written by the hub; "
            f"seeding, reads and searches took {read_phase:.0f} s)"
        )

        # The outbox push: county outbox -> province; bounds: plain sink, province direct.
        started = time.perf_counter()
        warm = 20
        payloads = bundles(warm + args.bundles, first=1)
        per_bundle = len(json.loads(payloads[0])["entry"])
        build_seconds = time.perf_counter() - started
        via_outbox_dir, via_outbox_token = province(base / "province-outbox")
        direct_dir, direct_token = province(base / "province-direct")
        with (
            harness.hub(via_outbox_dir, base / "province-outbox.log") as (outbox_url, _),
            harness.hub(direct_dir, base / "province-direct.log") as (direct_url, _),
            harness.bound_process(__file__, "--plain-server", {}, base) as (sink_url, _),
        ):
            county_settings = Settings(
                data_dir=base / "county-outbox",
                database_url="",
                upstream_fhir_url=f"{outbox_url}/fhir",
                upstream_fhir_token=via_outbox_token,
            )
            county_db = Database.from_settings(county_settings)
            county_db.upgrade()
            deadline = time.monotonic() + args.budget
            queue(county_db, county_settings.upstream_fhir_url, payloads[:warm], first=1)
            drain(county_db, county_settings, warm, deadline)
            post_all(f"{direct_url}/fhir", direct_token, payloads[:warm], deadline)
            post_all(f"{sink_url}/fhir", None, payloads[:warm], deadline)
            totals = {"outbox": [0, 0.0], "direct": [0, 0.0], "sink": [0, 0.0]}
            measured = payloads[warm:]
            share = ceil(len(measured) / args.rounds)
            for round_ in range(args.rounds):
                part = measured[round_ * share : (round_ + 1) * share]
                if not part:
                    break
                queue(
                    county_db,
                    county_settings.upstream_fhir_url,
                    part,
                    first=warm + 1 + round_ * share,
                )
                for name, (sent, seconds) in (
                    ("outbox", drain(county_db, county_settings, len(part), deadline)),
                    ("direct", post_all(f"{direct_url}/fhir", direct_token, part, deadline)),
                    ("sink", post_all(f"{sink_url}/fhir", None, part, deadline)),
                ):
                    totals[name][0] += sent
                    totals[name][1] += seconds
            with county_db.engine.connect() as connection:
                states: dict[str, int] = dict(
                    connection.execute(
                        select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status)
                    ).all()
                )
            county_db.dispose()
        expected = warm + args.bundles
        for name, folder in (("outbox", via_outbox_dir), ("direct", direct_dir)):
            if totals[name][0] == args.bundles and stored_studies(folder) != expected:
                raise SystemExit(f"{name}: the province holds {stored_studies(folder)} studies")
        if states.get(OutboxStatus.delivered, 0) != warm + totals["outbox"][0]:
            raise SystemExit(f"outbox rows by status: {states}")
        rates = {name: sent * per_bundle / seconds for name, (sent, seconds) in totals.items()}
        say(
            f"push: {args.bundles} transaction Bundles of {per_bundle} resources "
            f"({len(payloads[-1])} bytes; built in {build_seconds:.1f} s), {args.rounds} rounds: "
            f"outbox -> province {totals['outbox'][0]} in {totals['outbox'][1]:.1f} s; "
            f"httpx -> province directly {totals['direct'][0]} in {totals['direct'][1]:.1f} s "
            f"({rates['direct']:.0f} resources/s); httpx -> plain sink {totals['sink'][0]} in "
            f"{totals['sink'][1]:.1f} s"
        )
        say(
            f"  outbox / province directly: {rates['outbox'] / rates['direct']:.2f}; "
            f"whole run {time.perf_counter() - began:.0f} s"
        )

    for name, kind, q, goal in (
        ("fhir-read-p50", "read", 0.5, GOAL_READ_P50_MS),
        ("fhir-read-p99", "read", 0.99, GOAL_READ_P99_MS),
        ("fhir-search-p99", "search", 0.99, GOAL_SEARCH_P99_MS),
    ):
        figure, bound = figures["ours", kind, q], figures["bound", kind, q]
        verdict = "met" if figure <= goal else "missed"
        print(
            f"GOAL {name}: {figure:.2f} ms (bound plain app {bound:.2f} ms, "
            f"ratio {figure / bound:.2f}) goal <={goal:.0f} ms: {verdict}"
        )
    rate, bound_rate = rates["outbox"], rates["sink"]
    complete = totals["outbox"][0] == args.bundles
    verdict = "met" if rate >= GOAL_PUSH_PER_S and complete else "missed"
    print(
        f"GOAL fhir-outbox-push: {rate:.0f} resources/s (bound plain sink {bound_rate:.0f}/s, "
        f"ratio {rate / bound_rate:.2f}) goal >={GOAL_PUSH_PER_S:.0f} resources/s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
