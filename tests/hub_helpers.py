"""Shared by the tests: a facility row in a few words, `huren serve` as a real process, a clinic
HIS that records what it is sent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert
from sqlmodel import Session, col, select

from hl7.ack import build_ack
from hl7.er7 import parse_message
from hl7.mllp import MllpServer
from integration.database import Database
from integration.settings import Settings
from models import Facility, Order, Study, metadata
from models.catalogue import load_catalogue, sync_catalogue
from models.enums import OrderStatus, ReadingStatus, StudyStatus
from tests.conftest import free_port

T = metadata.tables


def add_township(
    connection: Connection,
    code: str,
    *,
    ae_title: str | None = None,
    modality: str = "CT",
    charset: str = "UNICODE UTF-8",
) -> int:
    """A township health centre (and, if given, the AE title of its modality)."""
    facility_id = int(
        connection.execute(
            insert(T["facility"]).values(
                code=code,
                name="测试卫生院",
                name_en="",
                level="township",
                kind="health_centre",
                is_reading_centre=False,
                area_code="",
                hl7_charset=charset,
                active=True,
                created_at=func.now(),
            )
        ).inserted_primary_key[0]
    )  # type: ignore[index]
    if ae_title:
        connection.execute(
            insert(T["facility_ae_title"]).values(
                facility_id=facility_id, ae_title=ae_title, station_name=modality, modality=modality
            )
        )
    return facility_id


def township_region(
    folder: Path, database_url: str, *, code: str, ae_title: str
) -> tuple[Database, Settings]:
    """A migrated database (``database_url``, "" = SQLite under ``folder``) holding one
    township with a CT AE title and the shipped exam catalogue."""
    settings = Settings(data_dir=folder, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        add_township(connection, code, ae_title=ae_title)
    with database.session() as session:
        sync_catalogue(session, entries=load_catalogue())
    return database, settings


def hub_environment(folder: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its HUREN_* variables, plus ``folder`` and ``settings``.

    ``settings`` are given without the prefix: ``upstream_fhir_url="http://…"``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env.update(HUREN_DATA_DIR=str(folder), HUREN_BIND="127.0.0.1")
    env.update({f"HUREN_{name.upper()}": value for name, value in settings.items()})
    return env


def start_hub(
    folder: Path,
    *,
    http_port: int,
    mllp_port: int | None = None,
    dicom_port: int | None = None,
    settings: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`huren serve` on 127.0.0.1, returned once /healthz answers (every listener is up).

    With ``log``, the hub's log goes to that file (appended) instead of nowhere.
    """
    env = hub_environment(
        folder,
        http_port=str(http_port),
        mllp_port=str(mllp_port or free_port()),
        dicom_port=str(dicom_port or free_port()),
        **(settings or {}),
    )
    output = log.open("ab") if log is not None else None
    try:
        hub = subprocess.Popen(
            [sys.executable, "-m", "integration.cli", "serve"],
            env=env,
            stdout=output or subprocess.DEVNULL,
            stderr=output or subprocess.DEVNULL,
        )
    finally:
        if output is not None:
            output.close()  # the child holds its own descriptor
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                return hub
        except OSError:
            assert hub.poll() is None, "hub exited while starting"
            time.sleep(0.1)
    hub.kill()
    raise AssertionError("hub did not start")


def study_for_reading(
    session: Session,
    *,
    clinic_code: str,
    uid: str,
    completed_at: datetime,
    **values: object,
) -> tuple[int, int]:
    """A complete study of a new order of the clinic, waiting at its reading centre.

    The order copies the patient and exam of the clinic's latest order, and is
    made the clinic's own (ordered there too), so the clinic's staff see it.
    Returns (study id, order id).
    """
    clinic = session.exec(select(Facility).where(Facility.code == clinic_code)).one()
    model = session.exec(
        select(Order)
        .where(Order.performing_facility_id == clinic.id)
        .order_by(col(Order.id).desc())
    ).first()
    assert model is not None and clinic.id is not None and clinic.reading_centre_id is not None
    serial = uid.replace(".", "")[-9:]
    order = Order(
        accession_number=f"T{serial}",
        placer_number=f"P{serial}",
        patient_id=model.patient_id,
        exam_type_id=model.exam_type_id,
        ordering_facility_id=clinic.id,
        performing_facility_id=clinic.id,
        ordering_provider=model.ordering_provider,
        priority=model.priority,
        reason=model.reason,
        status=OrderStatus.in_progress,
        requested_at=completed_at - timedelta(minutes=30),
    )
    session.add(order)
    session.flush()
    assert order.id is not None
    fields: dict[str, object] = {
        "status": StudyStatus.complete,
        "reading_status": ReadingStatus.awaiting_preliminary,
        "received_at": completed_at - timedelta(minutes=5),
        "completed_at": completed_at,
        "num_series": 1,
        "num_instances": 3,
        "priority": order.priority,
        **values,
    }
    study = Study(
        study_instance_uid=uid,
        order_id=order.id,
        patient_id=order.patient_id,
        exam_type_id=order.exam_type_id,
        facility_id=order.performing_facility_id,
        reading_centre_id=clinic.reading_centre_id,
        accession_number=order.accession_number,
        **fields,  # type: ignore[arg-type]
    )
    session.add(study)
    session.flush()
    assert study.id is not None
    return study.id, order.id


class ClinicHis:
    """An MLLP HIS on 127.0.0.1 (its own thread and loop) that ACKs every ORU (AA) and records
    each MSH-10 in order and the bytes each came with.

    ``port`` fixed keeps it reachable at one address across hub restarts; ``delay`` (seconds
    per message) lets a kill land in the middle of a stream.
    """

    def __init__(self, port: int | None = None, *, delay: float = 0.0) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.control_ids: list[str] = []
        self.payloads: dict[str, set[bytes]] = {}  # control id -> the bytes it came with
        self._loop = asyncio.new_event_loop()
        self._server = MllpServer(self._handle, host="127.0.0.1", port=self.port)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, payload: bytes, _peer: Any) -> bytes:
        message = parse_message(payload)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.control_ids.append(message.control_id)
        self.payloads.setdefault(message.control_id, set()).add(payload)
        return build_ack(
            message,
            code="AA",
            text="",
            control_id=f"HIS{len(self.control_ids)}",
            now=datetime.now(UTC),
        )

    def __enter__(self) -> ClinicHis:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._server.stop(grace=1), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def wait_until(condition: Callable[[], bool], limit: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
