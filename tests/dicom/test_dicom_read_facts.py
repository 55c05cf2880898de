"""The fast reading of an instance's facts agrees with pydicom's, file for file."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from dicom_helpers import ZONE, part10
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

import dicom.instance as instance_module
from dicom.errors import InvalidInstance
from dicom.instance import facts_from, read_facts, read_instance
from dicom.store import encode_received


def _pydicom_samples() -> list[Path]:
    """The test files pydicom ships in its wheel (no download: the rest are fetched)."""
    return sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("**/*.dcm"))


def _slow(encoded: bytes) -> object:
    try:
        return facts_from(read_instance(encoded), zone=ZONE)
    except InvalidInstance as exc:
        return ("refused", exc.status)


def _fast(encoded: bytes) -> object:
    try:
        return read_facts(encoded, zone=ZONE)
    except InvalidInstance as exc:
        return ("refused", exc.status)


@pytest.mark.parametrize("path", _pydicom_samples(), ids=lambda path: path.name)
def test_every_pydicom_sample_reads_the_same_both_ways(path: Path) -> None:
    encoded = path.read_bytes()
    assert _fast(encoded) == _slow(encoded)


def _instance(**attributes: object) -> bytes:
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "CT"
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    stored = part10(dataset)
    return encode_received(stored, stored.file_meta)


def _item(**attributes: object) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


@pytest.mark.parametrize(
    "attributes",
    [
        {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "张^三丰", "PatientID": "QL001"},
        {"SpecificCharacterSet": "GB18030", "PatientName": "李^建国", "StationName": "CT室"},
        {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller^Jörg"},
        {"PatientName": "Doe^John^^Dr", "StudyDescription": "  CHEST PA  "},
        {"SpecificCharacterSet": "\\ISO 2022 IR 58", "PatientName": "Wang^Wei"},
        {"StudyDate": "20261125", "StudyTime": "083015.5", "TimezoneOffsetFromUTC": "+0800"},
        {"SeriesDate": "2026.11.25", "InstanceNumber": "3.0", "SeriesNumber": "  7 "},
        {"AccessionNumber": "A123\\B", "BodyPartExamined": "chest", "Laterality": "l"},
        {
            "RequestAttributesSequence": Sequence(
                [_item(RequestedProcedureID="RP9", ScheduledProcedureStepID="SPS9")]
            ),
            "IssuerOfAccessionNumberSequence": Sequence([_item(LocalNamespaceEntityID="QL-T01")]),
            "RequestedProcedureID": "RP-TOP",
        },
        {"RequestAttributesSequence": Sequence([])},
        {"SOPInstanceUID": "1.2.abc"},
    ],
    ids=[
        "utf8",
        "gb18030",
        "latin1",
        "default",
        "iso2022",
        "times",
        "odd-numbers",
        "multi-values",
        "sequences",
        "empty-sequence",
        "bad-uid",
    ],
)
def test_crafted_instances_read_the_same_both_ways(attributes: dict[str, object]) -> None:
    encoded = _instance(**attributes)
    assert _fast(encoded) == _slow(encoded)


def test_the_fast_path_is_taken_for_plain_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("went the slow way")

    monkeypatch.setattr(instance_module, "read_instance", refuse)
    facts = read_facts(_instance(SpecificCharacterSet="ISO_IR 192", PatientName="张^三"), zone=ZONE)
    assert facts.patient_name == "张三"


def test_iso_2022_goes_the_slow_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = instance_module.read_instance

    def counting(encoded: bytes) -> object:
        calls.append(1)
        return original(encoded)

    monkeypatch.setattr(instance_module, "read_instance", counting)
    read_facts(_instance(SpecificCharacterSet="\\ISO 2022 IR 58", PatientName="Wang"), zone=ZONE)
    assert calls == [1]


def test_a_cut_stream_is_refused() -> None:
    encoded = _instance(PatientName="Cut^Short")
    with pytest.raises(InvalidInstance):
        read_facts(encoded[:-5], zone=ZONE)
