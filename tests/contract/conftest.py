"""Contract tests: every case runs against the in-memory fake (testkit.fakes) and against the real adapter
(shared/, built by shared.bootstrap.build_ports) talking to the emulator and Azurite. The real adapter
against the emulator is the reference: when a case fails only for the fake, the fake is wrong.

A ``Backend`` is one implementation of every port plus what a case needs that no port offers: creating
accounts, deleting a secret (as an operator would), and moving the backend's clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.ports import HistoryStore, KeyProbe, KeyService, SecretStore, StateStore
from shared.aio_clients import AsyncClients
from shared.bootstrap import CLIENT_OPTIONS, build_credential, build_ports
from shared.settings import load_settings
from testkit.clock import ManualClock
from testkit.fakes import (
    T0,
    FakeHistory,
    FakeKeys,
    FakeProbe,
    FakeSecrets,
    FakeStateStore,
    World,
)

SUB = "22222222-3333-4444-5555-666666666666"


def contract_resource_id(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg-contract/providers/Microsoft.CognitiveServices/accounts/{name}"
    )


@dataclass
class Backend:
    name: str  # "fake" | "real"
    secrets: SecretStore
    keys: KeyService
    probe: KeyProbe
    states: StateStore
    history: HistoryStore
    add_account: Callable[..., str]  # (kind="AIServices", disable_local_auth=False) -> resource id
    delete_secret: Callable[[str], None]  # soft delete, as an operator would in the portal
    advance_clock: Callable[[float], None]  # seconds; Key Vault stamps versions with this clock


def fake_backend() -> Backend:
    clock = ManualClock(T0 + timedelta(milliseconds=250))  # not on a whole second, as a wall clock
    world = World(clock)

    def add_account(kind: str = "AIServices", disable_local_auth: bool = False) -> str:
        name = "c" + uuid.uuid4().hex[:10]
        return world.add_account(name, kind=kind, disable_local_auth=disable_local_auth).resource_id

    return Backend(
        "fake", FakeSecrets(world), FakeKeys(world), FakeProbe(world), FakeStateStore(world), FakeHistory(),
        add_account, world.delete_secret, lambda seconds: clock.advance(seconds=seconds),
    )  # fmt: skip


def real_backend(
    emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: pytest.MonkeyPatch,
    async_io: bool = False,
) -> Iterator[Backend]:
    """The production adapters, built exactly as the engine harness builds them (tables unique per test);
    ``async_io``: on the asynchronous I/O path (ROTATION_ASYNC_IO, the ``.aio`` clients on one loop)."""
    emulator.apply_env(monkeypatch)
    suffix = uuid.uuid4().hex[:8]
    settings = load_settings({
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": contract_resource_id("unused")}]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"contractstate{suffix}",
        "ROTATION_HISTORY_TABLE": f"contracthistory{suffix}",
        "ROTATION_ASYNC_IO": str(async_io).lower(),
    })  # fmt: skip
    ports = build_ports(settings, build_credential(settings))

    def add_account(kind: str = "AIServices", disable_local_auth: bool = False) -> str:
        resource_id = contract_resource_id("c" + uuid.uuid4().hex[:10])
        emulator.control.add_account(resource_id, kind=kind, disable_local_auth=disable_local_auth)
        return resource_id

    with emulator.secret_client() as vault:
        yield Backend(
            "real", ports.secrets, ports.keys, ports.probe, ports.states, ports.history, add_account,
            lambda name: vault.begin_delete_secret(name).wait(), emulator.control.advance_clock,
        )  # fmt: skip


def ports_on_path(emulator: EmulatorProcess, azurite: AzuriteProcess, async_io: str) -> Any:
    """The production ports from ``build_ports`` on one I/O path (ROTATION_ASYNC_IO ``"true"``/``"false"``),
    with a state table of their own."""
    settings = load_settings({
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": contract_resource_id("unused")}]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": "asyncstate" + uuid.uuid4().hex[:8],
        "ROTATION_ASYNC_IO": async_io,
    })  # fmt: skip
    return build_ports(settings, build_credential(settings))


def _backend(request: pytest.FixtureRequest, emulator_fixture: str) -> Iterator[Backend]:
    if request.param == "fake":
        yield fake_backend()
        return
    emulator, azurite = request.getfixturevalue(emulator_fixture), request.getfixturevalue("azurite")
    async_io = request.param == "real-async"
    yield from real_backend(emulator, azurite, request.getfixturevalue("monkeypatch"), async_io)


# Every adapter runs on both I/O paths: the synchronous clients ("real") and the ``.aio`` clients on the
# process's event loop ("real-async", ROTATION_ASYNC_IO=true).
REAL_PATHS = ("real", "real-async")


@pytest.fixture(params=["fake", *REAL_PATHS])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Fake, then real against the session's emulator (cases use unique names; no global change)."""
    yield from _backend(request, "emulator")


@pytest.fixture(params=["fake", *REAL_PATHS])
def clocked_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Like ``backend``, for cases that move the clock: the real one gets a private emulator."""
    yield from _backend(request, "fresh_emulator")


@dataclass
class StoragePath:
    """Table and queue clients on one I/O path, for cases that build the storage adapters themselves."""

    name: str  # "sync" | "async"
    table: Callable[[str], Any]  # table name -> TableClient (or the .aio one behind a BlockingClient)
    queue: Callable[[str], Any]  # queue name -> QueueClient, base64 messages as the Functions trigger


@pytest.fixture(params=["sync", "async"])
def storage(request: pytest.FixtureRequest, azurite: AzuriteProcess) -> StoragePath:
    """Azurite through the synchronous clients, then through the ``.aio`` ones on the process's loop."""
    return storage_path(request.param, azurite)


def storage_path(path: str, azurite: AzuriteProcess, connection_string: str | None = None) -> StoragePath:
    """``connection_string``: another than Azurite's own (a wrong key, say)."""
    connection = connection_string or azurite.connection_string
    if path == "sync":
        return StoragePath(
            "sync",
            lambda name: TableServiceClient.from_connection_string(connection).get_table_client(name),
            lambda name: QueueClient.from_connection_string(
                connection,
                name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
            ),
        )
    aio = AsyncClients(None, 16, False, CLIENT_OPTIONS)
    service = aio.table_service(connection, None, None)

    def queue(name: str) -> Any:
        from azure.storage.queue.aio import QueueClient as AioQueueClient

        encoding = TextBase64EncodePolicy()
        client = AioQueueClient.from_connection_string(
            connection,
            name,
            message_encode_policy=encoding,
            message_decode_policy=TextBase64DecodePolicy(),
            **aio.options,
        )
        return aio.wrap(aio.aio_queue(client, encoding))  # sending on the lean call, as the engine does

    return StoragePath("async", lambda name: aio.table(service, name), queue)
