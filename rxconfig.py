"""Reflex configuration of the Huren portal (floor 4).

Production (`reflex run --env prod`, what scripts/portal.sh runs) serves the UI
and the backend on ONE port, ``HUREN_PORTAL_PORT`` (default 3000), bound to
127.0.0.1. Development mode (`reflex run`) puts the UI on ``HUREN_PORTAL_PORT``
and the backend on ``HUREN_PORTAL_BACKEND_PORT`` (default: Reflex's 8000 or the
next free port), both on loopback.
"""

from __future__ import annotations

import os

import reflex as rx
from reflex_base import constants as reflex_constants


def _port(variable: str, default: int | None) -> int | None:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError as exc:
        raise ValueError(f"{variable} must be a port number, not {raw!r}") from exc
    if not 1 <= port <= 65535:
        raise ValueError(f"{variable} must be between 1 and 65535, not {port}")
    return port


PORTAL_HOST = "127.0.0.1"
PORTAL_PORT = _port("HUREN_PORTAL_PORT", 3000)

# `react-router dev --host` (the default) listens on every interface: pin it to loopback.
reflex_constants.PackageJson.Commands.DEV = f"react-router dev --host {PORTAL_HOST}"

config = rx.Config(
    app_name="portal",
    telemetry_enabled=False,
    backend_host=PORTAL_HOST,
    frontend_port=PORTAL_PORT,
    # Unset in prod, where Reflex serves the backend on the frontend's port;
    # a different backend port there is refused by `reflex run --env prod`.
    backend_port=_port("HUREN_PORTAL_BACKEND_PORT", None),
    show_built_with_reflex=False,
    plugins=[
        rx.plugins.SitemapPlugin(),
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color="teal", gray_color="slate", radius="medium"),
        ),
    ],
)
