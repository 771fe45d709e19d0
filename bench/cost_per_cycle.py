"""Client CPU per rotation cycle in a process shaped like a Function instance, with Azure-like latencies,
against the reference script in the same run. See docs/BENCHMARKS.md ("Cost per cycle").

    python -m bench.cost_per_cycle                         # N = 200 over 10 subscriptions, 2 rounds
    python -m bench.cost_per_cycle --targets 20 --reference-targets 4 --rounds 1 --latency-scale 0.1
    python -m bench.cost_per_cycle --emulator-scaling 100 2000   # the emulator's own cost per request

The engine runs in this process, built by ``shared.bootstrap.build_service`` from ``os.environ`` as a
Function builds it, with ~100 environment variables (``bench/function_shape.py``) and the Functions
worker's INFO logging; the emulator and Azurite are pinned to the other core (when there are two) and their
CPU is reported separately. Every account answers on its own host name, so each probe opens its own TLS
connection. Rounds interleave: engine cycle, reference cycle, engine cycle, ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from azure.storage.queue import QueueClient

from bench.baseline_reference import ReferenceRotation
from bench.call_counts import MINIMUM_PER_CYCLE
from bench.cost_variants import VARIANTS, adjusted, settings_for, undone
from bench.function_shape import (
    RequestCounter,
    descendants,
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
    process_cpu_seconds,
    seed_accounts,
    subscription_id,
    subscriptions_for,
)
from bench.sdk_floor import BARE_READ, FLOOR_SUBSCRIPTION, MINIMUM_CYCLE, cycle_floor_ms, measure_floor
from emulator.client.azurite import AzuriteProcess
from emulator.client.hosts import account_hosts_on_loopback
from emulator.client.launcher import EmulatorProcess
from rotation.model import Phase
from shared.bootstrap import build_credential, build_service
from shared.settings import load_settings
from testkit.clock import ManualClock

PAST_ANY_ROTATION_PERIOD = timedelta(days=366)
ENGINE_CORE, SERVER_CORE = 0, 1

# Seconds per operation (before --latency-scale). No Azure document states latencies for these calls;
# these are assumptions in the ranges the issue names and operators report: ARM POSTs (listKeys,
# regenerateKey: a write through the resource provider) hundreds of ms, ARM GETs ~100 ms, Key Vault tens of
# ms, a data-plane request 100-300 ms (an inference gateway round trip), the identity endpoint tens of ms.
# Table Storage is Azurite's own latency (Azurite has no latency setting): this favours the engine, which
# makes all the Table calls.
LATENCY_PROFILE: dict[str, float] = {
    "arm.regenerate_key": 0.40,
    "arm.list_keys": 0.30,
    "arm.get_account": 0.10,
    "arm.list_accounts": 0.10,
    "arm.list_subscriptions": 0.10,
    "keyvault.get_secret": 0.02,
    "keyvault.set_secret": 0.03,
    "keyvault.update_secret_properties": 0.03,
    "keyvault.list_secret_versions": 0.02,
    "keyvault.list_secrets": 0.02,
    "dataplane.request": 0.20,
    "identity.token": 0.03,
}


@dataclass
class Side:
    """One side's figures for one round (engine or reference)."""

    targets: int
    wall_seconds: float
    client_cpu: float
    server_cpu: dict[str, float]
    calls: int
    sweeps: tuple[int, int] = (1, 1)
    by_service: dict[str, int] | None = None
    table_requests: dict[str, int] | None = None  # "METHOD table" -> requests (the sweep's query included)
    operations: dict[str, int] | None = None  # the emulator's own count per operation (keyvault.get_secret)

    @property
    def cpu_ms_per_cycle(self) -> float:
        return self.client_cpu * 1000 / self.targets

    @property
    def cpu_ms_per_call(self) -> float:
        return self.client_cpu * 1000 / max(1, self.calls)


class Meter:
    """Client CPU (getrusage), server CPU (/proc, emulator and Azurite separately), requests sent."""

    def __init__(self, emulator: EmulatorProcess, azurite: AzuriteProcess, counter: RequestCounter):
        self.emulator, self.counter = emulator, counter
        self.table_port = int((azurite.table.url or ":0").rsplit(":", 1)[1])
        self.servers = {"emulator": [emulator._process.pid] if emulator._process else []}
        self.servers["azurite"] = [
            pid
            for service in (azurite.table, azurite.queue)
            if service.process is not None
            for pid in descendants(service.process.pid)
        ]

    def server_cpu(self) -> dict[str, float]:
        return {name: sum(process_cpu_seconds(p) for p in pids) for name, pids in self.servers.items()}

    def start(self) -> tuple[float, dict[str, float]]:
        self.emulator.control.reset_calls()
        self.counter.clear()
        return own_cpu_seconds(), self.server_cpu()

    def stop(self, started: tuple[float, dict[str, float]], targets: int, wall: float) -> Side:
        cpu = own_cpu_seconds() - started[0]
        servers = {name: seconds - started[1][name] for name, seconds in self.server_cpu().items()}
        # Every request this process sent (control-API calls go through httpx, not http.client); per
        # service from the emulator's counters, Table Storage from the requests sent to Azurite's port.
        by_service: Counter[str] = Counter()
        operations = self.emulator.control.calls()
        for operation, count in operations.items():
            by_service[operation.split(".")[0]] += count
        by_service["table"] = self.counter.counts.get(self.table_port, 0)
        calls = sum(self.counter.counts.values())
        tables = {
            f"{method} {name}": count
            for (port, method, name), count in self.counter.by_path.items()
            if port == self.table_port
        }
        return Side(
            targets, wall, cpu, servers, calls, by_service=dict(by_service), table_requests=tables,
            operations=operations,
        )


@dataclass
class PhaseRun:
    wall_seconds: float
    cpu_seconds: float
    sweeps: int
    advanced: int


def run_phase(service: Any, deadline_seconds: float = 600) -> PhaseRun:
    """Sweep until no target is deferred: the vault's write budget (KEY_VAULT_SECRET_WRITES_PER_10S,
    25/s by default) lets about 25 secret writes through per second, so a phase of N targets takes several
    sweeps, one second apart, as timer ticks would. CPU is counted inside the sweeps only."""
    begun = time.perf_counter()
    cpu = 0.0
    sweeps = advanced = 0
    while True:
        before = own_cpu_seconds()
        summary = service.sweep(trigger="timer")
        cpu += own_cpu_seconds() - before
        sweeps += 1
        advanced += summary.advanced
        if summary.failed:
            errors = {r.error for r in summary.results if r.error}
            raise RuntimeError(f"{summary.failed} target(s) failed: {errors}")
        if not summary.deferred:
            return PhaseRun(time.perf_counter() - begun, cpu, sweeps, advanced)
        if time.perf_counter() - begun > deadline_seconds:
            raise RuntimeError(f"still {summary.deferred} deferred after {deadline_seconds} s")
        time.sleep(1.0)


def engine_round(service: Any, clock: ManualClock, meter: Meter, drain: float, targets: int) -> Side:
    clock.advance(PAST_ANY_ROTATION_PERIOD)
    started = meter.start()
    first = run_phase(service)
    time.sleep(drain + 0.1)  # a benchmark may sleep; the engine never does (I6)
    second = run_phase(service)
    side = meter.stop(started, targets, first.wall_seconds + second.wall_seconds)
    side.client_cpu = first.cpu_seconds + second.cpu_seconds
    side.sweeps = (first.sweeps, second.sweeps)
    return side


def describe(side: Side) -> str:
    targets = side.targets
    return (
        f"cycle wall {side.wall_seconds:.2f} s, client CPU {side.cpu_ms_per_cycle:.1f} ms/target-cycle, "
        f"{side.cpu_ms_per_call:.2f} ms/call, sweeps {side.sweeps}, calls/cycle {side.calls / targets:.1f} ("
        + ", ".join(f"{k} {v / targets:.1f}" for k, v in sorted((side.by_service or {}).items()))
        + "); Key Vault per cycle: "
        + ", ".join(
            f"{k.split('.', 1)[1]} {v / targets:.2f}"
            for k, v in sorted((side.operations or {}).items())
            if k.startswith("keyvault.")
        )
        + "; Table per cycle: "
        + ", ".join(f"{k} {v / targets:.2f}" for k, v in sorted((side.table_requests or {}).items()))
        + "; server CPU ms/target-cycle "
        + ", ".join(f"{k} {v * 1000 / targets:.1f}" for k, v in side.server_cpu.items())
    )


def reference_round(reference: ReferenceRotation, ids: Sequence[str], meter: Meter, drain: float) -> Side:
    started = meter.start()
    begun = time.perf_counter()
    old = [reference.swap(resource_id) for resource_id in ids]
    phase1 = time.perf_counter() - begun
    time.sleep(drain)
    begun = time.perf_counter()
    for resource_id, slot in zip(ids, old, strict=True):
        reference.retire(resource_id, slot)
    return meter.stop(started, len(ids), phase1 + time.perf_counter() - begun)


def pin_servers(meter: Meter, engine_pinned: bool) -> str:
    if not engine_pinned:
        return "not pinned (fewer than 2 usable cores): engine and servers share the cores"
    pin([pid for pids in meter.servers.values() for pid in pids], {SERVER_CORE})
    return f"engine on core {ENGINE_CORE}; emulator and Azurite on core {SERVER_CORE} (sched_setaffinity)"


def measure(
    targets: int,
    reference_targets: int,
    rounds: int,
    concurrency: int,
    latency_scale: float,
    drain: float,
    variants: Sequence[str] = ("now",),
    warm_rounds: int = 0,
) -> Report:
    report = Report("bench.cost_per_cycle: client CPU per target-cycle, Function-shaped process")
    profile = {operation: seconds * latency_scale for operation, seconds in LATENCY_PROFILE.items()}
    engine_sides: dict[str, list[Side]] = {variant: [] for variant in variants}
    reference_sides: list[Side] = []
    with (
        local_azure(account_hosts=True) as (emulator, azurite),
        account_hosts_on_loopback(),
        RequestCounter() as counter,
        pinned_here({ENGINE_CORE}) as engine_pinned,
    ):
        meter = Meter(emulator, azurite, counter)
        pinning = pin_servers(meter, engine_pinned)
        for operation, seconds in profile.items():
            emulator.control.set_latency(seconds, operation)
        ours = account_ids(targets, subscriptions_for(targets), "cst")
        theirs = account_ids(reference_targets, subscriptions_for(reference_targets), "crf")
        # the floor's accounts, in a subscription of their own: regenerated by nobody else, and their ARM
        # writes spend no token of the engine's subscriptions
        scratch = [
            r.replace(subscription_id(0), subscription_id(FLOOR_SUBSCRIPTION))
            for r in account_ids(concurrency, 1, "cfl")
        ]
        seed_accounts(emulator, ours + theirs + scratch)
        app_settings = engine_env(
            emulator, azurite, ours, drain=f"PT{drain:g}S", SWEEP_CONCURRENCY=str(concurrency)
        )
        env = function_environment(app_settings)
        with process_environment(env), worker_logging() as handler:
            settings = load_settings(os.environ)
            floor = measure_floor(settings, scratch, azurite.connection_string, concurrency=concurrency)
            # As deployed (infra creates it): deferred targets go back on the fan-out queue.
            QueueClient.from_connection_string(azurite.connection_string, settings.queue_name).create_queue()
            clock = ManualClock(ticking=True)
            services = {
                v: adjusted(build_service(settings_for(settings, v), clock=clock), v) for v in variants
            }
            service = services[variants[0]]
            run_phase(service)  # adoption, the warm-up: not a cycle
            reference = ReferenceRotation(
                settings.key_vault_url,
                settings.arm_endpoint,
                build_credential(settings),
                verify_challenge_resource=settings.verify_challenge_resource,
            )
            try:
                for resource_id in theirs:
                    reference.store_keys(resource_id)  # the script's Task 1: setup, not a cycle
                # Adoption warms only the first variant's clients (imports, connections, tokens); a warm
                # round gives every variant one unmeasured cycle first, so none is measured cold.
                for _ in range(warm_rounds):
                    for variant in variants:
                        with undone(variant):
                            engine_round(services[variant], clock, meter, drain, targets)
                for _ in range(rounds):
                    for variant in variants:  # interleaved: every variant once per round
                        with undone(variant):
                            side = engine_round(services[variant], clock, meter, drain, targets)
                        engine_sides[variant].append(side)
                    reference_sides.append(reference_round(reference, theirs, meter, drain))
            finally:
                reference.close()
            cycles = (rounds + warm_rounds) * len(variants)
            completed = sum(
                1 for s in service.status() if s.phase == Phase.IDLE.value and s.cycles_completed == cycles
            )
            log_records = handler.records
    minimum = sum(MINIMUM_PER_CYCLE.values())
    report.add("machine set-up", pinning)
    report.add("environment", f"{len(env)} variables, {sum(len(k) + len(v) for k, v in env.items())} bytes")
    report.add("logging", f"root INFO, worker-like handler; {log_records} records formatted in the run")
    report.add(
        "latency per operation",
        ", ".join(f"{op} {s * 1000:.0f} ms" for op, s in profile.items()) + "; Table: Azurite's own",
    )
    report.add(
        "engine",
        f"N = {targets} over {subscriptions_for(targets)} subscriptions, "
        f"SWEEP_CONCURRENCY {concurrency}; {completed}/{targets} completed {rounds} cycle(s)",
    )
    report.add("reference script", f"{reference_targets} accounts, sequential, same process and latencies")
    for index, theirs_side in enumerate(reference_sides, 1):
        for variant in variants:
            report.add(f"round {index} engine [{variant}]", describe(engine_sides[variant][index - 1]))
        report.add(
            f"round {index} reference",
            f"cycle wall {theirs_side.wall_seconds:.2f} s, client CPU {theirs_side.cpu_ms_per_cycle:.1f} ms/"
            f"target-cycle, {theirs_side.cpu_ms_per_call:.2f} ms/call, calls/cycle "
            f"{theirs_side.calls / reference_targets:.1f}",
        )
    reference_wall_per_target = median(s.wall_seconds / reference_targets for s in reference_sides)
    reference_cpu = median(s.cpu_ms_per_cycle for s in reference_sides)
    report.add("REFERENCE cycle wall per target", f"{reference_wall_per_target * 1000:.1f} ms")
    figures: dict[str, dict[str, float]] = {}
    for variant in variants:
        sides = engine_sides[variant]
        figure = figures[variant] = {
            "cpu_ms_per_cycle": median(s.cpu_ms_per_cycle for s in sides),
            "cpu_ms_per_call": median(s.cpu_ms_per_call for s in sides),
            "calls_per_cycle": median(s.calls / targets for s in sides),
            "wall_ms_per_target": median(s.wall_seconds * 1000 / targets for s in sides),
        }
        report.add(
            f"ENGINE [{variant}] medians",
            f"client CPU {figure['cpu_ms_per_cycle']:.1f} ms/target-cycle "
            f"({1000 / figure['cpu_ms_per_cycle']:.1f} targets/s per core), {figure['cpu_ms_per_call']:.2f} "
            f"ms/call, {figure['calls_per_cycle']:.1f} calls/cycle (minimum {minimum}), cycle wall "
            f"{figure['wall_ms_per_target']:.1f} ms/target at {concurrency} threads",
        )
    main_figure = figures[variants[0]]
    for operation, per_call in floor.items():
        report.add(f"FLOOR {operation}", f"{per_call:.3f} ms CPU per call (alone, {concurrency} at a time)")
    floor_ms = cycle_floor_ms(floor)
    report.add(
        "FLOOR minimum cycle",
        f"{floor_ms:.1f} ms CPU per target-cycle: "
        + " + ".join(f"{count} x {operation}" for operation, count in MINIMUM_CYCLE.items()),
    )
    report.ratio(
        f"[{variants[0]}] client CPU per target-cycle / floor", main_figure["cpu_ms_per_cycle"] / floor_ms
    )
    report.ratio("Key Vault read: SDK / aiohttp alone", floor["keyvault.get_secret"] / floor[BARE_READ])
    report.ratio(f"[{variants[0]}] calls per cycle / minimum", main_figure["calls_per_cycle"] / minimum)
    report.ratio(
        f"[{variants[0]}] throughput engine/reference (wall per target)",
        reference_wall_per_target / main_figure["wall_ms_per_target"] * 1000,
    )
    report.ratio(
        f"[{variants[0]}] client CPU per target-cycle engine/reference",
        main_figure["cpu_ms_per_cycle"] / reference_cpu,
    )
    for variant in variants[1:]:
        report.ratio(
            f"client CPU per target-cycle [{variant}] / [{variants[0]}]",
            figures[variant]["cpu_ms_per_cycle"] / main_figure["cpu_ms_per_cycle"],
        )
    report.data = {
        "targets": targets,
        "completed": completed,
        "engine": engine_sides,
        "reference": reference_sides,
        "figures": figures,
        "log_records": log_records,
        "environment_size": len(env),
    }
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cost_per_cycle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--targets", type=int, default=200, help="engine targets N")
    parser.add_argument("--reference-targets", type=int, default=30, help="accounts the reference rotates")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved engine/reference cycles")
    parser.add_argument(
        "--warm-rounds",
        type=int,
        default=0,
        help="unmeasured engine cycles of every variant first (adoption warms only the first variant)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="SWEEP_CONCURRENCY")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiply every latency")
    parser.add_argument("--drain", type=float, default=2.0, help="drain time in seconds")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=list(VARIANTS),
        help="engine variants, each change undone on its own (bench/cost_variants.py); the first is the "
        "one compared with the reference",
    )
    parser.add_argument(
        "--emulator-scaling",
        type=int,
        nargs="*",
        default=None,
        metavar="N",
        help="instead: the emulator's CPU per request with N accounts each (e.g. 100 2000)",
    )
    args = parser.parse_args(argv)
    if args.emulator_scaling is not None:
        from bench.emulator_cost import measure_scaling

        report = measure_scaling(args.emulator_scaling or [100, 2000])
    else:
        report = measure(
            args.targets,
            args.reference_targets,
            args.rounds,
            args.concurrency,
            args.latency_scale,
            args.drain,
            args.variants,
            args.warm_rounds,
        )
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
