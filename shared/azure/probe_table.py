"""Which request proves a key, per kind and endpoint shape, and what an answer to it means. Pure: no I/O.

Only a request the service authenticates proves anything. The Cognitive Services gateway answers 404
"Resource not found" for a path that is no API, and whether it checks the key before routing is not
documented — so a 404 (or any answer but 2xx) never counts as accepted. The sources of each row are in
docs/ENGINE.md ("Data-plane verification").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from rotation.model import ProbeOverride
from rotation.ports import DataPlane, ProbeResult

SUBSCRIPTION_KEY = "Ocp-Apim-Subscription-Key"
REGION_HEADER = "Ocp-Apim-Subscription-Region"
# The firewall's 403 carries code "403" like an invalid key's, so the message (and the gateway's policy
# header) is all that tells "your network is not allowed" from "your key is not".
FIREWALL_MESSAGE = "Access denied due to Virtual Network/Firewall rules"
FIREWALL_POLICY = "ThrowExceptionDueToTrafficDenied"
LOCAL_AUTH_DISABLED_CODE = "AuthenticationTypeDisabled"


class EndpointShape(StrEnum):
    CUSTOM = "custom subdomain"  # https://{name}.cognitiveservices.azure.com/ (or openai.azure.com)
    REGIONAL = "regional"  # https://{region}.api.cognitive.microsoft.com/ — the key selects the account
    GLOBAL = "global"  # Translator: https://api.cognitive.microsofttranslator.com/


@dataclass(frozen=True)
class ProbeRequest:
    method: str
    path: str  # relative to the endpoint, query included
    key_header: str
    headers: tuple[tuple[str, str], ...] = ()  # never secret (the region)
    body: bytes | None = None
    content_type: str | None = None

    def describe(self) -> str:
        """``POST sts/v1.0/issueToken`` + headers (names only, and the region): safe to print and log."""
        extra = "".join(f", {name}: {value}" for name, value in self.headers)
        return f"{self.method} {self.path} ({self.key_header}{extra})"


ISSUE_TOKEN = ProbeRequest("POST", "sts/v1.0/issueToken", SUBSCRIPTION_KEY, body=b"")
OPENAI_MODELS = ProbeRequest("GET", "openai/models?api-version=2024-10-21", "api-key")
DOCUMENT_INTELLIGENCE_INFO = ProbeRequest(
    "GET", "documentintelligence/info?api-version=2024-11-30", SUBSCRIPTION_KEY
)
CONTENT_SAFETY_BLOCKLISTS = ProbeRequest(
    "GET", "contentsafety/text/blocklists?api-version=2024-09-01", SUBSCRIPTION_KEY
)
# Translator has no free authenticated read (GET /languages needs no key at all): translate one character.
_ONE_CHARACTER = json.dumps([{"Text": "a"}]).encode()
TRANSLATE_GLOBAL = ProbeRequest(
    "POST", "translate?api-version=3.0&to=en", SUBSCRIPTION_KEY, body=_ONE_CHARACTER,
    content_type="application/json",
)  # fmt: skip
TRANSLATE_CUSTOM = ProbeRequest(
    "POST", "translator/text/v3.0/translate?api-version=3.0&to=en", SUBSCRIPTION_KEY, body=_ONE_CHARACTER,
    content_type="application/json",
)  # fmt: skip

_C, _R, _G = EndpointShape.CUSTOM, EndpointShape.REGIONAL, EndpointShape.GLOBAL
# (kind, shape) → request. Kinds are compared case-insensitively; anything missing gets ISSUE_TOKEN, the
# key check every custom-subdomain and regional endpoint documents.
PROBE_TABLE: dict[tuple[str, EndpointShape], ProbeRequest] = {
    ("openai", _C): OPENAI_MODELS,
    ("openai", _R): ISSUE_TOKEN,  # openai/… is not served on the shared regional host
    ("aiservices", _C): OPENAI_MODELS,
    ("aiservices", _R): ISSUE_TOKEN,
    ("cognitiveservices", _C): ISSUE_TOKEN,
    ("cognitiveservices", _R): ISSUE_TOKEN,
    ("textanalytics", _C): ISSUE_TOKEN,
    ("textanalytics", _R): ISSUE_TOKEN,
    ("speechservices", _C): ISSUE_TOKEN,
    ("speechservices", _R): ISSUE_TOKEN,
    ("computervision", _C): ISSUE_TOKEN,
    ("computervision", _R): ISSUE_TOKEN,
    ("formrecognizer", _C): DOCUMENT_INTELLIGENCE_INFO,
    ("formrecognizer", _R): ISSUE_TOKEN,
    ("contentsafety", _C): CONTENT_SAFETY_BLOCKLISTS,
    ("contentsafety", _R): ISSUE_TOKEN,
    ("texttranslation", _G): TRANSLATE_GLOBAL,
    ("texttranslation", _C): TRANSLATE_CUSTOM,
}
REGION_SCOPED = frozenset({TRANSLATE_GLOBAL, TRANSLATE_CUSTOM})


def endpoint_shape(kind: str, custom_subdomain: bool) -> EndpointShape:
    """ARM's ``customSubDomainName`` decides: without one the endpoint is a shared host."""
    if custom_subdomain:
        return EndpointShape.CUSTOM
    return EndpointShape.GLOBAL if kind.lower() == "texttranslation" else EndpointShape.REGIONAL


def probe_request(plane: DataPlane, override: ProbeOverride | None = None) -> ProbeRequest:
    if override is not None:
        return ProbeRequest(override.method.upper(), override.path.lstrip("/"), override.header)
    shape = endpoint_shape(plane.kind, plane.custom_subdomain)
    request = PROBE_TABLE.get((plane.kind.lower(), shape), ISSUE_TOKEN)
    # A regional Translator (or multi-service) key is refused without its region, even when valid; a
    # resource in "global" needs none.
    if request in REGION_SCOPED and plane.location and plane.location.lower() != "global":
        request = ProbeRequest(
            request.method, request.path, request.key_header, ((REGION_HEADER, plane.location),),
            request.body, request.content_type,
        )  # fmt: skip
    return request


def verdict(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> ProbeResult:
    """2xx accepted; 401 and a key's 403 refused; the firewall's and disableLocalAuth's 403 their own
    verdicts; everything else (404, 3xx, 429, 5xx, …) proves nothing either way."""
    if 200 <= status < 300:
        return ProbeResult.ACCEPTED
    if status == 401:
        return ProbeResult.REFUSED
    if status != 403:
        return ProbeResult.INCONCLUSIVE
    code, message = _error(body)
    if code == LOCAL_AUTH_DISABLED_CODE:
        return ProbeResult.LOCAL_AUTH_DISABLED
    policy = {name.lower(): value for name, value in (headers or {}).items()}.get("policy-id", "")
    if policy == FIREWALL_POLICY or message.startswith(FIREWALL_MESSAGE):
        return ProbeResult.NETWORK_DENIED
    return ProbeResult.REFUSED


def _error(body: bytes) -> tuple[str, str]:
    """(code, message) of the ``{"error": {...}}`` envelope, or empty strings."""
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return "", ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code", "")), str(error.get("message", ""))
