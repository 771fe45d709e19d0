"""JSON responses of the admin API (the shapes are in triggers/openapi.json)."""

from __future__ import annotations

import json
import math
from typing import Any

import azure.functions as func

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(body, sort_keys=True),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**_HEADERS, **(headers or {})},
    )


def error_response(status: int, code: str, message: str, *, retry_after: float | None = None,
                   **extra: Any) -> func.HttpResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    if status == 401:
        # RFC 9110: a 401 names how to authenticate; here that is App Service Authentication (Entra ID).
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="App Service Authentication"'}
    return json_response(status, {"error": {"code": code, "message": message}, **extra}, headers)
