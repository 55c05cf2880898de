"""Fakes of the hub's handlers (in memory, no database) and helpers for dcmtk clients."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset

from dicom.errors import InvalidInstance
from dicom.instance import InstanceFacts, facts_from, parse_da, parse_tm
from dicom.query import (
    InstanceRecord,
    SeriesRecord,
    StudyQuery,
    StudyRecord,
    instance_matches,
    instance_response,
    series_matches,
    series_response,
    study_matches,
    study_response,
)
from dicom.server import ReceivedInstance
from dicom.worklist import WorklistItem, WorklistQuery, matches, worklist_response

ZONE = ZoneInfo("Asia/Shanghai")
HOST = "127.0.0.1"
SERVER_AET = "HUREN"
CLINIC_AET = "CLINIC01"
DCMTK = Path("/usr/bin")


def sample(name: str) -> Path:
    """A file bundled with pydicom (never one it would download)."""
    found = get_testdata_file(name, download=False)
    assert found is not None, f"{name} is not bundled with pydicom"
    return Path(str(found))


def dcmtk(
    tool: str, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Debian dcmtk tool by full path (the venv has pynetdicom's tools of the same names)."""
    return subprocess.run(
        [str(DCMTK / tool), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@dataclass
class MemoryStorage:
    """StorageHandler that keeps what it is given, as the hub's would after indexing."""

    status: int = 0x0000
    fail_with: Exception | None = None
    stored: dict[str, bytes] = field(default_factory=dict)
    facts: dict[str, InstanceFacts] = field(default_factory=dict)
    callers: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, instance: ReceivedInstance, *, calling_aet: str, peer: str) -> int:
        if self.fail_with is not None:
            raise self.fail_with
        encoded = instance.encoded
        try:
            facts = facts_from(instance.dataset, zone=ZONE)
        except InvalidInstance as exc:
            return exc.status
        if self.status != 0x0000:
            return self.status
        with self.lock:
            self.stored[facts.sop_instance_uid] = encoded
            self.facts[facts.sop_instance_uid] = facts
            self.callers.append((calling_aet, peer))
        return 0x0000


@dataclass
class KnownCallers:
    """CallerPolicy over a fixed set of AE titles and move destinations."""

    aets: set[str]
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def allowed(self, calling_aet: str, peer: str) -> bool:
        self.asked.append((calling_aet, peer))
        return calling_aet in self.aets

    def move_destination(self, aet: str) -> tuple[str, int] | None:
        return self.destinations.get(aet)


@dataclass
class ListWorklist:
    """WorklistProvider over a list of items; the hub pre-filters in SQL, this filters all."""

    items: list[WorklistItem]
    queries: list[WorklistQuery] = field(default_factory=list)

    def find(
        self, query: WorklistQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterable[Dataset]:
        self.queries.append(query)
        for item in self.items:
            if matches(item, query):
                yield worklist_response(item, identifier, zone=ZONE)


class FileArchive:
    """StudyQueryProvider over files on disk, read once into records."""

    def __init__(self, files: Iterable[Path]) -> None:
        self.studies: dict[str, StudyRecord] = {}
        self.series: dict[str, SeriesRecord] = {}
        self.instances_: list[tuple[InstanceRecord, str]] = []
        grouped: dict[str, list[Dataset]] = {}
        for path in files:
            dataset = dcmread(path, stop_before_pixels=True)
            grouped.setdefault(str(dataset.StudyInstanceUID), []).append(dataset)
            self.instances_.append(
                (
                    InstanceRecord(
                        study_instance_uid=str(dataset.StudyInstanceUID),
                        series_instance_uid=str(dataset.SeriesInstanceUID),
                        sop_instance_uid=str(dataset.SOPInstanceUID),
                        sop_class_uid=str(dataset.SOPClassUID),
                        instance_number=None,
                    ),
                    str(path),
                )
            )
        for study_uid, datasets in grouped.items():
            first = datasets[0]
            series_uids = {str(d.SeriesInstanceUID) for d in datasets}
            self.studies[study_uid] = StudyRecord(
                study_instance_uid=study_uid,
                patient_id=str(first.get("PatientID", "")),
                patient_name=str(first.get("PatientName", "")),
                birth_date=parse_da(str(first.get("PatientBirthDate", ""))),
                sex=str(first.get("PatientSex", "")),
                accession_number=str(first.get("AccessionNumber", "")),
                study_date=parse_da(str(first.get("StudyDate", ""))),
                study_time=parse_tm(str(first.get("StudyTime", ""))),
                modalities=tuple(sorted({str(d.Modality) for d in datasets})),
                description=str(first.get("StudyDescription", "")),
                num_series=len(series_uids),
                num_instances=len(datasets),
                referring_physician=str(first.get("ReferringPhysicianName", "")),
            )
            for series_uid in series_uids:
                members = [d for d in datasets if str(d.SeriesInstanceUID) == series_uid]
                self.series[series_uid] = SeriesRecord(
                    study_instance_uid=study_uid,
                    series_instance_uid=series_uid,
                    modality=str(members[0].Modality),
                    series_number=int(members[0].get("SeriesNumber") or 0) or None,
                    description=str(members[0].get("SeriesDescription", "")),
                    body_part=str(members[0].get("BodyPartExamined", "")),
                    num_instances=len(members),
                )

    def find(
        self, query: StudyQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterable[Dataset]:
        if query.level == "STUDY":
            for study in self.studies.values():
                if study_matches(study, query):
                    yield study_response(study, identifier, retrieve_aet=SERVER_AET)
        elif query.level == "SERIES":
            for series in self.series.values():
                if series_matches(series, query):
                    yield series_response(series, identifier, retrieve_aet=SERVER_AET)
        else:
            for record, _ in self.instances_:
                if instance_matches(record, query):
                    yield instance_response(record, identifier, retrieve_aet=SERVER_AET)

    def instances(self, query: StudyQuery) -> Iterable[str]:
        return [path for record, path in self.instances_ if instance_matches(record, query)]

    def open(self, path: str) -> Dataset:
        return dcmread(path)


def worklist_item(**changes: object) -> WorklistItem:
    """An order for a chest DR at a township health centre, Chinese name and all."""
    values: dict[str, object] = {
        "patient_name": "李^建国",
        "patient_id": "390521195001011234",
        "issuer_of_patient_id": "QL-T01",
        "birth_date": date(1950, 1, 1),
        "sex": "M",
        "accession_number": "A000000123",
        "requested_procedure_id": "RP123",
        "requested_procedure_description": "胸部正位片(DR)",
        "study_instance_uid": "1.2.826.0.1.3680043.8.498.1001",
        "sps_id": "SPS123",
        "sps_description": "胸部正位",
        "modality": "DX",
        "station_aet": "DR01",
        "station_name": "QL-T01-DR",
        "scheduled_start": datetime(2024, 3, 5, 1, 30, tzinfo=UTC),  # 09:30 in Shanghai
        "performing_physician": "王^医生",
        "referring_physician": "赵^医生",
        "priority": "ROUTINE",
        "admission_id": "V0001",
        "body_part": "CHEST",
    }
    values.update(changes)
    return WorklistItem(**values)  # type: ignore[arg-type]


def part10(dataset: Dataset, syntax: str = "1.2.840.10008.1.2.1") -> Dataset:
    """Give a data set built in a test the file meta that pynetdicom and dcmtk need."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = dataset.get("SOPInstanceUID", "1.2.3.4")
    meta.TransferSyntaxUID = syntax
    dataset.file_meta = meta
    return dataset
