"""The DICOM archive: store each instance durably, index it, then answer success.

C-STORE calls arrive on pynetdicom's association threads. Each writes its
file atomically (temp file, fsync, rename) and hands the index rows to one
writer thread, which commits whatever is waiting in one transaction; the
caller gets its status only after that commit. If indexing fails, the file
just written is removed again, so a failure never leaves half a study.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydicom import Dataset
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from dicom.errors import InvalidInstance, StorageFull
from dicom.instance import InstanceFacts, facts_from
from dicom.store import FileStore, StoredFile
from integration.database import Database
from integration.directory import Directory, FacilityRef
from integration.settings import Settings
from models import metadata
from models.enums import Priority, StudyStatus

log = logging.getLogger("huren.archive")
STUDY = metadata.tables["study"]
SERIES = metadata.tables["series"]
INSTANCE = metadata.tables["instance"]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210
REFUSED_CALLER = 0x0124  # PS3.7 "Refused: Not Authorized": the caller is not configured
PROCESSING_FAILURE = 0x0110

_LATEST_VERSION = (
    select(INSTANCE.c.version, INSTANCE.c.sha256)
    .where(INSTANCE.c.sop_instance_uid == bindparam("uid"))
    .order_by(INSTANCE.c.version.desc())
    .limit(1)
)
_STUDY_BY_UID = select(STUDY.c.id, STUDY.c.modalities, STUDY.c.status).where(
    STUDY.c.study_instance_uid == bindparam("uid")
)
_SERIES_BY_UID = select(SERIES.c.id).where(SERIES.c.series_instance_uid == bindparam("uid"))
_INSERT_STUDY = insert(STUDY)
_INSERT_SERIES = insert(SERIES)
_INSERT_INSTANCE = insert(INSTANCE)
_BUMP_STUDY = (
    update(STUDY)
    .where(STUDY.c.id == bindparam("b_id"))
    .values(
        num_instances=STUDY.c.num_instances + bindparam("b_instances"),
        num_series=STUDY.c.num_series + bindparam("b_series"),
        last_instance_at=bindparam("b_last"),
        modalities=bindparam("b_modalities"),
    )
)
_BUMP_SERIES = (
    update(SERIES)
    .where(SERIES.c.id == bindparam("b_id"))
    .values(num_instances=SERIES.c.num_instances + bindparam("b_instances"))
)


@dataclass
class _Job:
    facts: InstanceFacts
    stored: StoredFile
    version: int
    facility: FacilityRef
    received_at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Archive:
    """The storage handler handed to the DICOM server (``store`` returns a DICOM status)."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        directory: Directory,
        files: FileStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_batch: int = 128,
    ) -> None:
        self._database = database
        self._settings = settings
        self._directory = directory
        self._files = files
        self._clock = clock
        self._max_batch = max_batch
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self.indexed = 0
        self.commits = 0
        self._study_ids: dict[str, tuple[int, str]] = {}  # writer thread only
        self._series_ids: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        swept = self._files.sweep_temporary()
        if swept:
            log.warning("removed %d temporary files left by an interrupted store", swept)
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="dicom-index", daemon=True
            )
            self._writer.start()

    def stop(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=30)
            self._writer = None

    # ------------------------------------------------------------------ C-STORE
    def caller_facility(self, calling_aet: str) -> FacilityRef | None:
        facility = self._directory.facility_for_ae_title(calling_aet.strip())
        if facility is None and not self._settings.dicom_restrict_callers:
            facility = self._directory.facility(self._settings.dicom_default_facility)
        return facility

    def store(self, encoded: bytes, dataset: Dataset, *, calling_aet: str, peer: str) -> int:
        try:
            facts = facts_from(dataset, zone=self._settings.zone)
        except InvalidInstance as exc:
            log.warning("refused instance from %s (%s): %s", calling_aet, peer, exc)
            return exc.status
        except Exception as exc:  # pydicom raises many types on a corrupt dataset
            log.warning("unreadable instance from %s (%s): %s", calling_aet, peer, exc)
            return CANNOT_UNDERSTAND
        facility = self.caller_facility(calling_aet)
        if facility is None:
            log.warning("instance from unknown AE %s (%s) refused", calling_aet, peer)
            return REFUSED_CALLER
        return self.store_facts(encoded, facts, facility=facility)

    def store_facts(self, encoded: bytes, facts: InstanceFacts, *, facility: FacilityRef) -> int:
        digest = hashlib.sha256(encoded).hexdigest()
        try:
            with self._database.engine.connect() as connection:
                latest = connection.execute(
                    _LATEST_VERSION, {"uid": facts.sop_instance_uid}
                ).first()
        except SQLAlchemyError as exc:
            log.error("index unavailable: %s", exc)
            return PROCESSING_FAILURE
        version = 1
        if latest is not None:
            if latest.sha256 == digest:
                return SUCCESS  # the same instance again: nothing to do
            version = latest.version + 1
            log.warning(
                "SOP Instance %s re-sent with different content: kept as version %d",
                facts.sop_instance_uid,
                version,
            )
        try:
            stored = self._files.write(encoded, facts, version=version)
        except StorageFull as exc:
            log.error("storage full: %s", exc)
            return OUT_OF_RESOURCES
        except OSError as exc:
            log.error("cannot write instance %s: %s", facts.sop_instance_uid, exc)
            return OUT_OF_RESOURCES
        job = _Job(
            facts=facts,
            stored=stored,
            version=version,
            facility=facility,
            received_at=self._clock(),
        )
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            self._files.remove(stored.path)
            log.error(
                "instance %s not indexed (%s); file removed", facts.sop_instance_uid, job.error
            )
            return PROCESSING_FAILURE
        return SUCCESS

    # ------------------------------------------------------------------ index writer
    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    following = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        """Index a batch in one transaction; counts are bumped once per study and series."""
        try:
            with self._database.engine.begin() as connection:
                studies: dict[int, dict[str, Any]] = {}
                series: dict[int, int] = {}
                for job in batch:
                    study_id, series_id, new_series, modalities = self._index(connection, job)
                    counted = 1 if job.version == 1 else 0
                    bump = studies.setdefault(
                        study_id,
                        {
                            "b_id": study_id,
                            "b_instances": 0,
                            "b_series": 0,
                            "b_last": job.received_at,
                            "b_modalities": modalities,
                        },
                    )
                    bump["b_instances"] += counted
                    bump["b_series"] += 1 if new_series else 0
                    bump["b_last"] = max(bump["b_last"], job.received_at)
                    bump["b_modalities"] = modalities
                    series[series_id] = series.get(series_id, 0) + counted
                connection.execute(_BUMP_STUDY, list(studies.values()))
                connection.execute(
                    _BUMP_SERIES,
                    [
                        {"b_id": series_id, "b_instances": count}
                        for series_id, count in series.items()
                    ],
                )
            self.commits += 1
            self.indexed += len(batch)
        except Exception as exc:  # reported to every waiting C-STORE as a failure
            self._study_ids.clear()  # ids inserted by the rolled-back transaction are gone
            self._series_ids.clear()
            if len(batch) > 1:
                for job in batch:
                    self._commit([job])
                return
            batch[0].error = exc
        for job in batch:
            job.done.set()

    def _index(self, connection: Connection, job: _Job) -> tuple[int, int, bool, str]:
        """Study and series (created on first sight) and the instance row."""
        facts, now = job.facts, job.received_at
        if len(self._study_ids) > 10_000:
            self._study_ids.clear()
            self._series_ids.clear()
        known = self._study_ids.get(facts.study_instance_uid)
        if known is None:
            study = connection.execute(_STUDY_BY_UID, {"uid": facts.study_instance_uid}).first()
            if study is not None:
                known = (study.id, study.modalities)
                if study.status == StudyStatus.complete:
                    log.info("late instance for complete study %s", facts.study_instance_uid)
        if known is None:
            study_id = connection.execute(
                _INSERT_STUDY,
                {
                    "study_instance_uid": facts.study_instance_uid,
                    "order_id": None,
                    "patient_id": None,
                    "exam_type_id": None,
                    "facility_id": job.facility.id,
                    "reading_centre_id": job.facility.reading_centre_id or job.facility.id,
                    "accession_number": facts.accession_number[:16] or None,
                    "modalities": facts.modality,
                    "body_part": facts.body_part[:16],
                    "description": facts.study_description[:128],
                    "station_name": facts.station_name[:64],
                    "priority": Priority.routine,
                    "started_at": facts.study_datetime,
                    "received_at": now,
                    "last_instance_at": now,
                    "completed_at": None,
                    "status": StudyStatus.receiving,
                    "reading_status": None,
                    "num_series": 0,
                    "num_instances": 0,
                    "quality_rejected": False,
                    "retake_of_study_id": None,
                    "claimed_by_id": None,
                    "claimed_until": None,
                    "dicom_patient_id": facts.patient_id[:64],
                    "dicom_patient_name": facts.patient_name[:128],
                    "demographics_conflict": False,
                    "source_node": None,
                },
            ).inserted_primary_key[0]  # type: ignore[index]
            known = (int(study_id), facts.modality)
        study_id, modalities = known
        if facts.modality and facts.modality not in modalities.split("\\"):
            modalities = "\\".join(m for m in (modalities, facts.modality) if m)
        self._study_ids[facts.study_instance_uid] = (study_id, modalities)

        series_id = self._series_ids.get(facts.series_instance_uid)
        new_series = False
        if series_id is None:
            found = connection.execute(_SERIES_BY_UID, {"uid": facts.series_instance_uid}).first()
            if found is not None:
                series_id = int(found.id)
            else:
                new_series = True
                series_id = int(
                    connection.execute(
                        _INSERT_SERIES,
                        {
                            "study_id": study_id,
                            "series_instance_uid": facts.series_instance_uid,
                            "number": facts.series_number,
                            "modality": facts.modality or "OT",
                            "body_part": facts.body_part[:16],
                            "laterality": facts.laterality[:2],
                            "description": facts.series_description[:128],
                            "station_name": facts.station_name[:64],
                            "started_at": facts.series_datetime,
                            "num_instances": 0,
                        },
                    ).inserted_primary_key[0]  # type: ignore[index]
                )
            self._series_ids[facts.series_instance_uid] = series_id
        connection.execute(
            _INSERT_INSTANCE,
            {
                "series_id": series_id,
                "study_id": study_id,
                "sop_instance_uid": facts.sop_instance_uid,
                "sop_class_uid": facts.sop_class_uid,
                "number": facts.instance_number,
                "transfer_syntax_uid": facts.transfer_syntax_uid,
                "path": job.stored.path,
                "size_bytes": job.stored.size_bytes,
                "sha256": job.stored.sha256,
                "version": job.version,
                "received_at": now,
            },
        )
        return study_id, series_id, new_series, modalities
