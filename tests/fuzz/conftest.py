"""The fuzz suite's shared pieces: a seeded hub, and a tally of cases per target.

Every target adds the cases it ran to the session tally; the terminal
summary prints one ``FUZZ <target>: <n> cases`` line each, so a CI log shows
how much bad input the build survived.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.hub_helpers import hub_environment, start_hub

TALLY = pytest.StashKey[dict[str, int]]()


@dataclass
class Tally:
    """Cases run per fuzz target, for the summary."""

    counts: dict[str, int]

    def add(self, target: str, cases: int = 1) -> None:
        self.counts[target] = self.counts.get(target, 0) + cases


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    return Tally(request.config.stash.setdefault(TALLY, {}))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    counts = config.stash.get(TALLY, {})
    if counts:
        terminalreporter.section("fuzz cases run")
        for target, cases in sorted(counts.items()):
            terminalreporter.write_line(f"FUZZ {target}: {cases} cases")


@dataclass
class FuzzHub:
    """`huren serve` over the tiny demo region, with an API token and a CT modality's AE."""

    process: subprocess.Popen[bytes]
    folder: Path
    http_port: int
    mllp_port: int
    dicom_port: int
    token: str
    modality_aet: str

    @property
    def database(self) -> Path:
        return self.folder / "huren.db"

    def query(self, sql: str, *parameters: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.database, timeout=30) as connection:
            return connection.execute(sql, parameters).fetchall()

    def alive(self) -> bool:
        return self.process.poll() is None


def _huren(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "integration.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="session")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHub]:
    folder = tmp_path_factory.mktemp("fuzz-hub")
    env = hub_environment(folder)
    _huren(env, "demo", "seed", "--scale", "tiny", "--quiet", "--fhir-days", "0")
    token = _huren(
        env, "token", "create", "--client", "fuzzer", "--scope", "system/*.read system/*.write"
    ).splitlines()[-1]
    with sqlite3.connect(folder / "huren.db") as connection:
        (aet,) = connection.execute(
            "SELECT ae_title FROM facility_ae_title WHERE modality = 'CT' ORDER BY id LIMIT 1"
        ).fetchone()
    http_port, mllp_port, dicom_port = free_port(), free_port(), free_port()
    process = start_hub(folder, http_port=http_port, mllp_port=mllp_port, dicom_port=dicom_port)
    hub = FuzzHub(process, folder, http_port, mllp_port, dicom_port, token, str(aet))
    try:
        yield hub
    finally:
        assert process.poll() is None, "the hub died under the fuzzer"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
