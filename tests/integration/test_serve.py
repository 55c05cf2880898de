"""`huren serve` as a real process: migrates, answers /healthz on 127.0.0.1, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from models.migrate import MIGRATIONS_DIR
from tests.conftest import free_port

HEAD = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))[-1][:4]


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env.update(
        HUREN_DATA_DIR=str(tmp_path / "var"),
        HUREN_BIND="127.0.0.1",
        HUREN_MLLP_PORT=str(free_port()),
        HUREN_DICOM_PORT=str(free_port()),
        **extra,
    )
    return env


def _huren(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "integration.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_healthz_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    hub = _huren("serve", env=_environment(tmp_path, HUREN_HTTP_PORT=str(port)))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert hub.poll() is None, hub.stdout.read() if hub.stdout else ""
                assert time.monotonic() < deadline, "hub did not answer within 60 s"
                time.sleep(0.2)
        assert status == 200
        assert body["status"] == "ok"
        assert body["database"] == "sqlite"
        assert body["schema"] == HEAD  # serve ran the migrations itself
        assert (tmp_path / "var" / "huren.db").exists()
    finally:
        hub.send_signal(signal.SIGTERM)
        output, _ = hub.communicate(timeout=30)
    assert hub.returncode == 0, output
    assert "hub ready" in output and "hub stopped" in output


def test_serve_only_listens_where_told(tmp_path: Path) -> None:
    """The default bind is loopback: the port is not open on other addresses."""
    port = free_port()
    hub = _huren("serve", env=_environment(tmp_path, HUREN_HTTP_PORT=str(port)))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                _get(f"http://127.0.0.1:{port}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
        if not listening.strip():
            pytest.skip("ss is not available to list listening sockets")
        local_addresses = {line.split()[3] for line in listening.splitlines()}
        assert local_addresses == {f"127.0.0.1:{port}"}
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.communicate(timeout=30)


def test_production_with_demo_secret_refuses_to_start(tmp_path: Path) -> None:
    hub = _huren(
        "serve",
        env=_environment(tmp_path, HUREN_ENV="production", HUREN_HTTP_PORT=str(free_port())),
    )
    output, _ = hub.communicate(timeout=60)
    assert hub.returncode == 2
    assert "HUREN_SECRET_KEY" in output


def test_bad_settings_exit_with_a_clear_message(tmp_path: Path) -> None:
    hub = _huren("db", "upgrade", env=_environment(tmp_path, HUREN_HTTP_PORT="eighty"))
    output, _ = hub.communicate(timeout=60)
    assert hub.returncode == 2
    assert "HUREN_HTTP_PORT" in output


def test_db_upgrade_then_current(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    before = _huren("db", "current", env=env)
    output, _ = before.communicate(timeout=60)
    assert before.returncode == 1 and "current (empty)" in output
    upgrade = _huren("db", "upgrade", env=env)
    output, _ = upgrade.communicate(timeout=60)
    assert upgrade.returncode == 0 and f"revision {HEAD}" in output
    after = _huren("db", "current", env=env)
    output, _ = after.communicate(timeout=60)
    assert after.returncode == 0 and f"current {HEAD}" in output


def test_demo_seed_if_empty_runs_once(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    first = _huren("demo", "seed", "--scale", "tiny", "--until", "2026-11-20", "--quiet", env=env)
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert "demo region seeded" in output
    again = _huren("demo", "seed", "--if-empty", "--quiet", env=env)
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and "skipped" in output
    refused = _huren("demo", "seed", "--quiet", env=env)
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2 and "not empty" in output
