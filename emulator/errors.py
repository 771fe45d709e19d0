"""Error bodies in each emulated service's own envelope (Key Vault, ARM, data plane, identity, Event Grid)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

KEYVAULT = "keyvault"
ARM = "arm"
DATAPLANE = "dataplane"
IDENTITY = "identity"
EVENTGRID = "eventgrid"

_DEFAULT_CODES: dict[str, dict[int, str]] = {
    KEYVAULT: {
        400: "BadParameter",
        401: "Unauthorized",
        403: "Forbidden",
        404: "SecretNotFound",
        409: "Conflict",
        429: "Throttled",
        500: "InternalServerError",
        503: "ServiceUnavailable",
    },
    ARM: {
        400: "BadRequest",
        401: "InvalidAuthenticationToken",
        403: "AuthorizationFailed",
        404: "ResourceNotFound",
        409: "Conflict",
        429: "TooManyRequests",
        500: "InternalServerError",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    },
    EVENTGRID: {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        429: "TooManyRequests",
        500: "InternalServerError",
        503: "ServiceUnavailable",
    },
}


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    media_type: str = "application/json; charset=utf-8",
) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=dict(headers or {}),
        media_type=media_type,
    )


def keyvault_error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    inner_code: str | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner_code:
        error["innererror"] = {"code": inner_code}
    all_headers = {"x-ms-request-id": str(uuid.uuid4()), **(headers or {})}
    return json_response({"error": error}, status, all_headers)


def arm_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    request_id = str(uuid.uuid4())
    all_headers = {
        "x-ms-request-id": request_id,
        "x-ms-correlation-request-id": request_id,
        "x-ms-failure-cause": "gateway" if status in (401, 429) else "service",
        **(headers or {}),
    }
    return json_response({"error": {"code": code, "message": message}}, status, all_headers)


DATAPLANE_DENIED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)


# The firewall's answer to a caller outside networkAcls (code "403", like a refused key's).
FIREWALL_MESSAGE = "Access denied due to Virtual Network/Firewall rules."
LOCAL_AUTH_DISABLED_MESSAGE = "Key based authentication is disabled for this resource."
# Translator's own envelope: a numeric code, 401000 for a missing or invalid key (or a missing region).
TRANSLATOR_DENIED_MESSAGE = "The request is not authorized because credentials are missing or invalid."


def dataplane_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def identity_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status, headers
    )


def eventgrid_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def injected_error(family: str, status: int, code: str | None, retry_after: float | None) -> Response:
    """The response of an injected ``status`` fault, shaped like the real service's error."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        )
    message = f"Injected fault: HTTP {status} from the emulator's control API."
    if family == IDENTITY:
        return identity_error(status, message, headers)
    if family == DATAPLANE:
        return dataplane_error(status, code or str(status), message, headers)
    chosen = code or _DEFAULT_CODES.get(family, {}).get(
        status, "InternalServerError" if status >= 500 else "BadRequest"
    )
    if family == KEYVAULT:
        return keyvault_error(status, chosen, message, headers)
    if family == ARM:
        return arm_error(status, chosen, message, headers)
    return eventgrid_error(status, chosen, message, headers)


# Key Vault's data action per emulated operation, named in its RBAC denial.
_SECRET_ACTIONS = {
    "keyvault.set_secret": "setSecret/action",
    "keyvault.get_secret": "getSecret/action",
    "keyvault.delete_secret": "delete",
    "keyvault.update_secret_properties": "update/action",
}


def keyvault_forbidden_by_rbac(vault: str, operation: str) -> Response:
    """What a vault in RBAC mode answers a caller that has no role granting the data action (the body of
    a real denial: piyushsachdeva/Terraform_AKS#2; docs/EMULATOR.md "Several vaults")."""
    action = _SECRET_ACTIONS.get(operation, "readMetadata/action")
    return keyvault_error(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or "
        "role definitions were changed recently, please observe propagation time.\r\n"
        f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}'\r\nAssignment: (not found)\r\n"
        f"DecisionReason: 'DeniedWithNoValidRBAC'\r\nVault: {vault};location=eastus\r\n",
        inner_code="ForbiddenByRbac",
    )
