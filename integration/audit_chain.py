"""Tamper evidence: the audit trail and the report revisions chained by SHA-256.

Audit rows are written from many places at once (the API's group-committing
writer, portal handlers, logins, several hub processes on one PostgreSQL), so
hashing them as they are inserted would need one global lock on every write.
Instead a *sealer* chains them afterwards, in id order: each row's ``hash`` is
SHA-256 over its previous link and a canonical JSON of its content (including
the id of the row it follows), and ``previous_hash`` keeps that link. Sealing
is deterministic, so two sealers racing compute the same values and the
``hash = ''`` guard makes the second one's writes no-ops.

On PostgreSQL ids come from a sequence and transactions commit out of order:
a row with a smaller id may become visible after a larger one was sealed. The
sealer therefore first takes a brief ``SHARE ROW EXCLUSIVE`` lock (which waits
for every transaction that has inserted audit rows) just to read the highest
id; every id up to it is then final, committed or rolled back for good. An id
missing below that horizon was never committed: the seal records which row the
next one follows, so ``verify`` tells such a gap (chain intact) from a deletion
after sealing (chain broken).

Report revisions form one chain per report, by version: a revision is written
under the report's own row, so its hash is computed as it is inserted
(``revision_seal``). Rows written in bulk (the demo) or before this existed are
sealed by the same sealer. ``report.version`` names the last version, so a
deleted latest revision shows too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError

from integration.database import log_failed_round
from models import metadata

log = logging.getLogger("huren.audit")

GENESIS = "0" * 64  # the previous link of the first row of a chain
AUDIT = metadata.tables["audit_event"]
REVISION = metadata.tables["report_revision"]
REPORT = metadata.tables["report"]
_AUDIT_CONTENT = (
    "id",
    "recorded_at",
    "action",
    "outcome",
    "actor",
    "actor_user_id",
    "facility_id",
    "source_address",
    "entity_type",
    "entity_id",
    "patient_id",
    "detail",
)
_REVISION_CONTENT = (
    "report_id",
    "version",
    "status",
    "findings",
    "impression",
    "editor_id",
    "reason",
    "created_at",
)
_SEALER_LOCK = 0x4855_5245_4E41  # pg advisory lock key: one sealer at a time across hubs


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite through a Core select of the raw column
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, Enum):
        return value.value
    return value


def canonical(values: Mapping[Any, Any], names: Iterable[str], **extra: object) -> str:
    """One stable text for a row's content: sorted keys, UTC ISO times, enum values."""
    content = {name: _plain(values[name]) for name in names}
    content.update({name: _plain(value) for name, value in extra.items()})
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def link(previous_hash: str, content: str) -> str:
    return hashlib.sha256(f"{previous_hash}\n{content}".encode()).hexdigest()


def audit_hash(row: Mapping[Any, Any], *, previous_id: int | None, previous_hash: str) -> str:
    return link(previous_hash, canonical(row, _AUDIT_CONTENT, previous_id=previous_id))


def revision_hash(row: Mapping[Any, Any], *, previous_hash: str) -> str:
    return link(previous_hash, canonical(row, _REVISION_CONTENT))


def revision_seal(
    row: Mapping[str, object], *, previous_content_hash: str | None
) -> tuple[str, str]:
    """(previous_hash, content_hash) of a revision about to be inserted, given the content hash
    of the version before it (None for version 1); ('', '') while that one is unsealed, and
    the sealer then seals both, in order."""
    if int(row["version"]) <= 1:  # type: ignore[call-overload]
        previous = GENESIS
    elif previous_content_hash:
        previous = previous_content_hash
    else:
        return "", ""
    return previous, revision_hash(row, previous_hash=previous)


# --------------------------------------------------------------------------- sealing


@dataclass(frozen=True)
class Sealed:
    audit_rows: int
    revisions: int
    revision_floor: int = 0  # every revision up to this id is sealed, or cannot be (yet)


def seal(engine: Engine, *, batch: int = 2000, revision_floor: int = 0) -> Sealed:
    """Chain every unsealed audit row and report revision; safe beside writers and sealers.

    ``revision_floor`` skips revisions up to that id, as a previous round left
    them (the background sealer passes its own, so a quiet round reads little).
    """
    audit_rows = revisions = 0
    horizon = _audit_horizon(engine)
    if horizon is not None:
        while True:
            done = _seal_audit_batch(engine, horizon=horizon, batch=batch)
            audit_rows += done
            if done < batch:
                break
    with engine.connect() as connection:
        top = int(connection.execute(select(func.max(REVISION.c.id))).scalar_one_or_none() or 0)
    after, stuck = (0, 0), top + 1
    while True:  # keyset paging: a revision whose predecessor is gone cannot stall the rest
        looked, done, after, lowest = _seal_revision_batch(
            engine, after=after, floor=revision_floor, top=top, batch=batch
        )
        revisions += done
        stuck = min(stuck, lowest)
        if looked < batch:
            break
    return Sealed(audit_rows, revisions, max(revision_floor, min(top, stuck - 1)))


def _audit_horizon(engine: Engine) -> int | None:
    """The highest audit id below which no transaction is still inserting; None: try later."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL lock_timeout = '200ms'"))
            try:
                connection.execute(text("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE"))
            except DBAPIError:  # a long writer holds it: seal next round rather than stall writes
                log.debug("audit sealer: table busy, sealing later")
                return None
        # SQLite has one writer at a time, so every id it handed out is committed or gone.
        highest = connection.execute(select(func.max(AUDIT.c.id))).scalar_one_or_none()
    return int(highest) if highest is not None else None


def _seal_audit_batch(engine: Engine, *, horizon: int, batch: int) -> int:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEALER_LOCK})
        head = connection.execute(
            select(AUDIT.c.id, AUDIT.c.hash)
            .where(AUDIT.c.hash != "")
            .order_by(AUDIT.c.id.desc())
            .limit(1)
        ).first()
        previous_id, previous_hash = (int(head.id), str(head.hash)) if head else (None, GENESIS)
        rows = connection.execute(
            select(*(AUDIT.c[name] for name in _AUDIT_CONTENT))
            .where(AUDIT.c.hash == "", AUDIT.c.id > (previous_id or 0), AUDIT.c.id <= horizon)
            .order_by(AUDIT.c.id)
            .limit(batch)
        ).mappings()
        seals: list[dict[str, object]] = []
        for row in rows:
            digest = audit_hash(row, previous_id=previous_id, previous_hash=previous_hash)
            seals.append({"row": row["id"], "previous": previous_hash, "digest": digest})
            previous_id, previous_hash = int(row["id"]), digest
        if seals:
            connection.execute(
                update(AUDIT)
                .where(AUDIT.c.id == bindparam("row"), AUDIT.c.hash == "")
                .values(previous_hash=bindparam("previous"), hash=bindparam("digest")),
                seals,
            )
    return len(seals)


def _seal_revision_batch(
    engine: Engine, *, after: tuple[int, int], floor: int, top: int, batch: int
) -> tuple[int, int, tuple[int, int], int]:
    """(rows looked at, rows sealed, key of the last one, lowest id left unsealed)."""
    with engine.begin() as connection:
        rows = list(
            connection.execute(
                select(REVISION.c.id, *(REVISION.c[name] for name in _REVISION_CONTENT))
                .where(
                    REVISION.c.id > floor,
                    REVISION.c.id <= top,
                    REVISION.c.content_hash == "",
                    tuple_(REVISION.c.report_id, REVISION.c.version) > tuple_(*after),
                )
                .order_by(REVISION.c.report_id, REVISION.c.version)
                .limit(batch)
            ).mappings()
        )
        if not rows:
            return 0, 0, after, top + 1
        reports = sorted({int(row["report_id"]) for row in rows})
        known: dict[tuple[int, int], str] = {}
        for start in range(0, len(reports), 500):
            for found in connection.execute(
                select(REVISION.c.report_id, REVISION.c.version, REVISION.c.content_hash).where(
                    REVISION.c.report_id.in_(reports[start : start + 500]),
                    REVISION.c.content_hash != "",
                )
            ):
                known[(found.report_id, found.version)] = found.content_hash
        seals: list[dict[str, object]] = []
        lowest = top + 1
        for row in rows:
            report_id, version = int(row["report_id"]), int(row["version"])
            previous = GENESIS if version == 1 else known.get((report_id, version - 1))
            if previous is None:  # an earlier version is missing or unsealed: a later round
                lowest = min(lowest, int(row["id"]))
                continue
            digest = revision_hash(row, previous_hash=previous)
            known[(report_id, version)] = digest
            seals.append({"row": row["id"], "previous": previous, "digest": digest})
        if seals:
            connection.execute(
                update(REVISION)
                .where(REVISION.c.id == bindparam("row"), REVISION.c.content_hash == "")
                .values(previous_hash=bindparam("previous"), content_hash=bindparam("digest")),
                seals,
            )
    last = rows[-1]
    return len(rows), len(seals), (int(last["report_id"]), int(last["version"])), lowest


class Sealer:
    """`huren serve`'s background step: seal what was written since the last round."""

    def __init__(self, *, engine: Engine, interval: float) -> None:
        self._engine = engine
        self._interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        floor = 0  # revisions are sealed as they are written: after one full pass, read only new
        while not stop.is_set():
            try:
                sealed = await asyncio.to_thread(seal, self._engine, revision_floor=floor)
                floor = sealed.revision_floor
                if sealed.audit_rows or sealed.revisions:
                    log.debug(
                        "sealed %d audit rows, %d revisions", sealed.audit_rows, sealed.revisions
                    )
            except Exception as exc:  # the next round seals them; verify shows what waits
                log_failed_round(log, "audit sealing failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
        with contextlib.suppress(Exception):  # a last round, so a clean stop leaves all sealed
            await asyncio.to_thread(seal, self._engine, revision_floor=floor)


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Problem:
    table: str  # audit_event | report_revision
    kind: str  # edited | broken_link | deleted | unsealed_behind | missing_version | unsealed
    row: str  # the id (audit) or report:version (revision) where it shows
    detail: str

    def describe(self) -> str:
        return f"{self.table} {self.row}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    audit_rows: int
    audit_sealed: int
    head_id: int | None
    head_hash: str
    never_committed: tuple[tuple[int, int], ...]  # id ranges skipped at sealing (rolled back)
    reports: int
    revisions: int
    revisions_sealed: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(connection: Connection, *, limit: int = 1000) -> Verification:
    """Recompute both chains; up to ``limit`` problems are listed (the first breaks first)."""
    problems: list[Problem] = []
    audit = _verify_audit(connection, problems)
    revisions = _verify_revisions(connection, problems)
    return Verification(*audit, *revisions, problems=tuple(problems[:limit]))


def _verify_audit(
    connection: Connection, problems: list[Problem]
) -> tuple[int, int, int | None, str, tuple[tuple[int, int], ...]]:
    total = sealed = waiting = 0
    previous_id: int | None = None
    previous_hash = GENESIS
    skipped: list[tuple[int, int]] = []
    columns = (*(AUDIT.c[name] for name in _AUDIT_CONTENT), AUDIT.c.previous_hash, AUDIT.c.hash)
    result = connection.execution_options(yield_per=5000).execute(
        select(*columns).order_by(AUDIT.c.id)
    )
    for row in result.mappings():
        total += 1
        row_id = int(row["id"])
        if not row["hash"]:
            waiting += 1
            continue
        sealed += 1
        if waiting:  # unsealed rows sit below a sealed one: the sealer never skips a row
            problems.append(
                Problem(
                    "audit_event",
                    "unsealed_behind",
                    str(row_id),
                    f"{waiting} unsealed rows lie before this sealed one",
                )
            )
            waiting = 0
        stored_previous = str(row["previous_hash"])
        expected = audit_hash(row, previous_id=previous_id, previous_hash=previous_hash)
        if stored_previous != previous_hash or row["hash"] != expected:
            own = audit_hash(row, previous_id=previous_id, previous_hash=stored_previous)
            gap = row_id - (previous_id or 0) - 1
            if stored_previous == previous_hash and row["hash"] != own:
                problems.append(
                    Problem("audit_event", "edited", str(row_id), "content differs from its seal")
                )
            elif gap > 0 and _follows_missing(row, stored_previous, previous_id):
                first, last = (previous_id or 0) + 1, row_id - 1
                problems.append(
                    Problem(
                        "audit_event",
                        "deleted",
                        str(row_id),
                        f"ids {first}..{last} were deleted after sealing"
                        if last > first
                        else f"id {first} was deleted after sealing",
                    )
                )
            else:
                problems.append(
                    Problem(
                        "audit_event",
                        "broken_link",
                        str(row_id),
                        f"does not follow id {previous_id}: that row or this one was altered",
                    )
                )
        elif previous_id is not None and row_id > previous_id + 1:
            skipped.append((previous_id + 1, row_id - 1))
        previous_id, previous_hash = row_id, str(row["hash"])
    return total, sealed, previous_id, previous_hash if previous_id else "", tuple(skipped)


def _follows_missing(row: Mapping[Any, Any], stored_previous: str, present: int | None) -> bool:
    """The row's seal is intact but names a predecessor that is no longer there."""
    for candidate in range(int(row["id"]) - 1, (present or 0), -1):
        if audit_hash(row, previous_id=candidate, previous_hash=stored_previous) == row["hash"]:
            return True
    return False


def _verify_revisions(connection: Connection, problems: list[Problem]) -> tuple[int, int, int]:
    versions = {
        int(found.id): int(found.version)
        for found in connection.execute(select(REPORT.c.id, REPORT.c.version))
    }
    total = sealed = 0
    seen: dict[int, int] = {}
    current: int | None = None
    previous_hash = GENESIS
    expected_version = 1
    columns = (
        *(REVISION.c[name] for name in _REVISION_CONTENT),
        REVISION.c.previous_hash,
        REVISION.c.content_hash,
    )
    result = connection.execution_options(yield_per=5000).execute(
        select(*columns).order_by(REVISION.c.report_id, REVISION.c.version)
    )
    for row in result.mappings():
        total += 1
        report_id, version = int(row["report_id"]), int(row["version"])
        where = f"report {report_id} v{version}"
        if report_id != current:
            current, previous_hash, expected_version = report_id, GENESIS, 1
        if version != expected_version:
            problems.append(
                Problem(
                    "report_revision",
                    "missing_version",
                    where,
                    f"versions {expected_version}..{version - 1} are missing",
                )
            )
            previous_hash = ""  # the link cannot be checked across the hole
        seen[report_id] = version
        expected_version = version + 1
        if not row["content_hash"]:
            problems.append(Problem("report_revision", "unsealed", where, "not sealed yet"))
            previous_hash = ""
            continue
        sealed += 1
        stored_previous = str(row["previous_hash"])
        if revision_hash(row, previous_hash=stored_previous) != row["content_hash"]:
            problems.append(
                Problem("report_revision", "edited", where, "content differs from its seal")
            )
        elif previous_hash and stored_previous != previous_hash:
            problems.append(
                Problem(
                    "report_revision",
                    "broken_link",
                    where,
                    "does not follow the version before it: one of them was altered",
                )
            )
        previous_hash = str(row["content_hash"])
    for report_id, version in versions.items():
        last = seen.get(report_id, 0)
        if version > last:
            problems.append(
                Problem(
                    "report_revision",
                    "missing_version",
                    f"report {report_id} v{version}",
                    f"the report is at version {version} but its revisions end at {last}",
                )
            )
    return len(versions), total, sealed
