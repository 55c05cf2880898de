"""A progress bar for long CLI runs (demo seeding, DICOM import), or nothing when quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(label: str, total: int, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; draws on stderr only when ``enabled``."""
    if not enabled:
        yield lambda _n: None
        return
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)
