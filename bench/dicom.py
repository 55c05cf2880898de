"""DICOM storage speed: CT instances from dcmtk's storescu into the hub's archive and index.

Goal: >= 250 CT instances/s from one association and from 4 parallel
associations, each instance durable (file fsynced and renamed, index row
committed) before its success. Ours is the hub's own path: DicomServer with
the integration Archive (FileStore + group-committed SQLite index). The bound,
measured in the same run with the same client and files, is dcmtk's own
storescp writing to a temporary folder (``--fork`` so parallel associations
run in parallel; it does not fsync and keeps no index). The receivers take
turns over several rounds and the medians are reported: this machine is
shared, and a busy second hurts whichever receiver is running.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from zoneinfo import ZoneInfo

# Run as ``python bench/dicom.py``, this file's folder comes first on sys.path and its
# name would shadow the ``dicom`` package it measures.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_harness", _HERE / "_harness.py")
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
clients = harness.load_sibling("_clients")

from pydicom.uid import generate_uid  # noqa: E402
from sqlalchemy import func, insert  # noqa: E402

from dicom.server import DicomServer  # noqa: E402
from dicom.store import FileStore  # noqa: E402
from integration.archive import Archive  # noqa: E402
from integration.database import Database  # noqa: E402
from integration.directory import Directory  # noqa: E402
from integration.imaging import CallerPolicy  # noqa: E402
from integration.settings import Settings  # noqa: E402
from models import metadata  # noqa: E402

GOAL = 250.0
PARALLEL = 4
AET = "HUREN"
DCMTK = clients.DCMTK
ZONE = ZoneInfo("Asia/Shanghai")
DCMTK_ENV = clients.DCMTK_ENV


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_port(port: int, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def make_copies(folder: Path, count: int, parts: int = PARALLEL) -> list[Path]:
    """``count`` copies of CT_small with their own SOP Instance UIDs, in ``parts`` sub-folders."""
    dataset = clients.ct_small()
    folders = [folder / f"part{n}" for n in range(parts)]
    for part in folders:
        part.mkdir(parents=True)
    for n in range(count):
        clients.renumber(dataset, generate_uid(), n + 1)
        dataset.save_as(folders[n % parts] / f"ct{n:06d}.dcm", enforce_file_format=True)
    return folders


def _region(root: Path) -> tuple[Settings, Database]:
    """A database with one township whose CT answers to the sender's AE title."""
    settings = Settings(data_dir=root)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        facility_id = connection.execute(
            insert(metadata.tables["facility"]).values(
                code="BENCH-T",
                name="基准卫生院",
                name_en="",
                level="township",
                kind="health_centre",
                is_reading_centre=False,
                area_code="",
                hl7_charset="UNICODE UTF-8",
                active=True,
                created_at=func.now(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        connection.execute(
            insert(metadata.tables["facility_ae_title"]).values(
                facility_id=facility_id, ae_title="BENCH", station_name="CT", modality="CT"
            )
        )
    return settings, database


@contextmanager
def ours(root: Path) -> Iterator[int]:
    settings, database = _region(root)
    directory = Directory(database.engine)
    archive = Archive(
        database=database, settings=settings, directory=directory, files=FileStore(root)
    )
    archive.start()
    server = DicomServer(
        ae_title=AET,
        host="127.0.0.1",
        port=0,
        storage=archive,
        worklist=None,
        query=None,
        callers=CallerPolicy(database=database, settings=settings, directory=directory),
        zone=ZONE,
    )
    server.start()
    try:
        yield server.port
    finally:
        server.stop(grace=5)
        archive.stop()
        database.dispose()


@contextmanager
def storescp(root: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [str(DCMTK / "storescp"), "--fork", "-aet", AET, "-od", str(root), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    try:
        _wait_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def send(port: int, folders: list[Path]) -> float:
    """One storescu per folder (and its sub-folders), all at once, one association each.

    Returns the seconds until the last one finished.
    """
    started = time.perf_counter()
    clients = [
        subprocess.Popen(
            [str(DCMTK / "storescu"), "-aet", "BENCH", "-aec", AET, "+sd", "+r",
             "127.0.0.1", str(port), str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=DCMTK_ENV,
        )
        for folder in folders
    ]  # fmt: skip
    failures = []
    for client in clients:
        _, errors = client.communicate(timeout=600)
        if client.returncode != 0:
            failures.append(errors.decode(errors="replace")[-500:])
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit("storescu failed:\n" + "\n".join(failures))
    return elapsed


def received(root: Path) -> int:
    """Instances that arrived: files under the receiver's folder, the index excepted."""
    return sum(
        1
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".") and not path.name.startswith("huren.db")
    )


def measure(
    receiver: str, base: Path, folder: Path, parts: list[Path], warmup: Path, count: int, run: int
) -> tuple[float, float]:
    """Instances/s of one receiver over one association, then over PARALLEL associations.

    Each phase gets a fresh receiving folder and a warm-up (imports, first
    directories, page cache) with files of its own; nothing is deleted while
    measuring, as deleting thousands of files keeps this kind of disk busy.
    """
    start = ours if receiver == "ours" else storescp
    warmed = received(warmup)
    rates = []
    for phase, folders in (("one", [folder]), ("many", parts)):
        root = base / f"received-{receiver}-{phase}-{run}"
        root.mkdir()
        with start(root) as port:
            send(port, [warmup])
            elapsed = send(port, folders)
        got = received(root) - warmed
        if got != count:
            raise SystemExit(f"{receiver}: {got} of {count} instances arrived")
        rates.append(count / elapsed)
    return rates[0], rates[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--small", action="store_true", help="400 instances")
    args = parser.parse_args()
    count = 400 if args.small else args.instances
    with tempfile.TemporaryDirectory(prefix="huren-bench-dicom-") as temporary:
        base = Path(temporary)
        folder = base / "send"
        folder.mkdir()
        parts = make_copies(folder, count)
        warmup = make_copies(base / "warmup", 50, parts=1)[0]
        size = next(parts[0].iterdir()).stat().st_size
        rates: dict[str, list[tuple[float, float]]] = {"storescp": [], "ours": []}
        for run in range(args.rounds):  # alternate, so a noisy moment hits both receivers
            for receiver in rates:
                rates[receiver].append(measure(receiver, base, folder, parts, warmup, count, run))
        bound_one, bound_many = (median(r[i] for r in rates["storescp"]) for i in (0, 1))
        ours_one, ours_many = (median(r[i] for r in rates["ours"]) for i in (0, 1))
    print(
        f"{count} CT_small instances ({size} bytes each) via storescu, "
        f"median of {args.rounds} alternating rounds: "
        f"1 association: ours {ours_one:.0f}/s, storescp {bound_one:.0f}/s; "
        f"{PARALLEL} associations: ours {ours_many:.0f}/s, storescp {bound_many:.0f}/s"
    )
    for name, rate, bound in (
        ("dicom-store-1", ours_one, bound_one),
        (f"dicom-store-{PARALLEL}", ours_many, bound_many),
    ):
        verdict = "met" if rate >= GOAL else "missed"
        print(
            f"GOAL {name}: {rate:.0f} inst/s (bound storescp {bound:.0f} inst/s, "
            f"ratio {rate / bound:.2f}) goal >={GOAL:.0f} inst/s: {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
