"""The audit trail writer for API traffic: every read of patient data, durably, in batches.

Each request waits until its event is committed, so an answer never goes
out unrecorded; events arriving together share one commit, so recording
costs the API one fsync per batch rather than one per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert

from integration.database import Database
from integration.group_commit import GroupCommit
from models import metadata
from models.enums import AuditAction, AuditOutcome

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
        self._clock = clock
        self._writer: GroupCommit[AuditEntry] = GroupCommit(
            database=database, write=self._write, name="audit-writer", max_batch=max_batch
        )

    @property
    def recorded(self) -> int:
        return self._writer.stored

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()

    async def record(self, entry: AuditEntry) -> None:
        """Store ``entry``; raises if it could not be stored (the caller answers 500)."""
        await self._writer.store((entry,))

    def _write(self, connection: Connection, entries: list[AuditEntry]) -> None:
        now = self._clock()
        connection.execute(insert(AUDIT), [audit_row(entry, now=now) for entry in entries])
