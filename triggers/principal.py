"""App Service Authentication's `X-MS-CLIENT-PRINCIPAL` header: parse it strictly, check the admin role.

The header is base64 of `{"auth_typ","claims":[{"typ","val"}],"name_typ","role_typ"}`. App Service
strips any client-sent `X-MS-*` header and sets this one itself, but only when authentication is enabled
on the app — so it is consulted only when the `ADMIN_ROLE` setting says the deployment enabled it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

PRINCIPAL_HEADER = "x-ms-client-principal"
FUNCTION_KEY_REQUESTER = "function-key"

# Role claims appear as `roles` (Entra access tokens) or under the type named by `role_typ`.
_ROLE_CLAIM = "roles"
_DEFAULT_NAME_TYPES = (
    "name",
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
)
# Real principals are a few KB; anything far larger is not one.
_MAX_HEADER_CHARS = 16 * 1024
_MAX_CLAIMS = 500
_MAX_REQUESTER_CHARS = 128
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")


@dataclass(frozen=True)
class Principal:
    name: str | None
    roles: frozenset[str]


@dataclass(frozen=True)
class AuthDecision:
    """`requester` when allowed; otherwise the HTTP status (401 or 403) and a reason safe to return."""

    requester: str | None
    status: int | None = None
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        return self.requester is not None


class InvalidPrincipal(ValueError):
    """The header is not a principal App Service would send (bad base64, JSON or shape)."""


def parse_principal(header_value: str) -> Principal:
    """Decode the header; raise InvalidPrincipal for anything that is not the documented shape."""
    if len(header_value) > _MAX_HEADER_CHARS:
        raise InvalidPrincipal("principal header too large")
    compact = "".join(header_value.split())
    if not compact:
        raise InvalidPrincipal("principal header is empty")
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as error:
        # RecursionError: deeply nested JSON fits in 16 KB; it is no principal App Service would send.
        raise InvalidPrincipal("principal header is not base64-encoded JSON") from error
    return _principal_from_document(document)


def _principal_from_document(document: Any) -> Principal:
    if not isinstance(document, dict):
        raise InvalidPrincipal("principal is not a JSON object")
    claims = document.get("claims")
    if not isinstance(claims, list) or len(claims) > _MAX_CLAIMS:
        raise InvalidPrincipal("principal has no claims list")
    name_typ = _optional_string(document, "name_typ")
    role_typ = _optional_string(document, "role_typ")
    _optional_string(document, "auth_typ")
    pairs: list[tuple[str, str]] = []
    for claim in claims:
        if not isinstance(claim, dict):
            raise InvalidPrincipal("principal claim is not an object")
        typ, val = claim.get("typ"), claim.get("val")
        if not isinstance(typ, str) or not isinstance(val, str):
            raise InvalidPrincipal("principal claim lacks string typ/val")
        pairs.append((typ, val))
    role_types = {_ROLE_CLAIM} | ({role_typ} if role_typ else set())
    roles = frozenset(val for typ, val in pairs if typ in role_types)
    name_types = ((name_typ,) if name_typ else ()) + _DEFAULT_NAME_TYPES
    name = next((val for wanted in name_types for typ, val in pairs if typ == wanted and val.strip()), None)
    return Principal(name=name, roles=roles)


def _optional_string(document: dict[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidPrincipal(f"principal field {field} is not a string")
    return value or None


def requester_label(principal: Principal) -> str:
    """What history records as the requester: the principal's name, cleaned and bounded."""
    if not principal.name:
        return "unnamed-principal"
    cleaned = _UNPRINTABLE.sub("?", principal.name.strip())
    return cleaned[:_MAX_REQUESTER_CHARS]


def authorize(headers: Any, admin_role: str | None) -> AuthDecision:
    """Decide who is calling. Without ADMIN_ROLE the function key alone authorises (header ignored)."""
    if not admin_role:
        return AuthDecision(requester=FUNCTION_KEY_REQUESTER)
    header_value = headers.get(PRINCIPAL_HEADER)
    if header_value is not None and not isinstance(header_value, str):
        return AuthDecision(None, 401, "invalid X-MS-CLIENT-PRINCIPAL: not a string")
    if header_value is None:
        return AuthDecision(None, 401, "missing X-MS-CLIENT-PRINCIPAL (App Service Authentication required)")
    try:
        principal = parse_principal(header_value)
    except InvalidPrincipal as error:
        return AuthDecision(None, 401, f"invalid X-MS-CLIENT-PRINCIPAL: {error}")
    if admin_role not in principal.roles:
        return AuthDecision(None, 403, "the caller lacks the required app role")
    return AuthDecision(requester=requester_label(principal))
