"""The floor under a cycle's client CPU: each Azure call a cycle cannot do without, made on its own through
the same clients, transport and event loop the engine uses (``shared.aio_clients``: the SDKs' ``.aio`` clients
with the lean calls of ``shared/azure/lean_calls.py`` on them, as the engine has them), 16 at a time, with
nothing of the engine around it — no steps, no state, no logging of ours, no thread hand-off. Its CPU per
call, times the calls of the minimum cycle (``bench.call_counts.MINIMUM_PER_CYCLE``: 13), is what one
target-cycle costs however lean the engine becomes while it calls Azure through these SDKs. Next to it, the
same request shape on aiohttp alone (no SDK, no azure-core pipeline): the transport's own share; and through
the SDK's generated operation: what the lean call saves.

Measured by ``bench.cost_per_cycle`` in its own run (docs/BENCHMARKS.md §7), before adoption, on scratch
accounts and secrets the engine does not rotate; it then waits out Key Vault's 10 s write window so the
engine's writes are not counted against the floor's.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.function_shape import own_cpu_seconds
from rotation.model import parse_resource_id
from shared.aio_clients import AsyncClients
from shared.bootstrap import CLIENT_OPTIONS, build_credential
from shared.settings import Settings

# The minimum cycle (bench.call_counts.MINIMUM_PER_CYCLE), by SDK operation: regenerateKey x2 (its answer
# carries both keys), Key Vault 2 reads (the I2 guard's pointer) + 4 writes, one probe, 4 state writes.
MINIMUM_CYCLE: dict[str, int] = {
    "arm.regenerate_key": 2,
    "keyvault.get_secret": 2,
    "keyvault.set_secret": 4,
    "dataplane.request": 1,
    "table.update_entity": 4,
}
BARE_READ = "aiohttp.get_secret"  # not part of the cycle: the transport's share of a Key Vault read
# Not part of the cycle either: the same read through the SDK's generated operation (``SecretClient``), which
# the engine's lean call replaces (shared/azure/lean_calls.py) — the generated layer's share.
SDK_READ = "sdk.get_secret"
# Not part of the cycle either: the same read made as the engine makes it, from 16 threads each blocking on
# the loop through shared.aio_loop.BlockingClient — the hand-off's share.
HANDED_READ = "threads.get_secret"
KEY_VAULT_SCOPE = "https://vault.azure.net/.default"
KEY_VAULT_WINDOW_SECONDS = 10.0
REPEATS = 3
# The same operations once more one at a time, each under its latency, as a target alone meets them (and a
# paced wave mostly does: its calls seldom overlap). On a virtual machine a call whose answer wakes an idle
# loop costs 2-3x one among 16 that arrive together (docs/BENCHMARKS.md §7, eleventh pass): the warm floor
# above is what overlapping calls cost, this one what calls that do not overlap cost.
LONE_CALLS = 16
FLOOR_SUBSCRIPTION = 999  # bench.harness.subscription_id(999): no engine target lives there
SECRET_WRITES_PER_REPEAT = 48
# ARM's write bucket is 200 per subscription and principal, refilling 10/s: the scratch accounts have a
# subscription of their own, and the floor's regenerations stay under its capacity
ARM_WRITES_PER_REPEAT = 32  # Key Vault counts secret writes per vault in a sliding 10 s window


async def _gathered(make: Callable[[int], Awaitable[Any]], count: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await make(index)

    await asyncio.gather(*(one(i) for i in range(count)))


async def _cpu_per_call(make: Callable[[int], Awaitable[Any]], count: int, concurrency: int) -> float:
    """Milliseconds of this process's CPU per call; one unmeasured round first (connections, tokens)."""
    await _gathered(make, concurrency, concurrency)
    started = own_cpu_seconds()
    await _gathered(make, count, concurrency)
    return (own_cpu_seconds() - started) * 1000 / count


def measure_floor(
    settings: Settings,
    scratch_ids: Sequence[str],
    table_connection_string: str,
    calls: int = 128,
    concurrency: int = 16,
) -> dict[str, float]:
    """CPU ms per call of each operation of ``MINIMUM_CYCLE``, plus ``aiohttp.request`` (the probe's own
    request: aiohttp alone, a fresh TLS connection per account host, as the probe's). ``scratch_ids`` are
    accounts nobody else rotates (their keys are regenerated here)."""
    from azure.data.tables import UpdateMode

    aio = AsyncClients(
        build_credential(settings), concurrency, settings.http.use_proxy_settings, CLIENT_OPTIONS
    )
    session, tls = aio.transport.session, aio.transport.contexts.for_environment()
    assert session is not None
    run = uuid.uuid4().hex[:6]

    async def floor() -> dict[str, float]:
        # the engine's own clients (with the lean calls on them), and the SDK's Key Vault client beside them
        secrets = aio.aio_secret_client(settings.key_vault_url, settings.verify_challenge_resource)
        sdk_secrets = getattr(secrets, "sdk", secrets)
        subscription = parse_resource_id(scratch_ids[0])[0]
        arm = aio.aio_arm_client(subscription, settings.arm_endpoint, settings.arm_scope)
        tables = aio.table_service(table_connection_string, None, None)
        sdk_table = await tables.create_table(f"floor{run}")
        entity = {"PartitionKey": "floor", "phase": "verifying", "slot": "key2", "cycle": run, "tat": 1.5}
        for row in range(concurrency):  # the rows the writes replace
            await sdk_table.upsert_entity({**entity, "RowKey": f"r{row}"})
        table = aio.aio_table(sdk_table)
        accounts = [parse_resource_id(r) for r in scratch_ids]
        hosts: list[str] = []
        for _, group, name in accounts:
            found = await arm.accounts.get(group, name)
            assert found.properties is not None and found.properties.endpoint
            hosts.append(found.properties.endpoint)
        await secrets.set_secret(f"floor-{run}", "x")

        async def request(i: int) -> None:
            # a fresh connection per request, as the probe's first request to each account's host
            host = hosts[i % len(hosts)]
            async with session.get(host, ssl=tls, headers={"Connection": "close"}) as got:
                await got.read()

        # the Key Vault read again without the SDK: the same GET and bearer token on aiohttp alone
        token = (await aio.credential.get_token_info(KEY_VAULT_SCOPE)).token
        url = f"{settings.key_vault_url.rstrip('/')}/secrets/floor-{run}/?api-version=7.5"

        async def bare_read(i: int) -> None:
            async with session.get(url, ssl=tls, headers={"Authorization": f"Bearer {token}"}) as got:
                if got.status != 200:
                    raise RuntimeError(f"bare Key Vault read answered {got.status}")
                await got.json()

        operations: dict[str, tuple[Callable[[int], Awaitable[Any]], int]] = {
            "arm.regenerate_key": (
                lambda i: arm.accounts.regenerate_key(
                    accounts[i % len(accounts)][1], accounts[i % len(accounts)][2], key_name="Key2"
                ),
                min(calls, ARM_WRITES_PER_REPEAT),
            ),
            "keyvault.get_secret": (lambda i: secrets.get_secret(f"floor-{run}"), calls),
            # Key Vault's window is 300 secret writes per 10 s: the floor's stay well under it
            "keyvault.set_secret": (
                lambda i: secrets.set_secret(f"floor-{run}-{i % concurrency}", "x"),
                min(calls, SECRET_WRITES_PER_REPEAT),
            ),
            # the engine's state writes replace the entity (unconditionally here: no ETag to carry)
            "table.update_entity": (
                lambda i: table.update_entity(
                    {**entity, "RowKey": f"r{i % concurrency}"}, mode=UpdateMode.REPLACE
                ),
                calls,
            ),
            "dataplane.request": (request, calls),
            BARE_READ: (bare_read, calls),
            SDK_READ: (lambda i: sdk_secrets.get_secret(f"floor-{run}"), calls),
        }
        try:
            # the least of a few repeats: a floor, so the runs another process's tick disturbed do not count
            warm = {
                operation: min([await _cpu_per_call(make, count, concurrency) for _ in range(REPEATS)])
                for operation, (make, count) in operations.items()
            }
            lone = {
                lone_call(operation): min(
                    [await _cpu_per_call(operations[operation][0], LONE_CALLS, 1) for _ in range(REPEATS)]
                )
                for operation in (*MINIMUM_CYCLE, BARE_READ)
            }
            return warm | lone
        finally:
            await tables.delete_table(f"floor{run}")
            await tables.close()
            await arm.close()
            await secrets.close()

    figures = aio.io.run(floor, 600)
    figures[HANDED_READ] = _handed_off_read(aio, settings, f"floor-{run}", calls, concurrency)
    time.sleep(KEY_VAULT_WINDOW_SECONDS)  # the floor's secret writes leave Key Vault's window
    return figures


def _handed_off_read(aio: AsyncClients, settings: Settings, name: str, calls: int, concurrency: int) -> float:
    """CPU ms per Key Vault read made from ``concurrency`` threads through ``BlockingClient``, the least of
    ``REPEATS`` after an unmeasured round: the engine's own client (``AsyncClients.secret_client``)."""
    secrets = aio.secret_client(settings.key_vault_url, settings.verify_challenge_resource)

    def from_threads(count: int) -> float:
        def reads() -> None:
            for _ in range(count // concurrency):
                secrets.get_secret(name)

        threads = [threading.Thread(target=reads) for _ in range(concurrency)]
        started = own_cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (own_cpu_seconds() - started) * 1000 / (count // concurrency * concurrency)

    try:
        from_threads(concurrency)
        return min(from_threads(calls) for _ in range(REPEATS))
    finally:
        secrets.close()


LONE = " (lone)"


def lone_call(operation: str) -> str:
    """The floor's name for ``operation`` made one call at a time (``LONE_CALLS``)."""
    return operation + LONE


def cycle_floor_ms(per_call: dict[str, float], lone: bool = False) -> float:
    """The minimum cycle's CPU from the floor's calls: 16 at a time, or (``lone``) one at a time."""
    return sum(
        count * per_call[lone_call(operation) if lone else operation]
        for operation, count in MINIMUM_CYCLE.items()
    )
