"""Modality Worklist matching (PS3.4 C.2.2.2) and the responses a modality receives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dicom_helpers import ZONE, worklist_item
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import decode, encode

from dicom.errors import DicomError
from dicom.worklist import matches, parse_worklist_query, worklist_response

ITEM = worklist_item()  # DX at DR01, 2024-03-05 09:30 Shanghai, 李^建国


def _identifier(step: dict[str, str] | None = None, **top: str) -> Dataset:
    identifier = Dataset()
    for keyword, value in top.items():
        setattr(identifier, keyword, value)
    if step is not None:
        item = Dataset()
        for keyword, value in step.items():
            setattr(item, keyword, value)
        identifier.ScheduledProcedureStepSequence = [item]
    return identifier


def _matches(identifier: Dataset, item: object = ITEM) -> bool:
    return matches(item, parse_worklist_query(identifier, zone=ZONE))  # type: ignore[arg-type]


CASES: list[tuple[str, Dataset, bool]] = [
    ("empty identifier: universal", _identifier(), True),
    ("empty keys: universal", _identifier({"Modality": ""}, PatientName="", PatientID=""), True),
    ("lone asterisk: universal", _identifier(PatientName="*", AccessionNumber="*"), True),
    ("modality", _identifier({"Modality": "DX"}), True),
    ("other modality", _identifier({"Modality": "CT"}), False),
    ("station AE", _identifier({"ScheduledStationAETitle": "DR01"}), True),
    ("other station AE", _identifier({"ScheduledStationAETitle": "DR02"}), False),
    ("date", _identifier({"ScheduledProcedureStepStartDate": "20240305"}), True),
    ("other date", _identifier({"ScheduledProcedureStepStartDate": "20240306"}), False),
    ("date range", _identifier({"ScheduledProcedureStepStartDate": "20240301-20240305"}), True),
    ("open end", _identifier({"ScheduledProcedureStepStartDate": "20240305-"}), True),
    ("open end after", _identifier({"ScheduledProcedureStepStartDate": "20240306-"}), False),
    ("open start", _identifier({"ScheduledProcedureStepStartDate": "-20240305"}), True),
    ("open start before", _identifier({"ScheduledProcedureStepStartDate": "-20240304"}), False),
    (
        "date and time range",
        _identifier(
            {
                "ScheduledProcedureStepStartDate": "20240305",
                "ScheduledProcedureStepStartTime": "0900-1000",
            }
        ),
        True,
    ),
    (
        "date and later time range",
        _identifier(
            {
                "ScheduledProcedureStepStartDate": "20240305",
                "ScheduledProcedureStepStartTime": "1000-1100",
            }
        ),
        False,
    ),
    (
        "time covers its precision",
        _identifier(
            {
                "ScheduledProcedureStepStartDate": "20240305",
                "ScheduledProcedureStepStartTime": "-09",
            }
        ),
        True,
    ),
    (
        # Combined range: from 4 March 10:00 to 5 March 09:00, so 5 March 09:30 is outside
        # even though 09:30 lies between 09:00 and 10:00 on no single day.
        "combined date-time range",
        _identifier(
            {
                "ScheduledProcedureStepStartDate": "20240304-20240305",
                "ScheduledProcedureStepStartTime": "1000-0900",
            }
        ),
        False,
    ),
    (
        "combined range reaching it",
        _identifier(
            {
                "ScheduledProcedureStepStartDate": "20240304-20240305",
                "ScheduledProcedureStepStartTime": "1000-0930",
            }
        ),
        True,
    ),
    ("time only", _identifier({"ScheduledProcedureStepStartTime": "0900-1000"}), True),
    ("time only, later", _identifier({"ScheduledProcedureStepStartTime": "1000-"}), False),
    ("patient id", _identifier(PatientID="390521195001011234"), True),
    ("patient id wildcard", _identifier(PatientID="390521*"), True),
    ("other patient id", _identifier(PatientID="390521195001011235"), False),
    ("accession", _identifier(AccessionNumber="A000000123"), True),
    ("accession with ?", _identifier(AccessionNumber="A00000012?"), True),
    ("other accession", _identifier(AccessionNumber="A000000124"), False),
    ("chinese name", _identifier(PatientName="李^建国"), True),
    ("chinese name without caret", _identifier(PatientName="李建国"), True),
    ("chinese family name wildcard", _identifier(PatientName="李*"), True),
    ("chinese given name wildcard", _identifier(PatientName="*建国"), True),
    ("single character wildcard", _identifier(PatientName="李^建?"), True),
    ("other chinese name", _identifier(PatientName="王*"), False),
    ("trailing carets ignored", _identifier(PatientName="李^建国^^"), True),
    (
        "all keys together",
        _identifier(
            {"Modality": "DX", "ScheduledStationAETitle": "DR01"},
            PatientName="李*",
            PatientID="390521195001011234",
        ),
        True,
    ),
    (
        "one key fails them all",
        _identifier({"Modality": "DX", "ScheduledStationAETitle": "DR02"}, PatientName="李*"),
        False,
    ),
]


@pytest.mark.parametrize(("case", "identifier", "expected"), CASES, ids=[c[0] for c in CASES])
def test_matching(case: str, identifier: Dataset, expected: bool) -> None:
    assert _matches(identifier) is expected


ALPHABETIC = worklist_item(patient_name="Li^Jianguo=李^建国")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("LI*", True),
        ("li^jianguo", True),
        ("Li Jianguo", True),
        ("LI^JIAN*", True),
        ("李*", True),
        ("Li^Jianguo=李^建国", True),
        ("=李^建国", True),
        ("WANG*", False),
    ],
)
def test_names_match_case_insensitively_and_on_any_group(pattern: str, expected: bool) -> None:
    assert _matches(_identifier(PatientName=pattern), ALPHABETIC) is expected


def test_dates_are_local_to_the_zone() -> None:
    """01:00 in Shanghai on 5 March is still 4 March in UTC: the local date decides."""
    early = worklist_item(scheduled_start=datetime(2024, 3, 4, 17, 0, tzinfo=UTC))
    assert _matches(_identifier({"ScheduledProcedureStepStartDate": "20240305"}), early)
    assert not _matches(_identifier({"ScheduledProcedureStepStartDate": "20240304"}), early)


def test_parsed_query_for_the_sql_prefilter() -> None:
    query = parse_worklist_query(
        _identifier(
            {
                "Modality": "DX",
                "ScheduledStationAETitle": "DR01",
                "ScheduledProcedureStepStartDate": "20240305",
            },
            PatientName="李*",
        ),
        zone=ZONE,
    )
    assert query.modality == "DX"
    assert query.station_aet == "DR01"
    assert query.start_from == datetime(2024, 3, 4, 16, 0, tzinfo=UTC)
    assert query.start_to == datetime(2024, 3, 5, 15, 59, 59, 999999, tzinfo=UTC)
    assert query.patient_name == "李*"
    assert query.patient_id is None and query.accession_number is None


@pytest.mark.parametrize(
    ("step", "top"),
    [
        ({"ScheduledProcedureStepStartDate": "2024035"}, {}),
        ({"ScheduledProcedureStepStartDate": "20240230"}, {}),
        ({"ScheduledProcedureStepStartDate": "20240306-20240305"}, {}),
        ({"ScheduledProcedureStepStartDate": "-"}, {}),
        ({"ScheduledProcedureStepStartTime": "2500"}, {}),
        (None, {"PatientID": "A\\B"}),
    ],
)
def test_malformed_keys_are_refused(step: dict[str, str] | None, top: dict[str, str]) -> None:
    with pytest.raises(DicomError) as caught:
        parse_worklist_query(_identifier(step, **top), zone=ZONE)
    assert caught.value.status == 0xA900


def test_two_step_items_are_refused() -> None:
    identifier = _identifier({"Modality": "DX"})
    identifier.ScheduledProcedureStepSequence.append(Dataset())
    with pytest.raises(DicomError):
        parse_worklist_query(identifier, zone=ZONE)


# --- responses -----------------------------------------------------------------------------------


def _request() -> Dataset:
    identifier = _identifier(
        {
            "Modality": "",
            "ScheduledStationAETitle": "",
            "ScheduledProcedureStepStartDate": "",
            "ScheduledProcedureStepStartTime": "",
            "ScheduledProcedureStepID": "",
            "ScheduledProcedureStepDescription": "",
            "ScheduledProcedureStepStatus": "",
            "ScheduledPerformingPhysicianName": "",
        },
        PatientName="",
        PatientID="",
        PatientBirthDate="",
        PatientSex="",
        AccessionNumber="",
        RequestedProcedureID="",
        RequestedProcedureDescription="",
        StudyInstanceUID="",
        RequestedProcedurePriority="",
        ReferringPhysicianName="",
        PatientWeight="",  # not held by the hub: comes back empty
    )
    identifier.ReferencedStudySequence = Sequence([])
    identifier.add_new(0x00091010, "LO", "")  # a private key
    return identifier


def test_response_has_exactly_the_requested_keys() -> None:
    request = _request()
    response = worklist_response(ITEM, request, zone=ZONE)
    assert set(response.keys()) == set(request.keys()) | {0x00080005}
    step_request = request.ScheduledProcedureStepSequence[0]
    step = response.ScheduledProcedureStepSequence[0]
    assert set(step.keys()) == set(step_request.keys())
    assert response.SpecificCharacterSet == "ISO_IR 192"
    assert response.PatientName == "李^建国"
    assert response.PatientID == "390521195001011234"
    assert response.PatientBirthDate == "19500101"
    assert response.PatientSex == "M"
    assert response.AccessionNumber == "A000000123"
    assert response.RequestedProcedureID == "RP123"
    assert response.RequestedProcedureDescription == "胸部正位片(DR)"
    assert response.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.1001"
    assert response.RequestedProcedurePriority == "ROUTINE"
    assert response.ReferringPhysicianName == "赵^医生"
    assert response.PatientWeight is None or response.PatientWeight == ""
    assert len(response.ReferencedStudySequence) == 0
    assert step.Modality == "DX"
    assert step.ScheduledStationAETitle == "DR01"
    assert step.ScheduledProcedureStepStartDate == "20240305"
    assert step.ScheduledProcedureStepStartTime == "093000"
    assert step.ScheduledProcedureStepID == "SPS123"
    assert step.ScheduledProcedureStepDescription == "胸部正位"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    assert step.ScheduledPerformingPhysicianName == "王^医生"


def test_an_empty_step_sequence_returns_the_whole_step() -> None:
    request = _identifier(PatientName="")
    request.ScheduledProcedureStepSequence = Sequence([])
    step = worklist_response(ITEM, request, zone=ZONE).ScheduledProcedureStepSequence[0]
    assert step.ScheduledStationAETitle == "DR01"
    assert step.ScheduledStationName == "QL-T01-DR"
    assert step.Modality == "DX"
    assert step.ScheduledProcedureStepID == "SPS123"
    assert step.ScheduledProcedureStepStartDate == "20240305"


@pytest.mark.parametrize(("priority", "sent"), [("emergency", "STAT"), ("STAT", "STAT")])
def test_priority_of_an_emergency(priority: str, sent: str) -> None:
    request = _identifier(RequestedProcedurePriority="")
    item = worklist_item(priority=priority)
    assert worklist_response(item, request, zone=ZONE).RequestedProcedurePriority == sent


@pytest.mark.parametrize(("charset", "codec"), [("ISO_IR 192", "utf-8"), ("GB18030", "gb18030")])
def test_chinese_name_round_trip_on_the_wire(charset: str, codec: str) -> None:
    """Encoded as pynetdicom sends it, decoded as a modality reads it."""
    response = worklist_response(ITEM, _request(), zone=ZONE, charset=charset)
    encoded = encode(response, True, True)
    assert encoded is not None
    assert "李^建国".encode(codec) in encoded
    received = decode(__import__("io").BytesIO(encoded), True, True)
    assert received.PatientName == "李^建国"
    assert (
        received.ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription == "胸部正位"
    )


def test_values_are_kept_inside_their_vr() -> None:
    item = worklist_item(station_aet="A-VERY-LONG-STATION-AE", modality="dx", sex="m")
    request = _identifier({"ScheduledStationAETitle": "", "Modality": ""}, PatientSex="")
    response = worklist_response(item, request, zone=ZONE)
    assert response.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "A-VERY-LONG-STAT"
    assert response.ScheduledProcedureStepSequence[0].Modality == "DX"
    assert response.PatientSex == "M"
