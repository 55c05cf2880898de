"""MllpServer and MllpClient over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from hl7.ack import build_ack
from hl7.er7 import parse_message
from hl7.mllp import MllpClient, MllpServer, Peer, frame

HOST = "127.0.0.1"
NOW = datetime(2024, 3, 5, 8, 30, tzinfo=UTC)


def orm(control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305083012||ORM^O01|{control_id}|P|2.3.1"
        "||||||UNICODE UTF-8\rPID|1||0012345^^^ZAZWSY^MR||李^建国\r"
    ).encode()


async def ack_handler(payload: bytes, peer: Peer) -> bytes:
    message = parse_message(payload)
    return build_ack(message, code="AA", control_id=f"ACK-{message.control_id}", now=NOW)


def acked(reply: bytes) -> str:
    """MSA-2 of a reply: the control id it acknowledges."""
    msa = parse_message(reply).segment("MSA")
    assert msa is not None and msa.get(1) == "AA"
    return msa.get(2)


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(scenario(), timeout)

    asyncio.run(guarded())


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    data = await reader.readuntil(b"\x1c\x0d")
    assert data.startswith(b"\x0b")
    return data[1:-2]


def test_round_trip_and_port_zero() -> None:
    async def scenario() -> None:
        server = MllpServer(ack_handler, host=HOST, port=0)
        await server.start()
        try:
            assert server.port > 0
            async with MllpClient(HOST, server.port, timeout=5) as client:
                assert acked(await client.send(orm("C1"))) == "C1"
                assert acked(await client.send(orm("C2"))) == "C2"
        finally:
            await server.stop()

    run(scenario)


def test_many_concurrent_connections_each_answered_in_order() -> None:
    async def handler(payload: bytes, peer: Peer) -> bytes:
        await asyncio.sleep(0.001 * (hash(payload) % 5))  # interleave connections
        return await ack_handler(payload, peer)

    async def client_session(port: int, number: int) -> list[str]:
        async with MllpClient(HOST, port, timeout=10) as client:
            return [acked(await client.send(orm(f"K{number}-{i}"))) for i in range(25)]

    async def scenario() -> None:
        async with MllpServer(handler, host=HOST, port=0) as server:
            results = await asyncio.gather(*(client_session(server.port, n) for n in range(12)))
        for number, replies in enumerate(results):
            assert replies == [f"K{number}-{i}" for i in range(25)]

    run(scenario)


def test_pipelined_messages_are_handled_one_at_a_time_in_order() -> None:
    """Three frames in one TCP write; the first handler is the slowest."""
    active: list[int] = [0]
    order: list[str] = []
    delays = {"P1": 0.15, "P2": 0.05, "P3": 0.0}

    async def handler(payload: bytes, peer: Peer) -> bytes:
        control_id = parse_message(payload).control_id
        active[0] += 1
        assert active[0] == 1, "two messages of one connection handled at once"
        await asyncio.sleep(delays[control_id])
        order.append(control_id)
        active[0] -= 1
        return await ack_handler(payload, peer)

    async def scenario() -> None:
        async with MllpServer(handler, host=HOST, port=0) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(frame(orm("P1")) + frame(orm("P2")) + frame(orm("P3")))
            await writer.drain()
            replies = [acked(await read_frame(reader)) for _ in range(3)]
            writer.close()
            await writer.wait_closed()
        assert replies == ["P1", "P2", "P3"] == order

    run(scenario)


def test_one_message_across_many_packets() -> None:
    async def scenario() -> None:
        async with MllpServer(ack_handler, host=HOST, port=0) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            data = frame(orm("SPLIT"))
            for index in range(0, len(data), 7):
                writer.write(data[index : index + 7])
                await writer.drain()
                await asyncio.sleep(0.001)
            assert acked(await read_frame(reader)) == "SPLIT"
            writer.close()
            await writer.wait_closed()

    run(scenario)


def test_tcp_nodelay_is_set_on_accepted_connections() -> None:
    seen: list[int] = []

    async def handler(payload: bytes, peer: Peer) -> bytes:
        for connection in server._connections:
            sock = connection.writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return await ack_handler(payload, peer)

    server = MllpServer(handler, host=HOST, port=0)

    async def scenario() -> None:
        async with server, MllpClient(HOST, server.port) as client:
            await client.send(orm("N1"))

    run(scenario)
    assert seen and all(seen)


def test_idle_connections_are_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="huren.mllp")

    async def scenario() -> None:
        async with MllpServer(ack_handler, host=HOST, port=0, idle_timeout=0.2) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(frame(orm("I1")))
            await writer.drain()
            assert acked(await read_frame(reader)) == "I1"
            started = asyncio.get_running_loop().time()
            assert await reader.read() == b""  # the server hung up
            assert asyncio.get_running_loop().time() - started < 2
            writer.close()
            await writer.wait_closed()

    run(scenario)
    assert any("idle" in r.getMessage() for r in caplog.records)


def test_oversize_frame_gets_the_reject_reply_and_the_connection_stays_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejected: list[tuple[Peer, str, bytes]] = []

    async def on_reject(peer: Peer, reason: str, data: bytes) -> bytes | None:
        rejected.append((peer, reason, data))
        return b"MSH|^~\\&|HUREN|HUREN|||20240305||ACK|R1|P|2.5\rMSA|AR|\r"

    async def scenario() -> None:
        server = MllpServer(ack_handler, host=HOST, port=0, max_frame=2000, on_reject=on_reject)
        async with server, MllpClient(HOST, server.port, timeout=5) as client:
            big = orm("BIG") + b"NTE|1||" + b"x" * 10_000 + b"\r"
            reply = await client.send(big)
            msa = parse_message(reply).segment("MSA")
            assert msa is not None and msa.get(1) == "AR"
            assert acked(await client.send(orm("AFTER"))) == "AFTER"

    run(scenario)
    assert len(rejected) == 1
    peer, reason, data = rejected[0]
    assert peer.host == HOST and "exceeds 2000 bytes" in reason
    assert b"|BIG|" in data and len(data) <= 4096
    lines = [r for r in caplog.records if r.name == "huren.mllp" and r.levelno == logging.WARNING]
    assert any(str(peer) in r.getMessage() and "exceeds" in r.getMessage() for r in lines)


def test_garbage_is_logged_answered_and_survived(caplog: pytest.LogCaptureFixture) -> None:
    async def on_reject(peer: Peer, reason: str, data: bytes) -> bytes | None:
        return b"MSH|^~\\&|HUREN|HUREN|||20240305||ACK|R2|P|2.5\rMSA|AR|\r"

    async def scenario() -> None:
        async with MllpServer(ack_handler, host=HOST, port=0, on_reject=on_reject) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            reply = parse_message(await read_frame(reader))
            assert reply.control_id == "R2"
            # A stray newline after a frame is tolerated silently (no reply).
            writer.write(frame(orm("G1")) + b"\n" + frame(orm("G2")))
            await writer.drain()
            assert acked(await read_frame(reader)) == "G1"
            assert acked(await read_frame(reader)) == "G2"
            writer.close()
            await writer.wait_closed()

    run(scenario)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("outside any MLLP frame" in m and "GET" in m for m in warnings)
    assert not any("1 bytes outside" in m for m in warnings)


def test_without_on_reject_garbage_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server = MllpServer(ack_handler, host=HOST, port=0)
        async with server, MllpClient(HOST, server.port, timeout=5) as client:
            assert client._writer is not None
            client._writer.write(b"\x00\x01garbage")
            assert acked(await client.send(orm("AFTER"))) == "AFTER"

    run(scenario)
    assert any("garbage" in r.getMessage() for r in caplog.records)


def test_stop_waits_for_in_flight_handlers_then_closes() -> None:
    started = asyncio.Event
    finished: list[str] = []

    async def scenario() -> None:
        handler_started = started()

        async def slow(payload: bytes, peer: Peer) -> bytes:
            handler_started.set()
            await asyncio.sleep(0.3)
            finished.append("done")
            return await ack_handler(payload, peer)

        server = MllpServer(slow, host=HOST, port=0)
        await server.start()
        port = server.port
        reader, writer = await asyncio.open_connection(HOST, port)
        idle_reader, idle_writer = await asyncio.open_connection(HOST, port)
        writer.write(frame(orm("S1")))
        await writer.drain()
        await handler_started.wait()
        await server.stop()
        assert finished == ["done"]  # stop() returned only after the handler
        assert acked(await read_frame(reader)) == "S1"  # and its reply was sent
        assert await reader.read() == b""  # then the connection was closed
        assert await idle_reader.read() == b""  # idle connections too
        assert server.connections == 0
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)
        for w in (writer, idle_writer):
            w.close()
            await w.wait_closed()

    run(scenario)


def test_stop_cancels_a_handler_that_outlives_the_grace_period() -> None:
    cancelled: list[bool] = []

    async def stuck(payload: bytes, peer: Peer) -> bytes:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return b""

    async def scenario() -> None:
        server = MllpServer(stuck, host=HOST, port=0)
        await server.start()
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(frame(orm("H1")))
        await writer.drain()
        await asyncio.sleep(0.1)
        await server.stop(grace=0.2)
        assert cancelled == [True]
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()

    run(scenario)


def test_a_failing_handler_closes_the_connection_without_a_reply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(payload: bytes, peer: Peer) -> bytes:
        if b"|BOOM|" in payload:
            raise RuntimeError("database is down")
        return await ack_handler(payload, peer)

    async def scenario() -> None:
        async with MllpServer(handler, host=HOST, port=0) as server:
            async with MllpClient(HOST, server.port, timeout=5) as client:
                with pytest.raises(ConnectionError):
                    await client.send(orm("BOOM"))
            async with MllpClient(HOST, server.port, timeout=5) as client:
                assert acked(await client.send(orm("OK"))) == "OK"

    run(scenario)
    assert any("handler failed" in r.getMessage() for r in caplog.records)


def test_an_empty_reply_sends_nothing() -> None:
    async def handler(payload: bytes, peer: Peer) -> bytes:
        return b"" if b"|ACK|" in payload else await ack_handler(payload, peer)

    async def scenario() -> None:
        async with MllpServer(handler, host=HOST, port=0) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            ack = b"MSH|^~\\&|HIS|X|HUREN|HUREN|20240305||ACK|A1|P|2.5\rMSA|AA|X\r"
            writer.write(frame(ack) + frame(orm("Q1")))
            await writer.drain()
            assert acked(await read_frame(reader)) == "Q1"
            writer.close()
            await writer.wait_closed()

    run(scenario)


def test_client_timeout_and_refused_connection() -> None:
    async def silent(payload: bytes, peer: Peer) -> bytes:
        await asyncio.sleep(0.5)
        return b""

    async def scenario() -> None:
        async with MllpServer(silent, host=HOST, port=0) as server:
            port = server.port
            async with MllpClient(HOST, port, timeout=0.2) as client:
                with pytest.raises(TimeoutError):
                    await client.send(orm("T1"))
        with pytest.raises(OSError):
            async with MllpClient(HOST, port, timeout=2) as client:
                await client.send(orm("T2"))
        with pytest.raises(ConnectionError):
            await MllpClient(HOST, port).send(orm("T3"))  # never connected

    run(scenario)
