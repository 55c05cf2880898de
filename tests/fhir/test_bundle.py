"""Transaction bundles of conditional updates, and OperationOutcome."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from fhir_samples import (
    auditor,
    county,
    exam,
    identifiers,
    instance_rows,
    order,
    patient,
    radiologist,
    report,
    series_rows,
    study,
    township,
)

from fhir.identifiers import SID
from fhir.mapping import (
    diagnostic_report_from,
    endpoint_from,
    full_url,
    imaging_study_from,
    operation_outcome,
    organization_from,
    patient_from,
    practitioner_from,
    service_request_from,
    transaction_bundle,
)


def _resources() -> list[Resource]:
    return [
        patient_from(patient(), identifiers()),
        organization_from(township()),
        organization_from(county()),
        practitioner_from(radiologist(), county()),
        endpoint_from(base_url="http://127.0.0.1:8080/dicomweb"),
        service_request_from(
            order(), exam(), ordering_facility=township(), performing_facility=township()
        ),
        imaging_study_from(
            study(), series_rows(), instance_rows(), facility=township(), exam=exam()
        ),
        diagnostic_report_from(
            report(),
            study=study(),
            patient_id=7,
            exam=exam(),
            order=order(),
            author=radiologist(),
            auditor=auditor(),
            facility=township(),
            reading_centre=county(),
            qc_qualified=True,
        ),
    ]


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def _entry(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    matches = [e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]
    assert matches, resource_type
    entry: dict[str, Any] = matches[0]
    return entry


def test_full_urls_are_deterministic_uuid5() -> None:
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, SID)
    assert full_url("Patient", "7") == f"urn:uuid:{uuid.uuid5(namespace, 'Patient/7')}"
    assert full_url("Patient", "7") != full_url("Organization", "7")


def test_entries_are_conditional_puts_without_local_ids() -> None:
    bundle = transaction_bundle(_resources())
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again == bundle
    assert bundle.type == "transaction"
    assert bundle.entry is not None
    requests = [(e.request.method, e.request.url) for e in bundle.entry if e.request]
    assert requests == [
        ("PUT", "Patient?identifier=https://huren.health/fhir/sid/resident-id|11010519491231002X"),
        ("PUT", "Organization?identifier=https://huren.health/fhir/sid/facility|HR-T01"),
        ("PUT", "Organization?identifier=https://huren.health/fhir/sid/facility|HR-C01"),
        (
            "PUT",
            "Practitioner?identifier=https://huren.health/fhir/sid/practitioner/HR-C01|wangfang",
        ),
        (
            "PUT",
            "Endpoint?identifier=https://huren.health/fhir/sid/endpoint"
            "|http://127.0.0.1:8080/dicomweb",
        ),
        ("PUT", "ServiceRequest?identifier=https://huren.health/fhir/sid/placer/HR-T01|P%207788"),
        (
            "PUT",
            "ImagingStudy?identifier=urn:dicom:uid"
            "|urn:oid:1.2.156.112605.14038010222575.20260302.1",
        ),
        (
            "PUT",
            "DiagnosticReport?identifier=https://huren.health/fhir/sid/report"
            "|1.2.156.112605.14038010222575.20260302.1",
        ),
    ]
    assert [e.fullUrl for e in bundle.entry] == [
        full_url("Patient", "7"),
        full_url("Organization", "2"),
        full_url("Organization", "1"),
        full_url("Practitioner", "31"),
        full_url("Endpoint", "wado-rs"),
        full_url("ServiceRequest", "11"),
        full_url("ImagingStudy", "12"),
        full_url("DiagnosticReport", "41"),
    ]
    wire = json.loads(bundle.model_dump_json())
    assert all("id" not in entry["resource"] for entry in wire["entry"])


def test_references_between_entries_become_full_urls() -> None:
    wire = json.loads(transaction_bundle(_resources()).model_dump_json())
    report_refs = _references(_entry(wire, "DiagnosticReport")["resource"])
    assert report_refs == [
        full_url("ServiceRequest", "11"),
        full_url("Patient", "7"),
        full_url("Organization", "1"),
        full_url("Practitioner", "31"),
        "Practitioner/32",
        full_url("ImagingStudy", "12"),
    ]
    study_refs = _references(_entry(wire, "ImagingStudy")["resource"])
    assert full_url("ServiceRequest", "11") in study_refs
    assert full_url("Patient", "7") in study_refs
    assert full_url("Endpoint", "wado-rs") in study_refs
    assert full_url("Organization", "2") in study_refs
    request_refs = _references(_entry(wire, "ServiceRequest")["resource"])
    assert set(request_refs) == {full_url("Organization", "2"), full_url("Patient", "7")}
    township_entry = _entry(wire, "Organization")
    assert township_entry["resource"]["partOf"] == {"reference": full_url("Organization", "1")}


def test_references_outside_the_bundle_are_left_alone() -> None:
    wire = json.loads(transaction_bundle([organization_from(township())]).model_dump_json())
    assert wire["entry"][0]["resource"]["partOf"] == {"reference": "Organization/1"}


def test_bundle_is_byte_identical_when_rebuilt_and_inputs_keep_their_ids() -> None:
    resources = _resources()
    first = transaction_bundle(resources).model_dump_json()
    assert transaction_bundle(_resources()).model_dump_json() == first
    assert [r.id for r in resources] == ["7", "2", "1", "31", "wado-rs", "11", "12", "41"]
    assert "ImagingStudy/12" in resources[-1].model_dump_json()


def test_chinese_survives_the_bundle() -> None:
    text = transaction_bundle(_resources()).model_dump_json()
    assert "张三丰" in text
    assert "互认" in text


def test_bundle_refuses_duplicates_and_resources_without_ids() -> None:
    with pytest.raises(ValueError, match="Patient/7 appears twice"):
        transaction_bundle(
            [patient_from(patient(), identifiers()), patient_from(patient(), identifiers())]
        )
    with pytest.raises(ValueError, match="without an id"):
        transaction_bundle([Patient(identifier=[{"system": SID, "value": "x"}])])


def test_empty_transaction() -> None:
    bundle = transaction_bundle([])
    assert bundle.type == "transaction"
    assert bundle.entry is None


def test_operation_outcome() -> None:
    outcome = operation_outcome(
        "error", "not-found", "没有这个检查", expression="ImagingStudy.identifier"
    )
    again = OperationOutcome.model_validate_json(outcome.model_dump_json())
    assert again == outcome
    assert [(i.severity, i.code, i.diagnostics, i.expression) for i in outcome.issue] == [
        ("error", "not-found", "没有这个检查", ["ImagingStudy.identifier"])
    ]
    plain = operation_outcome("information", "informational", "ok")
    assert plain.issue[0].expression is None
