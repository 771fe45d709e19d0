"""The one table that turns azure-core errors into domain errors, with what an operator needs to act on
them: the service, the endpoint it was called at, the HTTP status and error code, and the likely fix.

Messages never carry a response body (I5: bodies of some calls hold keys) and are never built by matching
a message text: the status, the service's error code, the exception class and facts the process can check
itself (does the CA file a setting names exist?) choose the advice.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

import requests
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from rotation.errors import AzureAccessDenied, AzureRequestRejected, RotationError, TransientAzureError

_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The settings through which requests/azure-core find the CA bundle (the emulator's CA locally).
CA_SETTINGS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class Service:
    """What an operation prefix (``keyvault.``, ``arm.``, ``table.``…) talks to, and the role it needs."""

    name: str
    role: str
    local: str  # what serves it on a developer machine


SERVICES = {
    "keyvault": Service(
        "Key Vault", "'Key Vault Secrets Officer' on the vault (RBAC mode)", "the emulator (make local)"
    ),
    "arm": Service(
        "Azure Resource Manager",
        "the 'AI Services Key Rotator' role (accounts/read, listKeys/action, regenerateKey/action) on the "
        "account",
        "the emulator (make local)",
    ),
    "table": Service("Table Storage", "'Storage Table Data Contributor' on the storage account", "Azurite"),
    "queue": Service("Queue Storage", "'Storage Queue Data Contributor' on the storage account", "Azurite"),
    "eventgrid": Service("Event Grid", "'EventGrid Data Sender' on the topic", "the emulator (make local)"),
    "web": Service(
        "App Service (Key Vault references)",
        "the 'AI Services Key Rotation Consumer Refresher' role on the site (docs/DEPLOY.md \"Consumers\")",
        "the emulator (make local)",
    ),
    "apim": Service(
        "API Management (named values)",
        "the 'AI Services Key Rotation Consumer Refresher' role on the API Management service",
        "the emulator (make local)",
    ),
}
_UNKNOWN = Service("Azure", "the role this call needs", "the emulator")


def service_of(operation: str) -> Service:
    return SERVICES.get(operation.split(".", 1)[0], _UNKNOWN)


def retry_after_seconds(error: HttpResponseError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def missing_ca_file() -> tuple[str, str] | None:
    """The CA setting (name, path) that names a file that does not exist, if any."""
    for name in CA_SETTINGS:
        path = os.environ.get(name)
        if path and not os.path.exists(path):
            return name, path
    return None


def translate(error: BaseException, operation: str, endpoint: str = "") -> RotationError:
    """Map an error raised by ``operation`` (e.g. ``arm.regenerate_key``) at ``endpoint`` to a domain
    error whose message says what to do. Takes azure-core errors and the ``OSError`` that requests raises
    before any request is sent (a CA bundle path that no longer exists)."""
    service = service_of(operation)
    where = f"{operation} at {endpoint.rstrip('/')}" if endpoint else operation
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        status = error.status_code
        code = getattr(getattr(error, "error", None), "code", None) or (error.reason or "")
        head = f"{where}: HTTP {status} {code}".rstrip()
        if status in (401, 403):
            return AzureAccessDenied(f"{head} — {_access_advice(service, status)}")
        if status in _TRANSIENT_STATUSES:
            advice = _transient_advice(service, status)
            return TransientAzureError(f"{head} — {advice}", retry_after_seconds(error))
        return AzureRequestRejected(f"{head} — {_rejected_advice(operation, service, status)}")
    network = isinstance(error, OSError | ServiceRequestError | ServiceResponseError)
    missing = missing_ca_file() if network else None
    if missing is not None:
        name, path = missing
        return TransientAzureError(
            f"{where}: certificate file missing: {name}={path} does not exist — point {name} at a CA bundle "
            "that exists (locally: the ca.pem of the running emulator, named in its env file), or unset it "
            "to use the system's CAs"
        )
    if isinstance(error, OSError):
        return TransientAzureError(f"{where}: {type(error).__name__} before the request was sent (local I/O)")
    if _tls_failure(error):
        return TransientAzureError(
            f"{where}: TLS failed: the server's certificate is not trusted — locally, set REQUESTS_CA_BUNDLE "
            "and SSL_CERT_FILE to the emulator's CA (the env file `make local` writes has both); in Azure, "
            "check that nothing intercepts TLS between this host and the endpoint"
        )
    if isinstance(error, ServiceRequestError):
        return TransientAzureError(
            f"{where}: not reachable ({type(error).__name__}: connection failed) — is {service.name} running "
            f"at that address (locally: {service.local}), is the URL setting right, and does the network "
            "(DNS, firewall, private endpoint) let this host reach it?"
        )
    if isinstance(error, ServiceResponseError):
        return TransientAzureError(
            f"{where}: no complete answer ({type(error).__name__}: timeout or connection reset) — "
            f"{service.name} is slow or the connection dropped; retried by a later invocation"
        )
    return TransientAzureError(f"{where}: {type(error).__name__}")


def _tls_failure(error: BaseException) -> bool:
    """azure-core wraps the transport's exception: look for an SSL error among the causes (by class)."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | requests.exceptions.SSLError):
            return True
        seen = getattr(seen, "inner_exception", None) or seen.__cause__ or seen.__context__
    return False


def _access_advice(service: Service, status: int) -> str:
    if status == 401:
        return (
            "the credential was not accepted: check the managed identity (AZURE_CLIENT_ID, or "
            "IDENTITY_ENDPOINT/IDENTITY_HEADER locally) and that its token is for this tenant and cloud"
        )
    return f"the identity is missing a role or action: grant {service.role}"


def _transient_advice(service: Service, status: int) -> str:
    if status == 429:
        return f"{service.name} is throttling; the engine backs off and retries (honouring Retry-After)"
    return f"{service.name} answered with a server error; a later invocation retries"


def _rejected_advice(operation: str, service: Service, status: int) -> str:
    if status == 404 and operation.startswith("arm."):
        return (
            "no such account: check the resource id in ROTATION_TARGETS (subscription, resource group, "
            "name), that the account exists, and that the identity has a role on it"
        )
    if status == 404 and operation.startswith("table."):
        return "the table does not exist yet: nothing has been recorded (run a sweep to create it)"
    if status == 404:
        return f"not found at {service.name}: check the URL setting"
    return f"{service.name} rejected the request as invalid; retrying the same call will not help"
