"""The hub's DICOM application entity (pynetdicom), kept thin.

It accepts Verification, Storage (every storage SOP class, compressed
transfer syntaxes accepted and kept as sent), Modality Worklist FIND and
Study Root Q/R FIND, MOVE and GET. What to store and what to answer is the
caller's: a :class:`StorageHandler`, a :class:`WorklistProvider`, a
:class:`StudyQueryProvider` and a :class:`CallerPolicy` are passed in. All
of them are called from pynetdicom's association threads.

Every association socket gets ``TCP_NODELAY`` (without it each C-STORE
response waits on Nagle's algorithm: 11 instead of ~950 instances/s for
dcmtk). Callers the policy does not know are rejected at association with
"calling AE title not recognised". A received payload reaches the storage
handler as a :class:`ReceivedInstance`, checked (see
:func:`dicom.instance.read_instance`) when the handler reads its facts or
data set, so a corrupt or non-DICOM data set gets a failure status and
nothing is stored.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from io import BytesIO
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import pynetdicom
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    DEFAULT_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    StoragePresentationContexts,
    build_context,
    evt,
)
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated at import
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import AssociationSocket, ThreadedAssociationServer
from pynetdicom.utils import make_target

from dicom.errors import (
    CANNOT_UNDERSTAND,
    DATASET_MISMATCH,
    IDENTIFIER_MISMATCH,
    UNABLE_TO_PROCESS,
    DicomError,
    InvalidInstance,
)
from dicom.instance import InstanceFacts, read_facts, read_instance, required_uids
from dicom.query import StudyQuery, parse_study_query
from dicom.store import part10_prefix
from dicom.worklist import WorklistQuery, parse_worklist_query

__all__ = [
    "CallerPolicy",
    "DicomServer",
    "ReceivedInstance",
    "StorageHandler",
    "StudyQueryProvider",
    "WorklistProvider",
    "storage_classes",
    "storage_transfer_syntaxes",
    "supported_contexts",
]

log = logging.getLogger("huren.dicom")
_library_log = logging.getLogger("pynetdicom.association")
_dul_log = logging.getLogger("pynetdicom.dul")

SUCCESS = 0x0000
PENDING = 0xFF00
CANCELLED = 0xFE00
PROCESSING_FAILURE = 0xC211  # storage: failed, unable to process (handler broke)
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_LIMIT = 65535
MAX_REQUESTED_CONTEXTS = 128

_UNCOMPRESSED = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian (preferred, like dcmtk's storescp)
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old kit)
)
_LOSSLESS = (
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.5",  # RLE lossless
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.92",  # JPEG 2000 part 2 lossless
    "1.2.840.10008.1.2.4.110",  # JPEG XL lossless
    "1.2.840.10008.1.2.8.1",  # Deflated image frame compression
)
# Pixel data held elsewhere (JPIP) or streamed video (SMPTE ST 2110) cannot be archived.
_NOT_ARCHIVABLE = (
    "1.2.840.10008.1.2.4.94",
    "1.2.840.10008.1.2.4.95",
    "1.2.840.10008.1.2.4.204",
    "1.2.840.10008.1.2.4.205",
)


def storage_transfer_syntaxes() -> list[str]:
    """Accepted for storage: uncompressed, lossless, then the rest (JPIP and SMPTE excluded).

    This order is only the fallback: each association re-orders a storage
    context's syntaxes as the requestor listed them (see
    :meth:`DicomServer._negotiable`), so a sender gets the syntax it put
    first and compressed images are kept as sent.
    """
    rest = [
        uid
        for uid in ALL_TRANSFER_SYNTAXES
        if uid not in _UNCOMPRESSED
        and uid not in _LOSSLESS
        and uid not in _NOT_ARCHIVABLE
        and not uid.startswith("1.2.840.10008.1.2.7.")
    ]
    return [*_UNCOMPRESSED, *_LOSSLESS, *rest]


class _SharedContexts(list[PresentationContext]):
    """Supported contexts that pynetdicom shares between associations instead of copying.

    pynetdicom deep-copies the server's contexts for every association
    (about 45 ms for ~170 storage SOP classes with all transfer syntaxes);
    negotiation only reads them, so each association gets a shallow copy.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        return list(self)


def storage_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows, retired ones included.

    ``AllStoragePresentationContexts`` omits retired classes that
    ``StoragePresentationContexts`` keeps, such as the retired Ultrasound and
    Nuclear Medicine Image Storage that older clinic ultrasound machines still send.
    """
    classes = [str(c.abstract_syntax) for c in AllStoragePresentationContexts]
    classes += [str(c.abstract_syntax) for c in StoragePresentationContexts]
    return list(dict.fromkeys(classes))


def supported_contexts(*, worklist: bool, query: bool) -> list[PresentationContext]:
    """The presentation contexts the hub accepts as association acceptor."""
    contexts: list[PresentationContext] = [build_context(Verification, DEFAULT_TRANSFER_SYNTAXES)]
    syntaxes = storage_transfer_syntaxes()
    for storage in storage_classes():
        context = build_context(storage, syntaxes)
        # Accept either role, so a C-GET requestor can take the SCP role for storage.
        context.scu_role = True
        context.scp_role = True
        contexts.append(context)
    if worklist:
        contexts.append(build_context(ModalityWorklistInformationFind, DEFAULT_TRANSFER_SYNTAXES))
    if query:
        for model in (
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
            StudyRootQueryRetrieveInformationModelGet,
        ):
            contexts.append(build_context(model, DEFAULT_TRANSFER_SYNTAXES))
    return contexts


class ReceivedInstance:
    """A C-STORE data set as received, decoded and checked when the handler asks.

    The server hands it over undecoded: a handler that needs only the index
    facts reads them with :meth:`facts`, far cheaper than a pydicom data set.
    Both raise :class:`InvalidInstance` for bytes that are not a well-formed
    instance or not the one the request announced, so a handler must call one
    of them before it keeps anything.
    """

    __slots__ = ("_dataset", "_sop_class_uid", "_sop_instance_uid", "encoded")

    def __init__(self, encoded: bytes, *, sop_class_uid: str, sop_instance_uid: str) -> None:
        self.encoded = encoded  # Part-10 bytes: preamble, file meta, data set as sent
        self._sop_class_uid = sop_class_uid
        self._sop_instance_uid = sop_instance_uid
        self._dataset: Dataset | None = None

    def facts(self, *, zone: ZoneInfo) -> InstanceFacts:
        """What the index needs, read straight from the bytes (no pydicom data set built).

        Checks the bytes as ``dataset`` does, and raises the same way.
        """
        facts = read_facts(self.encoded, zone=zone)
        _check_matches("SOPClassUID", facts.sop_class_uid, self._sop_class_uid)
        _check_matches("SOPInstanceUID", facts.sop_instance_uid, self._sop_instance_uid)
        return facts

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            dataset = read_instance(self.encoded)
            _check_announced(
                dataset, sop_class_uid=self._sop_class_uid, sop_instance_uid=self._sop_instance_uid
            )
            self._dataset = dataset
        return self._dataset


def _check_announced(dataset: Dataset, *, sop_class_uid: str, sop_instance_uid: str) -> None:
    """UIDs present and valid, and the instance the C-STORE request announced (as dcmtk)."""
    _, _, sop_instance, sop_class = required_uids(dataset)
    _check_matches("SOPClassUID", sop_class, sop_class_uid)
    _check_matches("SOPInstanceUID", sop_instance, sop_instance_uid)


def _check_matches(keyword: str, value: str, announced: str) -> None:
    if announced and value != announced:
        raise InvalidInstance(
            f"{keyword} {value} differs from the request's {announced}",
            field=keyword,
            status=DATASET_MISMATCH,
        )


class StorageHandler(Protocol):
    """Archives one received instance; called from pynetdicom's threads."""

    def store(self, instance: ReceivedInstance, *, calling_aet: str, peer: str) -> int:
        """Store ``instance.encoded`` (the Part-10 bytes as received); return a DICOM status.

        Read ``instance.facts()`` or ``instance.dataset`` before keeping
        anything: they decode and check the bytes, raising
        :class:`InvalidInstance` (which the server turns into its status) when
        they are not what was announced.

        0x0000 success, or a failure such as 0xA700 (out of resources),
        0xA900 (data set does not match SOP class), 0xC210 (cannot
        understand). Should raise nothing; the server answers 0xC211 if it does.
        """
        ...


class WorklistProvider(Protocol):
    def find(
        self, query: WorklistQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterable[Dataset]:
        """The responses (built with :func:`dicom.worklist.worklist_response`)."""
        ...


class StudyQueryProvider(Protocol):
    def find(
        self, query: StudyQuery, identifier: Dataset, *, calling_aet: str
    ) -> Iterable[Dataset]:
        """The responses (built with :mod:`dicom.query`'s response functions)."""
        ...

    def instances(self, query: StudyQuery) -> Iterable[str]:
        """Store-relative paths of the instances a C-MOVE/C-GET selects."""
        ...

    def open(self, path: str) -> Dataset:
        """The stored data set (with ``file_meta``) to send on."""
        ...


class CallerPolicy(Protocol):
    def allowed(self, calling_aet: str, peer: str) -> bool:
        """Whether this calling AE title from this IP address may associate."""
        ...

    def move_destination(self, aet: str) -> tuple[str, int] | None:
        """Host and port of a known AE title, for C-MOVE; None when unknown."""
        ...


# The reactor loops below are pynetdicom 3.0.4's; other versions keep their own.
PROMPT_REACTOR = pynetdicom.__version__ == "3.0.4"
# The longest the reactors below wait when nothing wakes them: they only look at timers
# and teardown flags then. pynetdicom's 1 ms costs about a quarter of a core at four
# associations (measured: 4.6 -> 3.7 ms of CPU per instance).
_NAP = 0.01


class _PromptDUL(DULServiceProvider):
    """A DUL whose idle wait wakes as soon as there is something to do.

    pynetdicom's DUL thread sleeps 1 ms whenever it finds nothing to do, so
    a C-STORE request waits for the next look at the socket and its response
    for the next look at the send queue. This one waits in ``select`` on the
    socket and on a wake-up socket that ``send_pdu`` pokes, with the same 1 ms
    as the longest nap so the timers are checked as often as before. Apart
    from the nap the loop is pynetdicom 3.0.4's own.
    """

    _waker: socket.socket | None = None
    _alarm: socket.socket | None = None

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        alarm = self._alarm
        if alarm is not None:
            with contextlib.suppress(OSError):  # closed as the reactor ended, or poked enough
                alarm.send(b"\0")

    def _nap(self) -> None:
        waker = self._waker
        if waker is None:
            time.sleep(self._run_loop_delay)
            return
        watched: list[Any] = [waker]
        transport = self.socket
        if transport is not None and transport.socket is not None:
            raw = transport.socket
            if isinstance(raw, ssl.SSLSocket) and raw.pending():
                return  # decrypted bytes wait in the TLS buffer: select would not see them
            watched.append(raw)
        try:
            ready, _, _ = select.select(watched, [], [], _NAP)
        except (OSError, ValueError):
            return  # the socket closed under us: the loop notices on its next look
        if waker in ready:
            with contextlib.suppress(BlockingIOError):
                waker.recv(4096)

    def run_reactor(self) -> None:
        self._waker, self._alarm = socket.socketpair()
        self._waker.setblocking(False)
        self._alarm.setblocking(False)
        try:
            self._run_prompt_reactor()
        finally:
            alarm, self._alarm = self._alarm, None
            alarm.close()
            waker, self._waker = self._waker, None
            waker.close()

    def _run_prompt_reactor(self) -> None:
        self._idle_timer.start()
        transport = cast(AssociationSocket, self.socket)
        sleep = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                sleep = True
            if sleep:
                self._nap()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                _dul_log.error("Exception in DUL.run(), aborting association")
                _dul_log.exception(exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                transport.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                sleep = True
                continue
            self.state_machine.do_action(event)
            sleep = False


class _PromptAssociation(Association):
    """An acceptor association whose reactor wakes on each DIMSE message.

    pynetdicom's reactor sleeps 1 ms between looks at its message queue; on
    one association that costs about 1 ms per C-STORE (measured here: 317 ->
    455 instances/s for a do-nothing handler, with the prompt DUL above
    ~520). This reactor waits on the queue itself, keeping the 1 ms cadence
    for its other checks. Apart from that the loop is pynetdicom 3.0.4's own.
    """

    def _run_reactor(self) -> None:
        self._is_paused = False
        messages = self.dimse.msg_queue
        while not self._kill:
            with messages.not_empty:
                if not messages.queue:
                    messages.not_empty.wait(_NAP)
            # Will block while a send_*() method or release() holds the reactor
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                _library_log.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                _library_log.info("Association Aborted")
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                _library_log.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


_HANDSHAKE_TIMEOUT = 30.0  # seconds a TLS caller has to finish its handshake


class _TlsAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the TLS handshake moved off the accepting thread.

    pynetdicom wraps each accepted socket and shakes hands right in its one
    accept loop, with no time limit: a caller that connects and sends
    nothing would stop every other modality from connecting. Here the
    socket is wrapped without a handshake, and the association's own thread
    does it with a deadline; a failed handshake (a plain-TCP caller, a
    missing or untrusted client certificate) is logged and the socket closed.
    """

    handshake_timeout = _HANDSHAKE_TIMEOUT

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        listening = cast(socket.socket, self.socket)
        client, address = listening.accept()
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        if isinstance(request, ssl.SSLSocket):
            before = request.gettimeout()
            try:
                request.settimeout(self.handshake_timeout)
                request.do_handshake()
                request.settimeout(before)
            except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
                log.warning(
                    "DICOM connection from %s refused: TLS handshake failed: %s",
                    _address(client_address),
                    exc,
                )
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


def _address(client_address: tuple[str, int] | str) -> str:
    if isinstance(client_address, tuple):
        return f"{client_address[0]}:{client_address[1]}"
    return str(client_address)


def _set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN: switch off Nagle on the association's socket."""
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _on_connect(event: evt.Event) -> None:
    """EVT_CONN_OPEN on the server, before the association's thread starts."""
    _set_nodelay(event)
    assoc = event.assoc
    if PROMPT_REACTOR and type(assoc) is Association and assoc.is_acceptor:
        assoc.__class__ = _PromptAssociation
        dul = assoc.dul
        if type(dul) is DULServiceProvider:
            dul.__class__ = _PromptDUL
            # Thread bound its target to the old class's method when the DUL was built.
            dul._target = make_target(dul.run_reactor)  # type: ignore[attr-defined]


def _received_bytes(
    event: evt.Event, request: C_STORE, calling: str, sop_class_uid: str, sop_instance_uid: str
) -> bytes:
    """The C-STORE data set as sent, as a Part-10 byte string (meta encoded directly)."""
    data = request.DataSet
    if isinstance(data, BytesIO):
        return (
            part10_prefix(
                sop_class_uid,
                sop_instance_uid,
                str(event.context.transfer_syntax),
                source_aet=calling,
            )
            + data.getvalue()
        )
    # pynetdicom configured to spool data sets to disk (STORE_RECV_CHUNKED_DATASET)
    return bytes(event.encoded_dataset(include_meta=True))


def _quiet(server: Any) -> None:
    """Unbind pynetdicom's per-message logging handlers unless its INFO logging is on.

    They format several lines for every PDU and DIMSE message even when the
    logger discards them: measurable at hundreds of instances a second.
    """
    if logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        return
    for event, handler in (
        (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
        (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
        (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
        (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
    ):
        server.unbind(event, handler)


def _peer(event: evt.Event) -> str:
    return str(event.assoc.requestor.address)


def _calling(event: evt.Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


class DicomServer:
    """The hub's AE: call :meth:`start` (non-blocking) and :meth:`stop`.

    With ``port=0`` the chosen port is in :attr:`port` after :meth:`start`.
    ``max_pdu`` is the largest PDU accepted (0: no limit). ``zone`` is the
    local time zone in which modalities write worklist dates and times.
    """

    def __init__(
        self,
        *,
        ae_title: str,
        host: str,
        port: int,
        storage: StorageHandler,
        worklist: WorklistProvider | None,
        query: StudyQueryProvider | None,
        callers: CallerPolicy,
        max_pdu: int = 0,
        acse_timeout: float = 30,
        dimse_timeout: float = 60,
        network_timeout: float = 60,
        max_associations: int = 64,
        zone: ZoneInfo | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.zone = zone or ZoneInfo("Asia/Shanghai")
        self._storage = storage
        self._worklist = worklist
        self._query = query
        self._callers = callers
        self._max_pdu = max_pdu
        self._timeouts = (acse_timeout, dimse_timeout, network_timeout)
        self._max_associations = max_associations
        self._ssl = ssl_context
        self._ae: Any = None
        self._server: Any = None
        self._lock = threading.Lock()
        self._contexts = _SharedContexts(
            supported_contexts(worklist=worklist is not None, query=query is not None)
        )
        self._storage_classes = frozenset(storage_classes())
        self._storage_syntaxes = frozenset(storage_transfer_syntaxes())

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve in pynetdicom's threads; returns at once."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("DicomServer is already running")
            library_log = logging.getLogger("pynetdicom")
            if library_log.level == logging.NOTSET:
                # pynetdicom logs every request and identifier (patient names) at INFO.
                library_log.setLevel(logging.WARNING)
            ae = AE(ae_title=self.ae_title)
            ae.maximum_pdu_size = self._max_pdu
            ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = self._timeouts
            ae.maximum_associations = self._max_associations
            contexts = self._contexts
            handlers: list[Any] = [
                (evt.EVT_CONN_OPEN, _on_connect),
                (evt.EVT_REQUESTED, self._on_requested),
                (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_C_FIND, self._on_find),
                (evt.EVT_C_MOVE, self._on_move),
                (evt.EVT_C_GET, self._on_get),
            ]
            self._server = self._listen(ae, handlers, contexts)
            _quiet(self._server)
            self._ae = ae
            self.port = int(self._server.server_address[1])
        log.info(
            "DICOM AE %s listening on %s:%d%s",
            self.ae_title,
            self.host,
            self.port,
            " with TLS" if self._ssl is not None else "",
        )

    def _listen(self, ae: Any, handlers: list[Any], contexts: Any) -> Any:
        """``ae.start_server(block=False)``, or with TLS the same steps on our server class."""
        if self._ssl is None:
            return ae.start_server(
                (self.host, self.port), block=False, evt_handlers=handlers, contexts=contexts
            )
        server = ae.make_server(
            (self.host, self.port),
            contexts=contexts,
            ssl_context=self._ssl,
            evt_handlers=handlers,
            server_class=_TlsAssociationServer,
        )
        thread = threading.Thread(
            target=make_target(server.serve_forever), name="DicomTlsAcceptor", daemon=True
        )
        thread.start()
        ae._servers.append(server)  # as start_server does, so ae.shutdown() stops it too
        return server

    def stop(self, *, grace: float = 30.0) -> None:
        """Stop accepting; let in-flight associations finish for ``grace`` s, then abort them."""
        with self._lock:
            server, ae = self._server, self._ae
            self._server = self._ae = None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + grace
        while ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for association in ae.active_associations:
            log.warning("DICOM stop: aborting an association still open after %.0f s", grace)
            association.abort()
        log.info("DICOM AE %s on %s:%d stopped", self.ae_title, self.host, self.port)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def active_associations(self) -> int:
        ae = self._ae
        return len(ae.active_associations) if ae is not None else 0

    def __enter__(self) -> DicomServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- association ----------------------------------------------------------------------------

    def _on_requested(self, event: evt.Event) -> None:
        """EVT_REQUESTED: reject unknown callers (permanent, service user, calling AE 0x03)."""
        assoc = event.assoc
        calling, peer = "?", "?"
        proposed: list[PresentationContext] = []
        try:
            primitive = assoc.requestor.primitive
            if primitive is None:
                raise RuntimeError("no A-ASSOCIATE request to check")
            calling = str(primitive.calling_ae_title).strip()
            peer = _peer(event)
            proposed = list(primitive.presentation_context_definition_list)
            allowed = bool(self._callers.allowed(calling, peer))
        except Exception:
            log.exception("caller policy failed for %r from %s: rejecting", calling, peer)
            allowed = False
        if allowed:
            try:
                assoc.acceptor.supported_contexts = self._negotiable(proposed)
            except Exception:
                log.exception("could not order contexts for %r: using the defaults", calling)
            return
        log.warning("DICOM association from %r at %s rejected: unknown caller", calling, peer)
        assoc.acse.send_reject(0x01, 0x01, 0x03)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _negotiable(self, proposed: list[PresentationContext]) -> list[PresentationContext]:
        """This association's supported contexts: storage syntaxes in the requestor's order.

        pynetdicom accepts, for each proposed context, the first of the
        acceptor's syntaxes that the requestor offers. Ordering them as the
        requestor did means a sender offering ``[JPEG 2000, Explicit LE]``
        for a JPEG 2000 file sends it as is, and one offering
        ``[Explicit LE, JPEG 2000]`` for an uncompressed file is not made to compress.
        """
        orders: dict[str, list[str]] = {}
        for context in proposed:
            abstract = str(context.abstract_syntax)
            if abstract not in self._storage_classes:
                continue
            order = orders.setdefault(abstract, [])
            for syntax in context.transfer_syntax:
                text = str(syntax)
                if text in self._storage_syntaxes and text not in order:
                    order.append(text)
        negotiable: list[PresentationContext] = []
        for context in self._contexts:
            order = orders.get(str(context.abstract_syntax)) or []
            if not order:
                negotiable.append(context)
                continue
            tailored = build_context(str(context.abstract_syntax), order)
            tailored.scu_role, tailored.scp_role = context.scu_role, context.scp_role
            negotiable.append(tailored)
        return negotiable

    # --- C-STORE --------------------------------------------------------------------------------

    def _on_store(self, event: evt.Event) -> int:
        calling, peer = _calling(event), _peer(event)
        request = cast(C_STORE, event.request)
        sop_class_uid = str(request.AffectedSOPClassUID or "").rstrip("\0 ")
        sop_instance_uid = str(request.AffectedSOPInstanceUID or "").rstrip("\0 ")
        try:
            encoded = _received_bytes(event, request, calling, sop_class_uid, sop_instance_uid)
        except Exception:
            log.exception("C-STORE from %s at %s could not be read", calling, peer)
            return CANNOT_UNDERSTAND
        instance = ReceivedInstance(
            encoded, sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid
        )
        try:
            return int(self._storage.store(instance, calling_aet=calling, peer=peer))
        except InvalidInstance as exc:
            log.warning(
                "C-STORE of %s from %s at %s refused (0x%04X): %s",
                sop_instance_uid,
                calling,
                peer,
                exc.status,
                exc,
            )
            return exc.status
        except DicomError as exc:
            return exc.status
        except Exception:
            log.exception("storage handler failed on a C-STORE from %s at %s", calling, peer)
            return PROCESSING_FAILURE

    # --- C-FIND ---------------------------------------------------------------------------------

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        calling = _calling(event)
        model = UID(str(event.context.abstract_syntax))
        try:
            identifier = event.identifier
            if model == ModalityWorklistInformationFind and self._worklist is not None:
                mwl = parse_worklist_query(identifier, zone=self.zone)
                responses = self._worklist.find(mwl, identifier, calling_aet=calling)
            elif model == StudyRootQueryRetrieveInformationModelFind and self._query is not None:
                query = parse_study_query(identifier)
                responses = self._query.find(query, identifier, calling_aet=calling)
            else:
                yield IDENTIFIER_MISMATCH, None
                return
            for response in responses:
                if event.is_cancelled:
                    yield CANCELLED, None
                    return
                yield PENDING, response
        except DicomError as exc:
            log.warning("C-FIND from %s refused (0x%04X): %s", calling, exc.status, exc)
            yield exc.status, None
        except Exception:
            log.exception("C-FIND from %s failed", calling)
            yield UNABLE_TO_PROCESS, None

    # --- C-MOVE / C-GET -------------------------------------------------------------------------

    def _selected(self, event: evt.Event) -> tuple[list[str], DicomError | None]:
        """Paths a retrieve selects, or the error that stops it."""
        if self._query is None:
            return [], DicomError("no query provider", status=IDENTIFIER_MISMATCH)
        try:
            query = parse_study_query(event.identifier)
            paths = list(self._query.instances(query))
        except DicomError as exc:
            return [], exc
        except Exception as exc:
            log.exception("retrieve from %s failed selecting instances", _calling(event))
            return [], DicomError(str(exc), status=UNABLE_TO_PROCESS)
        if len(paths) > SUBOPERATIONS_LIMIT:
            return [], DicomError(
                f"{len(paths)} instances exceed one retrieve's {SUBOPERATIONS_LIMIT}",
                status=UNABLE_TO_PROCESS,
            )
        return paths, None

    def _send(self, event: evt.Event, paths: list[str]) -> Iterator[tuple[int, Dataset | None]]:
        """The pending (status, data set) pairs of the C-STORE sub-operations."""
        assert self._query is not None
        for path in paths:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            try:
                dataset = self._query.open(path)
            except Exception:
                log.exception("retrieve: cannot open %s", path)
                dataset = None
            yield PENDING, dataset

    def _contexts_for(self, paths: list[str]) -> list[PresentationContext]:
        """Contexts for a move sub-association: each SOP class in the syntax it is stored in."""
        assert self._query is not None
        wanted: dict[tuple[str, str], None] = {}
        for path in paths:
            try:
                dataset = self._query.open(path)
                sop_class = str(dataset.SOPClassUID)
                syntax = str(dataset.file_meta.TransferSyntaxUID)
            except Exception:
                continue  # reported as a failed sub-operation when sent
            wanted.setdefault((sop_class, syntax), None)
        proposals: dict[tuple[str, tuple[str, ...]], None] = {}
        for sop_class, syntax in wanted:
            if syntax in _UNCOMPRESSED:
                # pynetdicom re-encodes between the uncompressed syntaxes as accepted.
                syntaxes = tuple(dict.fromkeys((syntax, *_UNCOMPRESSED[:2])))
            else:
                syntaxes = (syntax,)  # compressed: sent as stored, never transcoded
            proposals.setdefault((sop_class, syntaxes), None)
        contexts = [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in proposals]
        # Verification as well: pynetdicom cannot associate without a context, and the
        # sub-association is also how a failure is reported (see _on_move).
        contexts = contexts[: MAX_REQUESTED_CONTEXTS - 1]
        contexts.append(build_context(Verification, DEFAULT_TRANSFER_SYNTAXES))
        return contexts

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        calling = _calling(event)
        destination_aet = str(event.move_destination).strip()
        try:
            destination = self._callers.move_destination(destination_aet)
        except Exception:
            log.exception("caller policy failed resolving move destination %r", destination_aet)
            destination = None
        if destination is None:
            log.warning("C-MOVE from %s to unknown destination %r", calling, destination_aet)
            yield None, None
            return
        paths, error = self._selected(event)
        host, port = destination
        nodelay = [(evt.EVT_CONN_OPEN, _set_nodelay)]
        if error is not None:
            # pynetdicom reports a failure only after connecting to the destination.
            log.warning("C-MOVE from %s refused (0x%04X): %s", calling, error.status, error)
            yield host, port, {"contexts": self._contexts_for([]), "evt_handlers": nodelay}
            yield 1
            yield error.status, None
            return
        yield host, port, {"contexts": self._contexts_for(paths), "evt_handlers": nodelay}
        yield len(paths)
        yield from self._send(event, paths)

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        calling = _calling(event)
        paths, error = self._selected(event)
        if error is not None:
            log.warning("C-GET from %s refused (0x%04X): %s", calling, error.status, error)
            yield 1
            yield error.status, None
            return
        yield len(paths)
        yield from self._send(event, paths)
