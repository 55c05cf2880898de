"""Errors of the HL7 adapter.

Every error that ends in an ACK carries what the ACK needs: ``field`` (where,
e.g. ``"MSH-9"`` or ``"PID"``), ``hl7_error_code`` (HL7 table 0357) and
``ack_code`` (AE when the message was understood but could not be applied,
AR when the hub refuses the message itself).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models.errors import ValidationError

AckCode = Literal["AA", "AE", "AR"]


class HL7Error(ValidationError):
    """Root of the adapter's errors; defaults suit an application error (AE, 207)."""

    default_code: ClassVar[str] = "207"
    ack_code: ClassVar[AckCode] = "AE"

    def __init__(
        self, message: str, *, field: str | None = None, hl7_error_code: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.hl7_error_code = hl7_error_code or self.default_code

    @property
    def reason(self) -> str:
        return str(self)


class ER7Error(HL7Error):
    """The bytes are not a well-formed ER7 message; the hub refuses them (AR).

    ``control_id`` is MSH-10 when the header could still be read, so the AR
    can name the message it answers; otherwise "".
    """

    default_code: ClassVar[str] = "102"
    ack_code: ClassVar[AckCode] = "AR"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hl7_error_code: str | None = None,
        control_id: str = "",
    ) -> None:
        super().__init__(message, field=field, hl7_error_code=hl7_error_code)
        self.control_id = control_id


class UnsupportedMessage(HL7Error):
    """Type, event, version or processing id the hub does not take (AR, 200-203)."""

    default_code: ClassVar[str] = "200"
    ack_code: ClassVar[AckCode] = "AR"


class MappingError(HL7Error):
    """A parsed message lacks or garbles what the hub needs to apply it (AE, 100-103)."""

    default_code: ClassVar[str] = "101"
    ack_code: ClassVar[AckCode] = "AE"


class FramingError(ValidationError):
    """Bytes on an MLLP connection that are not a usable frame.

    Not raised by the decoder: it hands these out as events, in stream order,
    so that a bad frame never costs the good ones around it. ``data`` holds the
    offending bytes (for an oversize frame, only its head).
    """

    def __init__(self, message: str, *, data: bytes = b"") -> None:
        super().__init__(message, field=None)
        self.data = data

    @property
    def reason(self) -> str:
        return str(self)


class JunkOutsideFrame(FramingError):
    """Bytes between frames (e.g. a sender that forgot the MLLP start block)."""

    @property
    def blank(self) -> bool:
        """Only whitespace, as some senders put after the end block: harmless."""
        return not self.data.strip()


class TruncatedFrame(FramingError):
    """A frame abandoned by a new start block before its end block."""


class FrameTooLarge(FramingError):
    """A frame over the size limit; ``data`` is its head (enough for the MSH)."""

    def __init__(self, message: str, *, data: bytes = b"", limit: int) -> None:
        super().__init__(message, data=data)
        self.limit = limit
