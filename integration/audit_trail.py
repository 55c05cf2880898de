"""The audit trail writer for API traffic: every read of patient data, durably, in batches.

Each request waits until its event is committed, so an answer never goes
out unrecorded; events arriving together share one commit, so recording
costs the API one fsync per batch rather than one per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert

from integration.database import Database
from models import metadata
from models.enums import AuditAction, AuditOutcome

log = logging.getLogger("huren.audit")
AUDIT = metadata.tables["audit_event"]


@dataclass(frozen=True)
class AuditEntry:
    action: AuditAction
    actor: str  # a username, or an API client's name
    source_address: str
    entity_type: str
    entity_id: str
    detail: str = ""
    patient_id: int | None = None  # the hub's own patient, when the entity is about one
    outcome: AuditOutcome = AuditOutcome.success


Done = Callable[[BaseException | None], None]


def audit_row(entry: AuditEntry, *, now: datetime) -> dict[str, object]:
    """The ``audit_event`` row of an entry (for writing it inside a caller's transaction)."""
    return {
        "recorded_at": now,
        "action": entry.action,
        "outcome": entry.outcome,
        "actor": entry.actor[:128],
        "actor_user_id": None,
        "facility_id": None,
        "source_address": entry.source_address[:64],
        "entity_type": entry.entity_type[:32],
        "entity_id": entry.entity_id[:64],
        "patient_id": entry.patient_id,
        "detail": entry.detail,
        "previous_hash": "",
        "hash": "",
    }


class AuditWriter:
    """Group-commits audit events from one thread; ``record`` returns once its event is stored."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_batch: int = 256,
    ) -> None:
        self._database = database
        self._clock = clock
        self._max_batch = max_batch
        self._entries: queue.Queue[tuple[AuditEntry, Done] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.recorded = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._entries.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def record(self, entry: AuditEntry) -> None:
        """Store ``entry``; raises if it could not be stored (the caller answers 500)."""
        if self._thread is None:
            raise RuntimeError("the audit writer is not running")
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, stored, error)

        self._entries.put((entry, done))
        await stored

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._entries.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    following = self._entries.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            error: BaseException | None = None
            now = self._clock()
            try:
                with self._database.engine.begin() as connection:
                    connection.execute(
                        insert(AUDIT), [audit_row(entry, now=now) for entry, _ in batch]
                    )
                self.recorded += len(batch)
            except Exception as exc:  # every waiting request learns of it
                log.exception("audit events not stored")
                error = exc
            for _, done in batch:
                done(error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
