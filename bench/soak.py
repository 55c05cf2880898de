"""Soak: HL7 orders, C-STOREs and CDS Hooks calls at the same time, while the outbox pushes.

Goals (issue 9): for a bounded time (default 10 minutes), on 127.0.0.1, the
throughput goals of the intake (>= 1,000 ORM^O01/s over 8 connections,
``bench/mllp.py``), DICOM (>= 250 CT instances/s, ``bench/dicom.py``; here over
4 associations) and CDS Hooks (order-sign p99 <= 50 ms with 16 concurrent
callers, ``bench/cds.py``) held **at the same time**, while the county's outbox
pushes what it queues to a second hub (the province); the county hub's memory
flat; and every acknowledged item present exactly once at the end.

Setup: ``huren demo seed --scale tiny`` makes the county (facilities, AE
titles, exam catalogue, a year of exams, so CDS calls find priors); with the
province's URL and a token from ``huren token create`` on the province, the
seed also stores and queues the FHIR resources of its last days (a backlog).
Then two ``huren serve`` processes on free loopback ports: the province
(defaults) and the county (``HUREN_UPSTREAM_FHIR_URL`` + token; studies
complete after 5 s without a new instance instead of 60, so that the ones
sent during the run complete, reconcile and are pushed during the run).

The load, from worker processes of this script (so the clients do not share
one interpreter lock with each other), closed loop (each client sends its next
item as soon as the last one is answered):

- HL7: 8 MLLP connections, one per township HIS (the CT townships among them),
  each sending new ORM^O01 orders (unique MSH-10, placer and accession; every
  patient orders twice) and waiting for the ACK. Every 4th order of a CT
  township is a chest CT.
- DICOM: 4 modalities at once, one per CT township's AE title, each sending
  studies of 10 copies of pydicom's CT_small (fresh Study, Series and SOP
  Instance UIDs) for that township's acknowledged CT orders (accession, patient
  ID and name of the order), so the stabiliser completes them, reconciles them
  by accession and queues their FHIR Bundles. Each study goes by dcmtk's
  storescu on an association of its own, as modalities send; its log, stamped
  to the millisecond, gives each instance's status and latency, so the
  exactly-once check knows which SOP Instance UIDs got success. Not pynetdicom:
  as a sender here it spent 6-11 ms of CPU per instance (pydicom encoding and
  its reactor threads polling every millisecond), more than the hub spends
  storing one, on a machine of two cores; storescu with a process per study
  costs about 1 ms.
- CDS Hooks: 16 callers (a lean keep-alive HTTP/1.1 client, as in
  ``bench/cds.py``) sending order-sign requests for the patient and exam of
  random seeded studies, each with a fresh hookInstance.
- Push: the county's own outbox worker delivers every queued Bundle (merged,
  up to 25 per POST) to the province, which validates and stores it.

Phases: the seeded backlog is pushed first, with nothing else running (the
push's bound: resources/s delivered alone); then HL7, DICOM and CDS each run
alone for a slice (10% of the soak, 8 to 60 s); then all at once for the
soak's duration. Ours is the mixed phase; the bound is the same stream alone
on the same hubs in the same run; the ratio is ours / bound (below 1 is
slower for rates, above 1 slower for latencies). Every 2 s the hubs' RSS
(``/proc/<pid>/status`` VmRSS) and CPU are sampled; memory growth is the
median of the soak's last quarter against that of its second quarter (the
first is warm-up).

At the end the county is left to complete the last studies and drain its
outbox (bounded), both hubs are stopped, and the databases are checked:
every AA-acknowledged message stored once (``inbound_message`` by sender and
MSH-10) with its order once (``exam_order`` by placer); every C-STORE success
indexed once by SOP Instance UID with its file on disk; every card answered
kept once (``recognition_card`` by uuid, no extra rows); every resource the
county stored for the province present there once with the same version (by
business identifiers, as ``tests/integration/test_fhir_province.py``
compares); every soak study complete and its ImagingStudy at the province; no
outbox row left pending or dead.

Exit status 0 when the run completed with zero loss and no duplicates; 1 on
loss, duplication, a hub that crashed or a stream that moved nothing. Speed
goals missed print ``missed`` and do not change the exit status.

Options: ``--minutes N`` (default 10) or ``--seconds N``: the mixed phase;
``--small``: 1 minute (``make bench``); ``--data-dir DIR``: keep both hubs'
data there (an empty or new folder) instead of a temporary one; ``--seed N``:
the CDS callers' choice of patients; ``--split``: the county as a split hub
(``HUREN_SERVE_SPLIT=true``: background workers, MLLP, DICOM and HTTP in a
process each), its CPU and RSS summed over the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Coroutine, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any, TextIO
from zoneinfo import ZoneInfo

# Run as ``python bench/soak.py``, this file's folder comes first on sys.path and its
# neighbours (fhir.py, dicom.py) would shadow the packages the hub imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_harness", _HERE / "_harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
clients = harness.load_sibling("_clients")

from hl7.mllp import MllpClient  # noqa: E402

GOAL_MLLP_PER_S = 1000.0
GOAL_DICOM_PER_S = 250.0
GOAL_CDS_P99_MS = 50.0
GOAL_PUSH_LAG_S = 10.0  # p99 from queued to delivered: the outbox keeps up
GOAL_MEMORY_MB = 20.0  # growth of the county hub's RSS, last quarter vs second
GOAL_MEMORY_SHARE = 0.10
CONNECTIONS = 8
ASSOCIATIONS = 4
CALLERS = 16
PER_STUDY = 50  # CT_small copies per study: a short CT series
CT_EVERY = 4  # every 4th order of a CT township is a chest CT
DX_EXAM, CT_EXAM = "DX-CHEST-PA", "CT-CHEST-PLAIN"
CDS_PATH = "/cds-services/huren-prior-exams-sign"
PROVINCE_CLIENT = "county-ql"
SAMPLE_SECONDS = 2.0
START_DELAY = 2.0  # seconds for the workers to start before the load begins
ZONE = ZoneInfo("Asia/Shanghai")
COUNTY_SETTINGS = {"study_quiet_seconds": "5", "stabiliser_poll_seconds": "1"}
TYPES = ("Patient", "Organization", "ServiceRequest", "Endpoint", "ImagingStudy")
TYPES += ("DiagnosticReport", "Practitioner")


def say(text: str) -> None:
    print(text, flush=True)


def utc_epoch(text: str | None) -> float | None:
    """SQLAlchemy's SQLite DateTime text (UTC) as seconds since the epoch."""
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# --- the stream workers (each in its own process) -------------------------------------------


def wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def write_result(spec: dict[str, Any], records: list[Any], errors: Sequence[str]) -> None:
    """The records for the orchestra, with the CPU this worker and its children used."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() + children.ru_utime + children.ru_stime
    result = {"records": records, "cpu": cpu, "errors": list(errors)[:20]}
    Path(spec["out"]).write_text(json.dumps(result))


async def opened(connecting: Coroutine[Any, Any, None], errors: list[str], who: str) -> bool:
    """Whether a client's connection opened; if not, noted, after a pause to retry."""
    try:
        await connecting
    except OSError as exc:
        errors.append(f"{who}: connect: {exc!r}")
        await asyncio.sleep(0.5)
        return False
    return True


def mllp_stream(spec: dict[str, Any]) -> None:
    """New orders on one connection per township; the CT ones acknowledged go to a file."""
    records: list[Any] = []
    errors: list[str] = []
    end = spec["start_at"] + spec["seconds"]
    exams = {kind: tuple(exam) for kind, exam in spec["exams"].items()}

    def order(c: int, n: int, facility: str, ct: bool) -> tuple[bytes, dict[str, Any]]:
        tag = f"{spec['tag']}{c}{n:07d}"
        p = (spec["phase"] * CONNECTIONS + c) * 1_000_000 + n // 2
        born, sex = clients.birth_of(p)
        now = datetime.now(ZONE)
        fields = {
            "facility": facility,
            "control_id": f"SK{tag}",
            "placer": f"PK{tag}",
            "accession": f"K{tag}",
            "resident_id": clients.resident_of(p, born, sex),
            "mrn": f"M{p}",
            "name": f"测试^患者{p}",
            "born": born,
            "sex": sex,
        }
        exam = exams["ct"] if ct and n % CT_EVERY == 0 else exams["dx"]
        payload = clients.orm(
            **fields, exam=exam, sent_at=now, scheduled_at=now + timedelta(minutes=10)
        )
        return payload, {**fields, "exam": exam[0], "born": born.isoformat(), "sex": sex.value}

    async def connection(c: int, facility: str, ct: bool, ct_file: TextIO) -> None:
        n = 0
        client: MllpClient | None = None
        while time.time() < end and n < 2_000_000:
            if client is None:
                client = MllpClient("127.0.0.1", spec["port"], timeout=30)
                if not await opened(client.connect(), errors, facility):
                    client = None
                    continue
            payload, fields = order(c, n, facility, ct)
            n += 1
            started = time.perf_counter()
            try:
                reply = await client.send(payload)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{fields['control_id']}: {exc!r}")
                records.append([fields["control_id"], facility, fields["placer"], "", 0.0, 0.0])
                await client.close()
                client = None
                continue
            took = time.perf_counter() - started
            code = reply.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in reply else "??"
            records.append(
                [fields["control_id"], facility, fields["placer"], code, took, time.time()]
            )
            if code == "AA" and fields["exam"] == CT_EXAM:
                ct_file.write(json.dumps(fields, ensure_ascii=False) + "\n")
                ct_file.flush()
        if client is not None:
            await client.close()

    async def run(ct_file: TextIO) -> None:
        await asyncio.gather(
            *(
                connection(c, sender["facility"], sender["ct"], ct_file)
                for c, sender in enumerate(spec["senders"])
            )
        )

    wait_until(spec["start_at"])
    with Path(spec["ct_orders"]).open("a", encoding="utf-8") as ct_file:
        asyncio.run(run(ct_file))
    write_result(spec, records, errors)


class CtOrders:
    """The acknowledged CT orders the HL7 stream writes, per township, oldest first."""

    def __init__(self, path: Path, used: set[str]) -> None:
        self._path = path
        self._used = used
        self._offset = 0
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[dict[str, Any]]] = {}

    def _read(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as source:
            source.seek(self._offset)
            data = source.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            fields = json.loads(line)
            if fields["accession"] not in self._used:
                self._waiting.setdefault(fields["facility"], deque()).append(fields)

    def take(self, facility: str) -> dict[str, Any] | None:
        with self._lock:
            waiting = self._waiting.get(facility)
            if not waiting:
                self._read()
                waiting = self._waiting.get(facility)
            return waiting.popleft() if waiting else None


STORESCU_LOG = """log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%s.%q} %m%n
"""


def stored_instances(log: str, paths: Sequence[Path]) -> list[tuple[int | str, float, float]]:
    """Each file's (status, latency s, answered at) from a storescu log with epoch stamps.

    Status 0 is success, text another answer, -1 no answer. The latency runs from
    "Sending file" to "Received Store Response", at the log's millisecond resolution.
    """
    index = {str(path): k for k, path in enumerate(paths)}
    found: list[tuple[int | str, float, float]] = [(-1, 0.0, 0.0)] * len(paths)
    current, sent = -1, 0.0
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            at = float(stamp)
        except ValueError:
            continue
        if text.startswith("Sending file: "):
            current, sent = index.get(text.removeprefix("Sending file: "), -1), at
        elif text.startswith("Received Store Response (") and current >= 0:
            answer = text.removeprefix("Received Store Response (").removesuffix(")")
            found[current] = (0 if answer == "Success" else answer, at - sent, at)
            current = -1
    return found


def dicom_stream(spec: dict[str, Any]) -> None:
    """Per CT township, studies for its CT orders, each sent by dcmtk's storescu on its own
    association (as modalities do); per-instance status and latency from storescu's log."""
    from pydicom.uid import generate_uid

    records: list[Any] = []
    errors: list[str] = []
    orders = CtOrders(Path(spec["ct_orders"]), set(spec["used"]))
    end = spec["start_at"] + spec["seconds"]
    folder = Path(spec["out"]).with_suffix("")
    folder.mkdir(exist_ok=True)
    config = folder / "storescu-log.cfg"
    config.write_text(STORESCU_LOG)

    def modality(aet: str, facility: str, number: int) -> None:
        dataset = clients.ct_small()
        dataset.SpecificCharacterSet = "ISO_IR 192"
        dataset.SeriesNumber = 1
        outgoing = folder / aet
        outgoing.mkdir(exist_ok=True)
        paths = [outgoing / f"{k:03d}.dcm" for k in range(PER_STUDY)]
        study = 0
        while time.time() < end:
            order = orders.take(facility)
            study += 1
            study_uid = generate_uid()
            dataset.StudyInstanceUID = study_uid
            dataset.SeriesInstanceUID = generate_uid()
            dataset.StudyID = f"{number}{study:06d}"
            today = datetime.now(ZONE)
            dataset.StudyDate = dataset.SeriesDate = f"{today:%Y%m%d}"
            dataset.StudyTime = f"{today:%H%M%S}"
            if order is not None:
                dataset.AccessionNumber = order["accession"]
                dataset.PatientID = order["resident_id"]
                dataset.PatientName = order["name"]
                dataset.PatientBirthDate = order["born"].replace("-", "")
                dataset.PatientSex = order["sex"]
            else:  # no order waiting: a study the hub must leave for a person to reconcile
                dataset.AccessionNumber = ""
                dataset.PatientID = f"U{aet}{study:06d}"
                dataset.PatientName = "UNKNOWN^PATIENT"
            series = clients.CtSeries(dataset)
            uids = [clients.wide_uid() for _ in paths]
            for k, (path, uid) in enumerate(zip(paths, uids, strict=True)):
                path.write_bytes(series.instance(uid, k + 1))
            done = subprocess.run(
                [str(clients.DCMTK / "storescu"), "-lc", str(config), "-nh",
                 "-to", "60", "-ta", "60", "-td", "60", "-aet", aet, "-aec", spec["aet"],
                 "127.0.0.1", str(spec["port"]), *map(str, paths)],
                capture_output=True,
                text=True,
                timeout=600,
                env=clients.DCMTK_ENV,
                check=False,
            )  # fmt: skip
            answers = stored_instances(done.stdout + done.stderr, paths)
            accession = order["accession"] if order else ""
            for uid, (status, took, at) in zip(uids, answers, strict=True):
                records.append([uid, study_uid, status, took, at, accession])
            if any(status != 0 for status, _took, _at in answers):
                errors.append(f"{aet}: {(done.stdout + done.stderr)[-300:]}")
                time.sleep(0.5)

    wait_until(spec["start_at"])
    threads = [
        threading.Thread(target=modality, args=(m["aet"], m["facility"], n), daemon=True)
        for n, m in enumerate(spec["modalities"], start=1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=spec["seconds"] + 120)
    write_result(spec, records, errors)


def cds_stream(spec: dict[str, Any]) -> None:
    """Closed-loop order-sign callers on keep-alive connections; the cards' uuids kept."""
    records: list[Any] = []
    errors: list[str] = []
    rng = random.Random(spec["seed"])
    end = spec["start_at"] + spec["seconds"]
    asks, clinicians = spec["asks"], spec["clinicians"]

    async def caller() -> None:
        connection = None
        while time.time() < end:
            if connection is None:
                connection = clients.LeanCaller(spec["url"], CDS_PATH)
                if not await opened(connection.open(), errors, "CDS caller"):
                    connection = None
                    continue
            resident_id, code = asks[rng.randrange(len(asks))]
            user, facility = clinicians[rng.randrange(len(clinicians))]
            instance = str(uuid.uuid4())
            body = clients.order_sign(instance, resident_id, code, user, facility)
            started = time.perf_counter()
            try:
                status, content = await asyncio.wait_for(connection.post(body), 60)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                errors.append(f"{instance}: {exc!r}")
                records.append([instance, 0, 0.0, 0.0, []])
                connection = None
                continue
            took = time.perf_counter() - started
            cards = [card["uuid"] for card in json.loads(content)["cards"]] if status == 200 else []
            if status != 200:
                errors.append(f"{instance}: HTTP {status} {content[:200]!r}")
            records.append([instance, status, took, time.time(), cards])
        if connection is not None:
            await connection.close()

    async def run() -> None:
        await asyncio.gather(*(caller() for _ in range(spec["callers"])))

    wait_until(spec["start_at"])
    asyncio.run(run())
    write_result(spec, records, errors)


STREAMS = {"mllp": mllp_stream, "dicom": dicom_stream, "cds": cds_stream}


# --- the orchestra ------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    county_mb: float
    province_mb: float
    county_cpu: float
    province_cpu: float
    backlog: int | None  # outbox rows not yet delivered


@dataclass
class Phase:
    name: str
    start: float
    seconds: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def within(self, at: float) -> bool:
        return self.start <= at <= self.end


class Monitor:
    """Samples both hubs every few seconds and notices if one of them exits."""

    def __init__(self, county: Any, province: Any, db: Path) -> None:
        self.county, self.province, self._db = county, province, db
        self.samples: list[Sample] = []
        self.crashed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def alive(self) -> bool:
        for name, hub in (("county", self.county), ("province", self.province)):
            code = hub.process.poll()
            if code is not None and name not in " ".join(self.crashed):
                self.crashed.append(f"{name} hub exited with {code} during the run")
        return not self.crashed

    def _backlog(self) -> int | None:
        try:
            with sqlite3.connect(self._db, timeout=5) as con:
                row = con.execute(
                    "SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')"
                ).fetchone()
                return int(row[0])
        except sqlite3.Error:
            return None

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(SAMPLE_SECONDS if tick else 0):
            if not self.alive():
                return
            try:
                sample = Sample(
                    time.time(),
                    harness.rss_megabytes(self.county.pid),
                    harness.rss_megabytes(self.province.pid),
                    harness.cpu_seconds(self.county.pid),
                    harness.cpu_seconds(self.province.pid),
                    self._backlog() if tick % 3 == 0 else None,
                )
            except (OSError, ProcessLookupError):
                continue
            self.samples.append(sample)
            tick += 1


def run_streams(
    name: str, streams: dict[str, dict[str, Any]], seconds: float, folder: Path, monitor: Monitor
) -> Phase:
    """The named streams in their own processes, together, for ``seconds``; their records."""
    start = time.time() + START_DELAY
    phase = Phase(name, start, seconds)
    workers = {}
    for stream, spec in streams.items():
        slug = f"{name.replace(' ', '-')}-{stream}"
        spec = {**spec, "start_at": start, "seconds": seconds, "out": str(folder / f"{slug}.json")}
        path = folder / f"{slug}-spec.json"
        path.write_text(json.dumps(spec, ensure_ascii=False))
        with (folder / f"{slug}.log").open("wb") as log:
            workers[stream] = (
                subprocess.Popen(
                    [sys.executable, __file__, "--stream", stream, "--spec", str(path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                spec,
            )
    deadline = start + seconds + 120
    try:
        while any(worker.poll() is None for worker, _ in workers.values()):
            if not monitor.alive() or time.time() > deadline:
                break
            time.sleep(0.5)
    finally:
        for stream, (worker, spec) in workers.items():
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
                phase.results[stream] = {"records": [], "cpu": 0.0, "errors": ["stopped"]}
            elif worker.returncode != 0 or not Path(spec["out"]).exists():
                log = (folder / f"{name.replace(' ', '-')}-{stream}.log").read_text()[-1500:]
                raise SystemExit(f"{stream} worker failed ({worker.returncode}):\n{log}")
            else:
                phase.results[stream] = json.loads(Path(spec["out"]).read_text())
    return phase


# --- figures --------------------------------------------------------------------------------


@dataclass
class Figures:
    done: int  # answered with success within the phase
    rate: float  # per second over the phase
    p50_ms: float
    p99_ms: float
    failed: int  # answered otherwise, or not at all
    client_cpu: float  # the worker's CPU seconds


def figures(phase: Phase, stream: str) -> Figures:
    result = phase.results.get(stream, {"records": [], "cpu": 0.0})
    ok, latency, when = {"mllp": (3, 4, 5), "dicom": (2, 3, 4), "cds": (1, 2, 3)}[stream]
    success = {"mllp": "AA", "dicom": 0, "cds": 200}[stream]
    good = [r for r in result["records"] if r[ok] == success and phase.within(r[when])]
    failed = sum(1 for r in result["records"] if r[ok] != success)
    took = [r[latency] for r in good] or [0.0]
    return Figures(
        len(good),
        len(good) / phase.seconds,
        harness.percentile(took, 0.5),
        harness.percentile(took, 0.99),
        failed,
        result["cpu"],
    )


@dataclass
class Delivery:
    """One outbox row: when it was queued and delivered, and how many resources it held."""

    queued: float
    delivered: float | None
    status: str
    resources: int


def deliveries(db: Path) -> list[Delivery]:
    with sqlite3.connect(db, timeout=30) as con:
        rows = con.execute(
            "SELECT created_at, delivered_at, status, payload FROM outbox WHERE channel = 'fhir'"
        ).fetchall()
    return [
        Delivery(utc_epoch(queued) or 0.0, utc_epoch(done), status, len(json.loads(body)["entry"]))
        for queued, done, status, body in rows
    ]


def drain_rate(rows: Sequence[Delivery]) -> tuple[float, float]:
    """Resources/s over a backlog's delivery (the first POST's share is its start); seconds."""
    done = sorted((r.delivered, r.resources) for r in rows if r.delivered is not None)
    if len(done) < 2 or done[-1][0] == done[0][0]:
        return 0.0, 0.0
    first = done[0][0]
    later = sum(resources for at, resources in done if at > first)
    return later / (done[-1][0] - first), done[-1][0] - first


def memory_growth(samples: Sequence[Sample], phase: Phase) -> tuple[float, float, float]:
    """County RSS: median of the phase's second quarter, of its last quarter (MB), growth."""
    quarter = phase.seconds / 4

    def middle(q: int) -> float:
        values = [
            s.county_mb
            for s in samples
            if phase.start + q * quarter <= s.at <= phase.start + (q + 1) * quarter
        ]
        return median(values) if values else 0.0

    second, last = middle(1), middle(3)
    return second, last, last - second


def cpu_used(samples: Sequence[Sample], phase: Phase) -> tuple[float, float]:
    """Cores the county and the province hubs used during ``phase``."""
    inside = [s for s in samples if phase.within(s.at)]
    if len(inside) < 2:
        return 0.0, 0.0
    span = inside[-1].at - inside[0].at
    return (
        (inside[-1].county_cpu - inside[0].county_cpu) / span,
        (inside[-1].province_cpu - inside[0].province_cpu) / span,
    )


def timeline(phase: Phase, samples: Sequence[Sample], pushed: Sequence[Delivery]) -> list[str]:
    """The mixed phase in ten slices: rates, CDS p99, push, RSS; steady or drifting."""
    step = phase.seconds / 10
    lines = ["  time   HL7/s  inst/s  CDS/s  CDS p99 ms  pushed res/s  county RSS MB  backlog"]
    for k in range(10):
        begin, end = phase.start + k * step, phase.start + (k + 1) * step
        slice_ = Phase("slice", begin, step, phase.results)
        hl7, dcm, cds = (figures(slice_, s) for s in ("mllp", "dicom", "cds"))
        res = sum(d.resources for d in pushed if d.delivered and begin <= d.delivered < end)
        rss = [s.county_mb for s in samples if begin <= s.at < end]
        backlog = [s.backlog for s in samples if begin <= s.at < end and s.backlog is not None]
        lines.append(
            f"  {(k + 1) * step:5.0f}s {hl7.rate:7.0f} {dcm.rate:7.0f} {cds.rate:6.0f} "
            f"{cds.p99_ms:11.1f} {res / step:13.0f} {max(rss, default=0):14.0f} "
            f"{max(backlog, default=0):8d}"
        )
    return lines


# --- exactly once ---------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    acknowledged: int
    lost: int
    duplicated: int
    note: str = ""


def check_hl7(db: Path, phases: Sequence[Phase]) -> Check:
    acked = {
        (f"HIS^{r[1]}", r[0]): r[2]
        for phase in phases
        for r in phase.results.get("mllp", {"records": []})["records"]
        if r[3] == "AA"
    }
    with sqlite3.connect(db) as con:
        messages = Counter(
            {
                (sender, control): count
                for sender, control, count in con.execute(
                    "SELECT sender, control_id, count(*) FROM inbound_message"
                    " WHERE control_id LIKE 'SK%' AND status = 'accepted' GROUP BY 1, 2"
                )
            }
        )
        orders = Counter(
            {
                placer: count
                for placer, count in con.execute(
                    "SELECT placer_number, count(*) FROM exam_order"
                    " WHERE placer_number LIKE 'PK%' GROUP BY 1"
                )
            }
        )
    lost = sum(1 for key, placer in acked.items() if not messages[key] or not orders[placer])
    duplicated = sum(1 for key, placer in acked.items() if messages[key] > 1 or orders[placer] > 1)
    extra = sum(1 for key in messages if key not in acked)
    return Check("HL7 orders", len(acked), lost, duplicated, f"{extra} stored without an AA seen")


def check_dicom(root: Path, phases: Sequence[Phase]) -> tuple[Check, set[str]]:
    stored = {
        r[0]: r[1]
        for phase in phases
        for r in phase.results.get("dicom", {"records": []})["records"]
        if r[2] == 0
    }
    with sqlite3.connect(root / "huren.db") as con:
        rows = con.execute(
            "SELECT i.sop_instance_uid, i.path, i.size_bytes, s.study_instance_uid"
            " FROM instance i JOIN study s ON s.id = i.study_id"
        ).fetchall()
    found: Counter[str] = Counter()
    missing_files = 0
    for sop_uid, path, size, study_uid in rows:
        found[sop_uid] += 1
        if sop_uid in stored:
            whole = root / path
            if study_uid != stored[sop_uid] or not whole.exists() or whole.stat().st_size != size:
                missing_files += 1
    lost = sum(1 for uid in stored if not found[uid]) + missing_files
    duplicated = sum(1 for uid in stored if found[uid] > 1)
    extra = sum(1 for uid in found if uid not in stored)
    note = f"{missing_files} without their file; {extra} indexed without a success seen"
    return Check("C-STORE instances", len(stored), lost, duplicated, note), set(stored.values())


def check_cds(db: Path, phases: Sequence[Phase]) -> Check:
    answered = {
        card: r[0]
        for phase in phases
        for r in phase.results.get("cds", {"records": []})["records"]
        if r[1] == 200
        for card in r[4]
    }
    instances = set(answered.values())
    with sqlite3.connect(db) as con:
        kept = Counter(
            {
                (card, hook): count
                for card, hook, count in con.execute(
                    "SELECT card_uuid, hook_instance, count(*) FROM recognition_card GROUP BY 1, 2"
                )
            }
        )
    by_card = Counter(card for card, _hook in kept.elements())
    lost = sum(1 for card in answered if not by_card[card])
    duplicated = sum(1 for card in answered if by_card[card] > 1)
    extra = sum(n for (card, hook), n in kept.items() if hook in instances and card not in answered)
    return Check("CDS cards", len(answered), lost, duplicated, f"{extra} kept but not answered")


def business_keys(db: Path, resource_type: str, origin: str) -> Counter[tuple[str, int]]:
    """(identifiers, version) of each resource of a type from ``origin``, counted."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT group_concat(t.system || '|' || t.value, ' '), r.version_id"
            " FROM fhir_resource r JOIN (SELECT * FROM fhir_token WHERE parameter = 'identifier'"
            " ORDER BY system, value) t ON t.resource_id = r.id"
            " WHERE r.resource_type = ? AND r.origin = ? GROUP BY r.id",
            (resource_type, origin),
        ).fetchall()
    return Counter((keys, version) for keys, version in rows)


def check_push(county: Path, province: Path, studies: set[str]) -> tuple[Check, str]:
    rows = deliveries(county / "huren.db")
    states = Counter(r.status for r in rows)
    lost = duplicated = resources = 0
    details = []
    for resource_type in TYPES:
        theirs = business_keys(province / "huren.db", resource_type, PROVINCE_CLIENT)
        ours = business_keys(county / "huren.db", resource_type, "")
        resources += sum(ours.values())
        missing = sum((ours - theirs).values())
        twice = sum(n - 1 for key, n in theirs.items() if n > 1)
        twice += len({k for k, _ in theirs} - {k for k, _ in ours})
        lost += missing
        duplicated += twice
        if missing or twice:
            details.append(f"{resource_type}: {missing} missing, {twice} extra")
    with sqlite3.connect(province / "huren.db") as con:
        at_province = {
            value.removeprefix("urn:oid:")
            for (value,) in con.execute(
                "SELECT value FROM fhir_token WHERE resource_type = 'ImagingStudy'"
                " AND parameter = 'identifier' AND system = 'urn:dicom:uid'"
            )
        }
    with sqlite3.connect(county / "huren.db") as con:
        complete = {
            uid: attached
            for uid, attached in con.execute(
                "SELECT study_instance_uid, order_id IS NOT NULL FROM study"
                " WHERE status = 'complete'"
            )
        }
    not_complete = len(studies - set(complete))
    attached = sum(1 for uid in studies if complete.get(uid))
    not_pushed = len(studies - at_province)
    undelivered = sum(n for status, n in states.items() if status != "delivered")
    lost += not_pushed + undelivered
    note = (
        f"{resources} resources; soak studies: {len(studies)}, {attached} attached to their "
        f"order, {not_complete} not complete, "
        f"{not_pushed} without their ImagingStudy at the province; outbox rows {dict(states)}"
    )
    return Check("pushed Bundles", states["delivered"], lost, duplicated, note), "; ".join(details)


# --- setup ----------------------------------------------------------------------------------


def township_plan(db: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The HIS connections (CT townships first) and the CT modalities' AE titles."""
    with sqlite3.connect(db) as con:
        ct = con.execute(
            "SELECT f.code, a.ae_title FROM facility f JOIN facility_ae_title a"
            " ON a.facility_id = f.id WHERE f.level = 'township' AND a.modality = 'CT'"
            " ORDER BY f.code"
        ).fetchall()[:ASSOCIATIONS]
        dx = [
            code
            for (code,) in con.execute(
                "SELECT DISTINCT f.code FROM facility f JOIN facility_ae_title a"
                " ON a.facility_id = f.id WHERE f.level = 'township' AND a.modality = 'DX'"
                " ORDER BY f.code"
            )
        ]
    if not ct:
        raise SystemExit("the demo county has no township with a CT")
    ct_codes = [code for code, _aet in ct]
    others = [code for code in dx if code not in ct_codes]
    senders = [{"facility": code, "ct": True} for code in ct_codes]
    senders += [{"facility": code, "ct": False} for code in others]
    modalities = [{"aet": aet, "facility": code} for code, aet in ct]
    while len(modalities) < ASSOCIATIONS:
        modalities.append(modalities[len(modalities) % len(ct)])
    return senders[:CONNECTIONS], modalities


def exam_names(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as con:
        found = {
            code: [code, name, modality]
            for code, name, modality in con.execute(
                "SELECT code, name_zh, modality FROM exam_type WHERE code IN (?, ?)",
                (DX_EXAM, CT_EXAM),
            )
        }
    return {"dx": found[DX_EXAM], "ct": found[CT_EXAM]}


def cds_pool(db: Path) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """(resident ID, exam code) of the seeded complete studies; (clinician, facility)."""
    with sqlite3.connect(db) as con:
        asks = con.execute(
            "SELECT i.value, e.code FROM study s JOIN exam_type e ON e.id = s.exam_type_id"
            " JOIN patient_identifier i ON i.patient_id = s.patient_id"
            " AND i.kind = 'resident_id' WHERE s.completed_at IS NOT NULL"
        ).fetchall()
        clinicians = con.execute(
            "SELECT u.id, f.code FROM app_user u JOIN facility f ON f.id = u.facility_id"
            " WHERE u.role = 'clinician' ORDER BY u.id"
        ).fetchall()
    if not asks or not clinicians:
        raise SystemExit("the seeded county has no studies or clinicians to ask about")
    return asks, clinicians


def wait_drained(db: Path, monitor: Monitor, limit: float) -> float:
    """Until no study is still receiving and no outbox row waits; seconds taken."""
    started = time.time()
    while time.time() - started < limit and monitor.alive():
        with sqlite3.connect(db, timeout=30) as con:
            receiving = con.execute(
                "SELECT count(*) FROM study WHERE status = 'receiving'"
            ).fetchone()[0]
            waiting = con.execute(
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')"
            ).fetchone()[0]
        if receiving == 0 and waiting == 0:
            break
        time.sleep(0.5)
    return time.time() - started


def log_lines(log: Path) -> Counter[str]:
    levels: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        for level in ("ERROR", "WARNING", "Traceback"):
            if level in line:
                levels[level] += 1
    return levels


@dataclass
class Plan:
    mixed: float
    slice: float
    fhir_days: int


def plan_of(args: argparse.Namespace) -> Plan:
    if args.small:
        mixed = 60.0
    elif args.seconds:
        mixed = float(args.seconds)
    else:
        mixed = args.minutes * 60.0
    slice_ = min(60.0, max(8.0, mixed / 10))
    return Plan(mixed, slice_, int(min(365, slice_ * 6)))


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="the mixed phase")
    parser.add_argument("--seconds", type=float, help="the mixed phase, in seconds")
    parser.add_argument("--small", action="store_true", help="a 1-minute mixed phase")
    parser.add_argument("--data-dir", type=Path, help="keep both hubs' data here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--split", action="store_true", help="the county as a split hub (HUREN_SERVE_SPLIT)"
    )
    parser.add_argument("--stream", choices=sorted(STREAMS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        STREAMS[args.stream](json.loads(args.spec.read_text()))
        return 0
    plan = plan_of(args)
    began = time.time()
    with ExitStack() as stack:
        if args.data_dir:
            base = args.data_dir.resolve()
            if base.exists() and any(base.iterdir()):
                raise SystemExit(f"{base} is not empty")
        else:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="huren-soak-")))
        return soak(base, plan, args.seed, began, split=args.split)
    return 1  # unreachable: the block returns


def soak(base: Path, plan: Plan, seed: int, began: float, *, split: bool = False) -> int:
    county_dir, province_dir, work = base / "county", base / "province", base / "work"
    for folder in (county_dir, province_dir, work):
        folder.mkdir(parents=True, exist_ok=True)
    say(
        f"soak: {plan.mixed:.0f} s mixed, slices of {plan.slice:.0f} s alone; county hub "
        f"{'split, a process per role' if split else 'one process'}; data under {base}"
    )

    # The province, with a token for the county; the county, seeded with a backlog for it.
    province_env = harness.hub_env(province_dir)
    harness.huren(province_env, "db", "upgrade")
    token = (
        harness.huren(
            province_env,
            "token",
            "create",
            "--client",
            PROVINCE_CLIENT,
            "--scope",
            "system/*.write",
        )
        .strip()
        .splitlines()[-1]
    )
    province_port, county_port = harness.free_port(), harness.free_port()
    upstream = {
        "upstream_fhir_url": f"http://127.0.0.1:{province_port}/fhir",
        "upstream_fhir_token": token,
    }
    # Seeded with the HTTP port it will serve on: the stored Endpoint names the hub's address.
    seconds = harness.demo_region(
        county_dir, fhir_days=plan.fhir_days, http_port=str(county_port), **upstream
    )
    county_db = county_dir / "huren.db"
    backlog = deliveries(county_db)
    say(
        f"county seeded in {seconds:.0f} s (huren demo seed --scale tiny --fhir-days "
        f"{plan.fhir_days}): {len(backlog)} Bundles queued for the province "
        f"({sum(d.resources for d in backlog)} resources)"
    )
    senders, modalities = township_plan(county_db)
    exams = exam_names(county_db)
    asks, clinicians = cds_pool(county_db)
    ct_orders = work / "ct-orders.jsonl"

    streams = {
        "mllp": {
            "senders": senders,
            "exams": exams,
            "ct_orders": str(ct_orders),
        },
        "dicom": {"aet": "HUREN", "modalities": modalities, "ct_orders": str(ct_orders)},
        "cds": {"asks": asks, "clinicians": clinicians, "callers": CALLERS},
    }
    hubs_started = time.time()
    phases: list[Phase] = []
    with ExitStack() as hubs:
        province = hubs.enter_context(
            harness.hub_process(province_dir, work / "province.log", http_port=province_port)
        )
        county = hubs.enter_context(
            harness.hub_process(
                county_dir,
                work / "county.log",
                http_port=county_port,
                **COUNTY_SETTINGS,
                **upstream,
                serve_split="true" if split else "false",
            )
        )
        say(
            f"province pid {province.pid} at {province.url}; "
            f"county pid {county.pid} at {county.url}"
        )
        streams["mllp"]["port"] = county.mllp_port
        streams["dicom"]["port"] = county.dicom_port
        streams["cds"]["url"] = county.url
        monitor = hubs.enter_context(Monitor(county, province, county_db))

        # The push alone: the seeded backlog with nothing else running.
        wait_drained(county_db, monitor, max(120.0, plan.slice * 4))
        seeded = [d for d in deliveries(county_db) if d.queued < hubs_started]
        push_alone, push_span = drain_rate(seeded)
        say(
            f"push alone: {sum(d.resources for d in seeded)} resources in {len(seeded)} Bundles "
            f"delivered at {push_alone:.0f} resources/s (over {push_span:.1f} s)"
        )

        # Each stream alone, then all together.
        used: list[str] = []
        say("load average before the slices: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        for number, stream in enumerate(("mllp", "dicom", "cds")):
            spec = {**streams[stream], "tag": "a", "phase": 0, "seed": seed + number, "used": used}
            phase = run_streams(f"{stream} alone", {stream: spec}, plan.slice, work, monitor)
            phases.append(phase)
            if stream == "dicom":
                used = [r[5] for r in phase.results["dicom"]["records"] if r[5]]
            alone = figures(phase, stream)
            cores, _ = cpu_used(monitor.samples, phase)
            say(
                f"{stream} alone: {alone.done} in {plan.slice:.0f} s ({alone.rate:.0f}/s), "
                f"p50 {alone.p50_ms:.1f} ms p99 {alone.p99_ms:.1f} ms, {alone.failed} failed; "
                f"county hub {cores:.2f} cores, client {alone.client_cpu / plan.slice:.2f}"
            )
            if not monitor.alive():
                break
        if monitor.alive():
            mixed_specs = {
                "mllp": {**streams["mllp"], "tag": "m", "phase": 1},
                "dicom": {**streams["dicom"], "used": used},
                "cds": {**streams["cds"], "seed": seed + 10},
            }
            say(f"mixed: HL7, DICOM and CDS together for {plan.mixed:.0f} s")
            phases.append(run_streams("mixed", mixed_specs, plan.mixed, work, monitor))
            say(
                "  the machine's load average at the end (1, 5, 15 min; others share it): "
                + " ".join(f"{x:.1f}" for x in os.getloadavg())
            )
        drained = wait_drained(county_db, monitor, 180.0)
        say(f"after the load: studies completed and outbox drained in {drained:.0f} s")
        samples = list(monitor.samples)
        crashed = list(monitor.crashed)
    for name, hub in (("county", county), ("province", province)):
        if hub.process.returncode != 0 and not crashed:
            crashed.append(f"{name} hub exited with {hub.process.returncode} on SIGTERM")
    return report(base, plan, phases, samples, crashed, hubs_started, push_alone, began)


def report(
    base: Path,
    plan: Plan,
    phases: Sequence[Phase],
    samples: Sequence[Sample],
    crashed: Sequence[str],
    hubs_started: float,
    push_alone: float,
    began: float,
) -> int:
    """Figures, the exactly-once checks and the GOAL lines; the exit status."""
    county_dir, province_dir, work = base / "county", base / "province", base / "work"
    county_db = county_dir / "huren.db"
    alone = {p.name.split()[0]: figures(p, p.name.split()[0]) for p in phases if "alone" in p.name}
    mixed_phase = next((p for p in phases if p.name == "mixed"), None)
    if mixed_phase is None:
        for problem in crashed:
            say(problem)
        say("GOAL soak-loss: the run did not reach the mixed phase goal 0 lost: missed")
        return 1
    mixed = {stream: figures(mixed_phase, stream) for stream in ("mllp", "dicom", "cds")}

    rows = deliveries(county_db)
    soak_rows = [d for d in rows if d.queued >= hubs_started]
    in_mixed = [d for d in soak_rows if d.delivered and mixed_phase.within(d.delivered)]
    pushed_rate = sum(d.resources for d in in_mixed) / mixed_phase.seconds
    queued_rate = (
        sum(d.resources for d in soak_rows if mixed_phase.within(d.queued)) / mixed_phase.seconds
    )
    lags = [d.delivered - d.queued for d in soak_rows if d.delivered is not None]
    lag_p50 = harness.percentile(lags, 0.5) / 1000 if lags else 0.0
    lag_p99 = harness.percentile(lags, 0.99) / 1000 if lags else 0.0

    second, last, growth = memory_growth(samples, mixed_phase)
    share = growth / second if second else 0.0
    province_second, province_last = (
        median([s.province_mb for s in samples if mixed_phase.within(s.at)] or [0.0]),
        max((s.province_mb for s in samples), default=0.0),
    )
    county_cores, province_cores = cpu_used(samples, mixed_phase)

    say("")
    say(f"mixed phase, {mixed_phase.seconds:.0f} s (alone: {plan.slice:.0f} s each):")
    for stream, unit in (("mllp", "ACK"), ("dicom", "C-STORE"), ("cds", "answer")):
        f, a = mixed[stream], alone.get(stream)
        say(
            f"  {stream:5s} {f.done:7d} ok ({f.rate:6.0f}/s; alone {a.rate if a else 0:6.0f}/s), "
            f"{unit} p50 {f.p50_ms:6.1f} ms p99 {f.p99_ms:7.1f} ms "
            f"(alone {a.p50_ms if a else 0:.1f} / {a.p99_ms if a else 0:.1f}), "
            f"{f.failed} failed; client CPU {f.client_cpu:.0f} s"
        )
    say(
        f"  push  {len(in_mixed)} Bundles delivered in the mixed phase ({pushed_rate:.0f} "
        f"resources/s; queued {queued_rate:.0f}/s); queued to delivered p50 {lag_p50:.2f} s "
        f"p99 {lag_p99:.2f} s; alone (the seeded backlog) {push_alone:.0f} resources/s"
    )
    say(
        f"  hubs' CPU in the mixed phase: county {county_cores:.2f} cores, province "
        f"{province_cores:.2f} (this machine has {len(os.sched_getaffinity(0))})"
    )
    say(
        f"  county RSS: second quarter {second:.0f} MB, last quarter {last:.0f} MB; "
        f"province RSS median {province_second:.0f} MB, max {province_last:.0f} MB"
    )
    for line in timeline(mixed_phase, samples, soak_rows):
        say(line)
    for name in ("county", "province"):
        levels = log_lines(work / f"{name}.log")
        say(f"  {name} log: {dict(levels) or 'no warnings or errors'}")
    for phase in phases:
        for stream, result in phase.results.items():
            if result["errors"]:
                say(f"  {phase.name} {stream} errors (first): {result['errors'][:3]}")

    checks = [
        check_hl7(county_db, phases),
        check_cds(county_db, phases),
    ]
    dicom_check, studies = check_dicom(county_dir, phases)
    checks.insert(1, dicom_check)
    push_check, push_details = check_push(county_dir, province_dir, studies)
    checks.append(push_check)
    say("")
    say("exactly once:")
    for check in checks:
        say(
            f"  {check.what}: {check.acknowledged} acknowledged, {check.lost} lost, "
            f"{check.duplicated} duplicated ({check.note})"
        )
    if push_details:
        say(f"  push differences: {push_details}")
    for problem in crashed:
        say(f"  {problem}")
    say(f"whole run {time.time() - began:.0f} s")

    def goal(name: str, text: str, met: bool) -> None:
        print(f"GOAL {name}: {text}: {'met' if met else 'missed'}", flush=True)

    def ratio(ours: float, bound: float) -> str:
        return f"{ours / bound:.2f}" if bound else "n/a"

    f, a = mixed["mllp"], alone.get("mllp", mixed["mllp"])
    goal(
        "soak-mllp",
        f"{f.rate:.0f} msg/s, ACK p99 {f.p99_ms:.0f} ms (bound {a.rate:.0f} alone, "
        f"ratio {ratio(f.rate, a.rate)}) goal >={GOAL_MLLP_PER_S:.0f} msg/s at the same time",
        f.rate >= GOAL_MLLP_PER_S,
    )
    f, a = mixed["dicom"], alone.get("dicom", mixed["dicom"])
    goal(
        "soak-dicom",
        f"{f.rate:.0f} inst/s, p99 {f.p99_ms:.0f} ms per instance (bound {a.rate:.0f} alone, "
        f"ratio {ratio(f.rate, a.rate)}) goal >={GOAL_DICOM_PER_S:.0f} inst/s at the same time",
        f.rate >= GOAL_DICOM_PER_S,
    )
    f, a = mixed["cds"], alone.get("cds", mixed["cds"])
    goal(
        "soak-cds",
        f"p99 {f.p99_ms:.0f} ms, p50 {f.p50_ms:.0f} ms, {f.rate:.0f} answers/s (bound p99 "
        f"{a.p99_ms:.0f} ms alone, ratio {ratio(f.p99_ms, a.p99_ms)}) goal p99 "
        f"<={GOAL_CDS_P99_MS:.0f} ms at the same time",
        f.p99_ms <= GOAL_CDS_P99_MS,
    )
    kept_up = lag_p99 <= GOAL_PUSH_LAG_S and push_check.lost == 0
    goal(
        "soak-push",
        f"{pushed_rate:.0f} resources/s delivered of {queued_rate:.0f}/s queued, "
        f"queued to delivered p99 {lag_p99:.1f} s (bound {push_alone:.0f}/s draining a backlog "
        f"alone, ratio {ratio(pushed_rate, push_alone)}) goal the outbox keeps up at the same "
        f"time, p99 <={GOAL_PUSH_LAG_S:.0f} s",
        kept_up,
    )
    flat = growth <= GOAL_MEMORY_MB and share <= GOAL_MEMORY_SHARE
    goal(
        "soak-memory",
        f"{growth:+.1f} MB ({share:+.1%}) county hub RSS, last quarter vs second "
        f"({second:.0f} -> {last:.0f} MB) goal flat, <={GOAL_MEMORY_MB:.0f} MB and "
        f"<={GOAL_MEMORY_SHARE:.0%}",
        flat,
    )
    lost = sum(c.lost for c in checks)
    duplicated = sum(c.duplicated for c in checks)
    moved = {
        "hl7": mixed["mllp"].done,
        "instances": mixed["dicom"].done,
        "cds": mixed["cds"].done,
        "bundles": len(in_mixed),
    }
    goal(
        "soak-loss",
        f"{lost} lost, {duplicated} duplicated; mixed phase moved "
        + ", ".join(f"{name} {n}" for name, n in moved.items())
        + f" (checked: {', '.join(f'{c.acknowledged} {c.what}' for c in checks)}) "
        "goal 0 lost and 0 duplicated",
        lost == 0 and duplicated == 0 and not crashed,
    )
    completed = not crashed and all(moved.values())
    return 0 if completed and lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
