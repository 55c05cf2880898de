"""The avoidable-exam list: a recognisable prior existed and no refusal explains the new exam."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from integration.avoidable import NightlyCheck, avoidable_exams, next_run, total_fee_fen
from integration.database import Database
from integration.recognition import Rules
from integration.settings import Settings
from tests.hub_helpers import hub_environment

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def region(tmp_path: Path, database_url: str) -> Iterator[Database]:
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "demo", "seed", "--scale", "tiny", "--quiet",
         "--fhir-days", "0"],
        env=hub_environment(tmp_path, database_url=database_url),
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    database = Database.from_settings(Settings(data_dir=tmp_path, database_url=database_url))  # type: ignore[arg-type]
    yield database
    database.dispose()


def test_listed_exams_had_a_counting_prior_and_a_refusal_takes_one_off(region: Database) -> None:
    end = datetime.now(UTC) + timedelta(days=1)
    start = end - timedelta(days=365)
    with region.engine.connect() as connection:
        found = avoidable_exams(connection, start=start, end=end, zone=ZONE)
        assert found, "twelve months of the demo county hold repeated exams"
        for exam in found:
            assert exam.prior.performed_on < exam.performed_on
            assert exam.prior.exam_code == exam.exam_code
            assert exam.performed_on - exam.prior.performed_on <= timedelta(days=365)
            assert exam.fee_fen > 0
        assert total_fee_fen(found) == sum(exam.fee_fen for exam in found)
        # With no validity at all nothing counts, so nothing was avoidable.
        nothing = Rules(validity_days={code: 0 for code in {e.exam_code for e in found}})
        assert avoidable_exams(connection, start=start, end=end, zone=ZONE, rules=nothing) == []
    first = found[0]
    with region.engine.begin() as connection:
        study = connection.execute(
            text(
                "SELECT s.patient_id, s.exam_type_id, s.facility_id, coalesce(s.started_at, "
                "s.received_at) AS moment FROM study s WHERE s.study_instance_uid = :uid"
            ),
            {"uid": first.study_uid},
        ).one()
        connection.execute(
            text(
                "INSERT INTO recognition_decision (patient_id, requested_exam_type_id, "
                "facility_id, clinician_ref, outcome, refusal_reason, comment, source, card_id, "
                "avoided_fee_fen, decided_at) VALUES (:p, :e, :f, 'dr-x', 'refused', "
                "'condition_changed', '', 'portal', '', 0, :at)"
            ),
            {
                "p": study.patient_id,
                "e": study.exam_type_id,
                "f": study.facility_id,
                "at": study.moment,
            },
        )
    with region.engine.connect() as connection:
        after = avoidable_exams(connection, start=start, end=end, zone=ZONE)
    removed = {exam.study_uid for exam in found} - {exam.study_uid for exam in after}
    assert first.study_uid in removed
    assert {exam.study_uid for exam in after} < {exam.study_uid for exam in found}
    for exam in found:  # a refusal explains only that patient's exams of that type, near it
        if exam.study_uid in removed:
            assert (exam.patient_id, exam.exam_code) == (first.patient_id, first.exam_code)
            assert abs(exam.performed_on - first.performed_on) <= timedelta(days=4)


def test_the_nightly_check_fills_the_qc_list_once(region: Database) -> None:
    now = datetime.now(UTC)
    check = NightlyCheck(database=region, zone=ZONE, days=365, clock=lambda: now)
    added = check.run_once()
    with region.engine.connect() as connection:
        listed = connection.execute(text("SELECT count(*), sum(fee_fen) FROM avoidable_exam")).one()
        found = avoidable_exams(connection, start=now - timedelta(days=365), end=now, zone=ZONE)
    assert added == len(found) == listed[0] > 0
    assert listed[1] == total_fee_fen(found)
    assert check.run_once() == 0  # the same exams are not listed twice


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 25, 17, 0, tzinfo=UTC), datetime(2026, 11, 25, 18, 0, tzinfo=UTC)),
        (datetime(2026, 11, 25, 18, 0, tzinfo=UTC), datetime(2026, 11, 26, 18, 0, tzinfo=UTC)),
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), datetime(2026, 11, 25, 18, 0, tzinfo=UTC)),
    ],
)
def test_the_check_runs_at_two_in_the_morning_shanghai_time(
    now: datetime, expected: datetime
) -> None:
    assert next_run(now, zone=ZONE) == expected
