"""The one table that turns azure-core errors into domain errors. Messages carry the operation, the HTTP
status and the service's error code — never the response body (I5: bodies of some calls hold keys)."""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.errors import AzureAccessDenied, AzureRequestRejected, RotationError, TransientAzureError

_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(error: HttpResponseError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def translate(error: AzureError, operation: str) -> RotationError:
    """Map an azure-core error raised by ``operation`` (e.g. ``arm.regenerate_key``) to a domain error."""
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        status = error.status_code
        code = getattr(error, "error", None)
        code_text = getattr(code, "code", None) or (error.reason or "")
        message = f"{operation}: HTTP {status} {code_text}".rstrip()
        if status in (401, 403):
            return AzureAccessDenied(message)
        if status in _TRANSIENT_STATUSES:
            return TransientAzureError(message, retry_after_seconds(error))
        return AzureRequestRejected(message)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientAzureError(f"{operation}: {type(error).__name__} (connection or timeout)")
    return TransientAzureError(f"{operation}: {type(error).__name__}")
