"""Fixtures for the DICOM adapter: a running DicomServer on 127.0.0.1, port 0, with fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dicom_helpers import (
    CLINIC_AET,
    HOST,
    SERVER_AET,
    ZONE,
    FileArchive,
    KnownCallers,
    ListWorklist,
    MemoryStorage,
    sample,
    worklist_item,
)

from dicom.server import DicomServer

ServerFactory = Callable[..., DicomServer]

HERE = Path(__file__).resolve().parent

# pydicom warns (and logs) when it meets a value its VR does not allow, then carries on
# with the text; in production that is a log line. Tests feed such values on purpose.
INVALID_VALUE = "ignore:Invalid value for VR:UserWarning:pydicom"
TOO_LONG = "ignore:The value length:UserWarning:pydicom"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.filterwarnings(INVALID_VALUE))
            item.add_marker(pytest.mark.filterwarnings(TOO_LONG))


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def callers() -> KnownCallers:
    return KnownCallers({CLINIC_AET, "VIEWER", "STORESCU", "FINDSCU", "MOVESCU", "GETSCU"})


@pytest.fixture
def worklist() -> ListWorklist:
    return ListWorklist([worklist_item()])


@pytest.fixture
def archive() -> FileArchive:
    return FileArchive([sample("CT_small.dcm"), sample("MR_small_jp2klossless.dcm")])


@pytest.fixture
def make_server(
    storage: MemoryStorage, callers: KnownCallers, worklist: ListWorklist, archive: FileArchive
) -> Iterator[ServerFactory]:
    """Start servers on free ports; all are stopped at the end of the test."""
    started: list[DicomServer] = []

    def make(**options: object) -> DicomServer:
        settings: dict[str, object] = {
            "ae_title": SERVER_AET,
            "host": HOST,
            "port": 0,
            "storage": storage,
            "worklist": worklist,
            "query": archive,
            "callers": callers,
            "acse_timeout": 10,
            "dimse_timeout": 20,
            "network_timeout": 20,
            "zone": ZONE,
        }
        settings.update(options)
        server = DicomServer(**settings)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop(grace=2)


@pytest.fixture
def server(make_server: ServerFactory) -> DicomServer:
    return make_server()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for dcmtk's query files and extracted responses."""
    path = tmp_path / "dcmtk"
    path.mkdir()
    return path
