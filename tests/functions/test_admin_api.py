"""The admin HTTP API end to end (emulator + Azurite), every response checked against triggers/openapi.json,
and fuzzed: random bodies, headers, principals and route values never give a 5xx and never change anything."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.builders import http_request, principal_header
from tests.functions.harness import FunctionHarness, account_id, body_of
from tests.functions.openapi_check import assert_documented, spec

ROLE = "Rotation.Admin"
ACCOUNT = "fn-admin"
OTHER = "fn-admin-two"
ADMIN = {"x-ms-client-principal": principal_header("alice@contoso.com", (ROLE,))}


@pytest.fixture(scope="module")
def harness(emulator: Any, azurite: Any) -> Iterator[FunctionHarness]:
    for name in (ACCOUNT, OTHER):
        emulator.control.add_account(account_id(name))
    targets = [{"resourceId": account_id(name), "rotationPeriod": "P30D", "drainTime": "PT1H"}
               for name in (ACCOUNT, OTHER)]
    h = FunctionHarness(emulator, azurite, targets, ADMIN_ROLE=ROLE)
    with h.active():
        h.timer()  # adopt both targets
        yield h


def _call(h: FunctionHarness, function: str, req: Any) -> Any:
    response = h.handler(function)(req)
    assert_documented(req, response)
    return response


def _rotate_req(name: str, body: bytes, headers: dict[str, str]) -> Any:
    encoded = quote(name, safe="")
    return http_request("POST", f"/api/targets/{encoded}/rotate", route_params={"name": encoded},
                        headers=headers, body=body)


def _get_req(name: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
    encoded = quote(name, safe="")
    return http_request("GET", f"/api/targets/{encoded}", route_params={"name": encoded}, headers=headers,
                        params=params)


def test_list_and_get_targets(harness: FunctionHarness) -> None:
    listed = _call(harness, "admin_list_targets", http_request("GET", "/api/targets", headers=ADMIN))
    assert listed.status_code == 200
    names = {t["accountName"]: t for t in body_of(listed)["targets"]}
    assert set(names) == {ACCOUNT, OTHER} and names[ACCOUNT]["phase"] == "idle"
    for name in (ACCOUNT, account_id(ACCOUNT)):  # account name or URL-encoded resource id
        one = _call(harness, "admin_get_target", _get_req(name, ADMIN, {"limit": "5"}))
        assert one.status_code == 200
        document = body_of(one)
        assert document["target"]["target"] == account_id(ACCOUNT)
        assert [row["step"] for row in document["history"]] == ["adopt"]
        assert one.headers["Cache-Control"] == "no-store"


def test_key_age_report_per_target_with_slot_ages_and_failures(harness: FunctionHarness) -> None:
    before = harness.snapshot()
    response = _call(harness, "admin_key_age_report",
                     http_request("GET", "/api/report", headers=ADMIN, params={"windowDays": "7"}))
    assert response.status_code == 200
    report = body_of(response)
    assert report["windowSeconds"] == 7 * 86400
    rows = {row["accountName"]: row for row in report["targets"]}
    assert set(rows) == {ACCOUNT, OTHER}
    for row in rows.values():
        # adopted keys existed before the service stored them: their age is a lower bound, said so
        assert [s["slot"] for s in row["slots"]] == ["key1", "key2"]
        assert all(s["storedAt"] and s["ageSeconds"] >= 0 for s in row["slots"])
        assert sum(s["active"] for s in row["slots"]) == 1
        assert row["nextDueAt"] and row["overdue"] is False and row["failuresInWindow"] >= 0
    assert harness.snapshot() == before  # reading changes nothing
    for bad in ({"windowDays": "0"}, {"windowDays": "x"}, {"windowDays": "400"}):
        rejected = _call(harness, "admin_key_age_report",
                         http_request("GET", "/api/report", headers=ADMIN, params=bad))
        assert rejected.status_code == 400 and "windowDays" in body_of(rejected)["error"]["message"]


def test_rotate_records_the_principal_and_never_starts_a_second_cycle(harness: FunctionHarness) -> None:
    h = harness
    body = json.dumps({"reason": "suspected leak"}).encode()
    first = _call(h, "admin_rotate", _rotate_req(account_id(OTHER), body, ADMIN))
    assert first.status_code == 202, first.get_body()
    outcome = body_of(first)
    assert outcome["status"] == "started" and outcome["state"]["phase"] == "draining"
    before = h.snapshot()
    second = _call(h, "admin_rotate", _rotate_req(OTHER, body, ADMIN))
    assert second.status_code == 409
    assert body_of(second)["error"]["code"] == "cycle_in_progress"
    assert body_of(second)["outcome"]["cycleId"] == outcome["cycleId"]
    state_after, _, calls_after = h.snapshot()
    assert state_after == before[0] and calls_after == before[2]  # the refusal is only recorded in history
    history = body_of(_call(h, "admin_get_target", _get_req(OTHER, ADMIN)))["history"]
    started = [row for row in history if row["step"] == "cycle" and row["outcome"] == "started"]
    assert [row["requester"] for row in started] == ["alice@contoso.com"]
    assert started[0]["reason"] == "suspected leak"


def test_no_response_carries_a_key_value(harness: FunctionHarness) -> None:
    arm = harness.emulator.arm_client(subscription_id=account_id(ACCOUNT).split("/")[2])
    listed = [arm.accounts.list_keys("rg-functions", name) for name in (ACCOUNT, OTHER)]
    keys = [k for pair in listed for k in vars(pair).values()
            if isinstance(k, str) and len(k) >= 16]
    assert len(keys) == 4
    texts = [harness.list_targets(ADMIN).get_body().decode()]
    texts += [harness.get_target(name, {"limit": "100"}, ADMIN).get_body().decode()
              for name in (ACCOUNT, OTHER)]
    for text in texts:
        assert not any(key in text for key in keys)


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"x-ms-client-principal": "bm90IGpzb24="}, 401),
    ({"x-ms-client-principal": principal_header(roles=("Reader",))}, 403),
])
def test_auth_failures_are_documented_and_change_nothing(harness: FunctionHarness, headers: dict[str, str],
                                                         status: int) -> None:
    before = harness.snapshot()
    for function, req in (
        ("admin_rotate", _rotate_req(ACCOUNT, b'{"reason": "x"}', headers)),
        ("admin_list_targets", http_request("GET", "/api/targets", headers=headers)),
        ("admin_get_target", _get_req(ACCOUNT, headers)),
    ):
        response = _call(harness, function, req)
        assert response.status_code == status, function
    assert harness.snapshot() == before


@pytest.mark.parametrize(("name", "body", "status", "code"), [
    ("no-such-account", b'{"reason": "x"}', 404, "unknown_target"),
    (account_id("no-such-account"), b'{"reason": "x"}', 404, "unknown_target"),
    (ACCOUNT, b"{", 400, "bad_request"),
    (ACCOUNT, b'{"reason": "x", "force": "yes"}', 400, "bad_request"),
    (ACCOUNT, b'{"reason": "x", "admin": true}', 400, "bad_request"),
    (ACCOUNT, b"{}", 400, "bad_request"),
    (ACCOUNT, b" " * 20000, 413, "payload_too_large"),
    ("../../etc", b'{"reason": "x"}', 400, "bad_request"),
])
def test_bad_rotate_requests(harness: FunctionHarness, name: str, body: bytes, status: int,
                             code: str) -> None:
    before = harness.snapshot()
    response = _call(harness, "admin_rotate", _rotate_req(name, body, ADMIN))
    assert (response.status_code, body_of(response)["error"]["code"]) == (status, code)
    assert harness.snapshot() == before


def test_bad_get_requests(harness: FunctionHarness) -> None:
    assert _call(harness, "admin_get_target", _get_req("nope", ADMIN)).status_code == 404
    assert _call(harness, "admin_get_target", _get_req(ACCOUNT, ADMIN, {"limit": "0"})).status_code == 400


def test_without_admin_role_the_function_key_is_the_requester(emulator: Any, azurite: Any) -> None:
    name = "fn-admin-nokey"
    emulator.control.add_account(account_id(name))
    h = FunctionHarness(emulator, azurite, [{"resourceId": account_id(name), "drainTime": "PT1H"}])
    with h.active():
        forged = {"x-ms-client-principal": principal_header("mallory", ())}
        response = h.rotate(name, {"reason": "no role configured"}, forged)
        assert response.status_code == 202, response.get_body()
        history = body_of(h.get_target(name, headers=forged))["history"]
        assert [row["requester"] for row in history if row["step"] == "cycle"] == ["function-key"]


def test_misconfigured_app_answers_503_naming_the_setting(emulator: Any, azurite: Any) -> None:
    h = FunctionHarness(emulator, azurite, [{"resourceId": account_id(ACCOUNT)}], SWEEP_CONCURRENCY="lots")
    with h.active():
        response = h.list_targets()
        assert_documented(http_request("GET", "/api/targets"), response)
        assert response.status_code == 503
        assert "SWEEP_CONCURRENCY" in body_of(response)["error"]["message"]
        with pytest.raises(Exception, match="SWEEP_CONCURRENCY"):
            h.timer()


# -- fuzzing -----------------------------------------------------------------------------------------

_ROTATE_BODY_SCHEMA = spec().spec / "paths" / "/targets/{name}/rotate" / "post" / "requestBody" / "content" \
    / "application/json" / "schema"


def _is_valid_rotate_body(body: bytes) -> bool:
    """Independent of the handler: does the OpenAPI request schema accept this body?"""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    schema = json.loads(json.dumps(_ROTATE_BODY_SCHEMA.read_value()))
    return jsonschema.Draft202012Validator(schema).is_valid(document) and bool(
        isinstance(document, dict) and str(document.get("reason", "")).strip())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"reason": json_values, "force": json_values, "emergency": json_values,
                                        "extra": json_values}).map(lambda v: json.dumps(v).encode()),
)
principals = st.one_of(
    st.none(),
    st.text(max_size=100),
    st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    st.lists(st.fixed_dictionaries({"typ": st.sampled_from(["roles", "name", "role"]),
                                    "val": st.text(max_size=20)}),
             max_size=4).map(lambda claims: principal_header_from_claims(claims)),
)
route_names = st.one_of(st.text(max_size=80), st.sampled_from([ACCOUNT, OTHER, account_id(ACCOUNT), "%",
                                                               "%2F",
                                                               "%ZZ", "a/b", "..", quote(account_id(OTHER))]))


def principal_header_from_claims(claims: list[dict[str, str]]) -> str:
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(document).encode()).decode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(name=route_names, body=bodies, principal=principals, use_admin=st.booleans(),
       method=st.sampled_from(["admin_rotate", "admin_get_target", "admin_list_targets"]),
       limit=st.one_of(st.none(), st.text(max_size=6)))
def test_fuzzed_requests_never_5xx_and_change_nothing(harness: FunctionHarness, name: str, body: bytes,
                                                      principal: str | None, use_admin: bool, method: str,
                                                      limit: str | None) -> None:
    anonymous = {} if principal is None else {"x-ms-client-principal": principal}
    headers = dict(ADMIN) if use_admin else anonymous
    if method == "admin_rotate" and use_admin and _is_valid_rotate_body(body):
        body = body + b"}"  # a valid request would (rightly) change things; keep the fuzz to bad input
    params = {} if limit is None else {"limit": limit}
    if method == "admin_rotate":
        req = http_request("POST", "/api/targets/x/rotate", route_params={"name": name}, headers=headers,
                           body=body)
    elif method == "admin_get_target":
        req = http_request("GET", "/api/targets/x", route_params={"name": name}, headers=headers,
                           params=params)
    else:
        req = http_request("GET", "/api/targets", headers=headers, params=params)
    before = harness.snapshot() if method == "admin_rotate" else None
    response = harness.handler(method)(req)
    assert response.status_code < 500, response.get_body()
    document = body_of(response)
    if response.status_code >= 400:
        assert set(document) <= {"error", "outcome"} and document["error"]["code"]
    if before is not None:
        assert response.status_code >= 400
        assert harness.snapshot() == before
