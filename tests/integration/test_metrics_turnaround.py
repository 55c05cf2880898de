"""Turnaround, SLA compliance, the overdue list and the 2-hour emergency indicator, by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration.metrics import (
    build_frames,
    emergency_reports,
    local_days,
    overdue,
    sla_compliance,
    sla_outcomes,
    turnaround,
)
from integration.metrics_frames import Frames
from integration.metrics_turnaround import clock_starts
from integration.sla import ReadingCalendar, deadlines
from models.enums import Priority

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = local_days(date(2026, 3, 1), date(2026, 3, 31))
LATE = datetime(2026, 5, 1, tzinfo=UTC)  # long after everything: nothing is pending


def local(day: int, hour: int, minute: int = 0, *, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def study(
    study_id: int,
    arrival: datetime,
    prelim: float | None = None,
    final: float | None = None,
    *,
    priority: str = "routine",
    **extra: Any,
) -> dict[str, Any]:
    """A study arriving at ``arrival``; prelim/final in minutes after arrival."""
    row: dict[str, Any] = {
        "study_id": study_id,
        "accession_number": f"A{study_id}",
        "reading_centre_id": 1,
        "clinic_id": 10,
        "modality": "DX",
        "exam_type_id": 100,
        "priority": priority,
        "quality_rejected": False,
        "completed_at": arrival,
        "started_at": arrival - timedelta(minutes=10),
        "author_id": 7,
        "auditor_id": 8 if final is not None else None,
    }
    if prelim is not None:
        row.update(
            report_id=study_id,
            report_status="final" if final is not None else "preliminary",
            preliminary_at=arrival + timedelta(minutes=prelim),
        )
    if final is not None:
        row["finalised_at"] = arrival + timedelta(minutes=final)
    row.update(extra)
    return row


def by_step(table: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["step"]: row for row in table.iter_rows(named=True)}


def test_turnaround_steps_have_median_p90_p95_in_minutes() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(2, 9), 10, 15),
            study(2, local(2, 10), 20, 50),
            study(3, local(2, 11), 40, 100),
        ],
        deliveries=[
            # report 1: the final's ORU delivered 5 min after sign-off; a later amendment's too
            {"report_id": 1, "outbox_id": 1, "status": "delivered",
             "created_at": local(2, 9, 15), "delivered_at": local(2, 9, 20)},
            {"report_id": 1, "outbox_id": 2, "status": "delivered",
             "created_at": local(3, 9), "delivered_at": local(3, 9, 1)},
            # report 2: queued, never delivered; report 3: nothing queued
            {"report_id": 2, "outbox_id": 3, "status": "pending",
             "created_at": local(2, 10, 50), "delivered_at": None},
        ],
    )  # fmt: skip
    steps = by_step(turnaround(frames))
    prelim = steps["arrival_to_preliminary"]
    assert prelim["count"] == 3
    assert prelim["median_minutes"] == pytest.approx(20)
    assert prelim["p90_minutes"] == pytest.approx(36)  # 20 + 0.8 × (40 - 20), linear
    assert prelim["p95_minutes"] == pytest.approx(38)
    assert steps["preliminary_to_final"]["median_minutes"] == pytest.approx(30)
    assert steps["arrival_to_final"]["median_minutes"] == pytest.approx(50)
    delivered = steps["final_to_delivered"]
    assert delivered["count"] == 1
    assert delivered["median_minutes"] == pytest.approx(5)


def test_turnaround_by_radiologist_and_steps_without_data() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(2, 9), 10, 20, author_id=7),
            study(2, local(2, 9), 30, None, author_id=9),  # not yet audited
        ],
    )
    table = turnaround(frames, by=("radiologist",))
    rows = {(r["author_id"], r["step"]): r["count"] for r in table.iter_rows(named=True)}
    assert rows == {
        (7, "arrival_to_preliminary"): 1,
        (9, "arrival_to_preliminary"): 1,
        (7, "preliminary_to_final"): 1,
        (7, "arrival_to_final"): 1,
    }


def test_sla_routine_needs_both_limits_and_emergency_only_the_final() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(2, 9), 20, 45),  # 20 + 25: met
            study(2, local(2, 10), 30, 60),  # exactly 30 + 30: met (limits inclusive)
            study(3, local(2, 11), 40, 50),  # preliminary late: missed
            study(4, local(2, 12), 10, 45),  # audit 35 min after preliminary: missed
            study(5, local(2, 13), 25, 30, priority="emergency"),  # met
            study(6, local(2, 14), 5, 31, priority="emergency"),  # final 31 min: missed
            study(7, local(2, 15), 29, 59, priority="emergency"),  # 2 routine limits met, not 30
        ],
    )
    outcomes = sla_outcomes(frames, now=LATE)
    status = dict(zip(outcomes["study_id"], outcomes["sla_status"], strict=True))
    assert status == {
        1: "met",
        2: "met",
        3: "missed",
        4: "missed",
        5: "met",
        6: "missed",
        7: "missed",
    }
    table = sla_compliance(frames, now=LATE, by=("priority",))
    rows = {r["priority"]: r for r in table.iter_rows(named=True)}
    assert (rows["routine"]["met"], rows["routine"]["missed"]) == (2, 2)
    assert rows["routine"]["rate"] == pytest.approx(0.5)
    assert (rows["emergency"]["total"], rows["emergency"]["met"]) == (3, 1)
    assert rows["emergency"]["rate"] == pytest.approx(1 / 3)


def test_emergency_at_local_midnight_keys_by_local_hour_day_and_month() -> None:
    """00:10 on 1 April in Shanghai is 16:10 UTC on 31 March: April, hour 0."""
    window = local_days(date(2026, 3, 1), date(2026, 4, 30))
    midnight = local(1, 0, 10, month=4)
    assert midnight.day == 31 and midnight.hour == 16
    frames = build_frames(
        start=window[0],
        end=window[1],
        studies=[
            study(1, midnight, 8, 20, priority="emergency"),
            study(2, local(31, 23, 50), 10, 25, priority="emergency"),  # ends in April
        ],
    )
    by_hour = sla_compliance(frames, now=LATE, by=("hour",))
    assert dict(zip(by_hour["hour"], by_hour["met"], strict=True)) == {0: 1, 23: 1}
    by_month = sla_compliance(frames, now=LATE, by=("month",))
    assert dict(zip(by_month["month"], by_month["total"], strict=True)) == {
        "2026-03": 1,
        "2026-04": 1,
    }
    by_day = sla_compliance(frames, now=LATE, by=("day",))
    assert by_day["day"].to_list() == [date(2026, 3, 31), date(2026, 4, 1)]


def test_arrival_outside_the_window_is_left_out() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(28, 23, 59, month=2), 10, 20),  # February, local time
            study(2, local(1, 0, 0), 10, 20),  # the first instant of March
            study(3, local(1, 0, 0, month=4), 10, 20),  # the end is excluded
        ],
    )
    assert sla_compliance(frames, now=LATE)["total"].to_list() == [1]


def test_a_rejected_study_is_off_the_clock_and_its_retake_has_its_own() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(5, 9), quality_rejected=True),  # no report, asked to retake
            study(2, local(5, 11), 10, 20, retake_of_study_id=1),
            study(3, local(5, 12), 10, None, report_status="cancelled"),
        ],
    )
    outcomes = sla_outcomes(frames, now=LATE)
    assert outcomes["study_id"].to_list() == [2]
    assert outcomes["sla_status"].to_list() == ["met"]
    assert overdue(frames, now=LATE).is_empty()


def test_pending_and_overdue_as_of_now() -> None:
    now = local(20, 12)
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, now - timedelta(minutes=10)),  # routine, 20 min left: pending
            study(2, now - timedelta(minutes=50)),  # no preliminary, 20 min late
            study(3, now - timedelta(minutes=60), 20),  # audit limit passed 10 min ago
            study(4, now - timedelta(minutes=45), 5, priority="emergency"),  # 15 min late
            study(5, now - timedelta(minutes=20), 5),  # audit due in 15 min: pending
            study(6, now - timedelta(minutes=90), 10, 30),  # done in time long ago
            study(7, now - timedelta(minutes=40), 45, 50),  # preliminary written after now
        ],
    )
    outcomes = sla_outcomes(frames, now=now)
    status = dict(zip(outcomes["study_id"], outcomes["sla_status"], strict=True))
    assert status == {
        1: "pending",
        2: "missed",
        3: "missed",
        4: "missed",
        5: "pending",
        6: "met",
        7: "missed",
    }
    late = overdue(frames, now=now)
    assert late.select("study_id", "step").rows() == [
        (2, "preliminary"),
        (4, "final"),
        (3, "final"),
        (7, "preliminary"),
    ]
    minutes = dict(zip(late["study_id"], late["overdue_minutes"], strict=True))
    assert minutes == pytest.approx({2: 20.0, 4: 15.0, 3: 10.0, 7: 10.0})
    assert late["due_at"].to_list()[0] == now - timedelta(minutes=20)


def test_emergency_report_within_two_hours() -> None:
    now = local(25, 12)
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            study(1, local(2, 1), 30, 119, priority="emergency"),
            study(2, local(2, 2), 30, 120, priority="emergency"),  # on the limit: met
            study(3, local(2, 3), 30, 121, priority="emergency"),
            study(4, now - timedelta(hours=3), 30, priority="emergency"),  # still open: missed
            study(5, now - timedelta(hours=1), priority="emergency"),  # 1 h left: pending
            study(6, local(2, 4), 30, 500),  # routine: not counted
        ],
    )
    row = emergency_reports(frames, now=now).row(0, named=True)
    assert (row["total"], row["met"], row["missed"], row["pending"]) == (5, 2, 2, 1)
    assert row["rate"] == pytest.approx(0.5)


def test_empty_selection_reads_no_data() -> None:
    frames = build_frames(start=MARCH[0], end=MARCH[1])
    steps = by_step(turnaround(frames))
    assert set(steps) == {
        "arrival_to_preliminary",
        "preliminary_to_final",
        "arrival_to_final",
        "final_to_delivered",
    }
    assert all(s["count"] == 0 and s["median_minutes"] is None for s in steps.values())
    row = sla_compliance(frames, now=LATE).row(0, named=True)
    assert (row["total"], row["decided"], row["rate"]) == (0, 0, None)
    assert sla_compliance(frames, now=LATE, by=("clinic",)).is_empty()
    assert emergency_reports(frames, now=LATE)["rate"].to_list() == [None]
    assert overdue(frames, now=LATE).is_empty()


def test_all_pending_gives_a_null_rate_not_a_division_by_zero() -> None:
    now = local(20, 12)
    frames = build_frames(
        start=MARCH[0], end=MARCH[1], studies=[study(1, now - timedelta(minutes=5))]
    )
    row = sla_compliance(frames, now=now).row(0, named=True)
    assert (row["total"], row["pending"], row["rate"]) == (1, 1, None)


def test_unknown_breakdown_and_naive_now_are_refused() -> None:
    frames = build_frames(start=MARCH[0], end=MARCH[1])
    with pytest.raises(ValueError, match="technologist"):
        turnaround(frames, by=("technologist",))
    with pytest.raises(ValueError, match="naive"):
        sla_compliance(frames, now=datetime(2026, 3, 1))


# The worklist's rules and the analytics' figures must agree once a reading calendar is set:
# weekdays 08:00-17:00, Monday 9 March a holiday.
OFFICE = ReadingCalendar(
    opens=time(8),
    closes=time(17),
    weekdays=frozenset(range(1, 6)),
    holidays=frozenset({date(2026, 3, 9)}),
    zone=ZONE,
)


def test_out_of_hours_clocks_wait_for_the_reading_calendar() -> None:
    saturday, tuesday = local(7, 10), local(10, 8)
    studies = [
        # Saturday's study waits for Tuesday 08:00 (Monday is a holiday): prelim 08:20, final
        # 08:45, both in time.
        study(1, saturday, prelim=(local(10, 8, 20) - saturday).total_seconds() / 60,
              final=(local(10, 8, 45) - saturday).total_seconds() / 60),
        # In hours at 16:50, preliminary at 17:10 (after closing, but within 30 min); the
        # audit's clock waits for Wednesday 08:00: a final at 08:25 is in time.
        study(2, local(10, 16, 50), prelim=20, final=(local(11, 8, 25) - local(10, 16, 50))
              .total_seconds() / 60),
        # Before opening at 07:00: the clock starts at 08:00, so a preliminary at 08:31 is late.
        study(3, local(10, 7), prelim=91, final=100),
        # An emergency never waits: Saturday 10:00, final 40 min later, missed.
        study(4, saturday, prelim=10, final=40, priority="emergency"),
        # Still open at 08:10 on Tuesday with nothing written: pending until 08:30.
        study(5, tuesday),
    ]  # fmt: skip
    now = local(10, 8, 10)
    calendared = build_frames(start=MARCH[0], end=MARCH[1], studies=studies, calendar=OFFICE)
    around_the_clock = build_frames(start=MARCH[0], end=MARCH[1], studies=studies)

    def status(frames: Frames, at: datetime) -> dict[int, str]:
        outcomes = sla_outcomes(frames, now=at)
        return dict(zip(outcomes["study_id"], outcomes["sla_status"], strict=True))

    assert status(calendared, LATE) == {1: "met", 2: "met", 3: "missed", 4: "missed", 5: "missed"}
    assert status(around_the_clock, LATE)[1] == status(around_the_clock, LATE)[2] == "missed"
    assert status(calendared, now)[5] == "pending"
    due = sla_outcomes(calendared, now=LATE).sort("study_id")
    for row in due.iter_rows(named=True):  # the same deadlines as the worklist's clocks
        expected = deadlines(
            completed_at=row["completed_at"],
            priority=Priority(row["priority"]),
            preliminary_at=row["preliminary_at"],
            calendar=OFFICE,
        )
        if row["priority"] == "routine":
            assert row["preliminary_due_at"] == expected.preliminary_due
            if row["preliminary_at"] is not None:
                assert row["final_due_at"] == expected.final_due
        else:
            assert row["final_due_at"] == expected.final_due


# Where the clocks change: an opening at 02:30 that does not exist on the spring day and a
# 01:30 that happens twice in the autumn; and one closing at midnight.
NEW_YORK = ReadingCalendar(
    opens=time(2, 30),
    closes=None,
    weekdays=frozenset(range(1, 8)),
    holidays=frozenset({date(2026, 7, 4)}),
    zone=ZoneInfo("America/New_York"),
)
AUTUMN = ReadingCalendar(
    opens=time(1, 30),
    closes=time(1, 45),
    weekdays=frozenset(range(1, 8)),
    holidays=frozenset(),
    zone=ZoneInfo("America/New_York"),
)


@settings(max_examples=300, deadline=None)
@given(
    calendar=st.sampled_from([OFFICE, NEW_YORK, AUTUMN]),
    moments=st.lists(
        st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_clock_starts_is_next_opening_for_every_moment(
    calendar: ReadingCalendar, moments: list[datetime]
) -> None:
    column = pl.DataFrame({"at": moments}, schema={"at": pl.Datetime("ns", "UTC")})
    starts = column.select(clock_starts(pl.col("at"), calendar))["at"].to_list()
    assert starts == [calendar.next_opening(moment) for moment in moments]
    for moment, start in zip(moments, starts, strict=True):
        assert start >= moment  # a clock never starts before the study arrived


def test_the_clocks_changing_neither_breaks_nor_turns_back_the_calendar() -> None:
    spring = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST, the night 02:00 is skipped
    column = pl.DataFrame({"at": [spring]}, schema={"at": pl.Datetime("us", "UTC")})
    assert column.select(clock_starts(pl.col("at"), NEW_YORK))["at"].to_list() == [
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 02:30 EST, that is 03:30 EDT
    ]
    # 01:15 EST, the second 01:15 of 1 November: that day's 01:30 (EDT) has passed already.
    repeated = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
    assert AUTUMN.next_opening(repeated) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
