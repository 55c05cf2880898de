"""What the DICOM server asks the hub: who may call, the worklist, priors, and stabilising.

These implement the provider protocols of ``dicom.server`` from the database;
``dicom`` itself never sees a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import and_, select

from dicom.instance import facts_from
from dicom.query import (
    SeriesRecord,
    StudyQuery,
    StudyRecord,
    series_matches,
    series_response,
    study_matches,
    study_response,
)
from dicom.store import FileStore
from dicom.worklist import WorklistItem, WorklistQuery, matches, worklist_response
from integration.archive import SUCCESS, Archive
from integration.database import Database, log_failed_round
from integration.directory import Directory
from integration.fhir_publish import publish_study
from integration.reconcile import AlreadyComplete, complete_study
from integration.settings import Settings
from models import metadata
from models.enums import IdentifierKind, OrderStatus, Priority, StudyStatus
from models.errors import NotFound

log = logging.getLogger("huren.imaging")
T = metadata.tables
ORDER, PATIENT, EXAM = T["exam_order"], T["patient"], T["exam_type"]
IDENTIFIER, STUDY, SERIES, INSTANCE = (
    T["patient_identifier"],
    T["study"],
    T["series"],
    T["instance"],
)
AE_TITLE = T["facility_ae_title"]


class CallerPolicy:
    """Known AE titles only (unless configured otherwise); C-MOVE targets from the AE table."""

    def __init__(self, *, database: Database, settings: Settings, directory: Directory) -> None:
        self._database = database
        self._settings = settings
        self._directory = directory

    def allowed(self, calling_aet: str, peer: str) -> bool:
        if not self._settings.dicom_restrict_callers:
            return True
        known = self._directory.facility_for_ae_title(calling_aet.strip()) is not None
        if not known:
            log.warning("association from unknown AE %r at %s rejected", calling_aet, peer)
        return known

    def move_destination(self, aet: str) -> tuple[str, int] | None:
        with self._database.engine.connect() as connection:
            row = connection.execute(
                select(AE_TITLE.c.host, AE_TITLE.c.port).where(AE_TITLE.c.ae_title == aet.strip())
            ).first()
        if row is None or not row.host or not row.port:
            return None
        return str(row.host), int(row.port)


def _patient_id_for(
    identifiers: list[tuple[str, str, str]], facility_code: str, patient_id: int
) -> tuple[str, str]:
    """The PatientID a modality at ``facility_code`` knows: its MRN, else the resident ID."""
    for kind, authority, value in identifiers:
        if kind == IdentifierKind.mrn and authority == facility_code:
            return value, facility_code
    for kind, _authority, value in identifiers:
        if kind == IdentifierKind.resident_id:
            return value, "CN"
    return f"HR{patient_id}", "HUREN"


class WorklistService:
    """Modality Worklist C-FIND from the open orders of the calling facility."""

    def __init__(self, *, database: Database, settings: Settings, directory: Directory) -> None:
        self._database = database
        self._settings = settings
        self._directory = directory

    def items(self, query: WorklistQuery, *, calling_aet: str) -> list[WorklistItem]:
        facility = self._directory.facility_for_ae_title(calling_aet.strip())
        statement = (
            select(
                ORDER,
                PATIENT.c.name.label("patient_name"),
                PATIENT.c.birth_date,
                PATIENT.c.sex,
                EXAM.c.modality,
                EXAM.c.name_zh,
                EXAM.c.body_part,
                EXAM.c.code.label("exam_code"),
            )
            .join(PATIENT, PATIENT.c.id == ORDER.c.patient_id)
            .join(EXAM, EXAM.c.id == ORDER.c.exam_type_id)
            .where(ORDER.c.status == OrderStatus.scheduled)
        )
        if facility is not None:
            statement = statement.where(ORDER.c.performing_facility_id == facility.id)
        if query.modality:
            statement = statement.where(EXAM.c.modality == query.modality)
        if (
            query.accession_number
            and "*" not in query.accession_number
            and "?" not in query.accession_number
        ):
            statement = statement.where(ORDER.c.accession_number == query.accession_number)
        if query.start_from is not None:
            statement = statement.where(ORDER.c.scheduled_at >= query.start_from)
        if query.start_to is not None:
            statement = statement.where(ORDER.c.scheduled_at <= query.start_to)
        items: list[WorklistItem] = []
        with self._database.engine.connect() as connection:
            rows = connection.execute(statement.order_by(ORDER.c.scheduled_at).limit(500)).all()
            patient_ids = {row.patient_id for row in rows}
            identifiers: dict[int, list[tuple[str, str, str]]] = {}
            if patient_ids:
                for ident in connection.execute(
                    select(
                        IDENTIFIER.c.patient_id,
                        IDENTIFIER.c.kind,
                        IDENTIFIER.c.authority,
                        IDENTIFIER.c.value,
                    ).where(IDENTIFIER.c.patient_id.in_(patient_ids))
                ):
                    identifiers.setdefault(ident.patient_id, []).append(
                        (ident.kind, ident.authority, ident.value)
                    )
        for row in rows:
            performing = self._directory.facility_by_id(row.performing_facility_id)
            code = performing.code if performing else ""
            patient_id, issuer = _patient_id_for(
                identifiers.get(row.patient_id, []), code, row.patient_id
            )
            item = WorklistItem(
                patient_name=row.patient_name,
                patient_id=patient_id,
                issuer_of_patient_id=issuer,
                birth_date=row.birth_date,
                sex=row.sex,
                accession_number=row.accession_number,
                requested_procedure_id=row.requested_procedure_id or row.accession_number,
                requested_procedure_description=row.name_zh,
                study_instance_uid=row.study_instance_uid or "",
                sps_id=row.sps_id or row.accession_number,
                sps_description=row.name_zh,
                modality=row.modality,
                station_aet=row.scheduled_station_aet or "",
                station_name=row.scheduled_station_aet or "",
                scheduled_start=row.scheduled_at or row.requested_at,
                performing_physician="",
                referring_physician=row.ordering_provider,
                priority="STAT" if row.priority == Priority.emergency else "ROUTINE",
                admission_id="",
                body_part=row.body_part,
            )
            if matches(item, query):
                items.append(item)
        return items

    def find(
        self, query: WorklistQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterator[Dataset]:
        for item in self.items(query, calling_aet=calling_aet):
            yield worklist_response(item, identifier, zone=self._settings.zone)


class StudyQueryService:
    """Study Root C-FIND over the archive, and the files a C-MOVE/C-GET sends."""

    def __init__(self, *, database: Database, settings: Settings, files: FileStore) -> None:
        self._database = database
        self._settings = settings
        self._files = files

    def _studies(self, query: StudyQuery) -> list[StudyRecord]:
        statement = (
            select(
                STUDY,
                PATIENT.c.name.label("patient_name"),
                PATIENT.c.birth_date,
                PATIENT.c.sex,
                ORDER.c.ordering_provider,
            )
            .outerjoin(PATIENT, PATIENT.c.id == STUDY.c.patient_id)
            .outerjoin(ORDER, ORDER.c.id == STUDY.c.order_id)
            .where(STUDY.c.source_node.is_(None))
        )
        if query.study_instance_uids:
            statement = statement.where(STUDY.c.study_instance_uid.in_(query.study_instance_uids))
        if query.accession_number and not any(c in query.accession_number for c in "*?"):
            statement = statement.where(STUDY.c.accession_number == query.accession_number)
        if query.patient_id and not any(c in query.patient_id for c in "*?"):
            owners = select(IDENTIFIER.c.patient_id).where(IDENTIFIER.c.value == query.patient_id)
            statement = statement.where(
                (STUDY.c.patient_id.in_(owners)) | (STUDY.c.dicom_patient_id == query.patient_id)
            )
        records = []
        with self._database.engine.connect() as connection:
            for row in connection.execute(statement.order_by(STUDY.c.started_at).limit(1000)):
                started = row.started_at.astimezone(self._settings.zone) if row.started_at else None
                records.append(
                    StudyRecord(
                        study_instance_uid=row.study_instance_uid,
                        patient_id=query.patient_id or row.dicom_patient_id,
                        patient_name=row.patient_name or row.dicom_patient_name,
                        birth_date=row.birth_date,
                        sex=row.sex or "",
                        accession_number=row.accession_number or "",
                        study_date=started.date() if started else None,
                        study_time=started.time().replace(microsecond=0) if started else None,
                        modalities=tuple(m for m in row.modalities.split("\\") if m),
                        description=row.description,
                        num_series=row.num_series,
                        num_instances=row.num_instances,
                        referring_physician=row.ordering_provider or "",
                    )
                )
        return [record for record in records if study_matches(record, query)]

    def find(
        self, query: StudyQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterator[Dataset]:
        studies = self._studies(query)
        if query.level == "STUDY":
            for record in studies:
                yield study_response(record, identifier)
            return
        uids = [record.study_instance_uid for record in studies]
        with self._database.engine.connect() as connection:
            rows = connection.execute(
                select(SERIES, STUDY.c.study_instance_uid)
                .join(STUDY, STUDY.c.id == SERIES.c.study_id)
                .where(STUDY.c.study_instance_uid.in_(uids))
                .order_by(SERIES.c.number)
            ).all()
        for row in rows:
            series = SeriesRecord(
                study_instance_uid=row.study_instance_uid,
                series_instance_uid=row.series_instance_uid,
                modality=row.modality,
                series_number=row.number,
                description=row.description,
                body_part=row.body_part,
                num_instances=row.num_instances,
            )
            if series_matches(series, query):
                yield series_response(series, identifier)

    def instances(self, query: StudyQuery) -> Iterable[str]:
        uids = [record.study_instance_uid for record in self._studies(query)]
        statement = (
            select(INSTANCE.c.path, INSTANCE.c.sop_instance_uid, INSTANCE.c.version)
            .join(STUDY, STUDY.c.id == INSTANCE.c.study_id)
            .where(STUDY.c.study_instance_uid.in_(uids))
        )
        if query.series_instance_uids:
            statement = statement.join(SERIES, SERIES.c.id == INSTANCE.c.series_id).where(
                SERIES.c.series_instance_uid.in_(query.series_instance_uids)
            )
        if query.sop_instance_uids:
            statement = statement.where(INSTANCE.c.sop_instance_uid.in_(query.sop_instance_uids))
        latest: dict[str, tuple[int, str]] = {}
        with self._database.engine.connect() as connection:
            for row in connection.execute(statement):
                if (
                    row.sop_instance_uid not in latest
                    or latest[row.sop_instance_uid][0] < row.version
                ):
                    latest[row.sop_instance_uid] = (row.version, row.path)
        return [path for _version, path in latest.values()]

    def open(self, path: str) -> Dataset:
        return self._files.open_dataset(path)


class Stabiliser:
    """Marks studies complete once no instance arrived for the quiet time, then reconciles."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock

    def run_once(self) -> int:
        now = self._clock()
        quiet = timedelta(seconds=self._settings.study_quiet_seconds)
        with self._database.engine.connect() as connection:
            due = [
                row.id
                for row in connection.execute(
                    select(STUDY.c.id).where(
                        and_(
                            STUDY.c.status == StudyStatus.receiving,
                            STUDY.c.last_instance_at <= now - quiet,
                        )
                    )
                )
            ]
        return sum(self.complete(study_id, now=now) for study_id in due)

    def complete(self, study_id: int, *, now: datetime) -> bool:
        """Complete, reconcile and publish one study; False if another hub already did."""
        try:
            with self._database.engine.begin() as connection:
                match = complete_study(
                    connection,
                    study_id=study_id,
                    now=now,
                    zone=self._settings.zone,
                    min_confidence=self._settings.reconcile_min_confidence,
                )
                publish_study(connection, study_id=study_id, settings=self._settings, now=now)
        except AlreadyComplete:
            log.debug("study %d was completed by another stabiliser", study_id)
            return False
        log.info("study %d complete%s", study_id, f", matched by {match.method}" if match else "")
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception as exc:  # keep stabilising after a bad round; the error is logged
                log_failed_round(log, "stabiliser round failed", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.stabiliser_poll_seconds)


def import_folder(
    archive: Archive,
    stabiliser: Stabiliser,
    *,
    database: Database,
    folder: Path,
    facility_code: str,
    directory: Directory,
    settings: Settings,
    progress: Callable[[int], None] = lambda _n: None,
) -> tuple[int, int]:
    """`huren dicom import DIR`: historic files through the same store-and-index path.

    Returns (stored, refused). Imported studies are complete at once: there is
    nothing more to wait for.
    """
    facility = directory.facility(facility_code)
    if facility is None:
        raise NotFound(f"no facility with code {facility_code}")
    stored = refused = 0
    studies: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        progress(1)
        try:
            encoded = path.read_bytes()
            facts = facts_from(dcmread(path), zone=settings.zone)
        except (InvalidDicomError, OSError) as exc:
            log.warning("skipped %s: not a DICOM file (%s)", path, exc)
            refused += 1
            continue
        except Exception as exc:  # pydicom raises many types on a damaged dataset
            log.warning("skipped %s: %s", path, exc)
            refused += 1
            continue
        if archive.store_facts(encoded, facts, facility=facility) == SUCCESS:
            stored += 1
            studies.add(facts.study_instance_uid)
        else:
            refused += 1
    with database.engine.connect() as connection:
        ids = [
            row.id
            for row in connection.execute(
                select(STUDY.c.id).where(
                    STUDY.c.study_instance_uid.in_(studies), STUDY.c.status == StudyStatus.receiving
                )
            )
        ]
    for study_id in ids:
        stabiliser.complete(study_id, now=datetime.now(UTC))
    return stored, refused
