"""Allowed status changes, as data, and the one check every writer calls."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from models.enums import OrderStatus, ReadingStatus, ReportStatus
from models.errors import TransitionError

S = TypeVar("S", bound=StrEnum)

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.scheduled: frozenset(
        {OrderStatus.in_progress, OrderStatus.cancelled, OrderStatus.completed}
    ),
    OrderStatus.in_progress: frozenset({OrderStatus.completed, OrderStatus.discontinued}),
    OrderStatus.completed: frozenset(),
    OrderStatus.cancelled: frozenset(),
    OrderStatus.discontinued: frozenset(),
}

READING_TRANSITIONS: dict[ReadingStatus, frozenset[ReadingStatus]] = {
    ReadingStatus.awaiting_preliminary: frozenset(
        {ReadingStatus.awaiting_audit, ReadingStatus.retake_requested}
    ),
    ReadingStatus.awaiting_audit: frozenset(
        {
            ReadingStatus.final,
            ReadingStatus.retake_requested,
            ReadingStatus.awaiting_preliminary,  # the auditor sends it back to the author
        }
    ),
    ReadingStatus.final: frozenset(),
    ReadingStatus.retake_requested: frozenset(),
}

REPORT_TRANSITIONS: dict[ReportStatus, frozenset[ReportStatus]] = {
    ReportStatus.preliminary: frozenset(
        {ReportStatus.preliminary, ReportStatus.final, ReportStatus.cancelled}
    ),
    ReportStatus.final: frozenset({ReportStatus.amended, ReportStatus.corrected}),
    ReportStatus.amended: frozenset({ReportStatus.amended, ReportStatus.corrected}),
    ReportStatus.corrected: frozenset({ReportStatus.amended, ReportStatus.corrected}),
    ReportStatus.cancelled: frozenset(),
}

SIGNED_REPORT_STATUSES: frozenset[ReportStatus] = frozenset(
    {ReportStatus.final, ReportStatus.amended, ReportStatus.corrected}
)


def check_transition(table: dict[S, frozenset[S]], current: S, new: S) -> S:
    """Return ``new`` if the table allows ``current -> new``, else raise TransitionError."""
    if new not in table.get(current, frozenset()):
        raise TransitionError(
            f"{type(current).__name__} cannot change from {current.value} to {new.value}",
            field="status",
        )
    return new
