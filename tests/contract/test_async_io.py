"""The asynchronous I/O path (ROTATION_ASYNC_IO, shared/aio_loop.py + shared/aio_clients.py) against
the emulator and Azurite: the setting really selects the ``.aio`` clients on aiohttp, the CA bundle is
honoured per request as on the synchronous path, and closing the loop closes the session cleanly."""

from __future__ import annotations

import gc
import logging
import socket
import threading
import uuid
import warnings
from typing import Any

import pytest

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.errors import TransientAzureError
from rotation.ports import DataPlane, ProbeResult
from shared.aio_clients import AsyncClients, LeanAioTransport
from shared.aio_loop import BlockingClient, IoLoop
from shared.azure.key_vault import KeyVaultSecretStore
from shared.azure.lean_calls import LeanArm, LeanQueue, LeanSecrets, LeanTable
from shared.azure.tables import TableStateStore
from shared.bootstrap import CLIENT_OPTIONS
from tests.contract.conftest import contract_resource_id, ports_on_path


def test_the_setting_selects_the_aio_clients_and_false_keeps_the_synchronous_ones(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.apply_env(monkeypatch)
    sent: list[str] = []
    send = LeanAioTransport.send

    async def counted(self: LeanAioTransport, request: Any, **kwargs: Any) -> Any:
        sent.append(request.method)
        return await send(self, request, **kwargs)

    monkeypatch.setattr(LeanAioTransport, "send", counted)
    on, off = ports_on_path(emulator, azurite, "true"), ports_on_path(emulator, azurite, "false")
    assert isinstance(on.secrets, KeyVaultSecretStore) and isinstance(on.states, TableStateStore)
    for client in (on.secrets.client, on.states.table.client, on.scheduler.client):
        assert isinstance(client, BlockingClient)
        lean = isinstance(client._inner, LeanSecrets | LeanTable | LeanQueue)
        inner = client._inner.sdk if lean else client._inner
        assert ".aio" in type(inner).__module__, type(inner).__module__
    # Key Vault's, ARM's, Table's and Queue's hot calls on the lean pipeline (shared/azure/lean_calls.py),
    # over the .aio SDKs
    assert isinstance(on.secrets.client._inner, LeanSecrets)
    assert isinstance(on.states.table.client._inner, LeanTable)
    assert isinstance(on.scheduler.client._inner, LeanQueue)
    resource_id = contract_resource_id("unused")
    arm = on.keys._client(resource_id.split("/")[2])
    assert isinstance(arm, BlockingClient) and isinstance(arm._inner, LeanArm)
    assert ".aio" in type(arm._inner.sdk).__module__
    for client in (off.secrets.client, off.states.table.client, off.scheduler.client):
        assert not isinstance(client, BlockingClient) and ".aio" not in type(client).__module__
    # both paths read and write the same things; the async one through aiohttp
    on.secrets.set_secret("async-io-probe", _value("one"), {"by": "async"})
    assert "PUT" in sent
    sent.clear()
    stored = off.secrets.get_secret("async-io-probe")
    assert stored is not None and stored.tags == {"by": "async"}
    assert sent == []  # the synchronous path does not touch the async transport


def test_reads_asked_together_are_in_flight_together(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``get_secrets`` on the asynchronous path: every read sent before any answer is awaited (the I2
    guard's pointer and P-active, one round trip); the answers in order, a missing secret as None."""
    emulator.apply_env(monkeypatch)
    in_flight, most = 0, 0
    send = LeanAioTransport.send

    async def counted(self: LeanAioTransport, request: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await send(self, request, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(LeanAioTransport, "send", counted)
    ports = ports_on_path(emulator, azurite, "true")
    name = f"together-{uuid.uuid4().hex[:8]}"
    for suffix in ("a", "b"):
        ports.secrets.set_secret(f"{name}-{suffix}", _value(suffix), {})
    assert ports.secrets.get_secret(f"{name}-a") is not None and most == 1  # one at a time so far
    read = ports.secrets.get_secrets([f"{name}-b", f"{name}-missing", f"{name}-a"])
    assert most == 3
    assert [s.value.reveal() if s else None for s in read] == ["b", None, "a"]


def _value(text: str) -> Any:
    from rotation.model import SecretValue

    return SecretValue(text)


def test_a_missing_ca_bundle_is_named_on_the_async_path_as_on_the_synchronous_one(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.apply_env(monkeypatch)
    ports = ports_on_path(emulator, azurite, "true")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    with pytest.raises(TransientAzureError) as raised:
        ports.secrets.get_secret("anything")
    assert "REQUESTS_CA_BUNDLE=/nonexistent/ca.pem does not exist" in str(raised.value)


def test_closing_the_loop_closes_the_session_and_leaves_no_thread_or_warning(
    azurite: AzuriteProcess, caplog: pytest.LogCaptureFixture
) -> None:
    loop = IoLoop("close-test")
    aio = AsyncClients(None, 16, False, CLIENT_OPTIONS, io=loop)
    service = aio.table_service(azurite.connection_string, None, None)
    table = aio.table(service, "close" + uuid.uuid4().hex[:8])
    table.create_table()
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
    assert table.get_entity("p", "r")["n"] == 1
    session = aio.transport.session
    assert session is not None and not session.closed
    gc.collect()  # what earlier tests left behind (their synchronous sockets) is not this test's business
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.close()
        del table, service, aio
        gc.collect()
    assert session.closed
    assert not any(t.name == "close-test" for t in threading.enumerate())
    # aiohttp's and asyncio's own complaints: "Unclosed client session", "Unclosed connector", "unclosed
    # transport <asyncio...>" (a synchronous client's ssl.SSLSocket is never one of these objects)
    ours = ("client session", "connector", "transport")
    unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    assert not [m for m in unclosed if any(word in m for word in ours)], unclosed
    assert not any(word in caplog.text for word in ("Unclosed client session", "Unclosed connector"))


@pytest.mark.parametrize("async_io", ["false", "true"])
def test_a_data_plane_nobody_answers_on_is_inconclusive_on_both_paths(
    emulator: EmulatorProcess, azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch, async_io: str
) -> None:
    emulator.apply_env(monkeypatch)
    probe = ports_on_path(emulator, azurite, async_io).probe
    with socket.socket() as unused:  # a loopback port with no listener: connection refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    plane = DataPlane(f"https://127.0.0.1:{port}/accounts/gone/", "AIServices", "eastus", True)
    assert probe.probe(plane, _value("0" * 32)) is ProbeResult.INCONCLUSIVE
