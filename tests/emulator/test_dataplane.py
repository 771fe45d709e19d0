"""Account data planes over plain HTTPS, with keys from the real ARM client."""

from __future__ import annotations

import time

import pytest

from tests.emulator.test_arm import SUBSCRIPTION, account_id

DENIED = "Access denied due to invalid subscription key or wrong API endpoint."


@pytest.fixture
def account(emulator, unique_name):
    emulator.control.add_account(account_id(unique_name))
    return unique_name


def keys(emu, name, group="rg-test"):
    return emu.arm_client(SUBSCRIPTION).accounts.list_keys(group, name)


def test_both_key_headers_are_accepted_and_the_probe_answers_200(emulator, account, http):
    current = keys(emulator, account)
    url = emulator.dataplane_url(account)
    assert http.get(url, headers={"api-key": current.key1}).status_code == 200
    assert http.get(url, headers={"Ocp-Apim-Subscription-Key": current.key2}).status_code == 200
    posted = http.post(
        url + "openai/deployments/gpt/chat/completions",
        headers={"api-key": current.key1},
        json={"messages": []},
    )
    assert posted.status_code == 200


def test_models_list(emulator, account, http):
    response = http.get(
        emulator.dataplane_url(account) + "openai/models",
        params={"api-version": "2024-10-21"},
        headers={"api-key": keys(emulator, account).key1},
    )
    body = response.json()
    assert response.status_code == 200 and body["object"] == "list"
    assert {"gpt-4o", "gpt-4o-mini"} <= {model["id"] for model in body["data"]}


@pytest.mark.parametrize("headers", [{}, {"api-key": "0" * 32}, {"Ocp-Apim-Subscription-Key": "nope"}])
def test_missing_or_wrong_keys_get_the_real_401_body(emulator, account, http, headers):
    response = http.get(emulator.dataplane_url(account), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"
    assert response.json()["error"]["message"].startswith(DENIED)


def test_a_key_of_another_account_is_rejected(emulator, account, http, unique_name):
    other = unique_name + "x"
    emulator.control.add_account(account_id(other))
    response = http.get(emulator.dataplane_url(account), headers={"api-key": keys(emulator, other).key1})
    assert response.status_code == 401


def test_regenerated_key_is_rejected_at_once(emulator, account, http):
    before = keys(emulator, account)
    after = emulator.arm_client(SUBSCRIPTION).accounts.regenerate_key("rg-test", account, "Key1")
    url = emulator.dataplane_url(account)
    assert http.get(url, headers={"api-key": before.key1}).status_code == 401
    assert http.get(url, headers={"api-key": after.key1}).status_code == 200
    assert http.get(url, headers={"api-key": before.key2}).status_code == 200


def test_local_auth_disabled_rejects_every_key(emulator, account, http):
    current = keys(emulator, account)
    emulator.control.set_disable_local_auth(account, True)
    response = http.get(emulator.dataplane_url(account), headers={"api-key": current.key1})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationTypeDisabled"


def test_unknown_account_is_404(emulator, http, unique_name):
    assert http.get(emulator.dataplane_url(unique_name), headers={"api-key": "x"}).status_code == 404


def test_propagation_delay_holds_back_a_new_key_but_not_the_revocation(fresh_emulator):
    fresh_emulator.control.set_propagation(60)
    client = fresh_emulator.arm_client()
    before = client.accounts.list_keys("rg-demo", "ai-services")
    after = client.accounts.regenerate_key("rg-demo", "ai-services", "Key2")
    url = fresh_emulator.dataplane_url("ai-services")
    with fresh_emulator.http_client() as http:
        assert http.get(url, headers={"api-key": before.key2}).status_code == 401
        assert http.get(url, headers={"api-key": after.key2}).status_code == 401
        assert http.get(url, headers={"api-key": before.key1}).status_code == 200
        fresh_emulator.control.advance_clock(61)
        assert http.get(url, headers={"api-key": after.key2}).status_code == 200


def test_short_propagation_passes_in_real_time(fresh_emulator):
    fresh_emulator.control.set_propagation(0.5)
    after = fresh_emulator.arm_client().accounts.regenerate_key("rg-demo", "ai-services", "Key1")
    url = fresh_emulator.dataplane_url("ai-services")
    with fresh_emulator.http_client() as http:
        assert http.get(url, headers={"api-key": after.key1}).status_code == 401
        time.sleep(0.6)
        assert http.get(url, headers={"api-key": after.key1}).status_code == 200
