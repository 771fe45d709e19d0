"""Key Vault secrets through the real SecretClient (and raw HTTPS for wire details)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from tests.emulator.conftest import VAULT_SCOPE, arm_scope, token_for


def test_set_get_latest_and_by_version(emulator, unique_name):
    client = emulator.secret_client()
    first = client.set_secret(unique_name, "one", content_type="text/plain", tags={"slot": "key1"})
    second = client.set_secret(unique_name, "two")
    assert first.properties.version != second.properties.version
    assert client.get_secret(unique_name).value == "two"
    old = client.get_secret(unique_name, first.properties.version)
    assert old.value == "one" and old.properties.tags == {"slot": "key1"}
    assert old.properties.content_type == "text/plain"
    assert old.id == f"{emulator.vault_url}secrets/{unique_name}/{first.properties.version}"
    assert old.properties.created_on is not None and old.properties.updated_on is not None
    assert old.properties.recovery_level == "Recoverable+Purgeable"


def test_names_are_case_insensitive_like_key_vault(emulator, unique_name):
    client = emulator.secret_client()
    client.set_secret(unique_name, "v")
    assert client.get_secret(unique_name.upper()).value == "v"


def test_update_properties_enabled_nbf_exp_and_disabled_get_is_forbidden(emulator, unique_name):
    client = emulator.secret_client()
    created = client.set_secret(unique_name, "v", not_before=None)
    exp = int(time.time()) + 86400
    updated = client.update_secret_properties(
        unique_name,
        created.properties.version,
        enabled=False,
        tags={"a": "b"},
        content_type="x",
        expires_on=dt.datetime.fromtimestamp(exp, dt.UTC),
    )
    assert updated.enabled is False and updated.tags == {"a": "b"} and updated.content_type == "x"
    assert int(updated.expires_on.timestamp()) == exp
    with pytest.raises(HttpResponseError) as raised:
        client.get_secret(unique_name)
    assert raised.value.status_code == 403
    assert raised.value.error.code == "Forbidden"
    assert "SecretDisabled" in str(raised.value.response.text())
    client.update_secret_properties(unique_name, enabled=True)
    assert client.get_secret(unique_name).value == "v"


def test_get_unknown_secret_or_version_is_secret_not_found(emulator, unique_name):
    client = emulator.secret_client()
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_secret(unique_name)
    assert raised.value.error.code == "SecretNotFound"
    client.set_secret(unique_name, "v")
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(unique_name, "0" * 32)


def test_list_secrets_and_versions_page_with_absolute_next_links(emulator, unique_name, http):
    client = emulator.secret_client()
    for index in range(7):
        client.set_secret(f"{unique_name}-{index}", "v")
        client.set_secret(unique_name, f"v{index}")
    names = [p.name for p in client.list_properties_of_secrets(max_page_size=3)]
    assert {f"{unique_name}-{i}" for i in range(7)} | {unique_name} <= set(names)
    assert len(names) == len(set(names))
    versions = list(client.list_properties_of_secret_versions(unique_name, max_page_size=2))
    assert len(versions) == 7 and len({v.version for v in versions}) == 7

    token = token_for(emulator, VAULT_SCOPE)
    headers = {"Authorization": f"Bearer {token}"}
    page = http.get(
        f"/secrets/{unique_name}/versions",
        params={"api-version": "2026-04-01", "maxresults": 3},
        headers=headers,
    ).json()
    assert len(page["value"]) == 3
    assert page["nextLink"].startswith(emulator.base_url + f"/secrets/{unique_name}/versions?")
    last = page
    seen = 3
    while last["nextLink"]:
        last = http.get(last["nextLink"], headers=headers).json()
        seen += len(last["value"])
    assert seen == 7 and last["nextLink"] is None
    too_big = http.get("/secrets", params={"api-version": "2026-04-01", "maxresults": 26}, headers=headers)
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "BadParameter"


def test_delete_then_404_then_409_on_set_until_purged_or_recovered(emulator, unique_name):
    client = emulator.secret_client()
    client.set_secret(unique_name, "v")
    deleted = client.begin_delete_secret(unique_name).result()
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{unique_name}")
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(unique_name)
    with pytest.raises(ResourceExistsError) as raised:
        client.set_secret(unique_name, "again")
    assert raised.value.status_code == 409
    assert client.get_deleted_secret(unique_name).name == unique_name
    client.begin_recover_deleted_secret(unique_name).result()
    assert client.get_secret(unique_name).value == "v"
    client.begin_delete_secret(unique_name).result()
    client.purge_deleted_secret(unique_name)
    assert client.set_secret(unique_name, "fresh").value == "fresh"
    with pytest.raises(ResourceNotFoundError):
        client.begin_delete_secret(unique_name + "-missing")


@pytest.mark.parametrize("name", ["bad_name", "has.dot", "x" * 128])
def test_invalid_names_are_bad_parameter_and_store_nothing(emulator, name):
    client = emulator.secret_client()
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret(name, "v")
    assert raised.value.status_code == 400 and raised.value.error.code == "BadParameter"
    assert name not in {p.name for p in client.list_properties_of_secrets()}


def test_value_size_limit_is_25_kb(emulator, unique_name):
    client = emulator.secret_client()
    assert client.set_secret(unique_name, "x" * 25 * 1024).value == "x" * 25 * 1024
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret(unique_name, "x" * (25 * 1024 + 1))
    assert raised.value.status_code == 400 and raised.value.error.code == "BadParameter"
    assert len(list(client.list_properties_of_secret_versions(unique_name))) == 1


def test_too_many_tags_are_rejected(emulator, unique_name):
    client = emulator.secret_client()
    with pytest.raises(HttpResponseError) as raised:
        client.set_secret(unique_name, "v", tags={f"t{i}": "v" for i in range(16)})
    assert raised.value.status_code == 400


def test_challenge_is_answered_before_the_body_is_read(emulator, http, unique_name):
    response = http.put(f"/secrets/{unique_name}", params={"api-version": "2026-04-01"}, content=b"")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert 'resource="https://vault.azure.net"' in challenge
    assert response.json()["error"]["code"] == "Unauthorized"


def test_wrong_or_missing_tokens_are_unauthorized(emulator, http, unique_name):
    arm_token = token_for(emulator, arm_scope(emulator))
    for headers in ({"Authorization": f"Bearer {arm_token}"}, {"Authorization": "Bearer garbage"}, {}):
        response = http.get(f"/secrets/{unique_name}/", params={"api-version": "2026-04-01"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Unauthorized"


def test_sdk_with_a_credential_for_the_wrong_audience_fails(emulator, unique_name):
    class ArmTokenOnly:
        def __init__(self, inner):
            self.inner = inner

        def get_token(self, *scopes, **kwargs):
            return self.inner.get_token(arm_scope(emulator), **kwargs)

    client = emulator.secret_client(credential=ArmTokenOnly(emulator.credential()))
    with pytest.raises(ClientAuthenticationError):
        client.get_secret(unique_name)


def test_missing_api_version_is_bad_parameter(emulator, http):
    token = token_for(emulator, VAULT_SCOPE)
    response = http.get("/secrets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadParameter"
