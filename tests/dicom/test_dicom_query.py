"""Study Root Query/Retrieve: parsing identifiers, matching studies and series, responses."""

from __future__ import annotations

from datetime import date, time

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicom.errors import DicomError
from dicom.query import (
    InstanceRecord,
    SeriesRecord,
    StudyRecord,
    instance_matches,
    instance_response,
    parse_study_query,
    series_matches,
    series_response,
    study_matches,
    study_response,
)

STUDY = StudyRecord(
    study_instance_uid="1.2.826.0.1.3680043.8.498.1001",
    patient_id="390521195001011234",
    patient_name="Li^Jianguo=李^建国",
    birth_date=date(1950, 1, 1),
    sex="M",
    accession_number="A000000123",
    study_date=date(2024, 3, 5),
    study_time=time(9, 30),
    modalities=("CT", "SR"),
    description="胸部CT平扫",
    num_series=2,
    num_instances=120,
    referring_physician="赵^医生",
)
SERIES = SeriesRecord(
    study_instance_uid=STUDY.study_instance_uid,
    series_instance_uid="1.2.826.0.1.3680043.8.498.1001.1",
    modality="CT",
    series_number=2,
    description="肺窗",
    body_part="CHEST",
    num_instances=119,
)


def _identifier(level: str, **keys: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def _study(**keys: str) -> bool:
    return study_matches(STUDY, parse_study_query(_identifier("STUDY", **keys)))


STUDY_CASES: list[tuple[dict[str, str], bool]] = [
    ({}, True),
    ({"PatientID": "390521195001011234"}, True),
    ({"PatientID": "390521*"}, True),
    ({"PatientID": "X*"}, False),
    ({"PatientName": "李*"}, True),
    ({"PatientName": "li^jian*"}, True),
    ({"PatientName": "王*"}, False),
    ({"AccessionNumber": "A000000123"}, True),
    ({"AccessionNumber": "A000000124"}, False),
    ({"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1001"}, True),
    ({"StudyInstanceUID": "1.2.3\\1.2.826.0.1.3680043.8.498.1001"}, True),  # list of UIDs
    ({"StudyInstanceUID": "1.2.3"}, False),
    ({"StudyDate": "20240305"}, True),
    ({"StudyDate": "20240101-20240304"}, False),
    ({"StudyDate": "20240101-"}, True),
    ({"StudyDate": "-20240304"}, False),
    ({"StudyDate": "20240305", "StudyTime": "0900-1000"}, True),
    ({"StudyDate": "20240305", "StudyTime": "1000-"}, False),
    ({"StudyTime": "0930"}, True),
    ({"ModalitiesInStudy": "CT"}, True),
    ({"ModalitiesInStudy": "MR\\CT"}, True),
    ({"ModalitiesInStudy": "MR"}, False),
    ({"StudyDescription": "胸部*"}, True),
    ({"PatientName": "李*", "ModalitiesInStudy": "MR"}, False),
]


@pytest.mark.parametrize(("keys", "expected"), STUDY_CASES, ids=[str(c[0]) for c in STUDY_CASES])
def test_study_matching(keys: dict[str, str], expected: bool) -> None:
    assert _study(**keys) is expected


def test_a_study_without_a_date_fails_a_date_key() -> None:
    undated = StudyRecord(**{**STUDY.__dict__, "study_date": None, "study_time": None})
    assert not study_matches(
        undated, parse_study_query(_identifier("STUDY", StudyDate="20240101-"))
    )
    assert study_matches(undated, parse_study_query(_identifier("STUDY")))


def test_series_matching() -> None:
    uid = STUDY.study_instance_uid
    assert series_matches(SERIES, parse_study_query(_identifier("SERIES", StudyInstanceUID=uid)))
    assert series_matches(
        SERIES, parse_study_query(_identifier("SERIES", StudyInstanceUID=uid, Modality="CT"))
    )
    assert not series_matches(
        SERIES, parse_study_query(_identifier("SERIES", StudyInstanceUID=uid, Modality="MR"))
    )
    assert series_matches(
        SERIES, parse_study_query(_identifier("SERIES", StudyInstanceUID=uid, SeriesNumber="2"))
    )
    assert not series_matches(
        SERIES, parse_study_query(_identifier("SERIES", StudyInstanceUID="1.2.3"))
    )


def test_instance_matching() -> None:
    record = InstanceRecord(STUDY.study_instance_uid, SERIES.series_instance_uid, "1.9", "1.2", 4)
    query = parse_study_query(
        _identifier(
            "IMAGE",
            StudyInstanceUID=STUDY.study_instance_uid,
            SeriesInstanceUID=SERIES.series_instance_uid,
            SOPInstanceUID="1.9",
        )
    )
    assert instance_matches(record, query)
    assert not instance_matches(
        InstanceRecord(**{**record.__dict__, "sop_instance_uid": "2"}), query
    )


@pytest.mark.parametrize(
    ("level", "keys"),
    [
        ("", {}),
        ("PATIENT", {}),
        ("SERIES", {}),
        ("SERIES", {"StudyInstanceUID": "1.2\\1.3"}),
        ("IMAGE", {"StudyInstanceUID": "1.2"}),
        ("STUDY", {"StudyInstanceUID": "not-a-uid"}),
        ("STUDY", {"StudyDate": "2024"}),
    ],
)
def test_bad_identifiers_are_refused(level: str, keys: dict[str, str]) -> None:
    with pytest.raises(DicomError) as caught:
        parse_study_query(_identifier(level, **keys))
    assert caught.value.status == 0xA900


def test_a_series_number_that_is_no_number_is_refused() -> None:
    identifier = _identifier("SERIES", StudyInstanceUID="1.2")
    identifier[0x00200011] = RawDataElement(Tag(0x00200011), "IS", 4, b"two ", 0, True, True)
    with pytest.raises(DicomError, match="SeriesNumber"):
        parse_study_query(identifier)


def test_study_response() -> None:
    request = _identifier(
        "STUDY",
        PatientName="",
        PatientID="",
        PatientBirthDate="",
        StudyDate="",
        StudyTime="",
        ModalitiesInStudy="",
        StudyDescription="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
        StudyInstanceUID="",
        AccessionNumber="",
        RetrieveAETitle="",
        InstitutionName="",  # not held: comes back empty
    )
    response = study_response(STUDY, request, retrieve_aet="HUREN")
    assert set(response.keys()) == set(request.keys()) | {0x00080005}
    assert response.QueryRetrieveLevel == "STUDY"
    assert response.SpecificCharacterSet == "ISO_IR 192"
    assert response.PatientName == "Li^Jianguo=李^建国"
    assert response.StudyDate == "20240305"
    assert response.StudyTime == "093000"
    assert list(response.ModalitiesInStudy) == ["CT", "SR"]
    assert response.NumberOfStudyRelatedSeries == 2
    assert response.NumberOfStudyRelatedInstances == 120
    assert response.RetrieveAETitle == "HUREN"
    assert response.StudyDescription == "胸部CT平扫"
    assert not response.InstitutionName


def test_series_response_echoes_the_study_uid() -> None:
    request = _identifier(
        "SERIES",
        SeriesInstanceUID="",
        Modality="",
        SeriesNumber="",
        SeriesDescription="",
        NumberOfSeriesRelatedInstances="",
    )
    request.StudyInstanceUID = STUDY.study_instance_uid
    response = series_response(SERIES, request)
    assert response.QueryRetrieveLevel == "SERIES"
    assert response.StudyInstanceUID == STUDY.study_instance_uid
    assert response.SeriesInstanceUID == SERIES.series_instance_uid
    assert response.Modality == "CT"
    assert response.SeriesNumber == 2
    assert response.SeriesDescription == "肺窗"
    assert response.NumberOfSeriesRelatedInstances == 119


def test_instance_response() -> None:
    record = InstanceRecord(STUDY.study_instance_uid, SERIES.series_instance_uid, "1.9", "1.2", 4)
    request = _identifier("IMAGE", SOPInstanceUID="", InstanceNumber="")
    response = instance_response(record, request)
    assert response.QueryRetrieveLevel == "IMAGE"
    assert response.SOPInstanceUID == "1.9"
    assert response.InstanceNumber == 4
    assert response.StudyInstanceUID == STUDY.study_instance_uid
    assert response.SeriesInstanceUID == SERIES.series_instance_uid
