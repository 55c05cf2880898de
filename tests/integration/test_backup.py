"""Backup while the hub works, restore into an empty place, and find everything there.

The end-to-end test runs a real `huren serve`: a clinic's order over MLLP,
three CT images through dcmtk's storescu, a report written and signed; then
`huren backup` runs while a modality keeps sending images, and the backup is
restored into an empty data directory. Every study, instance file and report
of the backup's index is there, byte for byte, and the hash chains verify.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from hl7.mllp import MllpClient
from integration.backup import BackupError, backup, restore
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.reporting import Signer, sign_final, submit_preliminary
from integration.settings import Settings
from models.engine import create_db_engine
from models.enums import ImageGrade, ProfessionalTitle, Role, Sex
from models.identity import make_resident_id
from tests.conftest import POSTGRES_ENV, free_port
from tests.hub_helpers import hub_environment, start_hub

STORESCU = Path("/usr/bin/storescu")
EXAM = "CT-HEAD-PLAIN"


def _orm(resident_id: str, placer: str) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    segments = [
        f"MSH|^~\\&|HIS|QL-T03|HUREN|HUREN|{stamp}||ORM^O01|BK{placer}|P|2.5||||||UNICODE UTF-8",
        f"PID|1||{resident_id}^^^CN^NNCHN~T03-88^^^QL-T03^MR||吴^秀英||19620304|F",
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


def _images(folder: Path, count: int, **tags: str) -> list[Path]:
    """``count`` CT images of one study (a new study unless ``StudyInstanceUID`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = dcmread(str(get_testdata_file("CT_small.dcm", download=False)))
    source.StudyInstanceUID = tags.pop("StudyInstanceUID", None) or generate_uid()
    source.SeriesInstanceUID = generate_uid()
    source.SpecificCharacterSet = "ISO_IR 192"
    source.StudyDate = source.SeriesDate = datetime.now(UTC).strftime("%Y%m%d")
    for name, value in tags.items():
        setattr(source, name, value)
    paths = []
    for number in range(1, count + 1):
        source.SOPInstanceUID = generate_uid()
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        source.InstanceNumber = number
        path = folder / f"{uuid.uuid4().hex}.dcm"
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _store(port: int, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STORESCU), "-aet", "QHT03CT", "-aec", "HUREN", "127.0.0.1", str(port),
         *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def _huren(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "integration.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _sign(database: Database, settings: Settings, study_id: int, centre_id: int) -> None:
    with database.engine.connect() as connection:
        staff = {
            row.role: row
            for row in connection.execute(
                text(
                    "SELECT id, role, title FROM app_user WHERE facility_id = :f "
                    "AND role IN ('radiologist', 'auditor') ORDER BY id"
                ),
                {"f": centre_id},
            )
        }
    now = datetime.now(UTC)
    findings, impression = "脑实质密度均匀，中线结构居中。", "头颅CT平扫未见明显异常。"
    with database.session() as session:
        reader = staff["radiologist"]
        submit_preliminary(
            session,
            study_id=study_id,
            signer=Signer(reader.id, Role.radiologist, ProfessionalTitle(reader.title), centre_id),
            findings=findings,
            impression=impression,
            now=now,
            settings=settings,
        )
    with database.session() as session:
        auditor = staff["auditor"]
        sign_final(
            session,
            study_id=study_id,
            signer=Signer(auditor.id, Role.auditor, ProfessionalTitle(auditor.title), centre_id),
            findings=findings,
            impression=impression + "请结合临床。",
            grade=ImageGrade.A,
            now=now,
            settings=settings,
        )


@pytest.mark.slow
@pytest.mark.skipif(not STORESCU.exists(), reason="Debian's dcmtk is not installed")
def test_backup_while_the_hub_runs_restores_every_study_file_and_report(tmp_path: Path) -> None:
    hub_dir, restored_dir, saved = tmp_path / "hub", tmp_path / "restored", tmp_path / "backup"
    settings = Settings(data_dir=hub_dir)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=12, exams=150, until=date.today(), progress=False),
    )
    resident_id = make_resident_id("530102", date(1962, 3, 4), 8, Sex.female)
    placer = f"T03{int(time.time())}"
    http_port, mllp_port, dicom_port = free_port(), free_port(), free_port()
    hub = start_hub(
        hub_dir,
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        settings={
            "study_quiet_seconds": "1",
            "stabiliser_poll_seconds": "0.2",
            "audit_seal_seconds": "0.5",
        },
    )
    sending = threading.Event()
    late: list[int] = []
    try:

        async def order() -> bytes:
            async with MllpClient("127.0.0.1", mllp_port) as client:
                return await client.send(_orm(resident_id, placer))

        assert b"MSA|AA" in asyncio.run(order())
        with database.engine.connect() as connection:
            ordered = connection.execute(
                text(
                    "SELECT id, accession_number, study_instance_uid FROM exam_order "
                    "WHERE placer_number = :p"
                ),
                {"p": placer},
            ).one()
        images = _images(
            tmp_path / "scan",
            3,
            StudyInstanceUID=ordered.study_instance_uid,
            AccessionNumber=ordered.accession_number,
            PatientID=resident_id,
            PatientName="吴^秀英",
        )
        sent = _store(dicom_port, images)
        assert sent.returncode == 0, sent.stderr

        def reconciled() -> bool:
            with database.engine.connect() as connection:
                return bool(
                    connection.execute(
                        text(
                            "SELECT count(*) FROM study WHERE order_id = :o AND "
                            "status = 'complete' AND reading_status = 'awaiting_preliminary'"
                        ),
                        {"o": ordered.id},
                    ).scalar_one()
                )

        _wait(reconciled, limit=60, what="the study to complete and match its order")
        with database.engine.connect() as connection:
            study = connection.execute(
                text("SELECT id, reading_centre_id FROM study WHERE order_id = :o"),
                {"o": ordered.id},
            ).one()
        _sign(database, settings, study.id, study.reading_centre_id)
        with database.engine.begin() as connection:  # a portal view, as record_view writes it
            viewed = connection.execute(
                text(
                    "INSERT INTO audit_event (recorded_at, action, outcome, actor, "
                    "source_address, entity_type, entity_id, detail, previous_hash, hash) "
                    "VALUES (:at, 'read', 'success', 'qc', '10.0.0.5', 'Study', :s, '', '', '')"
                ),
                {"at": datetime.now(UTC), "s": str(study.id)},
            ).lastrowid

        def sealed_by_the_hub() -> bool:
            with database.engine.connect() as connection:
                return bool(
                    connection.execute(
                        text("SELECT hash FROM audit_event WHERE id = :i"), {"i": viewed}
                    ).scalar_one()
                )

        _wait(sealed_by_the_hub, limit=30, what="the hub's sealer to chain the new audit row")

        def modality_keeps_sending() -> None:  # bounded: at most 40 studies or 60 s
            deadline = time.monotonic() + 60
            for n in range(40):
                if not sending.is_set() or time.monotonic() > deadline:
                    return
                result = _store(dicom_port, _images(tmp_path / f"late{n}", 2))
                late.append(result.returncode)

        sending.set()
        sender = threading.Thread(target=modality_keeps_sending)
        sender.start()
        _wait(lambda: len(late) >= 2, limit=60, what="the modality to be busy")
        made = _huren("backup", "--output", str(saved), env=hub_environment(hub_dir))
        assert made.returncode == 0, made.stdout + made.stderr
        _wait(lambda: len(late) >= 4, limit=60, what="images sent after the backup")
        sending.clear()
        sender.join(timeout=90)
        assert late and all(code == 0 for code in late)
    finally:
        sending.clear()
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=60)
    database.dispose()

    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    env = hub_environment(restored_dir)
    back = _huren("restore", str(saved), env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "audit chains verified" in back.stdout
    checked = _huren("audit", "verify", "--expect-head", manifest["audit_head"], env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    restored = create_db_engine(f"sqlite:///{restored_dir / 'huren.db'}")
    try:
        with restored.connect() as connection:
            files = connection.execute(text("SELECT path, sha256 FROM instance")).all()
            ours = connection.execute(
                text(
                    "SELECT s.id, s.num_instances, r.status, r.impression, r.version "
                    "FROM study s JOIN report r ON r.study_id = s.id WHERE s.order_id = :o"
                ),
                {"o": ordered.id},
            ).one()
            revisions = connection.execute(
                text("SELECT count(*) FROM report_revision WHERE report_id = "
                     "(SELECT id FROM report WHERE study_id = :s)"),
                {"s": ours.id},
            ).scalar_one()  # fmt: skip
            studies = connection.execute(text("SELECT count(*) FROM study")).scalar_one()
            backups = connection.execute(
                text("SELECT count(*) FROM audit_event WHERE entity_type = 'Backup'")
            ).scalar_one()
    finally:
        restored.dispose()
    # Every file the restored index names is there, byte for byte; and nothing else was needed.
    assert len(files) == len(manifest["files"]) >= 3 + 2 * 2
    for path, sha in files:
        assert hashlib.sha256((restored_dir / path).read_bytes()).hexdigest() == sha
    assert ours.num_instances == 3 and ours.status == "final" and ours.version == revisions == 2
    assert ours.impression.endswith("请结合临床。")
    assert studies >= 150 + 1 + 2 and backups == 1
    # Images stored after the snapshot are in the hub, not in this backup, and break nothing.
    hub_engine = create_db_engine(f"sqlite:///{hub_dir / 'huren.db'}")
    try:
        with hub_engine.connect() as connection:
            live = connection.execute(text("SELECT count(*) FROM instance")).scalar_one()
    finally:
        hub_engine.dispose()
    assert live > len(files)


def test_backup_and_restore_refuse_unsafe_places(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "hub")  # type: ignore[arg-type]
    Database.from_settings(settings).upgrade()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "note.txt").write_text("mine")
    with pytest.raises(BackupError, match="not an empty folder"):
        backup(settings, output=busy)
    saved = tmp_path / "backup"
    backup(settings, output=saved)
    with pytest.raises(BackupError, match="not empty"):
        restore(settings, folder=saved)  # the hub's own, non-empty data directory
    with pytest.raises(BackupError, match="no manifest"):
        restore(Settings(data_dir=tmp_path / "x"), folder=busy)  # type: ignore[arg-type]
    with (saved / "huren.db").open("ab") as tampered:
        tampered.write(b"\0")
    with pytest.raises(BackupError, match="does not match its manifest"):
        restore(Settings(data_dir=tmp_path / "empty"), folder=saved)  # type: ignore[arg-type]


def _fresh_postgres(admin_url: str) -> str:
    url = make_url(admin_url)
    name = f"huren_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres(admin_url: str, target: str) -> None:
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f'DROP DATABASE IF EXISTS "{make_url(target).database}" WITH (FORCE)')
        )
    admin.dispose()


@pytest.mark.postgres
def test_postgres_backup_restores_into_an_empty_database(
    postgres_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "hub", database_url=postgres_url)  # type: ignore[arg-type]
    database = Database(postgres_engine)
    database.upgrade()
    seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=3, exams=80, until=date(2026, 11, 20), progress=False),
    )
    files = tmp_path / "hub" / "dicom" / "1.2.3" / "1.2.3.4"
    files.mkdir(parents=True)
    image = files / "1.2.3.4.5.dcm"
    image.write_bytes(b"DICM" * 100)
    with postgres_engine.begin() as connection:  # index one file by hand, as the archive does
        study = connection.execute(text("SELECT id FROM study ORDER BY id LIMIT 1")).scalar_one()
        series = connection.execute(
            text("SELECT id FROM series WHERE study_id = :s LIMIT 1"), {"s": study}
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO instance (series_id, study_id, sop_instance_uid, sop_class_uid, "
                "transfer_syntax_uid, path, size_bytes, sha256, version, received_at) VALUES "
                "(:series, :study, '1.2.3.4.5', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1',"
                " 'dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm', 400, :sha, 1, now())"
            ),
            {"series": series, "study": study, "sha": hashlib.sha256(b"DICM" * 100).hexdigest()},
        )
    made = backup(settings, output=tmp_path / "backup")
    assert made.kind == "postgresql" and made.files == 1 and not made.audit_problems
    admin = os.environ[POSTGRES_ENV]
    target = _fresh_postgres(admin)
    try:
        into = Settings(data_dir=tmp_path / "restored", database_url=target)  # type: ignore[arg-type]
        result = restore(into, folder=tmp_path / "backup")
        assert result.ok and result.files == 1
        assert (tmp_path / "restored" / "dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm").read_bytes() == (
            b"DICM" * 100
        )
        engine = create_db_engine(target)
        try:
            with engine.connect() as connection, postgres_engine.connect() as source:
                for table in ("study", "report", "report_revision", "audit_event"):
                    count = f"SELECT count(*) FROM {table}"
                    assert (
                        connection.execute(text(count)).scalar_one()
                        == source.execute(text(count)).scalar_one()
                    )
        finally:
            engine.dispose()
        with pytest.raises(BackupError, match="not empty"):
            restore(
                Settings(data_dir=tmp_path / "again", database_url=target),  # type: ignore[arg-type]
                folder=tmp_path / "backup",
            )
    finally:
        _drop_postgres(admin, target)
