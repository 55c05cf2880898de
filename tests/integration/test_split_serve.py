"""A split hub (`HUREN_SERVE_SPLIT=true`): a supervisor and one `huren serve --role` process per
role, on one database. Every protocol answers from its own process, SIGTERM stops them in
reverse order, a role that dies takes the hub down (for the service manager to restart it
whole), and roles whose supervisor is killed stop by themselves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from integration.database import Database
from models import metadata
from models.enums import StudyStatus
from tests.conftest import free_port
from tests.hub_helpers import start_hub, township_region, wait_until

T = metadata.tables
STORESCU = "/usr/bin/storescu"
ROLES = ["background", "mllp", "dicom", "http"]
ORM = (
    "MSH|^~\\&|HIS|QL-T01|HUREN|HUREN|20261125093000||ORM^O01|SPLIT0001|P|2.3.1|||||UNICODE UTF-8\r"
    "PID|1||530102197001010133^^^^RI~SPLIT1^^^QL-T01^MR||分^进程||19700101|M\r"
    "PV1|1|O\r"
    "ORC|NW|SPLITP1||||||^^^20261125100000||20261125093000|||^王医生\r"
    "OBR|1|SPLITP1||CT-CHEST-PLAIN^胸部CT平扫^HUREN|R|20261125093000|||||||咳嗽|||"
    "^王医生||SPLITA1|||||CT\r"
)


@dataclass
class SplitHub:
    supervisor: subprocess.Popen[bytes]
    database: Database
    http_port: int
    mllp_port: int
    dicom_port: int
    log: Path

    def roles(self) -> dict[str, int]:
        """Role name -> pid of the supervisor's children, read from /proc."""
        found = {}
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes().split(b"\0")
                parent = int((cmdline.parent / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.supervisor.pid and b"--role" in argv:
                found[argv[argv.index(b"--role") + 1].decode()] = int(cmdline.parent.name)
        return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def split_hub(tmp_path: Path, database_url: str) -> Iterator[SplitHub]:
    database, _ = township_region(tmp_path / "hub", database_url, code="QL-T01", ae_title="QLT01CT")
    http_port, mllp_port, dicom_port = free_port(), free_port(), free_port()
    log = tmp_path / "hub.log"
    supervisor = start_hub(
        tmp_path / "hub",
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        settings={
            "database_url": database_url,
            "serve_split": "true",
            "study_quiet_seconds": "1",
            "stabiliser_poll_seconds": "0.2",
        },
        log=log,
    )
    hub = SplitHub(supervisor, database, http_port, mllp_port, dicom_port, log)
    started = hub.roles()  # read now: once the supervisor is gone they are no longer its own
    try:
        yield hub
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(30)
        for pid in started.values():
            with contextlib.suppress(ProcessLookupError):
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        database.dispose()


def _ack(port: int, message: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"\x0b" + message.encode() + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = connection.recv(65536)
            assert chunk, "hub closed the connection without an ACK"
            answer += chunk
    return answer.split(b"MSA|")[1].split(b"|")[0].decode()


@pytest.mark.slow
def test_each_role_serves_from_its_own_process_and_sigterm_stops_them_in_reverse(
    split_hub: SplitHub, tmp_path: Path
) -> None:
    roles = split_hub.roles()
    assert sorted(roles) == sorted(ROLES)
    assert len({split_hub.supervisor.pid, *roles.values()}) == 5

    assert _ack(split_hub.mllp_port, ORM) == "AA"  # the mllp process
    ct = dcmread(str(get_testdata_file("CT_small.dcm", download=False)))
    ct.StudyInstanceUID, ct.SeriesInstanceUID = generate_uid(), generate_uid()
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ct.AccessionNumber = "SPLITA1"
    path = tmp_path / "ct.dcm"
    ct.save_as(path, enforce_file_format=True)
    storescu = [STORESCU, "-aet", "QLT01CT", "-aec", "HUREN", "127.0.0.1"]
    sent = subprocess.run(
        [*storescu, str(split_hub.dicom_port), str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr  # the dicom process

    study = T["study"]

    def matched() -> bool:  # the background process's stabiliser completes and reconciles it
        with split_hub.database.engine.connect() as connection:
            row = connection.execute(
                select(study.c.status, study.c.order_id).where(
                    study.c.study_instance_uid == ct.StudyInstanceUID
                )
            ).first()
        return row is not None and row.status == StudyStatus.complete and row.order_id is not None

    wait_until(matched, 30, "the study complete and matched to its order")
    url = f"http://127.0.0.1:{split_hub.http_port}/fhir/metadata"
    with urllib.request.urlopen(url, timeout=10) as response:  # the http process
        assert json.loads(response.read())["resourceType"] == "CapabilityStatement"

    split_hub.supervisor.send_signal(signal.SIGTERM)
    assert split_hub.supervisor.wait(60) == 0
    assert not any(_alive(pid) for pid in roles.values())
    log = split_hub.log.read_text()
    assert "huren.supervisor: hub ready, split:" in log
    stopped = [log.index(f"[{role}] huren.hub: hub stopped") for role in reversed(ROLES)]
    assert stopped == sorted(stopped)  # http first, background (the audit sealer) last
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_role_that_dies_stops_the_hub_with_an_error(split_hub: SplitHub) -> None:
    roles = split_hub.roles()
    os.kill(roles["dicom"], signal.SIGKILL)
    assert split_hub.supervisor.wait(60) == 1
    assert not any(_alive(pid) for pid in roles.values())
    assert "the dicom process exited with -9; stopping the hub" in split_hub.log.read_text()


@pytest.mark.slow
def test_roles_stop_by_themselves_when_the_supervisor_is_killed(split_hub: SplitHub) -> None:
    roles = split_hub.roles()
    split_hub.supervisor.kill()
    split_hub.supervisor.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in roles.values()):
        assert time.monotonic() < deadline, "role processes outlived their supervisor"
        time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", split_hub.mllp_port), timeout=2).close()
