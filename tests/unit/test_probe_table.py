"""The probe table and the verdict mapping (pure): only a 2xx to an authenticated request accepts a key;
every request the table picks is a documented, authenticated route of the gateway for that kind and shape."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.gateway import Shape, route
from rotation.model import ProbeOverride
from rotation.ports import DataPlane, ProbeResult
from shared.azure.probe_table import (
    ISSUE_TOKEN,
    REGION_HEADER,
    EndpointShape,
    endpoint_shape,
    probe_request,
    verdict,
)

NAMED_KINDS = [
    "OpenAI", "AIServices", "CognitiveServices", "TextAnalytics", "SpeechServices", "TextTranslation",
    "ComputerVision", "FormRecognizer", "ContentSafety",
]  # fmt: skip
DENIED = "Access denied due to invalid subscription key or wrong API endpoint."
INVALID_KEY = {"error": {"code": "401", "message": DENIED}}
FIREWALL = {"error": {"code": "403", "message": "Access denied due to Virtual Network/Firewall rules."}}
KEYLESS_MESSAGE = "Key based authentication is disabled for this resource."
KEYLESS = {"error": {"code": "AuthenticationTypeDisabled", "message": KEYLESS_MESSAGE}}
TRANSLATOR_DENIED = {"error": {"code": 401000, "message": "x"}}
NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
bodies = st.one_of(
    st.sampled_from([INVALID_KEY, FIREWALL, KEYLESS, NOT_FOUND, TRANSLATOR_DENIED]).map(
        lambda body: json.dumps(body).encode()
    ),
    st.binary(max_size=64),
)
kinds = st.one_of(st.sampled_from(NAMED_KINDS), st.text(min_size=1, max_size=20))
locations = st.sampled_from(["eastus", "westeurope", "global", "switzerlandnorth"])
_GATEWAY_SHAPE = {EndpointShape.CUSTOM: Shape.CUSTOM, EndpointShape.REGIONAL: Shape.REGIONAL,
                  EndpointShape.GLOBAL: Shape.GLOBAL}  # fmt: skip


@given(status=st.integers(100, 599), body=bodies, firewall_header=st.booleans())
def test_only_a_2xx_accepts_a_key(status: int, body: bytes, firewall_header: bool) -> None:
    headers = {"policy-id": "ThrowExceptionDueToTrafficDenied"} if firewall_header else {}
    result = verdict(status, body, headers)
    assert (result is ProbeResult.ACCEPTED) == (200 <= status < 300)
    if status == 401:
        assert result is ProbeResult.REFUSED
    if status not in (401, 403) and not 200 <= status < 300:
        assert result is ProbeResult.INCONCLUSIVE  # 404, 3xx, 429, 5xx… prove nothing


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (401, INVALID_KEY, {}, ProbeResult.REFUSED),
        (403, INVALID_KEY, {}, ProbeResult.REFUSED),
        (403, FIREWALL, {}, ProbeResult.NETWORK_DENIED),
        (403, {"error": {"code": "403", "message": "Forbidden"}},
         {"Policy-Id": "ThrowExceptionDueToTrafficDenied"}, ProbeResult.NETWORK_DENIED),
        (403, KEYLESS, {}, ProbeResult.LOCAL_AUTH_DISABLED),
        (404, NOT_FOUND, {}, ProbeResult.INCONCLUSIVE),
        (302, {}, {}, ProbeResult.INCONCLUSIVE),
        (429, {}, {}, ProbeResult.INCONCLUSIVE),
        (503, {}, {}, ProbeResult.INCONCLUSIVE),
        (200, {}, {}, ProbeResult.ACCEPTED),
    ],
)  # fmt: skip
def test_each_documented_answer_has_its_verdict(status, body, headers, expected) -> None:
    assert verdict(status, json.dumps(body).encode(), headers) is expected


@given(kind=kinds, custom_subdomain=st.booleans(), location=locations)
def test_the_request_is_an_authenticated_route_of_that_kind_and_shape(kind, custom_subdomain, location):
    request = probe_request(DataPlane("https://x.example/", kind, location, custom_subdomain))
    shape = endpoint_shape(kind, custom_subdomain)
    api = route(_GATEWAY_SHAPE[shape], request.method, request.path.split("?")[0])
    assert api is not None and api.authenticated, (kind, shape, request)
    assert request.path and not request.path.startswith("/")  # never the endpoint's root
    assert request.key_header.lower() in api.key_headers
    if kind in NAMED_KINDS:
        assert kind in api.kinds
    else:
        assert request == ISSUE_TOKEN  # kinds the table does not know: the documented token check


@given(kind=kinds, custom_subdomain=st.booleans(), location=locations, valid_key=st.booleans())
def test_a_gateway_that_routes_first_never_accepts_a_revoked_key(kind, custom_subdomain, location, valid_key):
    """Model of the hardest gateway: unknown path → 404 whatever the key; known path → 401 unless the key is
    live. The probe's verdict for a revoked key is never ACCEPTED; for a live one it is."""
    request = probe_request(DataPlane("https://x.example/", kind, location, custom_subdomain))
    shape = _GATEWAY_SHAPE[endpoint_shape(kind, custom_subdomain)]
    api = route(shape, request.method, request.path.split("?")[0])
    status = 404 if api is None else (200 if valid_key else 401)
    body = NOT_FOUND if status == 404 else INVALID_KEY
    result = verdict(status, json.dumps(body).encode())
    assert (result is ProbeResult.ACCEPTED) == valid_key


@given(location=locations, custom_subdomain=st.booleans())
def test_translator_sends_the_region_of_a_regional_resource(location: str, custom_subdomain: bool) -> None:
    request = probe_request(DataPlane("https://x.example/", "TextTranslation", location, custom_subdomain))
    headers = dict(request.headers)
    assert headers.get(REGION_HEADER) == (None if location == "global" else location)
    assert endpoint_shape("TextTranslation", custom_subdomain) is (
        EndpointShape.CUSTOM if custom_subdomain else EndpointShape.GLOBAL
    )
    other = probe_request(DataPlane("https://x.example/", "SpeechServices", location, custom_subdomain))
    assert REGION_HEADER not in dict(other.headers)


def test_an_override_is_sent_as_configured() -> None:
    override = ProbeOverride("GET", "/language/x?api-version=1", "api-key")
    request = probe_request(DataPlane("https://x.example/", "OpenAI", "eastus", True), override)
    assert (request.method, request.path, request.key_header, request.headers) == (
        "GET", "language/x?api-version=1", "api-key", ()
    )  # fmt: skip
    assert request.describe() == "GET language/x?api-version=1 (api-key)"
