"""The parts of a hub, in a module of their own: the split hub's supervisor names them without
importing the listeners it never runs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a hub process runs. A split hub runs each in a process of its own (``supervisor``)."""

    background = "background"  # audit sealer, outbox worker, stabiliser, nightly check
    mllp = "mllp"
    dicom = "dicom"  # C-STORE, worklist and query
    http = "http"  # /healthz, FHIR, WADO-RS, CDS Hooks


EVERY_ROLE: frozenset[Role] = frozenset(Role)
