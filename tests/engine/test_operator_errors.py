"""Errors an operator sees name the Azure service, the endpoint it was called at and the likely fix — made
by the real adapters (shared/azure/errors.py, the one translation table) against the emulator and Azurite."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from rotation.errors import AzureAccessDenied, AzureRequestRejected, TransientAzureError
from shared.bootstrap import build_ports
from shared.settings import load_settings
from tests.engine.harness import resource_id


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def _trust_the_emulator(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the session emulator's CA, as an operator's env file does (each emulator has its own CA)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.env["REQUESTS_CA_BUNDLE"])


def ports_for(emulator: Any, azurite: Any, **overrides: str) -> Any:
    values = {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": resource_id("errs")}]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": "operatorerrors",
        **overrides,
    }
    return build_ports(load_settings(values), emulator.credential())


def test_an_unreachable_key_vault_says_where_and_what_to_check(emulator: Any, azurite: Any) -> None:
    vault = f"https://127.0.0.1:{closed_port()}/"
    ports = ports_for(emulator, azurite, KEY_VAULT_URL=vault)
    with pytest.raises(TransientAzureError) as raised:
        ports.secrets.get_secret("anything")
    message = str(raised.value)
    assert f"keyvault.get_secret at {vault.rstrip('/')}: not reachable" in message
    assert "is Key Vault running at that address" in message and "network" in message


def test_unreachable_storage_names_table_storage_and_azurite(emulator: Any, azurite: Any) -> None:
    port = closed_port()
    storage = azurite.connection_string.replace(
        azurite.connection_string.split("TableEndpoint=")[1].split(";")[0],
        f"http://127.0.0.1:{port}/devstoreaccount1")
    ports = ports_for(emulator, azurite, AzureWebJobsStorage=storage)
    with pytest.raises(TransientAzureError) as raised:
        list(ports.states.list_all())
    message = str(raised.value)
    assert f"table.query_entities at http://127.0.0.1:{port}/devstoreaccount1/operatorerrors" in message
    assert "is Table Storage running" in message and "Azurite" in message


def test_a_missing_ca_file_is_named_with_the_setting(emulator: Any, azurite: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ports = ports_for(emulator, azurite)
    gone = tmp_path / "stale-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(gone))
    with pytest.raises(TransientAzureError) as raised:
        ports.secrets.get_secret("anything")
    message = str(raised.value)
    assert f"certificate file missing: REQUESTS_CA_BUNDLE={gone} does not exist" in message
    assert "keyvault.get_secret at " + emulator.env["KEY_VAULT_URL"].rstrip("/") in message


def test_an_untrusted_certificate_is_not_called_unreachable(emulator: Any, azurite: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    ports = ports_for(emulator, azurite)
    with pytest.raises(TransientAzureError) as raised:
        ports.keys.get_account(resource_id("errs"))
    message = str(raised.value)
    assert "arm.get_account at " + emulator.env["ARM_ENDPOINT"] + ": TLS failed" in message
    assert "REQUESTS_CA_BUNDLE" in message and "not reachable" not in message


def test_a_missing_account_and_a_missing_role_say_what_to_fix(fresh_emulator: Any, azurite: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fresh_emulator.env["REQUESTS_CA_BUNDLE"])
    ports = ports_for(fresh_emulator, azurite)
    with pytest.raises(AzureRequestRejected) as missing:
        ports.keys.get_account(resource_id("no-such-account"))
    assert "HTTP 404 ResourceNotFound" in str(missing.value)
    assert "check the resource id in ROTATION_TARGETS (subscription, resource group" in str(missing.value)
    fresh_emulator.control.add_account(resource_id("norole"))
    fresh_emulator.control.add_fault("arm.list_keys", status=403, code="AuthorizationFailed")
    with pytest.raises(AzureAccessDenied) as denied:
        ports.keys.list_keys(resource_id("norole"))
    message = str(denied.value)
    assert f"arm.list_keys at {fresh_emulator.env['ARM_ENDPOINT']}: HTTP 403 AuthorizationFailed" in message
    assert "grant the 'AI Services Key Rotator' role" in message and "listKeys/action" in message
