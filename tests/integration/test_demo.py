"""The demo region's invariants: shape of the county, timestamps, distributions, determinism."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from integration.accounts import authenticate
from integration.database import Database
from integration.demo.seed import DemoOptions, DemoSummary, anchor_for, seed_demo_region
from integration.settings import Settings
from models import Facility, metadata
from models.enums import FacilityKind, FacilityLevel
from models.errors import Conflict
from models.identity import normalise_resident_id

UNTIL = date(2026, 11, 20)
SHANGHAI_HOURS = 8


@dataclass
class Seeded:
    database: Database
    settings: Settings
    summary: DemoSummary

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.database.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]


def _seed(path: Path, *, exams: int, seed: int = 7, url: str | None = None) -> Seeded:
    settings = Settings(data_dir=path, database_url=url or "")  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    summary = seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=seed, exams=exams, until=UNTIL, progress=False),
    )
    return Seeded(database, settings, summary)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    region = _seed(tmp_path_factory.mktemp("demo"), exams=4000)
    yield region
    region.database.dispose()


def _parse(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def test_county_has_three_reading_centres_and_fifteen_townships(seeded: Seeded) -> None:
    with Session(seeded.database.engine) as session:
        facilities = list(session.exec(select(Facility)).all())
    by_id = {f.id: f for f in facilities}
    centres = [f for f in facilities if f.is_reading_centre]
    townships = [f for f in facilities if f.level is FacilityLevel.township]
    villages = [f for f in facilities if f.level is FacilityLevel.village]
    assert len(centres) == 3 and all(f.kind is FacilityKind.hospital for f in centres)
    assert len(townships) == 15
    assert len(villages) >= 15
    assert [f for f in facilities if f.kind is FacilityKind.platform]
    for township in townships:
        assert township.reading_centre_id is not None
        assert by_id[township.reading_centre_id].is_reading_centre
    for village in villages:
        assert village.parent_id is not None
        assert by_id[village.parent_id].level is FacilityLevel.township
    assert {len([t for t in townships if t.reading_centre_id == c.id]) for c in centres} == {5}
    assert seeded.scalar("SELECT count(*) FROM facility_ae_title") >= 15 * 2


def test_each_role_has_a_demo_account_at_a_sensible_facility(seeded: Seeded) -> None:
    rows = seeded.rows(
        "SELECT u.username, u.role, u.title, f.kind, f.is_reading_centre FROM app_user u "
        "JOIN facility f ON f.id = u.facility_id WHERE u.username IN "
        "('admin','radiologist','auditor','clinician','leader','qc','technologist')"
    )
    accounts = {row[0]: row[1:] for row in rows}
    assert set(accounts) == {
        "admin",
        "radiologist",
        "auditor",
        "clinician",
        "leader",
        "qc",
        "technologist",
    }
    for username, (role, _title, _kind, _centre) in accounts.items():
        assert role == username
    assert accounts["radiologist"][3] and accounts["auditor"][3]
    assert accounts["auditor"][1] in ("attending", "associate_chief", "chief")
    assert accounts["technologist"][2] == "health_centre"
    assert accounts["leader"][2] == "bureau"
    with Session(seeded.database.engine) as session:
        for username in accounts:
            user = authenticate(
                session,
                username=username,
                password="huren-demo",
                settings=seeded.settings,
                now=datetime.now(UTC),
            )
            assert user.username == username


def test_history_covers_twelve_months_up_to_the_anchor(seeded: Seeded) -> None:
    anchor = anchor_for(UNTIL, seeded.settings)
    times = [_parse(r[0]) for r in seeded.rows("SELECT requested_at FROM exam_order")]
    assert min(times) >= anchor - timedelta(days=366)
    assert max(times) <= anchor + timedelta(hours=5)  # only tomorrow-morning bookings
    months = {(t + timedelta(hours=SHANGHAI_HOURS)).strftime("%Y-%m") for t in times}
    assert len(months) >= 12


def test_timestamps_follow_the_workflow(seeded: Seeded) -> None:
    rows = seeded.rows(
        "SELECT o.requested_at, s.started_at, s.received_at, s.completed_at, "
        "r.preliminary_at, r.finalised_at, r.amended_at FROM report r "
        "JOIN study s ON s.id = r.study_id JOIN exam_order o ON o.id = s.order_id"
    )
    assert len(rows) > 3000
    for row in rows:
        chain = [_parse(value) for value in row if value is not None]
        assert chain == sorted(chain), row
    bad_revisions = seeded.scalar(
        "SELECT count(*) FROM report r WHERE r.version <> "
        "(SELECT max(v.version) FROM report_revision v WHERE v.report_id = r.id) "
        "OR r.impression <> (SELECT v.impression FROM report_revision v "
        "WHERE v.report_id = r.id AND v.version = r.version)"
    )
    assert bad_revisions == 0
    assert (
        seeded.scalar(
            "SELECT count(*) FROM critical_result WHERE notified_at < flagged_at "
            "OR acknowledged_at < notified_at"
        )
        == 0
    )


def _minutes(start: Any, end: Any) -> float:
    return (_parse(end) - _parse(start)).total_seconds() / 60


def test_distributions_are_realistic(seeded: Seeded) -> None:
    studies = seeded.scalar("SELECT count(*) FROM study WHERE retake_of_study_id IS NULL")
    emergency = seeded.scalar(
        "SELECT count(*) FROM study WHERE priority = 'emergency' AND retake_of_study_id IS NULL"
    )
    assert 0.06 <= emergency / studies <= 0.15

    finals = seeded.scalar("SELECT count(*) FROM report WHERE finalised_at IS NOT NULL")
    corrected = seeded.scalar("SELECT count(*) FROM report WHERE corrected")
    assert 0.03 <= corrected / finals <= 0.08

    retakes = seeded.scalar("SELECT count(*) FROM qc_event WHERE retake_requested")
    assert 0.008 <= retakes / studies <= 0.035
    assert seeded.scalar("SELECT count(*) FROM study WHERE retake_of_study_id IS NOT NULL") > 0

    routine = seeded.rows(
        "SELECT s.completed_at, r.preliminary_at, s.started_at FROM report r "
        "JOIN study s ON s.id = r.study_id WHERE s.priority = 'routine'"
    )
    delays = [(_minutes(c, p), (_parse(st) + timedelta(hours=8)).hour) for c, p, st in routine]
    within = sum(1 for delay, _ in delays if delay <= 30) / len(delays)
    assert 0.80 <= within <= 0.97, within  # most in time, with a real tail of late ones
    day = [d for d, hour in delays if 9 <= hour < 17]
    night = [d for d, hour in delays if hour >= 21 or hour < 7]
    assert statistics.median(night) > statistics.median(day) * 1.2

    emergencies = seeded.rows(
        "SELECT s.completed_at, r.finalised_at FROM report r JOIN study s ON s.id = r.study_id "
        "WHERE s.priority = 'emergency' AND r.finalised_at IS NOT NULL"
    )
    in_time = sum(1 for c, f in emergencies if _minutes(c, f) <= 30) / len(emergencies)
    assert in_time >= 0.8

    critical = seeded.rows(
        "SELECT flagged_at, notified_at FROM critical_result WHERE notified_at IS NOT NULL"
    )
    assert critical
    notified = sum(1 for f, n in critical if _minutes(f, n) <= 10) / len(critical)
    assert 0.75 <= notified < 1.0
    assert 0.002 <= len(critical) / finals <= 0.03
    assert seeded.scalar("SELECT count(*) FROM consultation") > 0


def test_patients_have_valid_ids_and_repeat_exams_across_facilities(seeded: Seeded) -> None:
    ids = [
        r[0] for r in seeded.rows("SELECT value FROM patient_identifier WHERE kind = 'resident_id'")
    ]
    patients = seeded.scalar("SELECT count(*) FROM patient")
    assert len(ids) >= 0.9 * patients
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert normalise_resident_id(value) == value
    names = [r[0] for r in seeded.rows("SELECT name FROM patient")]
    assert all(2 <= len(name) <= 4 for name in names)

    across = seeded.scalar(
        "SELECT count(*) FROM (SELECT patient_id, exam_type_id FROM study "
        "WHERE retake_of_study_id IS NULL GROUP BY patient_id, exam_type_id "
        "HAVING count(DISTINCT facility_id) > 1) repeats"
    )
    assert across > 20

    decisions = seeded.rows(
        "SELECT outcome, refusal_reason, new_order_id, avoided_fee_fen, prior_report_id "
        "FROM recognition_decision"
    )
    accepted = [d for d in decisions if d[0] == "accepted"]
    refused = [d for d in decisions if d[0] == "refused"]
    assert accepted and refused
    assert all(d[2] is None and d[3] > 0 and d[4] for d in accepted)
    assert all(d[1] and d[2] for d in refused)


def test_worklist_has_live_work_near_the_anchor(seeded: Seeded) -> None:
    scheduled = seeded.scalar("SELECT count(*) FROM exam_order WHERE status = 'scheduled'")
    assert scheduled >= 15  # bookings for the modality worklist at each imaging site


def test_same_seed_same_region_other_seed_other_region(tmp_path: Path) -> None:
    def digest(region: Seeded) -> str:
        hasher = hashlib.sha256()
        for table in (
            "facility",
            "app_user",
            "patient",
            "patient_identifier",
            "exam_order",
            "study",
            "report",
            "report_revision",
            "recognition_decision",
        ):
            columns = [
                c.name for c in metadata.tables[table].columns if c.name not in ("password_hash",)
            ]
            for row in region.rows(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id"):
                hasher.update(repr(tuple(row)).encode())
        return hasher.hexdigest()

    first = _seed(tmp_path / "a", exams=600, seed=11)
    second = _seed(tmp_path / "b", exams=600, seed=11)
    third = _seed(tmp_path / "c", exams=600, seed=12)
    assert first.summary.counts == second.summary.counts
    assert digest(first) == digest(second)
    assert digest(first) != digest(third)


def test_seed_refuses_a_database_that_has_a_region(seeded: Seeded) -> None:
    with pytest.raises(Conflict, match="empty database"):
        seed_demo_region(
            seeded.database,
            settings=seeded.settings,
            options=DemoOptions(exams=10, until=UNTIL, progress=False),
        )


@pytest.mark.postgres
def test_seed_on_postgresql_leaves_sequences_usable(postgres_url: str, tmp_path: Path) -> None:
    region = _seed(tmp_path, exams=300, url=postgres_url)
    try:
        with region.database.session() as session:
            facility = Facility(
                code="NEW-1", name="新机构", level=FacilityLevel.village, kind=FacilityKind.clinic
            )
            session.add(facility)
            session.flush()
            assert facility.id is not None and facility.id > region.summary.facilities
        assert region.scalar("SELECT count(*) FROM report") > 200
    finally:
        region.database.dispose()
