"""The DICOM archive: store each instance durably, index it, then answer success.

C-STORE calls arrive on pynetdicom's association threads. Each reads the
index facts straight from the bytes, writes them under a temporary name and
fsyncs them; then one of the waiting threads
publishes every staged file (version, rename, directory fsync) and commits
their index rows in one transaction. The caller gets its status only after
that commit. If indexing fails, the file just written is removed again, so a
failure never leaves half a study.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from dicom.errors import InvalidInstance, StorageFull
from dicom.instance import InstanceFacts
from dicom.server import ReceivedInstance
from dicom.store import FileStore, StagedFile, StoredFile
from integration.database import Database, unavailable
from integration.directory import Directory, FacilityRef
from integration.settings import Settings
from models import metadata
from models.enums import Priority, StudyStatus
from models.errors import DatabaseUnavailable

log = logging.getLogger("huren.archive")
STUDY = metadata.tables["study"]
SERIES = metadata.tables["series"]
INSTANCE = metadata.tables["instance"]

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210
REFUSED_CALLER = 0x0124  # PS3.7 "Refused: Not Authorized": the caller is not configured
PROCESSING_FAILURE = 0x0110

_VERSIONS_OF_ONE = select(INSTANCE.c.sop_instance_uid, INSTANCE.c.version, INSTANCE.c.sha256).where(
    INSTANCE.c.sop_instance_uid == bindparam("uid")
)
_VERSIONS = select(INSTANCE.c.sop_instance_uid, INSTANCE.c.version, INSTANCE.c.sha256).where(
    INSTANCE.c.sop_instance_uid.in_(bindparam("uids", expanding=True))
)
_STUDY_BY_UID = select(STUDY.c.id, STUDY.c.modalities, STUDY.c.status).where(
    STUDY.c.study_instance_uid == bindparam("uid")
)
_SERIES_BY_UID = select(SERIES.c.id, SERIES.c.study_id).where(
    SERIES.c.series_instance_uid == bindparam("uid")
)
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


def _insert_once(connection: Connection, table: Table, key: str, values: dict[str, Any]) -> int:
    """Insert a study or series row unless its UID is already there; its id either way.

    Hubs sharing one database may receive the same study at once: the second
    insert waits for the first to commit and then does nothing, instead of
    failing the batch with a duplicate key.
    """
    dialect = connection.dialect.name
    statement = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    inserted = connection.execute(
        statement.on_conflict_do_nothing(index_elements=[key]).returning(table.c.id), values
    ).first()
    if inserted is not None:
        return int(inserted.id)
    log.info("%s %s was indexed by another hub first", table.name, values[key])
    return int(
        connection.execute(select(table.c.id).where(table.c[key] == values[key])).scalar_one()
    )


def _lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection itself is gone (not a lock, not bad data)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass
class _Job:
    facts: InstanceFacts
    staged: StagedFile
    facility: FacilityRef
    received_at: datetime
    version: int = 1
    stored: StoredFile | None = None
    duplicate: bool = False
    done: bool = False
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
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._waiting: list[_Job] = []
        self._committing = False
        self._connection: Connection | None = None  # the committing thread's, kept between batches
        self.indexed = 0
        self.commits = 0
        self._study_ids: dict[str, tuple[int, str]] = {}  # only under the committing thread
        self._series_ids: dict[str, tuple[int, int]] = {}  # series UID -> (series id, study id)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        swept = self._files.sweep_temporary()
        if swept:
            log.warning("removed %d temporary files left by an interrupted store", swept)

    def stop(self) -> None:
        """Close the commit connection (after the DICOM server stopped)."""
        with self._settled:
            while self._committing:
                self._settled.wait()
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as exc:  # a broken connection may not close cleanly
                log.warning("closing the archive's index connection: %s", exc)
            self._connection = None

    # ------------------------------------------------------------------ C-STORE
    def caller_facility(self, calling_aet: str) -> FacilityRef | None:
        facility = self._directory.facility_for_ae_title(calling_aet.strip())
        if facility is None and not self._settings.dicom_restrict_callers:
            facility = self._directory.facility(self._settings.dicom_default_facility)
        return facility

    def store(self, instance: ReceivedInstance, *, calling_aet: str, peer: str) -> int:
        facility = self.caller_facility(calling_aet)
        if facility is None:
            log.warning("instance from unknown AE %s (%s) refused", calling_aet, peer)
            return REFUSED_CALLER
        try:
            facts = instance.facts(zone=self._settings.zone)
        except InvalidInstance as exc:
            log.warning("refused instance from %s (%s): %s", calling_aet, peer, exc)
            return exc.status
        except Exception as exc:  # pydicom raises many types on a corrupt dataset
            log.warning("unreadable instance from %s (%s): %s", calling_aet, peer, exc)
            return CANNOT_UNDERSTAND
        return self.store_facts(instance.encoded, facts, facility=facility)

    def store_facts(self, encoded: bytes, facts: InstanceFacts, *, facility: FacilityRef) -> int:
        """Keep an instance whose facts the caller already read (the bulk import)."""
        try:
            staged = self._files.stage(encoded)
        except (OSError, StorageFull) as exc:  # StorageFull is a DicomError, not an OSError
            log.error("cannot write instance %s: %s", facts.sop_instance_uid, exc)
            return OUT_OF_RESOURCES
        return self._keep(staged, facts, facility)

    def _keep(self, staged: StagedFile, facts: InstanceFacts, facility: FacilityRef) -> int:
        """Publish and index a staged instance in a group commit; a status for the sender."""
        job = _Job(facts=facts, staged=staged, facility=facility, received_at=self._clock())
        self._settle(job)
        if job.error is None:
            return SUCCESS
        self._files.discard(staged)
        if job.stored is not None:
            self._files.remove(job.stored.path)
        log.error("instance %s not indexed (%s); file removed", facts.sop_instance_uid, job.error)
        if isinstance(job.error, (OSError, StorageFull, DatabaseUnavailable)):
            return OUT_OF_RESOURCES  # disk full, database locked: refused for now, send again
        if isinstance(job.error, InvalidInstance):
            return job.error.status
        return PROCESSING_FAILURE

    # ------------------------------------------------------------------ group commit
    def _settle(self, job: _Job) -> None:
        """Wait until ``job`` is committed, committing it (and whoever waits) if no one is.

        Leader/follower group commit: the first caller to find no commit in
        flight takes every waiting job into one transaction; the others wait
        on the condition. One association alone never hands work to another
        thread, and parallel associations share directory fsyncs and commits.
        """
        with self._settled:
            self._waiting.append(job)
            while not job.done:
                if self._committing:
                    self._settled.wait()
                    continue
                self._committing = True
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._settled.release()
                try:
                    self._commit(batch)
                finally:
                    self._settled.acquire()
                    self._committing = False
                    self._settled.notify_all()

    def _commit(self, batch: list[_Job]) -> None:
        """Publish and index a batch in one transaction; counts bumped once per study/series."""
        kept = self._connection is not None
        try:
            if self._connection is None:
                self._connection = self._database.engine.connect()
            connection = self._connection
            with connection.begin():
                self._publish(connection, batch)
                studies: dict[int, dict[str, Any]] = {}
                series: dict[int, int] = {}
                for job in batch:
                    if job.duplicate:
                        continue
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
                if studies:
                    connection.execute(_BUMP_STUDY, list(studies.values()))
                    connection.execute(
                        _BUMP_SERIES,
                        [
                            {"b_id": series_id, "b_instances": count}
                            for series_id, count in series.items()
                        ],
                    )
            self.commits += 1
            self.indexed += sum(1 for job in batch if not job.duplicate)
        except Exception as exc:  # reported to every waiting C-STORE as a failure
            self._drop_connection()  # it may be the connection that failed
            self._study_ids.clear()  # ids inserted by the rolled-back transaction are gone
            self._series_ids.clear()
            if kept and _lost(exc) and not any(job.stored for job in batch):
                # The kept connection died while idle (the server restarted, the link
                # dropped): nothing of this batch was published or written, so it runs
                # again on a new connection instead of refusing senders a healthy database.
                log.warning("index connection lost (%s); reconnecting", unavailable(exc))
                self._commit(batch)
                return
            if len(batch) > 1:
                for job in batch:  # files already published keep their names and versions
                    self._commit([job])
                return
            batch[0].error = unavailable(exc) or exc
        for job in batch:
            job.done = True

    def _publish(self, connection: Connection, batch: list[_Job]) -> None:
        """Give each staged file its version and final name, then sync their directories.

        An identical re-send is a duplicate (success, no second copy); a
        differing one becomes the next version. The index commit that follows
        is what makes the instance exist, so success waits for both.
        """
        latest: dict[str, tuple[int, str]] = {}
        uids = list({job.facts.sop_instance_uid for job in batch})
        if len(uids) == 1:
            rows = connection.execute(_VERSIONS_OF_ONE, {"uid": uids[0]})
        else:
            rows = connection.execute(_VERSIONS, {"uids": uids})
        for row in rows:
            known = latest.get(row.sop_instance_uid)
            if known is None or row.version > known[0]:
                latest[row.sop_instance_uid] = (row.version, row.sha256)
        for job in batch:
            if job.stored is not None:
                continue  # published by an earlier attempt of this batch
            uid = job.facts.sop_instance_uid
            known = latest.get(uid)
            if known is not None and known[1] == job.staged.sha256:
                job.duplicate = True
                self._files.discard(job.staged)
                continue
            if known is not None:
                job.version = known[0] + 1
                log.warning(
                    "SOP Instance %s re-sent with different content: kept as version %d",
                    uid,
                    job.version,
                )
            job.stored = self._files.publish(job.staged, job.facts, version=job.version)
            latest[uid] = (job.version, job.staged.sha256)
        self._files.sync_published(job.stored for job in batch if job.stored is not None)

    def _index(self, connection: Connection, job: _Job) -> tuple[int, int, bool, str]:
        """Study and series (created on first sight) and the instance row."""
        facts, now, stored = job.facts, job.received_at, job.stored
        if stored is None:
            raise RuntimeError(f"instance {facts.sop_instance_uid} indexed before it was published")
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
            study_id = _insert_once(
                connection,
                STUDY,
                "study_instance_uid",
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
            )
            known = (int(study_id), facts.modality)
        study_id, modalities = known
        if facts.modality and facts.modality not in modalities.split("\\"):
            modalities = "\\".join(m for m in (modalities, facts.modality) if m)
        self._study_ids[facts.study_instance_uid] = (study_id, modalities)

        known_series = self._series_ids.get(facts.series_instance_uid)
        new_series = False
        if known_series is None:
            found = connection.execute(_SERIES_BY_UID, {"uid": facts.series_instance_uid}).first()
            if found is not None:
                known_series = (int(found.id), int(found.study_id))
        if known_series is not None and known_series[1] != study_id:
            # UIDs are unique world-wide: the same series in two studies is a broken sender
            # (or a copied template), and filing it under either study would split one.
            raise InvalidInstance(
                f"series {facts.series_instance_uid} already belongs to another study; "
                f"refusing it under study {facts.study_instance_uid}",
                status=CANNOT_UNDERSTAND,
            )
        if known_series is None:
            new_series = True
            series_id = _insert_once(
                connection,
                SERIES,
                "series_instance_uid",
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
            )
            known_series = (series_id, study_id)
        series_id = known_series[0]
        self._series_ids[facts.series_instance_uid] = known_series
        connection.execute(
            _INSERT_INSTANCE,
            {
                "series_id": series_id,
                "study_id": study_id,
                "sop_instance_uid": facts.sop_instance_uid,
                "sop_class_uid": facts.sop_class_uid,
                "number": facts.instance_number,
                "transfer_syntax_uid": facts.transfer_syntax_uid,
                "path": stored.path,
                "size_bytes": stored.size_bytes,
                "sha256": stored.sha256,
                "version": job.version,
                "received_at": now,
            },
        )
        return study_id, series_id, new_series, modalities
