"""Account data planes over plain HTTPS, with keys and endpoints from the real ARM client: the gateway's
routes per kind and endpoint shape, 404 before the key check, firewall, disableLocalAuth, Translator."""

from __future__ import annotations

import time

import pytest

from tests.emulator.test_arm import SUBSCRIPTION, account_id

DENIED = "Access denied due to invalid subscription key or wrong API endpoint."
MODELS = "openai/models?api-version=2024-10-21"
ISSUE_TOKEN = "sts/v1.0/issueToken"
RESOURCE_NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
KINDS = [
    "OpenAI", "AIServices", "CognitiveServices", "TextAnalytics", "SpeechServices", "TextTranslation",
    "ComputerVision", "FormRecognizer", "ContentSafety",
]  # fmt: skip


@pytest.fixture
def account(emulator, unique_name):
    emulator.control.add_account(account_id(unique_name))
    return unique_name


def keys(emu, name, group="rg-test"):
    return emu.arm_client(SUBSCRIPTION).accounts.list_keys(group, name)


def endpoint(emu, name, group="rg-test") -> str:
    return str(emu.arm_client(SUBSCRIPTION).accounts.get(group, name).properties.endpoint)


def test_both_key_headers_are_accepted_on_documented_routes(emulator, account, http):
    current = keys(emulator, account)
    url = emulator.dataplane_url(account)
    assert http.get(url + MODELS, headers={"api-key": current.key1}).status_code == 200
    assert http.get(url + MODELS, headers={"Ocp-Apim-Subscription-Key": current.key2}).status_code == 200
    posted = http.post(
        url + "openai/deployments/gpt/chat/completions?api-version=2024-10-21",
        headers={"api-key": current.key1},
        json={"messages": []},
    )
    assert posted.status_code == 200 and posted.json()["object"] == "chat.completion"
    token = http.post(url + ISSUE_TOKEN, headers={"Ocp-Apim-Subscription-Key": current.key1})
    assert token.status_code == 200 and token.text.count(".") == 2
    assert current.key1 not in token.text and current.key2 not in token.text


def test_models_list(emulator, account, http):
    response = http.get(
        emulator.dataplane_url(account) + "openai/models",
        params={"api-version": "2024-10-21"},
        headers={"api-key": keys(emulator, account).key1},
    )
    body = response.json()
    assert response.status_code == 200 and body["object"] == "list"
    assert {"gpt-4o", "gpt-4o-mini"} <= {model["id"] for model in body["data"]}
    assert all(isinstance(model["created_at"], int) for model in body["data"])


@pytest.mark.parametrize("headers", [{}, {"api-key": "0" * 32}, {"Ocp-Apim-Subscription-Key": "nope"}])
def test_missing_or_wrong_keys_get_the_real_401_body(emulator, account, http, headers):
    response = http.get(emulator.dataplane_url(account) + MODELS, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"
    assert response.json()["error"]["message"].startswith(DENIED)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("GET", "status"), ("POST", "openai/models"), ("GET", "sts/v1.0/issueToken"),
     ("GET", "language/analyze"), ("DELETE", "openai/deployments/gpt/chat/completions")],
)  # fmt: skip
def test_a_path_that_is_no_api_is_404_whatever_the_key(emulator, account, http, method, path):
    """Routing comes before the key check: a live, a revoked and no key all get the same 404."""
    revoked = keys(emulator, account).key1
    live = emulator.arm_client(SUBSCRIPTION).accounts.regenerate_key("rg-test", account, "Key1").key1
    for headers in ({"api-key": live}, {"Ocp-Apim-Subscription-Key": live}, {"api-key": revoked}, {}):
        response = http.request(method, emulator.dataplane_url(account) + path, headers=headers)
        assert response.status_code == 404 and response.json() == RESOURCE_NOT_FOUND


def test_a_key_of_another_account_is_rejected(emulator, account, http, unique_name):
    other = unique_name + "x"
    emulator.control.add_account(account_id(other))
    response = http.get(
        emulator.dataplane_url(account) + MODELS, headers={"api-key": keys(emulator, other).key1}
    )
    assert response.status_code == 401


def test_regenerated_key_is_rejected_at_once(emulator, account, http):
    before = keys(emulator, account)
    after = emulator.arm_client(SUBSCRIPTION).accounts.regenerate_key("rg-test", account, "Key1")
    url = emulator.dataplane_url(account) + MODELS
    assert http.get(url, headers={"api-key": before.key1}).status_code == 401
    assert http.get(url, headers={"api-key": after.key1}).status_code == 200
    assert http.get(url, headers={"api-key": before.key2}).status_code == 200


def test_local_auth_disabled_answers_403_authentication_type_disabled(emulator, account, http):
    current = keys(emulator, account)
    emulator.control.set_disable_local_auth(account, True)
    for headers in ({"api-key": current.key1}, {"api-key": "0" * 32}):
        response = http.get(emulator.dataplane_url(account) + MODELS, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "AuthenticationTypeDisabled",
            "message": "Key based authentication is disabled for this resource.",
        }


def test_network_rules_deny_with_the_firewall_body_whatever_the_key(emulator, account, http):
    current = keys(emulator, account)
    emulator.control.set_account(account, network_default_action="Deny")
    got = emulator.arm_client(SUBSCRIPTION).accounts.get("rg-test", account)
    assert got.properties.network_acls.default_action == "Deny"
    for headers in ({"api-key": current.key1}, {"api-key": "0" * 32}):
        response = http.get(emulator.dataplane_url(account) + MODELS, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "403",
            "message": "Access denied due to Virtual Network/Firewall rules.",
        }
        assert response.headers["policy-id"] == "ThrowExceptionDueToTrafficDenied"
    emulator.control.set_account(account, network_default_action="Allow")
    allowed = http.get(emulator.dataplane_url(account) + MODELS, headers={"api-key": current.key1})
    assert allowed.status_code == 200


def test_unknown_account_is_404(emulator, http, unique_name):
    response = http.get(emulator.dataplane_url(unique_name) + MODELS, headers={"api-key": "x"})
    assert response.status_code == 404


def test_regional_endpoint_serves_the_token_check_not_openai_and_the_key_selects_the_account(
    emulator, http, unique_name
):
    emulator.control.add_account(account_id(unique_name), kind="AIServices", custom_subdomain=False)
    elsewhere = unique_name + "w"
    emulator.control.add_account(account_id(elsewhere), custom_subdomain=False, location="westus2")
    base = endpoint(emulator, unique_name)
    assert base == f"{emulator.base_url}/regional/eastus/"
    properties = emulator.arm_client(SUBSCRIPTION).accounts.get("rg-test", unique_name).properties
    assert properties.custom_sub_domain_name is None
    key = keys(emulator, unique_name).key1
    assert http.post(base + ISSUE_TOKEN, headers={"Ocp-Apim-Subscription-Key": key}).status_code == 200
    assert http.get(base + MODELS, headers={"api-key": key}).status_code == 404  # openai/… is not served
    foreign = keys(emulator, elsewhere).key1  # a westus2 key on the eastus host
    assert http.post(base + ISSUE_TOKEN, headers={"Ocp-Apim-Subscription-Key": foreign}).status_code == 401
    assert http.post(endpoint(emulator, elsewhere) + ISSUE_TOKEN,
                     headers={"Ocp-Apim-Subscription-Key": foreign}).status_code == 200  # fmt: skip
    # no custom subdomain: its own host does not exist
    assert http.post(emulator.dataplane_url(unique_name) + ISSUE_TOKEN,
                     headers={"Ocp-Apim-Subscription-Key": key}).status_code == 404  # fmt: skip


def test_global_translator_needs_the_region_of_a_regional_key(emulator, http, unique_name):
    emulator.control.add_account(account_id(unique_name), kind="TextTranslation", location="westeurope")
    base = endpoint(emulator, unique_name)
    assert base == f"{emulator.base_url}/global/translator/"
    key = keys(emulator, unique_name).key2
    url = base + "translate?api-version=3.0&to=fr"
    body = [{"Text": "Hello"}]
    without = http.post(url, headers={"Ocp-Apim-Subscription-Key": key}, json=body)
    assert without.status_code == 401 and without.json()["error"]["code"] == 401000
    wrong = http.post(
        url, headers={"Ocp-Apim-Subscription-Key": key, "Ocp-Apim-Subscription-Region": "eastus"}, json=body
    )
    assert wrong.status_code == 401
    right = http.post(url, headers={"Ocp-Apim-Subscription-Key": key,
                                    "Ocp-Apim-Subscription-Region": "westeurope"}, json=body)  # fmt: skip
    assert right.status_code == 200 and right.json() == [{"translations": [{"text": "Hello", "to": "fr"}]}]
    # The language list needs no key: a 200 there says nothing about one.
    assert http.get(base + "languages?api-version=3.0").status_code == 200
    assert http.post(base + ISSUE_TOKEN, headers={"Ocp-Apim-Subscription-Key": key}).status_code == 404


def test_a_global_translator_resource_needs_no_region(emulator, http, unique_name):
    emulator.control.add_account(account_id(unique_name), kind="TextTranslation", location="global")
    key = keys(emulator, unique_name).key1
    url = endpoint(emulator, unique_name) + "translate?api-version=3.0&to=de"
    assert http.post(url, headers={"Ocp-Apim-Subscription-Key": key}, json=[{"Text": "a"}]).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_can_be_seeded_and_answers_the_token_check(emulator, http, unique_name, kind):
    emulator.control.add_account(account_id(unique_name), kind=kind, custom_subdomain=True)
    emulator.control.add_account(account_id(unique_name + "r"), kind=kind, custom_subdomain=False)
    got = emulator.arm_client(SUBSCRIPTION).accounts.get("rg-test", unique_name)
    assert got.kind == kind and got.properties.custom_sub_domain_name == unique_name
    assert got.properties.endpoint == emulator.dataplane_url(unique_name)
    shared = endpoint(emulator, unique_name + "r")
    assert shared.endswith("/global/translator/" if kind == "TextTranslation" else "/regional/eastus/")
    key = keys(emulator, unique_name).key1
    token = http.post(
        emulator.dataplane_url(unique_name) + ISSUE_TOKEN, headers={"Ocp-Apim-Subscription-Key": key}
    )
    assert token.status_code == 200
    openai = http.get(emulator.dataplane_url(unique_name) + MODELS, headers={"api-key": key})
    assert openai.status_code == (200 if kind in ("OpenAI", "AIServices") else 404)


def test_propagation_delay_holds_back_a_new_key_but_not_the_revocation(fresh_emulator):
    fresh_emulator.control.set_propagation(60)
    client = fresh_emulator.arm_client()
    before = client.accounts.list_keys("rg-demo", "ai-services")
    after = client.accounts.regenerate_key("rg-demo", "ai-services", "Key2")
    url = fresh_emulator.dataplane_url("ai-services") + MODELS
    with fresh_emulator.http_client() as http:
        assert http.get(url, headers={"api-key": before.key2}).status_code == 401
        assert http.get(url, headers={"api-key": after.key2}).status_code == 401
        assert http.get(url, headers={"api-key": before.key1}).status_code == 200
        fresh_emulator.control.advance_clock(61)
        assert http.get(url, headers={"api-key": after.key2}).status_code == 200


def test_short_propagation_passes_in_real_time(fresh_emulator):
    fresh_emulator.control.set_propagation(0.5)
    after = fresh_emulator.arm_client().accounts.regenerate_key("rg-demo", "ai-services", "Key1")
    url = fresh_emulator.dataplane_url("ai-services") + MODELS
    with fresh_emulator.http_client() as http:
        assert http.get(url, headers={"api-key": after.key1}).status_code == 401
        time.sleep(0.6)
        assert http.get(url, headers={"api-key": after.key1}).status_code == 200
