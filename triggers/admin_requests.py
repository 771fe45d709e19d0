"""Validation of the admin API's input: route `{name}`, the rotate body, query parameters.

Each parser returns a value or raises `BadRequest` whose message is safe to return to the caller
(it never echoes more than a clipped identifier).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

MAX_BODY_BYTES = 16 * 1024
MAX_REASON_CHARS = 256
DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 100
DEFAULT_REPORT_DAYS = 30
MAX_REPORT_DAYS = 366

_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# `/subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}`
_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]{1,64}/resourceGroups/[^/]{1,90}/providers/"
    r"Microsoft\.CognitiveServices/accounts/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ROTATE_FIELDS = frozenset({"reason", "force", "emergency"})
RELEASE_FIELDS = frozenset({"reason"})


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RotateRequest:
    reason: str
    force: bool = False
    emergency: bool = False


def target_name(route_params: Any) -> str:
    """The `{name}` route value: an account name or a (URL-encoded) ARM resource id.

    The Functions host does not decode `%2F` inside a route segment, so the id may arrive still
    encoded; unquoting an already-decoded account name or id changes nothing.
    """
    raw = route_params.get("name") if route_params is not None else None
    if not isinstance(raw, str) or not raw:
        raise BadRequest("missing target name")
    if len(raw) > 1024:
        raise BadRequest("target name too long")
    name = raw
    try:
        # Twice: some client libraries encode the id before handing it to one that encodes the path.
        for _ in range(2):
            if "%" in name:
                name = unquote(name, errors="strict")
    except UnicodeDecodeError as error:
        raise BadRequest("target name is not valid percent-encoded UTF-8") from error
    if not (_ACCOUNT_NAME.match(name) or _RESOURCE_ID.match(name)):
        raise BadRequest("target must be an account name or a Cognitive Services account resource id")
    return name


def release_reason(body: bytes) -> str:
    """`{"reason": str}` (releasing a drain held by consumers) — strict like the rotate body."""
    return _reason_only(body)


def rotate_request(body: bytes) -> RotateRequest:
    """`{"reason": str, "force"?: bool, "emergency"?: bool}` — strict: unknown fields are refused."""
    return _parsed_rotate(body, ROTATE_FIELDS)


def _reason_only(body: bytes) -> str:
    return _parsed_rotate(body, RELEASE_FIELDS).reason


def _parsed_rotate(body: bytes, allowed: frozenset[str]) -> RotateRequest:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("request body too large", status=413)
    if not body.strip():
        raise BadRequest("request body must be a JSON object with a reason")
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadRequest("request body is not valid JSON") from error
    if not isinstance(document, dict):
        raise BadRequest("request body must be a JSON object")
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(_clip(field) for field in unknown[:5])}")
    reason = document.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("reason must be a non-empty string")
    if len(reason) > MAX_REASON_CHARS:
        raise BadRequest(f"reason must be at most {MAX_REASON_CHARS} characters")
    if _CONTROL.search(reason):
        raise BadRequest("reason must not contain control characters")
    force, emergency = document.get("force", False), document.get("emergency", False)
    if not isinstance(force, bool):
        raise BadRequest("force must be true or false")
    if not isinstance(emergency, bool):
        raise BadRequest("emergency must be true or false")
    return RotateRequest(reason=reason.strip(), force=force, emergency=emergency)


def history_limit(params: Any) -> int:
    raw = params.get("limit") if params is not None else None
    if raw is None:
        return DEFAULT_HISTORY_LIMIT
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}")
    limit = int(raw)
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}")
    return limit


def report_window(params: Any) -> timedelta:
    """`?windowDays=1..366` (default 30): the window over which the key-age report counts failures."""
    raw = params.get("windowDays") if params is not None else None
    if raw is None:
        return timedelta(days=DEFAULT_REPORT_DAYS)
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 3:
        raise BadRequest(f"windowDays must be an integer from 1 to {MAX_REPORT_DAYS}")
    days = int(raw)
    if not 1 <= days <= MAX_REPORT_DAYS:
        raise BadRequest(f"windowDays must be an integer from 1 to {MAX_REPORT_DAYS}")
    return timedelta(days=days)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _clip(text: str) -> str:
    return json.dumps(text[:40])
