"""Analytics speed: the dashboard pages over the demo year, and the KPI set at province scale.

Goals (issue 8):

* every dashboard page's data over the 1-year demo region (``huren demo
  seed``, about 100k exams) in <= 300 ms. Measured as the portal meets it: a
  fresh :class:`AnalyticsStore` (nothing in memory) over a snapshot already on
  disk, one page call, median of five. The snapshot's build (once per data
  version) is printed apart. Bound: a bare polars group-by (median arrival ->
  final per reading centre and month) over the same snapshot's studies file.
* the full KPI set (``integration.kpi.figures``: volume, turnaround, SLA, the QC
  indicators, corrections, retakes, recognition, consultations, settlement)
  over 10M exams in <= 3 s with peak memory <= 2 GB. The exams are generated
  straight into the snapshot's Parquet format (the database side is the demo
  part's business); a child process computes the set with
  ``integration.kpi_lazy.lazy_figures`` (one streaming pass over the studies
  and one over each other file, only the columns the figures need) and reports
  its time and peak RSS (VmHWM, imports included). The time is cold: a fresh
  process, nothing cached in it (the files are in the OS page cache, as for
  the bound); the snapshot's write, which works out the per-study flags the
  figures read, is timed apart. Bound: a bare polars p50/p90 turnaround
  per clinic per month over the same files, in its own child process. Up to 1M
  exams the eager engine's time on the same data is printed for comparison.

``--small`` (``make bench``): 20k demo exams and 1M KPI exams; the GOAL lines
say so.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from integration.analytics import Dashboards, Period
from integration.analytics_store import (
    AnalyticsStore,
    DataVersion,
    Snapshot,
    read_snapshot,
    write_snapshot,
)
from integration.database import Database
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.kpi import figures
from integration.kpi_lazy import lazy_figures, scan_snapshot
from integration.metrics_frames import (
    CARD_SCHEMA,
    CONSULTATION_SCHEMA,
    CRITICAL_RESULT_SCHEMA,
    DECISION_SCHEMA,
    DELIVERY_SCHEMA,
    QC_EVENT_SCHEMA,
    REPORT_FACTS_SCHEMA,
    REVISION_SCHEMA,
    STUDY_SCHEMA,
    Filters,
    Frames,
    Schema,
    load_frames,
)
from integration.settings import Settings
from integration.sla import ReadingCalendar

PAGE_GOAL_MS = 300.0
KPI_GOAL_S = 3.0
KPI_GOAL_MB = 2048.0
UNTIL = date(2026, 11, 30)
YEAR_START = datetime(2025, 11, 30, 16, tzinfo=UTC)  # 2025-12-01 00:00 in Asia/Shanghai
YEAR_END = datetime(2026, 11, 30, 16, tzinfo=UTC)
ROUNDS = 5
KPI_ROUNDS = 3


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _time(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# ------------------------------------------------------------------ dashboard pages


def _page_time(page: Callable[[Dashboards], object], dashboards: Dashboards) -> float:
    started = time.perf_counter()
    page(dashboards)
    return time.perf_counter() - started


def dashboard_part(root: Path, exams: int) -> tuple[float, float, str]:
    settings = Settings(data_dir=root / "demo")
    database = Database.from_settings(settings)
    database.upgrade()
    started = time.perf_counter()
    seed_demo_region(
        database,
        settings=settings,
        options=DemoOptions(seed=1, exams=exams, until=UNTIL, progress=False),
    )
    print(f"demo region: {exams} exams seeded in {time.perf_counter() - started:.0f} s")
    analytics_root = settings.data_dir / "analytics"
    build = _time(lambda: AnalyticsStore(database.engine, analytics_root).snapshot())
    with database.engine.connect() as connection:
        sql = _time(
            lambda: load_frames(connection, start=YEAR_START, end=YEAR_END, zone=settings.timezone)
        )
    print(
        f"snapshot built in {build:.2f} s (once per data version); "
        f"the year read with SQL (load_frames) {sql:.2f} s"
    )

    now = YEAR_END
    year = Period(date(2025, 12, 1), UNTIL, settings.timezone)
    pages: dict[str, Callable[[Dashboards], object]] = {
        "leader": lambda d: d.leader("2026-11", now=now),
        "turnaround": lambda d: d.turnaround(year, now=now),
        "quality": lambda d: d.quality(year, now=now),
        "recognition": lambda d: d.recognition(year),
        "equipment": lambda d: d.equipment(year),
        "consultations": lambda d: d.consultations(year),
        "settlement": lambda d: d.settlement(year),
    }
    studies = next(analytics_root.glob("snapshot-*")) / "studies.parquet"

    def bare() -> pl.DataFrame:
        return (
            pl.scan_parquet(studies)
            .filter(pl.col("completed_at").is_between(YEAR_START, YEAR_END, closed="left"))
            .group_by("reading_centre_id", pl.col("completed_at").dt.truncate("1mo"))
            .agg(((pl.col("finalised_at") - pl.col("completed_at")).dt.total_minutes()).median())
            .collect()
        )

    bound = _median_ms([_time(bare) for _ in range(ROUNDS)])
    print(f"{'page':<14}{'cold ms (median of 5)':>24}{'warm ms':>10}")
    slowest, slowest_page = 0.0, ""
    for name, page in pages.items():
        cold, warm = [], []
        for _ in range(ROUNDS):
            dashboards = Dashboards(AnalyticsStore(database.engine, analytics_root), settings)
            cold.append(_page_time(page, dashboards))
            warm.append(_page_time(page, dashboards))
        cold_ms = _median_ms(cold)
        print(f"{name:<14}{cold_ms:>24.0f}{_median_ms(warm):>10.0f}")
        if cold_ms > slowest:
            slowest, slowest_page = cold_ms, name
    database.dispose()
    return slowest, bound, slowest_page


# ------------------------------------------------------------------ 10M exams


def _frame(data: dict[str, Any], schema: Schema) -> pl.DataFrame:
    """Generated columns cast to the frame's schema; absent columns are null."""
    height = len(next(iter(data.values())))
    columns = [
        pl.Series(name, data[name]).cast(dtype)
        if name in data
        else pl.repeat(None, height, dtype=dtype, eager=True).alias(name)
        for name, dtype in schema.items()
    ]
    return pl.DataFrame(columns)


def _times(base: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    return base + (minutes * 60_000_000).astype(np.int64)


def generate(count: int, seed: int = 8) -> Frames:
    """``count`` exams of one year of a province: studies, reports, QC, critical results,
    recognition decisions and consultations, with the per-report facts already worked out."""
    rng = np.random.default_rng(seed)
    start_us = int(YEAR_START.timestamp() * 1_000_000)
    span_us = int((YEAR_END - YEAR_START).total_seconds() * 1_000_000)
    ids = np.arange(1, count + 1, dtype=np.int64)
    modalities = np.array(["DX", "CT", "MR", "US", "CR", "MG"])
    modality = modalities[rng.choice(6, count, p=[0.5, 0.2, 0.08, 0.15, 0.05, 0.02])]
    clinic = rng.integers(100, 1100, count)  # 1,000 clinics
    centre = clinic // 20  # 50 reading centres
    started = start_us + rng.integers(0, span_us, count)
    completed = _times(started, rng.uniform(3, 15, count))
    preliminary = _times(completed, rng.exponential(18, count))
    final = _times(preliminary, rng.exponential(14, count))
    reported = rng.random(count) < 0.97
    emergency = rng.random(count) < 0.1
    corrected = rng.random(count) < 0.05
    stations = np.array([f"{m}-{i}" for m in modalities for i in range(4)])
    raw = pl.DataFrame(
        {
            "study_id": ids,
            "reading_centre_id": centre,
            "clinic_id": clinic,
            "modality": modality,
            "exam_type_id": rng.integers(1, 50, count),
            "station_name": stations[rng.integers(0, len(stations), count)],
            "emergency": emergency,
            "quality_rejected": rng.random(count) < 0.02,
            "started_at": started,
            "last_instance_at": _times(started, rng.uniform(2, 20, count)),
            "received_at": _times(started, rng.uniform(1, 3, count)),
            "completed_at": completed,
            "body_part_count": rng.integers(1, 3, count),
            "reported": reported,
            "author_id": rng.integers(1, 500, count),
            "auditor_id": rng.integers(500, 700, count),
            "preliminary_at": preliminary,
            "finalised_at": final,
            "corrected": corrected,
            "positive": rng.random(count) < 0.5,
            "critical": rng.random(count) < 0.01,
            "grade_a": rng.random(count) < 0.8,
        }
    )
    times = ("started_at", "last_instance_at", "received_at", "completed_at",
             "preliminary_at", "finalised_at")  # fmt: skip
    when_reported = pl.col("reported")
    studies = raw.with_columns(
        *(pl.col(c).cast(pl.Datetime("us", "UTC")) for c in times),
    ).select(
        "study_id",
        pl.format("A{}", "study_id").alias("accession_number"),
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        "station_name",
        pl.when("emergency")
        .then(pl.lit("emergency"))
        .otherwise(pl.lit("routine"))
        .alias("priority"),
        "quality_rejected",
        pl.lit(None, dtype=pl.Int64).alias("retake_of_study_id"),
        "started_at",
        "last_instance_at",
        "received_at",
        "completed_at",
        "body_part_count",
        pl.when(when_reported).then("study_id").alias("report_id"),
        pl.when(when_reported).then(pl.lit("final")).alias("report_status"),
        "author_id",
        pl.when(when_reported).then("auditor_id").alias("auditor_id"),
        pl.when(when_reported).then("preliminary_at").alias("preliminary_at"),
        pl.when(when_reported).then("finalised_at").alias("finalised_at"),
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("amended_at"),
        "corrected",
        "positive",
        "critical",
        pl.when("grade_a").then(pl.lit("A")).otherwise(pl.lit("B")).alias("image_grade"),
        pl.lit("双肺纹理清晰，心影不大。").alias("findings"),
        pl.lit("胸部未见明显异常。").alias("impression"),
    )
    studies = studies.select(pl.col(n).cast(t) for n, t in STUDY_SCHEMA.items())
    facts = _frame(
        {
            "report_id": ids[reported],
            "changed_in_revisions": corrected[reported],
            "amended_in_revisions": np.zeros(int(reported.sum()), dtype=bool),
            "has_revisions": np.ones(int(reported.sum()), dtype=bool),
            "impression_present": np.ones(int(reported.sum()), dtype=bool),
            "impression_differs": np.ones(int(reported.sum()), dtype=bool),
            "has_leftovers": rng.random(int(reported.sum())) < 0.005,
        },
        REPORT_FACTS_SCHEMA,
    )
    scope = studies.select("study_id", "reading_centre_id", "clinic_id", "modality",
                           "exam_type_id", "completed_at")  # fmt: skip
    qc = scope.select(
        pl.col("study_id").alias("qc_event_id"),
        "study_id",
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        pl.format("T{}", pl.col("clinic_id") * 3 + pl.col("study_id") % 3).alias("technologist"),
        pl.when(pl.col("study_id") % 5 == 0)
        .then(pl.lit("B"))
        .otherwise(pl.lit("A"))
        .alias("grade"),
        (pl.col("study_id") % 37 == 0).alias("artefact"),
        (pl.col("study_id") % 50 == 0).alias("retake_requested"),
        (pl.col("completed_at") + pl.duration(minutes=25)).alias("created_at"),
    )
    critical = scope.filter(pl.col("study_id") % 100 == 0).select(
        pl.col("study_id").alias("critical_result_id"),
        pl.col("study_id").alias("report_id"),
        "study_id",
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        pl.col("clinic_id").alias("notify_facility_id"),
        (pl.col("completed_at") + pl.duration(minutes=30)).alias("flagged_at"),
        (pl.col("completed_at") + pl.duration(minutes=38)).alias("notified_at"),
    )
    decisions = scope.filter(pl.col("study_id") % 10 == 3).select(
        pl.col("study_id").alias("decision_id"),
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        pl.when(pl.col("study_id") % 20 == 3)
        .then(pl.lit("accepted"))
        .otherwise(pl.lit("refused"))
        .alias("outcome"),
        pl.when(pl.col("study_id") % 20 == 3)
        .then(None)
        .otherwise(pl.lit("condition_changed"))
        .alias("refusal_reason"),
        (pl.col("study_id") % 5000).alias("clinician_id"),
        pl.lit("cds_hooks").alias("source"),
        pl.when(pl.col("study_id") % 20 == 3).then(8000).otherwise(0).alias("avoided_fee_fen"),
        (pl.col("completed_at") - pl.duration(hours=2)).alias("decided_at"),
    )
    consultations = scope.filter(pl.col("study_id") % 100 == 7).select(
        pl.col("study_id").alias("consultation_id"),
        "study_id",
        "reading_centre_id",
        "clinic_id",
        "modality",
        "exam_type_id",
        (pl.col("reading_centre_id") % 3 + 1).alias("expert_centre_id"),
        pl.lit("answered").alias("status"),
        (pl.col("completed_at") + pl.duration(minutes=40)).alias("requested_at"),
        (pl.col("completed_at") + pl.duration(minutes=120)).alias("answered_at"),
    )

    def shaped(data: pl.DataFrame, schema: Schema) -> pl.DataFrame:
        return data.select(
            [
                pl.col(n).cast(t) if n in data.columns else pl.lit(None, dtype=t).alias(n)
                for n, t in schema.items()
            ]
        )

    return Frames(
        start=YEAR_START,
        end=YEAR_END,
        studies=studies,
        revisions=_frame({"report_id": []}, REVISION_SCHEMA),
        qc_events=shaped(qc, QC_EVENT_SCHEMA),
        critical_results=shaped(critical, CRITICAL_RESULT_SCHEMA),
        decisions=shaped(decisions, DECISION_SCHEMA),
        cards=_frame({"card_uuid": []}, CARD_SCHEMA),
        consultations=shaped(consultations, CONSULTATION_SCHEMA),
        deliveries=_frame({"report_id": []}, DELIVERY_SCHEMA),
        report_facts=facts,
    )


def _peak_rss_mb() -> float:
    """This process's peak resident set since exec (VmHWM).

    Not ``ru_maxrss``: Linux carries that across exec, so a child would report
    the benchmark's own peak from before it was started.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, folder: str) -> int:
    """Run one measurement in this (fresh) process; print its time and peak RSS as JSON."""
    snapshot = Snapshot(folder=Path(folder), version=DataVersion(()), built_at=0.0)
    settings = Settings()
    started = time.perf_counter()
    if kind == "kpi":
        result = lazy_figures(
            scan_snapshot(snapshot),
            start=YEAR_START,
            end=YEAR_END,
            filters=Filters(),
            settings=settings,
            now=YEAR_END,
            calendar=ReadingCalendar.from_settings(settings),
        )
        exams = int(result[0].value or 0)
    elif kind == "eager":
        frames = read_snapshot(snapshot, start=YEAR_START, end=YEAR_END, lean=True)
        exams = int(figures(frames, settings=settings, now=YEAR_END)[0].value or 0)
    else:
        table = (
            pl.scan_parquet(snapshot.path("studies"))
            .filter(pl.col("completed_at").is_between(YEAR_START, YEAR_END, closed="left"))
            .with_columns(
                (pl.col("finalised_at") - pl.col("completed_at"))
                .dt.total_seconds(fractional=True)
                .alias("seconds"),
                pl.col("completed_at").dt.convert_time_zone("Asia/Shanghai").dt.month().alias("m"),
            )
            .group_by("clinic_id", "m")
            .agg(
                pl.col("seconds").median().alias("p50"),
                pl.col("seconds").quantile(0.9).alias("p90"),
            )
            .collect()
        )
        exams = table.height
    elapsed = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "rows": exams}))
    return 0


def _run_child(kind: str, folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def kpi_part(root: Path, exams: int) -> tuple[dict[str, float], dict[str, float]]:
    started = time.perf_counter()
    frames = generate(exams)
    snapshot = write_snapshot(frames, root / "kpi", version=DataVersion((exams,)), built_at=0.0)
    del frames
    size = sum(p.stat().st_size for p in snapshot.folder.iterdir()) / 1e6
    print(f"{exams:,} exams generated into a snapshot of {size:.0f} MB in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    kpi, bound = [], []
    for _ in range(KPI_ROUNDS):  # alternating, each in a fresh process
        kpi.append(_run_child("kpi", snapshot.folder))
        bound.append(_run_child("bound", snapshot.folder))
    if exams <= 1_000_000:  # for comparison: the eager engine (the pages' path) on the same data
        eager = _run_child("eager", snapshot.folder)
        print(
            f"eager KPI set  {eager['seconds']:.2f} s / {eager['peak_mb']:.0f} MB (the pages' path)"
        )
    for name, runs in (("KPI set", kpi), ("bare group-by", bound)):
        print(
            f"{name:<14} "
            + ", ".join(f"{r['seconds']:.2f} s / {r['peak_mb']:.0f} MB" for r in runs)
        )

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return (
        {"seconds": median(kpi, "seconds"), "peak_mb": median(kpi, "peak_mb")},
        {"seconds": median(bound, "seconds"), "peak_mb": median(bound, "peak_mb")},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="20k demo exams, 1M KPI exams")
    parser.add_argument("--demo-exams", type=int)
    parser.add_argument("--kpi-exams", type=int)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-kpi", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    demo_exams = args.demo_exams or (20_000 if args.small else 100_000)
    kpi_exams = args.kpi_exams or (1_000_000 if args.small else 10_000_000)
    goals = []
    with tempfile.TemporaryDirectory(prefix="huren-bench-") as folder:
        root = Path(folder)
        if not args.skip_demo:
            slowest, bound, page = dashboard_part(root, demo_exams)
            verdict = "met" if slowest <= PAGE_GOAL_MS else "missed"
            if demo_exams < 100_000:
                verdict = f"{'within' if slowest <= PAGE_GOAL_MS else 'over'} at this scale"
            goals.append(
                f"GOAL dashboard-pages: slowest page ({page}) {slowest:.0f} ms over {demo_exams:,}"
                f" demo exams (bound {bound:.0f} ms, ratio {slowest / bound:.1f})"
                f" goal <= {PAGE_GOAL_MS:.0f} ms per page over the 100k demo year: {verdict}"
            )
        if not args.skip_kpi:
            kpi, bound_kpi = kpi_part(root, kpi_exams)
            scale = "" if kpi_exams >= 10_000_000 else f" ({kpi_exams:,} exams, not 10M)"
            time_verdict = "met" if kpi["seconds"] <= KPI_GOAL_S and not scale else "missed"
            memory_verdict = "met" if kpi["peak_mb"] <= KPI_GOAL_MB and not scale else "missed"
            if scale:
                time_verdict = (
                    f"{'within' if kpi['seconds'] <= KPI_GOAL_S else 'over'} at this scale"
                )
                memory_verdict = (
                    f"{'within' if kpi['peak_mb'] <= KPI_GOAL_MB else 'over'} at this scale"
                )
            goals.append(
                f"GOAL kpi-time: {kpi['seconds']:.2f} s{scale} (bound {bound_kpi['seconds']:.2f} s,"
                f" ratio {kpi['seconds'] / bound_kpi['seconds']:.1f}) goal <= {KPI_GOAL_S:.0f} s"
                f" over 10M exams: {time_verdict}"
            )
            goals.append(
                f"GOAL kpi-memory: {kpi['peak_mb']:.0f} MB peak RSS{scale} (bound"
                f" {bound_kpi['peak_mb']:.0f} MB,"
                f" ratio {kpi['peak_mb'] / bound_kpi['peak_mb']:.1f})"
                f" goal <= {KPI_GOAL_MB:.0f} MB over 10M exams: {memory_verdict}"
            )
    for line in goals:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
