"""FHIR search without I/O: what ``index_of`` takes from a resource, what ``parse_search`` asks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.organization import Organization
from fhir_samples import (
    auditor,
    county,
    exam,
    instance_rows,
    order,
    radiologist,
    report,
    series_rows,
    study,
    township,
)

from fhir.identifiers import HR_TAG_CODE, HR_TAG_SYSTEM, conditional_query
from fhir.mapping import diagnostic_report_from, imaging_study_from
from fhir.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    SEARCH_PARAMETERS,
    DateFilter,
    SearchError,
    TokenFilter,
    index_of,
    parse_search,
    reference_id,
    split_search_value,
    unescape_search_value,
)
from models.errors import ValidationError

DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESIDENT = "https://huren.health/fhir/sid/resident-id"


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- index_of ---------------------------------------------------------------------------------


def test_patient_index_names_birthdate_identifiers_and_active() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "7",
        "identifier": [
            {"system": RESIDENT, "value": "11010519491231002X"},
            {"system": "https://huren.health/fhir/sid/mrn/HR-T01", "value": "MRN 0042"},
            {"value": "no-system"},
            {"system": "urn:x", "value": ""},  # no value: not a token
        ],
        "name": [
            {"use": "official", "text": "张三丰", "family": "张", "given": ["三丰"]},
            {"family": "Zhang", "given": ["San", "Feng"]},
        ],
        "birthDate": "1949-12-31",
        "subject": {"reference": "Patient/99"},  # a Patient has no subject: ignored
    }
    index = index_of(patient)
    assert index.tokens == (
        ("identifier", RESIDENT, "11010519491231002X"),
        ("identifier", "https://huren.health/fhir/sid/mrn/HR-T01", "MRN 0042"),
        ("identifier", "", "no-system"),
    )
    assert index.birth_date == date(1949, 12, 31)
    assert index.status == "active"
    assert index.subject_id is None
    assert index.sort_date is None
    words = index.name_text.split(" ")
    # text, family+given joined, and each part; English lower-cased; each once
    assert words == ["张三丰", "张", "三丰", "zhangsanfeng", "zhang", "san", "feng"]


def test_patient_index_inactive_and_partial_birthdate() -> None:
    index = index_of({"resourceType": "Patient", "active": False, "birthDate": "1990-05"})
    assert index.status == "inactive"
    assert index.birth_date is None  # only a full date can be searched by day
    assert index.name_text == ""
    assert index.tokens == ()


def test_patient_name_text_is_capped_at_the_column_width() -> None:
    index = index_of({"resourceType": "Patient", "name": [{"text": "长" * 400}]})
    assert len(index.name_text) == 255


def test_imaging_study_modalities_include_series_once_each() -> None:
    resource = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}],
        "modality": [{"system": DCM, "code": "CT"}],
        "series": [
            {"uid": "1.2.3.1", "modality": {"system": DCM, "code": "CT"}},
            {"uid": "1.2.3.2", "modality": {"system": DCM, "code": "SR"}},
            {"uid": "1.2.3.3", "modality": {"system": DCM}},  # no code: no token
        ],
        "subject": {"reference": "Patient/7"},
        "started": "2026-03-02T09:05:00+08:00",
        "basedOn": [
            {"reference": "ServiceRequest/11"},
            {"type": "ServiceRequest", "identifier": {"value": "A1"}},  # logical: no token
        ],
    }
    index = index_of(resource)
    assert index.tokens == (
        ("identifier", "urn:dicom:uid", "urn:oid:1.2.3"),
        ("modality", DCM, "CT"),
        ("modality", DCM, "SR"),
        ("based-on", "", "ServiceRequest/11"),
    )
    assert index.subject_id == "7"
    assert index.status == "available"
    assert index.sort_date == _utc(2026, 3, 2, 1, 5)  # +08:00 stored as UTC


def test_imaging_study_from_the_mapper_is_indexed_by_its_series_modality() -> None:
    """The hub's own mapping output: CT and SR (ModalitiesInStudy) plus the series' CT."""
    mapped = imaging_study_from(
        study(), series_rows(), instance_rows(), facility=township(), exam=exam()
    )
    index = index_of(json.loads(mapped.model_dump_json()))
    modalities = {value for parameter, _, value in index.tokens if parameter == "modality"}
    assert modalities == {"CT", "SR"}
    identifiers = {
        (system, value) for parameter, system, value in index.tokens if parameter == "identifier"
    }
    assert ("urn:dicom:uid", "urn:oid:" + study().study_instance_uid) in identifiers
    assert any(value == "A20260302001" for _, value in identifiers)  # the accession
    assert ("based-on", "", "ServiceRequest/11") in index.tokens
    assert index.subject_id == "7"
    assert index.sort_date == study().started_at


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/7", "7"),
        ("http://127.0.0.1:8080/fhir/Patient/7", "7"),
        ("https://province.example/fhir/Patient/abc-1/_history/3", "abc-1"),
        ("Patient/7/", "7"),
        ("Group/7", None),
        ("urn:uuid:2b8ab0a0-2c4a-4f2e-8a5e-0c0a4d4c9d11", None),
        ("#contained", None),
        ("7", None),
        ("", None),
    ],
)
def test_subject_from_relative_and_absolute_references(
    reference: str, expected: str | None
) -> None:
    assert reference_id(reference, "Patient") == expected
    resource: dict[str, Any] = {"resourceType": "DiagnosticReport", "status": "final"}
    if reference:
        resource["subject"] = {"reference": reference}
    assert index_of(resource).subject_id == expected


def test_diagnostic_report_based_on_tag_code_and_date() -> None:
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "meta": {
            "versionId": "3",
            "tag": [
                {"system": HR_TAG_SYSTEM, "code": HR_TAG_CODE, "display": "互认"},
                {"system": "urn:x", "display": "no code: no token"},
            ],
        },
        "identifier": [{"system": "https://huren.health/fhir/sid/report", "value": "R-1"}],
        "basedOn": [{"reference": "ServiceRequest/11"}, {"reference": "ServiceRequest/12"}],
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29252-4"}]},
        "subject": {"reference": "http://other.example/fhir/Patient/p-9"},
        "effectiveDateTime": "2026-03-02T01:05:00Z",
        "issued": "2026-03-02T01:40:00Z",
    }
    index = index_of(resource)
    assert index.tokens == (
        ("identifier", "https://huren.health/fhir/sid/report", "R-1"),
        ("_tag", HR_TAG_SYSTEM, HR_TAG_CODE),
        ("code", "http://loinc.org", "29252-4"),
        ("based-on", "", "ServiceRequest/11"),
        ("based-on", "", "ServiceRequest/12"),
    )
    assert index.subject_id == "p-9"
    assert index.sort_date == _utc(2026, 3, 2, 1, 5)  # effective, not issued
    del resource["effectiveDateTime"]
    assert index_of(resource).sort_date == _utc(2026, 3, 2, 1, 40)  # else issued


def test_diagnostic_report_from_the_mapper_carries_the_hr_tag_only_when_earned() -> None:
    def mapped(*, qc: bool) -> dict[str, Any]:
        resource = diagnostic_report_from(
            report(),
            study=study(),
            patient_id=7,
            exam=exam(),
            order=order(),
            author=radiologist(),
            auditor=auditor(),
            facility=township(),
            reading_centre=county(),
            qc_qualified=qc,
            pdf=None,
        )
        return dict(json.loads(resource.model_dump_json()))

    tagged = index_of(mapped(qc=True))
    assert ("_tag", HR_TAG_SYSTEM, HR_TAG_CODE) in tagged.tokens
    assert ("based-on", "", "ServiceRequest/11") in tagged.tokens
    assert tagged.subject_id == "7"
    assert tagged.status == "final"
    untagged = index_of(mapped(qc=False))
    assert not [token for token in untagged.tokens if token[0] == "_tag"]


def test_service_request_authored_code_and_subject() -> None:
    index = index_of(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "identifier": [{"system": "urn:placer", "value": "P 7788"}],
            "code": {"coding": [{"system": "urn:exam", "code": "CT-CHEST"}]},
            "subject": {"reference": "Patient/7"},
            "authoredOn": "2026-03-02",
        }
    )
    assert index.sort_date == _utc(2026, 3, 2)
    assert index.subject_id == "7"
    assert index.status == "active"
    assert ("code", "urn:exam", "CT-CHEST") in index.tokens
    assert ("identifier", "urn:placer", "P 7788") in index.tokens


def test_other_types_keep_identifier_and_status_only() -> None:
    index = index_of(
        {
            "resourceType": "Organization",
            "identifier": [{"system": "https://huren.health/fhir/sid/facility", "value": "HR-C01"}],
            "subject": {"reference": "Patient/7"},
        }
    )
    assert index.tokens == (("identifier", "https://huren.health/fhir/sid/facility", "HR-C01"),)
    assert index.subject_id is None and index.sort_date is None and index.status == ""


def test_unparseable_dates_index_as_none() -> None:
    index = index_of({"resourceType": "ImagingStudy", "started": "not a date"})
    assert index.sort_date is None


# --- parse_search: parameters -------------------------------------------------------------------


def test_every_supported_parameter_of_every_type_parses() -> None:
    samples = {
        "token": "urn:sys|v1",
        "string": "张",
        "date": "ge2026-03-02",
        "reference": "Patient/7",
    }
    for resource_type, parameters in SEARCH_PARAMETERS.items():
        for name, kind in parameters.items():
            value = samples[kind]
            if name == "based-on":
                value = "ServiceRequest/11"
            query = parse_search(resource_type, [(name, value)])
            assert query.resource_type == resource_type
            if name == "status":
                assert query.statuses == ("urn:sys|v1",)
            elif kind == "token":
                assert query.tokens == (TokenFilter(name, (("urn:sys", "v1"),)),)
            elif name == "patient":
                assert query.subjects == ("7",)
            elif name == "based-on":
                assert query.tokens == (TokenFilter("based-on", (("", "ServiceRequest/11"),)),)
            elif name == "birthdate":
                assert query.birthdates == (DateFilter("ge", _utc(2026, 3, 2), _utc(2026, 3, 3)),)
                assert query.dates == ()
            elif kind == "date":
                assert query.dates == (DateFilter("ge", _utc(2026, 3, 2), _utc(2026, 3, 3)),)
                assert query.birthdates == ()
            else:
                assert query.name == "张"


def test_defaults() -> None:
    query = parse_search("ImagingStudy", [])
    assert query.count == DEFAULT_COUNT == 20
    assert query.offset == 0
    assert query.sort is None
    assert not query.summary_count
    assert query.includes == ()
    assert query.subjects is None and query.statuses is None
    assert query.tokens == () and query.dates == () and query.name is None


def test_tokens_system_value_any_system_no_system_and_ors() -> None:
    query = parse_search(
        "Patient",
        [("identifier", f"{RESIDENT}|11010519491231002X,MRN 0042,|bare,urn:a|b|c")],
    )
    assert query.tokens == (
        TokenFilter(
            "identifier",
            (
                (RESIDENT, "11010519491231002X"),
                (None, "MRN 0042"),  # no bar: any system
                ("", "bare"),  # a leading bar: explicitly no system
                ("urn:a", "b|c"),  # only the first bar splits
            ),
        ),
    )


def test_repeated_token_parameters_are_anded() -> None:
    query = parse_search("ImagingStudy", [("modality", "CT"), ("modality", "MR,DX")])
    assert query.tokens == (
        TokenFilter("modality", ((None, "CT"),)),
        TokenFilter("modality", ((None, "MR"), (None, "DX"))),
    )


def test_status_ors() -> None:
    query = parse_search("DiagnosticReport", [("status", "final,amended,,corrected")])
    assert query.statuses == ("final", "amended", "corrected")


def test_patient_reference_forms() -> None:
    query = parse_search(
        "ImagingStudy",
        [("patient", "7,Patient/8,http://127.0.0.1:8080/fhir/Patient/9,Patient/10/_history/2")],
    )
    assert query.subjects == ("7", "8", "9", "10")


def test_patient_reference_of_another_type_is_refused() -> None:
    with pytest.raises(SearchError, match="Practitioner/7") as caught:
        parse_search("DiagnosticReport", [("patient", "Practitioner/7")])
    assert caught.value.field == "patient"


def test_based_on_bare_ids_are_service_requests() -> None:
    query = parse_search("DiagnosticReport", [("based-on", "11,ServiceRequest/12")])
    assert query.tokens == (
        TokenFilter("based-on", (("", "ServiceRequest/11"), ("", "ServiceRequest/12"))),
    )


def test_name_is_lower_cased_and_modifiers_contains_exact_accepted() -> None:
    assert parse_search("Patient", [("name", "ZHANG")]).name == "zhang"
    assert parse_search("Patient", [("name:contains", "San")]).name == "san"
    assert parse_search("Patient", [("name:exact", "张三丰")]).name == "张三丰"


def test_format_is_ignored() -> None:
    assert parse_search("Patient", [("_format", "json")]) == parse_search("Patient", [])


def test_paging_sort_summary_include() -> None:
    query = parse_search(
        "DiagnosticReport",
        [
            ("_count", "5"),
            ("_offset", "10"),
            ("_sort", "-date"),
            ("_include", "DiagnosticReport:imaging-study"),
        ],
    )
    assert (query.count, query.offset, query.sort) == (5, 10, "-date")
    assert query.includes == ("DiagnosticReport:imaging-study",)
    assert parse_search("Patient", [("_summary", "count")]).summary_count
    for sort in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
        assert parse_search("ImagingStudy", [("_sort", sort)]).sort == sort


@pytest.mark.parametrize(
    ("asked", "granted"), [("0", 0), ("1", 1), ("200", 200), ("201", 200), ("99999", 200)]
)
def test_count_is_capped_at_200(asked: str, granted: int) -> None:
    assert MAX_COUNT == 200
    assert parse_search("Patient", [("_count", asked)]).count == granted


def test_count_zero_asks_only_for_the_total() -> None:
    """FHIR: _count=0 is _summary=count (a page of nothing would have a next page forever)."""
    query = parse_search("ImagingStudy", [("_count", "0")])
    assert query.summary_count
    assert not parse_search("ImagingStudy", [("_count", "1")]).summary_count


# --- parse_search: escaped values ---------------------------------------------------------------


def test_escaped_separators_are_part_of_the_value() -> None:
    query = parse_search(
        "Patient", [("identifier", r"urn:x|MRN\,1,a\|b,urn:y|c\\d,e\$f,urn:z|g\|h")]
    )
    assert query.tokens == (
        TokenFilter(
            "identifier",
            (
                ("urn:x", "MRN,1"),
                (None, "a|b"),
                ("urn:y", "c\\d"),
                (None, "e$f"),
                ("urn:z", "g|h"),
            ),
        ),
    )
    assert parse_search("Patient", [("name", r"a\,b")]).name == "a,b"
    assert parse_search("Patient", [("name", "a\\b")]).name == "a\\b"  # not an escape: kept
    assert parse_search("ImagingStudy", [("status", r"a\,b,c")]).statuses == ("a,b", "c")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a,b", ["a", "b"]),
        (r"a\,b", [r"a\,b"]),
        (r"a\\,b", [r"a\\", "b"]),  # an escaped backslash, then a separator
        ("a,", ["a", ""]),
        ("", [""]),
        ("\\", ["\\"]),  # a lone trailing backslash stays
    ],
)
def test_split_search_value(text: str, parts: list[str]) -> None:
    assert split_search_value(text, ",") == parts


def test_unescape_search_value() -> None:
    assert unescape_search_value(r"\\ \| \, \$ \x") == r"\ | , $ \x"


@pytest.mark.parametrize(
    "value", ["MRN 0042", "MRN,1", "A|B", "C\\D", "E$F", "\\|,$", "编号,一|二", "100%_x"]
)
def test_the_hubs_conditional_urls_parse_back_to_the_identifier(value: str) -> None:
    """What fhir.identifiers writes for a conditional update, search reads as the same value."""
    resource = Organization(id="1", identifier=[Identifier(system="urn:x:a|b", value=value)])
    url = conditional_query(resource)
    ((name, text),) = parse_qsl(urlsplit(url).query)
    query = parse_search("Organization", [(name, text)])
    assert query.tokens == (TokenFilter("identifier", (("urn:x:a|b", value),)),)


# --- parse_search: dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", _utc(2026, 1, 1), _utc(2027, 1, 1)),
        ("2026-02", _utc(2026, 2, 1), _utc(2026, 3, 1)),
        ("2026-12", _utc(2026, 12, 1), _utc(2027, 1, 1)),
        ("2024-02-29", _utc(2024, 2, 29), _utc(2024, 3, 1)),
        ("2026-12-31", _utc(2026, 12, 31), _utc(2027, 1, 1)),
        ("2026-03-02T10:00:00Z", _utc(2026, 3, 2, 10), _utc(2026, 3, 2, 10, 0, 1)),
        ("2026-03-02T10:00:00+08:00", _utc(2026, 3, 2, 2), _utc(2026, 3, 2, 2, 0, 1)),
        ("2026-03-02T10:00:00", _utc(2026, 3, 2, 10), _utc(2026, 3, 2, 10, 0, 1)),
    ],
)
@pytest.mark.parametrize("prefix", ["", "eq", "ge", "gt", "le", "lt"])
def test_date_precision_and_prefixes(
    prefix: str, text: str, start: datetime, end: datetime
) -> None:
    query = parse_search("ImagingStudy", [("started", prefix + text)])
    assert query.dates == (DateFilter(prefix or "eq", start, end),)


def test_a_date_range_is_two_filters() -> None:
    query = parse_search("ServiceRequest", [("authored", "ge2026-03"), ("authored", "lt2026-04")])
    assert query.dates == (
        DateFilter("ge", _utc(2026, 3, 1), _utc(2026, 4, 1)),
        DateFilter("lt", _utc(2026, 4, 1), _utc(2026, 5, 1)),
    )


@pytest.mark.parametrize("prefix", ["ne", "sa", "eb", "ap"])
def test_unsupported_date_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(SearchError, match=prefix) as caught:
        parse_search("Patient", [("birthdate", f"{prefix}1949-12-31")])
    assert caught.value.field == "birthdate"


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-02-30", "26-03-02", "2026-3-2"])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_search("DiagnosticReport", [("date", text)])
    assert caught.value.field == "date"
    assert "date" in str(caught.value)


# --- parse_search: refusals name the parameter -------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "parameters", "field"),
    [
        ("Patient", [("gender", "male")], "gender"),
        ("Patient", [("modality", "CT")], "modality"),
        ("ImagingStudy", [("subject", "Patient/7")], "subject"),
        ("DiagnosticReport", [("_has:Observation:subject:code", "x")], "_has"),
        ("ImagingStudy", [("_revinclude", "DiagnosticReport:imaging-study")], "_revinclude"),
        ("Patient", [("identifier:missing", "true")], "identifier"),
        ("Patient", [("identifier:text", "x")], "identifier"),
        ("ImagingStudy", [("patient:Patient", "7")], "patient"),
        ("Patient", [("birthdate:missing", "true")], "birthdate"),
        ("Patient", [("name:phonetic", "zhang")], "name"),
        ("Patient", [("_sort", "name")], "_sort"),
        ("Patient", [("_sort", "-birthdate")], "_sort"),
        ("Patient", [("_summary", "true")], "_summary"),
        ("Patient", [("_summary", "text")], "_summary"),
        ("DiagnosticReport", [("_include", "DiagnosticReport:subject")], "_include"),
        ("DiagnosticReport", [("_include", "*")], "_include"),
        ("ImagingStudy", [("_include", "DiagnosticReport:imaging-study")], "_include"),
        ("Patient", [("_count", "ten")], "_count"),
        ("Patient", [("_count", "-1")], "_count"),
        ("Patient", [("_count", "")], "_count"),
        ("Patient", [("_offset", "1.5")], "_offset"),
        ("Patient", [("identifier", "")], "identifier"),
        ("Patient", [("identifier", "urn:a|")], "identifier"),
        ("Patient", [("identifier", "a,,b")], "identifier"),
        ("Patient", [("name", "")], "name"),
        ("ImagingStudy", [("status", "")], "status"),
        ("Observation", [], "type"),
        ("Binary", [("_count", "1")], "type"),
    ],
)
def test_refusals_name_the_parameter(
    resource_type: str, parameters: list[tuple[str, str]], field: str
) -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(resource_type, parameters)
    error = caught.value
    assert isinstance(error, ValidationError)  # the API answers it with 400
    assert error.field == field
    if field != "type":
        assert field in str(error)
    else:
        assert resource_type in str(error)


def test_an_unknown_parameter_lists_what_is_supported() -> None:
    with pytest.raises(SearchError) as caught:
        parse_search("ImagingStudy", [("bodysite", "chest")])
    message = str(caught.value)
    assert "'bodysite'" in message
    for supported in SEARCH_PARAMETERS["ImagingStudy"]:
        assert supported in message


def test_a_later_bad_parameter_still_fails_the_search() -> None:
    with pytest.raises(SearchError) as caught:
        parse_search("Patient", [("name", "zhang"), ("_count", "5"), ("gender", "male")])
    assert caught.value.field == "gender"
