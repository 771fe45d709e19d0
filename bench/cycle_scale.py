"""Full rotation cycle of N targets against the emulator with per-call latency: the engine's sweep versus
the sequential reference script (bench/baseline_reference.py). See docs/BENCHMARKS.md.

    python -m bench.cycle_scale                      # N = 100 and 1,000, 30 ms per call, drain PT2S
    python -m bench.cycle_scale --sizes 20 --latency 0.01

Engine side, per N: an adoption sweep (the counterpart of the script's Task 1), then the clock jumps past
the rotation period, phase 1 = one sweep (start -> regenerate -> verify -> swap; each target then waits
for its drain), the drain is waited in real time, phase 2 = one sweep (regenerate the old slot; done).
Targets are spread over several subscriptions (20 per subscription) so ARM's write budget is realistic;
``--budget-demo N`` also shows what one subscription's budget does to a sweep of N targets.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.baseline_reference import ReferenceRotation, run_reference
from bench.harness import (
    TARGETS_PER_SUBSCRIPTION,
    CpuMeter,
    Report,
    account_ids,
    build_engine,
    engine_settings,
    local_azure,
    outcomes,
    seed_accounts,
    subscriptions_for,
    timed_sweep,
)
from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.model import Phase
from shared.bootstrap import build_credential, write_budget_pacing
from testkit.clock import ManualClock

PAST_ANY_ROTATION_PERIOD = timedelta(days=366)


@dataclass
class EngineTimings:
    adoption_seconds: float
    phase1_seconds: float
    drain_seconds: float
    phase2_seconds: float
    phase1_outcomes: dict[str, int]
    phase2_outcomes: dict[str, int]
    completed: int
    calls: dict[str, dict[str, int]]
    cpu: dict[str, dict[str, float]]

    @property
    def cycle_seconds(self) -> float:
        return self.phase1_seconds + self.phase2_seconds


def run_engine(
    emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    resource_ids: Sequence[str],
    drain_seconds: float,
    concurrency: int | None = None,
) -> EngineTimings:
    overrides = {"SWEEP_CONCURRENCY": str(concurrency)} if concurrency else {}
    settings = engine_settings(emulator, azurite, resource_ids, drain=f"PT{drain_seconds:g}S", **overrides)
    clock = ManualClock(ticking=True)
    service = build_engine(settings, clock)
    calls: dict[str, dict[str, int]] = {}
    cpu: dict[str, dict[str, float]] = {}
    meter = CpuMeter(emulator, azurite)

    emulator.control.reset_calls()
    meter.restart()
    adoption = timed_sweep(service)
    calls["adoption"], cpu["adoption"] = emulator.control.calls(), meter.elapsed()
    # In a deployment a cycle starts days after adoption, with the vault's write budget full again: wait
    # for its refill (burst / rate, 1 s at the default), so phase 1 does not find the tokens adoption's
    # secret writes took (a target refused then waits for a queue message this benchmark does not run).
    _, vault = write_budget_pacing(settings)
    time.sleep(vault.burst / vault.per_second)  # a benchmark may sleep; the engine never does (I6)

    clock.advance(PAST_ANY_ROTATION_PERIOD)
    emulator.control.reset_calls()
    meter.restart()
    phase1 = timed_sweep(service)
    calls["phase1"], cpu["phase1"] = emulator.control.calls(), meter.elapsed()

    started = time.perf_counter()
    time.sleep(drain_seconds + 0.1)  # a benchmark may sleep; the engine never does (I6)
    drain = time.perf_counter() - started

    emulator.control.reset_calls()
    meter.restart()
    phase2 = timed_sweep(service)
    calls["phase2"], cpu["phase2"] = emulator.control.calls(), meter.elapsed()
    completed = sum(1 for s in service.status() if s.phase == Phase.IDLE.value and s.cycles_completed == 1)
    return EngineTimings(
        adoption.seconds,
        phase1.seconds,
        drain,
        phase2.seconds,
        outcomes(phase1.summary),
        outcomes(phase2.summary),
        completed,
        calls,
        cpu,
    )


def budget_demo(
    emulator: EmulatorProcess, azurite: AzuriteProcess, count: int, drain_seconds: float
) -> dict[str, Any]:
    """N targets in ONE subscription: the engine's per-subscription token bucket of ARM writes
    (ARM_WRITE_BURST at once, ARM_WRITES_PER_SECOND after) decides how many targets one sweep adopts and
    how many start a cycle. Adoption sweeps repeat (1 s apart) until every target is adopted; then the
    bucket is given time to refill, and one due sweep shows how many cycles start at once."""
    ids = account_ids(count, 1, "bud")
    seed_accounts(emulator, ids)
    settings = engine_settings(emulator, azurite, ids, drain=f"PT{drain_seconds:g}S")
    clock = ManualClock(ticking=True)
    service = build_engine(settings, clock)
    started = time.perf_counter()
    adoption_sweeps: list[int] = []
    deadline = started + 30 + count / settings.arm_writes_per_second
    while time.perf_counter() < deadline:
        adoption_sweeps.append(timed_sweep(service).summary.advanced)
        if all(s.phase == Phase.IDLE.value for s in service.status()):
            break
        time.sleep(1.0)
    adoption_seconds = time.perf_counter() - started
    # Let the bucket refill: adoption spent one write per target, at most a full bucket.
    time.sleep(min(count, settings.arm_write_burst) / settings.arm_writes_per_second)
    clock.advance(PAST_ANY_ROTATION_PERIOD)
    emulator.control.reset_calls()
    phase1 = timed_sweep(service)
    calls = emulator.control.calls()
    phases: dict[str, int] = {}
    for status in service.status():
        phases[status.phase] = phases.get(status.phase, 0) + 1
    return {
        "targets": count,
        "adoption_seconds": adoption_seconds,
        "adoption_sweeps": adoption_sweeps,
        "phase1_seconds": phase1.seconds,
        "phase1_outcomes": outcomes(phase1.summary),
        "phases_after_phase1": phases,
        "regenerate_calls": calls.get("arm.regenerate_key", 0),
        "throttled": sum(1 for r in phase1.summary.results if r.error and "429" in r.error),
        "burst": settings.arm_write_burst,
        "rate": settings.arm_writes_per_second,
    }


def measure(
    sizes: Sequence[int],
    latency: float,
    drain_seconds: float,
    concurrency: int | None,
    budget_targets: int,
) -> Report:
    report = Report("bench.cycle_scale: full cycle, engine sweep vs sequential reference script")
    report.add("latency per emulator call", f"{latency * 1000:.0f} ms (Azurite tables: no added latency)")
    report.add("drain", f"PT{drain_seconds:g}S, waited once per side (excluded from the cycle time)")
    with local_azure(latency=latency) as (emulator, azurite):
        for count in sizes:
            subscriptions = subscriptions_for(count)
            ours_ids = account_ids(count, subscriptions, "our")
            ref_ids = account_ids(count, subscriptions, "ref")
            seeding = seed_accounts(emulator, ours_ids + ref_ids)
            engine = run_engine(emulator, azurite, ours_ids, drain_seconds, concurrency)

            settings = engine_settings(emulator, azurite, ref_ids[:1])
            reference = ReferenceRotation(
                settings.key_vault_url,
                settings.arm_endpoint,
                build_credential(settings),
                verify_challenge_resource=settings.verify_challenge_resource,
            )
            emulator.control.reset_calls()
            try:
                baseline = run_reference(reference, ref_ids, drain_seconds)
            finally:
                reference.close()
            baseline_calls = emulator.control.calls()

            n = f"N={count}"
            report.add(f"{n} subscriptions", f"{subscriptions} ({TARGETS_PER_SUBSCRIPTION} targets each)")
            report.add(f"{n} seeding 2N accounts", f"{seeding:.1f} s via POST /_emulator/accounts")
            report.add(f"{n} engine adoption sweep", f"{engine.adoption_seconds:.2f} s")
            report.add(f"{n} engine phase 1 sweep", f"{engine.phase1_seconds:.2f} s {engine.phase1_outcomes}")
            report.add(f"{n} engine phase 2 sweep", f"{engine.phase2_seconds:.2f} s {engine.phase2_outcomes}")
            report.add(f"{n} engine cycles completed", f"{engine.completed}/{count}")
            for phase, spent in engine.cpu.items():
                report.add(
                    f"{n} CPU ms/target, {phase}",
                    ", ".join(f"{name} {seconds * 1000 / count:.1f}" for name, seconds in spent.items()),
                )
            report.add(f"{n} reference setup (Task 1)", f"{baseline.setup_seconds:.2f} s")
            report.add(f"{n} reference phase 1", f"{baseline.phase1_seconds:.2f} s")
            report.add(f"{n} reference phase 2", f"{baseline.phase2_seconds:.2f} s")
            report.add(
                f"{n} reference, literal 5 s sleep",
                f"{baseline.cycle_seconds + 5 * count:.0f} s (extrapolated)",
            )
            report.ratio(
                f"{n} cycle (phase 1+2) reference/engine", baseline.cycle_seconds / engine.cycle_seconds
            )
            report.ratio(f"{n} phase 1 reference/engine", baseline.phase1_seconds / engine.phase1_seconds)
            report.ratio(f"{n} phase 2 reference/engine", baseline.phase2_seconds / engine.phase2_seconds)
            report.ratio(f"{n} adoption vs Task 1 setup", baseline.setup_seconds / engine.adoption_seconds)
            report.data[f"N={count}"] = {
                "engine": engine,
                "baseline": baseline,
                "baseline_calls": baseline_calls,
                "subscriptions": subscriptions,
                "seeding_seconds": seeding,
            }
        if budget_targets:
            demo = budget_demo(emulator, azurite, budget_targets, drain_seconds)
            report.add(
                f"budget demo: {budget_targets} targets, 1 subscription",
                f"ARM write bucket {demo['burst']} + {demo['rate']:g}/s; adoption took "
                f"{len(demo['adoption_sweeps'])} sweeps ({demo['adoption_sweeps']} adopted each), "
                f"{demo['adoption_seconds']:.1f} s",
            )
            report.add(
                "budget demo: due sweep after a refill",
                f"{demo['phase1_seconds']:.2f} s {demo['phase1_outcomes']}, regenerateKey calls "
                f"{demo['regenerate_calls']}, 429s {demo['throttled']}; phases after: "
                f"{demo['phases_after_phase1']}",
            )
            report.data["budget_demo"] = demo
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="target counts N")
    parser.add_argument("--latency", type=float, default=0.03, help="seconds added to every emulator call")
    parser.add_argument("--drain", type=float, default=2.0, help="drain time in seconds")
    parser.add_argument("--concurrency", type=int, default=None, help="SWEEP_CONCURRENCY (default: 16)")
    parser.add_argument(
        "--budget-demo", type=int, default=150, help="targets in one subscription (0: skip the demo)"
    )
    args = parser.parse_args(argv)
    report = measure(args.sizes, args.latency, args.drain, args.concurrency, args.budget_demo)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
