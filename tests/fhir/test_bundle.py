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

from fhir.bundle import TransactionBatch
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


def _put(
    resource_type: str, value: str, *, system: str = SID + "x", **fields: Any
) -> dict[str, Any]:
    """A conditional-update entry as nodes send them (fullUrl from type and value)."""
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, resource_type + value)}",
        "resource": {
            "resourceType": resource_type,
            "identifier": [{"system": system, "value": value}],
            **fields,
        },
        "request": {"method": "PUT", "url": f"{resource_type}?identifier={system}|{value}"},
    }


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_a_batch_merges_bundles_in_order_and_drops_repeated_entries() -> None:
    organization = _put("Organization", "T01", name="镇卫生院")
    first = _transaction(organization, _put("Patient", "p1"), _put("ImagingStudy", "s1"))
    second = _transaction(
        json.loads(json.dumps(organization)), _put("Patient", "p2"), _put("ImagingStudy", "s2")
    )
    batch = TransactionBatch()
    assert batch.add(first) and batch.add(second) and batch.bundles == 2
    merged = batch.bundle()
    assert merged["type"] == "transaction"
    assert [e["resource"]["identifier"][0]["value"] for e in merged["entry"]] == [
        "T01",
        "p1",
        "s1",
        "p2",
        "s2",
    ]


@pytest.mark.parametrize(
    "later",
    [
        _put("Patient", "p1", name=[{"text": "改名"}]),  # the same patient, changed
        _put("Patient", "p1", system=SID + "other"),  # the same value in another system
        {  # a target only in the url, carried by an earlier entry's resource
            "resource": {"resourceType": "Patient", "name": [{"text": "x"}]},
            "request": {"method": "PUT", "url": f"Patient?identifier={SID}x|p1"},
        },
        {  # a create that an earlier entry would have made
            "resource": {"resourceType": "Patient"},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=p1"},
        },
        {**_put("Patient", "p9"), "fullUrl": _put("Patient", "p1")["fullUrl"]},  # its fullUrl
    ],
)
def test_a_bundle_that_would_see_an_earlier_ones_writes_starts_the_next_batch(
    later: dict[str, Any],
) -> None:
    batch = TransactionBatch()
    assert batch.add(_transaction(_put("Patient", "p1"), _put("ImagingStudy", "s1")))
    before = batch.bundle()
    assert not batch.add(_transaction(_put("ImagingStudy", "s2"), later))
    assert batch.bundle() == before and batch.bundles == 1  # nothing of it was taken
    assert TransactionBatch().add(_transaction(_put("ImagingStudy", "s2"), later))


def test_plain_creates_are_never_dropped_as_repeats() -> None:
    create = {
        "resource": {"resourceType": "Patient"},
        "request": {"method": "POST", "url": "Patient"},
    }
    batch = TransactionBatch()
    assert batch.add(_transaction(create)) and batch.add(_transaction(create))
    assert len(batch.bundle()["entry"]) == 2  # each create makes its own resource


@pytest.mark.parametrize(
    "bundle",
    [
        {**_transaction(_put("Patient", "p2")), "type": "batch"},
        {**_transaction(_put("Patient", "p2")), "id": "b-1"},
        {"resourceType": "Patient", "type": "transaction"},
        _transaction(
            {"resource": {"resourceType": "Patient"}, "request": {"method": "DELETE", "url": "x"}}
        ),
        _transaction(  # an update by id may take identifiers away
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "PUT", "url": "Patient/a"},
            }
        ),
        _transaction(
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "PUT", "url": "Patient?name=x&identifier=a|b"},
            }
        ),
        _transaction({"request": {"method": "PUT", "url": "Patient?identifier=a|b"}}),
    ],
)
def test_bundles_a_batch_cannot_carry_travel_alone(bundle: dict[str, Any]) -> None:
    batch = TransactionBatch()
    assert batch.add(_transaction(_put("Patient", "p1")))
    assert not batch.add(bundle)
    assert not TransactionBatch().add(bundle)


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
