"""MLLP (Minimal Lower Layer Protocol) framing and an asyncio server and client.

Framing is kept apart from parsing: the decoder turns a byte stream into
payloads (and problems) and knows nothing of HL7; the server takes its
message handler from the caller, as pynetdicom does, so the hub decides what
to store and what to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from hl7.errors import FrameTooLarge, FramingError, JunkOutsideFrame, TruncatedFrame

__all__ = [
    "END_BLOCK",
    "START_BLOCK",
    "MllpClient",
    "MllpDecoder",
    "MllpServer",
    "Peer",
    "frame",
]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
_SB, _EB, _CR = 0x0B, 0x1C, 0x0D
_HEAD = 4096  # bytes of an oversize frame kept for the reject reply (holds the MSH)
_READ_SIZE = 65536
_HANDSHAKE_TIMEOUT = 30.0  # seconds a TLS client has to finish its handshake
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger("huren.mllp")


def frame(payload: bytes) -> bytes:
    """Wrap one message: 0x0B, payload, 0x1C 0x0D."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class MllpDecoder:
    """Turns a byte stream into payloads, whatever the TCP segmentation.

    :meth:`feed` returns, in stream order, each complete payload (``bytes``)
    and each problem as a :class:`~hl7.errors.FramingError` instance (junk
    outside a frame, a frame abandoned by a new start block, a frame over
    ``max_frame``). Problems are returned, not raised, so that one bad frame
    never hides the good frames that arrived in the same read. After an
    oversize frame the decoder skips to its end block or the next start block.
    A frame ends at 0x1C; the 0x0D after it is consumed when it comes (some
    senders omit it).
    """

    _IDLE, _FRAME, _SKIP = 0, 1, 2

    def __init__(self, max_frame: int = 1 << 20) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._state = self._IDLE
        self._buffer = bytearray()
        self._after_end = False

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held so far (0 between frames)."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        return self._state != self._IDLE

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        events: list[bytes | FramingError] = []
        junk = bytearray()
        size, i = len(data), 0
        while i < size:
            if self._after_end:
                self._after_end = False
                if data[i] == _CR:
                    i += 1
                    continue
            if self._state == self._IDLE:
                start = data.find(START_BLOCK, i)
                if start < 0:
                    junk += data[i:]
                    break
                junk += data[i:start]
                if junk:
                    events.append(self._junk(bytes(junk)))
                    junk.clear()
                self._state = self._FRAME
                i = start + 1
            elif self._state == self._FRAME:
                i = self._in_frame(data, i, events)
            else:
                end, start = data.find(END_BLOCK, i), data.find(START_BLOCK, i)
                if start >= 0 and (end < 0 or start < end):
                    self._state = self._FRAME
                    i = start + 1
                elif end >= 0:
                    self._state = self._IDLE
                    self._after_end = True
                    i = end + 1
                else:
                    i = size
        if junk:
            events.append(self._junk(bytes(junk)))
        return events

    def _in_frame(self, data: bytes, i: int, events: list[bytes | FramingError]) -> int:
        end, start = data.find(END_BLOCK, i), data.find(START_BLOCK, i)
        restart = start >= 0 and (end < 0 or start < end)
        stop = start if restart else (end if end >= 0 else len(data))
        if len(self._buffer) + stop - i > self.max_frame:
            head = bytes((self._buffer + data[i : min(stop, i + _HEAD)])[:_HEAD])
            events.append(
                FrameTooLarge(
                    f"frame exceeds {self.max_frame} bytes", data=head, limit=self.max_frame
                )
            )
            self._buffer.clear()
            if restart:
                return start + 1
            if end >= 0:
                self._state = self._IDLE
                self._after_end = True
                return end + 1
            self._state = self._SKIP
            return len(data)
        self._buffer += data[i:stop]
        if restart:
            events.append(
                TruncatedFrame(
                    f"frame of {len(self._buffer)} bytes abandoned: new start block before its "
                    "end block",
                    data=bytes(self._buffer),
                )
            )
            self._buffer.clear()
            return start + 1
        if end >= 0:
            events.append(bytes(self._buffer))
            self._buffer.clear()
            self._state = self._IDLE
            self._after_end = True
            return end + 1
        return len(data)

    @staticmethod
    def _junk(data: bytes) -> JunkOutsideFrame:
        return JunkOutsideFrame(f"{len(data)} bytes outside any MLLP frame", data=data)


@dataclass(frozen=True, slots=True)
class Peer:
    """The remote end of a connection, as logged and handed to handlers."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Handler = Callable[[bytes, Peer], Awaitable[bytes]]
RejectHandler = Callable[[Peer, str, bytes], Awaitable[bytes | None]]


def _peer_of(writer: asyncio.StreamWriter) -> Peer:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return Peer(str(name[0]), int(name[1]))
    return Peer(str(name), 0)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _address_in(host: str, networks: Sequence[Network]) -> bool:
    """Whether ``host`` lies in one of ``networks`` (an IPv4-mapped IPv6 address counts as IPv4)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


class _Connection:
    """One client connection: its task and whether a message is being handled."""

    __slots__ = ("busy", "peer", "task", "writer")

    def __init__(self, peer: Peer, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.writer = writer
        self.busy = False
        self.task: asyncio.Task[None] | None = None


class MllpServer:
    """An MLLP listener that hands every payload to ``handler`` and frames its reply.

    Messages on one connection are handled strictly in order: the reply to
    message n is written before message n+1 reaches the handler, so a sender
    waiting for its ACK sees the original-mode protocol it expects. An empty
    reply sends nothing (for messages that take no acknowledgement). If the
    handler raises, the error is logged and the connection closed without a
    reply, so the sender re-sends rather than taking silence for success.
    Framing problems are logged on ``huren.mllp`` with the peer and reason;
    ``on_reject(peer, reason, data)`` may return a reply (e.g. an AR) to send.

    ``allowed_networks`` (if given) is checked when a connection is accepted:
    a peer outside them is logged and closed before anything is read. With
    ``ssl_context`` the connection is upgraded to TLS after that check; a failed
    handshake (a plain-TCP client, a missing or untrusted client
    certificate) is logged and the connection closed.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str,
        port: int,
        max_frame: int = 1 << 20,
        idle_timeout: float = 300.0,
        on_reject: RejectHandler | None = None,
        allowed_networks: Sequence[Network] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = _HANDSHAKE_TIMEOUT,
    ) -> None:
        self._handler = handler
        self._on_reject = on_reject
        self._networks = tuple(allowed_networks or ())
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Listen; with port 0 the chosen port is in ``self.port`` afterwards."""
        self._stopping = False
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info(
            "MLLP listening on %s:%d%s%s",
            self.host,
            self.port,
            " with TLS" if self._ssl is not None else "",
            f" for {', '.join(map(str, self._networks))}" if self._networks else "",
        )

    async def stop(self, *, grace: float | None = 30.0) -> None:
        """Stop listening, let in-flight messages finish and answer, then close all.

        A handler still running after ``grace`` seconds is cancelled (its
        message gets no reply, so the sender will send it again).
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for connection in connections:
            if not connection.busy and connection.task is not None:
                connection.task.cancel()
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                log.warning("MLLP stop: a handler outlived the %.0f s grace; cancelling", grace)
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.info("MLLP listener on %s:%d stopped", self.host, self.port)

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_of(writer)
        if self._stopping:
            writer.close()
            return
        if self._networks and not _address_in(peer.host, self._networks):
            log.warning("MLLP connection from %s refused: not in the allowed networks", peer)
            writer.close()
            return
        if self._ssl is not None and not await self._upgrade(writer, peer):
            return
        connection = _Connection(peer, writer)
        connection.task = asyncio.current_task()
        self._connections.add(connection)
        _nodelay(writer)
        log.debug("MLLP connection from %s", peer)
        try:
            await self._serve(reader, connection)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except (ConnectionError, OSError) as exc:
            log.info("MLLP connection from %s lost: %s", peer, exc)
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _upgrade(self, writer: asyncio.StreamWriter, peer: Peer) -> bool:
        """TLS handshake on an accepted connection; False (logged, closed) when it fails."""
        assert self._ssl is not None
        try:
            await writer.start_tls(self._ssl, ssl_handshake_timeout=self._handshake_timeout)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.warning("MLLP connection from %s refused: TLS handshake failed: %s", peer, exc)
            writer.transport.abort()
            return False
        subject = writer.get_extra_info("peercert")
        log.debug("MLLP TLS connection from %s, client certificate %s", peer, subject or "none")
        return True

    async def _serve(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        decoder = MllpDecoder(self.max_frame)
        peer, writer = connection.peer, connection.writer
        while not self._stopping:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                log.info(
                    "MLLP connection from %s idle for %.0f s: closing", peer, self.idle_timeout
                )
                return
            if not data:
                if decoder.pending:
                    log.warning(
                        "MLLP connection from %s closed mid-frame (%d bytes dropped)",
                        peer,
                        decoder.pending,
                    )
                return
            connection.busy = True
            try:
                for event in decoder.feed(data):
                    if isinstance(event, bytes):
                        reply: bytes | None = await self._handle(event, peer)
                    else:
                        reply = await self._reject(event, peer)
                    if reply:
                        writer.write(frame(reply))
                        await writer.drain()
                    if self._stopping:
                        return
            finally:
                connection.busy = False

    async def _handle(self, payload: bytes, peer: Peer) -> bytes:
        try:
            return await self._handler(payload, peer)
        except Exception:
            log.exception("MLLP handler failed on a message from %s: closing without a reply", peer)
            raise ConnectionAbortedError("handler failed") from None

    async def _reject(self, problem: FramingError, peer: Peer) -> bytes | None:
        if isinstance(problem, JunkOutsideFrame) and problem.blank:
            log.debug("MLLP %s: %d blank bytes between frames", peer, len(problem.data))
            return None
        log.warning(
            "MLLP rejected data from %s: %s (starts %r)", peer, problem.reason, problem.data[:64]
        )
        if self._on_reject is None:
            return None
        try:
            return await self._on_reject(peer, problem.reason, problem.data)
        except Exception:
            log.exception("MLLP on_reject failed for %s", peer)
            return None


class MllpClient:
    """Sends framed messages and waits for one framed reply each (original mode).

    Transport failures surface as ``OSError`` (refused, reset, closed before a
    reply) or ``TimeoutError``; the caller (outbox worker, test) decides to retry.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        max_frame: int = 1 << 20,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._ssl = ssl_context
        self._server_hostname = server_hostname
        self._decoder = MllpDecoder(max_frame)
        self._replies: list[bytes] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self._server_hostname if self._ssl is not None else None,
            ),
            self.timeout,
        )
        _nodelay(writer)
        self._reader, self._writer = reader, writer

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, payload: bytes) -> bytes:
        """Frame and send ``payload``; return the payload of the next reply frame."""
        if self._writer is None or self._reader is None:
            raise ConnectionError("MllpClient is not connected")
        self._writer.write(frame(payload))
        await self._writer.drain()
        return await asyncio.wait_for(self._next_reply(self._reader), self.timeout)

    async def _next_reply(self, reader: asyncio.StreamReader) -> bytes:
        while not self._replies:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise ConnectionResetError("connection closed before a reply arrived")
            for event in self._decoder.feed(data):
                if isinstance(event, bytes):
                    self._replies.append(event)
                elif not (isinstance(event, JunkOutsideFrame) and event.blank):
                    log.warning("MLLP reply from %s:%d: %s", self.host, self.port, event.reason)
        return self._replies.pop(0)
