"""Our resources against the official FHIR R4 examples (tests/data/fhir, see its README).

Each example must parse with the R4B models, and for the elements we claim to
fill the way the specification does, our JSON must have the same paths with
the same kinds of value (object, array, string, number) as the example.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
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

from fhir.mapping import (
    diagnostic_report_from,
    imaging_study_from,
    organization_from,
    patient_from,
    practitioner_from,
    service_request_from,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir"
EXAMPLE_FILES = sorted(path.name for path in EXAMPLES.glob("*.json"))


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def _model(resource_type: str) -> type[Resource]:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model: type[Resource] = getattr(module, resource_type)
    return model


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def shape(node: Any, prefix: str = "") -> dict[str, set[str]]:
    """JSON path (``series[].instance[].sopClass.system``) to the kinds of value found there."""
    found: dict[str, set[str]] = {}
    if prefix:
        found.setdefault(prefix, set()).add(_kind(node))
    if isinstance(node, dict):
        for key, value in node.items():
            for path, kinds in shape(value, f"{prefix}.{key}" if prefix else key).items():
                found.setdefault(path, set()).update(kinds)
    elif isinstance(node, list):
        for item in node:
            for path, kinds in shape(item, f"{prefix}[]").items():
                found.setdefault(path, set()).update(kinds)
    return found


def _ours(resource: Resource) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resource.model_dump_json())
    return data


def _imaging_study() -> dict[str, Any]:
    return _ours(
        imaging_study_from(
            study(), series_rows(), instance_rows(), facility=township(), exam=exam()
        )
    )


def _diagnostic_report() -> dict[str, Any]:
    return _ours(
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
        )
    )


def _service_request() -> dict[str, Any]:
    return _ours(
        service_request_from(
            order(), exam(), ordering_facility=township(), performing_facility=township()
        )
    )


CLAIMS: list[tuple[str, Any, list[str]]] = [
    (
        "imagingstudy-example-xr.json",
        _imaging_study,
        [
            "identifier[].use",
            "identifier[].system",
            "identifier[].value",
            "identifier[].type.coding[].system",
            "identifier[].type.coding[].code",
            "identifier[].assigner.reference",
            "status",
            "modality[].system",
            "modality[].code",
            "subject.reference",
            "started",
            "basedOn[].reference",
            "endpoint[].reference",
            "numberOfSeries",
            "numberOfInstances",
            "procedureCode[].coding[].system",
            "procedureCode[].coding[].code",
            "procedureCode[].text",
            "series[].uid",
            "series[].number",
            "series[].modality.system",
            "series[].modality.code",
            "series[].description",
            "series[].numberOfInstances",
            "series[].bodySite.system",
            "series[].bodySite.code",
            "series[].bodySite.display",
            "series[].laterality.system",
            "series[].laterality.code",
            "series[].laterality.display",
            "series[].started",
            "series[].instance[].uid",
            "series[].instance[].sopClass.system",
            "series[].instance[].sopClass.code",
            "series[].instance[].number",
        ],
    ),
    (
        "imagingstudy-example.json",
        _imaging_study,
        [
            "identifier[].system",
            "identifier[].value",
            "status",
            "subject.reference",
            "started",
            "numberOfSeries",
            "numberOfInstances",
            "series[].uid",
            "series[].number",
            "series[].modality.system",
            "series[].modality.code",
            "series[].bodySite.system",
            "series[].bodySite.code",
            "series[].instance[].uid",
            "series[].instance[].sopClass.system",
            "series[].instance[].sopClass.code",
            "series[].instance[].number",
        ],
    ),
    (
        "diagnosticreport-example-ultrasound.json",
        _diagnostic_report,
        [
            "status",
            "category[].coding[].system",
            "category[].coding[].code",
            "code.coding[].system",
            "code.coding[].code",
            "code.text",
            "subject.reference",
            "effectiveDateTime",
            "issued",
            "performer[].reference",
            "conclusion",
        ],
    ),
    (
        "servicerequest-example-di.json",
        _service_request,
        [
            "status",
            "intent",
            "code.coding[].system",
            "code.coding[].code",
            "code.text",
            "subject.reference",
            "occurrenceDateTime",
            "requester.display",
            "reasonCode[].text",
        ],
    ),
    (
        "patient-example.json",
        lambda: _ours(patient_from(patient(), identifiers())),
        [
            "identifier[].use",
            "identifier[].type.coding[].system",
            "identifier[].type.coding[].code",
            "identifier[].system",
            "identifier[].value",
            "active",
            "name[].use",
            "name[].family",
            "name[].given[]",
            "telecom[].system",
            "telecom[].value",
            "gender",
            "birthDate",
            "address[].text",
        ],
    ),
    ("organization-example.json", lambda: _ours(organization_from(county())), ["name", "alias[]"]),
    (
        "practitioner-example.json",
        lambda: _ours(practitioner_from(auditor(), county())),
        [
            "identifier[].system",
            "identifier[].value",
            "active",
            "qualification[].code.coding[].system",
            "qualification[].code.coding[].code",
            "qualification[].code.coding[].display",
            "qualification[].code.text",
        ],
    ),
]


def test_every_example_is_here() -> None:
    assert EXAMPLE_FILES == [
        "diagnosticreport-example-ultrasound.json",
        "imagingstudy-example-xr.json",
        "imagingstudy-example.json",
        "organization-example.json",
        "patient-example.json",
        "practitioner-example.json",
        "servicerequest-example-di.json",
    ]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_official_example_parses_with_r4b(name: str) -> None:
    data = _example(name)
    model = _model(data["resourceType"])
    parsed = model.model_validate(data)
    assert parsed.id == data["id"]
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


@pytest.mark.parametrize(("name", "build", "claimed"), CLAIMS, ids=[c[0] for c in CLAIMS])
def test_claimed_elements_have_the_examples_shape(
    name: str, build: Any, claimed: list[str]
) -> None:
    example = _example(name)
    ours = build()
    assert ours["resourceType"] == example["resourceType"]
    theirs_shape, ours_shape = shape(example), shape(ours)
    missing_in_example = [path for path in claimed if path not in theirs_shape]
    missing_in_ours = [path for path in claimed if path not in ours_shape]
    assert missing_in_example == []
    assert missing_in_ours == []
    differing = {
        path: (ours_shape[path], theirs_shape[path])
        for path in claimed
        if ours_shape[path] != theirs_shape[path]
    }
    assert differing == {}


def _values(node: Any, path: str) -> list[Any]:
    head, _, rest = path.partition(".")
    key = head.removesuffix("[]")
    if isinstance(node, list):
        return [value for item in node for value in _values(item, path)]
    if not isinstance(node, dict) or key not in node:
        return []
    value = node[key]
    return _values(value, rest) if rest else (value if isinstance(value, list) else [value])


@pytest.mark.parametrize(
    ("name", "build", "path", "shared"),
    [
        ("imagingstudy-example-xr.json", _imaging_study, "modality[].system", None),
        ("imagingstudy-example-xr.json", _imaging_study, "series[].modality.system", None),
        (
            "imagingstudy-example-xr.json",
            _imaging_study,
            "series[].instance[].sopClass.system",
            None,
        ),
        ("imagingstudy-example-xr.json", _imaging_study, "identifier[].type.coding[].system", None),
        ("imagingstudy-example-xr.json", _imaging_study, "identifier[].type.coding[].code", None),
        (
            "diagnosticreport-example-ultrasound.json",
            _diagnostic_report,
            "category[].coding[].code",
            {"RAD"},
        ),
        ("servicerequest-example-di.json", _service_request, "code.coding[].system", None),
    ],
)
def test_coded_values_come_from_the_same_systems(
    name: str, build: Any, path: str, shared: set[str] | None
) -> None:
    """Ours uses every value the example uses there, or (``shared``) at least these."""
    theirs = set(_values(_example(name), path))
    ours = set(_values(build(), path))
    assert theirs
    assert theirs & ours == (theirs if shared is None else shared)


def test_dicom_uids_are_written_as_the_examples_write_them() -> None:
    example = _example("imagingstudy-example-xr.json")
    ours = _imaging_study()
    for data in (example, ours):
        study_uid = next(i for i in data["identifier"] if i.get("system") == "urn:dicom:uid")
        assert study_uid["value"].startswith("urn:oid:")
        series = data["series"][0]
        assert not series["uid"].startswith("urn:")
        assert not series["instance"][0]["uid"].startswith("urn:")
        assert series["instance"][0]["sopClass"]["code"].startswith("urn:oid:1.2.840.10008.")
