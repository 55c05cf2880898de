"""Two hubs: a county pushes its FHIR resources to a second hub acting as the province.

The province is down when the county starts, comes up later, and the county
is killed with SIGKILL while it delivers. Afterwards the province must hold
every resource of the county exactly once, with references that resolve.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.hub_helpers import hub_environment, start_hub

pytestmark = pytest.mark.slow

TYPES = (
    "Patient",
    "Organization",
    "ServiceRequest",
    "Endpoint",
    "ImagingStudy",
    "DiagnosticReport",
)
FAST_RETRIES = {
    "outbox_backoff_seconds": "0.2",
    "outbox_backoff_max_seconds": "1",
    "outbox_poll_seconds": "0.2",
    "outbox_max_attempts": "1000",
}


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


def _query(database: Path, sql: str, *parameters: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(database, timeout=30) as connection:
        return connection.execute(sql, parameters).fetchall()


def _outbox(database: Path) -> dict[str, int]:
    rows = _query(database, "SELECT status, count(*) FROM outbox WHERE channel='fhir' GROUP BY 1")
    return {str(status): int(count) for status, count in rows}


def _business_keys(database: Path, resource_type: str) -> list[tuple[object, ...]]:
    """One key per resource: its identifiers (system|value), sorted, as a string."""
    return _query(
        database,
        "SELECT group_concat(t.system || '|' || t.value, ' ') FROM fhir_resource r "
        "JOIN (SELECT * FROM fhir_token WHERE parameter='identifier' "
        "      ORDER BY system, value) t ON t.resource_id = r.id "
        "WHERE r.resource_type = ? GROUP BY r.id ORDER BY 1",
        resource_type,
    )


def _wait(condition: object, *, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_county_pushes_everything_exactly_once_through_an_outage_and_a_kill(
    tmp_path: Path,
) -> None:
    province_dir, county_dir = tmp_path / "province", tmp_path / "county"
    province_dir.mkdir()
    county_dir.mkdir()
    province_port, county_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{province_port}/fhir"

    province_env = hub_environment(province_dir)
    _huren(province_env, "db", "upgrade")
    token = _huren(
        province_env, "token", "create", "--client", "county-ql", "--scope", "system/*.write"
    ).strip()

    county_settings = {"upstream_fhir_url": upstream, "upstream_fhir_token": token}
    county_env = hub_environment(county_dir, **county_settings)
    _huren(county_env, "demo", "seed", "--scale", "tiny", "--quiet", "--fhir-days", "20")
    county_db, province_db = county_dir / "huren.db", province_dir / "huren.db"
    queued = _outbox(county_db).get("pending", 0)
    assert queued > 50, "the seed's publishing should have queued bundles for the province"

    county = start_hub(county_dir, http_port=county_port, settings=county_settings | FAST_RETRIES)
    province = None
    try:
        # The province is down: the first bundle fails and waits for its retry, nothing is lost.
        _wait(
            lambda: _query(county_db, "SELECT max(attempts) FROM outbox")[0][0] >= 2,
            limit=60,
            what="failed delivery attempts while the province is down",
        )
        assert (
            _outbox(county_db).get("pending", 0) + _outbox(county_db).get("in_flight", 0) == queued
        )
        errors = _query(county_db, "SELECT last_error FROM outbox WHERE attempts > 0 LIMIT 1")
        assert errors and "Connect" in str(errors[0][0])

        province = start_hub(province_dir, http_port=province_port)
        _wait(
            lambda: _query(province_db, "SELECT count(*) FROM fhir_resource")[0][0] >= 10,
            limit=60,
            what="the first deliveries to the province",
        )
        os.kill(county.pid, signal.SIGKILL)  # in the middle of delivering
        county.wait(timeout=30)
        left = _outbox(county_db)
        assert left.get("pending", 0) + left.get("in_flight", 0) > 0, "killed too late to matter"

        county = start_hub(
            county_dir, http_port=county_port, settings=county_settings | FAST_RETRIES
        )
        _wait(
            lambda: set(_outbox(county_db)) == {"delivered"},
            limit=180,
            what="the county's outbox to drain after the restart",
        )
    finally:
        for hub in (county, province):
            if hub is not None and hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                hub.wait(timeout=60)

    assert _outbox(county_db) == {"delivered": queued}
    for resource_type in TYPES:
        county_keys = _business_keys(county_db, resource_type)
        province_keys = _business_keys(province_db, resource_type)
        assert province_keys == county_keys, resource_type  # every one, and each once
    assert _query(province_db, "SELECT DISTINCT origin FROM fhir_resource") == [("county-ql",)]
    # References were rewritten to the province's own ids, and they resolve there.
    dangling = _query(
        province_db,
        "SELECT count(*) FROM fhir_resource r WHERE r.resource_type = 'DiagnosticReport' AND "
        "NOT EXISTS (SELECT 1 FROM fhir_resource s WHERE s.resource_type = 'ImagingStudy' AND "
        "json_extract(r.body, '$.imagingStudy[0].reference') = 'ImagingStudy/' || s.logical_id)",
    )
    assert dangling == [(0,)]
    subjects = _query(
        province_db,
        "SELECT count(*) FROM fhir_resource r WHERE r.resource_type = 'ImagingStudy' AND "
        "r.subject_id NOT IN (SELECT logical_id FROM fhir_resource WHERE resource_type='Patient')",
    )
    assert subjects == [(0,)]
    # Replays after the kill changed nothing: every province resource is at version 1,
    # apart from those the county itself changed (none here).
    assert _query(province_db, "SELECT max(version_id) FROM fhir_resource") == [(1,)]
