"""An external FHIR R4 client against the served API: the SMART on FHIR ``fhirclient`` package.

fhirclient parses every answer into its own R4 (4.0.1) models, strictly (an
unknown or mistyped element raises), so reading the hub's resources and
search Bundles with it shows they are R4 on the wire, not only to our own
fhir.resources models.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRUnauthorizedException
from sqlalchemy import text

from fhir.identifiers import DICOM_UID_SYSTEM, RESIDENT_ID_SYSTEM
from tests.fhir_hub import ServedApi, copy_region, seed_region, served_api


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedApi, dict[str, str]]]:
    template = tmp_path_factory.mktemp("region")
    tokens = seed_region(template)
    with served_api(copy_region(template, tmp_path_factory.mktemp("served"))) as api:
        yield api, tokens


@pytest.fixture(scope="module")
def api(served: tuple[ServedApi, dict[str, str]]) -> ServedApi:
    return served[0]


def connect(api: ServedApi, token: str | None) -> smart_client.FHIRClient:
    """fhirclient as an app would set it up; the bearer token rides on its requests session."""
    smart = smart_client.FHIRClient(settings={"app_id": "huren-test", "api_base": api.base})
    smart.server.session.trust_env = False
    if token is not None:
        smart.server.session.headers["Authorization"] = f"Bearer {token}"
    return smart


@pytest.fixture(scope="module")
def smart(
    served: tuple[ServedApi, dict[str, str]],
) -> Iterator[smart_client.FHIRClient]:
    api, tokens = served
    client = connect(api, tokens["reader"])
    client.prepare()  # fetches /metadata and picks its auth from it
    yield client
    client.server.session.close()


def stored(api: ServedApi, resource_type: str) -> dict[str, dict[str, Any]]:
    found = api.stored(resource_type)
    assert found, f"the demo seed published no {resource_type}"
    return found


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def test_prepare_reads_the_capability_statement(
    api: ServedApi, smart: smart_client.FHIRClient
) -> None:
    assert smart.ready
    statement = smart.server.capabilityStatement
    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.0.1"
    assert statement.implementation.url == api.base
    served = {resource.type: resource for resource in statement.rest[0].resource}
    assert {"Patient", "ImagingStudy", "DiagnosticReport", "ServiceRequest"} <= set(served)
    assert {param.name for param in served["ImagingStudy"].searchParam} == {
        "patient",
        "identifier",
        "modality",
        "started",
        "status",
    }
    assert served["DiagnosticReport"].searchInclude == ["DiagnosticReport:imaging-study"]


def test_read_patient(api: ServedApi, smart: smart_client.FHIRClient) -> None:
    with api.engine.connect() as connection:
        people = {
            str(row.id): row
            for row in connection.execute(
                text(
                    "SELECT p.id, p.name, p.birth_date, p.sex, i.value AS resident FROM patient p "
                    "JOIN patient_identifier i ON i.patient_id = p.id AND i.kind = 'resident_id'"
                )
            )
        }
    patient_ids = [logical_id for logical_id in stored(api, "Patient") if logical_id in people]
    assert patient_ids
    for logical_id in patient_ids[:3]:
        patient = Patient.read(logical_id, smart.server)
        row = people[logical_id]
        assert patient.id == logical_id
        assert patient.meta.versionId == "1"
        assert patient.name[0].text == row.name
        assert patient.name[0].family + "".join(patient.name[0].given) == row.name
        assert patient.birthDate.date == date.fromisoformat(str(row.birth_date))
        assert patient.gender == {"M": "male", "F": "female", "O": "other"}.get(row.sex, "unknown")
        assert (RESIDENT_ID_SYSTEM, row.resident) in [
            (identifier.system, identifier.value) for identifier in patient.identifier
        ]
        assert patient.active is True


def test_read_imaging_study(api: ServedApi, smart: smart_client.FHIRClient) -> None:
    with api.engine.connect() as connection:
        studies = {
            str(row.id): row
            for row in connection.execute(
                text(
                    "SELECT id, study_instance_uid, patient_id, modalities, num_series, "
                    "num_instances, accession_number FROM study"
                )
            )
        }
    for logical_id, body in list(stored(api, "ImagingStudy").items())[:3]:
        study = ImagingStudy.read(logical_id, smart.server)
        row = studies[logical_id]
        assert study.id == logical_id
        assert study.status == "available"
        assert study.subject.reference == f"Patient/{row.patient_id}"
        assert [coding.code for coding in study.modality] == row.modalities.split("\\")
        assert study.started.datetime == instant(body["started"])
        assert (DICOM_UID_SYSTEM, f"urn:oid:{row.study_instance_uid}") in [
            (identifier.system, identifier.value) for identifier in study.identifier
        ]
        assert row.accession_number in [identifier.value for identifier in study.identifier]
        assert study.numberOfSeries == len(study.series) == len(body["series"])
        assert study.numberOfInstances == sum(s.numberOfInstances for s in study.series)
        for series, raw in zip(study.series, body["series"], strict=True):
            assert series.uid == raw["uid"]
            assert series.modality.code in row.modalities.split("\\")
            # SNOMED CT where the map knows the DICOM body part, else the part as a display
            # alone (which studies come first varies with the demo data).
            site = raw.get("bodySite")
            if site is None:
                assert series.bodySite is None
            else:
                coding = series.bodySite
                assert (coding.system, coding.code, coding.display) == (
                    site.get("system"),
                    site.get("code"),
                    site.get("display"),
                )
                assert site.get("system") in ("http://snomed.info/sct", None)
                assert site.get("code") or site.get("display")
        assert study.endpoint[0].reference == "Endpoint/wado-rs"


def test_read_diagnostic_report(api: ServedApi, smart: smart_client.FHIRClient) -> None:
    with api.engine.connect() as connection:
        reports = {
            str(row.id): row
            for row in connection.execute(
                text(
                    "SELECT r.id, r.status, r.impression, r.order_id, r.study_id, s.patient_id "
                    "FROM report r JOIN study s ON s.id = r.study_id"
                )
            )
        }
    for logical_id, body in list(stored(api, "DiagnosticReport").items())[:3]:
        report = DiagnosticReport.read(logical_id, smart.server)
        row = reports[logical_id]
        assert report.id == logical_id
        assert report.status == row.status
        assert report.subject.reference == f"Patient/{row.patient_id}"
        assert [ref.reference for ref in report.imagingStudy] == [f"ImagingStudy/{row.study_id}"]
        assert f"ServiceRequest/{row.order_id}" in [ref.reference for ref in report.basedOn]
        assert report.conclusion == row.impression.strip()
        assert report.effectiveDateTime.datetime == instant(body["effectiveDateTime"])
        assert report.issued.datetime == instant(body["issued"])
        assert len(report.resultsInterpreter) >= 1
        forms = {form.contentType: form for form in report.presentedForm}
        readable = base64.b64decode(forms["text/plain; charset=utf-8"].data).decode()
        assert row.impression.strip() in readable
        assert base64.b64decode(forms["application/pdf"].data).startswith(b"%PDF")


def test_search_imaging_studies_by_patient(api: ServedApi, smart: smart_client.FHIRClient) -> None:
    studies = stored(api, "ImagingStudy")
    by_patient: dict[str, set[str]] = {}
    for logical_id, body in studies.items():
        by_patient.setdefault(body["subject"]["reference"].split("/")[1], set()).add(logical_id)
    for patient, expected in list(by_patient.items())[:4]:
        search = ImagingStudy.where(struct={"patient": patient})
        found = list(search.perform_resources_iter(smart.server))
        assert all(isinstance(study, ImagingStudy) for study in found)
        assert {study.id for study in found} == expected
        assert {study.subject.reference for study in found} == {f"Patient/{patient}"}


def test_fhirclient_follows_next_links_to_the_end(
    api: ServedApi, smart: smart_client.FHIRClient
) -> None:
    studies = stored(api, "ImagingStudy")
    search = ImagingStudy.where(struct={"_count": "2", "_sort": "-date"})
    pages = list(search.perform_iter(smart.server))
    assert all(isinstance(page, Bundle) and page.type == "searchset" for page in pages)
    assert len(pages) == -(-len(studies) // 2)
    assert {page.total for page in pages} == {len(studies)}
    found = [entry.resource for page in pages for entry in page.entry]
    assert sorted(study.id for study in found) == sorted(studies)
    started = [study.started.datetime for study in found]
    assert started == sorted(started, reverse=True)


def test_include_parses_as_r4(api: ServedApi, smart: smart_client.FHIRClient) -> None:
    # the hub's own search parameter (fhirclient's include() would name the element instead)
    bundle = Bundle.read_from(
        "DiagnosticReport?_include=DiagnosticReport:imaging-study&_count=200", smart.server
    )
    modes = {entry.search.mode for entry in bundle.entry}
    assert modes == {"match", "include"}
    included = [entry.resource for entry in bundle.entry if entry.search.mode == "include"]
    assert all(isinstance(study, ImagingStudy) for study in included)
    reports = stored(api, "DiagnosticReport")
    assert {entry.resource.id for entry in bundle.entry if entry.search.mode == "match"} == set(
        reports
    )
    assert sorted(study.id for study in included) == sorted(
        {
            ref["reference"].split("/")[1]
            for body in reports.values()
            for ref in body["imagingStudy"]
        }
    )


def test_errors_reach_fhirclient_as_its_exceptions(
    served: tuple[ServedApi, dict[str, str]], tmp_path: Path
) -> None:
    api, tokens = served
    anonymous = connect(api, None)
    try:
        anonymous.prepare()  # metadata needs no token
        with pytest.raises(FHIRUnauthorizedException):
            Patient.read(next(iter(stored(api, "Patient"))), anonymous.server)
    finally:
        anonymous.server.session.close()
    reader = connect(api, tokens["reader"])
    try:
        with pytest.raises(FHIRNotFoundException):
            ImagingStudy.read("no-such-study", reader.server)
    finally:
        reader.server.session.close()
