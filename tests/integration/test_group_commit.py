"""Group commit: a waiter returns only once its rows are committed; concurrent waiters share one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from integration.database import Database
from integration.group_commit import GroupCommit


@pytest.fixture
def database(sqlite_engine: Engine) -> Iterator[Database]:
    with sqlite_engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (value TEXT PRIMARY KEY)"))
    yield Database(sqlite_engine)


def _stored(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        return list(connection.execute(text("SELECT value FROM item ORDER BY value")).scalars())


class Recorder:
    """A write function that remembers its batches and can hold the first one back."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, connection: Connection, items: list[str]) -> None:
        self.release.wait(timeout=10)
        self.batches.append(list(items))
        connection.execute(text("INSERT INTO item (value) VALUES (:value)"), [
            {"value": item} for item in items
        ])  # fmt: skip


def test_callers_return_after_the_commit_and_share_it(database: Database) -> None:
    recorder = Recorder()
    writer: GroupCommit[str] = GroupCommit(database=database, write=recorder, name="test")
    writer.start()
    names = [f"card-{n:02d}" for n in range(40)]

    async def one(name: str) -> list[str]:
        await writer.store([name])
        return _stored(database)  # what another connection sees when the answer goes out

    async def everyone() -> list[list[str]]:
        recorder.release.clear()  # a first commit is under way while the callers queue
        busy = asyncio.create_task(writer.store(["busy"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(one(name)) for name in names]
        await asyncio.sleep(0.05)
        recorder.release.set()
        await busy
        return await asyncio.gather(*tasks)

    try:
        seen = asyncio.run(everyone())
    finally:
        writer.stop()
    for name, visible in zip(names, seen, strict=True):
        assert name in visible
    assert recorder.batches == [["busy"], names]  # 40 callers, one commit
    assert writer.stored == 41


def test_a_failed_commit_reaches_every_caller_of_its_batch(database: Database) -> None:
    recorder = Recorder()
    writer: GroupCommit[str] = GroupCommit(database=database, write=recorder, name="test")
    writer.start()

    async def clash() -> list[BaseException | None]:
        recorder.release.clear()
        busy = asyncio.create_task(writer.store(["busy"]))
        await asyncio.sleep(0.05)
        tasks = [asyncio.create_task(writer.store(items)) for items in (["a"], ["b", "a"], ["c"])]
        await asyncio.sleep(0.05)
        recorder.release.set()
        await busy
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    try:
        first = asyncio.run(clash())
        asyncio.run(writer.store(["d"]))  # the writer goes on after a failure
    finally:
        writer.stop()
    assert recorder.batches[1] == ["a", "b", "a", "c"]
    assert all(isinstance(outcome, IntegrityError) for outcome in first)
    assert _stored(database) == ["busy", "d"]  # nothing of the failed batch


def test_stop_stores_what_is_waiting_and_a_stopped_writer_refuses(database: Database) -> None:
    recorder = Recorder()
    writer: GroupCommit[str] = GroupCommit(database=database, write=recorder, name="test")
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(writer.store(["early"]))
    writer.start()

    async def queue_then_stop() -> None:
        recorder.release.clear()
        task = asyncio.create_task(writer.store(["x"]))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(asyncio.to_thread(writer.stop))
        await asyncio.sleep(0.05)
        recorder.release.set()
        await task
        await stopping

    asyncio.run(queue_then_stop())
    assert _stored(database) == ["x"]
