"""The frames: building them by hand, their checks, every metric on no data, and
``load_frames`` over a seeded demo county cross-checked with plain SQL counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy import and_, func, insert, select, update

from integration import metrics
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.metrics import (
    Dimension,
    Filters,
    Frames,
    build_frames,
    load_frames,
    local_days,
)
from integration.metrics_frames import STUDY_SCHEMA, frame
from integration.report_return import queue_report_return
from integration.settings import Settings
from models import metadata
from models.enums import OutboxStatus
from tests.databases import DemoSnapshots

T = metadata.tables
UNTIL = date(2026, 11, 20)
YEAR = local_days(date(2025, 11, 21), UNTIL)
H1 = local_days(date(2026, 1, 1), date(2026, 6, 30))
NOW = YEAR[1]
SIGNED = ("final", "amended", "corrected")


# ------------------------------------------------------------------ by hand


def test_local_days_are_the_region_s_midnights() -> None:
    start, end = local_days(date(2026, 3, 1), date(2026, 3, 31))
    assert start.astimezone(UTC) == datetime(2026, 2, 28, 16, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 3, 31, 16, tzinfo=UTC)
    with pytest.raises(ValueError, match="before"):
        local_days(date(2026, 3, 2), date(2026, 3, 1))


def test_frames_are_checked_and_normalised_to_utc() -> None:
    start, end = local_days(date(2026, 3, 1), date(2026, 3, 31))
    frames = build_frames(start=start, end=end)
    assert frames.start.tzinfo is UTC and frames.start == start
    with pytest.raises(ValueError, match="aware"):
        Frames(start=datetime(2026, 3, 1), end=end)
    with pytest.raises(ValueError, match="ends before"):
        Frames(start=end, end=start)
    with pytest.raises(ValueError, match="studies lacks"):
        Frames(start=start, end=end, studies=pl.DataFrame({"study_id": [1]}))
    with pytest.raises(ValueError, match="not in the schema"):
        frame(STUDY_SCHEMA, [{"study_id": 1, "colour": "red"}])
    with pytest.raises(ValueError, match="Nowhere"):
        Frames(start=start, end=end, zone="Nowhere/Town")


def test_every_metric_reads_no_data_as_zero_counts_and_null_rates() -> None:
    frames = build_frames(start=YEAR[0], end=YEAR[1])
    headline = metrics.qc_indicators(frames, now=NOW)
    for field in dataclasses.fields(headline):
        share = getattr(headline, field.name)
        assert (share.numerator, share.denominator, share.rate) == (0, 0, None), field.name
    single_rows = [
        metrics.sla_compliance(frames, now=NOW),
        metrics.emergency_reports(frames, now=NOW),
        metrics.corrections(frames),
        metrics.critical_notifications(frames, now=NOW),
        metrics.writing_compliance(frames),
        metrics.image_quality(frames),
        metrics.retake_rate(frames),
        metrics.positive_rate(frames),
        metrics.volume(frames),
        metrics.consultations(frames),
        metrics.recognition(frames),
    ]
    for table in single_rows:
        assert table.height == 1
        row = table.row(0, named=True)
        assert all(value in (0, None) for value in row.values()), row
    assert metrics.turnaround(frames)["count"].to_list() == [0, 0, 0, 0]
    for table in (
        metrics.overdue(frames, now=NOW),
        metrics.utilisation(frames),
        metrics.refusals(frames),
        metrics.volume(frames, by=("day", "clinic")),
    ):
        assert table.is_empty()
    statement = metrics.settlement(frames, settings=Settings())
    assert (statement.reports, statement.amount_fen) == (0, 0)


# ---------------------------------------------------------- the demo county


@dataclass
class County:
    database: Database
    settings: Settings
    delivered_report: int
    odd_study: int  # no exam type, ModalitiesInStudy CT\SR
    foreign_study: int
    clinic: int  # a township health centre with many exams

    def scalar(self, statement: Any) -> Any:
        with self.database.engine.connect() as connection:
            return connection.execute(statement).scalar_one()

    def frames(
        self, window: tuple[datetime, datetime] = YEAR, filters: Filters | None = None
    ) -> Frames:
        with self.database.engine.connect() as connection:
            return load_frames(
                connection,
                start=window[0],
                end=window[1],
                filters=filters or Filters(),
                zone=self.settings.timezone,
            )


def _in(column: Any, window: tuple[datetime, datetime]) -> Any:
    return and_(column >= window[0], column < window[1])


@pytest.fixture(scope="module")
def county(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str,
    demo_snapshots: DemoSnapshots,
) -> Iterator[County]:
    """2000 exams of demo history, plus an ORU delivered, a card and two odd studies."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("metrics"), database_url=module_database_url
    )
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=11, exams=2000, until=UNTIL, progress=False),
    )
    study, report, order = T["study"], T["report"], T["exam_order"]
    with database.engine.begin() as connection:
        chosen = connection.execute(
            select(report.c.id, report.c.finalised_at, order.c.ordering_facility_id)
            .join(order, order.c.id == report.c.order_id)
            .where(report.c.status == "final", report.c.finalised_at >= H1[0])
            .order_by(report.c.id)
            .limit(1)
        ).one()
        connection.execute(
            update(T["facility"])
            .where(T["facility"].c.id == chosen.ordering_facility_id)
            .values(hl7_host="127.0.0.1", hl7_port=2576)
        )
        assert queue_report_return(
            connection, report_id=chosen.id, now=chosen.finalised_at, settings=settings
        )
        connection.execute(
            update(T["outbox"])
            .where(T["outbox"].c.subject_id == chosen.id, T["outbox"].c.channel == "hl7")
            .values(
                status=OutboxStatus.delivered,
                delivered_at=chosen.finalised_at + timedelta(minutes=3),
            )
        )
        clinic = connection.execute(
            select(study.c.facility_id)
            .group_by(study.c.facility_id)
            .order_by(func.count().desc(), study.c.facility_id)
            .limit(1)
        ).scalar_one()
        arrived = datetime(2026, 3, 3, 2, tzinfo=UTC)
        odd_ids = []
        for number, source in enumerate((None, "province-node"), start=1):
            odd_ids.append(
                connection.execute(
                    insert(study)
                    .values(
                        study_instance_uid=f"2.25.999{number}",
                        facility_id=clinic,
                        reading_centre_id=None,
                        modalities="CT\\SR",
                        body_part="CHEST",
                        description="",
                        station_name="",
                        priority="routine",
                        started_at=arrived - timedelta(minutes=10),
                        received_at=arrived - timedelta(minutes=2),
                        last_instance_at=arrived - timedelta(minutes=2),
                        completed_at=arrived,
                        status="complete",
                        reading_status="awaiting_preliminary",
                        num_series=1,
                        num_instances=1,
                        quality_rejected=False,
                        dicom_patient_id="",
                        dicom_patient_name="",
                        demographics_conflict=False,
                        source_node=source,
                    )
                    .returning(study.c.id)
                ).scalar_one()
            )
        exam_type = connection.execute(select(func.min(T["exam_type"].c.id))).scalar_one()
        for number, recognisable in enumerate((True, False)):
            connection.execute(
                insert(T["recognition_card"]).values(
                    card_uuid=f"00000000-0000-0000-0000-00000000000{number}",
                    hook_instance="hook",
                    service="huren-prior-exams",
                    requested_exam_type_id=exam_type,
                    prior_key="2.25.1",
                    prior_source="",
                    recognisable=recognisable,
                    facility_id=clinic,
                    clinician_ref="Practitioner/ext-1",
                    draft_order_ref="",
                    avoidable_fee_fen=1000,
                    issued_at=arrived,
                )
            )
    yield County(database, settings, chosen.id, odd_ids[0], odd_ids[1], clinic)
    database.dispose()


def test_load_frames_reads_typed_utc_frames(county: County) -> None:
    frames = county.frames()
    for name in ("studies", "qc_events", "critical_results", "decisions", "deliveries"):
        table = getattr(frames, name)
        assert not table.is_empty(), name
        for column, dtype in table.schema.items():
            if column.endswith("_at"):
                assert dtype == pl.Datetime("us", "UTC"), (name, column)
    studies = frames.studies
    assert county.foreign_study not in studies["study_id"].to_list()
    odd = studies.filter(study_id=county.odd_study).row(0, named=True)
    assert (odd["modality"], odd["exam_type_id"], odd["report_id"]) == ("CT", None, None)
    assert studies["priority"].unique().sort().to_list() == ["emergency", "routine"]
    assert frames.cards["clinician_ref"].to_list() == ["Practitioner/ext-1"]


def test_counts_match_sql(county: County) -> None:
    frames = county.frames()
    study, report = T["study"], T["report"]
    local_study = study.c.source_node.is_(None)

    arrived = county.scalar(
        select(func.count()).where(local_study, _in(study.c.completed_at, YEAR))
    )
    assert metrics.retake_rate(frames)["studies"].item() == arrived

    on_clock = county.scalar(
        select(func.count())
        .select_from(study.outerjoin(report, report.c.study_id == study.c.id))
        .where(
            local_study,
            _in(study.c.completed_at, YEAR),
            study.c.quality_rejected.is_(False),
            func.coalesce(report.c.status, "") != "cancelled",
        )
    )
    sla = metrics.sla_compliance(frames, now=NOW).row(0, named=True)
    assert sla["total"] == on_clock
    assert sla["met"] + sla["missed"] + sla["pending"] == on_clock
    assert 0 <= sla["rate"] <= 1

    performed = county.scalar(
        select(func.count()).where(
            local_study,
            _in(func.coalesce(study.c.started_at, study.c.received_at), YEAR),
        )
    )
    assert metrics.volume(frames)["exams"].item() == performed

    finalised = county.scalar(
        select(func.count()).where(report.c.status.in_(SIGNED), _in(report.c.finalised_at, YEAR))
    )
    corrected = county.scalar(
        select(func.count()).where(
            report.c.status.in_(SIGNED),
            _in(report.c.finalised_at, YEAR),
            report.c.corrected.is_(True),
        )
    )
    correction = metrics.corrections(frames).row(0, named=True)
    assert (correction["finalised"], correction["corrected"]) == (finalised, corrected)

    decision = T["recognition_decision"]
    decided = county.scalar(select(func.count()).where(_in(decision.c.decided_at, YEAR)))
    saved = county.scalar(
        select(func.coalesce(func.sum(decision.c.avoided_fee_fen), 0)).where(
            _in(decision.c.decided_at, YEAR), decision.c.outcome == "accepted"
        )
    )
    recognition = metrics.recognition(frames).row(0, named=True)
    assert (recognition["decisions"], recognition["avoided_fee_fen"]) == (decided, saved)
    assert recognition["prompts"] == decided + 1  # the unanswered recognisable card

    critical = T["critical_result"]
    flagged = county.scalar(select(func.count()).where(_in(critical.c.flagged_at, YEAR)))
    assert metrics.critical_notifications(frames, now=NOW)["total"].item() == flagged

    qc = T["qc_event"]
    graded = county.scalar(
        select(func.count()).where(qc.c.grade.is_not(None), _in(qc.c.created_at, YEAR))
    )
    assert metrics.image_quality(frames)["graded"].item() == graded

    consultation = T["consultation"]
    asked = county.scalar(select(func.count()).where(_in(consultation.c.requested_at, YEAR)))
    assert metrics.consultations(frames)["requested"].item() == asked


def test_settlement_reconciles_with_the_reports(county: County) -> None:
    report, study, exam = T["report"], T["study"], T["exam_type"]
    frames = county.frames()
    statement = metrics.settlement(frames, settings=county.settings)
    parts = county.scalar(
        select(func.sum(exam.c.body_part_count))
        .select_from(
            report.join(study, study.c.id == report.c.study_id).join(
                exam, exam.c.id == study.c.exam_type_id
            )
        )
        .where(report.c.status.in_(SIGNED), _in(report.c.finalised_at, YEAR))
    )
    assert statement.body_parts == parts
    assert statement.amount_fen == parts * county.settings.settlement_rate_fen
    assert statement.clinic_fen == parts * county.settings.settlement_clinic_share_fen
    for table in (statement.lines, statement.by_reading_centre, statement.by_clinic):
        assert table["amount_fen"].sum() == statement.amount_fen
        assert table["clinic_fen"].sum() + table["bureau_fen"].sum() == statement.amount_fen
    assert statement.by_reading_centre["reports"].sum() == statement.reports
    assert set(statement.by_reading_centre["half_year"]) == {"2025-H2", "2026-H1", "2026-H2"}
    first_half = metrics.settlement(county.frames(H1), settings=county.settings)
    from_year = statement.by_reading_centre.filter(half_year="2026-H1")
    assert first_half.by_reading_centre.equals(from_year)


def test_final_to_delivered_follows_the_oru_outbox_row(county: County) -> None:
    frames = county.frames()
    assert frames.deliveries["report_id"].to_list() == [county.delivered_report]
    step = metrics.turnaround(frames).filter(step="final_to_delivered").row(0, named=True)
    assert step["count"] == 1
    assert step["median_minutes"] == pytest.approx(3.0)


def test_sql_filters_agree_with_the_frame_filters(county: County) -> None:
    """Filtering while loading and filtering loaded frames give the same figures."""
    everything = county.frames()
    for filters in (
        Filters(clinic_ids=frozenset({county.clinic})),
        Filters(modalities=frozenset({"CT"})),
        Filters(reading_centre_ids=frozenset({3}), exam_type_ids=frozenset(range(1, 40))),
        Filters(clinic_ids=frozenset()),
    ):
        loaded = county.frames(filters=filters)
        narrowed = dataclasses.replace(everything, filters=filters)
        for metric in (
            lambda f: metrics.sla_compliance(f, now=NOW, by=("month",)),
            lambda f: metrics.corrections(f, by=("radiologist",)),
            lambda f: metrics.retake_rate(f, by=("technologist",)),
            lambda f: metrics.recognition(f, by=("month",)),
            lambda f: metrics.image_quality(f, by=("clinic",)),
            lambda f: metrics.volume(f, by=("station",)),
            lambda f: metrics.settlement(f, settings=county.settings).by_clinic,
        ):
            assert metric(loaded).equals(metric(narrowed)), filters
    odd_in_ct = county.frames(filters=Filters(modalities=frozenset({"CT"})))
    assert county.odd_study in odd_in_ct.studies["study_id"].to_list()
    nothing = county.frames(filters=Filters(clinic_ids=frozenset()))
    assert nothing.studies.is_empty() and nothing.decisions.is_empty()
    assert metrics.sla_compliance(nothing, now=NOW)["rate"].to_list() == [None]


def test_sla_and_corrections_stay_between_zero_and_one_per_group(county: County) -> None:
    frames = county.frames()
    dimensions: tuple[Dimension, ...] = (
        "reading_centre", "radiologist", "clinic", "modality", "exam_type", "hour", "month"
    )  # fmt: skip
    for dimension in dimensions:
        table = metrics.sla_compliance(frames, now=NOW, by=(dimension,))
        assert table["total"].sum() == metrics.sla_compliance(frames, now=NOW)["total"].item()
        assert table["rate"].drop_nulls().is_between(0, 1).all()
    by_month = metrics.corrections(frames, by=("month",))
    assert by_month["correction_rate"].is_between(0, 1).all()
    assert len(by_month) == 13  # 21 November to 20 November, local months
    assert metrics.overdue(frames, now=NOW).height <= len(frames.studies)
