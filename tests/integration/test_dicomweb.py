"""WADO-RS retrieve: what dcmtk's storescu sent comes back byte for byte, to token holders only."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import text

from integration.database import Database
from integration.settings import Settings
from tests.conftest import free_port
from tests.hub_helpers import add_township, hub_environment, start_hub

STORESCU = Path("/usr/bin/storescu")
pytestmark = pytest.mark.skipif(not STORESCU.exists(), reason="Debian's dcmtk is not installed")


def _token(folder: Path, scope: str, client: str, database_url: str = "") -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "integration.cli",
            "token",
            "create",
            "--client",
            client,
            "--scope",
            scope,
        ],
        env=hub_environment(folder, database_url=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _parts(answer: httpx.Response) -> list[bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + answer.headers["content-type"].encode() + b"\r\n\r\n" + answer.content
    )
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert all(part.get_content_type() == "application/dicom" for part in parts)
    return [part.get_payload(decode=True) for part in parts]  # type: ignore[misc]


def test_stored_instances_come_back_as_sent(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        add_township(connection, "QL-T09", ae_title="QLCT09")
    database.dispose()
    reader = _token(tmp_path, "system/*.read", "viewer", database_url)
    outsider = _token(tmp_path, "system/Patient.read", "registry", database_url)
    sources = [
        Path(str(get_testdata_file(name, download=False)))
        for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    http_port, dicom_port = free_port(), free_port()
    hub = start_hub(
        tmp_path,
        http_port=http_port,
        dicom_port=dicom_port,
        settings={"database_url": database_url},
    )
    try:
        sent = subprocess.run(
            [
                str(STORESCU),
                "-aet",
                "QLCT09",
                "-aec",
                "HUREN",
                "127.0.0.1",
                str(dicom_port),
                *map(str, sources),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TCP_NODELAY": "1"},
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        base = f"http://127.0.0.1:{http_port}/dicomweb"
        ct = dcmread(sources[0])
        study = f"{base}/studies/{ct.StudyInstanceUID}"
        headers = {
            "Authorization": f"Bearer {reader}",
            "Accept": 'multipart/related; type="application/dicom"',
        }
        with httpx.Client(timeout=30) as client:
            whole = client.get(study, headers=headers)
            assert whole.status_code == 200, whole.text
            (only,) = _parts(whole)
            stored = dcmread(io.BytesIO(only))
            assert stored.SOPInstanceUID == ct.SOPInstanceUID
            assert stored.PixelData == ct.PixelData
            one = client.get(
                f"{study}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}",
                headers=headers,
            )
            assert _parts(one) == [only]
            assert client.get(f"{base}/studies/1.2.3.4", headers=headers).status_code == 404
            assert client.get(study).status_code == 401
            forbidden = client.get(
                study, headers={**headers, "Authorization": f"Bearer {outsider}"}
            )
            assert forbidden.status_code == 403
            wrong = client.get(study, headers={**headers, "Accept": "application/json"})
            assert wrong.status_code == 406
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=60)
    database = Database.from_settings(settings)
    with database.engine.connect() as connection:
        audited = connection.execute(
            text(
                "SELECT actor, entity_type, entity_id FROM audit_event WHERE detail LIKE 'WADO-RS%'"
            )
        ).all()
    database.dispose()
    assert [tuple(row) for row in audited] == [("viewer", "ImagingStudy", ct.StudyInstanceUID)] * 2
