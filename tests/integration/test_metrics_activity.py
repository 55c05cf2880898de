"""Volume, CT/MR utilisation and consultations against hand-built data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from integration.metrics import (
    Filters,
    build_frames,
    consultations,
    local_days,
    utilisation,
    volume,
)

ZONE = ZoneInfo("Asia/Shanghai")
MARCH = local_days(date(2026, 3, 1), date(2026, 3, 31))


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def exam(
    study_id: int,
    started: datetime | None,
    minutes: float | None,
    *,
    station: str = "CT-A",
    modality: str = "CT",
    clinic_id: int = 10,
    **extra: Any,
) -> dict[str, Any]:
    received = (started or local(1, 8)) + timedelta(minutes=minutes or 1)
    row: dict[str, Any] = {
        "study_id": study_id,
        "reading_centre_id": 1,
        "clinic_id": clinic_id,
        "modality": modality,
        "exam_type_id": 100,
        "station_name": station,
        "started_at": started,
        "received_at": received,
        "last_instance_at": started + timedelta(minutes=minutes)
        if started and minutes is not None
        else received,
        "completed_at": received + timedelta(minutes=1),
    }
    row.update(extra)
    return row


def test_volume_per_local_day_clinic_modality_and_device() -> None:
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            exam(1, local(2, 0, 5), 10),  # 2 March local, 1 March in UTC
            exam(2, local(2, 9), 10, station="DR-1", modality="DX"),
            exam(3, None, None, received_at=local(3, 9)),  # no start: when received
            exam(4, local(3, 9), 10, clinic_id=11, station="CT-B"),
            exam(5, local(1, 0, 0) - timedelta(minutes=1), 10),  # 28 February, local
        ],
    )
    assert volume(frames)["exams"].to_list() == [4]
    per_day = volume(frames, by=("day",))
    assert per_day.rows() == [(date(2026, 3, 2), 2), (date(2026, 3, 3), 2)]
    per_device = volume(frames, by=("clinic", "station"))
    assert per_device.rows() == [(10, "CT-A", 2), (10, "DR-1", 1), (11, "CT-B", 1)]
    assert volume(frames, by=("modality",)).rows() == [("CT", 3), ("DX", 1)]


def test_utilisation_flags_idle_normal_and_overloaded_station_days() -> None:
    busy_day = [exam(n, local(2, 8) + timedelta(hours=n), 60) for n in range(8)]  # 480 min
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        studies=[
            *busy_day,
            exam(20, local(2, 9), 60, station="MR-1", modality="MR"),
            exam(21, local(2, 11), 60, station="MR-1", modality="MR"),
            exam(22, local(2, 13), 60, station="MR-1", modality="MR"),
            exam(23, local(2, 15), 60, station="MR-1", modality="MR"),  # 240 min: normal
            exam(30, local(3, 9), 300, station="CT-B"),  # 5 h: an upload, not a scan → 15
            exam(31, None, None, station="CT-B", received_at=local(3, 10)),  # no start → 15
            exam(32, local(3, 11), 0, station="CT-B"),  # zero length → 15
            exam(40, local(2, 9), 30, station="DR-1", modality="DX"),  # not CT/MR
        ],
    )
    table = utilisation(frames)
    rows = {
        (r["station_name"], r["day"]): (r["exams"], r["estimated"], r["busy_minutes"], r["flag"])
        for r in table.iter_rows(named=True)
    }
    second, third = date(2026, 3, 2), date(2026, 3, 3)
    assert rows == {
        ("CT-A", second): (8, 0, pytest.approx(480.0), "overloaded"),
        ("CT-A", third): (0, 0, 0.0, "idle"),
        ("CT-B", second): (0, 0, 0.0, "idle"),
        ("CT-B", third): (3, 3, pytest.approx(45.0), "idle"),
        ("MR-1", second): (4, 0, pytest.approx(240.0), "normal"),
        ("MR-1", third): (0, 0, 0.0, "idle"),
    }
    mr = table.filter(station_name="MR-1", day=second)
    assert mr["utilisation"].to_list() == [pytest.approx(0.5)]


def test_utilisation_thresholds_and_settings_are_parameters() -> None:
    frames = build_frames(
        start=MARCH[0], end=MARCH[1], studies=[exam(1, local(2, 9), 100)]
    )  # 100 of 480 minutes: 0.208
    assert utilisation(frames)["flag"].to_list() == ["normal"]
    assert utilisation(frames, idle_below=0.25)["flag"].to_list() == ["idle"]
    assert utilisation(frames, day_minutes=100)["flag"].to_list() == ["overloaded"]
    with pytest.raises(ValueError, match="US"):
        utilisation(frames, modalities=("CT", "US"))
    empty = build_frames(start=MARCH[0], end=MARCH[1])
    assert utilisation(empty).is_empty()


def test_consultations_requested_answered_and_median_time_by_centre() -> None:
    def consultation(number: int, centre: int, asked: datetime, **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "consultation_id": number,
            "study_id": number,
            "reading_centre_id": centre,
            "clinic_id": 10,
            "modality": "CT",
            "exam_type_id": 100,
            "expert_centre_id": 2,
            "status": "requested",
            "requested_at": asked,
        }
        row.update(extra)
        return row

    asked = local(5, 9)
    frames = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        consultations=[
            consultation(1, 1, asked, status="answered", answered_at=asked + timedelta(minutes=30)),
            consultation(2, 1, asked, status="answered", answered_at=asked + timedelta(minutes=90)),
            consultation(3, 1, asked, status="cancelled"),
            consultation(4, 1, asked),
            consultation(5, 3, asked),
            consultation(6, 1, local(1, 0) - timedelta(seconds=1)),  # February
        ],
    )
    table = consultations(frames, by=("reading_centre",))
    rows = {r["reading_centre_id"]: r for r in table.iter_rows(named=True)}
    first = rows[1]
    assert (first["requested"], first["answered"], first["cancelled"], first["open"]) == (
        4,
        2,
        1,
        1,
    )
    assert first["median_answer_minutes"] == pytest.approx(60)
    assert first["answer_rate"] == pytest.approx(0.5)
    assert (rows[3]["requested"], rows[3]["answered"], rows[3]["median_answer_minutes"]) == (
        1,
        0,
        None,
    )
    assert consultations(frames, by=("expert_centre",))["requested"].to_list() == [5]
    only_centre_3 = build_frames(
        start=MARCH[0],
        end=MARCH[1],
        filters=Filters(reading_centre_ids=frozenset({3})),
        consultations=frames.consultations.to_dicts(),
    )
    assert consultations(only_centre_3)["requested"].to_list() == [1]
