"""`huren demo seed`: write the demo county and its history into an empty database."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, Table, func, insert, select, text
from sqlmodel import Session, col
from sqlmodel import select as select_models

from integration.accounts import hash_password
from integration.database import Database
from integration.demo.history import HistoryCounts, HistoryGenerator, HistoryShape
from integration.demo.region import DemoRegion, build_region
from integration.progress import progress_bar
from integration.settings import Settings
from models import ExamType, metadata
from models.catalogue import load_catalogue, sync_catalogue
from models.errors import Conflict


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 20260101
    exams: int = 100_000
    until: date | None = None  # last day of history; None: up to now
    progress: bool = True
    shape: HistoryShape = field(default_factory=HistoryShape)


@dataclass(frozen=True)
class DemoSummary:
    facilities: int
    users: int
    exam_types: int
    anchor: datetime
    counts: HistoryCounts

    def describe(self) -> str:
        c = self.counts
        return (
            f"demo region seeded up to {self.anchor:%Y-%m-%d %H:%M} UTC: "
            f"{self.facilities} facilities, {self.users} users, {self.exam_types} exam types, "
            f"{c.patients} patients, {c.orders} orders, {c.studies} studies, "
            f"{c.reports} reports ({c.finals} final, {c.corrected} corrected), "
            f"{c.retakes} retakes, {c.critical} critical results, {c.consultations} consultations, "
            f"{c.recognition_accepted} priors reused, {c.recognition_refused} refused"
        )


def anchor_for(until: date | None, settings: Settings, *, now: datetime | None = None) -> datetime:
    """The end of the history: the end of ``until`` (local), or now, in UTC."""
    if until is None:
        return (now or datetime.now(UTC)).replace(microsecond=0)
    return datetime.combine(until, time(23, 59, 59), tzinfo=settings.zone).astimezone(UTC)


def seed_demo_region(
    database: Database, *, settings: Settings, options: DemoOptions
) -> DemoSummary:
    """Fill an empty database with the demo county; refuses a database that has a region."""
    if not database.is_empty():
        raise Conflict("the demo region is only seeded into an empty database")
    rng = random.Random(options.seed)
    anchor = anchor_for(options.until, settings)
    start_day = (anchor - timedelta(days=365)).astimezone(settings.zone).date()

    with database.session() as session:
        sync_catalogue(session, entries=load_catalogue(settings.exam_catalogue))
    with Session(database.engine) as session:
        exam_types = list(session.exec(select_models(ExamType).order_by(col(ExamType.id))).all())

    region = build_region(rng, start=start_day)
    generator = HistoryGenerator(
        rng=rng,
        region=region,
        exam_types=exam_types,
        anchor=anchor,
        zone=settings.zone,
        shape=options.shape,
    )
    tables: dict[str, Table] = dict(metadata.tables)
    with database.engine.begin() as connection:
        _write_region(connection, tables, region, settings, anchor)
        with progress_bar(
            "seeding demo region", options.exams, enabled=options.progress
        ) as advance:
            for batch in generator.batches(options.exams, on_progress=advance):
                for table_name in HistoryGenerator.TABLE_ORDER:
                    rows = batch[table_name]
                    if rows:
                        connection.execute(insert(tables[table_name]), rows)
        _advance_sequences(connection, tables)
    return DemoSummary(
        facilities=len(region.facilities),
        users=len(region.users),
        exam_types=len(exam_types),
        anchor=anchor,
        counts=generator.counts,
    )


def _write_region(
    connection: Connection,
    tables: dict[str, Table],
    region: DemoRegion,
    settings: Settings,
    anchor: datetime,
) -> None:
    password_hash = hash_password(settings.demo_password.get_secret_value())
    connection.execute(
        insert(tables["facility"]),
        [
            {
                "id": f.id,
                "code": f.code,
                "name": f.name,
                "name_en": f.name_en,
                "level": f.level,
                "kind": f.kind,
                "parent_id": f.parent_id,
                "reading_centre_id": None,
                "is_reading_centre": f.is_reading_centre,
                "area_code": "",
                "hl7_host": None,
                "hl7_port": None,
                "hl7_charset": "UNICODE UTF-8",
                "fhir_endpoint": None,
                "active": True,
                "created_at": anchor,
            }
            for f in region.facilities
        ],
    )
    facility_table = tables["facility"]
    for facility in region.facilities:
        if facility.reading_centre_id is not None:
            connection.execute(
                facility_table.update()
                .where(facility_table.c.id == facility.id)
                .values(reading_centre_id=facility.reading_centre_id)
            )
    qualifications = [
        {
            "facility_id": f.id,
            "valid_from": start,
            "valid_until": end,
            "certificate": f"QC-{f.code}-{start:%Y}",
        }
        for f in region.facilities
        for start, end in f.qualified
    ]
    if qualifications:
        connection.execute(insert(tables["qc_qualification"]), qualifications)
    ae_titles = [
        {"facility_id": f.id, "ae_title": aet, "station_name": aet, "modality": modality.value}
        for f in region.facilities
        for modality, aet in f.ae_titles.items()
    ]
    if ae_titles:
        connection.execute(insert(tables["facility_ae_title"]), ae_titles)
    connection.execute(
        insert(tables["app_user"]),
        [
            {
                "id": u.id,
                "username": u.username,
                "display_name": u.display_name,
                "role": u.role,
                "title": u.title,
                "facility_id": u.facility_id,
                "password_hash": password_hash,
                "is_demo": True,
                "active": True,
                "failed_logins": 0,
                "locked_until": None,
                "last_login_at": None,
                "created_at": anchor,
            }
            for u in region.users
        ],
    )


def _advance_sequences(connection: Connection, tables: dict[str, Table]) -> None:
    """PostgreSQL: explicit ids leave serial sequences behind; move them past the rows."""
    if connection.dialect.name != "postgresql":
        return
    for name, table in tables.items():
        if "id" not in table.c:
            continue
        highest = connection.execute(select(func.max(table.c.id))).scalar()
        if highest:
            connection.execute(
                text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :value)"),
                {"table": name, "value": highest},
            )
