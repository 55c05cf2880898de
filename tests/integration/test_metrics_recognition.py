"""Recognition prompts, decisions, rate, savings and refusals against hand-built data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from integration.metrics import (
    Filters,
    build_frames,
    local_days,
    recognition,
    recognition_prompts,
    refusals,
)

ZONE = ZoneInfo("Asia/Shanghai")
SPRING = local_days(date(2026, 3, 1), date(2026, 4, 30))


def local(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZONE).astimezone(UTC)


def decision(number: int, outcome: str, at: datetime, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "decision_id": number,
        "reading_centre_id": 1,
        "clinic_id": 10,
        "modality": "CT",
        "exam_type_id": 100,
        "outcome": outcome,
        "refusal_reason": None,
        "clinician_id": None,
        "clinician_ref": "",
        "source": "portal",
        "card_id": "",
        "avoided_fee_fen": 0,
        "decided_at": at,
    }
    row.update(extra)
    return row


def card(uuid: str, at: datetime, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "card_uuid": uuid,
        "reading_centre_id": 1,
        "clinic_id": 10,
        "modality": "CT",
        "exam_type_id": 100,
        "clinician_ref": "Practitioner/ext-9",
        "avoidable_fee_fen": 15000,
        "issued_at": at,
    }
    row.update(extra)
    return row


def frames_of(filters: Filters | None = None) -> Any:
    return build_frames(
        start=SPRING[0],
        end=SPRING[1],
        filters=filters or Filters(),
        decisions=[
            decision(1, "accepted", local(3, 2), clinician_id=7, avoided_fee_fen=12000),
            decision(2, "refused", local(3, 3), refusal_reason="emergency",
                     clinician_ref="Practitioner/ext-9", source="cds_hooks", card_id="card-2"),
            decision(3, "refused", local(3, 4), refusal_reason="condition_changed",
                     clinician_id=7, clinic_id=11),
            decision(4, "accepted", local(4, 1), clinician_id=8, avoided_fee_fen=8000,
                     clinic_id=11, modality="DX", exam_type_id=200),
            decision(5, "accepted", local(5, 1), avoided_fee_fen=99999),  # May
        ],
        cards=[
            card("card-2", local(3, 3)),  # answered by decision 2: not a second prompt
            card("card-9", local(4, 20)),  # nobody answered
        ],
    )  # fmt: skip


def test_prompts_decisions_rate_and_savings() -> None:
    row = recognition(frames_of()).row(0, named=True)
    assert row == {
        "prompts": 5,
        "decisions": 4,
        "accepted": 2,
        "refused": 2,
        "unanswered": 1,
        "avoided_fee_fen": 20000,
        "recognition_rate": pytest.approx(0.5),
        "exams_saved": 2,
    }


def test_recognition_trend_by_month() -> None:
    trend = recognition(frames_of(), by=("month",))
    assert trend.select("month", "prompts", "decisions", "accepted", "avoided_fee_fen").rows() == [
        ("2026-03", 3, 3, 1, 12000),
        ("2026-04", 2, 1, 1, 8000),
    ]
    assert trend["recognition_rate"].to_list() == pytest.approx([1 / 3, 1.0])


def test_refusals_by_reason_clinician_and_facility() -> None:
    frames = frames_of()
    by_reason = refusals(frames)
    assert by_reason.select("refusal_reason", "refused", "share").rows() == [
        ("condition_changed", 1, 0.5),
        ("emergency", 1, 0.5),
    ]
    by_clinician = refusals(frames, by=("clinician",))
    assert by_clinician.select("clinician", "refused").rows() == [
        ("Practitioner/ext-9", 1),
        ("app_user/7", 1),
    ]
    assert refusals(frames, by=("clinic",)).select("clinic_id", "refused").rows() == [
        (10, 1),
        (11, 1),
    ]
    prompts = recognition_prompts(frames)
    assert prompts.filter(outcome="unanswered")["clinician"].to_list() == ["Practitioner/ext-9"]


def test_filters_on_the_ordering_clinic_and_exam() -> None:
    clinic = recognition(frames_of(Filters(clinic_ids=frozenset({11})))).row(0, named=True)
    assert (clinic["decisions"], clinic["accepted"], clinic["avoided_fee_fen"]) == (2, 1, 8000)
    ct = recognition(frames_of(Filters(modalities=frozenset({"CT"})))).row(0, named=True)
    assert (ct["prompts"], ct["decisions"]) == (4, 3)
    nothing = recognition(frames_of(Filters(exam_type_ids=frozenset())))
    assert nothing.row(0, named=True) == {
        "prompts": 0,
        "decisions": 0,
        "accepted": 0,
        "refused": 0,
        "unanswered": 0,
        "avoided_fee_fen": 0,
        "recognition_rate": None,
        "exams_saved": 0,
    }
    assert refusals(frames_of(Filters(exam_type_ids=frozenset()))).is_empty()
