"""The archive's answers when the disk fills at each step of storing: always 0xA700, no trace.

The disk-full test with a real tmpfs (test_disk_full.py) fills the disk while
the temporary file is written; here the file store fails later, while it
creates the study's folder or renames the file into place, which a real
disk does when the last block goes to a directory entry.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select, text

from dicom.errors import StorageFull
from dicom.instance import InstanceFacts, read_facts
from dicom.store import FileStore, StagedFile, StoredFile
from integration.archive import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS, Archive
from integration.database import Database
from integration.directory import Directory
from integration.settings import Settings
from models import metadata
from tests.hub_helpers import add_township

AET = "QLT09CT"


class _FullWhilePublishing(FileStore):
    """A file store whose disk fills up after staging: the rename (or its mkdir) fails."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.full = True

    def publish(self, staged: StagedFile, facts: InstanceFacts, *, version: int = 1) -> StoredFile:
        if self.full:
            raise StorageFull("file store full creating the study folder: [Errno 28]")
        return super().publish(staged, facts, version=version)


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Archive, _FullWhilePublishing, Database]:
    return _archive(tmp_path)


def _archive(
    tmp_path: Path, database_url: str = ""
) -> tuple[Archive, _FullWhilePublishing, Database]:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        add_township(connection, "QL-T09", ae_title=AET)
    files = _FullWhilePublishing(tmp_path)
    directory = Directory(database.engine)
    return (
        Archive(database=database, settings=settings, directory=directory, files=files),
        files,
        database,
    )


def test_a_disk_that_fills_while_publishing_gives_out_of_resources_and_leaves_nothing(
    archive: tuple[Archive, _FullWhilePublishing, Database],
) -> None:
    keeper, files, database = archive
    encoded = Path(get_testdata_file("CT_small.dcm")).read_bytes()  # type: ignore[arg-type]
    settings = Settings()
    facts = read_facts(encoded, zone=settings.zone)
    facility = keeper.caller_facility(AET)
    assert facility is not None

    assert keeper.store_facts(encoded, facts, facility=facility) == OUT_OF_RESOURCES
    with database.engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(metadata.tables["instance"]))
        assert rows.scalar_one() == 0
    assert not [p for p in (files.root / "dicom").rglob("*") if p.is_file()]

    files.full = False  # space freed: the re-send is stored
    assert keeper.store_facts(encoded, facts, facility=facility) == SUCCESS
    database.dispose()


def test_a_series_already_filed_under_another_study_is_refused_not_split(
    archive: tuple[Archive, _FullWhilePublishing, Database],
) -> None:
    """Found by the DICOM fuzzer: a template's Series UID reused in a new study.

    It used to be filed in the first study's series while counted in the
    second study, which then had instances but no series.
    """
    keeper, files, database = archive
    files.full = False
    codes = [_store_a_copy(keeper, study=study) for study in ("2.25.1001", "2.25.1002")]
    assert codes == [SUCCESS, CANNOT_UNDERSTAND]
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT t.study_instance_uid, t.num_series, t.num_instances, count(i.id) "
                "FROM study t LEFT JOIN instance i ON i.study_id = t.id GROUP BY t.id"
            )
        ).all()
    assert [tuple(row) for row in rows] == [("2.25.1001", 1, 1, 1)]
    assert len([p for p in (files.root / "dicom").rglob("*.dcm")]) == 1
    database.dispose()


@pytest.mark.postgres
def test_an_index_connection_lost_while_idle_does_not_refuse_the_next_instance(
    tmp_path: Path, postgres_url: str
) -> None:
    """The archive keeps its connection between batches; a server restart ends it unseen.
    The next instance must not be refused for it: the batch runs again on a new one."""
    keeper, files, database = _archive(tmp_path, postgres_url)
    files.full = False
    try:
        assert _store_a_copy(keeper) == SUCCESS
        with database.engine.connect() as connection:  # as a restart of PostgreSQL would
            ended = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert ended >= 1  # the archive's kept connection among them
        assert _store_a_copy(keeper) == SUCCESS
    finally:
        keeper.stop()
        database.dispose()


def _store_a_copy(keeper: Archive, *, study: str | None = None) -> int:
    """CT_small under a new SOP Instance UID (and ``study``, if given), from AET; the status."""
    facility = keeper.caller_facility(AET)
    assert facility is not None
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    if study is not None:
        dataset.StudyInstanceUID = study
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    encoded = buffer.getvalue()
    facts = read_facts(encoded, zone=Settings().zone)
    return keeper.store_facts(encoded, facts, facility=facility)
