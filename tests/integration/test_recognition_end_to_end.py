"""End to end: an exam at one clinic, reported and signed; another clinic's order gets the card.

A township health centre sends the order over MLLP, its CT sends the images
with dcmtk's storescu, the hub completes and reconciles the study, the
county reading centre writes and signs the report, and then a clinician at
another township orders the same exam for the same person: the CDS service
answers with a warning card naming the first exam.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import text

from fhir.identifiers import EXAM_TYPE_SYSTEM, FACILITY_SYSTEM
from hl7.mllp import MllpClient
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.reporting import Signer, sign_final, submit_preliminary
from integration.settings import Settings
from models.enums import ImageGrade, ProfessionalTitle, Role, Sex
from models.identity import make_resident_id
from tests.conftest import free_port
from tests.databases import DemoSnapshots
from tests.hub_helpers import start_hub

STORESCU = Path("/usr/bin/storescu")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not STORESCU.exists(), reason="Debian's dcmtk is not installed"),
]
EXAM = "CT-HEAD-PLAIN"


def _orm(resident_id: str, placer: str) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    segments = [
        f"MSH|^~\\&|HIS|QL-T03|HUREN|HUREN|{stamp}||ORM^O01|E2E{placer}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||{resident_id}^^^CN^NNCHN~T03-77^^^QL-T03^MR||周^建平||19580612|M",
        "PV1|1|O",
        f"ORC|NW|{placer}|||SC|||||||0042^刘^医生",
        f"OBR|1|{placer}||{EXAM}^头颅CT平扫^HUREN|||{stamp}|||||||||0042^刘^医生||"
        f"A{placer[-8:]}||||||CT",
    ]
    return "\r".join(segments).encode() + b"\r"


def _wait(condition: object, *, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_signed_exam_at_one_clinic_prompts_a_clinician_at_another(
    tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=11, exams=200, until=date.today(), progress=False),
    )
    resident_id = make_resident_id("530102", date(1958, 6, 12), 7, Sex.male)
    placer = f"T03{int(time.time())}"
    http_port, mllp_port, dicom_port = free_port(), free_port(), free_port()
    hub = start_hub(
        tmp_path,
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        settings={
            "study_quiet_seconds": "1",
            "stabiliser_poll_seconds": "0.2",
            "database_url": database_url,
        },
    )
    try:

        async def order_from_the_clinic() -> bytes:
            async with MllpClient("127.0.0.1", mllp_port) as client:
                return await client.send(_orm(resident_id, placer))

        ack = asyncio.run(order_from_the_clinic())
        assert b"MSA|AA" in ack, ack
        with database.engine.connect() as connection:
            order = connection.execute(
                text(
                    "SELECT o.id, o.accession_number, o.study_instance_uid FROM exam_order o "
                    "WHERE o.placer_number = :p"
                ),
                {"p": placer},
            ).one()
        source = dcmread(str(get_testdata_file("CT_small.dcm", download=False)))
        source.StudyInstanceUID = order.study_instance_uid
        source.AccessionNumber = order.accession_number
        source.PatientID = resident_id
        source.SpecificCharacterSet = "ISO_IR 192"
        source.PatientName = "周^建平"
        source.StudyDate = source.SeriesDate = datetime.now(UTC).strftime("%Y%m%d")
        image = tmp_path / "head.dcm"
        source.save_as(image, enforce_file_format=True)
        sent = subprocess.run(
            [str(STORESCU), "-aet", "QHT03CT", "-aec", "HUREN",
             "127.0.0.1", str(dicom_port), str(image)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TCP_NODELAY": "1"},
            check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr

        def reconciled() -> bool:
            with database.engine.connect() as connection:
                return (
                    connection.execute(
                        text(
                            "SELECT count(*) FROM study WHERE order_id = :o AND "
                            "status = 'complete' AND reading_status = 'awaiting_preliminary'"
                        ),
                        {"o": order.id},
                    ).scalar_one()
                    == 1
                )

        _wait(reconciled, limit=60, what="the study to complete and match its order")
        with database.engine.connect() as connection:
            study = connection.execute(
                text("SELECT id, reading_centre_id FROM study WHERE order_id = :o"), {"o": order.id}
            ).one()
            staff = {
                row.role: row
                for row in connection.execute(
                    text(
                        "SELECT id, role, title FROM app_user WHERE facility_id = :f "
                        "AND role IN ('radiologist', 'auditor') ORDER BY id"
                    ),
                    {"f": study.reading_centre_id},
                )
            }
        radiologist, auditor = staff["radiologist"], staff["auditor"]
        now = datetime.now(UTC)
        with database.session() as session:
            submit_preliminary(
                session,
                study_id=study.id,
                signer=Signer(
                    radiologist.id,
                    Role.radiologist,
                    ProfessionalTitle(radiologist.title),
                    study.reading_centre_id,
                ),
                findings="脑实质密度均匀，脑室系统未见扩大。",
                impression="头颅CT平扫未见明显异常。",
                now=now,
                settings=settings,
            )
            session.commit()
        with database.session() as session:
            sign_final(
                session,
                study_id=study.id,
                signer=Signer(
                    auditor.id,
                    Role.auditor,
                    ProfessionalTitle(auditor.title),
                    study.reading_centre_id,
                ),
                findings="脑实质密度均匀，脑室系统未见扩大。",
                impression="头颅CT平扫未见明显异常。",
                grade=ImageGrade.A,
                now=now,
                settings=settings,
            )
            session.commit()

        draft = {
            "hookInstance": "e2e-order-sign",
            "hook": "order-sign",
            "context": {
                "userId": "Practitioner/his-t09-0099",
                "patientId": resident_id,
                "draftOrders": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [
                        {
                            "resource": {
                                "resourceType": "ServiceRequest",
                                "id": "t09-draft",
                                "status": "draft",
                                "intent": "order",
                                "code": {"coding": [{"system": EXAM_TYPE_SYSTEM, "code": EXAM}]},
                                "subject": {"reference": f"Patient/{resident_id}"},
                                "requester": {
                                    "identifier": {"system": FACILITY_SYSTEM, "value": "QL-T09"}
                                },
                            }
                        }
                    ],
                },
            },
        }
        answer = httpx.post(
            f"http://127.0.0.1:{http_port}/cds-services/huren-prior-exams-sign",
            json=draft,
            timeout=30,
        )
        assert answer.status_code == 200
        (card,) = answer.json()["cards"]
        assert card["indicator"] == "warning"
        assert "柳河镇卫生院" in card["summary"] and "头颅CT平扫" in card["summary"]
        assert "头颅CT平扫未见明显异常。" in card["detail"]
        assert card["suggestions"][0]["actions"][0]["resourceId"] == ["ServiceRequest/t09-draft"]
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=60)
        database.dispose()
