"""``POST /api/targets/{name}/release`` (issue 14): an admin releases a drain held by a stuck App Service
site, through the real handler and trigger types; every response checked against triggers/openapi.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.functions.builders import http_request, principal_header
from tests.functions.harness import SUBSCRIPTION, FunctionHarness, account_id, body_of
from tests.functions.openapi_check import assert_documented

ROLE = "Rotation.Admin"
ACCOUNT = "fn-release"
SITE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-functions/providers/Microsoft.Web/sites/fn-rel-web"
ADMIN = {"x-ms-client-principal": principal_header("alice@contoso.com", (ROLE,))}


@pytest.fixture(scope="module")
def harness(emulator: Any, azurite: Any) -> Iterator[FunctionHarness]:
    emulator.control.add_account(account_id(ACCOUNT))
    targets = [{"resourceId": account_id(ACCOUNT), "consumers": [{"kind": "appService", "resourceId": SITE}]}]
    h = FunctionHarness(emulator, azurite, targets, ADMIN_ROLE=ROLE)
    with h.active():
        h.timer()  # adoption writes P-active
        reference = f"@Microsoft.KeyVault(SecretUri={emulator.vault_url}secrets/{ACCOUNT}-active)"
        emulator.control.add_site(SITE, {"OPENAI_KEY": reference})
        emulator.control.shape_consumer(SITE, stuck=True)
        yield h


def _release(h: FunctionHarness, body: bytes, headers: dict[str, str] = ADMIN) -> Any:
    encoded = quote(ACCOUNT, safe="")
    req = http_request("POST", f"/api/targets/{encoded}/release", route_params={"name": encoded},
                       headers=headers, body=body)
    response = h.handler("admin_release_drain")(req)
    assert_documented(req, response)
    return response


def test_release_needs_a_reason_and_a_held_drain(harness: FunctionHarness) -> None:
    before = harness.snapshot()
    assert _release(harness, b"{}").status_code == 400
    assert _release(harness, b'{"reason": "x", "force": true}').status_code == 400
    assert _release(harness, b'{"reason": "x"}', headers={}).status_code == 401
    idle = _release(harness, b'{"reason": "nothing is held"}')
    assert idle.status_code == 409 and body_of(idle)["error"]["code"] == "nothing_to_release"
    assert harness.snapshot() == before


def test_an_admin_releases_a_drain_held_by_a_stuck_site(harness: FunctionHarness) -> None:
    rotated = harness.rotate(ACCOUNT, {"reason": "quarterly"}, headers=ADMIN)
    assert rotated.status_code == 202
    state = body_of(harness.get_target(ACCOUNT, headers=ADMIN))["target"]
    assert state["phase"] == "draining" and "still resolves version" in state["consumersWaiting"]
    released = _release(harness, json.dumps({"reason": "site decommissioned"}).encode())
    assert released.status_code == 200
    outcome = body_of(released)
    assert outcome["status"] == "released" and outcome["state"]["drainReleasedBy"] == "alice@contoso.com"
    history = body_of(harness.get_target(ACCOUNT, headers=ADMIN))["history"]
    assert any(r["step"] == "request" and r["outcome"] == "released" and r["reason"] == "site decommissioned"
               for r in history)
