"""Access tokens the emulated managed identity issues and the emulated services check.

Tokens are JWT-shaped (HS256 with the emulator's own signing key) so an application that peeks at claims
sees the usual ``aud``/``exp``/``tid``; only a token signed by this emulator is accepted, and each service
checks the audience like Azure does (a Key Vault token is not an ARM token). Expiry uses wall time, not
the emulator clock, so moving the clock for Key Vault events never invalidates the SDKs' cached tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from enum import Enum

TOKEN_LIFETIME_SECONDS = 24 * 3600


class TokenProblem(Enum):
    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"


class TokenRejected(Exception):
    def __init__(self, problem: TokenProblem, audience: str | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.audience = audience


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_on: int
    resource: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normalise_audience(audience: str) -> str:
    return audience.rstrip("/").lower()


class TokenAuthority:
    def __init__(self, signing_key: bytes, tenant_id: str, principal_id: str) -> None:
        self._key = signing_key
        self.tenant_id = tenant_id
        self.principal_id = principal_id

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def issue(self, resource: str, client_id: str | None = None) -> IssuedToken:
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "tid": self.tenant_id,
            "oid": self.principal_id,
            "sub": self.principal_id,
            "appid": client_id or self.principal_id,
            "idtyp": "app",
            "uti": uuid.uuid4().hex,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}"
        token = f"{signing_input}.{self._sign(signing_input)}"
        return IssuedToken(token, claims["exp"], resource)  # type: ignore[arg-type]

    def check_authorization(self, authorization: str | None, audiences: frozenset[str]) -> dict[str, object]:
        """Validate an ``Authorization: Bearer`` header; raise :class:`TokenRejected` with the reason."""
        if not authorization:
            raise TokenRejected(TokenProblem.MISSING)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenRejected(TokenProblem.MALFORMED)
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise TokenRejected(TokenProblem.MALFORMED)
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise TokenRejected(TokenProblem.BAD_SIGNATURE)
        try:
            claims = json.loads(_unb64(parts[1]))
        except ValueError as error:
            raise TokenRejected(TokenProblem.MALFORMED) from error
        if int(claims.get("exp", 0)) <= time.time():
            raise TokenRejected(TokenProblem.EXPIRED)
        audience = str(claims.get("aud", ""))
        if normalise_audience(audience) not in audiences:
            raise TokenRejected(TokenProblem.WRONG_AUDIENCE, audience)
        return dict(claims)
