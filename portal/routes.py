"""Every route of the portal, named once; portal.py registers pages under these."""

from __future__ import annotations

from typing import Final

HOME: Final = "/"
LOGIN: Final = "/login"
