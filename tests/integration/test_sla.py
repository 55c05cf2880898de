"""Reading deadlines: routine 30 + 30, emergency 30 in all, and the out-of-hours calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from integration.settings import Settings
from integration.sla import (
    Clock,
    ReadingCalendar,
    clock,
    current_due,
    deadlines,
    seconds_left,
)
from models.enums import Priority, ReadingStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALWAYS = ReadingCalendar.always(SHANGHAI)
# 08:00-18:00 Monday to Friday, with 2026-10-01 (a Thursday) a holiday.
OFFICE = ReadingCalendar(
    opens=time(8),
    closes=time(18),
    weekdays=frozenset(range(1, 6)),
    holidays=frozenset({date(2026, 10, 1)}),
    zone=SHANGHAI,
)


def local(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SHANGHAI).astimezone(UTC)


def test_routine_thirty_to_preliminary_then_thirty_from_it() -> None:
    arrived = local("2026-11-24", "10:00")
    due = deadlines(
        completed_at=arrived, priority=Priority.routine, preliminary_at=None, calendar=ALWAYS
    )
    assert due.preliminary_due == arrived + timedelta(minutes=30)
    assert due.final_due == arrived + timedelta(minutes=60)  # planned from the preliminary's due
    written = arrived + timedelta(minutes=12)
    due = deadlines(
        completed_at=arrived, priority=Priority.routine, preliminary_at=written, calendar=ALWAYS
    )
    assert due.final_due == written + timedelta(minutes=30)


def test_emergency_thirty_minutes_to_final_even_at_midnight_out_of_hours() -> None:
    arrived = local("2026-11-28", "23:50")  # a Saturday night: the office calendar is closed
    due = deadlines(
        completed_at=arrived, priority=Priority.emergency, preliminary_at=None, calendar=OFFICE
    )
    assert due.clock_start == arrived
    assert due.preliminary_due == due.final_due == arrived + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("arrived", "starts"),
    [
        (("2026-11-24", "07:30"), ("2026-11-24", "08:00")),  # before opening
        (("2026-11-24", "12:00"), ("2026-11-24", "12:00")),  # within hours
        (("2026-11-24", "18:00"), ("2026-11-25", "08:00")),  # at closing: next morning
        (("2026-11-27", "19:00"), ("2026-11-30", "08:00")),  # Friday night: Monday
        (("2026-09-30", "20:00"), ("2026-10-02", "08:00")),  # the holiday is skipped
    ],
)
def test_routine_clock_waits_for_the_next_opening(
    arrived: tuple[str, str], starts: tuple[str, str]
) -> None:
    due = deadlines(
        completed_at=local(*arrived),
        priority=Priority.routine,
        preliminary_at=None,
        calendar=OFFICE,
    )
    assert due.clock_start == local(*starts)
    assert due.preliminary_due == local(*starts) + timedelta(minutes=30)


def test_audit_clock_of_a_preliminary_written_after_hours_waits_too() -> None:
    arrived = local("2026-11-24", "17:40")
    written = local("2026-11-24", "18:05")
    due = deadlines(
        completed_at=arrived, priority=Priority.routine, preliminary_at=written, calendar=OFFICE
    )
    assert due.preliminary_due == local("2026-11-24", "18:10")
    assert due.final_due == local("2026-11-25", "08:30")


def test_clock_colours() -> None:
    now = local("2026-11-24", "10:00")
    status = ReadingStatus.awaiting_preliminary
    assert clock(status, now + timedelta(minutes=25), now) is Clock.running
    assert clock(status, now + timedelta(minutes=10), now) is Clock.near
    assert clock(status, now, now) is Clock.overdue
    assert clock(ReadingStatus.final, now - timedelta(hours=1), now) is Clock.done
    assert clock(ReadingStatus.retake_requested, now, now) is Clock.stopped
    assert seconds_left(now - timedelta(seconds=90), now) == -90
    assert seconds_left(None, now) is None


def test_current_due_follows_the_step() -> None:
    arrived = local("2026-11-24", "10:00")
    due = deadlines(
        completed_at=arrived, priority=Priority.routine, preliminary_at=None, calendar=ALWAYS
    )
    assert current_due(ReadingStatus.awaiting_preliminary, due) == due.preliminary_due
    assert current_due(ReadingStatus.awaiting_audit, due) == due.final_due
    assert current_due(ReadingStatus.final, due) is None


def test_calendar_from_settings(tmp_path: object) -> None:
    settings = Settings(
        reading_hours="8:00-17:30", reading_weekdays="1-5,7", reading_holidays="2026-10-01"
    )
    calendar = ReadingCalendar.from_settings(settings)
    assert calendar.opens == time(8) and calendar.closes == time(17, 30)
    assert calendar.weekdays == frozenset({1, 2, 3, 4, 5, 7})
    assert calendar.holidays == frozenset({date(2026, 10, 1)})
    assert ReadingCalendar.from_settings(Settings()).in_hours(local("2026-11-28", "03:00"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("reading_hours", "18:00-08:00"),
        ("reading_hours", "8-17"),
        ("reading_weekdays", "0-5"),
        ("reading_weekdays", ""),
        ("reading_holidays", "2026-13-01"),
    ],
)
def test_bad_calendar_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=r"reading|weekday|ISO date"):
        Settings(**{name: value})  # type: ignore[arg-type]
