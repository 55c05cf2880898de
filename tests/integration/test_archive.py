"""The archive behind the DICOM server: dcmtk as the clinic's modality, a real SQLite file."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import insert, select, text

from dicom.server import DicomServer
from dicom.store import FileStore
from integration.archive import Archive
from integration.database import Database
from integration.directory import Directory
from integration.imaging import (
    CallerPolicy,
    Stabiliser,
    StudyQueryService,
    WorklistService,
    import_folder,
)
from integration.settings import Settings
from models import metadata
from models.catalogue import load_catalogue, sync_catalogue
from tests.hub_helpers import add_township

T = metadata.tables
DCMTK = Path("/usr/bin")
CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
J2K = get_testdata_file("JPEG2000.dcm")
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"

pytestmark = pytest.mark.skipif(
    not (DCMTK / "storescu").exists(),
    reason="Debian's dcmtk is not installed (.ci/run installs it)",
)


@dataclass
class Site:
    database: Database
    settings: Settings
    directory: Directory
    archive: Archive
    server: DicomServer
    root: Path

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.database.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def dcmtk(
        self, tool: str, *options: str, files: tuple[str, ...] = (), aet: str = "QLT01CT"
    ) -> subprocess.CompletedProcess[str]:
        """Run a dcmtk client: ``tool [options] peer port [files]``."""
        return subprocess.run(
            [
                str(DCMTK / tool),
                "-aet",
                aet,
                "-aec",
                "HUREN",
                *options,
                "127.0.0.1",
                str(self.server.port),
                *files,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, study_quiet_seconds=0.1)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        facility_id = add_township(connection, "QL-T01", ae_title="QLT01CT")
    with database.session() as session:
        sync_catalogue(session, entries=load_catalogue())
    with database.engine.begin() as connection:
        exam_id = connection.execute(
            select(T["exam_type"].c.id).where(T["exam_type"].c.code == "CT-CHEST-PLAIN")
        ).scalar_one()
        patient_id = connection.execute(
            insert(T["patient"]).values(
                name="王小明",
                sex="M",
                birth_date=date(1970, 1, 1),
                phone="",
                address="",
                needs_review=False,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        connection.execute(
            insert(T["patient_identifier"]).values(
                patient_id=patient_id, kind="mrn", authority="QL-T01", value="1CT1"
            )
        )
        for accession, uid, status in (
            ("ACC001", CT_STUDY, "scheduled"),
            ("ACC002", "2.25.1", "scheduled"),
            ("ACC003", "2.25.2", "cancelled"),
        ):
            connection.execute(
                insert(T["exam_order"]).values(
                    accession_number=accession,
                    placer_number=f"P-{accession}",
                    patient_id=patient_id,
                    exam_type_id=exam_id,
                    ordering_facility_id=facility_id,
                    performing_facility_id=facility_id,
                    ordering_provider="李医生",
                    priority="routine",
                    patient_class="O",
                    status=status,
                    reason="",
                    body_part_count=1,
                    requested_at=now,
                    scheduled_at=now + timedelta(hours=1),
                    scheduled_station_aet="QLT01CT",
                    study_instance_uid=uid,
                    created_at=now,
                    updated_at=now,
                )
            )
    directory = Directory(database.engine)
    files = FileStore(tmp_path)
    archive = Archive(database=database, settings=settings, directory=directory, files=files)
    archive.start()
    server = DicomServer(
        ae_title="HUREN",
        host="127.0.0.1",
        port=0,
        storage=archive,
        worklist=WorklistService(database=database, settings=settings, directory=directory),
        query=StudyQueryService(database=database, settings=settings, files=files),
        callers=CallerPolicy(database=database, settings=settings, directory=directory),
        zone=settings.zone,
    )
    server.start()
    yield Site(database, settings, directory, archive, server, tmp_path)
    server.stop()
    archive.stop()
    database.dispose()


def test_echo_from_a_known_modality_and_refusal_of_a_stranger(site: Site) -> None:
    assert site.dcmtk("echoscu").returncode == 0
    refused = site.dcmtk("echoscu", aet="STRANGER")
    assert refused.returncode != 0
    assert "Rejected" in refused.stdout + refused.stderr


def test_store_writes_the_file_then_indexes_it_and_a_resend_is_idempotent(site: Site) -> None:
    for _ in range(2):
        result = site.dcmtk("storescu", files=(CT, MR))
        assert result.returncode == 0, result.stderr
    instances = site.rows("SELECT sop_instance_uid, path, sha256, version FROM instance")
    assert len(instances) == 2 and {r.version for r in instances} == {1}
    for row in instances:
        stored = site.root / row.path
        assert stored.exists()
        assert dcmread(stored).SOPInstanceUID == row.sop_instance_uid
    studies = site.rows(
        "SELECT study_instance_uid, status, num_instances, facility_id, "
        "modalities FROM study ORDER BY id"
    )
    assert [(s.status, s.num_instances) for s in studies] == [("receiving", 1)] * 2
    assert not list(site.root.rglob("*.tmp"))


def test_compressed_instances_are_kept_as_sent(site: Site) -> None:
    result = site.dcmtk("storescu", "-xw", files=(J2K,))  # propose JPEG 2000 as sent
    assert result.returncode == 0, result.stderr
    path = site.scalar("SELECT path FROM instance")
    kept = dcmread(site.root / path)
    original = dcmread(J2K)
    assert kept.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert kept.PixelData == original.PixelData


def test_a_changed_resend_becomes_a_new_version(site: Site, tmp_path: Path) -> None:
    assert site.dcmtk("storescu", files=(CT,)).returncode == 0
    changed = dcmread(CT)
    changed.SpecificCharacterSet = "ISO_IR 192"
    changed.StudyDescription = "复查"
    changed_file = tmp_path / "changed.dcm"
    changed.save_as(changed_file)
    assert site.dcmtk("storescu", files=(str(changed_file),)).returncode == 0
    versions = [r.version for r in site.rows("SELECT version FROM instance ORDER BY version")]
    assert versions == [1, 2]
    assert site.scalar("SELECT num_instances FROM study") == 1


def test_an_instance_without_its_uids_fails_and_leaves_nothing(site: Site, tmp_path: Path) -> None:
    broken = dcmread(CT)
    del broken.StudyInstanceUID
    broken_file = tmp_path / "broken.dcm"
    broken.save_as(broken_file)
    result = site.dcmtk("storescu", files=(str(broken_file),))
    assert "0xc" in (result.stdout + result.stderr).lower() or result.returncode != 0
    assert site.scalar("SELECT count(*) FROM instance") == 0
    assert site.scalar("SELECT count(*) FROM study") == 0
    assert (
        not [p for p in (site.root / "dicom").rglob("*") if p.is_file()]
        if (site.root / "dicom").exists()
        else True
    )


def test_stable_study_is_completed_and_reconciled_by_study_uid(site: Site) -> None:
    assert site.dcmtk("storescu", files=(CT,)).returncode == 0
    stabiliser = Stabiliser(
        database=site.database,
        settings=site.settings,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=1),
    )
    assert stabiliser.run_once() == 1
    study = site.rows(
        "SELECT s.status, s.reading_status, s.completed_at, o.accession_number, "
        "o.status AS order_status, s.patient_id, s.demographics_conflict "
        "FROM study s JOIN exam_order o ON o.id = s.order_id"
    )[0]
    assert (study.status, study.reading_status) == ("complete", "awaiting_preliminary")
    assert (study.accession_number, study.order_status) == ("ACC001", "in_progress")
    assert study.completed_at is not None
    # The image's PatientID is the clinic's MRN; a romanised name is not held against 王小明.
    assert not study.demographics_conflict
    assert stabiliser.run_once() == 0


def test_unmatched_study_waits_for_a_person(site: Site) -> None:
    assert site.dcmtk("storescu", files=(MR,)).returncode == 0
    Stabiliser(
        database=site.database,
        settings=site.settings,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=1),
    ).run_once()
    row = site.rows("SELECT status, order_id, reading_status FROM study")[0]
    assert (row.status, row.order_id, row.reading_status) == ("complete", None, None)


def test_modality_worklist_lists_open_orders_of_the_calling_facility(
    site: Site, tmp_path: Path
) -> None:
    out = tmp_path / "mwl"
    out.mkdir()
    result = site.dcmtk(
        "findscu",
        "-W",
        "-X",
        "-od",
        str(out),
        "-k",
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        "-k",
        "PatientName",
        "-k",
        "PatientID",
        "-k",
        "AccessionNumber",
        "-k",
        "StudyInstanceUID",
    )
    assert result.returncode == 0, result.stderr
    answers = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert sorted(a.AccessionNumber for a in answers) == ["ACC001", "ACC002"]  # not cancelled
    first = next(a for a in answers if a.AccessionNumber == "ACC001")
    assert str(first.PatientName) == "王小明"
    assert first.PatientID == "1CT1"
    assert first.StudyInstanceUID == CT_STUDY
    step = first.ScheduledProcedureStepSequence[0]
    assert step.Modality == "CT" and step.ScheduledStationAETitle == "QLT01CT"

    other = site.dcmtk(
        "findscu",
        "-W",
        "-X",
        "-od",
        str(out),
        "-k",
        "ScheduledProcedureStepSequence[0].Modality=MR",
        "-k",
        "AccessionNumber",
    )
    assert other.returncode == 0
    assert len(list(out.glob("rsp*.dcm"))) == 2  # nothing new for MR


def test_study_root_find_returns_the_stored_study(site: Site, tmp_path: Path) -> None:
    assert site.dcmtk("storescu", files=(CT,)).returncode == 0
    out = tmp_path / "qr"
    out.mkdir()
    result = site.dcmtk(
        "findscu",
        "-S",
        "-X",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=1CT1",
        "-k",
        "StudyInstanceUID",
        "-k",
        "ModalitiesInStudy",
        "-k",
        "NumberOfStudyRelatedInstances",
    )
    assert result.returncode == 0, result.stderr
    [answer] = [dcmread(p) for p in out.glob("rsp*.dcm")]
    assert answer.StudyInstanceUID == CT_STUDY
    assert int(answer.NumberOfStudyRelatedInstances) == 1


def test_import_of_a_folder_goes_through_the_same_path(site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "history"
    (folder / "a").mkdir(parents=True)
    shutil.copy(CT, folder / "a" / "ct.dcm")
    shutil.copy(MR, folder / "mr.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    stored, refused = import_folder(
        site.archive,
        Stabiliser(database=site.database, settings=site.settings),
        database=site.database,
        folder=folder,
        facility_code="QL-T01",
        directory=site.directory,
        settings=site.settings,
    )
    assert (stored, refused) == (2, 1)
    statuses = {r.status for r in site.rows("SELECT status FROM study")}
    assert statuses == {"complete"}


def test_reconciliation_by_accession_and_by_patient_modality_and_day(
    site: Site, tmp_path: Path
) -> None:
    by_accession = dcmread(MR)
    by_accession.AccessionNumber = "ACC002"
    by_accession.StudyInstanceUID = "2.25.777"
    first = tmp_path / "accession.dcm"
    by_accession.save_as(first)
    by_patient = dcmread(CT)
    by_patient.StudyInstanceUID = "2.25.888"
    by_patient.SeriesInstanceUID = "2.25.8881"
    by_patient.SOPInstanceUID = "2.25.8882"
    by_patient.StudyDate = datetime.now(site.settings.zone).strftime("%Y%m%d")
    second = tmp_path / "patient.dcm"
    by_patient.save_as(second)
    with site.database.engine.begin() as connection:  # free ACC001's Study UID for this test
        connection.execute(
            text(
                "UPDATE exam_order SET study_instance_uid = '2.25.9' "
                "WHERE accession_number = 'ACC001'"
            )
        )
    assert site.dcmtk("storescu", files=(str(first), str(second))).returncode == 0
    Stabiliser(
        database=site.database,
        settings=site.settings,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=1),
    ).run_once()
    matched = {
        r.study_instance_uid: r.accession_number
        for r in site.rows(
            "SELECT s.study_instance_uid, o.accession_number FROM study s "
            "JOIN exam_order o ON o.id = s.order_id"
        )
    }
    # MRN 1CT1 + CT + today: the demographic path, confident enough (0.6 + 0.2 + 0.2).
    assert matched == {"2.25.777": "ACC002", "2.25.888": "ACC001"}


def test_match_score_weights() -> None:
    from integration.reconcile import Candidate, score

    candidate = Candidate(
        order_id=1,
        patient_identifiers=frozenset({"MRN1"}),
        patient_name="王小明",
        modality="CT",
        scheduled_day="2026-11-25",
    )
    assert (
        score(candidate, patient_id="MRN1", patient_name="", modality="CT", study_day="2026-11-25")
        == 1.0
    )
    assert (
        score(
            candidate,
            patient_id="OTHER",
            patient_name="王小明",
            modality="CT",
            study_day="2026-11-25",
        )
        == 0.75
    )  # below the default 0.8: a person decides
    assert (
        score(candidate, patient_id="MRN1", patient_name="", modality="MR", study_day="2026-11-24")
        == 0.6
    )


def test_retrieve_with_c_get_sends_the_stored_instances(site: Site, tmp_path: Path) -> None:
    assert site.dcmtk("storescu", files=(CT, MR)).returncode == 0
    out = tmp_path / "got"
    out.mkdir()
    result = site.dcmtk(
        "getscu",
        "-S",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={CT_STUDY}",
    )
    assert result.returncode == 0, result.stderr
    [retrieved] = [dcmread(p) for p in out.iterdir()]
    assert retrieved.SOPInstanceUID == dcmread(CT).SOPInstanceUID


def test_c_move_sends_to_a_known_destination_only(site: Site, tmp_path: Path) -> None:
    from tests.conftest import free_port

    assert site.dcmtk("storescu", files=(CT,)).returncode == 0
    out = tmp_path / "viewer"
    out.mkdir()
    port = free_port()
    with site.database.engine.begin() as connection:
        facility_id = connection.execute(text("SELECT id FROM facility")).scalar_one()
        connection.execute(
            insert(T["facility_ae_title"]).values(
                facility_id=facility_id,
                ae_title="QLVIEWER",
                station_name="viewer",
                modality="",
                host="127.0.0.1",
                port=port,
            )
        )
    site.directory.reload()
    viewer = subprocess.Popen(
        [str(DCMTK / "storescp"), "-aet", "QLVIEWER", "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        moved = site.dcmtk(
            "movescu",
            "-S",
            "-aem",
            "QLVIEWER",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={CT_STUDY}",
        )
        assert moved.returncode == 0, moved.stderr
        unknown = site.dcmtk(
            "movescu",
            "-S",
            "-aem",
            "NOWHERE",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={CT_STUDY}",
        )
        assert "0xa801" in (unknown.stdout + unknown.stderr).lower() or unknown.returncode != 0
    finally:
        viewer.terminate()
        viewer.wait(timeout=10)
    received = [dcmread(p) for p in out.iterdir()]
    assert [r.SOPInstanceUID for r in received] == [dcmread(CT).SOPInstanceUID]
