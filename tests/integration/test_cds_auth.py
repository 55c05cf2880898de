"""CDS client authentication: signed JWTs as CDS Hooks 2.0 describes, checked claim by claim."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from integration.cds_auth import CdsAuthenticator, load_clients
from models.errors import AuthenticationError, ValidationError
from tests.conftest import free_port
from tests.hub_helpers import hub_environment, start_hub

ISSUER = "https://his.ql-t09.example"
AUDIENCE = "http://127.0.0.1:8080/cds-services/huren-prior-exams-sign"
KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())


def _jwks(key: ec.EllipticCurvePrivateKey, kid: str = "k1") -> dict[str, Any]:
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [public | {"kid": kid, "alg": "ES384", "use": "sig"}]}


def _clients_file(folder: Path) -> Path:
    path = folder / "cds-clients.json"
    path.write_text(
        json.dumps({"clients": [{"iss": ISSUER, "facility": "QL-T09", "jwks": _jwks(KEY)}]}),
        encoding="utf-8",
    )
    return path


def _token(
    *,
    key: ec.EllipticCurvePrivateKey = KEY,
    kid: str = "k1",
    audience: str = AUDIENCE,
    issuer: str = ISSUER,
    lifetime: int = 240,
    jti: str | None = None,
    alg: str = "ES384",
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def checker(tmp_path: Path) -> CdsAuthenticator:
    return CdsAuthenticator(load_clients(_clients_file(tmp_path)))


def test_a_well_signed_token_names_the_client_and_its_facility(checker: CdsAuthenticator) -> None:
    caller = checker.verify(_token(), audience=AUDIENCE)
    assert (caller.issuer, caller.facility_code) == (ISSUER, "QL-T09")


@pytest.mark.parametrize(
    ("token", "says"),
    [
        (lambda: _token(audience="http://elsewhere/cds-services/x"), "does not verify"),
        (lambda: _token(lifetime=-120), "does not verify"),
        (lambda: _token(issuer="https://stranger.example"), "not a known CDS client"),
        (lambda: _token(kid="k9"), "is not a key"),
        (lambda: _token(key=OTHER_KEY), "does not verify"),
        (lambda: _token(lifetime=3600), "longer than five minutes"),
        (lambda: "not-a-jwt", "not a JWT"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(
    checker: CdsAuthenticator, token: Any, says: str
) -> None:
    with pytest.raises(AuthenticationError) as refused:
        checker.verify(token(), audience=AUDIENCE)
    assert says in str(refused.value)


def test_symmetric_algorithms_are_refused(checker: CdsAuthenticator) -> None:
    now = int(time.time())
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, "jti": "x"},
        "a-shared-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthenticationError, match="ES384 or RS384"):
        checker.verify(forged, audience=AUDIENCE)


def test_a_token_cannot_be_used_twice(checker: CdsAuthenticator) -> None:
    token = _token(jti="once")
    checker.verify(token, audience=AUDIENCE)
    with pytest.raises(AuthenticationError, match="replayed"):
        checker.verify(token, audience=AUDIENCE)


def test_a_broken_clients_file_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"iss": ISSUER, "jwks": _jwks(KEY)}]}))
    with pytest.raises(ValidationError, match="needs iss, facility and jwks"):
        load_clients(path)
    path.write_text("{oops")
    with pytest.raises(ValidationError, match="CDS clients file"):
        load_clients(path)


def test_the_hub_serves_configured_clients_only_with_their_jwt(
    tmp_path: Path, database_url: str
) -> None:
    subprocess.run(
        [sys.executable, "-m", "integration.cli", "demo", "seed", "--scale", "tiny", "--quiet",
         "--fhir-days", "0"],
        env=hub_environment(tmp_path, database_url=database_url),
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    port = free_port()
    clients = _clients_file(tmp_path)
    hub = start_hub(
        tmp_path,
        http_port=port,
        settings={"cds_clients": str(clients), "database_url": database_url},
    )
    url = f"http://127.0.0.1:{port}/cds-services/huren-prior-exams-sign"
    request = {
        "hookInstance": "auth-1",
        "hook": "order-sign",
        "context": {
            "userId": "Practitioner/t09",
            "patientId": "nobody",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": []},
        },
    }
    try:
        with httpx.Client(timeout=30) as client:
            assert client.post(url, json=request).status_code == 401
            wrong = client.post(
                url, json=request, headers={"Authorization": f"Bearer {_token()}"}
            )  # audience is the default port's URL, not this hub's
            assert wrong.status_code == 401 and "does not verify" in wrong.json()["error"]
            good = client.post(
                url, json=request, headers={"Authorization": f"Bearer {_token(audience=url)}"}
            )
            assert good.status_code == 200 and good.json() == {"cards": []}
            assert client.get(f"http://127.0.0.1:{port}/cds-services").status_code == 200
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=60)
