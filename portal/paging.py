"""Server-side paging and sorting, shared by the portal's table pages as Reflex state mixins.

A page's state lists a mixin before ``SessionState`` and defines ``_refresh``
(the role check and the reload of the current page of rows); sortable pages
also declare their own ``sort`` (its default) and ``descending`` and say which
columns they sort by in ``_sorts``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import reflex as rx
from reflex.event import EventSpec


class PagedTable(rx.State, mixin=True):
    page: int = 1
    pages: int = 1

    def _refresh(self) -> AsyncIterator[EventSpec | None]:
        raise NotImplementedError(f"{type(self).__name__} does not say how to reload its rows")

    @rx.event
    async def next_page(self) -> AsyncIterator[EventSpec | None]:
        self.page = min(self.page + 1, self.pages)
        async for step in self._refresh():
            yield step

    @rx.event
    async def previous_page(self) -> AsyncIterator[EventSpec | None]:
        self.page = max(self.page - 1, 1)
        async for step in self._refresh():
            yield step


class SortedTable(PagedTable, mixin=True):
    if TYPE_CHECKING:  # declared by each page, with its own default
        sort: str
        descending: bool

    def _sorts(self) -> tuple[tuple[str, ...], str]:
        """The columns this table sorts by, and the one it falls back to."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it sorts")

    @rx.event
    async def set_sort(self, sort: str) -> AsyncIterator[EventSpec | None]:
        """Sort by a column; the same column again turns the order round."""
        if sort == self.sort:
            self.descending = not self.descending
        else:
            known, fallback = self._sorts()
            self.sort = sort if sort in known else fallback
            self.descending = False
        self.page = 1
        async for step in self._refresh():
            yield step
