"""CDS Hooks order-sign latency over 10M exams in SQLite, 16 concurrent callers.

Goal: ``POST /cds-services/huren-prior-exams-sign`` answers with p99 <= 50 ms
(and, informational, p50 <= 50 ms) with 10,000,000 exams in the hub's SQLite
database and 16 concurrent callers on this machine.

Data: ``huren demo seed --scale tiny`` gives the region (facilities, exam
catalogue, QC periods, users); then N exams (default 10M) are bulk-added with
sqlite3 ``executemany``, indexes dropped and rebuilt after: patients (N/8,
resident IDs that pass MOD 11-2, an MRN each), complete studies with ids in
time order over the last two years, each a copy of a random demo study
(exam, facility, reading centre) on a random patient (so ~8 each), and its
report (the demo's mix of final, amended and corrected; ~2% preliminary; the
demo's ~1.5% retakes have none and are quality-rejected).

Ours: ``huren serve`` in its own process (free loopback ports), with its
defaults (``synchronous=FULL``; every card is kept in ``recognition_card``
before the answer). The bound, measured in the same run, is a plain
Starlette app in its own process with the hub's uvicorn settings answering
the same URL: one SQL statement (sqlite3, in the event loop) finds the
patient by resident ID and their complete studies of the requested exam with
the report status, and a minimal cards array with the same indicator comes
back (QC periods read once at start; nothing written).

Load: 16 callers (asyncio tasks in this process, each with its own keep-alive
HTTP/1.1 connection: a lean client writing the request bytes and reading the
answer by its Content-Length, because httpx costs more CPU per request than
either server and shares their two cores; ``--httpx`` for httpx clients),
closed loop: each sends its next request as soon as
its answer is read. Each request is an order-sign for the resident ID
(``context.patientId``) and exam code of a random seeded study, with a fresh
``hookInstance``. After a warm-up, ours and the bound take turns over several
rounds with the same requests; latencies (client-side, send to last byte)
are pooled. Every answer must be 200, both must give the same card
indicators, some must be warnings, and the hub must have kept one card row
per card. With closed-loop callers a latency is mostly waiting behind the
other 15: p50 is about 16 / throughput. Also printed: both servers' CPU per
answer, the bound's SQL and the hub's own lookup functions timed in this
process, and their query plans; ``--profile FILE`` adds an unmeasured hub
round under py-spy and prints where the hub's CPU goes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from math import ceil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as ``python bench/cds.py``, this file's folder comes first on sys.path and its
# neighbours (fhir.py, dicom.py) would shadow the packages the hub imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_harness", _HERE / "_harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
clients = harness.load_sibling("_clients")

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from integration.database import Database  # noqa: E402
from integration.priors import catalogue, find_person, priors_of  # noqa: E402
from integration.recognition import Rules, stands_for, verdicts  # noqa: E402
from integration.settings import Settings  # noqa: E402

GOAL_P99_MS = 50.0
GOAL_P50_MS = 50.0
SERVICE = "huren-prior-exams-sign"
PATH = f"/cds-services/{SERVICE}"
CHUNK = 50_000  # studies per executemany transaction while seeding
SPAN_DAYS = 730  # the seeded exams' started_at spread
PRELIMINARY_SHARE = 0.02
SIGNED = ("final", "amended", "corrected")
MARKER = "bench-cds.json"  # next to huren.db: what was seeded, for --data-dir reuse

# The bound's lookup: the patient by resident ID, their complete studies of the requested
# exam, each with its report status and what the rules need.
BOUND_SQL = (
    "SELECT s.study_instance_uid, s.started_at, s.facility_id, s.quality_rejected,"
    " e.recognised, e.validity_days, r.status"
    " FROM patient_identifier i"
    " JOIN study s ON s.patient_id = i.patient_id"
    " JOIN exam_type e ON e.id = s.exam_type_id"
    " LEFT JOIN report r ON r.study_id = s.id"
    " WHERE i.kind = 'resident_id' AND i.value = ? AND e.code = ?"
    " AND s.completed_at IS NOT NULL"
)


def say(text: str) -> None:
    print(text, flush=True)


# --- bulk exams ---------------------------------------------------------------------------


@dataclass
class Seeded:
    exams: int
    patients: int
    first_study: int
    last_study: int
    seconds: float  # bulk rows and indexes (the demo region not included)
    index_seconds: float


class Stamps:
    """SQLAlchemy's SQLite DateTime text for UTC instants in microseconds, fast in time order."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def __call__(self, micros: int) -> str:
        minute, rest = divmod(micros, 60_000_000)
        prefix = self._minutes.get(minute)
        if prefix is None:
            if len(self._minutes) > 100_000:
                self._minutes.clear()
            prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
            self._minutes[minute] = prefix
        second, micro = divmod(rest, 1_000_000)
        return f"{prefix}:{second:02d}.{micro:06d}"


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in con.execute(f"PRAGMA table_info({table})")]


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def seed(root: Path, exams: int, rng: random.Random) -> Seeded:
    """Add ``exams`` complete studies with reports over ``exams // 8`` new patients."""
    con = sqlite3.connect(root / "huren.db", isolation_level=None)
    started = time.perf_counter()
    cols = {table: _columns(con, table) for table in ("patient", "patient_identifier", "study")}
    cols["report"] = _columns(con, "report")
    if exams // 8 > clients.MAX_RESIDENTS:
        raise SystemExit("too many patients for the resident ID scheme")

    # Templates: the demo's complete studies, each with its report (None for retakes).
    study_rows = con.execute(
        "SELECT * FROM study WHERE completed_at IS NOT NULL AND patient_id IS NOT NULL"
    ).fetchall()
    reports = {row[1]: row for row in con.execute("SELECT * FROM report")}
    templates = [(row, reports.get(row[0])) for row in study_rows]
    people = con.execute("SELECT name, address FROM patient").fetchall()
    facility_codes = [row[0] for row in con.execute("SELECT code FROM facility ORDER BY id")]

    def top(table: str) -> int:
        return int(con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])

    first_patient, first_ident = top("patient") + 1, top("patient_identifier") + 1
    first_study, first_report = top("study") + 1, top("report") + 1

    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('patient', 'patient_identifier', 'study', 'report')"
    ).fetchall()
    for name, _sql in indexes:
        con.execute(f"DROP INDEX {name}")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1048576")
    con.execute("PRAGMA temp_store=MEMORY")
    con.execute("PRAGMA threads=2")

    stamp = Stamps()
    now_us = int(datetime.now(UTC).timestamp()) * 1_000_000
    end_us = now_us - 3 * 3600 * 1_000_000
    start_us = end_us - SPAN_DAYS * 86_400 * 1_000_000
    patients = max(1, exams // 8)

    # Patients, with a resident ID and an MRN each.
    pc, ic = cols["patient"], cols["patient_identifier"]
    insert_patient, insert_ident = _insert("patient", pc), _insert("patient_identifier", ic)
    for begin in range(0, patients, CHUNK * 2):
        person_rows, ident_rows = [], []
        for p in range(begin, min(begin + CHUNK * 2, patients)):
            pid = first_patient + p
            born, sex = clients.birth_of(p)
            name, address = people[int(rng.random() * len(people))]
            created = stamp(start_us - int(rng.random() * 86_400_000_000 * 365))
            values = {
                "id": pid,
                "name": name,
                "sex": sex.value,
                "birth_date": born.isoformat(),
                "phone": f"13{int(rng.random() * 1e9):09d}",
                "address": address,
                "merged_into_id": None,
                "needs_review": 0,
                "created_at": created,
                "updated_at": created,
            }
            person_rows.append(tuple(values[c] for c in pc))
            facility = facility_codes[p % len(facility_codes)]
            for k, (kind, authority, value) in enumerate(
                (
                    ("resident_id", "CN", clients.resident_of(p, born, sex)),
                    ("mrn", facility, f"BM{p:010d}"),
                )
            ):
                ident = {
                    "id": first_ident + 2 * p + k,
                    "patient_id": pid,
                    "kind": kind,
                    "authority": authority,
                    "value": value,
                }
                ident_rows.append(tuple(ident[c] for c in ic))
        con.execute("BEGIN")
        con.executemany(insert_patient, person_rows)
        con.executemany(insert_ident, ident_rows)
        con.execute("COMMIT")
    say(f"  {patients} patients in {time.perf_counter() - started:.0f} s")

    # Studies in time order, each with its report unless a retake.
    sc, rc = cols["study"], cols["report"]
    s_at = {name: sc.index(name) for name in sc}
    r_at = {name: rc.index(name) for name in rc}
    insert_study, insert_report = _insert("study", sc), _insert("report", rc)
    step = (end_us - start_us) // exams
    random_ = rng.random
    n_templates = len(templates)
    report_id = first_report
    for begin in range(0, exams, CHUNK):
        study_batch, report_batch = [], []
        for n in range(begin, min(begin + CHUNK, exams)):
            tpl, rpt = templates[int(random_() * n_templates)]
            sid = first_study + n
            began = start_us + n * step + int(random_() * step)
            received = began + 240_000_000 + int(random_() * 600_000_000)
            completed = received + 60_000_000 + int(random_() * 60_000_000)
            row = list(tpl)
            row[s_at["id"]] = sid
            row[s_at["study_instance_uid"]] = f"2.25.{10**15 + n}"
            row[s_at["order_id"]] = None
            row[s_at["patient_id"]] = first_patient + int(random_() * patients)
            row[s_at["accession_number"]] = f"HB{n:010d}"
            row[s_at["started_at"]] = stamp(began)
            row[s_at["received_at"]] = stamp(received)
            row[s_at["last_instance_at"]] = row[s_at["received_at"]]
            row[s_at["completed_at"]] = stamp(completed)
            row[s_at["claimed_by_id"]] = None
            row[s_at["claimed_until"]] = None
            row[s_at["retake_of_study_id"]] = None
            if rpt is not None:
                preliminary = random_() < PRELIMINARY_SHARE
                drafted = completed + 600_000_000 + int(random_() * 3_000_000_000)
                signed = drafted + 300_000_000 + int(random_() * 1_500_000_000)
                report = list(rpt)
                report[r_at["id"]] = report_id
                report[r_at["study_id"]] = sid
                report[r_at["order_id"]] = None
                report[r_at["preliminary_at"]] = stamp(drafted)
                if preliminary:
                    report[r_at["status"]] = "preliminary"
                    report[r_at["auditor_id"]] = None
                    report[r_at["finalised_at"]] = None
                    report[r_at["amended_at"]] = None
                    report[r_at["corrected"]] = 0
                    report[r_at["version"]] = 1
                    report[r_at["updated_at"]] = report[r_at["preliminary_at"]]
                    row[s_at["reading_status"]] = "awaiting_audit"
                else:
                    report[r_at["finalised_at"]] = stamp(signed)
                    last = signed
                    if rpt[r_at["amended_at"]] is not None:
                        last = signed + 86_400_000_000
                        report[r_at["amended_at"]] = stamp(last)
                    report[r_at["updated_at"]] = stamp(last)
                report_batch.append(tuple(report))
                report_id += 1
            study_batch.append(tuple(row))
        con.execute("BEGIN")
        con.executemany(insert_study, study_batch)
        con.executemany(insert_report, report_batch)
        con.execute("COMMIT")
        if (begin // CHUNK) % 20 == 19:
            say(f"  {begin + CHUNK} studies, {time.perf_counter() - started:.0f} s")
    rows_done = time.perf_counter()
    for name, sql in indexes:
        con.execute(sql)
        if exams >= 1_000_000:
            say(f"  index {name}: {time.perf_counter() - rows_done:.0f} s")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    finished = time.perf_counter()
    return Seeded(
        exams=exams,
        patients=patients,
        first_study=first_study,
        last_study=first_study + exams - 1,
        seconds=finished - started,
        index_seconds=finished - rows_done,
    )


def check_seeded(root: Path, seeded: Seeded) -> None:
    """Counts, valid resident IDs, and the hub's own lookup finds a seeded patient's priors."""
    from models.identity import normalise_resident_id

    with sqlite3.connect(root / "huren.db") as con:
        studies = con.execute(
            "SELECT count(*) FROM study WHERE id >= ?", (seeded.first_study,)
        ).fetchone()[0]
        if studies != seeded.exams:
            raise SystemExit(f"{studies} seeded studies, expected {seeded.exams}")
        rid, code, patient = con.execute(
            "SELECT i.value, e.code, s.patient_id FROM study s JOIN exam_type e"
            " ON e.id = s.exam_type_id JOIN patient_identifier i ON i.patient_id = s.patient_id"
            " AND i.kind = 'resident_id' WHERE s.id = ?",
            (seeded.last_study,),
        ).fetchone()
        normalise_resident_id(rid)
        for (value,) in con.execute(
            "SELECT value FROM patient_identifier WHERE kind = 'resident_id'"
            " ORDER BY id DESC LIMIT 1000"
        ):
            normalise_resident_id(value)
    settings = Settings(data_dir=root, database_url="")
    database = Database.from_settings(settings)
    try:
        with database.engine.connect() as connection:
            person = find_person(connection, resident_id=rid)
            assert person is not None and person.patient_ids == (patient,), "patient not found"
            priors = priors_of(
                connection, person=person, exams=catalogue(connection), zone=settings.zone
            )
            assert any(p.exam_code == code for p in priors), "the seeded study is not a prior"
    finally:
        database.dispose()


# --- requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    resident_id: str
    code: str
    body: bytes


def asks(db: Path, seeded: Seeded, rng: random.Random, count: int) -> list[Ask]:
    """Order-signs for the patient and exam of random seeded studies, by clinicians here."""
    with sqlite3.connect(db) as con:
        clinicians = con.execute(
            "SELECT u.id, f.code FROM app_user u JOIN facility f ON f.id = u.facility_id"
            " WHERE u.role = 'clinician' ORDER BY u.id"
        ).fetchall()
        found = []
        for _ in range(count):
            row = con.execute(
                "SELECT i.value, e.code FROM study s JOIN exam_type e ON e.id = s.exam_type_id"
                " JOIN patient_identifier i ON i.patient_id = s.patient_id"
                " AND i.kind = 'resident_id' WHERE s.id = ?",
                (rng.randint(seeded.first_study, seeded.last_study),),
            ).fetchone()
            user, facility = clinicians[rng.randrange(len(clinicians))]
            instance = str(uuid.uuid4())  # fresh in every run, even on a reused --data-dir
            body = clients.order_sign(instance, row[0], row[1], user, facility)
            found.append(Ask(row[0], row[1], body))
    return found


# --- in-process lookups (what the database part costs, without HTTP) -----------------------


def raw_lookups(db: Path, requests: Sequence[Ask]) -> list[float]:
    """Seconds per execution of the bound's SQL, sqlite3 in this process."""
    con = sqlite3.connect(db)
    took = []
    try:
        for ask in requests:
            started = time.perf_counter()
            con.execute(BOUND_SQL, (ask.resident_id, ask.code)).fetchall()
            took.append(time.perf_counter() - started)
    finally:
        con.close()
    return took


def hub_lookups(root: Path, requests: Sequence[Ask]) -> tuple[list[float], float, list[str]]:
    """The hub's own lookups as the CDS service runs them, in this process (no HTTP, no write):
    one read snapshot, find_person by resident ID, priors_of narrowed to the exam types that
    stand for the requested one, verdicts.

    Returns seconds per lookup, SQL statements per lookup (as SQLite ran them), and
    the query plans of the statements of one lookup.
    """
    settings = Settings(data_dir=root, database_url="")
    database = Database.from_settings(settings)
    statements: list[str] = []
    took = []
    rules = Rules()
    today = datetime.now(settings.zone).date()
    try:
        with database.engine.connect() as connection:
            every = catalogue(connection)
        exams = {exam.code: exam for exam in every}
        kinds = {
            code: frozenset(
                other.code
                for other in every
                if stands_for(
                    other.code, other.modality, other.body_part, requested=exam, rules=rules
                )
            )
            for code, exam in exams.items()
        }
        for ask in requests:
            with database.snapshot() as connection:
                driver = connection.connection.driver_connection
                assert driver is not None
                driver.set_trace_callback(statements.append)
                started = time.perf_counter()
                person = find_person(connection, resident_id=ask.resident_id)
                assert person is not None
                priors = priors_of(
                    connection,
                    person=person,
                    exams=every,
                    zone=settings.zone,
                    kinds=kinds[ask.code],
                )
                verdicts(priors, requested=exams[ask.code], on=today, rules=rules)
                took.append(time.perf_counter() - started)
                driver.set_trace_callback(None)
        queries = [sql for sql in statements if sql.startswith("SELECT")]
        per_lookup = len(queries) / max(1, len(requests))
        plans = []
        with database.engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            for sql in queries[: round(per_lookup)]:
                plan = driver.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                plans.append(" / ".join(str(step[-1]) for step in plan))
    finally:
        database.dispose()
    return took, per_lookup, plans


# --- the bound: a plain app in its own process ----------------------------------------------


def bound_app(spec: dict[str, Any]) -> Starlette:
    """The same URL answered with one SQL lookup and the rules inline; writes nothing."""
    con = sqlite3.connect(spec["db"], check_same_thread=False)
    zone = ZoneInfo(spec["zone"])
    qc: dict[int, list[tuple[date, date | None]]] = {}
    for facility_id, valid_from, valid_until in con.execute(
        "SELECT facility_id, valid_from, valid_until FROM qc_qualification"
    ):
        qc.setdefault(facility_id, []).append(
            (
                date.fromisoformat(valid_from),
                date.fromisoformat(valid_until) if valid_until else None,
            )
        )

    def recognisable(row: tuple[Any, ...], today: date) -> bool:
        _uid, started_at, facility_id, rejected, recognised, days, status = row
        on = datetime.fromisoformat(started_at).replace(tzinfo=UTC).astimezone(zone).date()
        qualified = any(
            start <= on and (end is None or on <= end) for start, end in qc.get(facility_id, [])
        )
        return bool(
            recognised
            and qualified
            and status in SIGNED
            and not rejected
            and days > 0
            and today <= on + timedelta(days=days)
        )

    async def healthz(_request: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    async def sign(request: Request) -> Response:
        body = json.loads(await request.body())
        context = body["context"]
        resident_id = context["patientId"]
        today = datetime.now(zone).date()
        cards = []
        for entry in context["draftOrders"]["entry"]:
            code = entry["resource"]["code"]["coding"][0]["code"]
            rows = con.execute(BOUND_SQL, (resident_id, code)).fetchall()
            if not rows:
                continue
            warning = any(recognisable(row, today) for row in rows)
            cards.append(
                {
                    "uuid": str(uuid.uuid4()),
                    "summary": f"{code}: {len(rows)} prior(s)",
                    "indicator": "warning" if warning else "info",
                    "source": {"label": "bound"},
                }
            )
        return Response(
            json.dumps({"cards": cards}, separators=(",", ":")), media_type="application/json"
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(PATH, sign, methods=["POST"]),
        ]
    )


# --- processes ----------------------------------------------------------------------------


@contextmanager
def py_spy(pid: int, output: Path, limit: float) -> Iterator[None]:
    """py-spy sampling ``pid`` while the block runs: collapsed stacks of the thread holding
    the GIL (where the hub's CPU goes; SQLite runs without the GIL) into ``output``."""
    spy = Path(sys.executable).parent / "py-spy"
    process = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--gil",
         "--output", str(output), "--duration", str(ceil(limit)), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        if not output.exists():
            say(f"py-spy wrote nothing: {errors.decode(errors='replace')[-500:]}")


PROJECT = ("integration/", "models/", "fhir/", "dicom/", "hl7/")


def profile_summary(collapsed: Path, top: int = 20) -> list[str]:
    """The project's lines most often on the stack (inclusive) and the functions on top."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread ", "process "))]
        total += count
        for frame in set(frames):
            if frame.partition(" (")[2].startswith(PROJECT):
                inclusive[frame] += count
        if frames:
            own[frame_name(frames[-1])] += count
    if not total:
        return ["  py-spy recorded no samples"]
    lines = [f"  {total} samples (GIL held); the project's lines on the stack (inclusive):"]
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines.append("  functions on top of the stack (self):")
    lines += [f"    {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return lines


def frame_name(frame: str) -> str:
    """``func (path/file.py:line)`` without the line: counts a function once."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


# --- the load -----------------------------------------------------------------------------


@dataclass
class Answers:
    latencies: list[float]  # seconds, in completion order
    indicators: dict[int, tuple[str, ...]]  # request index -> card indicators
    seconds: float  # wall time of the round
    cpu: float  # this process's CPU seconds during the round (the callers' share)


class HttpxCaller:
    """The same through httpx (``--httpx``): what an application's client would cost."""

    def __init__(self, base: str) -> None:
        self._client = httpx.AsyncClient(base_url=base, timeout=30)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def open(self) -> None:
        (await self._client.get("/healthz")).raise_for_status()

    async def post(self, body: bytes) -> tuple[int, bytes]:
        answer = await self._client.post(PATH, content=body, headers=self._headers)
        return answer.status_code, answer.content

    async def close(self) -> None:
        await self._client.aclose()


async def _load(
    base: str, requests: Sequence[Ask], callers: int, deadline: float, lean: bool
) -> Answers:
    next_index = 0
    latencies: list[float] = []
    bodies: dict[int, bytes] = {}

    async def caller(connection: Any) -> None:
        nonlocal next_index
        while next_index < len(requests) and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            status, content = await asyncio.wait_for(connection.post(requests[index].body), 30)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise SystemExit(f"POST {base}{PATH}: HTTP {status}: {content[:300]!r}")
            latencies.append(elapsed)
            bodies[index] = content

    connections = [
        clients.LeanCaller(base, PATH) if lean else HttpxCaller(base) for _ in range(callers)
    ]
    try:
        for connection in connections:  # open the keep-alive connections before timing
            await connection.open()
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller(connection) for connection in connections))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        for connection in connections:
            await connection.close()
    indicators = {
        index: tuple(card["indicator"] for card in json.loads(body)["cards"])
        for index, body in bodies.items()
    }
    return Answers(latencies, indicators, seconds, cpu)


def load(
    base: str, requests: Sequence[Ask], callers: int, deadline: float, lean: bool = True
) -> Answers:
    return asyncio.run(_load(base, requests, callers, deadline, lean))


def card_rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM recognition_card").fetchone()[0])


# --- main ---------------------------------------------------------------------------------


def prepare(root: Path, exams: int, rng: random.Random) -> tuple[Seeded, bool]:
    """The seeded data dir: reused when ``root`` already holds the same seeding."""
    marker = root / MARKER
    if marker.exists():
        seeded = Seeded(**json.loads(marker.read_text()))
        if seeded.exams == exams:
            return seeded, True
        raise SystemExit(f"{root} holds {seeded.exams} seeded exams, not {exams}")
    if (root / "huren.db").exists():
        raise SystemExit(f"{root} has a database this benchmark did not seed")
    root.mkdir(parents=True, exist_ok=True)
    demo_seconds = harness.demo_region(root)
    say(f"demo region (huren demo seed --scale tiny) in {demo_seconds:.1f} s")
    seeded = seed(root, exams, rng)
    marker.write_text(json.dumps(asdict(seeded)))
    return seeded, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exams", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=4000, help="measured, per server")
    parser.add_argument("--warmup", type=int, default=400, help="per server, not measured")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of load at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--small", action="store_true", help="200,000 exams, 800 requests, 200 warm-up"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="seed into (or reuse) this folder and keep it"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the measured rounds, one more hub round under py-spy; collapsed stacks here",
    )
    parser.add_argument(
        "--httpx",
        action="store_true",
        help="callers use httpx (~1.4 ms CPU a request on this machine) instead of a lean client",
    )
    parser.add_argument("--bound-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bound_server:
        spec = json.loads(Path(args.bound_server).read_text())
        harness.serve(bound_app(spec), spec["port"])
        return 0
    if args.small:
        args.exams, args.requests, args.warmup = 200_000, 800, 200
    rng = random.Random(args.seed)
    lean = not args.httpx
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="huren-bench-cds-") as temporary:
        base = Path(temporary)
        root = args.data_dir.resolve() if args.data_dir else base / "hub"
        seeded, reused = prepare(root, args.exams, rng)
        db = root / "huren.db"
        size = sum(path.stat().st_size for path in root.glob("huren.db*"))
        if reused:
            say(f"reusing {seeded.exams} seeded exams in {root}")
        else:
            check_seeded(root, seeded)
            say(
                f"seeded {seeded.exams} exams over {seeded.patients} patients in "
                f"{seeded.seconds:.0f} s ({seeded.exams / seeded.seconds:.0f} exams/s; "
                f"indexes rebuilt in {seeded.index_seconds:.0f} s)"
            )
        with sqlite3.connect(db) as con:
            total = con.execute("SELECT count(*) FROM study").fetchone()[0]
        say(f"database {size / 1e9:.2f} GB, {total} studies in all")

        warm = asks(db, seeded, rng, args.warmup)
        measured = asks(db, seeded, rng, args.requests)
        raw = raw_lookups(db, [*warm[:200], *measured])[200:]
        took, statements, plans = hub_lookups(root, measured[: min(1000, len(measured))])
        pct = harness.percentile
        say(
            f"in this process, one caller: the bound's SQL p50 {pct(raw, 0.5) * 1000:.0f} µs"
            f" p99 {pct(raw, 0.99) * 1000:.0f} µs; the hub's find_person + priors_of + "
            f"verdicts p50 {pct(took, 0.5):.2f} ms p99 {pct(took, 0.99):.2f} ms "
            f"({statements:.1f} SQL statements each, in one read transaction)"
        )
        for plan in plans:
            say(f"  plan: {plan}")

        cards_before = card_rows(db)
        spec = {"db": str(db), "zone": Settings(data_dir=root).timezone}
        results: dict[str, list[Answers]] = {"hub": [], "bound": []}
        cpu = {"hub": 0.0, "bound": 0.0}
        client_cpu = {"hub": 0.0, "bound": 0.0}
        hub_cards = 0
        with (
            harness.hub(root, base / "hub.log") as (hub_url, hub_pid),
            harness.bound_process(__file__, "--bound-server", spec, base) as (
                bound_url,
                bound_pid,
            ),
        ):
            urls = {"hub": hub_url, "bound": bound_url}
            pids = {"hub": hub_pid, "bound": bound_pid}
            say(f"hub pid {hub_pid} at {hub_url}; bound pid {bound_pid} at {bound_url}")
            deadline = time.monotonic() + args.budget
            for name, url in urls.items():  # warm-up: imports, caches, connections, pages
                answers = load(url, warm, args.callers, deadline, lean)
                if name == "hub":
                    hub_cards += sum(len(cards) for cards in answers.indicators.values())
            share = ceil(len(measured) / args.rounds)
            for round_ in range(args.rounds):
                part = measured[round_ * share : (round_ + 1) * share]
                order = ["hub", "bound"] if round_ % 2 == 0 else ["bound", "hub"]
                for name in order:
                    before = harness.cpu_seconds(pids[name])
                    answers = load(urls[name], part, args.callers, deadline, lean)
                    cpu[name] += harness.cpu_seconds(pids[name]) - before
                    client_cpu[name] += answers.cpu
                    results[name].append(answers)
                    if name == "hub":
                        hub_cards += sum(len(cards) for cards in answers.indicators.values())
            if args.profile:
                extra = asks(db, seeded, rng, share)
                limit = args.budget
                with py_spy(hub_pid, args.profile.resolve(), limit):
                    answers = load(hub_url, extra, args.callers, time.monotonic() + limit, lean)
                hub_cards += sum(len(cards) for cards in answers.indicators.values())
                say(f"profiled round: {len(answers.latencies)} requests in {answers.seconds:.1f} s")

        # Checks: everything answered, the same indicators, some warnings, every card kept.
        answered = {name: sum(len(a.latencies) for a in rounds) for name, rounds in results.items()}
        if answered["hub"] != len(measured) or answered["bound"] != len(measured):
            raise SystemExit(
                f"the load budget ran out: {answered} of {len(measured)} requests answered"
            )
        indicators = {
            name: {
                round_ * share + index: cards
                for round_, answers in enumerate(rounds)
                for index, cards in answers.indicators.items()
            }
            for name, rounds in results.items()
        }
        differ = [i for i in indicators["hub"] if indicators["hub"][i] != indicators["bound"][i]]
        kinds = Counter(card for cards in indicators["hub"].values() for card in cards)
        if len(differ) > len(measured) // 200:  # a day may turn during the run
            first = differ[0]
            raise SystemExit(
                f"{len(differ)} answers differ, e.g. {measured[first].resident_id} "
                f"{measured[first].code}: hub {indicators['hub'][first]}, "
                f"bound {indicators['bound'][first]}"
            )
        if kinds["warning"] == 0:
            raise SystemExit(f"no warning card in {len(measured)} answers: {dict(kinds)}")
        kept = card_rows(db) - cards_before
        if kept != hub_cards:
            raise SystemExit(f"the hub answered {hub_cards} cards but kept {kept}")

        latencies = {
            name: [x for a in rounds for x in a.latencies] for name, rounds in results.items()
        }
        rates = {
            name: sum(len(a.latencies) for a in rounds) / sum(a.seconds for a in rounds)
            for name, rounds in results.items()
        }
        figures = {
            (name, q): harness.percentile(latencies[name], q)
            for name in latencies
            for q in (0.5, 0.99)
        }
        say(
            f"{len(measured)} order-signs each, {args.callers} callers, {args.rounds} alternating "
            f"rounds: hub p50 {figures['hub', 0.5]:.1f} ms p99 {figures['hub', 0.99]:.1f} ms "
            f"max {max(latencies['hub']) * 1000:.1f} ms ({rates['hub']:.0f} answers/s); "
            f"bound p50 {figures['bound', 0.5]:.1f} ms p99 {figures['bound', 0.99]:.1f} ms "
            f"max {max(latencies['bound']) * 1000:.1f} ms ({rates['bound']:.0f} answers/s)"
        )
        say(
            "  server CPU per answer: "
            + ", ".join(f"{name} {1000 * cpu[name] / answered[name]:.2f} ms" for name in cpu)
            + "; the callers' (this process) "
            + ", ".join(
                f"with {name} {1000 * client_cpu[name] / answered[name]:.2f} ms" for name in cpu
            )
            + f" (this machine has {os.cpu_count()} cores; load average now "
            + " ".join(f"{x:.1f}" for x in os.getloadavg())
            + ")"
        )
        say(
            f"  cards: {dict(kinds)} ({len(differ)} answers differ from the bound's); "
            f"{kept} card rows kept by the hub; whole run {time.perf_counter() - began:.0f} s"
        )
        if args.profile and args.profile.exists():
            for line in profile_summary(args.profile):
                say(line)

    for name, q, goal in (("cds-p99", 0.99, GOAL_P99_MS), ("cds-p50", 0.5, GOAL_P50_MS)):
        figure, floor = figures["hub", q], figures["bound", q]
        verdict = "met" if figure <= goal else "missed"
        print(
            f"GOAL {name}: {figure:.1f} ms (bound {floor:.1f} ms, ratio {figure / floor:.2f}) "
            f"goal <={goal:.0f} ms: {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
