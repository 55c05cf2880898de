"""Group commit for rows a request must not answer before they are stored.

One writer thread takes whatever is waiting and stores it in one transaction;
each waiter's ``await store(...)`` returns once that transaction committed, or
raises what stopped it. Concurrent requests then share one fsync instead of
queueing for SQLite's write lock one commit at a time.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy import Connection

from integration.database import Database, log_failed_round

log = logging.getLogger("huren.group_commit")
Item = TypeVar("Item")
Write = Callable[[Connection, list[Item]], None]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class GroupCommit(Generic[Item]):
    """A writer thread storing items in batches with ``write(connection, items)``."""

    def __init__(
        self, *, database: Database, write: Write[Item], name: str, max_batch: int = 256
    ) -> None:
        self._database = database
        self._write = write
        self._name = name
        self._max_batch = max_batch
        self._waiting: queue.SimpleQueue[tuple[Sequence[Item], _Waiter] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self.stored = 0  # items committed so far (for tests and status)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Store what is already waiting, then end the thread."""
        if self._thread is not None:
            self._waiting.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def store(self, items: Sequence[Item]) -> None:
        """Return once ``items`` are committed; raise if they could not be (answer 500)."""
        if self._thread is None:
            raise RuntimeError(f"the {self._name} writer is not running")
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[None] = loop.create_future()
        self._waiting.put((items, (loop, stored)))
        await stored

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            count = len(first[0])
            while count < self._max_batch:
                try:
                    following = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
                count += len(following[0])
            error: BaseException | None = None
            try:
                with self._database.engine.begin() as connection:
                    self._write(connection, [item for items, _ in batch for item in items])
                self.stored += count
            except Exception as exc:  # every waiting request learns of it
                log_failed_round(log, f"{self._name}: {count} items not stored", exc)
                error = exc
            _wake([waiter for _, waiter in batch], error)


def _wake(waiters: list[_Waiter], error: BaseException | None) -> None:
    """Settle the futures with one wake-up per event loop rather than one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for loop, future in waiters:
        by_loop.setdefault(loop, []).append(future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, futures, error)
        except RuntimeError:  # that loop is closed: nobody waits any more
            continue


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
