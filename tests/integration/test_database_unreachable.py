"""PostgreSQL unreachable for a moment: clean errors to senders, then recovery without a restart.

The hub reaches its database through a TCP forwarder on 127.0.0.1 that the
test controls. Cut, it resets every open connection and every new one. A
clinic sends an order (MLLP), a modality an image (C-STORE), a client FHIR
requests: each gets a transient refusal it understands (AE, 0xA700, 503)
within its own timeout, and nothing is half kept. Once the forwarder is back
the same process takes the re-sent order exactly once, the image and the
Bundle, and its background loops (stabiliser, outbox, audit sealer) carry on.
A second, silent cut checks that no connection kept across it fails the next
sender.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import Any, TypeVar

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from bench.mllp import orm
from hl7.er7 import Message, parse_message
from hl7.mllp import MllpClient
from integration.api_clients import create_client
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.report_return import queue_report_return
from integration.settings import Settings
from models import metadata
from models.enums import InboundStatus, ReportStatus, StudyStatus
from tests.conftest import free_port
from tests.databases import DemoSnapshots
from tests.hub_helpers import ClinicHis, start_hub, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T = metadata.tables
DOWN = 5.0  # seconds the database stays unreachable: several rounds of every background loop
SENDER_TIMEOUT = 15.0
DATA = Path(__file__).parents[1] / "data" / "fhir"
POSTGRES = ("127.0.0.1", 5432)
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, zero seconds: close() sends RST
Result = TypeVar("Result")


class Forwarder:
    """127.0.0.1:<port> piped to PostgreSQL, with a switch that takes the database off the wire.

    Its own thread runs an event loop. ``cut`` resets every open connection (both sides) and
    makes new ones be reset on arrival until ``restore``.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._open: set[asyncio.StreamWriter] = set()
        self._up = True
        self._server: asyncio.Server | None = None
        self.port = 0
        self.turned_away = 0  # connections reset on arrival while cut

    def __enter__(self) -> Forwarder:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    def cut(self) -> int:
        """Reset every open connection and refuse new ones; how many were reset."""

        async def reset_all() -> int:
            self._up = False
            doomed = list(self._open)
            for writer in doomed:
                _reset(writer)
            return len(doomed)

        return self._call(reset_all())

    def restore(self) -> None:
        async def open_again() -> None:
            self._up = True

        self._call(open_again())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            self.turned_away += 1
            _reset(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        pair = {writer, upstream_writer}
        self._open |= pair
        pipes = {
            asyncio.ensure_future(_pipe(reader, upstream_writer)),
            asyncio.ensure_future(_pipe(upstream_reader, writer)),
        }
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            self._open -= pair
            for side in pair:
                side.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        return


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close at once with a TCP reset, as a crashed server or a broken link leaves it."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    writer.transport.abort()


@dataclass
class Hub:
    process: Popen[bytes]
    folder: Path
    log: Path
    database: Database  # straight to PostgreSQL, for the test's own checks
    forwarder: Forwarder
    his: ClinicHis
    mllp_port: int
    dicom_port: int
    http_port: int
    modality_aet: str
    token: str
    settings: Settings


@pytest.fixture
def hub(tmp_path: Path, postgres_url: str, demo_snapshots: DemoSnapshots) -> Iterator[Hub]:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(database, settings=settings, options=DemoOptions(seed=5, exams=30))
    with Forwarder(POSTGRES) as forwarder, ClinicHis() as his:
        with database.engine.begin() as connection:
            aet = connection.execute(
                select(T["facility_ae_title"].c.ae_title)
                .where(T["facility_ae_title"].c.modality == "CT")
                .order_by(T["facility_ae_title"].c.id)
            ).scalars().first()  # fmt: skip
            token = create_client(
                connection, name="outage-test", scopes="system/*.read system/*.write",
                now=datetime.now(UTC),
            )  # fmt: skip
            connection.execute(
                update(T["facility"]).values(hl7_host="127.0.0.1", hl7_port=his.port)
            )
        assert aet
        through = make_url(postgres_url).set(port=forwarder.port)
        mllp_port, dicom_port, http_port = free_port(), free_port(), free_port()
        log = tmp_path / "hub.log"
        process = start_hub(
            tmp_path,
            http_port=http_port,
            mllp_port=mllp_port,
            dicom_port=dicom_port,
            settings={
                "database_url": through.render_as_string(hide_password=False),
                "study_quiet_seconds": "1",
                "stabiliser_poll_seconds": "0.2",
                "outbox_poll_seconds": "0.2",
                "audit_seal_seconds": "0.5",
            },
            log=log,
        )
        try:
            yield Hub(
                process, tmp_path, log, database, forwarder, his,
                mllp_port, dicom_port, http_port, aet, token, settings,
            )  # fmt: skip
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            database.dispose()


def _ct(study: str) -> Dataset:
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    dataset.StudyInstanceUID = study
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def _dimse(hub: Hub, dataset: Dataset | None) -> int:
    """A C-STORE of ``dataset`` (a C-ECHO when None) on its own association; the status."""
    ae = AE(ae_title=hub.modality_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = SENDER_TIMEOUT
    if dataset is not None:
        ae.add_requested_context(CTImageStorage, dataset.file_meta.TransferSyntaxUID)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", hub.dicom_port, ae_title="HUREN")
    assert association.is_established
    try:
        if dataset is not None:
            return _status(association.send_c_store(dataset))
        return _status(association.send_c_echo())
    finally:
        association.release()


def _status(status: Dataset | None) -> int:
    return int(status.Status) if status and "Status" in status else -1


def _ack(hub: Hub, message: bytes) -> Message:
    async def send() -> bytes:
        async with MllpClient("127.0.0.1", hub.mllp_port, timeout=SENDER_TIMEOUT) as client:
            return await client.send(message)

    return parse_message(asyncio.run(send()))


def _code(ack: Message) -> str:
    return _msa(ack, 1)


def _msa(ack: Message, field: int) -> str:
    msa = ack.segment("MSA")
    assert msa is not None
    return msa.get(field)


def _fhir(hub: Hub, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(
        method,
        f"http://127.0.0.1:{hub.http_port}/fhir{path}",
        json=body,
        headers={"Authorization": f"Bearer {hub.token}", "Content-Type": "application/fhir+json"},
        timeout=SENDER_TIMEOUT,
    )


def _bundle(family: str) -> dict[str, object]:
    patient = json.loads((DATA / "patient-example.json").read_text())
    patient.pop("id", None)
    patient["name"] = [{"family": family, "given": ["Outage"]}]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }


def _healthz(hub: Hub) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{hub.http_port}/healthz", timeout=SENDER_TIMEOUT)


def _orders(hub: Hub, numbers: list[int]) -> list[tuple[int, list[str]]]:
    """Per order number: its exam_order rows and the statuses of its inbound messages."""
    order, inbound = T["exam_order"], T["inbound_message"]
    with hub.database.engine.connect() as connection:
        return [
            (
                connection.execute(
                    select(func.count()).where(order.c.placer_number == f"P{n:09d}")
                ).scalar_one(),
                list(
                    connection.execute(
                        select(inbound.c.status)
                        .where(inbound.c.control_id == f"BENCH{n:08d}")
                        .order_by(inbound.c.id)
                    ).scalars()
                ),
            )
            for n in numbers
        ]


def _instances(hub: Hub, study: str) -> int:
    with hub.database.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(T["instance"])
                .join(T["study"], T["study"].c.id == T["instance"].c.study_id)
                .where(T["study"].c.study_instance_uid == study)
            ).scalar_one()
        )


def _files(hub: Hub) -> list[Path]:
    return [p for p in (hub.folder / "dicom").rglob("*") if p.is_file()]


def _patients(hub: Hub, family: str) -> int:
    resource = T["fhir_resource"]
    with hub.database.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(
                    resource.c.resource_type == "Patient",
                    resource.c.origin == "outage-test",
                    resource.c.name_text.contains(family.lower()),
                )
            ).scalar_one()
        )


def test_an_unreachable_database_gives_clean_errors_and_the_hub_recovers(hub: Hub) -> None:
    before, refused, after = 8_001, 8_002, 8_003
    first_study, second_study = generate_uid(), generate_uid()

    # 1. All well.
    assert _code(_ack(hub, orm(before))) == "AA"
    assert _dimse(hub, _ct(first_study)) == 0x0000
    assert _fhir(hub, "GET", "/Patient?_count=1").status_code == 200

    # 2. The database goes away: every sender gets a transient refusal within its own timeout.
    assert hub.forwarder.cut() > 0  # the hub held connections open: they are reset
    cut_at = time.monotonic()
    results: dict[str, object] = {}
    store = threading.Thread(target=lambda: results.update(store=_dimse(hub, _ct(second_study))))
    store.start()
    ack = _ack(hub, orm(refused))
    store.join(SENDER_TIMEOUT + 5)
    assert not store.is_alive(), "the C-STORE hung on the unreachable database"
    echo = _dimse(hub, None)
    read = _fhir(hub, "GET", "/Patient?_count=1")
    transaction = _fhir(hub, "POST", "", _bundle("Refused"))
    health = _healthz(hub)
    answered_in = time.monotonic() - cut_at
    time.sleep(max(0.0, DOWN - answered_in))  # the background loops meet the outage too
    # A sender the directory does not know makes it reload (it is older than its 5 s minimum).
    stranger = _ack(hub, orm(refused).replace(b"|HIS|QL-T01|", b"|HIS|QL-X99|", 1))
    hub.forwarder.restore()

    assert _code(ack) == "AE"
    assert "unavailable" in _msa(ack, 3)
    assert (_code(stranger), _msa(stranger, 3)) == (_code(ack), _msa(ack, 3))
    assert results["store"] == 0xA700
    assert echo == 0x0000
    for refusal in (read, transaction):
        assert refusal.status_code == 503
        assert refusal.json()["resourceType"] == "OperationOutcome"
        assert refusal.headers["Retry-After"]
        assert "unreachable" in refusal.json()["issue"][0]["diagnostics"]
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert hub.forwarder.turned_away > 0
    # Nothing of the refused work was kept: no order, no inbound row, no index row, no file.
    assert _orders(hub, [refused]) == [(0, [])]
    assert _instances(hub, second_study) == 0
    assert _patients(hub, "Refused") == 0
    assert len(_files(hub)) == 1

    # 3. Back, without a restart: the re-sent order once, the image, the Bundle, the loops.
    assert _code(_ack(hub, orm(refused))) == "AA"
    assert _code(_ack(hub, orm(after))) == "AA"
    assert _dimse(hub, _ct(second_study)) == 0x0000
    assert _fhir(hub, "POST", "", _bundle("Accepted")).status_code == 200
    assert _fhir(hub, "GET", "/Patient?_count=1").status_code == 200
    assert _healthz(hub).status_code == 200
    accepted = [InboundStatus.accepted.value]
    assert _orders(hub, [before, refused, after]) == [(1, accepted)] * 3
    assert (_instances(hub, first_study), _instances(hub, second_study)) == (1, 1)
    assert len(_files(hub)) == 2
    assert _patients(hub, "Accepted") == 1

    study, audit = T["study"], T["audit_event"]

    def both_complete() -> bool:  # the stabiliser survived the outage
        with hub.database.engine.connect() as connection:
            statuses = connection.execute(
                select(study.c.status).where(
                    study.c.study_instance_uid.in_([first_study, second_study])
                )
            ).scalars().all()  # fmt: skip
        return sorted(statuses) == [StudyStatus.complete] * 2

    def all_sealed() -> bool:  # and the audit sealer
        with hub.database.engine.connect() as connection:
            return not connection.execute(select(audit.c.id).where(audit.c.hash == "")).first()

    wait_until(both_complete, 15, "both studies complete")
    wait_until(all_sealed, 15, "every audit row sealed")
    with hub.database.engine.begin() as connection:  # and the outbox worker
        report = connection.execute(
            select(T["report"].c.id)
            .where(T["report"].c.status == ReportStatus.final, T["report"].c.order_id.is_not(None))
            .order_by(T["report"].c.id)
        ).scalars().first()  # fmt: skip
        assert report is not None
        assert queue_report_return(
            connection, report_id=report, now=datetime.now(UTC), settings=hub.settings
        )
    wait_until(lambda: len(hub.his.control_ids) == 1, 15, "the ORU delivered")

    # 4. A silent blip: nothing was sent while it lasted, so nothing noticed it.
    assert hub.forwarder.cut() > 0
    time.sleep(1.0)
    hub.forwarder.restore()
    assert _code(_ack(hub, orm(after + 1))) == "AA"
    assert _dimse(hub, _ct(generate_uid())) == 0x0000
    assert _fhir(hub, "GET", "/Patient?_count=1").status_code == 200

    log = hub.log.read_text(errors="replace")
    assert "hub ready" in log
    assert "Traceback" not in log  # no loop died, none logged more than the outage itself
