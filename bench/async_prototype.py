"""Prototype (issue 17): one engine step over azure-core's asynchronous clients on aiohttp, against the same
step over the synchronous clients the engine uses, in the same run, process and environment.

    python -m bench.async_prototype                     # 200 targets, 16 at a time, 3 rounds
    python -m bench.async_prototype --targets 8 --rounds 1 --latency-scale 0.1

The step is the regenerate step's calls for one target (rotation/steps/regenerate.py + guard.py): the I2
guard's two Key Vault reads (pointer, ``P-active``), ``regenerateKey``, ``listKeys``, the slot secret's
write — 5 calls. *sync*: the engine's own clients (``shared.bootstrap``: its credential, Key Vault client
factory and sized transport on requests) driven by ``SWEEP_CONCURRENCY`` threads, as a sweep does.
*async*: ``azure.keyvault.secrets.aio``, ``azure.mgmt.cognitiveservices.aio`` and ``azure.identity.aio`` on
one shared ``AioHttpTransport`` (environment settings off, the default TLS context), ``SWEEP_CONCURRENCY``
coroutines at once on one event loop. Same Function-shaped process as ``bench.cost_per_cycle`` (~100
environment variables, INFO logging with a worker-like handler, SDK HTTP logging at WARNING), the same
per-operation latencies, the emulator pinned to the other core. Only the engine's client CPU is compared
(getrusage); this does not convert the engine (docs/BENCHMARKS.md §7, "The asynchronous path").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.cost_per_cycle import ENGINE_CORE, LATENCY_PROFILE, SERVER_CORE
from bench.function_shape import (
    function_environment,
    own_cpu_seconds,
    pin,
    pinned_here,
    process_environment,
    worker_logging,
)
from bench.harness import (
    Report,
    account_ids,
    engine_env,
    local_azure,
    median,
    seed_accounts,
    subscriptions_for,
)
from emulator.client.launcher import EmulatorProcess
from rotation.model import parse_resource_id
from shared.bootstrap import VaultStores, build_credential, quiet_sdk_http_logging, sized_transport
from shared.settings import Settings, load_settings

CALLS_PER_STEP = 5  # get pointer, get P-active, regenerateKey, listKeys, set the slot secret
STEP_OPERATIONS = ("keyvault.get_secret", "keyvault.set_secret", "arm.regenerate_key", "arm.list_keys")


def prefix_of(resource_id: str) -> str:
    return parse_resource_id(resource_id)[2]


class SyncStep:
    """The engine's synchronous clients, built by the composition root's own factories."""

    def __init__(self, settings: Settings) -> None:
        from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

        credential = build_credential(settings)
        self.secrets = VaultStores(settings, credential).build_client(settings.key_vault_url)
        transport = sized_transport(settings.sweep_concurrency, settings.http)
        self.arm: dict[str, Any] = {}
        for subscription in {parse_resource_id(r.resource_id)[0] for r in settings.targets}:
            self.arm[subscription] = CognitiveServicesManagementClient(
                credential,
                subscription,
                base_url=settings.arm_endpoint,
                credential_scopes=[settings.arm_scope],
                transport=transport,
            )

    def run(self, resource_id: str) -> None:
        subscription, group, name = parse_resource_id(resource_id)
        self.secrets.get_secret(f"{name}-active-key")
        self.secrets.get_secret(f"{name}-active")
        accounts = self.arm[subscription].accounts
        accounts.regenerate_key(group, name, key_name="Key2")
        keys = accounts.list_keys(group, name)
        self.secrets.set_secret(f"{name}-key2", keys.key2 or "", tags={"slot": "key2"})


class BlockingStep(SyncStep):
    """The engine's asynchronous I/O path (ROTATION_ASYNC_IO): the same synchronous calls from 16 threads,
    the ``.aio`` clients behind ``shared.aio_loop.BlockingClient`` doing the HTTP on the process's loop."""

    def __init__(self, settings: Settings) -> None:
        from shared.aio_clients import AsyncClients
        from shared.bootstrap import CLIENT_OPTIONS

        aio = AsyncClients(
            build_credential(settings),
            settings.sweep_concurrency,
            settings.http.use_proxy_settings,
            CLIENT_OPTIONS,
        )
        self.secrets = aio.secret_client(settings.key_vault_url, settings.verify_challenge_resource)
        self.arm = {
            subscription: aio.arm_client(subscription, settings.arm_endpoint, settings.arm_scope)
            for subscription in {parse_resource_id(r.resource_id)[0] for r in settings.targets}
        }


class AsyncStep:
    """The same calls on the SDKs' ``.aio`` clients over one aiohttp transport."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> AsyncStep:
        import aiohttp
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.identity.aio import ManagedIdentityCredential
        from azure.keyvault.secrets.aio import SecretClient
        from azure.mgmt.cognitiveservices.aio import CognitiveServicesManagementClient

        settings = self.settings
        # One TLS context for the connector, built once: the default trust store plus SSL_CERT_FILE when set
        # (the emulator's CA here; a Function needs only Azure's public CAs). Passing a CA *path* to the
        # clients instead would make azure-core build a context per request.
        tls = ssl.create_default_context()
        if os.environ.get("SSL_CERT_FILE"):
            tls.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0, limit_per_host=max(10, settings.sweep_concurrency), ssl=tls
            ),
            trust_env=False,
        )
        transport = AioHttpTransport(session=self.session, session_owner=False, use_env_settings=False)
        self.credential = ManagedIdentityCredential(client_id=settings.azure_client_id, transport=transport)
        self.secrets = SecretClient(
            settings.key_vault_url,
            self.credential,
            verify_challenge_resource=settings.verify_challenge_resource,
            transport=transport,
        )
        self.arm = {
            subscription: CognitiveServicesManagementClient(
                self.credential,
                subscription,
                base_url=settings.arm_endpoint,
                credential_scopes=[settings.arm_scope],
                transport=transport,
            )
            for subscription in {parse_resource_id(r.resource_id)[0] for r in settings.targets}
        }
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in self.arm.values():
            await client.close()
        await self.secrets.close()
        await self.credential.close()
        await self.session.close()

    async def run(self, resource_id: str) -> None:
        subscription, group, name = parse_resource_id(resource_id)
        await self.secrets.get_secret(f"{name}-active-key")
        await self.secrets.get_secret(f"{name}-active")
        accounts = self.arm[subscription].accounts
        await accounts.regenerate_key(group, name, key_name="Key2")
        keys = await accounts.list_keys(group, name)
        await self.secrets.set_secret(f"{name}-key2", keys.key2 or "", tags={"slot": "key2"})

    async def run_all(self, resource_ids: Sequence[str], concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(resource_id: str) -> None:
            async with gate:
                await self.run(resource_id)

        await asyncio.gather(*(one(r) for r in resource_ids))


def measured(emulator: EmulatorProcess, work: Any, steps: int) -> dict[str, float]:
    emulator.control.reset_calls()
    cpu, wall = own_cpu_seconds(), time.perf_counter()
    work()
    cpu, wall = own_cpu_seconds() - cpu, time.perf_counter() - wall
    counts = emulator.control.calls()
    calls = sum(counts.get(op, 0) for op in STEP_OPERATIONS)
    return {"cpu_ms_per_call": cpu * 1000 / max(1, calls), "cpu_ms_per_step": cpu * 1000 / steps,
            "wall_s": wall, "calls": calls}  # fmt: skip


def measure(targets: int, rounds: int, concurrency: int, latency_scale: float) -> Report:
    report = Report("bench.async_prototype: one step on .aio clients (aiohttp) vs the engine's sync clients")
    sides: dict[str, list[dict[str, float]]] = {"sync": [], "async": [], "threads+loop": []}
    with local_azure() as (emulator, azurite), pinned_here({ENGINE_CORE}) as engine_pinned:
        if engine_pinned and emulator._process is not None:
            pin([emulator._process.pid], {SERVER_CORE})
        for operation, seconds in LATENCY_PROFILE.items():
            emulator.control.set_latency(seconds * latency_scale, operation)
        ids = account_ids(targets, subscriptions_for(targets), "asy")
        seed_accounts(emulator, ids)
        env = function_environment(engine_env(emulator, azurite, ids, SWEEP_CONCURRENCY=str(concurrency)))
        with process_environment(env), worker_logging():
            quiet_sdk_http_logging()
            settings = load_settings(os.environ)
            sync = SyncStep(settings)
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                for resource_id in ids:  # the secrets the guard reads exist, as after adoption
                    prefix = prefix_of(resource_id)
                    for name, value in (("active-key", "key1"), ("active", "unused"), ("key2", "unused")):
                        sync.secrets.set_secret(f"{prefix}-{name}", value)

                def sync_round() -> None:
                    list(pool.map(sync.run, ids))

                blocking = BlockingStep(settings)

                def blocking_round() -> None:
                    list(pool.map(blocking.run, ids))

                loop = asyncio.new_event_loop()
                try:
                    step = loop.run_until_complete(AsyncStep(settings).__aenter__())
                    try:

                        def async_round() -> None:
                            loop.run_until_complete(step.run_all(ids, concurrency))

                        sync_round()  # warm-up every side: tokens, connections, challenge caches
                        async_round()
                        blocking_round()
                        for _ in range(rounds):  # interleaved
                            sides["sync"].append(measured(emulator, sync_round, targets))
                            sides["async"].append(measured(emulator, async_round, targets))
                            sides["threads+loop"].append(measured(emulator, blocking_round, targets))
                    finally:
                        loop.run_until_complete(step.__aexit__())
                finally:
                    loop.close()
    placement = f"engine on core {ENGINE_CORE}" if engine_pinned else "not pinned"
    report.add(
        "setup",
        f"{targets} targets, {concurrency} at a time, {rounds} interleaved rounds, latency "
        f"x{latency_scale:g}; {placement}",
    )
    for name, runs in sides.items():
        for index, run in enumerate(runs, 1):
            report.add(
                f"round {index} {name}",
                f"{run['cpu_ms_per_call']:.2f} ms CPU/call, {run['cpu_ms_per_step']:.1f} ms CPU/step, "
                f"wall {run['wall_s']:.2f} s, {run['calls']:.0f} calls",
            )
    figures = {
        name: {key: median(run[key] for run in runs) for key in runs[0]} for name, runs in sides.items()
    }
    for name, figure in figures.items():
        report.add(
            f"{name.upper()} medians",
            f"{figure['cpu_ms_per_call']:.2f} ms CPU/call, {figure['cpu_ms_per_step']:.1f} ms CPU per step "
            f"({CALLS_PER_STEP} calls), wall {figure['wall_s']:.2f} s",
        )
    report.ratio(
        "client CPU per call async/sync",
        figures["async"]["cpu_ms_per_call"] / figures["sync"]["cpu_ms_per_call"],
    )
    report.ratio("wall async/sync", figures["async"]["wall_s"] / figures["sync"]["wall_s"])
    report.ratio(
        "client CPU per call threads+loop/sync (the engine's ROTATION_ASYNC_IO path)",
        figures["threads+loop"]["cpu_ms_per_call"] / figures["sync"]["cpu_ms_per_call"],
    )
    report.ratio("wall threads+loop/sync", figures["threads+loop"]["wall_s"] / figures["sync"]["wall_s"])
    report.data = {"targets": targets, "sides": sides, "figures": figures}
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(
        prog="python -m bench.async_prototype", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="SWEEP_CONCURRENCY")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiply every latency")
    args = parser.parse_args(argv)
    report = measure(args.targets, args.rounds, args.concurrency, args.latency_scale)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
