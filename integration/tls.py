"""TLS contexts for the hub's MLLP and DICOM listeners, built from the settings.

Links that leave the building (a township clinic's HIS, a modality over the
county network) can be wrapped in TLS 1.2+; with a CA configured and client
certificates required, only senders holding a certificate signed by that CA
get past the handshake. When no certificate is configured the listener
stays plain TCP, as inside a hospital's own network.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from integration.settings import Settings
from models.errors import ConfigurationError

Link = Literal["mllp", "dicom"]


def server_context(
    *, cert: Path, key: Path, ca: Path | None = None, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later, the hub's certificate, optionally mutual TLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"TLS certificate {cert}, key {key}, CA {ca}: {exc}") from exc
    context.verify_mode = (
        ssl.CERT_REQUIRED
        if require_client_cert
        else (ssl.CERT_OPTIONAL if ca is not None else ssl.CERT_NONE)
    )
    return context


def listener_context(settings: Settings, link: Link) -> ssl.SSLContext | None:
    """The context for the ``mllp`` or ``dicom`` listener, or None (plain TCP) when unset."""
    cert: Path | None = getattr(settings, f"{link}_tls_cert")
    key: Path | None = getattr(settings, f"{link}_tls_key")
    if cert is None or key is None:
        return None
    return server_context(
        cert=cert,
        key=key,
        ca=getattr(settings, f"{link}_tls_ca"),
        require_client_cert=bool(getattr(settings, f"{link}_tls_require_client_cert")),
    )
