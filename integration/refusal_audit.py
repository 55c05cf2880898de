"""The monthly refusal audit: a reproducible 10% sample of refusals, drawn once and recorded.

The draw is seeded by the month (``huren-refusal-audit/2026-10``), so anyone
can repeat it from the same decisions and get the same sample; once drawn
it is stored and never redrawn, so later decisions cannot shift it.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, update

from models import metadata
from models.enums import RecognitionOutcome
from models.errors import NotFound, ValidationError

T = metadata.tables
SHARE = 0.10


@dataclass(frozen=True)
class SampleReport:
    month: str
    seed: str
    refusals: int
    drawn: int
    reviewed: int
    justified: int


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in ``zone``, as UTC."""
    try:
        year, number = (int(part) for part in month.split("-"))
        first = datetime.combine(datetime(year, number, 1).date(), time(0), tzinfo=zone)
    except ValueError:
        raise ValidationError(f"{month!r} is not a month like 2026-10", field="month") from None
    following = datetime(year + number // 12, number % 12 + 1, 1).date()
    last = datetime.combine(following, time(0), tzinfo=zone)
    return first.astimezone(UTC), last.astimezone(UTC)


def seed_for(month: str) -> str:
    return f"huren-refusal-audit/{month}"


def draw(refusal_ids: list[int], *, seed: str, share: float = SHARE) -> list[int]:
    """The sample: ``ceil(share × n)`` of the ids, chosen by a generator seeded with ``seed``."""
    if not refusal_ids:
        return []
    size = math.ceil(share * len(refusal_ids))
    generator = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    return sorted(generator.sample(sorted(refusal_ids), size))


def draw_month(connection: Connection, *, month: str, zone: ZoneInfo, now: datetime) -> list[int]:
    """Draw and record the month's sample (once); the decision ids in it."""
    samples, decisions = T["refusal_sample"], T["recognition_decision"]
    existing = [
        int(row.decision_id)
        for row in connection.execute(select(samples.c.decision_id).where(samples.c.month == month))
    ]
    if existing:
        return sorted(existing)
    start, end = month_bounds(month, zone)
    if end > now:
        raise ValidationError(f"{month} has not ended; draw its sample after it", field="month")
    refusals = [
        int(row.id)
        for row in connection.execute(
            select(decisions.c.id).where(
                decisions.c.outcome == RecognitionOutcome.refused,
                decisions.c.decided_at >= start,
                decisions.c.decided_at < end,
            )
        )
    ]
    chosen = draw(refusals, seed=seed_for(month))
    if chosen:
        connection.execute(
            insert(samples),
            [
                {
                    "month": month,
                    "seed": seed_for(month),
                    "decision_id": decision_id,
                    "drawn_at": now,
                    "justified": None,
                    "note": "",
                    "reviewer_id": None,
                    "reviewed_at": None,
                }
                for decision_id in chosen
            ],
        )
    return chosen


def review(
    connection: Connection,
    *,
    month: str,
    decision_id: int,
    justified: bool,
    note: str,
    reviewer_id: int | None,
    now: datetime,
) -> None:
    samples = T["refusal_sample"]
    done = connection.execute(
        update(samples)
        .where(samples.c.month == month, samples.c.decision_id == decision_id)
        .values(justified=justified, note=note[:500], reviewer_id=reviewer_id, reviewed_at=now)
    )
    if done.rowcount == 0:
        raise NotFound(f"decision {decision_id} is not in the {month} sample")


def sample_report(connection: Connection, *, month: str, zone: ZoneInfo) -> SampleReport:
    samples, decisions = T["refusal_sample"], T["recognition_decision"]
    start, end = month_bounds(month, zone)
    refusals = len(
        connection.execute(
            select(decisions.c.id).where(
                decisions.c.outcome == RecognitionOutcome.refused,
                decisions.c.decided_at >= start,
                decisions.c.decided_at < end,
            )
        ).all()
    )
    rows = connection.execute(select(samples.c.justified).where(samples.c.month == month)).all()
    return SampleReport(
        month=month,
        seed=seed_for(month),
        refusals=refusals,
        drawn=len(rows),
        reviewed=sum(1 for row in rows if row.justified is not None),
        justified=sum(1 for row in rows if row.justified),
    )
