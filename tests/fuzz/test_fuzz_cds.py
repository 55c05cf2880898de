"""Mutated CDS Hooks requests to the running hub: 400 with a message, or 200 with cards.

Budget: 300 structure-mutated order-select/order-sign requests (built on a
patient with a recognisable prior, so the card path runs), 60 byte-mutated
bodies, 40 mutated feedback calls and 100 hypothesis-built contexts. Never a
5xx: an EHR waits on this call while the clinician orders.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir.identifiers import EXAM_TYPE_SYSTEM
from tests.fuzz.conftest import FuzzHub, Tally
from tests.fuzz.mutate import mutate_bytes, mutate_json

pytestmark = pytest.mark.slow

SEED = 20261208
SIGN, SELECT = "huren-prior-exams-sign", "huren-prior-exams-select"
HOOKS = {SIGN: "order-sign", SELECT: "order-select"}


def _request(hook: str, patient: str, code: str) -> dict[str, Any]:
    draft = {
        "resourceType": "ServiceRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": EXAM_TYPE_SYSTEM, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "requester": {
            "identifier": {"system": "https://huren.health/fhir/sid/facility", "value": "QL-T01"}
        },
    }
    return {
        "hookInstance": f"fuzz-{hook}-{patient}",
        "hook": hook,
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient,
            "selections": ["ServiceRequest/draft-1"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                            "entry": [{"resource": draft}]},
        },
    }  # fmt: skip


class Caller:
    def __init__(self, hub: FuzzHub) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{hub.http_port}", timeout=30)
        rows = hub.query(
            "SELECT s.patient_id, e.code FROM study s JOIN report r ON r.study_id = s.id "
            "JOIN exam_type e ON e.id = s.exam_type_id WHERE r.status = 'final' "
            "AND e.recognised ORDER BY s.completed_at DESC LIMIT 1"
        )
        assert rows, "the demo region should have a final report of a recognised exam"
        self.patient, self.code = str(rows[0][0]), str(rows[0][1])
        self.codes: dict[int, int] = {}

    def check(self, path: str, body: bytes, case: str) -> dict[str, Any]:
        answer = self.client.post(path, content=body, headers={"Content-Type": "application/json"})
        self.codes[answer.status_code] = self.codes.get(answer.status_code, 0) + 1
        assert answer.status_code in (200, 400), f"{case}: {answer.status_code} {answer.text[:300]}"
        reply: dict[str, Any] = answer.json() if answer.content else {}  # feedback: empty 200
        if answer.status_code == 400:
            assert isinstance(reply.get("error"), str) and reply["error"], case
        return reply


@pytest.fixture(scope="module")
def caller(fuzz_hub: FuzzHub) -> Iterator[Caller]:
    served = Caller(fuzz_hub)
    yield served
    served.client.close()


def test_the_base_requests_give_cards(caller: Caller) -> None:
    for service, hook in HOOKS.items():
        body = json.dumps(_request(hook, caller.patient, caller.code)).encode()
        reply = caller.check(f"/cds-services/{service}", body, service)
        assert isinstance(reply["cards"], list)


@pytest.mark.parametrize(
    ("where", "value"),
    [("code", ["DX"]), ("code", {"coding": "DX"}), ("code", {"coding": [7]}),
     ("subject", []), ("requester", 5), ("requester", {"identifier": ["QL-T01"]})],
)  # fmt: skip
def test_found_by_the_fuzzer_draft_orders_of_the_wrong_shape_are_not_500(
    caller: Caller, where: str, value: object
) -> None:
    """These were 500s: the draft orders were read with .get() on whatever JSON came."""
    request = _request("order-sign", caller.patient, caller.code)
    request["context"]["draftOrders"]["entry"][0]["resource"][where] = value
    caller.check(f"/cds-services/{SIGN}", json.dumps(request).encode(), f"{where}={value}")


def test_structure_mutated_requests(caller: Caller, tally: Tally) -> None:
    rng = random.Random(SEED)
    for case in range(300):
        service = rng.choice(sorted(HOOKS))
        base = _request(HOOKS[service], caller.patient, caller.code)
        mutated = mutate_json(base, rng, edits=rng.randint(1, 4))
        reply = caller.check(
            f"/cds-services/{service}", json.dumps(mutated).encode(), f"case {case} (seed {SEED})"
        )
        if "cards" in reply:
            assert isinstance(reply["cards"], list)
            for card in reply["cards"]:
                assert isinstance(card.get("summary"), str) and len(card["summary"]) < 140
    tally.add("cds hooks requests, structure (mutation)", 300)
    print("CDS fuzz status codes:", dict(sorted(caller.codes.items())))


def test_byte_mutated_requests(caller: Caller, tally: Tally) -> None:
    rng = random.Random(SEED + 1)
    raw = json.dumps(_request("order-sign", caller.patient, caller.code)).encode()
    for case in range(60):
        caller.check(f"/cds-services/{SIGN}", mutate_bytes(raw, rng, edits=3), f"byte {case}")
    tally.add("cds hooks requests, bytes (mutation)", 60)


def test_mutated_feedback(caller: Caller, tally: Tally) -> None:
    rng = random.Random(SEED + 2)
    body = json.dumps(_request("order-sign", caller.patient, caller.code)).encode()
    cards = caller.check(f"/cds-services/{SIGN}", body, "feedback base")["cards"]
    card = cards[0]["uuid"] if cards else "00000000-0000-4000-8000-000000000000"
    feedback = {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "overrideReasons": [{"reason": {"code": "patient-declined"},
                                     "userComment": "fuzz"}],
                "outcomeTimestamp": "2026-12-05T08:00:00Z",
            }
        ]
    }  # fmt: skip
    for case in range(40):
        mutated = mutate_json(feedback, rng, edits=rng.randint(1, 3))
        caller.check(
            f"/cds-services/{SIGN}/feedback", json.dumps(mutated).encode(), f"feedback {case}"
        )
    tally.add("cds hooks feedback (mutation)", 40)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    context=st.dictionaries(
        st.sampled_from(["userId", "patientId", "draftOrders", "selections", "encounterId"]),
        JSON,
        max_size=5,
    ),
    prefetch=st.one_of(st.none(), JSON),
)
def test_hypothesis_built_contexts(
    caller: Caller, tally: Tally, context: dict[str, Any], prefetch: Any
) -> None:
    tally.add("cds hooks contexts (hypothesis)")
    body = {"hookInstance": "h", "hook": "order-select", "context": context, "prefetch": prefetch}
    caller.check(f"/cds-services/{SELECT}", json.dumps(body).encode(), f"built {body}"[:400])
