"""CDS Hooks 2.0 against a real hub: discovery, cards, feedback, and the plain REST check."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from fhir.identifiers import EXAM_TYPE_SYSTEM, RESIDENT_ID_SYSTEM
from integration.cds import name_uuid
from integration.database import Database
from integration.settings import Settings
from tests.conftest import free_port
from tests.hub_helpers import hub_environment, start_hub

SIGN = "huren-prior-exams-sign"
SELECT = "huren-prior-exams-select"


class Hub:
    def __init__(self, folder: Path, port: int, database: Database) -> None:
        self.folder = folder
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=30)
        self.database = database

    def query(self, sql: str, **parameters: object) -> list[tuple[Any, ...]]:
        with self.database.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), parameters)]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp("cds")
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "demo", "seed", "--scale", "tiny", "--quiet",
         "--fhir-days", "0"],
        env=hub_environment(folder, database_url=module_database_url),
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    port = free_port()
    process = start_hub(folder, http_port=port, settings={"database_url": module_database_url})
    database = Database.from_settings(
        Settings(data_dir=folder, database_url=module_database_url)  # type: ignore[arg-type]
    )
    served = Hub(folder, port, database)
    try:
        yield served
    finally:
        served.client.close()
        database.dispose()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _recognisable_case(hub: Hub) -> tuple[int, str, str]:
    """A patient with a final report of a recognised exam done recently at a qualified facility."""
    rows = hub.query(
        "SELECT s.patient_id, e.code, i.value FROM study s JOIN report r ON r.study_id = s.id "
        "JOIN exam_type e ON e.id = s.exam_type_id JOIN patient_identifier i "
        "ON i.patient_id = s.patient_id AND i.kind = 'resident_id' "
        "JOIN qc_qualification q ON q.facility_id = s.facility_id AND q.valid_until IS NULL "
        "WHERE r.status = 'final' AND e.recognised AND NOT s.quality_rejected "
        "AND s.completed_at >= :since ORDER BY s.completed_at DESC LIMIT 1",
        since=datetime.now(UTC) - timedelta(days=3),
    )
    assert rows, "the demo region should have a recent recognisable exam"
    patient_id, code, resident_id = rows[0]
    return int(patient_id), str(code), str(resident_id)


def _request(hook: str, patient: str, code: str, **extra_context: object) -> dict[str, Any]:
    return {
        "hookInstance": f"instance-{hook}-{patient}-{code}-{len(extra_context)}",
        "hook": hook,
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "ServiceRequest",
                            "id": "draft-1",
                            "status": "draft",
                            "intent": "order",
                            "code": {"coding": [{"system": EXAM_TYPE_SYSTEM, "code": code}]},
                            "subject": {"reference": f"Patient/{patient}"},
                            "requester": {
                                "identifier": {
                                    "system": "https://huren.health/fhir/sid/facility",
                                    "value": "QL-T01",
                                }
                            },
                        }
                    }
                ],
            },
            **extra_context,
        },
    }


def test_discovery_lists_both_hooks_with_prefetch(hub: Hub) -> None:
    services = hub.client.get("/cds-services").json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {
        (SELECT, "order-select"),
        (SIGN, "order-sign"),
    }
    for service in services:
        assert set(service["prefetch"]) == {"patient", "studies", "reports"}
        assert "{{context.patientId}}" in service["prefetch"]["studies"]


def test_a_recognisable_prior_gives_a_warning_card(hub: Hub) -> None:
    patient_id, code, _ = _recognisable_case(hub)
    answer = hub.client.post(
        f"/cds-services/{SIGN}", json=_request("order-sign", str(patient_id), code)
    )
    assert answer.status_code == 200
    (card,) = answer.json()["cards"]
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140 and "可互认" in card["summary"]
    assert card["suggestions"][0]["actions"][0] == {
        "type": "delete",
        "description": card["suggestions"][0]["actions"][0]["description"],
        "resourceId": ["ServiceRequest/draft-1"],
    }
    assert {reason["code"] for reason in card["overrideReasons"]} == {
        "condition_changed",
        "conflicts_with_clinical",
        "emergency",
        "rapid_change",
        "other",
    }
    assert any(
        link["url"].startswith(hub.base + "/fhir/DiagnosticReport/") for link in card["links"]
    )


def test_the_patient_is_found_by_resident_id_in_the_prefetch(hub: Hub) -> None:
    _, code, resident_id = _recognisable_case(hub)
    request = _request("order-sign", "his-only-id-123", code)
    request["prefetch"] = {
        "patient": {
            "resourceType": "Patient",
            "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": resident_id}],
        }
    }
    cards = hub.client.post(f"/cds-services/{SIGN}", json=request).json()["cards"]
    assert [card["indicator"] for card in cards] == ["warning"]


def test_order_select_looks_only_at_the_selected_orders(hub: Hub) -> None:
    patient_id, code, _ = _recognisable_case(hub)
    chosen = _request("order-select", str(patient_id), code, selections=["ServiceRequest/draft-1"])
    other = _request("order-select", str(patient_id), code, selections=["ServiceRequest/else"])
    assert len(hub.client.post(f"/cds-services/{SELECT}", json=chosen).json()["cards"]) == 1
    assert hub.client.post(f"/cds-services/{SELECT}", json=other).json() == {"cards": []}


def test_priors_that_do_not_count_give_an_info_card_with_reasons(hub: Hub) -> None:
    rows = hub.query(
        "SELECT s.patient_id, e.code FROM study s JOIN exam_type e ON e.id = s.exam_type_id "
        "WHERE NOT e.recognised AND s.completed_at IS NOT NULL AND s.patient_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM study t JOIN exam_type f ON f.id = t.exam_type_id "
        "WHERE t.patient_id = s.patient_id AND f.code = e.code AND f.recognised) LIMIT 1"
    )
    assert rows
    patient_id, code = rows[0]
    (card,) = hub.client.post(
        f"/cds-services/{SIGN}", json=_request("order-sign", str(patient_id), code)
    ).json()["cards"]
    assert card["indicator"] == "info"
    assert "不在互认目录内" in card["detail"]


def test_nothing_to_say_means_no_cards_and_unknown_patients_are_not_errors(hub: Hub) -> None:
    _, code, _ = _recognisable_case(hub)
    unknown = hub.client.post(f"/cds-services/{SIGN}", json=_request("order-sign", "nobody", code))
    assert unknown.status_code == 200 and unknown.json() == {"cards": []}
    (fresh,) = hub.query(
        "SELECT p.id FROM patient p WHERE NOT EXISTS (SELECT 1 FROM study s JOIN exam_type e "
        "ON e.id = s.exam_type_id WHERE s.patient_id = p.id AND e.code = :code) LIMIT 1",
        code=code,
    )
    answer = hub.client.post(
        f"/cds-services/{SIGN}", json=_request("order-sign", str(fresh[0]), code)
    )
    assert answer.status_code == 200 and answer.json() == {"cards": []}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hook": "patient-view"}, "order-sign"),
        ({"hookInstance": ""}, "hookInstance"),
        ({"context": {"patientId": 5}}, "patientId"),
        ({"context": {"patientId": "1", "draftOrders": []}}, "draftOrders"),
    ],
)
def test_malformed_requests_get_400_with_a_clear_message(
    hub: Hub, change: dict[str, object], message: str
) -> None:
    request = _request("order-sign", "1", "X") | change
    answer = hub.client.post(f"/cds-services/{SIGN}", json=request)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_order_select_without_selections_and_bodies_that_are_not_json_are_refused(hub: Hub) -> None:
    answer = hub.client.post(f"/cds-services/{SELECT}", json=_request("order-select", "1", "X"))
    assert answer.status_code == 400 and "selections" in answer.json()["error"]
    garbage = hub.client.post(f"/cds-services/{SIGN}", content=b"{not json")
    assert garbage.status_code == 400
    assert hub.client.post("/cds-services/no-such-service", json={}).status_code == 404


def test_feedback_is_stored_as_recognition_decisions(hub: Hub) -> None:
    patient_id, code, _ = _recognisable_case(hub)
    first = _request("order-sign", str(patient_id), code)
    first["hookInstance"] = "feedback-accept"
    accepted = hub.client.post(f"/cds-services/{SIGN}", json=first).json()["cards"][0]
    second = _request("order-sign", str(patient_id), code)
    second["hookInstance"] = "feedback-override"
    overridden = hub.client.post(f"/cds-services/{SIGN}", json=second).json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": accepted["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": accepted["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-25T08:30:00Z",
            },
            {
                "card": overridden["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "condition_changed", "system": "x"},
                    "userComment": "胸痛加重",
                },
                "outcomeTimestamp": "2026-11-25T08:31:00Z",
            },
        ]
    }
    assert hub.client.post(f"/cds-services/{SIGN}/feedback", json=feedback).status_code == 200
    decisions = hub.query(
        "SELECT d.outcome, d.refusal_reason, d.comment, d.source, d.patient_id, f.code, "
        "d.avoided_fee_fen > 0 FROM recognition_decision d JOIN facility f ON f.id = d.facility_id "
        "WHERE d.card_id IN (:accepted, :overridden) ORDER BY d.decided_at",
        accepted=accepted["uuid"],
        overridden=overridden["uuid"],
    )
    assert decisions == [
        ("accepted", None, "", "cds_hooks", patient_id, "QL-T01", 1),
        ("refused", "condition_changed", "胸痛加重", "cds_hooks", patient_id, "QL-T01", 0),
    ]
    bad = {
        "feedback": [
            {
                "card": overridden["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "bored"}},
            }
        ]
    }
    answer = hub.client.post(f"/cds-services/{SIGN}/feedback", json=bad)
    assert answer.status_code == 400 and "condition_changed" in answer.json()["error"]
    unknown = {
        "feedback": [{"card": "00000000-0000-0000-0000-000000000000", "outcome": "accepted"}]
    }
    assert hub.client.post(f"/cds-services/{SIGN}/feedback", json=unknown).status_code == 400


def test_concurrent_calls_answer_only_once_their_cards_are_kept(hub: Hub) -> None:
    patient_id, code, _ = _recognisable_case(hub)

    async def one(client: httpx.AsyncClient, number: int) -> tuple[str, int]:
        request = _request("order-sign", str(patient_id), code)
        request["hookInstance"] = f"concurrent-{number}"
        answer = await client.post(f"/cds-services/{SIGN}", json=request)
        (card,) = answer.json()["cards"]
        # Read the moment the answer arrives, from another connection: already committed.
        (kept,) = hub.query(
            "SELECT count(*) FROM recognition_card WHERE card_uuid = :card", card=card["uuid"]
        )
        return str(card["uuid"]), int(kept[0])

    async def everyone() -> list[tuple[str, int]]:
        async with httpx.AsyncClient(base_url=hub.base, timeout=30) as client:
            return await asyncio.gather(*(one(client, number) for number in range(12)))

    answers = asyncio.run(everyone())
    assert [kept for _, kept in answers] == [1] * 12
    assert len({card for card, _ in answers}) == 12
    feedback = {"feedback": [{"card": card, "outcome": "accepted"} for card, _ in answers]}
    assert hub.client.post(f"/cds-services/{SIGN}/feedback", json=feedback).status_code == 200
    cards = {f"card{number}": card for number, (card, _) in enumerate(answers)}
    (decided,) = hub.query(
        "SELECT count(*) FROM recognition_decision WHERE card_id IN "
        f"({', '.join(':' + name for name in cards)})",
        **cards,
    )
    assert decided == (12,)


def test_the_rest_check_returns_the_same_verdicts(hub: Hub) -> None:
    patient_id, code, resident_id = _recognisable_case(hub)
    by_id = hub.client.get(
        "/recognition/verdicts", params={"patient": patient_id, "exam": code}
    ).json()
    by_resident = hub.client.get(
        "/recognition/verdicts", params={"resident_id": resident_id, "exam": code}
    ).json()
    assert by_id == by_resident
    assert by_id["verdicts"][0]["recognisable"] is True
    assert all(v["exam"] == code for v in by_id["verdicts"])
    missing = hub.client.get("/recognition/verdicts", params={"exam": code})
    assert missing.status_code == 400


@given(namespace=st.uuids(), name=st.text())
def test_card_ids_are_the_uuid5_of_their_instance_order_and_prior(
    namespace: uuid.UUID, name: str
) -> None:
    assert name_uuid(namespace.bytes, name) == str(uuid.uuid5(namespace, name))
