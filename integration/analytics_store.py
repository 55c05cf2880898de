"""A columnar snapshot of the metrics' frames, so a dashboard page does not wait for SQL.

Reading a year of the region from the database takes seconds (the SQL and
the conversion of every row); a page must answer in a fraction of one. The
store therefore keeps the frames of the *whole* history as Parquet files
under ``HUREN_DATA_DIR/analytics/``, and answers :meth:`AnalyticsStore.frames`
for any window and filters by scanning them lazily, in memory per filter set.

When is a snapshot stale? Its name carries the *data version*: the highest
row id of every table the frames read (one indexed look-up each). A new
report, revision (every preliminary, sign-off, correction and amendment writes
one), study, QC event, critical result, consultation, recognition decision or
card, or queued delivery moves the version, and the next call rebuilds. Some
facts change in place without a new row (a study completing, a critical
result notified, a consultation answered, an ORU delivered); those reach the
snapshot when the next row lands or, at the latest, after ``max_age_seconds``.

The frames the store returns are the frames :func:`load_frames` would read for
the same window and filters (the tests check it), so every metric gives the
same answer from either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, Engine, func, select

from integration.metrics_frames import (
    DEFAULT_ZONE,
    NO_FILTERS,
    TEXT_COLUMNS,
    Filters,
    Frames,
    load_frames,
)
from integration.metrics_quality import STUDY_FACTS, report_facts, with_study_facts
from integration.sla import ReadingCalendar
from models import metadata

SNAPSHOT_FORMAT = 5
VERSION_TABLES = (
    "study",
    "report",
    "report_revision",
    "qc_event",
    "critical_result",
    "consultation",
    "recognition_decision",
    "recognition_card",
    "outbox",
    "exam_type",
    "facility",
)
FRAME_NAMES = (
    "studies",
    "revisions",
    "qc_events",
    "critical_results",
    "decisions",
    "cards",
    "consultations",
    "deliveries",
)
ALL_TIME = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
SCOPE = ("reading_centre_id", "clinic_id", "modality", "exam_type_id")
FACTS = "report_facts"  # per-report facts from the texts and revisions, worked out once
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DataVersion:
    """The highest id of each table in :data:`VERSION_TABLES` (0 for an empty table)."""

    ids: tuple[int, ...]

    @property
    def key(self) -> str:
        text = json.dumps([SNAPSHOT_FORMAT, list(VERSION_TABLES), list(self.ids)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_version(connection: Connection) -> DataVersion:
    """One SELECT of ``max(id)`` per table: each is a look-up at the end of the primary key."""
    tables = metadata.tables
    query = select(
        *(
            select(func.coalesce(func.max(tables[name].c.id), 0)).scalar_subquery()
            for name in VERSION_TABLES
        )
    )
    row = connection.execute(query).one()
    return DataVersion(tuple(int(value) for value in row))


@dataclass(frozen=True)
class Snapshot:
    """One snapshot on disk: its folder, the version it holds, and when it was built."""

    folder: Path
    version: DataVersion
    built_at: float

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"


def _superset(filters: Filters) -> pl.Expr:
    """The SQL's scope: as the metrics filter, but a study without exam type keeps any modality."""
    keep = pl.lit(True)
    if filters.reading_centre_ids is not None:
        keep &= pl.col("reading_centre_id").is_in(sorted(filters.reading_centre_ids))
    if filters.clinic_ids is not None:
        keep &= pl.col("clinic_id").is_in(sorted(filters.clinic_ids))
    if filters.exam_type_ids is not None:
        keep &= pl.col("exam_type_id").is_in(sorted(filters.exam_type_ids))
    if filters.modalities is not None:
        keep &= (
            pl.col("modality").is_in(sorted(str(m) for m in filters.modalities))
            | pl.col("exam_type_id").is_null()
        )
    return keep.fill_null(False)


def _between(column: str, start: datetime, end: datetime) -> pl.Expr:
    value = pl.col(column)
    return ((value >= start) & (value < end)).fill_null(False)


def _windows(start: datetime, end: datetime) -> Mapping[str, pl.Expr]:
    """Per frame, the rows the SQL of :func:`load_frames` would read for [start, end)."""

    def inside(column: str) -> pl.Expr:
        return _between(column, start, end)

    return {
        "studies": inside("completed_at")
        | inside("started_at")
        | (pl.col("started_at").is_null() & inside("received_at"))
        | inside("finalised_at"),
        "revisions": inside("_finalised_at"),
        "qc_events": inside("created_at") | inside("_completed_at"),
        "critical_results": inside("flagged_at"),
        "decisions": inside("decided_at"),
        "cards": inside("issued_at"),
        "consultations": inside("requested_at"),
        "deliveries": inside("_finalised_at"),
    }


def _with_helpers(frames: Frames) -> dict[str, pl.DataFrame]:
    """The frames of all time, with the study's columns the window and scope need added."""
    studies = frames.studies
    by_report = studies.filter(pl.col("report_id").is_not_null()).select(
        "report_id", *SCOPE, pl.col("finalised_at").alias("_finalised_at")
    )
    by_study = studies.select("study_id", pl.col("completed_at").alias("_completed_at"))
    return {
        "studies": studies,
        "revisions": frames.revisions.join(by_report, on="report_id", how="inner"),
        "qc_events": frames.qc_events.join(by_study, on="study_id", how="left"),
        "critical_results": frames.critical_results,
        "decisions": frames.decisions,
        "cards": frames.cards,
        "consultations": frames.consultations,
        "deliveries": frames.deliveries.join(by_report, on="report_id", how="inner"),
    }


def write_snapshot(
    frames: Frames, root: Path, *, version: DataVersion, built_at: float
) -> Snapshot:
    """Write the frames of all time as ``root/snapshot-<version>``, renamed into place whole."""
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".building-{version.key}-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir()
    folder = root / f"snapshot-{version.key}"
    try:
        facts = frames.report_facts
        if facts is None:
            facts = report_facts(frames.studies, frames.revisions)
        tables = _with_helpers(frames)
        # The studies also carry their facts, so the province-scale figures need no join.
        tables["studies"] = with_study_facts(tables["studies"], frames.qc_events, facts)
        for name, data in {**tables, FACTS: facts}.items():
            # lz4 reads back about three times faster than the default zstd, for 30% more bytes.
            data.write_parquet(staging / f"{name}.parquet", compression="lz4", statistics=True)
        manifest = {"format": SNAPSHOT_FORMAT, "ids": list(version.ids), "built_at": built_at}
        (staging / MANIFEST).write_text(json.dumps(manifest))
        if folder.exists():  # rebuilt for age, or another process built the same version
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Snapshot(folder=folder, version=version, built_at=built_at)


class AnalyticsStore:
    """Frames for any window and filters, from a Parquet snapshot kept in step with the database.

    One store per process (the portal keeps one); it is safe to share between
    processes on the same data directory: a snapshot is written under a
    temporary name and renamed into place, and readers only open complete ones.
    """

    def __init__(
        self,
        engine: Engine,
        root: Path,
        *,
        zone: str = DEFAULT_ZONE,
        calendar: ReadingCalendar | None = None,
        max_age_seconds: float = 600.0,
        memory_entries: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.root = root
        self.zone = zone
        self.calendar = calendar
        self.max_age_seconds = max_age_seconds
        self.memory_entries = memory_entries
        self.clock = clock
        self._current: Snapshot | None = None
        self._lock = threading.RLock()
        self._memory: OrderedDict[tuple[str, datetime, datetime, Filters, bool], Frames] = (
            OrderedDict()
        )

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> Snapshot:
        """The current snapshot, rebuilt first if the data moved on or it is too old."""
        with self._lock:
            with self.engine.connect() as connection:
                version = data_version(connection)
                current = self._current
                if current is None or current.version != version:
                    current = self._on_disk(version)
                if current is None or self.clock() - current.built_at > self.max_age_seconds:
                    current = self._build(connection, version)
            if current != self._current:
                self._memory.clear()
            self._current = current
            return current

    def _on_disk(self, version: DataVersion) -> Snapshot | None:
        folder = self.root / f"snapshot-{version.key}"
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") != SNAPSHOT_FORMAT or manifest.get("ids") != list(version.ids):
            return None
        return Snapshot(folder=folder, version=version, built_at=float(manifest["built_at"]))

    def _build(self, connection: Connection, version: DataVersion) -> Snapshot:
        """Read all of the history once and write it as one Parquet file per frame."""
        built_at = self.clock()
        frames = load_frames(connection, start=ALL_TIME[0], end=ALL_TIME[1], zone=self.zone)
        snapshot = write_snapshot(frames, self.root, version=version, built_at=built_at)
        self._remove_others(keep=snapshot.folder)
        return snapshot

    def _remove_others(self, *, keep: Path) -> None:
        for old in self.root.glob("snapshot-*"):
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------ frames

    def frames(
        self,
        start: datetime,
        end: datetime,
        filters: Filters = NO_FILTERS,
        *,
        lean: bool = False,
    ) -> Frames:
        """The frames :func:`load_frames` would read for [start, end) and ``filters``.

        ``lean``: without the report texts and revisions, which every metric can
        do without thanks to the snapshot's per-report facts (and which are most
        of the bytes).
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("the window needs timezone-aware datetimes")
        with self._lock:  # one build and one cache for the portal's concurrent requests
            for attempt in (1, 2):
                snapshot = self.snapshot()
                key = (snapshot.version.key, start.astimezone(UTC), end.astimezone(UTC), filters,
                       lean)  # fmt: skip
                cached = self._memory.get(key)
                if cached is not None:
                    self._memory.move_to_end(key)
                    return cached
                try:
                    frames = read_snapshot(
                        snapshot, start=key[1], end=key[2], filters=filters, zone=self.zone,
                        calendar=self.calendar, lean=lean,
                    )  # fmt: skip
                    break
                except FileNotFoundError:  # another process replaced the snapshot meanwhile
                    self._current = None
                    if attempt == 2:
                        raise
            self._memory[key] = frames
            while len(self._memory) > self.memory_entries:
                self._memory.popitem(last=False)
            return frames


def read_snapshot(
    snapshot: Snapshot,
    *,
    start: datetime,
    end: datetime,
    filters: Filters = NO_FILTERS,
    zone: str = DEFAULT_ZONE,
    calendar: ReadingCalendar | None = None,
    lean: bool = False,
) -> Frames:
    """Scan the snapshot's files lazily: only the window's rows of the selected scope.

    ``lean`` leaves out the report texts and the revisions (see :meth:`AnalyticsStore.frames`).
    """
    windows = _windows(start.astimezone(UTC), end.astimezone(UTC))
    scope = _superset(filters)
    plans = []
    for name in FRAME_NAMES:
        scan = pl.scan_parquet(snapshot.path(name))
        unwanted = [c for c in scan.collect_schema().names() if c.startswith("_")]
        if name == "studies":
            unwanted += STUDY_FACTS
            if lean:
                unwanted += TEXT_COLUMNS
        plan = scan.filter(windows[name] & scope)
        if lean and name == "revisions":
            plan = plan.head(0)
        if name in ("revisions", "deliveries"):
            plan = plan.drop(*SCOPE)
        plans.append(plan.drop(unwanted))
    collected = dict(zip(FRAME_NAMES, pl.collect_all(plans), strict=True))
    reports = collected["studies"].select("report_id").drop_nulls()
    facts = pl.scan_parquet(snapshot.path(FACTS)).join(reports.lazy(), on="report_id", how="semi")
    return Frames(
        start=start,
        end=end,
        filters=filters,
        zone=zone,
        calendar=calendar,
        report_facts=facts.collect(),
        **collected,
    )
