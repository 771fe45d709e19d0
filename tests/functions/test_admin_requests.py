"""Admin API input validation: route names, the rotate body and query parameters."""

from __future__ import annotations

import json

import pytest

from triggers.admin_requests import (
    MAX_REASON_CHARS,
    BadRequest,
    RotateRequest,
    history_limit,
    rotate_request,
    target_name,
)

RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-ai/providers/"
               "Microsoft.CognitiveServices/accounts/acct-one")


@pytest.mark.parametrize("raw", [
    "acct-one", RESOURCE_ID, RESOURCE_ID.replace("/", "%2F"), RESOURCE_ID.replace("/", "%252F"),
    "%2Fsubscriptions%2F00000000-0000-0000-0000-000000000001/resourceGroups/rg-ai/providers/"
    "Microsoft.CognitiveServices/accounts/acct-one",
])
def test_target_name_accepts_account_names_and_encoded_resource_ids(raw: str) -> None:
    assert target_name({"name": raw}) in ("acct-one", RESOURCE_ID)


@pytest.mark.parametrize("raw", [
    "", "a" * 2000, "../etc", "acct one", "acct%00", "%ff%fe", "/subscriptions/x", "acct/../../x",
    RESOURCE_ID.replace("CognitiveServices", "Storage"), "-leading", "a\u202eb",
])
def test_target_name_refuses_anything_else(raw: str) -> None:
    with pytest.raises(BadRequest) as error:
        target_name({"name": raw})
    assert error.value.status == 400


def test_target_name_missing_route_param() -> None:
    with pytest.raises(BadRequest):
        target_name({})


def test_rotate_request_defaults_and_strips() -> None:
    body = json.dumps({"reason": "  suspected leak  ", "emergency": True}).encode()
    assert rotate_request(body) == RotateRequest(reason="suspected leak", force=False, emergency=True)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"", "reason"), (b"   ", "reason"), (b"{", "not valid JSON"), (b"\xff", "not valid JSON"),
    (b"[]", "JSON object"), (b"null", "JSON object"), (b'"x"', "JSON object"),
    (b'{"reason": ""}', "reason"), (b'{"reason": 5}', "reason"), (b'{"force": true}', "reason"),
    (b'{"reason": "x", "force": "true"}', "force"), (b'{"reason": "x", "emergency": 1}', "emergency"),
    (b'{"reason": "x", "force": null}', "force"), (b'{"reason": "x", "extra": 1}', "unknown field"),
    (b'{"reason": "a\\u0000b"}', "control"), (b'{"reason": NaN}', "not valid JSON"),
    (json.dumps({"reason": "x" * (MAX_REASON_CHARS + 1)}).encode(), "at most"),
    (b"[" * 100000 + b"]" * 100000, "too large"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
])
def test_rotate_request_refuses_bad_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as error:
        rotate_request(body)
    assert fragment in str(error.value)


def test_too_large_body_is_413() -> None:
    with pytest.raises(BadRequest) as error:
        rotate_request(b" " * (17 * 1024))
    assert error.value.status == 413


@pytest.mark.parametrize(("params", "expected"), [({}, 20), ({"limit": "1"}, 1), ({"limit": "100"}, 100)])
def test_history_limit(params: dict[str, str], expected: int) -> None:
    assert history_limit(params) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "abc", "1.5", "", "٣", "99999999"])
def test_history_limit_refuses_out_of_range(raw: str) -> None:
    with pytest.raises(BadRequest):
        history_limit({"limit": raw})
