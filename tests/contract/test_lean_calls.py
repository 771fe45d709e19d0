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

from .conftest import contract_resource_id, ports_on_path, storage_path


@pytest.fixture
def both(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    """(synchronous SDK clients, asynchronous path with the lean calls)."""
    emulator.apply_env(monkeypatch)
    sync, lean = ports_on_path(emulator, azurite, "false"), ports_on_path(emulator, azurite, "true")
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
    answered = lean.keys.regenerate_key(resource_id, Slot.KEY2)
    after = sync.keys.list_keys(resource_id)
    assert after.key1 == before.key1 and after.key2 != before.key2
    assert lean.keys.list_keys(resource_id) == after == answered


@pytest.mark.parametrize(
    "fault",
    [
        # azure-core sends a POST again after a 500, 503 or 504, or any answer with Retry-After
        {"status": 503, "when": "after"},  # the first POST regenerated, its answer was lost
        {"status": 500},  # the first POST failed before it ran
        {"status": 429, "retry_after": 0.05},  # throttled
    ],
    ids=["answer-lost", "failed-first", "throttled"],
)
def test_a_retried_regenerate_answers_none_on_both_paths(
    both: tuple[Any, Any], emulator: EmulatorProcess, fault: dict[str, Any]
) -> None:
    """azure-core retried the POST, so its answer may be an earlier POST's: the caller must list the keys."""
    for ports in both:
        resource_id = contract_resource_id("c" + uuid.uuid4().hex[:10])
        emulator.control.add_account(resource_id)
        before = ports.keys.list_keys(resource_id)
        emulator.control.reset_calls()
        emulator.control.add_fault("arm.regenerate_key", count=1, **fault)
        assert ports.keys.regenerate_key(resource_id, Slot.KEY1) is None
        assert emulator.control.calls()["arm.regenerate_key"] == 2
        after = ports.keys.list_keys(resource_id)
        assert after.key1 != before.key1 and after.key2 == before.key2


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


def test_an_entity_written_by_the_lean_calls_is_typed_as_the_sdk_types_it(azurite: AzuriteProcess) -> None:
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    name = "lean" + uuid.uuid4().hex[:8]
    table = storage_path("sync", azurite).table(name)
    table.create_table()
    lean = storage_path("async", azurite).table(name)
    assert isinstance(lean, BlockingClient) and type(lean._inner).__name__ == "LeanTable"
    entity = {"PartitionKey": "p'1", "RowKey": "r-2", "text": "t", "flag": True, "small": 7,
              "tat": 1733150000.0, "gone": None}  # fmt: skip
    created = lean.create_entity(entity)
    read = table.get_entity("p'1", "r-2")
    assert created["etag"] == read.metadata["etag"]
    assert {k: read[k] for k in ("text", "flag", "small", "tat")} == {
        "text": "t", "flag": True, "small": 7, "tat": 1733150000.0
    }  # fmt: skip
    assert "gone" not in read
    # typed as the SDK types them: a whole float stays an Edm.Double, an int an Edm.Int32
    assert isinstance(read["tat"], float) and type(read["small"]) is int
    got = lean.get_entity("p'1", "r-2")
    # the same properties, the same types (the service's Timestamp is an Edm.DateTime the adapters never read)
    assert {k: (v, type(v)) for k, v in read.items() if k != "Timestamp"} == {
        k: (v, type(v)) for k, v in got.items() if k != "Timestamp"
    }
    assert got.metadata["etag"] == read.metadata["etag"]
    # a replace under the ETag moves it; under the old one it is refused, as the SDK refuses it
    moved = lean.update_entity({**entity, "small": 8}, mode=UpdateMode.REPLACE, etag=created["etag"],
                               match_condition=MatchConditions.IfNotModified)  # fmt: skip
    assert moved["etag"] != created["etag"] and table.get_entity("p'1", "r-2")["small"] == 8
    from azure.core.exceptions import ResourceModifiedError

    for client in (lean, table):
        with pytest.raises(ResourceModifiedError):
            client.update_entity({**entity, "small": 9}, mode=UpdateMode.REPLACE, etag=created["etag"],
                                 match_condition=MatchConditions.IfNotModified)  # fmt: skip
    with pytest.raises(ValueError, match="replaces"):
        lean.update_entity(entity, mode=UpdateMode.MERGE)
    for client in (lean, table):  # an int past int32 only as an explicit Edm.Int64, by both
        with pytest.raises(TypeError, match="too large"):
            client.create_entity({"PartitionKey": "p", "RowKey": "big", "n": 2**40})
    table.delete_table()


def test_a_wrong_account_key_is_reported_the_same_way_on_both_paths(azurite: AzuriteProcess) -> None:
    from shared.azure.tables import TableStateStore

    wrong = azurite.connection_string.replace("AccountKey=", "AccountKey=AAAA")
    name = "lean" + uuid.uuid4().hex[:8]
    seen = []
    for path in ("sync", "async"):
        client = storage_path(path, azurite, wrong).table(name)
        with pytest.raises(AzureAccessDenied) as raised:
            TableStateStore(client).get("some-target")
        seen.append(str(raised.value))
    assert seen[0] == seen[1] and "HTTP 403" in seen[0]


def test_a_message_sent_on_the_lean_call_is_received_as_the_sdk_sends_it(azurite: AzuriteProcess) -> None:
    """Put Message (a deferral): the content round-trips through the Functions trigger's base64, the
    visibility delay holds, and a missing queue fails with the SDK's error class on both paths."""
    from azure.core.exceptions import ResourceNotFoundError

    name = "leanq-" + uuid.uuid4().hex[:8]
    sync, lean = storage_path("sync", azurite).queue(name), storage_path("async", azurite).queue(name)
    assert isinstance(lean, BlockingClient) and type(lean._inner).__name__ == "LeanQueue"
    sync.create_queue()
    content = json.dumps({"target": "/subscriptions/s/resourceGroups/g/x<&>'\"", "é": 1})
    assert lean.send_message(content) is None
    sync.send_message(content)
    received = [m.content for m in sync.receive_messages(max_messages=5)]
    assert received == [content, content]  # the same text, whichever path sent it
    lean.send_message(content, visibility_timeout=60)
    assert list(sync.receive_messages(max_messages=5)) == []  # invisible for its delay
    assert sync.get_queue_properties().approximate_message_count >= 1
    missing_sync, missing_lean = (storage_path(p, azurite).queue(name + "-none") for p in ("sync", "async"))
    for client in (missing_sync, missing_lean):
        with pytest.raises(ResourceNotFoundError):
            client.send_message(content)
