"""Managed identity endpoint (App Service protocol) and token checks by the other services."""

from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError

from emulator.client.credential import EmulatorManagedIdentityCredential
from emulator.client.launcher import EmulatorProcess
from tests.emulator.conftest import VAULT_SCOPE, arm_scope, raw_client, token_for


def test_managed_identity_credential_gets_a_token_with_the_requested_audience(emulator, http):
    with emulator.credential() as credential:
        token = credential.get_token(VAULT_SCOPE)
    assert token.expires_on > time.time() + 3600
    response = http.get(
        "/secrets", params={"api-version": "7.6"}, headers={"Authorization": f"Bearer {token.token}"}
    )
    assert response.status_code == 200


def test_identity_endpoint_answers_the_app_service_protocol(emulator, http):
    response = http.get(
        "/msi/token",
        params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
        headers={"X-IDENTITY-HEADER": emulator.env["IDENTITY_HEADER"]},
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) >= {"access_token", "expires_on", "resource", "token_type"}
    assert body["resource"] == "https://vault.azure.net" and body["token_type"] == "Bearer"
    assert int(body["expires_on"]) > time.time()


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}, 400),
        (
            {"X-IDENTITY-HEADER": "wrong"},
            {"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
            401,
        ),
        (None, {"api-version": "2017-09-01", "resource": "https://vault.azure.net"}, 400),
        (None, {"api-version": "2019-08-01"}, 400),
    ],
    ids=["missing-header", "wrong-header", "wrong-api-version", "missing-resource"],
)
def test_identity_endpoint_rejects_bad_requests(emulator, http, headers, params, status):
    if headers is None:
        headers = {"X-IDENTITY-HEADER": emulator.env["IDENTITY_HEADER"]}
    response = http.get("/msi/token", params=params, headers=headers)
    assert response.status_code == status
    assert "access_token" not in response.json()


def test_credential_with_a_wrong_identity_header_fails(emulator):
    credential = EmulatorManagedIdentityCredential(
        emulator.env["IDENTITY_ENDPOINT"], "not-the-header", emulator.ca_bundle
    )
    with pytest.raises((CredentialUnavailableError, ClientAuthenticationError)):
        credential.get_token(VAULT_SCOPE)


def test_a_vault_token_is_not_an_arm_token_and_vice_versa(emulator, http):
    vault_token = token_for(emulator, VAULT_SCOPE)
    arm_token = token_for(emulator, arm_scope(emulator))
    account = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo"
        "/providers/Microsoft.CognitiveServices/accounts/ai-services"
    )
    arm = http.get(
        account, params={"api-version": "2025-09-01"}, headers={"Authorization": f"Bearer {vault_token}"}
    )
    assert arm.status_code == 401
    assert arm.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    vault = http.get(
        "/secrets", params={"api-version": "7.6"}, headers={"Authorization": f"Bearer {arm_token}"}
    )
    assert vault.status_code == 401
    assert "AKV10022" in vault.json()["error"]["message"]
    assert (
        arm.status_code == 401
        and http.get(
            account, params={"api-version": "2025-09-01"}, headers={"Authorization": f"Bearer {arm_token}"}
        ).status_code
        == 200
    )


def test_only_tokens_issued_by_this_emulator_are_accepted(emulator, fresh_emulator):
    foreign = token_for(fresh_emulator, VAULT_SCOPE)
    with raw_client(emulator) as http:
        response = http.get(
            "/secrets", params={"api-version": "7.6"}, headers={"Authorization": f"Bearer {foreign}"}
        )
        forged = http.get(
            "/secrets",
            params={"api-version": "7.6"},
            headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.sig"},
        )
    assert response.status_code == 401 and response.json()["error"]["code"] == "Unauthorized"
    assert forged.status_code == 401


def test_identity_endpoint_faults_surface_through_the_credential(fresh_emulator: EmulatorProcess):
    fresh_emulator.control.add_fault("identity.token", status=500, count=1)
    with (
        pytest.raises((CredentialUnavailableError, ClientAuthenticationError)),
        fresh_emulator.credential(retry_total=0) as credential,
    ):
        credential.get_token(VAULT_SCOPE)
    fresh_emulator.control.clear_faults()
    with fresh_emulator.credential() as credential:
        assert credential.get_token(VAULT_SCOPE).token
    assert fresh_emulator.control.calls()["identity.token"] >= 2


def test_raw_https_is_required(emulator):
    plain = emulator.base_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/_emulator/health", timeout=5)
