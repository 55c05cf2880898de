"""Demo-region seeding speed: `make run` seeds 100k exams on a fresh machine.

Goal: >= 1,700 exams/s (100k exams in about a minute). The bound, measured in
the same run, is bare sqlite3 `executemany` of exactly the rows the seeder
wrote, into the same schema with the same pragmas: the cost of the writes
alone, without generating anything.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from integration.database import Database
from integration.demo.history import HistoryGenerator
from integration.demo.seed import DemoOptions, seed_demo_region
from integration.settings import Settings

GOAL_EXAMS_PER_SECOND = 1700


def _bound(seeded: Path, empty: Path) -> float:
    """Seconds to re-insert the seeded history rows with plain sqlite3."""
    source = sqlite3.connect(seeded)
    target = sqlite3.connect(empty)
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA synchronous=FULL")
    tables = {}
    for table in HistoryGenerator.TABLE_ORDER:
        cursor = source.execute(f"SELECT * FROM {table}")
        columns = [d[0] for d in cursor.description]
        tables[table] = (columns, cursor.fetchall())
    # Region rows (facilities, users) are tiny; copy them outside the timing.
    for table in ("facility", "qc_qualification", "facility_ae_title", "app_user", "exam_type"):
        cursor = source.execute(f"SELECT * FROM {table}")
        marks = ",".join("?" * len(cursor.description))
        target.executemany(f"INSERT INTO {table} VALUES ({marks})", cursor.fetchall())
    target.commit()
    started = time.perf_counter()
    for table, (columns, rows) in tables.items():
        marks = ",".join("?" * len(columns))
        target.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows)
    target.commit()
    elapsed = time.perf_counter() - started
    source.close()
    target.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exams", type=int, default=50_000)
    parser.add_argument("--small", action="store_true", help="10,000 exams")
    args = parser.parse_args()
    exams = 10_000 if args.small else args.exams

    with tempfile.TemporaryDirectory(prefix="huren-bench-") as folder:
        root = Path(folder)
        settings = Settings(data_dir=root / "seeded")  # type: ignore[arg-type]
        database = Database.from_settings(settings)
        database.upgrade()
        started = time.perf_counter()
        summary = seed_demo_region(
            database,
            settings=settings,
            options=DemoOptions(seed=1, exams=exams, until=date(2026, 11, 20), progress=False),
        )
        seeding = time.perf_counter() - started
        database.dispose()

        empty_settings = Settings(data_dir=root / "empty")  # type: ignore[arg-type]
        empty = Database.from_settings(empty_settings)
        empty.upgrade()
        empty.dispose()
        bound = _bound(root / "seeded" / "huren.db", root / "empty" / "huren.db")

    generated = summary.counts.encounters
    rate, bound_rate = generated / seeding, generated / bound
    print(
        f"seeded {generated} encounters ({summary.counts.reports} reports) in {seeding:.1f} s;"
        f" bare sqlite3 inserts of the same rows: {bound:.1f} s"
    )
    verdict = "met" if rate >= GOAL_EXAMS_PER_SECOND else "missed"
    print(
        f"GOAL demo-seed: {rate:.0f} exams/s (bound {bound_rate:.0f}, "
        f"ratio {rate / bound_rate:.2f}) goal >={GOAL_EXAMS_PER_SECOND} exams/s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
