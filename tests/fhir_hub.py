"""Shared by the FHIR API tests: a seeded demo region with API tokens, and the API served for real.

``seed_region`` runs ``huren demo seed --scale tiny`` and ``huren fhir publish
--days 7`` (the last week's studies and reports as FHIR resources) and ``huren
token create`` for a few clients, as an operator would. ``ServedApi`` copies such a region to a
folder of its own and serves ``build_http_app`` with a real ``FhirApi`` and a
started ``AuditWriter`` through uvicorn on a free 127.0.0.1 port, in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, select

from integration.api_clients import TokenChecker
from integration.audit_trail import AuditWriter
from integration.database import Database
from integration.fhir_api import FhirApi
from integration.http import build_http_app
from integration.settings import Settings
from models import metadata
from tests.conftest import free_port

RESOURCE = metadata.tables["fhir_resource"]

# client name -> SMART system scopes
CLIENTS = {
    "reader": "system/*.read",
    "writer": "system/*.read system/*.write",
    "patient-reader": "system/Patient.read",
    "report-reader": "system/DiagnosticReport.read",
    "imaging-writer": "system/*.rs system/ImagingStudy.cud",  # SMART v2 scopes
}


def huren_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUREN_")}
    env.update(HUREN_DATA_DIR=str(data_dir), HUREN_BIND="127.0.0.1", **extra)
    return env


def huren(data_dir: Path, *args: str, timeout: float = 300) -> str:
    """Run the ``huren`` CLI against ``data_dir``; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "integration.cli", *args],
        env=huren_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"huren {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def seed_region(data_dir: Path) -> dict[str, str]:
    """The demo region (tiny) with a week of FHIR resources; the tokens by client name."""
    output = huren(data_dir, "demo", "seed", "--scale", "tiny", "--quiet")
    assert "FHIR:" in output, output
    # the seed publishes 3 days; a week gives every search a few dozen resources to find
    output = huren(data_dir, "fhir", "publish", "--days", "7", "--quiet")
    assert "published" in output, output
    tokens = {}
    for client, scopes in CLIENTS.items():
        printed = huren(data_dir, "token", "create", "--client", client, "--scope", scopes)
        tokens[client] = printed.strip().splitlines()[-1]
        assert tokens[client].startswith("hrn_")
    return tokens


def copy_region(template: Path, target: Path) -> Path:
    """A private copy of a seeded data folder (the SQLite file with its WAL, if any)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("huren.db", "huren.db-wal", "huren.db-shm"):
        if (template / name).exists():
            shutil.copy2(template / name, target / name)
    return target


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class ServedApi:
    """The hub's HTTP app with its FHIR API on a real socket; ``base`` is the FHIR base URL."""

    data_dir: Path
    settings: Settings
    database: Database
    audit: AuditWriter
    server: _ThreadServer
    thread: threading.Thread

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}/fhir"

    @property
    def engine(self) -> Engine:
        return self.database.engine

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Accept": "application/fhir+json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, trust_env=False)

    def stored(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Every stored resource of a type, parsed, by logical id (straight from the table)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(RESOURCE.c.logical_id, RESOURCE.c.body).where(
                    RESOURCE.c.resource_type == resource_type
                )
            )
            return {row.logical_id: json.loads(row.body) for row in rows}


@contextlib.contextmanager
def served_api(
    data_dir: Path, *, max_body: int = 16 << 20, token_ttl: float = 0.0
) -> Iterator[ServedApi]:
    """Serve the region in ``data_dir`` until the block ends."""
    port = free_port()
    settings = Settings(
        data_dir=data_dir,
        database_url="",
        bind="127.0.0.1",
        http_port=port,
        fhir_max_body=max_body,
        upstream_fhir_url="",
    )
    database = Database.from_settings(settings)
    database.upgrade()
    audit = AuditWriter(database=database)
    audit.start()
    api = FhirApi(
        database=database,
        settings=settings,
        tokens=TokenChecker(database.engine, ttl=token_ttl),
        audit=audit,
    )
    server = _ThreadServer(
        uvicorn.Config(
            build_http_app(database=database, fhir=api),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, name="fhir-api-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        yield ServedApi(data_dir, settings, database, audit, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        audit.stop()
        database.dispose()


def search_all(
    client: httpx.Client, resource_type: str, params: list[tuple[str, str]], *, max_pages: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """Every match of a search, following ``next`` links; (match resources, Bundle.total)."""
    answer = client.get(f"/{resource_type}", params=[*params, ("_count", "200")])
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    total = bundle["total"]
    found: list[dict[str, Any]] = []
    for _ in range(max_pages):
        found += [
            entry["resource"]
            for entry in bundle.get("entry", [])
            if entry["search"]["mode"] == "match"
        ]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return found, total
        answer = client.get(following[0])
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
    raise AssertionError(f"more than {max_pages} pages")
