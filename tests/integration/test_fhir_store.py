"""Stored FHIR resources on a real database: versions, the search index, search and paging.

Every test runs on a SQLite file and, with HUREN_TEST_POSTGRES_URL set, on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select

from fhir.search import SearchQuery, parse_search
from integration.fhir_store import (
    RESOURCE,
    TOKEN,
    StoredResource,
    find_by_identifier,
    included_studies,
    put_resource,
    read_resource,
    search,
)
from models.migrate import upgrade

DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESIDENT = "https://huren.health/fhir/sid/resident-id"
MRN = "https://huren.health/fhir/sid/mrn/HR-T01"
UID = "urn:dicom:uid"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    upgrade(engine)
    return engine


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as connection:
        yield connection


def patient(
    name: str = "张三丰",
    *,
    family: str | None = None,
    given: str | None = None,
    birth: str | None = "1949-12-31",
    resident: str | None = "11010519491231002X",
    mrn: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "active": True}
    identifiers = []
    if resident:
        identifiers.append({"system": RESIDENT, "value": resident})
    if mrn:
        identifiers.append({"system": MRN, "value": mrn})
    if identifiers:
        resource["identifier"] = identifiers
    entry: dict[str, Any] = {"text": name}
    if family:
        entry["family"] = family
    if given:
        entry["given"] = [given]
    resource["name"] = [entry]
    if birth:
        resource["birthDate"] = birth
    return resource


def imaging_study(
    uid: str,
    *,
    subject: str | None = "Patient/p1",
    modalities: tuple[str, ...] = ("CT",),
    series: tuple[str, ...] = (),
    started: str | None = "2026-03-02T01:05:00Z",
    status: str = "available",
    order: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": UID, "value": f"urn:oid:{uid}"}],
        "status": status,
        "modality": [{"system": DCM, "code": code} for code in modalities],
    }
    if subject:
        resource["subject"] = {"reference": subject}
    if started:
        resource["started"] = started
    if series:
        resource["series"] = [
            {"uid": f"{uid}.{n}", "modality": {"system": DCM, "code": code}}
            for n, code in enumerate(series, start=1)
        ]
    if order:
        resource["basedOn"] = [{"reference": order}]
    return resource


def report(
    value: str,
    *,
    subject: str = "Patient/p1",
    studies: tuple[str, ...] = (),
    effective: str | None = "2026-03-02T01:05:00Z",
    status: str = "final",
    order: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": "https://huren.health/fhir/sid/report", "value": value}],
        "status": status,
        "code": {"text": "影像诊断报告"},
        "subject": {"reference": subject},
        "imagingStudy": [{"reference": f"ImagingStudy/{study}"} for study in studies],
    }
    if effective:
        resource["effectiveDateTime"] = effective
    if order:
        resource["basedOn"] = [{"reference": order}]
    return resource


def put(
    connection: Connection,
    resource: dict[str, Any],
    logical_id: str,
    *,
    origin: str = "",
    now: datetime = T0,
) -> tuple[StoredResource, str]:
    return put_resource(
        connection, resource=resource, logical_id=logical_id, origin=origin, now=now
    )


def ids(found: list[StoredResource]) -> list[str]:
    return [stored.logical_id for stored in found]


def run(connection: Connection, resource_type: str, *parameters: tuple[str, str]) -> list[str]:
    """All matching logical ids (one page of up to 200), in the search's order."""
    page, total, more = search(
        connection, parse_search(resource_type, [*parameters, ("_count", "200")])
    )
    assert not more and total == len(page)
    return ids(page)


def token_rows(connection: Connection, resource_type: str, logical_id: str) -> set[tuple[str, ...]]:
    row_id = connection.execute(
        select(RESOURCE.c.id).where(
            RESOURCE.c.resource_type == resource_type, RESOURCE.c.logical_id == logical_id
        )
    ).scalar_one()
    rows = connection.execute(
        select(TOKEN.c.parameter, TOKEN.c.system, TOKEN.c.value).where(
            TOKEN.c.resource_id == row_id
        )
    )
    return {tuple(row) for row in rows}


def count_rows(connection: Connection, table: Any) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# --- writing and reading ------------------------------------------------------------------------


def test_put_then_read_fills_id_and_meta(connection: Connection) -> None:
    stored, outcome = put(connection, patient(), "p1", origin="province")
    assert outcome == "created"
    assert (stored.resource_type, stored.logical_id, stored.version_id) == ("Patient", "p1", 1)
    assert stored.reference == "Patient/p1"
    body = json.loads(stored.body)
    assert body["resourceType"] == "Patient" and body["id"] == "p1"
    assert body["meta"] == {"versionId": "1", "lastUpdated": "2026-03-02T01:00:00.000+00:00"}
    assert body["name"] == [{"text": "张三丰"}]
    assert "张三丰" in stored.body  # stored as UTF-8 text, not \u escapes
    again = read_resource(connection, resource_type="Patient", logical_id="p1")
    assert again == stored
    assert again is not None and again.origin == "province"
    assert again.last_updated == T0
    assert read_resource(connection, resource_type="Patient", logical_id="p2") is None
    assert read_resource(connection, resource_type="ImagingStudy", logical_id="p1") is None


def test_the_version_moves_only_when_the_content_changes(connection: Connection) -> None:
    first, _ = put(connection, patient(), "p1")
    # id, versionId and lastUpdated are the store's: sending others changes nothing
    resent = {**patient(), "id": "other", "meta": {"versionId": "9", "lastUpdated": "2020-01-01"}}
    same, outcome = put(connection, resent, "p1", now=T0 + timedelta(hours=1))
    assert outcome == "unchanged"
    assert same == first
    reordered = dict(reversed(list(patient().items())))
    assert put(connection, reordered, "p1", now=T0 + timedelta(hours=2))[1] == "unchanged"

    later = T0 + timedelta(days=1)
    changed, outcome = put(connection, patient("张三"), "p1", now=later)
    assert outcome == "updated"
    assert changed.version_id == 2 and changed.last_updated == later
    body = json.loads(changed.body)
    assert body["meta"]["versionId"] == "2"
    assert body["meta"]["lastUpdated"].startswith("2026-03-03T01:00:00")
    assert body["name"] == [{"text": "张三"}]
    assert read_resource(connection, resource_type="Patient", logical_id="p1") == changed
    assert put(connection, patient("张三"), "p1", now=later + timedelta(days=1))[1] == "unchanged"

    tagged = {**patient("张三"), "meta": {"tag": [{"system": "urn:x", "code": "t"}]}}
    third, outcome = put(connection, tagged, "p1", now=later)
    assert outcome == "updated" and third.version_id == 3
    assert json.loads(third.body)["meta"]["tag"] == [{"system": "urn:x", "code": "t"}]
    assert count_rows(connection, RESOURCE) == 1


def test_the_same_id_in_two_types_is_two_resources(connection: Connection) -> None:
    put(connection, patient(), "1")
    put(connection, imaging_study("1.2.3"), "1")
    assert count_rows(connection, RESOURCE) == 2
    found = read_resource(connection, resource_type="ImagingStudy", logical_id="1")
    assert found is not None and found.parsed()["status"] == "available"


def test_token_rows_are_replaced_on_update(connection: Connection) -> None:
    put(connection, imaging_study("1.2.3", modalities=("CT",), order="ServiceRequest/5"), "s1")
    assert token_rows(connection, "ImagingStudy", "s1") == {
        ("identifier", UID, "urn:oid:1.2.3"),
        ("modality", DCM, "CT"),
        ("based-on", "", "ServiceRequest/5"),
    }
    put(
        connection,
        imaging_study("1.2.4", modalities=("MR",), series=("MR", "SR")),
        "s1",
        now=T0 + timedelta(minutes=1),
    )
    assert token_rows(connection, "ImagingStudy", "s1") == {
        ("identifier", UID, "urn:oid:1.2.4"),
        ("modality", DCM, "MR"),
        ("modality", DCM, "SR"),
    }
    assert count_rows(connection, TOKEN) == 3  # nothing of the old version is left behind
    assert run(connection, "ImagingStudy", ("modality", "CT")) == []
    assert run(connection, "ImagingStudy", ("identifier", "urn:oid:1.2.3")) == []
    assert run(connection, "ImagingStudy", ("modality", "SR")) == ["s1"]
    assert (
        find_by_identifier(
            connection, resource_type="ImagingStudy", system=UID, value="urn:oid:1.2.3"
        )
        == []
    )


def test_search_columns_follow_the_update(connection: Connection) -> None:
    put(connection, imaging_study("1.2.3", subject="Patient/p1", status="registered"), "s1")
    put(
        connection,
        imaging_study("1.2.3", subject="Patient/p2", started="2026-04-01T00:00:00Z"),
        "s1",
        now=T0 + timedelta(minutes=1),
    )
    assert run(connection, "ImagingStudy", ("patient", "p1")) == []
    assert run(connection, "ImagingStudy", ("status", "registered")) == []
    assert run(connection, "ImagingStudy", ("patient", "p2"), ("status", "available")) == ["s1"]
    assert run(connection, "ImagingStudy", ("started", "2026-03-02")) == []
    assert run(connection, "ImagingStudy", ("started", "2026-04")) == ["s1"]


def test_find_by_identifier(connection: Connection) -> None:
    put(connection, patient(resident="A1", mrn="M1"), "p1")
    put(connection, patient(resident="A2", mrn="M1"), "p2")
    put(connection, imaging_study("9.9"), "s1")
    assert ids(
        find_by_identifier(connection, resource_type="Patient", system=RESIDENT, value="A1")
    ) == ["p1"]
    assert ids(
        find_by_identifier(connection, resource_type="Patient", system=None, value="A2")
    ) == ["p2"]
    assert ids(find_by_identifier(connection, resource_type="Patient", system=MRN, value="M1")) == [
        "p1",
        "p2",
    ]
    assert find_by_identifier(connection, resource_type="Patient", system=MRN, value="A1") == []
    assert find_by_identifier(connection, resource_type="Patient", system="", value="A1") == []
    assert (
        find_by_identifier(
            connection, resource_type="Organization", system=UID, value="urn:oid:9.9"
        )
        == []
    )


# --- searching ---------------------------------------------------------------------------------


@pytest.fixture
def region(connection: Connection) -> Connection:
    """Three patients, six studies, three reports."""
    put(
        connection,
        patient("张三丰", family="张", given="三丰", birth="1949-12-31", resident="R1", mrn="M1"),
        "p1",
    )
    put(
        connection,
        patient("李四", family="李", given="四", birth="1990-05-01", resident="R2"),
        "p2",
    )
    put(
        connection,
        patient("Wang Fang", family="Wang", given="Fang", birth=None, resident="R3", mrn="M3"),
        "p3",
    )
    studies = [
        (
            "s1",
            imaging_study(
                "1.1", subject="Patient/p1", modalities=("CT",), started="2026-03-01T23:59:59Z"
            ),
        ),
        (
            "s2",
            imaging_study(
                "1.2",
                subject="Patient/p1",
                modalities=("DX",),
                series=("DX", "PR"),
                started="2026-03-02T00:00:00Z",
            ),
        ),
        (
            "s3",
            imaging_study(
                "1.3",
                subject="http://province.example/fhir/Patient/p2",
                modalities=("MR",),
                started="2026-03-02T12:30:00Z",
                order="ServiceRequest/7",
            ),
        ),
        (
            "s4",
            imaging_study(
                "1.4", subject="Patient/p2", modalities=("CT",), started=None, status="registered"
            ),
        ),
        (
            "s5",
            imaging_study(
                "1.5", subject="Patient/p3", modalities=("CT", "SR"), started="2026-03-03T00:00:00Z"
            ),
        ),
        (
            "s6",
            imaging_study(
                "1.6", subject=None, modalities=("US",), started="2026-02-15T08:00:00+08:00"
            ),
        ),
    ]
    for number, (logical_id, resource) in enumerate(studies):
        put(connection, resource, logical_id, now=T0 + timedelta(minutes=10 - number))
    put(
        connection,
        report("r1", subject="Patient/p1", studies=("s1", "s2"), order="ServiceRequest/5"),
        "d1",
    )
    put(
        connection,
        report(
            "r2",
            subject="Patient/p2",
            studies=("s3", "s3", "gone"),
            effective=None,
            status="amended",
        ),
        "d2",
    )
    put(
        connection,
        report(
            "r3",
            subject="Patient/p3",
            studies=(),
            effective="2026-03-03T08:00:00+08:00",
            status="preliminary",
            order="ServiceRequest/6",
        ),
        "d3",
    )
    return connection


def test_search_by_patient(region: Connection) -> None:
    assert run(region, "ImagingStudy", ("patient", "p1")) == ["s1", "s2"]
    assert run(region, "ImagingStudy", ("patient", "Patient/p2")) == [
        "s3",
        "s4",
    ]  # absolute ref too
    assert run(region, "ImagingStudy", ("patient", "p1,p3")) == ["s1", "s2", "s5"]
    assert run(region, "ImagingStudy", ("patient", "p9")) == []
    assert run(region, "DiagnosticReport", ("patient", "p2")) == ["d2"]


def test_search_by_status(region: Connection) -> None:
    assert run(region, "ImagingStudy", ("status", "registered")) == ["s4"]
    assert run(region, "ImagingStudy", ("status", "available,registered")) == [
        "s1", "s2", "s3", "s4", "s5", "s6",
    ]  # fmt: skip
    assert run(region, "DiagnosticReport", ("status", "final,amended")) == ["d1", "d2"]


def test_search_by_token(region: Connection) -> None:
    assert run(region, "ImagingStudy", ("modality", "CT")) == ["s1", "s4", "s5"]
    assert run(region, "ImagingStudy", ("modality", f"{DCM}|PR")) == ["s2"]  # a series modality
    assert run(region, "ImagingStudy", ("modality", "urn:other|CT")) == []
    assert run(region, "ImagingStudy", ("modality", "|CT")) == []  # CT has a system
    assert run(region, "ImagingStudy", ("modality", "MR,US")) == ["s3", "s6"]
    assert run(region, "ImagingStudy", ("modality", "CT"), ("modality", "SR")) == ["s5"]
    assert run(region, "ImagingStudy", ("identifier", f"{UID}|urn:oid:1.3")) == ["s3"]
    assert run(region, "Patient", ("identifier", f"{RESIDENT}|R2")) == ["p2"]
    assert run(region, "Patient", ("identifier", "M1,M3")) == ["p1", "p3"]
    assert run(region, "Patient", ("identifier", f"{MRN}|R2")) == []
    assert run(region, "DiagnosticReport", ("based-on", "ServiceRequest/5,6")) == ["d1", "d3"]
    assert run(region, "DiagnosticReport", ("identifier", "r2")) == ["d2"]


def test_search_by_date(region: Connection) -> None:
    started = "started"
    assert run(region, "ImagingStudy", (started, "2026-03-02")) == ["s2", "s3"]
    assert run(region, "ImagingStudy", (started, "eq2026-03")) == ["s1", "s2", "s3", "s5"]
    assert run(region, "ImagingStudy", (started, "2026")) == ["s1", "s2", "s3", "s5", "s6"]
    assert run(region, "ImagingStudy", (started, "ge2026-03-02")) == ["s2", "s3", "s5"]
    assert run(region, "ImagingStudy", (started, "gt2026-03-02")) == ["s5"]
    assert run(region, "ImagingStudy", (started, "le2026-03-02")) == ["s1", "s2", "s3", "s6"]
    assert run(region, "ImagingStudy", (started, "lt2026-03-02")) == ["s1", "s6"]
    assert run(region, "ImagingStudy", (started, "2026-03-02T12:30:00Z")) == ["s3"]
    assert run(region, "ImagingStudy", (started, "2026-03-02T20:30:00+08:00")) == ["s3"]
    assert run(region, "ImagingStudy", (started, "gt2026-03-02T12:30:00Z")) == ["s5"]
    assert run(region, "ImagingStudy", (started, "ge2026-03-02T12:30:00Z")) == ["s3", "s5"]
    assert run(region, "ImagingStudy", (started, "2026-02-15")) == ["s6"]  # 08:00+08:00 = 00:00Z
    assert run(region, "ImagingStudy", (started, "2026-02-14")) == []
    assert run(region, "ImagingStudy", (started, "ge2026-03-01"), (started, "lt2026-03-03")) == [
        "s1",
        "s2",
        "s3",
    ]
    assert run(region, "DiagnosticReport", ("date", "2026-03-03")) == ["d3"]
    assert run(region, "DiagnosticReport", ("date", "2026-03-02")) == ["d1"]  # d3 is 00:00 UTC 3rd


def test_search_by_birthdate(region: Connection) -> None:
    assert run(region, "Patient", ("birthdate", "1949-12-31")) == ["p1"]
    assert run(region, "Patient", ("birthdate", "1949")) == ["p1"]
    assert run(region, "Patient", ("birthdate", "ge1950")) == ["p2"]
    assert run(region, "Patient", ("birthdate", "lt1990-05-01")) == ["p1"]
    assert run(region, "Patient", ("birthdate", "le1990-05")) == ["p1", "p2"]
    assert run(region, "Patient", ("birthdate", "gt1990-04")) == ["p2"]


def test_search_by_name(region: Connection) -> None:
    assert run(region, "Patient", ("name", "张")) == ["p1"]
    assert run(region, "Patient", ("name", "三丰")) == ["p1"]
    assert run(region, "Patient", ("name", "FANG")) == ["p3"]
    assert run(region, "Patient", ("name:contains", "an")) == ["p3"]
    assert run(region, "Patient", ("name", "wangfang")) == ["p3"]
    assert run(region, "Patient", ("name", "赵")) == []


def test_filters_combine_with_and(region: Connection) -> None:
    assert run(region, "ImagingStudy", ("patient", "p1"), ("modality", "DX")) == ["s2"]
    assert run(
        region, "ImagingStudy", ("patient", "p1,p2"), ("modality", "CT"), ("status", "available")
    ) == ["s1"]
    assert run(region, "Patient", ("name", "李"), ("birthdate", "1949")) == []


def test_paging_total_and_more(region: Connection) -> None:
    everyone = ["s1", "s2", "s3", "s4", "s5", "s6"]
    seen: list[str] = []
    for offset in range(0, 8, 2):
        query = parse_search("ImagingStudy", [("_count", "2"), ("_offset", str(offset))])
        page, total, more = search(region, query)
        assert total == 6
        assert more == (offset + 2 < 6)
        seen += ids(page)
    assert seen == everyone  # each exactly once, in id order
    page, total, more = search(region, parse_search("ImagingStudy", [("_offset", "50")]))
    assert (page, total, more) == ([], 6, False)
    page, total, more = search(region, parse_search("ImagingStudy", [("_count", "6")]))
    assert (ids(page), total, more) == (everyone, 6, False)
    page, total, more = search(
        region,
        parse_search("ImagingStudy", [("modality", "CT"), ("_count", "1"), ("_offset", "1")]),
    )
    assert (ids(page), total, more) == (["s4"], 3, True)


def test_summary_count(region: Connection) -> None:
    query = parse_search("ImagingStudy", [("modality", "CT"), ("_summary", "count")])
    assert search(region, query) == ([], 3, False)
    assert search(region, parse_search("Patient", [("_summary", "count")])) == ([], 3, False)


def test_sort_by_date_puts_missing_dates_last(region: Connection) -> None:
    assert run(region, "ImagingStudy", ("_sort", "-date")) == ["s5", "s3", "s2", "s1", "s6", "s4"]
    assert run(region, "ImagingStudy", ("_sort", "date")) == ["s6", "s1", "s2", "s3", "s5", "s4"]
    assert run(region, "DiagnosticReport", ("_sort", "-date")) == ["d3", "d1", "d2"]
    # paging keeps the order across pages
    seen = []
    for offset in range(0, 6, 4):
        query = parse_search(
            "ImagingStudy", [("_sort", "-date"), ("_count", "4"), ("_offset", str(offset))]
        )
        seen += ids(search(region, query)[0])
    assert seen == ["s5", "s3", "s2", "s1", "s6", "s4"]


def test_sort_by_last_updated(region: Connection) -> None:
    # s1 was written at T0+10 min, s2 at T0+9 min, ... s6 at T0+5 min
    assert run(region, "ImagingStudy", ("_sort", "_lastUpdated")) == [
        "s6",
        "s5",
        "s4",
        "s3",
        "s2",
        "s1",
    ]
    assert run(region, "ImagingStudy", ("_sort", "-_lastUpdated")) == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
    ]


def test_included_studies_each_once_and_only_known(region: Connection) -> None:
    reports, _, _ = search(region, parse_search("DiagnosticReport", [("_count", "10")]))
    included = included_studies(region, reports)
    assert sorted(ids(included)) == ["s1", "s2", "s3"]
    assert all(stored.resource_type == "ImagingStudy" for stored in included)
    assert included_studies(region, []) == []
    assert (
        included_studies(region, [stored for stored in reports if stored.logical_id == "d3"]) == []
    )


# --- input treated as data -----------------------------------------------------------------------


def test_name_wildcards_in_the_input_are_literal(connection: Connection) -> None:
    for logical_id, name in [
        ("a", "a%b"),
        ("b", "a_b"),
        ("c", "axb"),
        ("d", "aXXb"),
        ("e", "a\\b"),
        ("f", "100%"),
    ]:
        put(connection, patient(name, resident=None), logical_id)
    assert run(connection, "Patient", ("name", "a%b")) == ["a"]
    assert run(connection, "Patient", ("name", "a_b")) == ["b"]
    assert run(connection, "Patient", ("name", "%")) == ["a", "f"]
    assert run(connection, "Patient", ("name", "_")) == ["b"]
    assert run(connection, "Patient", ("name", "a\\b")) == ["e"]
    assert run(connection, "Patient", ("name", "\\")) == ["e"]
    assert run(connection, "Patient", ("name", "axb")) == ["c"]
    assert run(connection, "Patient", ("name", "0%")) == ["f"]


INJECTIONS = [
    "x' OR 1=1 --",
    "x' OR '1'='1",
    "'; DROP TABLE fhir_resource; --",
    '" OR ""="',
    "1) OR (1=1",
    "%' OR name_text LIKE '%",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_metacharacters_find_nothing_and_break_nothing(region: Connection, value: str) -> None:
    resources = count_rows(region, RESOURCE)
    tokens = count_rows(region, TOKEN)
    for resource_type, parameter in [
        ("Patient", "identifier"),
        ("Patient", "name"),
        ("ImagingStudy", "patient"),
        ("ImagingStudy", "modality"),
        ("ImagingStudy", "status"),
        ("DiagnosticReport", "based-on"),
        ("DiagnosticReport", "identifier"),
    ]:
        assert run(region, resource_type, (parameter, value)) == [], parameter
        assert run(region, resource_type, (parameter, f"urn:x|{value}")) == [], parameter
    assert search(region, parse_search("Patient", [("name", value), ("_summary", "count")]))[1] == 0
    assert find_by_identifier(region, resource_type="Patient", system=value, value=value) == []
    assert count_rows(region, RESOURCE) == resources
    assert count_rows(region, TOKEN) == tokens
    assert run(region, "Patient", ("identifier", "R1")) == ["p1"]  # the store still answers


def test_stored_metacharacters_are_found_exactly(connection: Connection) -> None:
    value = INJECTIONS[0]
    put(connection, patient(value, resident=value), "p1")
    put(connection, patient("other", resident="x"), "p2")
    assert run(connection, "Patient", ("identifier", f"{RESIDENT}|{value}")) == ["p1"]
    assert run(connection, "Patient", ("name", value)) == ["p1"]
    assert run(connection, "Patient", ("identifier", "x")) == ["p2"]


def test_a_query_built_by_hand_runs_with_the_same_rules(region: Connection) -> None:
    query = SearchQuery(resource_type="ImagingStudy", subjects=(), count=5)
    assert search(region, query) == ([], 0, False)  # an empty OR matches nothing
    query = SearchQuery(resource_type="Endpoint")
    assert search(region, query) == ([], 0, False)
