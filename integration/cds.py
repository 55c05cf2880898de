"""CDS Hooks 2.0 (``/cds-services``) and a plain REST check: tell the clinician about priors.

``order-select`` and ``order-sign`` look at the draft ServiceRequests, find
the patient (FHIR id, or the resident ID on the prefetched Patient or the
orders' subject), run the recognition rules on every prior of each
requested exam and answer cards: a ``warning`` per exam with a recognisable
prior (remove the draft order, or override with a national refusal reason),
an ``info`` when priors exist that do not count, and why. Every card is
kept, so the feedback endpoint can record the clinician's decision as a
RecognitionDecision. Callers sign JWTs as CDS Hooks asks (see
:mod:`integration.cds_auth`); with no client configured only loopback
callers are served.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _AsciiJSONResponse
from starlette.responses import Response
from starlette.routing import Route

from fhir.identifiers import FACILITY_SYSTEM, RESIDENT_ID_SYSTEM, SID
from fhir.search import reference_id
from integration.cds_auth import CdsAuthenticator, CdsCaller
from integration.database import Database, unavailable
from integration.priors import Person, catalogue, find_person, priors_of
from integration.recognition import (
    REASON_EN,
    REASON_ZH,
    ExamSpec,
    Rules,
    Verdict,
    resolve_exam,
    verdicts,
)
from integration.settings import Settings
from models import metadata
from models.enums import RecognitionOutcome, RecognitionSource, RefusalReason
from models.errors import AuthenticationError, ValidationError

log = logging.getLogger("huren.cds")
T = metadata.tables
REFUSAL_SYSTEM = SID + "refusal-reason"
REFUSAL_ZH: Mapping[RefusalReason, str] = {
    RefusalReason.condition_changed: "病情变化",
    RefusalReason.conflicts_with_clinical: "检查结果与临床表现不符",
    RefusalReason.emergency: "急诊、急救",
    RefusalReason.rapid_change: "检查项目变化快",
    RefusalReason.other: "其他",
}
SERVICES = {
    "huren-prior-exams-select": "order-select",
    "huren-prior-exams-sign": "order-sign",
}
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
SUMMARY_LIMIT = 140


class JSONResponse(_AsciiJSONResponse):
    """JSON with Chinese as UTF-8, not ``\\u`` escapes: card text is read by people."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class CdsRequestError(ValidationError):
    """A malformed hook request; the message says what is wrong (HTTP 400)."""


@dataclass(frozen=True)
class _Catalogue:
    """The exam catalogue as the hook needs it, read once a minute rather than every call."""

    exams: list[ExamSpec]
    aliases: dict[str, str]
    ids: dict[str, int]
    read_at: float


CATALOGUE_TTL = 60.0  # seconds; `huren catalogue sync` runs in another process


@dataclass(frozen=True)
class DraftOrder:
    reference: str  # ServiceRequest/<id> as the EHR named it
    exam: ExamSpec


def discovery(base_url: str) -> dict[str, Any]:
    prefetch = {
        "patient": "Patient/{{context.patientId}}",
        "studies": "ImagingStudy?patient={{context.patientId}}&_sort=-date&_count=50",
        "reports": "DiagnosticReport?patient={{context.patientId}}&_sort=-date&_count=50",
    }
    return {
        "services": [
            {
                "hook": hook,
                "id": service_id,
                "title": "检查互认提示 / Prior exam check",
                "description": (
                    "Warns when a recognisable prior of a requested imaging exam exists in "
                    "the region (2022 mutual-recognition rules), and says why other priors "
                    "do not count."
                ),
                "prefetch": prefetch,
                "usageRequirements": f"Feedback to {base_url}/cds-services/{service_id}/feedback",
            }
            for service_id, hook in SERVICES.items()
        ]
    }


def _object(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: EHR JSON is read, never trusted."""
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def _drafts(
    context: Mapping[str, Any], hook: str, exams: Sequence[ExamSpec], aliases: Mapping[str, str]
) -> tuple[list[DraftOrder], list[str]]:
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise CdsRequestError("context.draftOrders must be a FHIR Bundle of ServiceRequests")
    selections = context.get("selections")
    if hook == "order-select" and (
        not isinstance(selections, list) or not all(isinstance(s, str) for s in selections)
    ):
        raise CdsRequestError("order-select needs context.selections, a list of references")
    drafts, subjects = [], []
    for entry in _array(bundle.get("entry")):
        resource = _object(_object(entry).get("resource"))
        if resource.get("resourceType") != "ServiceRequest":
            continue
        reference = f"ServiceRequest/{resource.get('id', '')}"
        if hook == "order-select" and reference not in (selections or []):
            continue
        subject = _object(resource.get("subject")).get("reference")
        if subject:
            subjects.append(str(subject))
        for coding in map(_object, _array(_object(resource.get("code")).get("coding"))):
            system = coding.get("system")
            exam = resolve_exam(
                str(coding.get("code", "")),
                system=system if isinstance(system, str) else None,
                catalogue=exams,
                aliases=aliases,
            )
            if exam is not None:
                drafts.append(DraftOrder(reference=reference, exam=exam))
                break
    return drafts, subjects


def _resident_id(prefetch: Mapping[str, Any]) -> str | None:
    patient = _object(_object(prefetch).get("patient"))
    for identifier in map(_object, _array(patient.get("identifier"))):
        if identifier.get("system") == RESIDENT_ID_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def _facility(connection: Connection, context: Mapping[str, Any]) -> int | None:
    """Where the clinician orders: a local Practitioner(Role) user, or the orders' requester."""
    user = reference_id(str(context.get("userId") or ""), "Practitioner") or reference_id(
        str(context.get("userId") or ""), "PractitionerRole"
    )
    if user and user.isdigit():
        found = connection.execute(
            select(T["app_user"].c.facility_id).where(T["app_user"].c.id == int(user))
        ).scalar()
        if found is not None:
            return int(found)
    for entry in _array(_object(context.get("draftOrders")).get("entry")):
        requester = _object(_object(_object(entry).get("resource")).get("requester"))
        identifier = _object(requester.get("identifier"))
        if identifier.get("system") == FACILITY_SYSTEM and identifier.get("value"):
            found = connection.execute(
                select(T["facility"].c.id).where(T["facility"].c.code == identifier["value"])
            ).scalar()
            if found is not None:
                return int(found)
    return None


def _looks_like_resident_id(text: str) -> bool:
    return len(text) == 18 and text[:17].isdigit() and (text[17].isdigit() or text[17] in "Xx")


def _card_row(
    *,
    card_uuid: str,
    instance: str,
    service_id: str,
    person: Person,
    exam_type_id: int,
    verdict: Verdict,
    facility_id: int | None,
    clinician: str,
    draft: DraftOrder,
    now: datetime,
) -> dict[str, Any]:
    prior = verdict.prior
    local = not prior.source
    return {
        "card_uuid": card_uuid,
        "hook_instance": instance[:64],
        "service": service_id,
        "patient_id": person.patient_ids[0] if person.patient_ids else None,
        "requested_exam_type_id": exam_type_id,
        "prior_key": prior.key[:64],
        "prior_study_id": int(prior.study_ref.split("/")[1]) if local and prior.study_ref else None,
        "prior_report_id": (
            int(prior.report_ref.split("/")[1]) if local and prior.report_ref else None
        ),
        "prior_source": prior.source[:64],
        "recognisable": verdict.recognisable,
        "facility_id": facility_id,
        "clinician_ref": clinician[:128],
        "draft_order_ref": draft.reference[:128],
        "avoidable_fee_fen": draft.exam.fee_fen if verdict.recognisable else 0,
        "issued_at": now,
    }


def _keep_cards(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Keep the cards shown; the same hook instance asking again keeps the first copy."""
    table = T["recognition_card"]
    if connection.dialect.name == "postgresql":
        statement: Any = postgresql_insert(table).on_conflict_do_nothing(
            index_elements=["card_uuid"]
        )
    else:
        statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=["card_uuid"])
    connection.execute(statement, rows)


def _facility_by_code(connection: Connection, code: str) -> int | None:
    found = connection.execute(
        select(T["facility"].c.id).where(T["facility"].c.code == code)
    ).scalar()
    return None if found is None else int(found)


def _date_zh(verdict: Verdict) -> str:
    day = verdict.prior.performed_on
    return f"{day.year}年{day.month}月{day.day}日"


def _warning(card_uuid: str, draft: DraftOrder, verdict: Verdict, base_url: str) -> dict[str, Any]:
    prior = verdict.prior
    summary = f"{draft.exam.name}：{prior.facility}于{_date_zh(verdict)}已做，结果可互认"
    detail = [
        f"**{prior.facility}** {_date_zh(verdict)} 的 **{draft.exam.name}** 符合互认条件"
        f"（有效期至 {verdict.valid_until.isoformat()}）。",
    ]
    if prior.conclusion:
        detail.append(f"\n\n诊断意见：{prior.conclusion}")
    detail.append("\n\n如仍需检查，请选择不采纳的理由。")
    links = []
    if prior.report_ref:
        links.append(
            {
                "label": "报告 (FHIR)",
                "url": f"{base_url}/fhir/{prior.report_ref}",
                "type": "absolute",
            }
        )
    if not prior.source:
        links.append(
            {
                "label": "影像 (WADO-RS)",
                "url": f"{base_url}/dicomweb/studies/{prior.key}",
                "type": "absolute",
            }
        )
    return {
        "uuid": card_uuid,
        "summary": summary[:SUMMARY_LIMIT],
        "detail": "".join(detail),
        "indicator": "warning",
        "source": {
            "label": "区域影像互认 Huren",
            "url": base_url,
            "topic": {"code": "recognition", "system": SID + "cds"},
        },
        "suggestions": [
            {
                "label": "采纳已有检查，撤销本次申请",
                "uuid": str(uuid.uuid5(uuid.UUID(card_uuid), "remove")),
                "isRecommended": True,
                "actions": [
                    {
                        "type": "delete",
                        "description": f"撤销 {draft.exam.name} 申请",
                        "resourceId": [draft.reference],
                    }
                ],
            }
        ],
        "selectionBehavior": "at-most-one",
        "overrideReasons": [
            {"code": reason.value, "system": REFUSAL_SYSTEM, "display": REFUSAL_ZH[reason]}
            for reason in RefusalReason
        ],
        "links": links,
    }


def _info(
    card_uuid: str, draft: DraftOrder, found: Sequence[Verdict], base_url: str
) -> dict[str, Any]:
    lines = [
        f"- {v.prior.facility} {_date_zh(v)}：" + "；".join(REASON_ZH[r] for r in v.reasons)
        for v in found[:5]
    ]
    return {
        "uuid": card_uuid,
        "summary": f"{draft.exam.name}：有 {len(found)} 次既往检查，均不符合互认条件"[
            :SUMMARY_LIMIT
        ],
        "detail": "\n".join(lines),
        "indicator": "info",
        "source": {"label": "区域影像互认 Huren", "url": base_url},
    }


class CdsHooks:
    """Builds the ``/cds-services`` application and the REST check at ``/recognition``."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        rules: Rules | None = None,
        authenticator: CdsAuthenticator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._settings = settings
        self._rules = rules or Rules()
        self._authenticator = authenticator or CdsAuthenticator({})
        self._clock = clock
        self._catalogue: _Catalogue | None = None
        self._catalogue_lock = threading.Lock()
        # Two at a time: more threads only fight over the GIL and SQLite's write lock
        # (measured with 16 callers: p99 813 -> 184 ms).
        self._workers = anyio.CapacityLimiter(2)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.discover, methods=["GET"]),
                Route("/{service_id}", self.call, methods=["POST"]),
                Route("/{service_id}/feedback", self.feedback, methods=["POST"]),
            ],
            exception_handlers={SQLAlchemyError: self._storage_problem},
        )

    async def _storage_problem(self, _request: Request, exc: Exception) -> Response:
        """A locked or unreachable database is 503 (the EHR shows no card and moves on)."""
        if unavailable(exc) is None:
            log.error("CDS request failed in the database: %s", exc)
            return JSONResponse({"error": "the hub could not answer"}, status_code=500)
        log.warning("CDS request refused: %s", exc)
        return JSONResponse(
            {"error": "the hub's database is busy; retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    def rest_app(self) -> Starlette:
        return Starlette(routes=[Route("/verdicts", self.rest_verdicts, methods=["GET"])])

    # --- edges ---------------------------------------------------------------------------

    def _refused(self, request: Request, audience: str) -> Response | CdsCaller | None:
        """An error answer, the verified caller, or None for a loopback caller (no clients)."""
        if not self._authenticator.configured:
            client = request.client
            if client is None or client.host not in LOOPBACK:
                return JSONResponse(
                    {"error": "only local callers are accepted (no CDS clients configured)"},
                    status_code=403,
                )
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"error": "send Authorization: Bearer <JWT>"}, status_code=401)
        try:
            return self._authenticator.verify(token.strip(), audience=audience)
        except AuthenticationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise CdsRequestError(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise CdsRequestError("the body must be a JSON object")
        return body

    async def discover(self, request: Request) -> Response:
        return JSONResponse(discovery(self._settings.base_url))

    async def call(self, request: Request) -> Response:
        service_id = request.path_params["service_id"]
        hook = SERVICES.get(service_id)
        if hook is None:
            return JSONResponse({"error": f"no CDS service {service_id!r}"}, status_code=404)
        caller = self._refused(request, f"{self._settings.base_url}/cds-services/{service_id}")
        if isinstance(caller, Response):
            return caller
        try:
            body = await self._json(request)
            if body.get("hook") != hook:
                raise CdsRequestError(f"service {service_id} answers the {hook} hook")
            instance = body.get("hookInstance")
            context = body.get("context")
            if not isinstance(instance, str) or not instance:
                raise CdsRequestError("hookInstance is required")
            if not isinstance(context, dict) or not isinstance(context.get("patientId"), str):
                raise CdsRequestError("context.patientId is required")
            cards = await anyio.to_thread.run_sync(
                self._cards,
                service_id,
                hook,
                instance,
                context,
                body.get("prefetch") or {},
                caller,
                limiter=self._workers,
            )
        except CdsRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"cards": cards})

    # --- the work ------------------------------------------------------------------------

    def _cards(
        self,
        service_id: str,
        hook: str,
        instance: str,
        context: Mapping[str, Any],
        prefetch: Mapping[str, Any],
        caller: CdsCaller | None,
    ) -> list[dict[str, Any]]:
        now = self._clock()
        today = now.astimezone(self._settings.zone).date()
        base = self._settings.base_url
        known = self._current_catalogue()
        with self._database.engine.connect() as connection:
            drafts, subjects = _drafts(context, hook, known.exams, known.aliases)
            if not drafts:
                return []
            person = self._person(connection, str(context["patientId"]), prefetch, subjects)
            if person is None:
                return []
            priors = priors_of(
                connection, person=person, exams=known.exams, zone=self._settings.zone
            )
            facility_id = (
                _facility_by_code(connection, caller.facility_code)
                if caller is not None
                else _facility(connection, context)
            )
        cards, kept = [], []
        for draft in drafts:
            found = verdicts(priors, requested=draft.exam, on=today, rules=self._rules)
            if not found:
                continue
            best = found[0]
            card_uuid = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{instance}/{draft.reference}/{best.prior.key}")
            )
            if best.recognisable:
                cards.append(_warning(card_uuid, draft, best, base))
            else:
                cards.append(_info(card_uuid, draft, found, base))
            kept.append(
                _card_row(
                    card_uuid=card_uuid,
                    instance=instance,
                    service_id=service_id,
                    person=person,
                    exam_type_id=known.ids[draft.exam.code],
                    verdict=best,
                    facility_id=facility_id,
                    clinician=str(context.get("userId") or ""),
                    draft=draft,
                    now=now,
                )
            )
        if kept:
            with self._database.engine.begin() as connection:
                _keep_cards(connection, kept)
        return cards

    def _current_catalogue(self) -> _Catalogue:
        with self._catalogue_lock:
            known = self._catalogue
            if known is not None and time.monotonic() - known.read_at < CATALOGUE_TTL:
                return known
            exam_types, alias_table = T["exam_type"], T["exam_code_alias"]
            with self._database.engine.connect() as connection:
                exams = catalogue(connection)
                aliases = {
                    row.code: row.exam_code
                    for row in connection.execute(
                        select(alias_table.c.code, exam_types.c.code.label("exam_code"))
                        .join(exam_types, exam_types.c.id == alias_table.c.exam_type_id)
                        .order_by(alias_table.c.facility_id.is_not(None))
                    )
                }
                ids = {
                    row.code: int(row.id)
                    for row in connection.execute(select(exam_types.c.code, exam_types.c.id))
                }
            self._catalogue = _Catalogue(
                exams=exams, aliases=aliases, ids=ids, read_at=time.monotonic()
            )
            return self._catalogue

    @staticmethod
    def _person(
        connection: Connection,
        patient_id: str,
        prefetch: Mapping[str, Any],
        subjects: Sequence[str],
    ) -> Person | None:
        if _looks_like_resident_id(patient_id):
            person = find_person(connection, resident_id=patient_id)
            if person is not None:
                return person
        person = find_person(connection, fhir_id=patient_id)
        if person is not None:
            return person
        resident = _resident_id(prefetch)
        return find_person(connection, resident_id=resident) if resident else None

    async def feedback(self, request: Request) -> Response:
        service_id = request.path_params["service_id"]
        caller = self._refused(request, f"{self._settings.base_url}/cds-services/{service_id}")
        if isinstance(caller, Response):
            return caller
        try:
            body = await self._json(request)
            items = body.get("feedback")
            if not isinstance(items, list) or not items:
                raise CdsRequestError("feedback must be a non-empty list")
            await anyio.to_thread.run_sync(self._record, items)
        except CdsRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return Response(status_code=200)

    def _record(self, items: Sequence[Any]) -> None:
        cards, decisions = T["recognition_card"], T["recognition_decision"]
        now = self._clock()
        with self._database.engine.begin() as connection:
            for number, item in enumerate(items):
                if not isinstance(item, dict):
                    raise CdsRequestError(f"feedback[{number}] is not an object")
                card = connection.execute(
                    select(cards).where(cards.c.card_uuid == str(item.get("card", "")))
                ).first()
                if card is None:
                    raise CdsRequestError(
                        f"feedback[{number}]: no card {item.get('card')!r} was issued"
                    )
                if not card.recognisable:
                    continue  # an information card asks for no decision
                if card.patient_id is None or card.facility_id is None:
                    raise CdsRequestError(
                        f"feedback[{number}]: the patient or the ordering facility of this card is "
                        "not known (send ServiceRequest.requester with its facility identifier)"
                    )
                outcome = item.get("outcome")
                reason: RefusalReason | None = None
                comment = ""
                if outcome == "accepted":
                    decided = RecognitionOutcome.accepted
                elif outcome == "overridden":
                    decided = RecognitionOutcome.refused
                    override = item.get("overrideReason") or {}
                    code = str((override.get("reason") or {}).get("code") or "")
                    try:
                        reason = RefusalReason(code)
                    except ValueError:
                        raise CdsRequestError(
                            f"feedback[{number}]: overrideReason.reason.code must be one of "
                            + ", ".join(r.value for r in RefusalReason)
                        ) from None
                    comment = str(override.get("userComment") or "")[:500]
                else:
                    raise CdsRequestError(f"feedback[{number}]: outcome is accepted or overridden")
                decided_at = _instant(item.get("outcomeTimestamp")) or now
                connection.execute(
                    insert(decisions).values(
                        patient_id=card.patient_id,
                        requested_exam_type_id=card.requested_exam_type_id,
                        prior_study_id=card.prior_study_id,
                        prior_report_id=card.prior_report_id,
                        facility_id=card.facility_id,
                        clinician_id=None,
                        clinician_ref=card.clinician_ref,
                        outcome=decided,
                        refusal_reason=reason,
                        comment=comment,
                        source=RecognitionSource.cds_hooks,
                        card_id=card.card_uuid,
                        new_order_id=None,
                        avoided_fee_fen=card.avoidable_fee_fen
                        if decided is RecognitionOutcome.accepted
                        else 0,
                        decided_at=decided_at,
                    )
                )

    async def rest_verdicts(self, request: Request) -> Response:
        caller = self._refused(request, f"{self._settings.base_url}/recognition/verdicts")
        if isinstance(caller, Response):
            return caller
        params = request.query_params
        exam_code = params.get("exam")
        if not exam_code or not (params.get("patient") or params.get("resident_id")):
            return JSONResponse(
                {"error": "give exam=<code> and patient=<FHIR id> or resident_id=<18 digits>"},
                status_code=400,
            )

        def run() -> dict[str, Any] | None:
            with self._database.engine.connect() as connection:
                exams = catalogue(connection)
                exam = resolve_exam(
                    exam_code, system=params.get("system"), catalogue=exams, aliases={}
                )
                if exam is None:
                    raise CdsRequestError(f"exam {exam_code!r} is not in the catalogue")
                person = find_person(
                    connection, fhir_id=params.get("patient"), resident_id=params.get("resident_id")
                )
                if person is None:
                    return None
                priors = priors_of(connection, person=person, exams=exams, zone=self._settings.zone)
            today = self._clock().astimezone(self._settings.zone).date()
            found = verdicts(priors, requested=exam, on=today, rules=self._rules)
            return {
                "exam": {"code": exam.code, "name": exam.name},
                "verdicts": [
                    {
                        "prior": v.prior.key,
                        "exam": v.prior.exam_code,
                        "facility": v.prior.facility,
                        "performed": v.prior.performed_on.isoformat(),
                        "source": v.prior.source or "local",
                        "report": v.prior.report_ref,
                        "conclusion": v.prior.conclusion,
                        "recognisable": v.recognisable,
                        "valid_until": v.valid_until.isoformat(),
                        "reasons": [
                            {"code": r.value, "zh": REASON_ZH[r], "en": REASON_EN[r]}
                            for r in v.reasons
                        ],
                    }
                    for v in found
                ],
            }

        try:
            answer = await anyio.to_thread.run_sync(run)
        except CdsRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if answer is None:
            return JSONResponse({"verdicts": []})
        return JSONResponse(answer)


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
