"""The data behind each analytics page, by hand, and the portal's entry over the demo county."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from integration import analytics
from integration.analytics import (
    Dashboards,
    Period,
    consultations_page,
    equipment_page,
    key_figure_table,
    leader_page,
    named,
    narrowed,
    quality_page,
    recognition_page,
    settlement_page,
    station_summary,
    turnaround_distribution,
    turnaround_page,
)
from integration.analytics_store import AnalyticsStore
from integration.kpi import Figure, monthly_report
from integration.metrics import Filters, Frames, build_frames, local_days
from integration.settings import Settings
from tests.integration.test_metrics import County, county

__all__ = ["county"]

ZONE = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings()
SEPT_OCT = local_days(date(2026, 9, 1), date(2026, 10, 31))
LATE = datetime(2026, 12, 1, tzinfo=UTC)
NAMES = {1: "县医院", 2: "中医院", 10: "甲镇卫生院", 11: "乙镇卫生院"}


def local(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def study(
    study_id: int,
    arrival: datetime,
    final_after: float | None,
    *,
    centre: int = 1,
    clinic: int = 10,
    modality: str = "DX",
    **extra: Any,
) -> dict[str, Any]:
    """A routine study: preliminary at half the final time, final ``final_after`` min later."""
    row: dict[str, Any] = {
        "study_id": study_id,
        "accession_number": f"A{study_id}",
        "reading_centre_id": centre,
        "clinic_id": clinic,
        "modality": modality,
        "exam_type_id": 100,
        "station_name": f"{modality}-1",
        "priority": "routine",
        "quality_rejected": False,
        "started_at": arrival - timedelta(minutes=10),
        "last_instance_at": arrival - timedelta(minutes=2),
        "received_at": arrival - timedelta(minutes=2),
        "completed_at": arrival,
        "body_part_count": 1,
        "author_id": 7,
    }
    if final_after is not None:
        row.update(
            report_id=study_id,
            report_status="final",
            auditor_id=8,
            preliminary_at=arrival + timedelta(minutes=final_after / 2),
            finalised_at=arrival + timedelta(minutes=final_after),
            findings="双肺纹理清晰",
            impression="未见异常",
        )
    row.update(extra)
    return row


def two_months(filters: Filters | None = None) -> Frames:
    """September: 2 studies (one late). October: 4 studies, one corrected, one at centre 2."""
    studies = [
        study(1, local(9, 3), 20),
        study(2, local(9, 4), 75),  # final 75 min after arrival: SLA missed
        study(3, local(10, 2), 10),
        study(4, local(10, 3), 40, corrected=True),
        study(5, local(10, 4), 130, centre=2, clinic=11),
        study(6, local(10, 5), 300, modality="CT"),
    ]
    decisions = [
        {
            "decision_id": 1,
            "reading_centre_id": 1,
            "clinic_id": 10,
            "modality": "DX",
            "exam_type_id": 100,
            "outcome": "accepted",
            "clinician_id": 3,
            "avoided_fee_fen": 8000,
            "decided_at": local(10, 6),
        },
        {
            "decision_id": 2,
            "reading_centre_id": 1,
            "clinic_id": 10,
            "modality": "DX",
            "exam_type_id": 100,
            "outcome": "refused",
            "refusal_reason": "condition_changed",
            "clinician_id": 3,
            "avoided_fee_fen": 0,
            "decided_at": local(9, 6),
        },
    ]
    consultations = [
        {
            "consultation_id": 1,
            "study_id": 5,
            "reading_centre_id": 2,
            "clinic_id": 11,
            "modality": "DX",
            "exam_type_id": 100,
            "expert_centre_id": 1,
            "status": "answered",
            "requested_at": local(10, 4, 12),
            "answered_at": local(10, 4, 13),
        }
    ]
    return build_frames(
        start=SEPT_OCT[0],
        end=SEPT_OCT[1],
        filters=filters or Filters(),
        studies=studies,
        decisions=decisions,
        consultations=consultations,
    )


def test_periods_and_narrowing() -> None:
    october = Period.month("2026-10", "Asia/Shanghai")
    assert (october.first, october.last) == (date(2026, 10, 1), date(2026, 10, 31))
    assert october.months_back(12).first == date(2025, 11, 1)
    assert october.months_back(1) == october
    assert october.window == local_days(date(2026, 10, 1), date(2026, 10, 31))
    frames = two_months()
    with pytest.raises(ValueError, match="inside"):
        narrowed(frames, SEPT_OCT[0] - timedelta(days=1), SEPT_OCT[1])


def test_turnaround_distribution_counts_each_band() -> None:
    table = turnaround_distribution(two_months())
    counts = dict(zip(table["bucket"], table["studies"], strict=True))
    assert counts == {
        "0-15": 1,  # 10
        "15-30": 1,  # 20
        "30-45": 1,  # 40
        "45-60": 0,
        "60-90": 1,  # 75
        "90-120": 0,
        "120-240": 1,  # 130
        ">240": 1,  # 300
    }
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["upper_minutes"].to_list()[-1] is None
    empty = turnaround_distribution(two_months(Filters(clinic_ids=frozenset())))
    assert empty["studies"].sum() == 0
    assert empty["share"].null_count() == empty.height


def test_key_figures_carry_both_months_and_the_change() -> None:
    this = [
        Figure("exams", "检查量", 110.0, "count"),
        Figure("sla", "时限达标率", 0.9, "rate", (9, 10)),
        Figure("median", "中位", None, "minutes"),
    ]
    before = [
        Figure("exams", "检查量", 100.0, "count"),
        Figure("sla", "时限达标率", 0.75, "rate", (3, 4)),
        Figure("median", "中位", 20.0, "minutes"),
    ]
    table = key_figure_table(this, before)
    rows = {row["key"]: row for row in table.iter_rows(named=True)}
    assert rows["exams"]["change"] == pytest.approx(0.10)
    assert rows["sla"]["change"] == pytest.approx(0.15)  # points, as a fraction
    assert (rows["sla"]["numerator"], rows["sla"]["previous_denominator"]) == (9, 4)
    assert rows["median"]["change"] is None
    assert analytics.change(Figure("x", "x", 5.0, "count"), Figure("x", "x", 0.0, "count")) is None


def test_leader_page_over_two_months() -> None:
    page = leader_page(two_months(), month="2026-10", now=LATE, settings=SETTINGS, names=NAMES)
    assert (page.month, page.previous) == ("2026-10", "2026-09")
    figures = {row["key"]: row for row in page.key_figures.iter_rows(named=True)}
    assert (figures["exams"]["value"], figures["exams"]["previous"]) == (4.0, 2.0)
    assert figures["exams"]["change"] == pytest.approx(1.0)
    # September 1 of 2 met; October: 10 met, 40 (prelim 20, audit 20) met, 130 and 300 missed.
    assert (figures["sla_compliance"]["numerator"], figures["sla_compliance"]["denominator"]) == (
        2,
        4,
    )
    assert figures["sla_compliance"]["previous"] == pytest.approx(0.5)
    assert figures["sla_compliance"]["change"] == pytest.approx(0.0)
    assert figures["recognition_savings"]["value"] == 80.0
    assert page.sla_trend.select("month", "met", "missed").rows() == [
        ("2026-09", 1, 1),
        ("2026-10", 2, 2),
    ]
    assert page.turnaround_distribution["studies"].sum() == 4  # October only
    centres = page.correction_by_centre.select(
        "reading_centre_id", "reading_centre_name", "finalised", "corrected"
    ).rows()
    assert centres == [(1, "县医院", 3, 1), (2, "中医院", 1, 0)]
    assert page.recognition_savings.select("month", "accepted", "avoided_fee_fen").rows() == [
        ("2026-09", 0, 0),
        ("2026-10", 1, 8000),
    ]


def test_leader_page_needs_the_month_before() -> None:
    october_only = narrowed(two_months(), *local_days(date(2026, 10, 1), date(2026, 10, 31)))
    with pytest.raises(ValueError, match="inside"):
        leader_page(october_only, month="2026-10", now=LATE, settings=SETTINGS)


def test_other_pages_by_hand() -> None:
    frames = two_months()
    turnaround = turnaround_page(frames, now=LATE, names=NAMES)
    assert turnaround.sla_by_centre.select("reading_centre_name", "met", "missed").rows() == [
        ("县医院", 3, 2),
        ("中医院", 0, 1),
    ]
    assert turnaround.overdue.is_empty()
    assert turnaround.sla_by_month["month"].to_list() == ["2026-09", "2026-10"]

    quality = quality_page(frames, now=LATE, names=NAMES)
    indicators = {row["key"]: row for row in quality.indicators.iter_rows(named=True)}
    assert (
        indicators["correction_rate"]["numerator"],
        indicators["correction_rate"]["denominator"],
    ) == (1, 6)
    assert indicators["critical_notified_within_10min"]["rate"] is None  # no critical results
    assert quality.positive_rate_by_modality["modality"].to_list() == ["CT"]

    recognised = recognition_page(frames, names=NAMES)
    assert recognised.summary.select("accepted", "refused", "recognition_rate").row(0) == (
        1,
        1,
        0.5,
    )
    assert recognised.refusals_by_reason.select("refusal_reason", "refused").rows() == [
        ("condition_changed", 1)
    ]
    assert recognised.by_clinic["clinic_name"].to_list() == ["甲镇卫生院"]

    equipment = equipment_page(frames, names=NAMES)
    assert equipment.volume_by_station.select("clinic_name", "station_name", "exams").rows() == [
        ("甲镇卫生院", "CT-1", 1),
        ("甲镇卫生院", "DX-1", 4),
        ("乙镇卫生院", "DX-1", 1),
    ]
    ct = equipment.utilisation_by_station.row(0, named=True)
    assert (ct["station_name"], ct["days"], ct["exams"]) == ("CT-1", 1, 1)
    assert ct["mean_utilisation"] == pytest.approx(8 / 480)  # 8 min of an 8-hour day

    asked = consultations_page(frames, names=NAMES)
    assert asked.by_centre.select("reading_centre_name", "requested", "answered").rows() == [
        ("中医院", 1, 1)
    ]
    assert asked.by_expert_centre["expert_centre_name"].to_list() == ["县医院"]

    settled = settlement_page(frames, settings=SETTINGS, names=NAMES)
    assert settled.totals.row(0) == (6, 6, 6000, 3000, 3000)
    assert settled.by_reading_centre.select("reading_centre_name", "amount_fen").rows() == [
        ("县医院", 5000),
        ("中医院", 1000),
    ]


def test_every_page_reads_an_empty_filter_as_no_data() -> None:
    frames = two_months(Filters(reading_centre_ids=frozenset()))
    leader = leader_page(frames, month="2026-10", now=LATE, settings=SETTINGS)
    assert leader.key_figures.filter(pl.col("unit") == "rate")["value"].null_count() == 11
    assert leader.sla_trend.is_empty() and leader.correction_by_centre.is_empty()
    turnaround = turnaround_page(frames, now=LATE)
    assert turnaround.steps["count"].to_list() == [0, 0, 0, 0]
    quality = quality_page(frames, now=LATE)
    assert quality.indicators["rate"].null_count() == quality.indicators.height
    assert recognition_page(frames).summary["prompts"].to_list() == [0]
    equipment = equipment_page(frames)
    assert equipment.utilisation_by_station.is_empty()
    assert consultations_page(frames).by_centre.is_empty()
    assert settlement_page(frames, settings=SETTINGS).totals.row(0) == (0, 0, 0, 0, 0)


def test_names_and_station_summary() -> None:
    table = pl.DataFrame({"clinic_id": [10, 99], "exams": [1, 2]})
    assert named(table, NAMES)["clinic_name"].to_list() == ["甲镇卫生院", None]
    assert named(table, {}).columns == ["clinic_id", "exams"]
    daily = pl.DataFrame(
        {
            "clinic_id": [10, 10, 10],
            "station_name": ["CT-1"] * 3,
            "modality": ["CT"] * 3,
            "exams": [0, 10, 40],
            "utilisation": [0.0, 0.5, 1.2],
            "flag": ["idle", "normal", "overloaded"],
        }
    )
    summary = station_summary(daily).row(0, named=True)
    assert (
        summary["days"],
        summary["exams"],
        summary["idle_days"],
        summary["overloaded_days"],
    ) == (
        3,
        50,
        1,
        1,
    )
    assert summary["mean_utilisation"] == pytest.approx(1.7 / 3)


# ---------------------------------------------------------- the portal's entry


def test_dashboards_agree_with_the_kpi_report(county: County, tmp_path: Path) -> None:
    """The leader's figures from the snapshot are `huren report kpi`'s figures from SQL."""
    settings = county.settings
    store = AnalyticsStore(county.database.engine, tmp_path, zone=settings.timezone)
    dashboards = Dashboards(store, settings)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    page = dashboards.leader("2026-10", now=now)
    with county.database.engine.connect() as connection:
        report = monthly_report(connection, month="2026-10", settings=settings, now=now)
    for row, (this, before) in zip(
        page.key_figures.iter_rows(named=True), report.figures, strict=True
    ):
        assert row["key"] == this.key
        assert row["value"] == pytest.approx(this.value)
        assert row["previous"] == pytest.approx(before.value)
    assert page.sla_trend.height == 12
    assert page.correction_by_centre["reading_centre_name"].null_count() == 0

    year = Period(date(2025, 11, 21), date(2026, 11, 20), settings.timezone)
    assert dashboards.turnaround(year, now=now).steps["count"].sum() > 0
    assert dashboards.quality(year, now=now).indicators.height == 9
    assert dashboards.recognition(year).summary["prompts"].item() > 0
    assert dashboards.equipment(year).volume_by_day["exams"].sum() > 0
    assert dashboards.consultations(year).by_month.height > 0
    settled = dashboards.settlement(year)
    assert settled.by_reading_centre["amount_fen"].sum() == settled.totals["amount_fen"].item()
    ct = dashboards.equipment(year, Filters(modalities=frozenset({"CT"})))
    assert set(ct.volume_by_day["modality"].to_list()) == {"CT"}
