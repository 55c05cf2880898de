"""Two `huren serve` processes on one PostgreSQL database share the load and do nothing twice.

Orders arrive alternately at both MLLP ports, each study's two instances at
both DICOM ports at once (so both hubs index the same study concurrently),
and ORU^R01 rows queued in waves go out through whichever hub claims them, to
two clinic HIS listeners that record every MSH-10 they see.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select, update

from integration.archive import _insert_once
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.imaging import Stabiliser
from integration.outbox import OutboxWorker, enqueue
from integration.report_return import queue_report_return
from integration.settings import Settings
from models import metadata
from models.enums import OutboxChannel, OutboxStatus, Priority, StudyStatus
from models.identity import Sex, make_resident_id
from tests.conftest import free_port
from tests.databases import DemoSnapshots
from tests.hub_helpers import ClinicHis, add_township, start_hub, wait_until

T = metadata.tables
STORESCU = "/usr/bin/storescu"
ORDERS = 16
REPORTS_PER_WAVE = 12
WAVES = 3


def _orm(n: int, facility: str) -> bytes:
    born = date(1950 + n % 50, 1 + n % 12, 1 + n % 28)
    sex = Sex.male if n % 2 else Sex.female
    resident_id = make_resident_id("530102", born, 40 + n, sex)
    return (
        f"MSH|^~\\&|HIS|{facility}|HUREN|HUREN|20261125093000||ORM^O01|TWO{n:05d}|P|2.3.1"
        "|||||UNICODE UTF-8\r"
        f"PID|1||{resident_id}^^^^RI~TWO{n:05d}^^^{facility}^MR||双^中心{n}||"
        f"{born:%Y%m%d}|{sex.value}|||青岚县|||13800000000\r"
        "PV1|1|O\r"
        f"ORC|NW|TWOP{n:05d}||||||^^^20261125100000||20261125093000|||^王医生\r"
        f"OBR|1|TWOP{n:05d}||CT-CHEST-PLAIN^胸部CT平扫^HUREN|R|20261125093000|||||||咳嗽|||"
        f"^王医生||TWOA{n:05d}|||||CT\r"
    ).encode()


def _send_orders(ports: list[int], facility: str) -> list[str]:
    """ORMs alternately to each hub, each on its own connection; the MSA-1 of each ACK."""
    codes = []
    for n in range(ORDERS):
        with socket.create_connection(("127.0.0.1", ports[n % 2]), timeout=30) as connection:
            connection.sendall(b"\x0b" + _orm(n, facility) + b"\x1c\r")
            answer = b""
            while not answer.endswith(b"\x1c\r"):
                chunk = connection.recv(65536)
                assert chunk, "hub closed the connection without an ACK"
                answer += chunk
        codes.append(answer.split(b"MSA|")[1].split(b"|")[0].decode())
    return codes


def _instances(folder: Path) -> tuple[list[Path], list[Path], set[str]]:
    """Two CT instances per order (one series), split so each hub gets one of every study."""
    source = dcmread(str(get_testdata_file("CT_small.dcm", download=False)))
    halves: tuple[list[Path], list[Path]] = ([], [])
    uids: set[str] = set()
    for n in range(ORDERS):
        study, series = generate_uid(), generate_uid()
        for number in (1, 2):
            uid = generate_uid()
            source.StudyInstanceUID, source.SeriesInstanceUID = study, series
            source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = uid
            source.AccessionNumber, source.InstanceNumber = f"TWOA{n:05d}", number
            half = (n + number) % 2
            path = folder / f"hub{half}" / f"{n:03d}-{number}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            source.save_as(path, enforce_file_format=True)
            halves[half].append(path)
            uids.add(uid)
    return halves[0], halves[1], uids


@pytest.fixture
def shared(
    tmp_path: Path, postgres_url: str, demo_snapshots: DemoSnapshots
) -> Iterator[tuple[Database, Settings]]:
    settings = Settings(data_dir=tmp_path / "test", database_url=postgres_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=5, exams=300, until=date(2026, 11, 20), progress=False),
    )
    yield database, settings
    database.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_hubs_share_the_load_and_nothing_is_done_twice(
    shared: tuple[Database, Settings], tmp_path: Path
) -> None:
    database, settings = shared
    with database.engine.connect() as connection:
        clinic_aet = (
            connection.execute(
                select(T["facility_ae_title"].c.ae_title)
                .join(T["facility"], T["facility"].c.id == T["facility_ae_title"].c.facility_id)
                .where(T["facility"].c.code == "QL-T01")
                .order_by(T["facility_ae_title"].c.id)
            )
            .scalars()
            .first()
        )
        reports = connection.execute(
            select(T["report"].c.id, T["exam_order"].c.ordering_facility_id)
            .join(T["exam_order"], T["exam_order"].c.id == T["report"].c.order_id)
            .where(T["report"].c.status == "final")
            .order_by(T["report"].c.id)
        ).all()
    assert clinic_aet
    clinics = sorted({row.ordering_facility_id for row in reports})[:2]
    chosen = [row.id for row in reports if row.ordering_facility_id in clinics]
    chosen = chosen[: REPORTS_PER_WAVE * WAVES]
    assert len(chosen) == REPORTS_PER_WAVE * WAVES

    logs = [tmp_path / "hub0.log", tmp_path / "hub1.log"]
    mllp_ports, dicom_ports = [free_port(), free_port()], [free_port(), free_port()]
    common = {
        "database_url": settings.database_url,
        "study_quiet_seconds": "1",
        "stabiliser_poll_seconds": "0.2",
        "outbox_poll_seconds": "0.1",
        "outbox_claim_rows": "2",  # small rounds, so neither hub can take a whole wave
    }
    with ClinicHis(delay=0.05) as first_his, ClinicHis(delay=0.05) as second_his:
        with database.engine.begin() as connection:
            for clinic, his in zip(clinics, (first_his, second_his), strict=True):
                connection.execute(
                    update(T["facility"])
                    .where(T["facility"].c.id == clinic)
                    .values(hl7_host="127.0.0.1", hl7_port=his.port)
                )
        hubs = [
            start_hub(
                tmp_path / f"hub{n}",
                http_port=free_port(),
                mllp_port=mllp_ports[n],
                dicom_port=dicom_ports[n],
                settings=common,
                log=logs[n],
            )
            for n in (0, 1)
        ]
        try:
            assert _send_orders(mllp_ports, "QL-T01") == ["AA"] * ORDERS

            to_first, to_second, sop_uids = _instances(tmp_path / "images")
            senders = [
                subprocess.Popen(
                    [STORESCU, "-aet", clinic_aet, "-aec", "HUREN", "127.0.0.1", str(port)]
                    + [str(path) for path in files],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for port, files in ((dicom_ports[0], to_first), (dicom_ports[1], to_second))
            ]
            for sender in senders:
                output, _ = sender.communicate(timeout=120)
                assert sender.returncode == 0, output.decode(errors="replace")

            study = T["study"]
            mine = study.c.accession_number.like("TWOA%")

            def reconciled() -> bool:
                with database.engine.connect() as connection:
                    done = connection.execute(
                        select(func.count()).where(
                            mine, study.c.status == StudyStatus.complete,
                            study.c.order_id.is_not(None),
                        )
                    ).scalar_one()  # fmt: skip
                return int(done) == ORDERS

            wait_until(reconciled, 60, "every study complete and matched to its order")

            for wave in range(WAVES):
                with database.engine.begin() as connection:
                    wave_reports = chosen[wave * REPORTS_PER_WAVE : (wave + 1) * REPORTS_PER_WAVE]
                    for report_id in wave_reports:
                        assert queue_report_return(
                            connection, report_id=report_id, now=datetime.now(UTC),
                            settings=settings,
                        )  # fmt: skip
                time.sleep(0.5)

            def delivered() -> bool:
                with database.engine.connect() as connection:
                    waiting = connection.execute(
                        select(func.count()).where(
                            T["outbox"].c.channel == OutboxChannel.hl7,
                            T["outbox"].c.status != OutboxStatus.delivered,
                        )
                    ).scalar_one()
                return int(waiting) == 0

            wait_until(delivered, 60, "every ORU delivered")
        finally:
            for hub in hubs:
                hub.send_signal(signal.SIGTERM)
            for hub in hubs:
                hub.wait(timeout=60)

    with database.engine.connect() as connection:
        orders = connection.execute(
            select(T["exam_order"].c.accession_number).where(
                T["exam_order"].c.accession_number.like("TWOA%")
            )
        ).scalars().all()  # fmt: skip
        instances = connection.execute(
            select(T["instance"].c.sop_instance_uid).where(
                T["instance"].c.sop_instance_uid.in_(sop_uids)
            )
        ).scalars().all()  # fmt: skip
        studies = connection.execute(
            select(study.c.num_instances, study.c.num_series).where(mine)
        ).all()
        oru_rows = connection.execute(
            select(func.count()).where(T["outbox"].c.channel == OutboxChannel.hl7)
        ).scalar_one()
    assert sorted(orders) == [f"TWOA{n:05d}" for n in range(ORDERS)]  # each stored once
    assert sorted(instances) == sorted(sop_uids)  # each instance indexed once
    assert sorted(tuple(row) for row in studies) == [(2, 1)] * ORDERS  # one study, one series
    control_ids = first_his.control_ids + second_his.control_ids
    assert len(control_ids) == len(set(control_ids)) == oru_rows == len(chosen)  # exactly once

    texts = [log.read_text(errors="replace") for log in logs]
    for text in texts:
        assert "hub ready" in text
        assert "duplicate key" not in text.lower() and "uniqueviolation" not in text.lower()
        assert "Traceback" not in text
    for n, text in enumerate(texts):
        assert " huren.outbox: delivered " in text, f"hub {n} delivered no outbox row"


# ---------------------------------------------------------------- the pieces, on both backends


def _study_values(uid: str, facility_id: int) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "study_instance_uid": uid,
        "facility_id": facility_id,
        "reading_centre_id": facility_id,
        "modalities": "CT",
        "body_part": "",
        "description": "",
        "station_name": "",
        "priority": Priority.routine,
        "received_at": now,
        "last_instance_at": now,
        "status": StudyStatus.receiving,
        "num_series": 0,
        "num_instances": 0,
        "quality_rejected": False,
        "dicom_patient_id": "",
        "dicom_patient_name": "",
        "demographics_conflict": False,
    }


def _receiving_study(database: Database, uid: str) -> tuple[int, int]:
    """A township and a study of it still receiving: (study id, facility id)."""
    with database.engine.begin() as connection:
        facility_id = add_township(connection, f"T-{uid[-6:]}")
        study_id = _insert_once(
            connection, T["study"], "study_instance_uid", _study_values(uid, facility_id)
        )
    return study_id, facility_id


@pytest.fixture
def database(tmp_path: Path, database_url: str) -> Iterator[Database]:
    db = Database.from_settings(Settings(data_dir=tmp_path, database_url=database_url))  # type: ignore[arg-type]
    db.upgrade()
    yield db
    db.dispose()


def test_a_study_uid_seen_twice_is_one_row(database: Database) -> None:
    first, facility_id = _receiving_study(database, "2.25.7001")
    with database.engine.begin() as connection:
        again = _insert_once(
            connection, T["study"], "study_instance_uid", _study_values("2.25.7001", facility_id)
        )
        count = connection.execute(select(func.count()).select_from(T["study"])).scalar_one()
    assert again == first and count == 1


@pytest.mark.postgres
def test_a_concurrent_insert_of_the_same_study_waits_and_finds_it(postgres_url: str) -> None:
    database = Database.from_settings(Settings(database_url=postgres_url))  # type: ignore[call-arg]
    database.upgrade()
    try:
        with database.engine.begin() as connection:
            facility_id = add_township(connection, "T-RACE")
        values = _study_values("2.25.7002", facility_id)
        ids: list[int] = []
        with database.engine.connect() as holder:
            transaction = holder.begin()
            ids.append(_insert_once(holder, T["study"], "study_instance_uid", values))

            def second() -> None:
                with database.engine.begin() as connection:
                    ids.append(_insert_once(connection, T["study"], "study_instance_uid", values))

            other = threading.Thread(target=second)
            other.start()
            time.sleep(0.5)  # the second insert now waits on the first's uncommitted row
            assert other.is_alive()
            transaction.commit()
            other.join(10)
        assert len(ids) == 2 and ids[0] == ids[1]
    finally:
        database.dispose()


def test_two_stabilisers_complete_a_study_once(database: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=str(database.engine.url))  # type: ignore[arg-type]
    study_id, _facility = _receiving_study(database, "2.25.7003")
    now = datetime.now(UTC)
    first = Stabiliser(database=database, settings=settings)
    second = Stabiliser(database=database, settings=settings)
    assert first.complete(study_id, now=now) is True
    assert second.complete(study_id, now=now) is False
    with database.engine.connect() as connection:
        row = connection.execute(select(T["study"]).where(T["study"].c.id == study_id)).one()
    assert row.status == StudyStatus.complete and row.completed_at is not None


@pytest.mark.postgres
def test_concurrent_claims_never_share_a_row_or_a_destination(postgres_url: str) -> None:
    """Workers of different hubs claiming at once: disjoint rows, one claimer per destination."""
    settings = Settings(database_url=postgres_url)  # type: ignore[call-arg]
    database = Database.from_settings(settings)
    database.upgrade()
    try:
        now = datetime.now(UTC)
        with database.engine.begin() as connection:
            for n in range(60):
                enqueue(
                    connection,
                    channel=OutboxChannel.hl7,
                    destination=f"mllp://clinic{n % 6}:2575",
                    idempotency_key=f"claim-{n}",
                    payload=b"x",
                    now=now,
                )
        workers = [
            OutboxWorker(database=database, settings=settings, senders={}, batch=4, worker_id=name)
            for name in ("hub-a", "hub-b", "hub-c")
        ]
        claims: dict[str, list[Any]] = {worker.worker_id: [] for worker in workers}
        start = threading.Barrier(len(workers))

        def claim(worker: OutboxWorker) -> None:
            start.wait()
            for _ in range(5):
                claims[worker.worker_id] += worker._claim()

        threads = [threading.Thread(target=claim, args=(worker,)) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        taken = [parcel.id for parcels in claims.values() for parcel in parcels]
        assert len(taken) == len(set(taken)) > 0
        holders: dict[str, set[str]] = {}
        for worker_id, parcels in claims.items():
            for parcel in parcels:
                holders.setdefault(parcel.destination, set()).add(worker_id)
        assert all(len(ids) == 1 for ids in holders.values()), holders
    finally:
        database.dispose()
