"""Errors of the DICOM adapter.

Every error that ends in a DIMSE response carries ``status``: the DICOM
failure status the service returns for it (PS3.4 Annex B/C/K), so the edge
that answers a C-STORE or C-FIND never has to guess.
"""

from __future__ import annotations

from typing import ClassVar

from models.errors import ValidationError

__all__ = [
    "CANNOT_UNDERSTAND",
    "DATASET_MISMATCH",
    "IDENTIFIER_MISMATCH",
    "OUT_OF_RESOURCES",
    "UNABLE_TO_PROCESS",
    "DicomError",
    "InvalidInstance",
    "StorageFull",
]

OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (storage full)
DATASET_MISMATCH = 0xA900  # Error: data set does not match SOP class
IDENTIFIER_MISMATCH = 0xA900  # C-FIND/MOVE/GET: identifier does not match SOP class
CANNOT_UNDERSTAND = 0xC210  # Error: cannot understand (C-STORE)
UNABLE_TO_PROCESS = 0xC000  # C-FIND: unable to process (0xCxxx range)


class DicomError(ValidationError):
    """Root of the adapter's errors; ``status`` is what the DIMSE reply carries."""

    default_status: ClassVar[int] = UNABLE_TO_PROCESS

    def __init__(
        self, message: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.status = self.default_status if status is None else status


class InvalidInstance(DicomError):
    """A payload that cannot be archived: not DICOM, corrupt, or without its UIDs.

    ``status`` is 0xC210 (cannot understand) for bytes that do not parse and
    0xA900 (data set does not match SOP class) for a parsed data set lacking
    what every composite instance must carry.
    """

    default_status: ClassVar[int] = CANNOT_UNDERSTAND


class StorageFull(DicomError):
    """The file store ran out of space; the sender should try again later (0xA700)."""

    default_status: ClassVar[int] = OUT_OF_RESOURCES
