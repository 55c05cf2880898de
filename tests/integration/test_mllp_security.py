"""Who may send HL7 and how: the sender allow-list in intake, and `huren serve` with TLS links."""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from hl7.er7 import parse_message
from hl7.mllp import MllpClient
from integration.intake import Intake
from integration.settings import Settings
from models.enums import InboundStatus
from tests.conftest import free_port
from tests.hub_helpers import start_hub
from tests.integration.test_intake import Hub, ack_code, ack_error, hub, sample
from tests.tls_certs import make_pki

__all__ = ["hub"]  # the intake tests' region fixture, used here too


def allow(region: Hub, senders: str) -> None:
    region.settings = Settings(**{**region.settings.model_dump(), "mllp_allowed_senders": senders})


def test_a_sender_outside_the_allow_list_gets_ar_and_its_message_is_kept(hub: Hub) -> None:
    allow(hub, "ZAZWSY, HSZWSY")
    [accepted] = hub.send(sample("orm_o01_multi_orc.hl7"))  # MSH-4 ZAZWSY
    assert ack_code(accepted) == "AA"
    orders = hub.scalar("SELECT count(*) FROM exam_order")

    [refused] = hub.send(sample("orm_o01_v231_stat.hl7"))  # MSH-4 FYXRMYY, configured, not listed
    assert ack_code(refused) == "AR"
    location, text = ack_error(refused)
    assert location == "MSH-4" and "FYXRMYY" in text and "may not send" in text
    err = parse_message(refused).segment("ERR")
    assert err is not None and err.get(3) == "103"
    assert hub.scalar("SELECT count(*) FROM exam_order") == orders  # nothing applied
    status, error = hub.rows(
        "SELECT status, error FROM inbound_message WHERE control_id = 'FY0000091234'"
    )[0]
    assert status == InboundStatus.rejected.value and "may not send" in error

    # the operator adds the facility to the list; replay applies the kept message
    allow(hub, "ZAZWSY,HSZWSY,FYXRMYY")
    results = Intake(database=hub.database, directory=hub.directory, settings=hub.settings).replay()
    assert [(r.control_id, r.applied) for r in results] == [("FY0000091234", True)]
    assert hub.scalar("SELECT count(*) FROM exam_order") > orders


def test_without_a_list_any_configured_facility_may_send(hub: Hub) -> None:
    assert hub.settings.mllp_sender_allow_list == frozenset()
    [ack] = hub.send(sample("orm_o01_v231_stat.hl7"))
    assert ack_code(ack) == "AA"


def test_settings_check_the_lists_and_the_tls_files(tmp_path: Path) -> None:
    settings = Settings(mllp_allowed_senders=" A1 ,,B2 ", mllp_allowed_networks="10.1.0.0/16, ::1")
    assert settings.mllp_sender_allow_list == {"A1", "B2"}
    assert [str(n) for n in settings.mllp_network_allow_list] == ["10.1.0.0/16", "::1/128"]
    with pytest.raises(ValueError, match="CIDR"):
        Settings(mllp_allowed_networks="10.1.0.0/33")
    with pytest.raises(ValueError, match="go together"):
        Settings(mllp_tls_cert=tmp_path / "hub.crt")
    with pytest.raises(ValueError, match="REQUIRE_CLIENT_CERT"):
        Settings(
            dicom_tls_cert=tmp_path / "a",
            dicom_tls_key=tmp_path / "b",
            dicom_tls_require_client_cert=True,
        )


def test_serve_with_tls_on_both_links(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    mllp_port, dicom_port, http_port = free_port(), free_port(), free_port()
    tls = {
        "cert": str(pki.hub.cert),
        "key": str(pki.hub.key),
        "ca": str(pki.ca),
        "require_client_cert": "true",
    }
    settings = {
        f"{link}_tls_{name}": value for link in ("mllp", "dicom") for name, value in tls.items()
    }
    settings.update(mllp_allowed_networks="127.0.0.0/8", mllp_allowed_senders="QL-T01")
    hub = start_hub(
        tmp_path / "var",
        http_port=http_port,
        mllp_port=mllp_port,
        dicom_port=dicom_port,
        settings=settings,
    )
    try:
        trusted = pki.client_context(with_cert=pki.clinic)

        async def mllp(context: ssl.SSLContext | None) -> bytes | None:
            try:
                async with MllpClient("127.0.0.1", mllp_port, timeout=10, ssl_context=context) as c:
                    return await c.send(sample("orm_o01_multi_orc.hl7"))
            except (OSError, ssl.SSLError):
                return None

        answer = asyncio.run(mllp(trusted))
        assert answer is not None and ack_code(answer) == "AR"  # over TLS; ZAZWSY not listed
        assert asyncio.run(mllp(None)) is None  # plain TCP
        assert asyncio.run(mllp(pki.client_context())) is None  # no client certificate

        ae = AE(ae_title="NOBODY")
        ae.add_requested_context(Verification)
        assoc = ae.associate(
            "127.0.0.1", dicom_port, ae_title="HUREN", tls_args=(trusted, "127.0.0.1")
        )
        assert assoc.is_rejected  # TLS held; the AE title is unknown to the hub
        plain = ae.associate("127.0.0.1", dicom_port, ae_title="HUREN")
        assert not plain.is_established and not plain.is_rejected
        if plain.dul.socket is not None and plain.dul.socket.socket is not None:
            plain.dul.socket.socket.close()
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
    assert hub.returncode == 0
