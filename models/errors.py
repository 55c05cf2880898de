"""The one exception tree of Huren.

Every error the hub raises on purpose derives from :class:`HurenError`; the
edges (MLLP ACK, DICOM status, FHIR OperationOutcome, HTTP status, portal
form message) translate these into protocol replies and nothing deeper does.
"""

from __future__ import annotations


class HurenError(Exception):
    """Root of every error Huren raises deliberately.

    ``field`` names where the trouble is (an HL7 field such as ``ORC-2``, a form
    field), so the edge that replies can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigurationError(HurenError):
    """The settings cannot be used as given (bad value, demo secret in production)."""


class ValidationError(HurenError):
    """Input broke a domain rule."""


class InvalidResidentId(ValidationError):
    """An 18-digit resident identity number that fails GB 11643 checks."""


class TransitionError(ValidationError):
    """A status change the lifecycle does not allow (e.g. final back to preliminary)."""


class NotFound(HurenError):
    """A referenced record does not exist."""


class Conflict(HurenError):
    """The change collides with existing state (duplicate identifier, stale version)."""


class AuthenticationError(HurenError):
    """Credentials were wrong, the account is locked or not allowed here."""


class PermissionDenied(HurenError):
    """The caller is known but its role or facility does not allow the action."""


class DatabaseUnavailable(HurenError):
    """The database is unreachable or stayed locked past the busy timeout: retry later.

    Edges answer with a transient refusal (AE ACK, DICOM 0xA700, HTTP 503)
    so senders retry; nothing was stored.
    """
