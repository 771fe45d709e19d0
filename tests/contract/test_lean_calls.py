"""The hot calls on the lean azure-core pipeline (shared/azure/lean_calls.py) against the emulator: what they
write is what the SDK reads, and their failures reach the engine as the SDKs' do — the same domain error,
word for word, on the asynchronous path as on the synchronous one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.errors import AzureAccessDenied, AzureRequestRejected, SecretDeleted, TransientAzureError
from rotation.model import SecretValue, Slot
from shared.aio_loop import BlockingClient
from shared.azure.lean_calls import LeanArm, LeanSecrets, key_vault_scope
from shared.bootstrap import build_credential, build_ports
from shared.settings import load_settings

from .conftest import contract_resource_id


def _ports(emulator: EmulatorProcess, azurite: AzuriteProcess, async_io: bool) -> Any:
    settings = load_settings({
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": contract_resource_id("unused")}]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": "leanstate" + uuid.uuid4().hex[:8],
        "ROTATION_ASYNC_IO": str(async_io).lower(),
    })  # fmt: skip
    return build_ports(settings, build_credential(settings))


@pytest.fixture
def both(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    """(synchronous SDK clients, asynchronous path with the lean calls)."""
    emulator.apply_env(monkeypatch)
    sync, lean = _ports(emulator, azurite, False), _ports(emulator, azurite, True)
    assert isinstance(lean.secrets.client, BlockingClient) and isinstance(
        lean.secrets.client._inner, LeanSecrets
    )
    return sync, lean


@pytest.mark.parametrize(
    ("vault_url", "scope"),
    [
        ("https://kv-rot.vault.azure.net/", "https://vault.azure.net/.default"),
        ("https://kv-rot.vault.azure.cn", "https://vault.azure.cn/.default"),
        ("https://KV-Rot.Vault.UsGovCloudApi.net/", "https://vault.usgovcloudapi.net/.default"),
        ("https://127.0.0.1:8443/", "https://vault.azure.net/.default"),  # the emulator: the public audience
    ],
)
def test_the_key_vault_token_is_for_the_clouds_audience(vault_url: str, scope: str) -> None:
    assert key_vault_scope(vault_url) == scope


def test_a_secret_written_by_the_lean_call_reads_back_through_the_sdk_exactly(
    both: tuple[Any, Any], emulator: EmulatorProcess, unique_name: str
) -> None:
    sync, lean = both
    expires = datetime(2031, 5, 6, 7, 8, 9, 500_000, tzinfo=UTC)
    version = lean.secrets.set_secret(unique_name, SecretValue("v1"), {"slot": "key2"}, expires_on=expires)
    with emulator.secret_client() as vault:
        assert isinstance(vault, SecretClient)
        written = vault.get_secret(unique_name)
    assert (written.value, written.properties.version) == ("v1", version)
    assert written.properties.content_type == "text/plain"  # as the SDK path writes it
    assert written.properties.tags == {"slot": "key2"}
    assert written.properties.expires_on == expires.replace(microsecond=0)
    # and each path reads what the other wrote the same way
    assert sync.secrets.get_secret(unique_name) == lean.secrets.get_secret(unique_name)
    sync.secrets.set_secret(unique_name, SecretValue("v2"), {})
    assert sync.secrets.get_secret(unique_name) == lean.secrets.get_secret(unique_name)


def test_list_keys_and_regenerate_on_the_lean_calls_match_the_sdk(
    both: tuple[Any, Any], emulator: EmulatorProcess
) -> None:
    sync, lean = both
    resource_id = contract_resource_id("c" + uuid.uuid4().hex[:10])
    emulator.control.add_account(resource_id)
    client = lean.keys._client(resource_id.split("/")[2])
    assert isinstance(client._inner, LeanArm)
    before = lean.keys.list_keys(resource_id)
    assert before == sync.keys.list_keys(resource_id)
    lean.keys.regenerate_key(resource_id, Slot.KEY2)
    after = sync.keys.list_keys(resource_id)
    assert after.key1 == before.key1 and after.key2 != before.key2
    assert lean.keys.list_keys(resource_id) == after


FAULTS = [
    # (operation, fault, domain error): what the engine sees must not depend on the path
    ("keyvault.get_secret", {"status": 403, "code": "Forbidden"}, AzureAccessDenied),
    ("keyvault.set_secret", {"status": 429, "retry_after": 0.05, "count": 4}, TransientAzureError),
    ("keyvault.set_secret", {"status": 400, "code": "BadParameter"}, AzureRequestRejected),
    ("arm.list_keys", {"status": 403, "code": "AuthorizationFailed"}, AzureAccessDenied),
    ("arm.regenerate_key", {"status": 429, "retry_after": 0.05, "count": 4}, TransientAzureError),
    ("arm.regenerate_key", {"status": 404, "code": "ResourceNotFound"}, AzureRequestRejected),
]


@pytest.mark.parametrize(
    ("operation", "fault", "expected"), FAULTS, ids=[f"{o}-{f['status']}" for o, f, _ in FAULTS]
)
def test_a_failure_reaches_the_engine_as_the_same_error_on_both_paths(
    both: tuple[Any, Any],
    emulator: EmulatorProcess,
    unique_name: str,
    operation: str,
    fault: dict[str, Any],
    expected: type[Exception],
) -> None:
    resource_id = contract_resource_id("c" + uuid.uuid4().hex[:10])
    emulator.control.add_account(resource_id)
    both[0].secrets.set_secret(unique_name, SecretValue("x"), {})
    calls = {
        "keyvault.get_secret": lambda ports: ports.secrets.get_secret(unique_name),
        "keyvault.set_secret": lambda ports: ports.secrets.set_secret(unique_name, SecretValue("y"), {}),
        "arm.list_keys": lambda ports: ports.keys.list_keys(resource_id),
        "arm.regenerate_key": lambda ports: ports.keys.regenerate_key(resource_id, Slot.KEY1),
    }
    seen: list[Exception] = []
    for ports in both:
        emulator.control.add_fault(operation, **{"count": 1, **fault})
        with pytest.raises(expected) as raised:
            calls[operation](ports)
        seen.append(raised.value)
    assert str(seen[0]) == str(seen[1])
    if isinstance(seen[0], TransientAzureError):
        assert seen[0].retry_after_seconds == seen[1].retry_after_seconds == pytest.approx(0.05)


def test_a_deleted_secret_is_named_on_the_lean_call_as_by_the_sdk(
    both: tuple[Any, Any], emulator: EmulatorProcess, unique_name: str
) -> None:
    sync, lean = both
    sync.secrets.set_secret(unique_name, SecretValue("x"), {})
    with emulator.secret_client() as vault:
        vault.begin_delete_secret(unique_name).wait()
    errors = []
    for ports in (sync, lean):
        with pytest.raises(SecretDeleted) as raised:
            ports.secrets.set_secret(unique_name, SecretValue("y"), {})
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
