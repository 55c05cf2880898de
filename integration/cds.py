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

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, insert, select
from starlette.requests import Request
from starlette.responses import JSONResponse as _AsciiJSONResponse
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fhir.identifiers import FACILITY_SYSTEM, RESIDENT_ID_SYSTEM, SID
from fhir.search import reference_id
from integration.cds_auth import CdsAuthenticator, CdsCaller
from integration.database import (
    Database,
    execute_rows,
    fetch_rows,
    instant_value,
    read_snapshot,
)
from integration.group_commit import GroupCommit
from integration.priors import Person, catalogue, find_person, priors_of
from integration.recognition import (
    REASON_EN,
    REASON_ZH,
    ExamSpec,
    Rules,
    Verdict,
    resolve_exam,
    stands_for,
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
    related: dict[str, frozenset[str]]  # exam code -> the codes whose priors can stand for it
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


_USER_FACILITY = "SELECT facility_id FROM app_user WHERE id = ?"
_FACILITY_BY_CODE = "SELECT id FROM facility WHERE code = ?"


def _facility(connection: Connection, context: Mapping[str, Any]) -> int | None:
    """Where the clinician orders: a local Practitioner(Role) user, or the orders' requester."""
    user = reference_id(str(context.get("userId") or ""), "Practitioner") or reference_id(
        str(context.get("userId") or ""), "PractitionerRole"
    )
    if user and user.isascii() and user.isdigit() and len(user) < 19:
        found = fetch_rows(connection, _USER_FACILITY, (int(user),))
        if found and found[0][0] is not None:
            return int(found[0][0])
    for entry in _array(_object(context.get("draftOrders")).get("entry")):
        requester = _object(_object(_object(entry).get("resource")).get("requester"))
        identifier = _object(requester.get("identifier"))
        if identifier.get("system") == FACILITY_SYSTEM and identifier.get("value"):
            facility_id = _facility_by_code(connection, str(identifier["value"]))
            if facility_id is not None:
                return facility_id
    return None


def name_uuid(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` without the UUID objects.

    Card ids are derived, not random: the same hook instance asking again gets the
    same card. Two per card on every call, so the cheaper form.
    """
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


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


_CARD_COLUMNS = (
    "card_uuid",
    "hook_instance",
    "service",
    "patient_id",
    "requested_exam_type_id",
    "prior_key",
    "prior_study_id",
    "prior_report_id",
    "prior_source",
    "recognisable",
    "facility_id",
    "clinician_ref",
    "draft_order_ref",
    "avoidable_fee_fen",
    "issued_at",
)
_KEEP_CARDS = (
    f"INSERT INTO recognition_card ({', '.join(_CARD_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_CARD_COLUMNS))}) ON CONFLICT (card_uuid) DO NOTHING"
)


def keep_cards(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Keep the cards shown; the same hook instance asking again keeps the first copy.

    Plain SQL on the DBAPI connection: it runs in the writer thread, and every
    microsecond it holds the GIL is taken from the event loop answering calls.
    """
    execute_rows(
        connection,
        _KEEP_CARDS,
        [
            tuple(
                instant_value(connection, row[column]) if column == "issued_at" else row[column]
                for column in _CARD_COLUMNS
            )
            for row in rows
        ],
    )


def _facility_by_code(connection: Connection, code: str) -> int | None:
    found = fetch_rows(connection, _FACILITY_BY_CODE, (code,))
    return None if not found else int(found[0][0])


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
                "uuid": name_uuid(bytes.fromhex(card_uuid.replace("-", "")), "remove"),
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
        self._zone = settings.zone  # a ZoneInfo lookup per property read otherwise
        self._rules = rules or Rules()
        self._authenticator = authenticator or CdsAuthenticator({})
        self._clock = clock
        self._catalogue: _Catalogue | None = None
        self._catalogue_lock = threading.Lock()
        # SQLite answers the lookup from its page cache in less time than a hop to a worker
        # thread costs, so it runs on the event loop; PostgreSQL is a network round trip
        # away, so there it runs in a worker thread, two at a time.
        self._inline = database.engine.dialect.name == "sqlite"
        self._workers = anyio.CapacityLimiter(2)
        self._reader: Connection | None = None  # the event loop's own, while started
        # Cards are committed before the answer leaves, so their feedback always finds
        # them; calls arriving together share one commit.
        self._keeper: GroupCommit[dict[str, Any]] = GroupCommit(
            database=database, write=keep_cards, name="cds-cards"
        )

    def start(self) -> None:
        """Start the writer that keeps the cards (``huren serve`` does, before serving)."""
        self._keeper.start()
        if self._inline and self._reader is None:
            self._reader = self._database.engine.connect()

    def stop(self) -> None:
        self._keeper.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """Where a call reads: on SQLite the event loop's own connection (no pool round),
        else one from the pool."""
        if self._reader is None:
            with self._database.snapshot() as connection:
                yield connection
            return
        with read_snapshot(self._reader):
            yield self._reader

    def routes(self) -> list[BaseRoute]:
        """``/cds-services`` and ``/recognition/verdicts``, as routes of the hub's own app:
        a hook call is the hot path, and a mounted app would add its own middleware and
        routing to every call."""
        return [
            Route("/cds-services", self.discover, methods=["GET"]),
            Route("/cds-services/{service_id}", self.call, methods=["POST"]),
            Route("/cds-services/{service_id}/feedback", self.feedback, methods=["POST"]),
            Route("/recognition/verdicts", self.rest_verdicts, methods=["GET"]),
        ]

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
            ask = (service_id, hook, instance, context, body.get("prefetch") or {}, caller)
            if self._inline:
                cards, kept = self._cards(*ask)
            else:
                cards, kept = await anyio.to_thread.run_sync(
                    self._cards, *ask, limiter=self._workers
                )
        except CdsRequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if kept:
            await self._keeper.store(kept)
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
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The cards to answer, and the rows that keep them."""
        now = self._clock()
        today = now.astimezone(self._zone).date()
        base = self._settings.base_url
        known = self._current_catalogue()
        drafts, subjects = _drafts(context, hook, known.exams, known.aliases)
        if not drafts:
            return [], []
        with self._snapshot() as connection:
            person = self._person(connection, str(context["patientId"]), prefetch, subjects)
            if person is None:
                return [], []
            priors = priors_of(
                connection,
                person=person,
                exams=known.exams,
                zone=self._zone,
                kinds=frozenset().union(*(known.related[draft.exam.code] for draft in drafts)),
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
            card_uuid = name_uuid(
                uuid.NAMESPACE_URL.bytes, f"{instance}/{draft.reference}/{best.prior.key}"
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
        return cards, kept

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
                types = connection.execute(
                    select(
                        exam_types.c.code,
                        exam_types.c.id,
                        exam_types.c.modality,
                        exam_types.c.body_part,
                    )
                ).all()
            related = {
                exam.code: frozenset(
                    row.code
                    for row in types
                    if stands_for(
                        row.code,
                        str(row.modality),
                        row.body_part,
                        requested=exam,
                        rules=self._rules,
                    )
                )
                for exam in exams
            }
            self._catalogue = _Catalogue(
                exams=exams,
                aliases=aliases,
                ids={row.code: int(row.id) for row in types},
                related=related,
                read_at=time.monotonic(),
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
            exams = self._current_catalogue().exams
            with self._database.snapshot() as connection:
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
                priors = priors_of(connection, person=person, exams=exams, zone=self._zone)
            today = self._clock().astimezone(self._zone).date()
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
