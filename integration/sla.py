"""Reading deadlines: when each study's preliminary and final are due, and how close they are.

The region's rules: the clock starts when the study is complete at the hub.
Routine studies get 30 minutes to the preliminary and 30 more, from the
preliminary, to the audited final; emergencies get 30 minutes to the final.
Outside the reading calendar's hours a routine study's clock waits for the
next opening (the documents allow later reports out of hours); an emergency's
never waits. Everything here is pure: times in, times out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from integration.settings import Settings, parse_holidays, parse_weekdays
from models.enums import Priority, ReadingStatus

PRELIMINARY_LIMIT = timedelta(minutes=30)
AUDIT_LIMIT = timedelta(minutes=30)
EMERGENCY_LIMIT = timedelta(minutes=30)
NEAR = timedelta(minutes=10)  # shown amber this long before a deadline
_MAX_SEARCH_DAYS = 400  # a calendar with no opening within a year is a configuration error


@dataclass(frozen=True)
class ReadingCalendar:
    """When the reading centre works: daily hours (local), weekdays and holidays."""

    opens: time
    closes: time | None  # None: midnight at the end of the day
    weekdays: frozenset[int]  # ISO, 1 = Monday
    holidays: frozenset[date]
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadingCalendar:
        start, end = settings.reading_hours.split("-")
        return cls(
            opens=time.fromisoformat(start),
            closes=None if end == "24:00" else time.fromisoformat(end),
            weekdays=parse_weekdays(settings.reading_weekdays),
            holidays=parse_holidays(settings.reading_holidays),
            zone=settings.zone,
        )

    @classmethod
    def always(cls, zone: ZoneInfo) -> ReadingCalendar:
        return cls(time(0), None, frozenset(range(1, 8)), frozenset(), zone)

    @property
    def always_open(self) -> bool:
        """Every moment is within hours: no clock ever waits."""
        return (
            self.opens == time(0)
            and self.closes is None
            and self.weekdays == frozenset(range(1, 8))
            and not self.holidays
        )

    def hours_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The local day's opening and closing (aware, in the calendar's zone), or None if shut."""
        if day.isoweekday() not in self.weekdays or day in self.holidays:
            return None
        opening = datetime.combine(day, self.opens, tzinfo=self.zone)
        closing = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
            if self.closes is None
            else datetime.combine(day, self.closes, tzinfo=self.zone)
        )
        return opening, closing

    def in_hours(self, moment: datetime) -> bool:
        # Compared in UTC: two times of one ZoneInfo compare by wall clock, wrong in the hour
        # that repeats when summer time ends.
        instant = moment.astimezone(UTC)
        window = self.hours_on(moment.astimezone(self.zone).date())
        if window is None:
            return False
        return window[0].astimezone(UTC) <= instant < window[1].astimezone(UTC)

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` itself when within hours, else the next time the centre opens (UTC)."""
        if self.in_hours(moment):
            return moment
        instant, today = moment.astimezone(UTC), moment.astimezone(self.zone).date()
        for offset in range(_MAX_SEARCH_DAYS):
            window = self.hours_on(today + timedelta(days=offset))
            if window is not None and window[0].astimezone(UTC) >= instant:
                return window[0].astimezone(moment.tzinfo)
        raise ValueError("the reading calendar never opens")


class Clock(StrEnum):
    """How a deadline stands, for colour: in time, within 10 minutes, past, or met/none."""

    running = "running"
    near = "near"
    overdue = "overdue"
    done = "done"
    stopped = "stopped"  # waiting for a retake: no clock runs


@dataclass(frozen=True)
class Deadlines:
    clock_start: datetime
    preliminary_due: datetime
    final_due: datetime | None  # routine: known once the preliminary is written (or planned)


def deadlines(
    *,
    completed_at: datetime,
    priority: Priority,
    preliminary_at: datetime | None,
    calendar: ReadingCalendar,
) -> Deadlines:
    """Both deadlines of one study."""
    if priority is Priority.emergency:
        due = completed_at + EMERGENCY_LIMIT
        return Deadlines(completed_at, due, due)
    start = calendar.next_opening(completed_at)
    preliminary_due = start + PRELIMINARY_LIMIT
    audit_from = calendar.next_opening(preliminary_at) if preliminary_at else preliminary_due
    return Deadlines(start, preliminary_due, audit_from + AUDIT_LIMIT)


def current_due(status: ReadingStatus | None, due: Deadlines) -> datetime | None:
    """The deadline the study is working towards now; None when none runs."""
    if status is ReadingStatus.awaiting_preliminary:
        return due.preliminary_due
    if status is ReadingStatus.awaiting_audit:
        return due.final_due
    return None


def clock(status: ReadingStatus | None, due: datetime | None, now: datetime) -> Clock:
    if status is ReadingStatus.retake_requested:
        return Clock.stopped
    if status is ReadingStatus.final or due is None:
        return Clock.done
    if now >= due:
        return Clock.overdue
    if due - now <= NEAR:
        return Clock.near
    return Clock.running


def seconds_left(due: datetime | None, now: datetime) -> int | None:
    """Whole seconds to the deadline, negative once past; None without one."""
    return None if due is None else int((due - now).total_seconds() // 1)
