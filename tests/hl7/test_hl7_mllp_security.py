"""MllpServer's source-network allow-list and TLS, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from pathlib import Path

import pytest

from hl7.mllp import MllpClient, MllpServer, _address_in
from integration.tls import server_context
from tests.hl7.test_hl7_mllp_server import HOST, ack_handler, acked, orm, run
from tests.tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def networks(*cidrs: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


async def closed_without_reply(port: int, *, context: ssl.SSLContext | None = None) -> bool:
    """Connect (plain or TLS), send an ORM, and report whether the hub closed without an ACK."""
    try:
        async with MllpClient(HOST, port, timeout=5, ssl_context=context) as client:
            await client.send(orm("X1"))
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        return True
    return False


def test_address_matching_covers_ipv4_mapped_and_bad_input() -> None:
    allowed = networks("10.1.0.0/16", "127.0.0.1/32", "fd00::/8")
    assert _address_in("10.1.200.3", allowed)
    assert _address_in("::ffff:127.0.0.1", allowed)
    assert _address_in("fd00::5", allowed)
    assert not _address_in("10.2.0.1", allowed)
    assert not _address_in("not-an-address", allowed)


def test_a_peer_outside_the_allowed_networks_is_closed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        inside = MllpServer(
            ack_handler, host=HOST, port=0, allowed_networks=networks("127.0.0.0/8")
        )
        outside = MllpServer(
            ack_handler, host=HOST, port=0, allowed_networks=networks("10.20.0.0/16")
        )
        await inside.start()
        await outside.start()
        try:
            async with MllpClient(HOST, inside.port, timeout=5) as client:
                assert acked(await client.send(orm("IN1"))) == "IN1"
            with caplog.at_level(logging.WARNING, logger="huren.mllp"):
                assert await closed_without_reply(outside.port)
        finally:
            await inside.stop()
            await outside.stop()

    run(scenario)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "127.0.0.1" in refused[0] and "allowed networks" in refused[0]


def test_tls_client_is_served_and_plain_client_is_refused(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    context = server_context(cert=pki.hub.cert, key=pki.hub.key)

    async def scenario() -> None:
        server = MllpServer(ack_handler, host=HOST, port=0, ssl_context=context)
        await server.start()
        try:
            async with MllpClient(
                HOST, server.port, timeout=5, ssl_context=pki.client_context()
            ) as client:
                assert acked(await client.send(orm("TLS1"))) == "TLS1"
                assert acked(await client.send(orm("TLS2"))) == "TLS2"
            with caplog.at_level(logging.WARNING, logger="huren.mllp"):
                assert await closed_without_reply(server.port)
            # still serving TLS after the plain client was turned away
            async with MllpClient(
                HOST, server.port, timeout=5, ssl_context=pki.client_context()
            ) as client:
                assert acked(await client.send(orm("TLS3"))) == "TLS3"
        finally:
            await server.stop()

    run(scenario)
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_required_client_certificates_must_come_from_the_configured_ca(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    context = server_context(
        cert=pki.hub.cert, key=pki.hub.key, ca=pki.ca, require_client_cert=True
    )

    async def scenario() -> None:
        server = MllpServer(ack_handler, host=HOST, port=0, ssl_context=context)
        await server.start()
        try:
            trusted = pki.client_context(with_cert=pki.clinic)
            async with MllpClient(HOST, server.port, timeout=5, ssl_context=trusted) as client:
                assert acked(await client.send(orm("M1"))) == "M1"
            with caplog.at_level(logging.WARNING, logger="huren.mllp"):
                assert await closed_without_reply(server.port, context=pki.client_context())
                stranger = pki.client_context(with_cert=pki.stranger)
                assert await closed_without_reply(server.port, context=stranger)
                assert await closed_without_reply(server.port)
        finally:
            await server.stop()

    run(scenario)
    failures = [r.getMessage() for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failures) == 3, failures


def test_a_silent_client_cannot_hold_the_tls_listener(pki: Pki, tmp_path: Path) -> None:
    """The handshake runs per connection with a deadline: one idle socket blocks nobody."""
    context = server_context(cert=pki.hub.cert, key=pki.hub.key)

    async def scenario() -> None:
        server = MllpServer(
            ack_handler, host=HOST, port=0, ssl_context=context, handshake_timeout=1.0
        )
        await server.start()
        try:
            _silent_reader, silent = await asyncio.open_connection(HOST, server.port)
            async with MllpClient(
                HOST, server.port, timeout=5, ssl_context=pki.client_context()
            ) as client:
                assert acked(await client.send(orm("S1"))) == "S1"
            assert await asyncio.wait_for(_silent_reader.read(), 5) == b""  # closed by deadline
            silent.close()
        finally:
            await server.stop()

    run(scenario)
