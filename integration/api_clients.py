"""Bearer tokens for systems calling the FHIR API (and CDS services): make, check, revoke.

A token is shown once when made and kept only as its SHA-256. Scopes follow
SMART on FHIR's system scopes: ``system/<Type|*>.<read|write|*>`` (v1) and
``system/<Type|*>.<rs|cud|cruds>`` (v2).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.engine import Engine

from models import metadata
from models.errors import Conflict, NotFound, ValidationError

CLIENT = metadata.tables["api_client"]
TOKEN_PREFIX = "hrn_"
_SCOPE = re.compile(r"system/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|[cruds]+)")

Access = Literal["read", "write"]


@dataclass(frozen=True)
class Grant:
    """Who a valid token belongs to and what it may do."""

    client: str
    scopes: frozenset[str]

    def allows(self, resource_type: str, access: Access) -> bool:
        for scope in self.scopes:
            match = _SCOPE.fullmatch(scope)
            if match is None or match.group(1) not in ("*", resource_type):
                continue
            verbs = match.group(2)
            if verbs == "*" or verbs == access:
                return True
            if verbs not in ("read", "write"):
                needed = {"read": "rs", "write": "cud"}[access]
                if set(needed) <= set(verbs):
                    return True
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(text.split())
    if not scopes:
        raise ValidationError("give at least one scope, e.g. 'system/*.read'", field="scope")
    for scope in scopes:
        if _SCOPE.fullmatch(scope) is None:
            raise ValidationError(
                f"scope {scope!r} is not a SMART system scope such as system/*.read "
                "or system/ImagingStudy.write",
                field="scope",
            )
    return scopes


def create_client(connection: Connection, *, name: str, scopes: str, now: datetime) -> str:
    """Register ``name`` with ``scopes``; returns the token (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationError("a client name has 1 to 64 characters", field="client")
    granted = parse_scopes(scopes)
    known = connection.execute(select(CLIENT.c.id).where(CLIENT.c.name == name)).first()
    if known is not None:
        raise Conflict(f"client {name!r} exists; revoke it first or choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    connection.execute(
        insert(CLIENT).values(
            name=name,
            token_sha256=token_digest(token),
            scopes=" ".join(sorted(granted)),
            created_at=now,
            revoked_at=None,
            last_used_at=None,
        )
    )
    return token


def revoke_client(connection: Connection, *, name: str, now: datetime) -> None:
    done = connection.execute(
        update(CLIENT)
        .where(CLIENT.c.name == name, CLIENT.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if done.rowcount == 0:
        raise NotFound(f"no active client named {name!r}")


def list_clients(connection: Connection) -> Iterable[tuple[str, str, datetime, datetime | None]]:
    rows = connection.execute(
        select(CLIENT.c.name, CLIENT.c.scopes, CLIENT.c.created_at, CLIENT.c.revoked_at).order_by(
            CLIENT.c.name
        )
    )
    return [(row.name, row.scopes, row.created_at, row.revoked_at) for row in rows]


class TokenChecker:
    """Checks bearer tokens against the client table, remembering answers for a short while.

    The cache keeps reads off the database on every request; a revocation
    takes effect within ``ttl`` seconds.
    """

    def __init__(self, engine: Engine, *, ttl: float = 30.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, Grant | None]] = {}

    def check(self, token: str) -> Grant | None:
        digest = token_digest(token)
        now = time.monotonic()
        with self._lock:
            cached = self._known.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._engine.connect() as connection:
            row = connection.execute(
                select(CLIENT.c.name, CLIENT.c.scopes).where(
                    CLIENT.c.token_sha256 == digest, CLIENT.c.revoked_at.is_(None)
                )
            ).first()
        grant = (
            None if row is None else Grant(client=row.name, scopes=frozenset(row.scopes.split()))
        )
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (now, grant)
        return grant
