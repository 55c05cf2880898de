"""HL7 intake: from raw MLLP payloads to committed orders and patients, then the ACK.

Parsing and mapping run on the event loop (pure, fast); database work runs in
one writer thread that takes whatever messages are waiting and commits them
together, so concurrent senders share an fsync. No ACK leaves before the
commit that holds the raw message and its effects. A message that cannot be
applied is still stored (failed/rejected) for `huren hl7 replay`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hl7.ack import build_ack
from hl7.er7 import Message, parse_message
from hl7.errors import AckCode as HL7AckCode
from hl7.errors import ER7Error, HL7Error
from hl7.orders import (
    OrderEvent,
    OrderMessage,
    PatientDemographics,
    PatientMerge,
    PatientUpdate,
    map_message,
)
from integration.database import Database, unavailable
from integration.directory import Directory, FacilityRef
from integration.empi import Demographics, Identity, find_patient, merge_patients, resolve_patient
from integration.orders import OrderRequest, apply_order
from integration.settings import Settings
from models import metadata
from models.enums import InboundStatus, PatientClass
from models.errors import Conflict, HurenError, NotFound, ValidationError

log = logging.getLogger("huren.intake")
INBOUND = metadata.tables["inbound_message"]
_STORED_ACKS = select(INBOUND.c.sender, INBOUND.c.control_id, INBOUND.c.ack).where(
    INBOUND.c.sender.in_(bindparam("senders", expanding=True)),  # (sender, control_id) index
    INBOUND.c.control_id.in_(bindparam("control_ids", expanding=True)),
)
_INSERT_INBOUND = insert(INBOUND)
_SET_OUTCOME = (
    update(INBOUND)
    .where(INBOUND.c.id == bindparam("inbound_id"))
    .values(
        status=bindparam("new_status"),
        ack_code=bindparam("new_ack_code"),
        ack=bindparam("new_ack"),
        error=bindparam("new_error"),
    )
)
Mapped = OrderMessage | PatientUpdate | PatientMerge
AckCode = Literal["AA", "AE", "AR"]


@dataclass
class _Item:
    """One received payload on its way through the writer."""

    raw: bytes
    peer: str
    received_at: datetime
    message: Message | None = None
    mapped: Mapped | None = None
    error: HL7Error | None = None
    sender: str = ""
    control_id: str = ""
    future: asyncio.Future[bytes] | None = field(default=None, repr=False)


class SenderNotAllowed(HL7Error):
    """MSH-4 names a facility outside ``HUREN_MLLP_ALLOWED_SENDERS``: refused (AR), kept."""

    default_code: ClassVar[str] = "103"
    ack_code: ClassVar[HL7AckCode] = "AR"


class _Retry(Exception):
    """A message of the fast pass failed: run the batch again, carefully."""


@dataclass(frozen=True)
class ReplayResult:
    inbound_id: int
    control_id: str
    applied: bool
    error: str


def _sniff_sending_facility(raw: bytes) -> str:
    """MSH-4.1 read from the raw bytes, to pick the facility's charset before decoding."""
    head = raw.lstrip()[:512]
    if not head.startswith(b"MSH") or len(head) < 8:
        return ""
    separator = head[3:4]
    component = head[4:5]
    first = head.replace(b"\n", b"\r").split(b"\r", 1)[0]
    fields = first.split(separator)
    if len(fields) < 4:
        return ""
    return fields[3].split(component, 1)[0].decode("ascii", "replace").strip()


def _error_code(exc: Exception) -> str:
    code = getattr(exc, "hl7_error_code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(exc, NotFound):
        return "103"
    if isinstance(exc, ValidationError):
        return "102"
    return "207"


def _error_field(exc: Exception) -> str | None:
    return exc.field if isinstance(exc, HurenError) else None


def _demographics(patient: PatientDemographics) -> Demographics:
    return Demographics(
        identifiers=tuple(Identity(i.kind, i.authority, i.value) for i in patient.identifiers),
        name=patient.name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        phone=patient.phone,
        address=patient.address,
    )


def _request(event: OrderEvent, patient_class: PatientClass) -> OrderRequest:
    return OrderRequest(
        control=event.control,
        placer_number=event.placer_number,
        filler_number=event.filler_number,
        accession_number=event.accession_number,
        exam_code=event.exam_code,
        exam_coding_system=event.exam_coding_system,
        exam_alt_code=event.exam_alt_code,
        exam_alt_system=event.exam_alt_system,
        priority=event.priority,
        patient_class=patient_class,
        ordering_provider=event.ordering_provider,
        reason=event.reason,
        requested_at=event.requested_at,
        scheduled_at=event.scheduled_at,
        study_instance_uid=event.study_instance_uid,
        requested_procedure_id=event.requested_procedure_id,
        sps_id=event.sps_id,
        station_aet=event.station_aet,
        order_status=event.order_status,
    )


class Intake:
    """The MLLP handler: ``await intake.handle(raw, peer)`` returns the ACK bytes."""

    def __init__(
        self,
        *,
        database: Database,
        directory: Directory,
        settings: Settings,
        max_batch: int = 256,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._directory = directory
        self._settings = settings
        self._max_batch = max_batch
        self._clock = clock
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._linger = settings.hl7_group_commit_wait
        self._allowed_senders = settings.mllp_sender_allow_list  # empty: no list
        self.batches = 0
        self.batched = 0

    # ------------------------------------------------------------------ async side
    async def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="hl7-intake-writer")

    async def stop(self) -> None:
        """Finish every queued message, then stop the writer."""
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None

    async def handle(self, raw: bytes, peer: Any) -> bytes:
        item = self._prepare(raw, str(peer))
        item.future = asyncio.get_running_loop().create_future()
        await self._queue.put(item)
        return await item.future

    async def reject_frame(self, peer: Any, reason: str, _data: bytes) -> bytes | None:
        """A frame the MLLP layer refused (too large, junk): AR with the reason."""
        log.warning("rejected frame from %s: %s", peer, reason)
        return build_ack(
            None,
            code="AR",
            text=reason[:80],
            error_code="100",
            control_id=self._ack_id(),
            now=self._clock().astimezone(self._settings.zone),
        )

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            if self._queue.empty() and self._linger:
                await asyncio.sleep(self._linger)  # let concurrent senders join this commit
            while len(batch) < self._max_batch and not self._queue.empty():
                following = self._queue.get_nowait()
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            acks = await asyncio.to_thread(self._commit_batch, batch)
            self.batches += 1
            self.batched += len(batch)
            for item, ack in zip(batch, acks, strict=True):
                if item.future is not None and not item.future.done():
                    item.future.set_result(ack)

    # ------------------------------------------------------------------ preparation
    def _ack_id(self) -> str:
        return f"HUREN{uuid.uuid4().hex[:15].upper()}"

    def _prepare(self, raw: bytes, peer: str) -> _Item:
        item = _Item(raw=raw, peer=peer, received_at=self._clock())
        facility = self._directory.facility(_sniff_sending_facility(raw))
        charset = facility.hl7_charset if facility else self._settings.hl7_default_charset
        try:
            item.message = parse_message(raw, default_charset=charset)
        except ER7Error as exc:
            item.error = exc
            item.sender = f"peer:{peer.rsplit(':', 1)[0]}"[:128]
            item.control_id = "sha256:" + hashlib.sha256(raw).hexdigest()[:56]
            return item
        message = item.message
        item.sender = f"{message.sending_application}^{message.sending_facility}"[:128]
        item.control_id = message.control_id[:64]
        allowed = self._allowed_senders
        if allowed and message.sending_facility not in allowed:
            item.error = SenderNotAllowed(
                f"MSH-4: sending facility {message.sending_facility or '(empty)'} "
                "may not send to this hub",
                field="MSH-4",
            )
            return item
        try:
            item.mapped = map_message(message, zone=self._settings.zone)
        except HL7Error as exc:
            item.error = exc
        return item

    # ------------------------------------------------------------------ writer thread
    def _commit_batch(self, batch: list[_Item]) -> list[bytes]:
        """Apply a batch in one transaction.

        The first pass runs without savepoints; if any message fails, the whole
        transaction is rolled back and the batch runs again with a savepoint per
        message, so one bad message never takes its neighbours' effects along.
        """
        try:
            return self._run_batch(batch, careful=False)
        except _Retry:
            return self._run_batch(batch, careful=True)

    def _run_batch(self, batch: list[_Item], *, careful: bool) -> list[bytes]:
        try:
            with self._database.engine.begin() as connection:
                answered: dict[tuple[str, str], bytes] = {
                    (row.sender, row.control_id): bytes(row.ack)
                    for row in connection.execute(
                        _STORED_ACKS,
                        {
                            "senders": sorted({i.sender for i in batch}),
                            "control_ids": sorted({i.control_id for i in batch}),
                        },
                    )
                    if row.ack is not None
                }
                acks = []
                for item in batch:
                    key = (item.sender, item.control_id)
                    if key not in answered:  # a re-send gets the answer the first one got
                        answered[key] = self._apply(connection, item, careful=careful)
                    acks.append(answered[key])
                return acks
        except SQLAlchemyError as exc:
            if len(batch) > 1:
                log.warning("batch of %d failed (%s); retrying one by one", len(batch), exc)
                return [ack for item in batch for ack in self._run_batch([item], careful=True)]
            transient = unavailable(exc)  # locked or unreachable: it will pass
            log.error(
                "message %s from %s not stored: %s",
                batch[0].control_id,
                batch[0].sender,
                transient or exc,
            )
            return [
                self._ack(
                    batch[0],
                    "AE",
                    "hub storage unavailable; resend later"
                    if transient is not None
                    else "hub could not store the message; resend later",
                    location=None,
                    error_code="207",
                )
            ]

    def _ack(
        self, item: _Item, code: AckCode, text: str, *, location: str | None, error_code: str
    ) -> bytes:
        unread = item.error if isinstance(item.error, ER7Error) else None
        return build_ack(
            item.message,
            code=code,
            text=text[:200],
            error_location=location,
            error_code=error_code,
            control_id=self._ack_id(),
            now=self._clock().astimezone(self._settings.zone),
            original_control_id=unread.control_id if unread else "",
        )

    def _apply(self, connection: Connection, item: _Item, *, careful: bool) -> bytes:
        """Store and apply one new message inside the batch's transaction; return its ACK."""
        now = self._clock()
        if item.error is not None:
            code: AckCode = item.error.ack_code
            status = InboundStatus.rejected if code == "AR" else InboundStatus.failed
            ack = self._ack(
                item,
                code,
                str(item.error),
                location=_error_field(item.error),
                error_code=_error_code(item.error),
            )
            log.warning(
                "%s %s from %s (%s): %s", code, item.control_id, item.sender, item.peer, item.error
            )
            self._store(
                connection,
                item,
                status=status,
                ack_code=code,
                ack=ack,
                error=str(item.error),
                now=now,
            )
            return ack
        accepted = self._ack(item, "AA", "", location=None, error_code="0")
        inbound_id = self._store(
            connection,
            item,
            status=InboundStatus.accepted,
            ack_code="AA",
            ack=accepted,
            error="",
            now=now,
        )
        if not careful:
            try:
                self._effects(connection, item, inbound_id=inbound_id, now=now, careful=False)
            except (HurenError, IntegrityError) as exc:
                raise _Retry from exc
            return accepted
        try:
            with connection.begin_nested():
                self._effects(connection, item, inbound_id=inbound_id, now=now, careful=True)
        except (HurenError, IntegrityError) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, IntegrityError) else str(exc)
            ack = self._ack(
                item, "AE", reason, location=_error_field(exc), error_code=_error_code(exc)
            )
            log.warning("AE %s from %s: %s", item.control_id, item.sender, reason)
            connection.execute(
                _SET_OUTCOME,
                {
                    "inbound_id": inbound_id,
                    "new_status": InboundStatus.failed,
                    "new_ack_code": "AE",
                    "new_ack": ack,
                    "new_error": reason,
                },
            )
            return ack
        return accepted

    def _store(
        self,
        connection: Connection,
        item: _Item,
        *,
        status: InboundStatus,
        ack_code: str,
        ack: bytes | None,
        error: str,
        now: datetime,
    ) -> int:
        message = item.message
        result = connection.execute(
            _INSERT_INBOUND,
            {
                "sender": item.sender,
                "control_id": item.control_id,
                "message_type": (message.message_type if message else "")[:16],
                "peer": item.peer[:64],
                "charset": (message.charset if message else "")[:32],
                "raw": item.raw,
                "status": status,
                "ack_code": ack_code,
                "ack": ack,
                "error": error,
                "attempts": 1,
                "received_at": item.received_at,
                "processed_at": now,
            },
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def _effects(
        self,
        connection: Connection,
        item: _Item,
        *,
        inbound_id: int,
        now: datetime,
        careful: bool,
    ) -> None:
        message, mapped = item.message, item.mapped
        assert message is not None and mapped is not None
        sender = self._directory.facility(message.sending_facility)
        if sender is None:
            raise NotFound(
                f"MSH-4: sending facility {message.sending_facility or '(empty)'} "
                "is not configured at the hub",
                field="MSH-4",
            )
        apply_mapped(
            connection,
            mapped=mapped,
            sender=sender,
            directory=self._directory,
            settings=self._settings,
            now=now,
            inbound_id=inbound_id,
            careful=careful,
        )

    # ------------------------------------------------------------------ replay
    def replay(self, *, ids: list[int] | None = None) -> list[ReplayResult]:
        """Apply stored failed/rejected messages again (after the cause was fixed)."""
        results: list[ReplayResult] = []
        query = select(INBOUND.c.id).where(
            INBOUND.c.status.in_([InboundStatus.failed, InboundStatus.rejected])
        )
        if ids:
            query = select(INBOUND.c.id).where(INBOUND.c.id.in_(ids))
        with self._database.engine.connect() as connection:
            todo = [row.id for row in connection.execute(query.order_by(INBOUND.c.id))]
        for inbound_id in todo:
            results.append(self._replay_one(inbound_id))
        return results

    def _replay_one(self, inbound_id: int) -> ReplayResult:
        with self._database.engine.begin() as connection:
            row = connection.execute(select(INBOUND).where(INBOUND.c.id == inbound_id)).one()
            if row.status in (InboundStatus.accepted, InboundStatus.replayed):
                return ReplayResult(inbound_id, row.control_id, False, "already applied")
            item = self._prepare(bytes(row.raw), row.peer)
            now = self._clock()
            error = ""
            if item.error is not None:
                error = str(item.error)
            else:
                try:
                    with connection.begin_nested():
                        self._effects(
                            connection, item, inbound_id=inbound_id, now=now, careful=True
                        )
                except (HurenError, IntegrityError) as exc:
                    error = str(exc).splitlines()[0]
            values: dict[str, Any] = {"attempts": row.attempts + 1, "processed_at": now}
            if error:
                values["error"] = error
            else:
                values.update(status=InboundStatus.replayed, error="")
            connection.execute(update(INBOUND).where(INBOUND.c.id == inbound_id).values(**values))
            return ReplayResult(inbound_id, row.control_id, not error, error)


def apply_mapped(
    connection: Connection,
    *,
    mapped: Mapped,
    sender: FacilityRef,
    directory: Directory,
    settings: Settings,
    now: datetime,
    inbound_id: int | None,
    careful: bool = True,
) -> None:
    """The effects of one mapped HL7 message, inside the caller's transaction.

    ``careful`` False skips look-ups that a unique constraint also enforces
    (the fast pass; a violation there makes the caller re-run carefully).
    """
    overwrite = not isinstance(mapped, OrderMessage)
    resolution = resolve_patient(
        connection,
        demographics=_demographics(mapped.patient),
        default_authority=sender.code,
        now=now,
        link_threshold=settings.empi_link_threshold,
        review_threshold=settings.empi_review_threshold,
        overwrite=overwrite,
    )
    if isinstance(mapped, OrderMessage):
        ordering = directory.facility(mapped.ordering_facility) or sender
        for event in mapped.orders:
            apply_order(
                connection,
                request=_request(event, mapped.patient.patient_class),
                patient_id=resolution.patient_id,
                sender=sender,
                ordering=ordering,
                directory=directory,
                now=now,
                source_message_id=inbound_id,
                check_unique=careful,
            )
    elif isinstance(mapped, PatientMerge):
        prior = find_patient(
            connection,
            [Identity(i.kind, i.authority, i.value) for i in mapped.prior_identifiers],
            default_authority=sender.code,
        )
        if prior is None:
            raise NotFound("MRG-1: no patient with the prior identifiers", field="MRG-1")
        if prior == resolution.patient_id and resolution.created:
            raise Conflict("MRG-1: prior and surviving patient are the same record", field="MRG-1")
        merge_patients(connection, survivor_id=resolution.patient_id, prior_id=prior, now=now)
