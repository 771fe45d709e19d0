"""Check admin API responses against triggers/openapi.json with openapi-core."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC_PATH = Path(__file__).resolve().parents[2] / "triggers" / "openapi.json"
HOST = "https://func-rotation.azurewebsites.net"


@lru_cache(maxsize=1)
def spec() -> OpenAPI:
    return OpenAPI.from_dict(json.loads(SPEC_PATH.read_text()))


def assert_documented(req: func.HttpRequest, resp: func.HttpResponse) -> None:
    """Raise if the response (status, headers, body) is not what the document says for that request."""
    path = urlsplit(req.url).path
    request = MockRequest(HOST, req.method, path, args=dict(req.params), data=req.get_body(),
                          headers=dict(req.headers))
    assert resp.mimetype == "application/json", resp.mimetype
    response = MockResponse(resp.get_body(), status_code=resp.status_code, headers=dict(resp.headers),
                            content_type="application/json")
    spec().validate_response(request, response)
