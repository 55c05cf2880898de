"""The outbox worker against a real SQLite file, with senders that fail on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from integration.database import Database
from integration.outbox import (
    OUTBOX,
    Batching,
    DeliveryError,
    OutboxWorker,
    Parcel,
    backoff,
    counts,
    enqueue,
    retry_dead,
)
from integration.settings import Settings
from models.enums import OutboxChannel, OutboxStatus


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Receiver:
    """Records what arrives; fails while ``down`` or for keys in ``refuse``."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.down = False
        self.refuse: set[str] = set()

    async def __call__(self, parcel: Parcel) -> None:
        if self.down:
            raise ConnectionRefusedError("receiver down")
        if parcel.idempotency_key in self.refuse:
            raise DeliveryError("AR: message rejected", retryable=False)
        self.received.append(parcel.idempotency_key)


@pytest.fixture
def database(tmp_path: Path, database_url: str) -> Iterator[Database]:
    db = Database.from_settings(Settings(data_dir=tmp_path, database_url=database_url))  # type: ignore[arg-type]
    db.upgrade()
    yield db
    db.dispose()


def _queue(database: Database, clock: Clock, *keys: str, destination: str = "mllp://a:1") -> None:
    with database.engine.begin() as connection:
        for key in keys:
            enqueue(
                connection,
                channel=OutboxChannel.hl7,
                destination=destination,
                idempotency_key=key,
                payload=key.encode(),
                now=clock.now,
            )


def _worker(
    database: Database, clock: Clock, receiver: Receiver, **settings: object
) -> OutboxWorker:
    return OutboxWorker(
        database=database,
        settings=Settings(outbox_backoff_seconds=10, outbox_max_attempts=3, **settings),  # type: ignore[arg-type]
        senders={OutboxChannel.hl7: receiver},
        clock=clock,
    )


def _status(database: Database, key: str) -> tuple[OutboxStatus, int, str]:
    with database.engine.connect() as connection:
        row = connection.execute(
            select(OUTBOX.c.status, OUTBOX.c.attempts, OUTBOX.c.last_error).where(
                OUTBOX.c.idempotency_key == key
            )
        ).one()
    return OutboxStatus(row.status), row.attempts, row.last_error


def test_enqueue_is_idempotent_per_key(database: Database) -> None:
    clock = Clock()
    with database.engine.begin() as connection:
        assert enqueue(
            connection,
            channel=OutboxChannel.hl7,
            destination="mllp://a:1",
            idempotency_key="oru:1:v2",
            payload=b"x",
            now=clock.now,
        )
        assert not enqueue(
            connection,
            channel=OutboxChannel.hl7,
            destination="mllp://a:1",
            idempotency_key="oru:1:v2",
            payload=b"y",
            now=clock.now,
        )
        assert counts(connection)[OutboxChannel.hl7].pending == 1


def test_delivers_in_order_and_retries_with_backoff_when_the_receiver_is_down(
    database: Database,
) -> None:
    clock, receiver = Clock(), Receiver()
    _queue(database, clock, "m1", "m2", "m3")
    _queue(database, clock, "other", destination="mllp://b:2")
    worker = _worker(database, clock, receiver)

    receiver.down = True
    assert asyncio.run(worker.run_once()) == 0
    status, attempts, error = _status(database, "m1")
    assert (status, attempts) == (OutboxStatus.pending, 1) and "receiver down" in error
    assert _status(database, "m2")[1] == 0  # never tried: m1 blocks its destination

    receiver.down = False
    assert asyncio.run(worker.run_once()) == 0  # m1 is not due yet: nothing may overtake it
    clock.advance(12)
    assert asyncio.run(worker.run_once()) == 4
    assert [key for key in receiver.received if key != "other"] == ["m1", "m2", "m3"]
    assert "other" in receiver.received
    assert asyncio.run(worker.run_once()) == 0  # nothing is sent twice


def test_gives_up_after_the_configured_attempts_and_can_be_retried(database: Database) -> None:
    clock, receiver = Clock(), Receiver()
    _queue(database, clock, "m1")
    worker = _worker(database, clock, receiver)
    receiver.down = True
    for _ in range(3):
        asyncio.run(worker.run_once())
        clock.advance(3600)
    assert _status(database, "m1")[:2] == (OutboxStatus.dead, 3)
    receiver.down = False
    assert asyncio.run(worker.run_once()) == 0
    with database.engine.begin() as connection:
        assert retry_dead(connection, now=clock.now) == 1
    assert asyncio.run(worker.run_once()) == 1
    assert receiver.received == ["m1"]


def test_a_rejection_dead_letters_at_once_and_does_not_block_the_rest(database: Database) -> None:
    clock, receiver = Clock(), Receiver()
    _queue(database, clock, "bad", "good")
    receiver.refuse.add("bad")
    worker = _worker(database, clock, receiver)
    asyncio.run(worker.run_once())
    status, attempts, error = _status(database, "bad")
    assert (status, attempts) == (OutboxStatus.dead, 1) and "AR" in error
    asyncio.run(worker.run_once())
    assert receiver.received == ["good"]


def test_a_crashed_workers_lease_expires_and_the_row_is_taken_again(database: Database) -> None:
    clock, receiver = Clock(), Receiver()
    _queue(database, clock, "m1")
    with database.engine.begin() as connection:
        connection.execute(
            update(OUTBOX).values(
                status=OutboxStatus.in_flight,
                locked_by="dead-hub",
                locked_until=clock.now + timedelta(minutes=2),
            )
        )
    worker = _worker(database, clock, receiver)
    assert asyncio.run(worker.run_once()) == 0
    clock.advance(180)
    assert asyncio.run(worker.run_once()) == 1


def test_backoff_doubles_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    delays = [
        backoff(n, base=2, ceiling=60, jitter=0, rng=rng).total_seconds() for n in range(1, 8)
    ]
    assert delays == [2, 4, 8, 16, 32, 60, 60]
    spread = {backoff(3, base=2, ceiling=60, rng=rng).total_seconds() for _ in range(20)}
    assert all(7.2 <= d <= 8.8 for d in spread) and len(spread) > 1


def test_a_restarted_worker_takes_back_only_its_own_leases(database: Database) -> None:
    clock = Clock()
    _queue(database, clock, "mine", destination="mllp://a:1")
    _queue(database, clock, "theirs", destination="mllp://b:1")

    def worker(worker_id: str) -> OutboxWorker:
        return OutboxWorker(
            database=database,
            settings=Settings(),  # type: ignore[call-arg]
            senders={OutboxChannel.hl7: Receiver()},
            clock=clock,
            worker_id=worker_id,
            batch=1,
        )

    assert [p.idempotency_key for p in worker("host:aaa")._claim()] == ["mine"]
    assert [p.idempotency_key for p in worker("host:bbb")._claim()] == ["theirs"]
    # host:aaa died with "mine" in flight; its next life releases it at once, not after the lease.
    assert worker("host:aaa").reclaim() == 1
    assert _status(database, "mine")[0] is OutboxStatus.pending
    assert _status(database, "theirs")[0] is OutboxStatus.in_flight


# --- rows that travel together ------------------------------------------------------------------


class Joiner:
    """Joins payloads with ``+``; a payload starting with ``alone`` always travels by itself."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, payload: bytes) -> bool:
        if payload.startswith(b"alone"):
            return False
        self.parts.append(payload)
        return True

    def payload(self) -> bytes:
        return b"+".join(self.parts)


class BatchReceiver:
    """Records each message as it arrives; refuses any carrying a refused part, or all when down."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.down = False
        self.refuse: set[str] = set()

    async def __call__(self, parcel: Parcel) -> None:
        if self.down:
            raise ConnectionRefusedError("receiver down")
        parts = parcel.payload.decode().split("+")
        if self.refuse & set(parts):
            raise DeliveryError("HTTP 400: invalid", retryable=False)
        self.received.append(parcel.payload.decode())


def _batching_worker(
    database: Database,
    clock: Clock,
    receiver: BatchReceiver,
    *,
    most: int = 3,
    max_bytes: int = 100,
) -> OutboxWorker:
    return OutboxWorker(
        database=database,
        settings=Settings(outbox_backoff_seconds=10, outbox_max_attempts=3),  # type: ignore[call-arg]
        senders={OutboxChannel.hl7: receiver},
        batching={OutboxChannel.hl7: Batching(combiner=Joiner, most=most, max_bytes=max_bytes)},
        clock=clock,
    )


def test_consecutive_rows_to_one_destination_travel_together_in_order(
    database: Database,
) -> None:
    clock, receiver = Clock(), BatchReceiver()
    _queue(database, clock, "m1", "m2", "m3", "m4", "m5")
    _queue(database, clock, "b1", destination="mllp://b:2")
    assert asyncio.run(_batching_worker(database, clock, receiver).run_once()) == 6
    assert sorted(receiver.received) == ["b1", "m1+m2+m3", "m4+m5"]
    assert receiver.received.index("m1+m2+m3") < receiver.received.index("m4+m5")
    for key in ("m1", "m2", "m3", "m4", "m5", "b1"):
        assert _status(database, key) == (OutboxStatus.delivered, 1, "")


def test_a_payload_that_will_not_combine_or_would_be_too_big_ends_the_group(
    database: Database,
) -> None:
    clock, receiver = Clock(), BatchReceiver()
    _queue(database, clock, "m1", "m2", "alone", "m4", "x" * 97, "m6")
    assert asyncio.run(_batching_worker(database, clock, receiver).run_once()) == 6
    # 2 + 97 bytes fit in 100; a third payload would not
    assert receiver.received == ["m1+m2", "alone", "m4+" + "x" * 97, "m6"]


def test_a_refused_combined_message_is_resent_one_by_one_and_only_the_culprit_dead_letters(
    database: Database,
) -> None:
    clock, receiver = Clock(), BatchReceiver()
    _queue(database, clock, "m1", "m2", "m3", "m4")
    receiver.refuse.add("m2")
    worker = _batching_worker(database, clock, receiver)
    assert asyncio.run(worker.run_once()) == 1
    assert receiver.received == ["m1"]  # "m1+m2+m3" was refused, then m1 went alone
    assert _status(database, "m1") == (OutboxStatus.delivered, 1, "")
    status, attempts, error = _status(database, "m2")
    assert (status, attempts) == (OutboxStatus.dead, 1) and "HTTP 400" in error
    for innocent in ("m3", "m4"):  # never blamed: no attempt counted, no error kept
        assert _status(database, innocent) == (OutboxStatus.pending, 0, "")
    assert asyncio.run(worker.run_once()) == 2
    assert receiver.received == ["m1", "m3+m4"]


def test_while_the_receiver_is_down_only_the_first_row_counts_an_attempt_and_then_goes_alone(
    database: Database,
) -> None:
    clock, receiver = Clock(), BatchReceiver()
    _queue(database, clock, "m1", "m2", "m3")
    worker = _batching_worker(database, clock, receiver)
    receiver.down = True
    assert asyncio.run(worker.run_once()) == 0
    status, attempts, error = _status(database, "m1")
    assert (status, attempts) == (OutboxStatus.pending, 1) and "receiver down" in error
    assert _status(database, "m2")[:2] == _status(database, "m3")[:2] == (OutboxStatus.pending, 0)

    receiver.down = False
    assert asyncio.run(worker.run_once()) == 0  # m1 waits for its backoff; nothing overtakes it
    clock.advance(12)
    assert asyncio.run(worker.run_once()) == 3
    assert receiver.received == ["m1", "m2+m3"]  # the row that failed before is sent by itself
    assert _status(database, "m1") == (OutboxStatus.delivered, 2, "")
