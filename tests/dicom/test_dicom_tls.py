"""DicomServer over TLS on 127.0.0.1: pynetdicom and dcmtk callers; plain ones refused."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import ServerFactory
from dicom_helpers import CLINIC_AET, HOST, SERVER_AET, MemoryStorage, dcmtk, sample
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from dicom.server import DicomServer
from integration.tls import server_context
from tests.tls_certs import Issued, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def associate(server: DicomServer, context: ssl.SSLContext | None) -> Association:
    ae = AE(ae_title=CLINIC_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    tls = (context, "127.0.0.1") if context is not None else None
    return ae.associate(HOST, server.port, ae_title=SERVER_AET, tls_args=tls)


def refused(server: DicomServer, context: ssl.SSLContext | None) -> bool:
    try:
        assoc = associate(server, context)
    except (OSError, ssl.SSLError):
        return True
    if assoc.is_established:
        assoc.release()
        return False
    transport = assoc.dul.socket
    if transport is not None and transport.socket is not None:
        transport.socket.close()  # pynetdicom leaves an aborted requestor's socket open
    return True


def test_tls_caller_echoes_and_stores_and_a_plain_caller_is_refused(
    make_server: ServerFactory, storage: MemoryStorage, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(ssl_context=server_context(cert=pki.hub.cert, key=pki.hub.key))
    assoc = associate(server, pki.client_context())
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    dataset = dcmread(sample("CT_small.dcm"))
    assert assoc.send_c_store(dataset).Status == 0x0000
    assoc.release()
    assert str(dataset.SOPInstanceUID) in storage.stored

    with caplog.at_level(logging.WARNING, logger="huren.dicom"):
        assert refused(server, None)
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)
    again = associate(server, pki.client_context())  # the listener still serves TLS
    assert again.is_established
    again.release()


def test_required_client_certificates(make_server: ServerFactory, pki: Pki) -> None:
    server = make_server(
        ssl_context=server_context(
            cert=pki.hub.cert, key=pki.hub.key, ca=pki.ca, require_client_cert=True
        )
    )
    trusted = associate(server, pki.client_context(with_cert=pki.clinic))
    assert trusted.is_established
    assert trusted.send_c_echo().Status == 0x0000
    trusted.release()
    assert refused(server, pki.client_context())  # no client certificate
    assert refused(server, pki.client_context(with_cert=pki.stranger))  # untrusted CA
    assert refused(server, None)  # plain TCP


def test_known_ae_titles_still_apply_over_tls(make_server: ServerFactory, pki: Pki) -> None:
    server = make_server(ssl_context=server_context(cert=pki.hub.cert, key=pki.hub.key))
    ae = AE(ae_title="UNKNOWN")
    ae.add_requested_context(Verification)
    assoc = ae.associate(
        HOST, server.port, ae_title=SERVER_AET, tls_args=(pki.client_context(), "127.0.0.1")
    )
    assert assoc.is_rejected


def test_a_silent_connection_does_not_block_other_callers(
    make_server: ServerFactory, pki: Pki
) -> None:
    """pynetdicom alone shakes hands in its accept loop; the hub's server does it per thread."""
    server = make_server(ssl_context=server_context(cert=pki.hub.cert, key=pki.hub.key))
    with socket.create_connection((HOST, server.port), timeout=10):
        time.sleep(0.2)  # the silent socket has been accepted
        started = time.monotonic()
        assoc = associate(server, pki.client_context())
        assert assoc.is_established
        assoc.release()
        assert time.monotonic() - started < 8  # not stuck behind the silent socket


def _dcmtk_tls(pki: Pki, client: Issued, server: DicomServer) -> tuple[int, str]:
    done = dcmtk(
        "echoscu",
        "--enable-tls",
        client.key,
        client.cert,
        "--add-cert-file",
        pki.ca,
        "-aet",
        CLINIC_AET,
        "-aec",
        SERVER_AET,
        HOST,
        server.port,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(not Path("/usr/bin/echoscu").exists(), reason="dcmtk is not installed")
def test_dcmtk_echoscu_over_mutual_tls(make_server: ServerFactory, pki: Pki) -> None:
    server = make_server(
        ssl_context=server_context(
            cert=pki.hub.cert, key=pki.hub.key, ca=pki.ca, require_client_cert=True
        )
    )
    code, output = _dcmtk_tls(pki, pki.clinic, server)
    assert code == 0, output
    code, output = _dcmtk_tls(pki, pki.stranger, server)
    assert code != 0, output
    plain = dcmtk("echoscu", "-aet", CLINIC_AET, "-aec", SERVER_AET, HOST, server.port)
    assert plain.returncode != 0
