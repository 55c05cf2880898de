"""Read-mostly reference data (facilities, exam catalogue, aliases, AE titles) held in memory.

Intake looks these up for every message; a database round trip each time
would cost more than the rest of the message. The directory reloads itself
when asked for something it does not know (at most once per ``min_reload``),
so a facility or exam code configured while the hub runs is found without a
restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from integration.database import unavailable
from models import ExamCodeAlias, ExamType, Facility, FacilityAeTitle

log = logging.getLogger("huren.directory")


@dataclass(frozen=True)
class FacilityRef:
    id: int
    code: str
    name: str
    reading_centre_id: int | None
    hl7_charset: str
    hl7_host: str | None
    hl7_port: int | None


@dataclass(frozen=True)
class ExamRef:
    id: int
    code: str
    name_zh: str
    modality: str
    body_part: str
    body_part_count: int
    loinc: str | None


@dataclass(frozen=True)
class _Snapshot:
    facilities: dict[str, FacilityRef]
    facilities_by_id: dict[int, FacilityRef]
    exams_by_code: dict[str, ExamRef]
    exams_by_loinc: dict[str, ExamRef]
    aliases: dict[tuple[int | None, str], ExamRef]
    ae_titles: dict[tuple[int, str], str]  # (facility, modality) -> AE title
    facility_by_aet: dict[str, int]


class Directory:
    """Thread-safe cache of reference data, replaced whole on reload."""

    def __init__(self, engine: Engine, *, min_reload: float = 5.0) -> None:
        self._engine = engine
        self._min_reload = min_reload
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._snapshot = self._load()

    def _load(self) -> _Snapshot:
        with self._engine.connect() as connection:
            facility_rows = connection.execute(select(Facility.__table__)).all()  # type: ignore[attr-defined]
            exam_rows = connection.execute(select(ExamType.__table__)).all()  # type: ignore[attr-defined]
            alias_rows = connection.execute(select(ExamCodeAlias.__table__)).all()  # type: ignore[attr-defined]
            aet_rows = connection.execute(select(FacilityAeTitle.__table__)).all()  # type: ignore[attr-defined]
        facilities = {
            row.code: FacilityRef(
                id=row.id,
                code=row.code,
                name=row.name,
                reading_centre_id=row.reading_centre_id,
                hl7_charset=row.hl7_charset,
                hl7_host=row.hl7_host,
                hl7_port=row.hl7_port,
            )
            for row in facility_rows
            if row.active
        }
        exams = {
            row.id: ExamRef(
                id=row.id,
                code=row.code,
                name_zh=row.name_zh,
                modality=row.modality,
                body_part=row.body_part,
                body_part_count=row.body_part_count,
                loinc=row.loinc,
            )
            for row in exam_rows
            if row.active
        }
        self._loaded_at = time.monotonic()
        return _Snapshot(
            facilities=facilities,
            facilities_by_id={ref.id: ref for ref in facilities.values()},
            exams_by_code={exam.code.upper(): exam for exam in exams.values()},
            exams_by_loinc={exam.loinc: exam for exam in exams.values() if exam.loinc},
            aliases={
                (row.facility_id, row.code.upper()): exams[row.exam_type_id]
                for row in alias_rows
                if row.exam_type_id in exams
            },
            ae_titles={(row.facility_id, row.modality): row.ae_title for row in aet_rows},
            facility_by_aet={row.ae_title: row.facility_id for row in aet_rows},
        )

    def reload(self, *, force: bool = True) -> bool:
        """Reload now (or, unforced, only if the last load is older than ``min_reload``)."""
        with self._lock:
            if not force and time.monotonic() - self._loaded_at < self._min_reload:
                return False
            self._snapshot = self._load()
            return True

    def _reload_for_a_miss(self) -> bool:
        """Reload (if due) because a lookup missed; False when nothing new was loaded.

        While the database is unavailable the snapshot in hand stands: the lookup
        misses, and the caller's own write answers the sender with the outage.
        """
        try:
            return self.reload(force=False)
        except SQLAlchemyError as exc:
            transient = unavailable(exc)
            if transient is None:
                raise
            log.warning("directory not reloaded: %s", transient)
            return False

    def facility(self, code: str) -> FacilityRef | None:
        found = self._snapshot.facilities.get(code)
        if found is None and code and self._reload_for_a_miss():
            found = self._snapshot.facilities.get(code)
        return found

    def facility_by_id(self, facility_id: int) -> FacilityRef | None:
        return self._snapshot.facilities_by_id.get(facility_id)

    def ae_title(self, facility_id: int, modality: str) -> str | None:
        return self._snapshot.ae_titles.get((facility_id, modality))

    def facility_for_ae_title(self, ae_title: str) -> FacilityRef | None:
        facility_id = self._snapshot.facility_by_aet.get(ae_title)
        if facility_id is None and self._reload_for_a_miss():
            facility_id = self._snapshot.facility_by_aet.get(ae_title)
        return None if facility_id is None else self.facility_by_id(facility_id)

    def exam_type(
        self, code: str, *, system: str = "", facility_id: int | None = None
    ) -> ExamRef | None:
        """The catalogue exam an order code stands for: local alias, catalogue code, LOINC."""
        loinc_allowed = system.upper() in ("LN", "LOINC", "")
        for attempt in range(2):
            snapshot = self._snapshot
            key = code.strip().upper()
            found = (
                snapshot.aliases.get((facility_id, key))
                or snapshot.exams_by_code.get(key)
                or (snapshot.exams_by_loinc.get(code.strip()) if loinc_allowed else None)
                or snapshot.aliases.get((None, key))
            )
            if found is not None or not key or attempt or not self._reload_for_a_miss():
                return found
        return None
