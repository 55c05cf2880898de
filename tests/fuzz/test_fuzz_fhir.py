"""Mutated FHIR transaction Bundles POSTed to the running hub: 2xx, or a 4xx OperationOutcome.

Budget: 300 structure-mutated Bundles (keys dropped, values of the wrong type,
entries duplicated, wrapped or renamed), 60 byte-mutated bodies, and 100
hypothesis-built entries. A refused Bundle stores nothing: the resource table
is the same before and after it; the hub never answers 5xx.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzHub, Tally
from tests.fuzz.mutate import mutate_bytes, mutate_json

pytestmark = pytest.mark.slow

SEED = 20261207
DATA = Path(__file__).resolve().parents[1] / "data" / "fhir"
STRUCTURE_CASES, BYTE_CASES = 300, 60


def _example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    resource.pop("text", None)
    return resource


def base_bundle() -> dict[str, Any]:
    """A transaction of official R4 examples, linked to one patient by urn:uuid."""
    patient = _example("patient-example")
    study = _example("imagingstudy-example")
    order = _example("servicerequest-example-di")
    report = _example("diagnosticreport-example-ultrasound")
    subject = {"reference": "urn:uuid:7b8e5c0e-0000-4000-8000-000000000001"}
    for resource in (study, order, report):
        resource["subject"] = subject
    for resource, key in ((study, "series"), (order, "requester"), (report, "performer")):
        resource.pop(key, None)
    report.pop("media", None)
    entries = [
        {"fullUrl": subject["reference"], "resource": patient,
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": study, "request": {"method": "POST", "url": "ImagingStudy"}},
        {"resource": order, "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}},
    ]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _stored(hub: FuzzHub) -> list[tuple[object, ...]]:
    return hub.query("SELECT count(*), coalesce(sum(version_id), 0) FROM fhir_resource")


class Poster:
    def __init__(self, hub: FuzzHub) -> None:
        self.hub = hub
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{hub.http_port}",
            headers={
                "Authorization": f"Bearer {hub.token}",
                "Content-Type": "application/fhir+json",
            },
            timeout=30,
        )
        self.codes: dict[int, int] = {}

    def check(self, body: bytes, case: str) -> None:
        before = _stored(self.hub)
        answer = self.client.post("/fhir", content=body)
        self.codes[answer.status_code] = self.codes.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, f"{case}: {answer.status_code} {answer.text[:300]}"
        if answer.status_code >= 300:
            assert 400 <= answer.status_code < 500, case
            outcome = answer.json()
            assert outcome["resourceType"] == "OperationOutcome", case
            assert outcome["issue"][0]["diagnostics"], case
            assert _stored(self.hub) == before, f"{case}: a refused Bundle left resources"


@pytest.fixture(scope="module")
def poster(fuzz_hub: FuzzHub) -> Iterator[Poster]:
    served = Poster(fuzz_hub)
    yield served
    served.client.close()


@pytest.mark.parametrize(
    "entry",
    [5, True, "entries", {"resource": {}}, [{"resource": "Patient"}], [{"resource": [1]}]],
)
def test_found_by_the_fuzzer_entries_of_the_wrong_shape_are_400(
    poster: Poster, entry: object
) -> None:
    """These were 500s: the scope check read entries before anything checked their shape."""
    body = {"resourceType": "Bundle", "type": "transaction", "entry": entry}
    answer = poster.client.post("/fhir", content=json.dumps(body))
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_the_base_bundle_is_accepted(poster: Poster) -> None:
    answer = poster.client.post("/fhir", content=json.dumps(base_bundle()))
    assert answer.status_code == 200, answer.text[:500]


def test_structure_mutated_bundles(poster: Poster, tally: Tally) -> None:
    rng = random.Random(SEED)
    base = base_bundle()
    for case in range(STRUCTURE_CASES):
        mutated = mutate_json(base, rng, edits=rng.randint(1, 4))
        poster.check(json.dumps(mutated).encode(), f"structure case {case} (seed {SEED})")
    tally.add("fhir bundles, structure (mutation)", STRUCTURE_CASES)
    print("FHIR fuzz status codes:", dict(sorted(poster.codes.items())))


def test_byte_mutated_bodies(poster: Poster, tally: Tally) -> None:
    rng = random.Random(SEED + 1)
    raw = json.dumps(base_bundle()).encode()
    for case in range(BYTE_CASES):
        poster.check(mutate_bytes(raw, rng, edits=rng.randint(1, 5)), f"byte case {case}")
    tally.add("fhir bundles, bytes (mutation)", BYTE_CASES)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
RESOURCE_TYPES = st.sampled_from(
    ["Patient", "ImagingStudy", "DiagnosticReport", "ServiceRequest", "Organization", "Bundle", ""]
)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    resource_type=RESOURCE_TYPES,
    fields=st.dictionaries(st.sampled_from(["id", "identifier", "subject", "status", "meta",
                                            "basedOn", "name", "code", "x"]), JSON, max_size=5),
    method=st.sampled_from(["POST", "PUT", "DELETE", "", None]),
    url=st.one_of(st.none(), st.text(max_size=40), RESOURCE_TYPES),
)  # fmt: skip
def test_hypothesis_built_entries(
    poster: Poster,
    tally: Tally,
    resource_type: str,
    fields: dict[str, Any],
    method: str | None,
    url: str | None,
) -> None:
    tally.add("fhir bundles, built entries (hypothesis)")
    entry = {"resource": {"resourceType": resource_type, **fields},
             "request": {"method": method, "url": url}}  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    poster.check(json.dumps(bundle).encode(), f"built {bundle}"[:400])
