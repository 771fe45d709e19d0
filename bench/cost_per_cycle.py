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
from collections.abc import Sequence

from azure.storage.queue import QueueClient

from bench.baseline_reference import ReferenceRotation
from bench.call_counts import MINIMUM_PER_CYCLE
from bench.cost_rounds import (
    Meter,
    Side,
    describe,
    engine_round,
    reference_round,
    run_phase,
)
from bench.cost_variants import VARIANTS, built, undone
from bench.function_shape import (
    RequestCounter,
    function_environment,
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
    subscription_id,
    subscriptions_for,
)
from bench.latency_proxy import held_storage
from bench.loop_cpu import Breakdown, where_the_cpu_goes
from bench.queue_drive import QueuePump
from bench.sdk_floor import (
    BARE_READ,
    FLOOR_SUBSCRIPTION,
    HANDED_READ,
    LONE,
    LONE_CALLS,
    MINIMUM_CYCLE,
    SDK_READ,
    cycle_floor_ms,
    lone_call,
    measure_floor,
)
from emulator.client.hosts import account_hosts_on_loopback
from rotation.model import Phase
from shared.aio_loop import process_loop
from shared.bootstrap import build_credential
from shared.settings import load_settings
from testkit.clock import ManualClock
from triggers.runtime import Runtime

ENGINE_CORE, SERVER_CORE = 0, 1

# Seconds per operation (before --latency-scale). No Azure document states latencies for these calls;
# these are assumptions in the ranges the issue names and operators report: ARM POSTs (listKeys,
# regenerateKey: a write through the resource provider) hundreds of ms, ARM GETs ~100 ms, Key Vault tens of
# ms, a data-plane request 100-300 ms (an inference gateway round trip), the identity endpoint tens of ms.
# Table and Queue Storage: Azurite has no latency setting, so a proxy holds each request the engine sends
# it (bench/latency_proxy.py, its own process on the servers' core): STORAGE_LATENCY, "tens of ms" as the
# issue names it for Table (an assumption too; Microsoft documents targets, not latencies).
STORAGE_LATENCY = 0.02
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


def pin_servers(meter: Meter, engine_pinned: bool) -> str:
    if not engine_pinned:
        return "not pinned (fewer than 2 usable cores): engine and servers share the cores"
    pin([pid for pids in meter.servers.values() for pid in pids], {SERVER_CORE})
    return f"engine on core {ENGINE_CORE}; emulator and Azurite on core {SERVER_CORE} (sched_setaffinity)"


def report_breakdown(report: Report, variant: str, side: Side, found: Breakdown) -> None:
    if not found.calls:
        report.add(f"WHERE [{variant}]", "not on the asynchronous I/O path: no loop to time")
        return
    per_cycle = 1000 / side.targets
    report.add(
        f"WHERE [{variant}] (one more round, timed)",
        f"client CPU {side.client_cpu * per_cycle:.1f} ms/target-cycle: I/O loop thread "
        f"{found.loop_seconds * per_cycle:.1f} ms (SDK coroutines {found.sdk_seconds * per_cycle:.1f}, "
        f"targets' steps as greenlets {found.greenlet_seconds * per_cycle:.1f}, loop callbacks "
        f"{found.callback_seconds * per_cycle:.1f}), other threads "
        f"{(side.client_cpu - found.loop_seconds) * per_cycle:.1f} ms (steps on threads, triggers)",
    )
    for operation, seconds in sorted(found.call_seconds.items(), key=lambda item: -item[1]):
        count = found.calls[operation]
        report.add(
            f"WHERE [{variant}] {operation}",
            f"{count / side.targets:.2f}/cycle, {seconds * 1000 / count:.3f} ms per call (coroutine steps)",
        )


def measure(
    targets: int,
    reference_targets: int,
    rounds: int,
    concurrency: int,
    latency_scale: float,
    drain: float,
    variants: Sequence[str] = ("now",),
    warm_rounds: int = 0,
    drive: str = "queue",
    storage_latency: float | None = None,
) -> Report:
    report = Report("bench.cost_per_cycle: client CPU per target-cycle, Function-shaped process")
    profile = {operation: seconds * latency_scale for operation, seconds in LATENCY_PROFILE.items()}
    engine_sides: dict[str, list[Side]] = {variant: [] for variant in variants}
    reference_sides: list[Side] = []
    storage_latency = STORAGE_LATENCY * latency_scale if storage_latency is None else storage_latency
    with (
        local_azure(account_hosts=True) as (emulator, azurite),
        held_storage(azurite, storage_latency) as storage,
        account_hosts_on_loopback(),
        RequestCounter() as counter,
        pinned_here({ENGINE_CORE}) as engine_pinned,
    ):
        meter = Meter(emulator, azurite, counter, storage)
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
            emulator,
            azurite,
            ours,
            drain=f"PT{drain:g}S",
            SWEEP_CONCURRENCY=str(concurrency),
            AzureWebJobsStorage=storage.connection_string,  # through the proxy: the engine's Table and Queue
        )
        env = function_environment(app_settings)
        with process_environment(env), worker_logging() as handler:
            settings = load_settings(os.environ)
            floor = measure_floor(settings, scratch, storage.connection_string, concurrency=concurrency)
            # As deployed (infra creates it): deferred targets go back on the fan-out queue.
            QueueClient.from_connection_string(azurite.connection_string, settings.queue_name).create_queue()
            clock = ManualClock(ticking=True)
            services = {v: built(settings, v, clock) for v in variants}
            service = services[variants[0]]
            run_phase(service)  # adoption, the warm-up: not a cycle
            pumps = {
                v: QueuePump(azurite.connection_string, settings.queue_name, Runtime(settings, services[v]))
                for v in variants
                if drive == "queue"
            }

            def engine_round_of(variant: str) -> Side:
                return engine_round(services[variant], clock, meter, drain, targets, pumps.get(variant))

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
                            engine_round_of(variant)
                for _ in range(rounds):
                    for variant in variants:  # interleaved: every variant once per round
                        with undone(variant):
                            side = engine_round_of(variant)
                        engine_sides[variant].append(side)
                    reference_sides.append(reference_round(reference, theirs, meter, drain))
                # one more, unmeasured round of the first variant, timed by where its CPU goes
                with undone(variants[0]), where_the_cpu_goes(process_loop()) as breakdown:
                    instrumented = engine_round_of(variants[0])
            finally:
                reference.close()
            cycles = (rounds + warm_rounds) * len(variants) + 1
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
        ", ".join(f"{op} {s * 1000:.0f} ms" for op, s in profile.items())
        + (
            f"; Table and Queue: {storage_latency * 1000:.0f} ms (bench/latency_proxy.py)"
            if storage_latency > 0
            else "; Table and Queue: Azurite's own"
        ),
    )
    report.add(
        "engine",
        f"N = {targets} over {subscriptions_for(targets)} subscriptions, "
        f"SWEEP_CONCURRENCY {concurrency}; {completed}/{targets} completed {cycles} cycle(s); driven by "
        + (
            "a timer sweep per phase, then the queue trigger (bench/queue_drive.py)"
            if drive == "queue"
            else "a sweep every second until nothing is deferred"
        ),
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
    report_breakdown(report, variants[0], instrumented, breakdown)
    for operation, per_call in floor.items():
        how = f"one at a time, {LONE_CALLS} calls" if operation.endswith(LONE) else f"{concurrency} at a time"
        report.add(f"FLOOR {operation}", f"{per_call:.3f} ms CPU per call (alone, {how})")
    floor_ms, lone_ms = cycle_floor_ms(floor), cycle_floor_ms(floor, lone=True)
    report.add(
        "FLOOR minimum cycle",
        f"{floor_ms:.1f} ms CPU per target-cycle ({concurrency} at a time), {lone_ms:.1f} ms (one at a "
        "time): "
        + " + ".join(f"{count} x {operation}" for operation, count in MINIMUM_CYCLE.items()),
    )
    report.ratio(
        f"[{variants[0]}] client CPU per target-cycle / floor", main_figure["cpu_ms_per_cycle"] / floor_ms
    )
    report.ratio(
        f"[{variants[0]}] client CPU per target-cycle / floor of lone calls",
        main_figure["cpu_ms_per_cycle"] / lone_ms,
    )
    read, lone_read = floor["keyvault.get_secret"], floor[lone_call("keyvault.get_secret")]
    report.ratio("Key Vault read: one at a time / 16 at a time", lone_read / read)
    report.ratio("Key Vault read: the engine's / aiohttp alone", read / floor[BARE_READ])
    report.ratio(
        "Key Vault read one at a time: the engine's / aiohttp alone", lone_read / floor[lone_call(BARE_READ)]
    )
    report.ratio("Key Vault read: the SDK's operation / the engine's", floor[SDK_READ] / read)
    report.ratio(
        "Key Vault read: 16 threads through BlockingClient / 16 coroutines on the loop",
        floor[HANDED_READ] / floor["keyvault.get_secret"],
    )
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
        "breakdown": breakdown,
        "floor": floor,
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
        "--storage-latency",
        type=float,
        default=None,
        help=f"seconds each Table and Queue request is held (default {STORAGE_LATENCY:g} x --latency-scale; "
        "0: Azurite's own)",
    )
    parser.add_argument(
        "--drive",
        choices=("queue", "sweep"),
        default="queue",
        help="queue: one timer sweep, then the queue trigger for what the engine scheduled (as deployed); "
        "sweep: a sweep every second until nothing is deferred (the earlier benchmark)",
    )
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
            args.drive,
            args.storage_latency,
        )
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
