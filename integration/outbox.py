"""The outbox: everything that leaves the hub is a row here first, then a worker delivers it.

Rows are claimed with a lease (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several hubs can share one database: claims from different hubs take turns on
a transaction-level advisory lock, so a hub never claims a row while an earlier
row to the same destination is being claimed elsewhere), delivered in id order per destination,
retried with exponential backoff, and dead-lettered with the last error after
the configured number of attempts. A crash between sending and recording the
delivery means one more send: receivers deduplicate (the payload, and with it
the HL7 control id or FHIR identifiers, never changes).

A channel may let consecutive rows to one destination travel as one message
(``Batching``: FHIR transaction Bundles merge into one transaction). If such
a message fails, its rows are sent again one by one, so only the row that the
receiver refuses is retried or dead-lettered, never its innocent neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from integration.database import Database, log_failed_round
from integration.settings import Settings
from models import metadata
from models.enums import OutboxChannel, OutboxStatus
from models.errors import HurenError

log = logging.getLogger("huren.outbox")
OUTBOX = metadata.tables["outbox"]
LEASE = timedelta(minutes=2)
# pg_advisory_xact_lock key of the claim step ("HURENOBX" as a 64-bit integer).
CLAIM_LOCK = 0x485552454E4F4258


class DeliveryError(HurenError):
    """The receiver did not take the message; ``retryable`` False dead-letters it at once."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Parcel:
    """A claimed outbox row, as a sender sees it."""

    id: int
    channel: OutboxChannel
    destination: str
    idempotency_key: str
    content_type: str
    payload: bytes
    attempts: int


Sender = Callable[[Parcel], Awaitable[None]]


class Combiner(Protocol):
    """Folds consecutive payloads to one destination into one message, while they go together."""

    def add(self, payload: bytes) -> bool:
        """Take ``payload`` in (True), or leave the message as it is (False)."""

    def payload(self) -> bytes:
        """The message carrying every payload taken."""


@dataclass(frozen=True)
class Batching:
    """How many of a channel's rows may travel in one message, and how they are combined."""

    combiner: Callable[[], Combiner]
    most: int = 20  # rows in one message
    max_bytes: int = 1 << 20  # their payloads together, well under a receiver's body limit


def enqueue(
    connection: Connection,
    *,
    channel: OutboxChannel,
    destination: str,
    idempotency_key: str,
    payload: bytes,
    now: datetime,
    content_type: str = "application/json",
    subject_type: str = "",
    subject_id: int | None = None,
) -> bool:
    """Queue a message once per key, inside the caller's transaction; False if already queued."""
    known = connection.execute(
        select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == idempotency_key)
    ).first()
    if known is not None:
        return False
    connection.execute(
        insert(OUTBOX).values(
            channel=channel,
            destination=destination,
            idempotency_key=idempotency_key,
            subject_type=subject_type,
            subject_id=subject_id,
            content_type=content_type,
            payload=payload,
            status=OutboxStatus.pending,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            locked_by=None,
            locked_until=None,
            created_at=now,
            delivered_at=None,
        )
    )
    return True


def backoff(
    attempts: int,
    *,
    base: float,
    ceiling: float,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> timedelta:
    """base * 2^(attempts-1), capped, spread by +-jitter so retries do not march in step."""
    delay = min(base * (2 ** max(attempts - 1, 0)), ceiling)
    spread = (rng or random).uniform(1 - jitter, 1 + jitter)
    return timedelta(seconds=min(delay * spread, ceiling))


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    in_flight: int
    delivered: int
    dead: int
    oldest_pending: datetime | None


def counts(connection: Connection) -> dict[OutboxChannel, OutboxCounts]:
    rows = connection.execute(
        select(
            OUTBOX.c.channel, OUTBOX.c.status, func.count(), func.min(OUTBOX.c.created_at)
        ).group_by(OUTBOX.c.channel, OUTBOX.c.status)
    ).all()
    by_channel: dict[OutboxChannel, dict[OutboxStatus, tuple[int, datetime | None]]] = {}
    for channel, status, count, oldest in rows:
        by_channel.setdefault(OutboxChannel(channel), {})[OutboxStatus(status)] = (count, oldest)

    def number(
        states: dict[OutboxStatus, tuple[int, datetime | None]], status: OutboxStatus
    ) -> int:
        return int(states.get(status, (0, None))[0])

    return {
        channel: OutboxCounts(
            pending=number(states, OutboxStatus.pending),
            in_flight=number(states, OutboxStatus.in_flight),
            delivered=number(states, OutboxStatus.delivered),
            dead=number(states, OutboxStatus.dead),
            oldest_pending=states.get(OutboxStatus.pending, (0, None))[1],
        )
        for channel, states in by_channel.items()
    }


def retry_dead(connection: Connection, *, now: datetime, ids: list[int] | None = None) -> int:
    """Put dead-lettered rows back in the queue (after the cause was fixed)."""
    statement = update(OUTBOX).where(OUTBOX.c.status == OutboxStatus.dead)
    if ids:
        statement = statement.where(OUTBOX.c.id.in_(ids))
    result = connection.execute(
        statement.values(status=OutboxStatus.pending, next_attempt_at=now, attempts=0)
    )
    return int(result.rowcount)


class OutboxWorker:
    """Delivers due rows with the sender registered for their channel."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        senders: dict[OutboxChannel, Sender],
        batching: dict[OutboxChannel, Batching] | None = None,
        batch: int = 50,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._settings = settings
        self._senders = senders
        self._batching = batching or {}
        self._batch = batch
        self._clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    def reclaim(self) -> int:
        """Release rows this worker's id still holds: a previous life of it died mid-delivery.

        Only meaningful with a ``worker_id`` that is stable across restarts (the
        hub derives one from its host and data directory); otherwise rows wait
        for their lease to expire.
        """
        with self._database.engine.begin() as connection:
            done = connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.status == OutboxStatus.in_flight,
                    OUTBOX.c.locked_by == self.worker_id,
                )
                .values(status=OutboxStatus.pending, locked_by=None, locked_until=None)
            )
        if done.rowcount:
            log.warning("took back %d outbox rows left in flight by a crash", done.rowcount)
        return int(done.rowcount)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.reclaim)
        while not stop.is_set():
            try:
                delivered = await self.run_once()
            except Exception as exc:  # the worker must outlive a bad round; the error is logged
                log_failed_round(log, "outbox round failed", exc)
                delivered = 0
            if delivered:
                continue
            self._wake.clear()
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            _done, pending = await asyncio.wait(
                waiters,
                timeout=self._settings.outbox_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in pending:
                waiter.cancel()

    async def run_once(self) -> int:
        """One round: claim due rows, deliver them per destination in order; returns deliveries."""
        parcels = await asyncio.to_thread(self._claim)
        by_destination: dict[str, list[Parcel]] = {}
        for parcel in parcels:
            by_destination.setdefault(parcel.destination, []).append(parcel)
        results = await asyncio.gather(
            *(self._deliver_in_order(queue) for queue in by_destination.values())
        )
        return sum(results)

    async def _deliver_in_order(self, parcels: list[Parcel]) -> int:
        """Send one destination's parcels in order; deliveries are recorded together.

        One transaction for a round's deliveries instead of one each: a crash
        before it commits means those parcels are sent once more, which the
        receivers take as a repeat (the same HL7 control id, the same FHIR
        conditional updates). A combined message that fails is followed at once
        by its parcels one by one, and the first of them to fail is the one
        whose failure is recorded.
        """
        delivered: list[Parcel] = []
        position = 0
        while position < len(parcels):
            # merging parses and writes JSON: off the event loop, which serves the hub's I/O
            group, combined = await asyncio.to_thread(self._group, parcels[position:])
            if combined is not None:
                problem = await self._attempt(combined)
                if problem is None:
                    delivered += group
                    position += len(group)
                    continue
                log.info(
                    "%d messages to %s together failed (%s); sending them one by one",
                    len(group),
                    combined.destination,
                    problem,
                )
            for parcel in group:
                problem = await self._attempt(parcel)
                if problem is not None:
                    retryable = not isinstance(problem, DeliveryError) or problem.retryable
                    await asyncio.to_thread(self._record_deliveries, delivered)
                    await asyncio.to_thread(self._record_failure, parcel, problem, retryable)
                    await asyncio.to_thread(self._release, [p.id for p in parcels[position + 1 :]])
                    return len(delivered)
                delivered.append(parcel)
                position += 1
        await asyncio.to_thread(self._record_deliveries, delivered)
        return len(delivered)

    def _group(self, parcels: Sequence[Parcel]) -> tuple[list[Parcel], Parcel | None]:
        """The first parcels that may travel together, and the message carrying them (or None).

        A parcel that failed before travels alone, so a receiver's trouble with
        it costs one request per retry and not two.
        """
        first = parcels[0]
        batching = self._batching.get(first.channel)
        if batching is None or batching.most < 2 or first.attempts:
            return [first], None
        combiner = batching.combiner()
        if not combiner.add(first.payload):
            return [first], None
        group, size = [first], len(first.payload)
        for parcel in parcels[1 : batching.most]:
            size += len(parcel.payload)
            if parcel.channel != first.channel or parcel.attempts or size > batching.max_bytes:
                break
            if not combiner.add(parcel.payload):
                break
            group.append(parcel)
        if len(group) == 1:
            return group, None
        combined = replace(
            first,
            idempotency_key=f"{first.idempotency_key} and {len(group) - 1} more",
            payload=combiner.payload(),
            attempts=0,
        )
        return group, combined

    async def _attempt(self, parcel: Parcel) -> BaseException | None:
        """Send one message; the failure, if any (a missing sender is one)."""
        sender = self._senders.get(parcel.channel)
        try:
            if sender is None:
                raise DeliveryError(f"no sender for channel {parcel.channel.value}")
            await sender(parcel)
        except Exception as exc:  # any failure is recorded on the row, then retried
            return exc
        return None

    def _claim(self) -> list[Parcel]:
        now = self._clock()
        earlier = aliased(OUTBOX)
        blocked = exists().where(  # an earlier row to the same place that is not due yet
            earlier.c.destination == OUTBOX.c.destination,
            earlier.c.id < OUTBOX.c.id,
            or_(
                and_(earlier.c.status == OutboxStatus.pending, earlier.c.next_attempt_at > now),
                and_(earlier.c.status == OutboxStatus.in_flight, earlier.c.locked_until >= now),
            ),
        )
        due = (
            select(OUTBOX.c.id)
            .where(
                or_(
                    OUTBOX.c.status == OutboxStatus.pending,
                    and_(OUTBOX.c.status == OutboxStatus.in_flight, OUTBOX.c.locked_until < now),
                ),
                OUTBOX.c.next_attempt_at <= now,
                ~blocked,
            )
            .order_by(OUTBOX.c.id)
            .limit(self._batch)
        )
        with self._database.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Without the turn, another hub's uncommitted claim of rows 1-50 would look
                # like pending rows here, and this hub would send row 51 to the same place
                # before them. The lock ends with the claim's short transaction.
                connection.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
                due = due.with_for_update(skip_locked=True, of=OUTBOX)
            ids = [row.id for row in connection.execute(due)]
            if not ids:
                return []
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(ids))
                .values(
                    status=OutboxStatus.in_flight,
                    locked_by=self.worker_id,
                    locked_until=now + LEASE,
                )
            )
            rows = connection.execute(
                select(OUTBOX).where(OUTBOX.c.id.in_(ids)).order_by(OUTBOX.c.id)
            ).all()
        return [
            Parcel(
                id=row.id,
                channel=OutboxChannel(row.channel),
                destination=row.destination,
                idempotency_key=row.idempotency_key,
                content_type=row.content_type,
                payload=bytes(row.payload),
                attempts=row.attempts,
            )
            for row in rows
        ]

    def _record_deliveries(self, parcels: list[Parcel]) -> None:
        if not parcels:
            return
        now = self._clock()
        with self._database.engine.begin() as connection:
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == bindparam("parcel_id"))
                .values(
                    status=OutboxStatus.delivered,
                    attempts=bindparam("tries"),
                    delivered_at=now,
                    locked_by=None,
                    locked_until=None,
                    last_error="",
                ),
                [{"parcel_id": parcel.id, "tries": parcel.attempts + 1} for parcel in parcels],
            )
        for parcel in parcels:
            log.info("delivered %s to %s", parcel.idempotency_key, parcel.destination)

    def _record_failure(self, parcel: Parcel, exc: BaseException, retryable: bool) -> None:
        now = self._clock()
        attempts = parcel.attempts + 1
        dead = not retryable or attempts >= self._settings.outbox_max_attempts
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        with self._database.engine.begin() as connection:
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == parcel.id)
                .values(
                    status=OutboxStatus.dead if dead else OutboxStatus.pending,
                    attempts=attempts,
                    last_error=reason,
                    locked_by=None,
                    locked_until=None,
                    next_attempt_at=now
                    + backoff(
                        attempts,
                        base=self._settings.outbox_backoff_seconds,
                        ceiling=self._settings.outbox_backoff_max_seconds,
                    ),
                )
            )
        log.warning(
            "%s to %s failed (attempt %d%s): %s",
            parcel.idempotency_key,
            parcel.destination,
            attempts,
            ", dead-lettered" if dead else "",
            reason,
        )

    def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._database.engine.begin() as connection:
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(ids))
                .values(status=OutboxStatus.pending, locked_by=None, locked_until=None)
            )
