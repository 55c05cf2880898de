"""Who may call the CDS services: CDS Hooks clients with signed JWTs, as the spec describes.

Each client is configured (``HUREN_CDS_CLIENTS``, a JSON file) with its
issuer, the facility it orders for, and its public keys as a JWKS. A call
carries ``Authorization: Bearer <JWT>`` signed with ES384 or RS384, with
``iss`` the client, ``aud`` the service URL called, a short ``exp`` and a
``jti`` not seen before. Without any client configured, only loopback
callers are served.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from models.errors import AuthenticationError, ValidationError

ALGORITHMS = ("ES384", "RS384")
MAX_LIFETIME = 300  # seconds a token may live (the spec asks for at most five minutes)


@dataclass(frozen=True)
class CdsClient:
    issuer: str
    facility_code: str
    keys: Mapping[str, PyJWK]  # by kid


@dataclass(frozen=True)
class CdsCaller:
    issuer: str
    facility_code: str


def load_clients(path: Path) -> dict[str, CdsClient]:
    """Read the clients file; a mistake in it stops the hub with a message naming the client."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(
            f"CDS clients file {path}: {exc}", field="HUREN_CDS_CLIENTS"
        ) from None
    clients: dict[str, CdsClient] = {}
    for number, entry in enumerate(document.get("clients") or []):
        issuer = str(entry.get("iss") or "")
        facility = str(entry.get("facility") or "")
        jwks: Any = entry.get("jwks")
        if jwks is None and entry.get("jwks_file"):
            jwks = json.loads((path.parent / str(entry["jwks_file"])).read_text(encoding="utf-8"))
        if not issuer or not facility or not isinstance(jwks, dict):
            raise ValidationError(
                f"CDS client {number} in {path} needs iss, facility and jwks (or jwks_file)",
                field="HUREN_CDS_CLIENTS",
            )
        keys = {}
        for key in jwks.get("keys") or []:
            kid = str(key.get("kid") or "")
            if not kid:
                raise ValidationError(f"CDS client {issuer}: every key needs a kid", field="jwks")
            keys[kid] = PyJWK.from_dict(key)
        clients[issuer] = CdsClient(issuer=issuer, facility_code=facility, keys=keys)
    return clients


class CdsAuthenticator:
    """Verifies CDS client JWTs; remembers token ids until they expire, to refuse replays."""

    def __init__(self, clients: Mapping[str, CdsClient], *, clock: Any = time.time) -> None:
        self._clients = dict(clients)
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._clients)

    def verify(self, token: str, *, audience: str) -> CdsCaller:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the bearer token is not a JWT: {exc}") from None
        client = self._clients.get(str(unverified.get("iss") or ""))
        if client is None:
            raise AuthenticationError(f"issuer {unverified.get('iss')!r} is not a known CDS client")
        key = client.keys.get(str(header.get("kid") or ""))
        if key is None:
            raise AuthenticationError(f"kid {header.get('kid')!r} is not a key of {client.issuer}")
        if header.get("alg") not in ALGORITHMS:
            raise AuthenticationError(f"alg {header.get('alg')!r}: use ES384 or RS384")
        now = self._clock()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(ALGORITHMS),
                audience=audience,
                issuer=client.issuer,
                options={"require": ["exp", "iat", "jti", "iss", "aud"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the JWT does not verify: {exc}") from None
        if float(claims["exp"]) - now > MAX_LIFETIME + 30:
            raise AuthenticationError("the JWT lives longer than five minutes")
        jti = f"{client.issuer} {claims['jti']}"
        with self._lock:
            for stale in [seen for seen, expiry in self._seen.items() if expiry < now]:
                del self._seen[stale]
            if jti in self._seen:
                raise AuthenticationError("this JWT was used before (jti replayed)")
            self._seen[jti] = float(claims["exp"]) + 60
        return CdsCaller(issuer=client.issuer, facility_code=client.facility_code)
