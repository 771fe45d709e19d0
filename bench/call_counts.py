"""Calls per rotation cycle, by service (ARM, Key Vault, data plane, Table Storage, identity), measured
against the emulator and Azurite, next to the minimum a cycle needs (derived in docs/BENCHMARKS.md).

    python -m bench.call_counts            # 20 targets, 2 subscriptions
    python -m bench.call_counts --targets 5

ARM, Key Vault, data-plane and identity calls are the emulator's own counters (``GET /_emulator/calls``);
Table Storage calls are counted at the engine's state/history ports (``testkit.watch``; one port call = one
HTTP request).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from bench.harness import Report, account_ids, engine_settings, local_azure, seed_accounts
from rotation.service import RotationService
from shared.bootstrap import build_credential, build_policy, build_ports
from testkit.clock import ManualClock
from testkit.watch import TABLE_OPERATIONS, CallCounter, watch

PAST_ANY_ROTATION_PERIOD = timedelta(days=366)

# The least a zero-downtime cycle can do, per target (docs/BENCHMARKS.md, "Minimum calls per cycle").
MINIMUM_PER_CYCLE = {
    "arm": 2,  # regenerateKey x2; each response already carries both keys
    # phase 1: get pointer (I2), set P-keyB, set P-active, set P-active-key; phase 2: get pointer, set P-keyA
    "keyvault": 6,
    "dataplane": 1,  # one probe of the new key before the swap
    "table": 4,  # per phase: intent + lease before the side effect, result after
    "identity": 0,  # tokens are cached per process; amortised to zero per cycle
}


def by_service(calls: dict[str, int]) -> dict[str, int]:
    grouped: Counter[str] = Counter()
    for operation, count in calls.items():
        grouped[operation.split(".")[0]] += count
    return dict(grouped)


def measure(targets: int, subscriptions: int) -> Report:
    report = Report("bench.call_counts: calls per cycle per target vs the minimum")
    with local_azure() as (emulator, azurite):
        ids = account_ids(targets, subscriptions, "cnt")
        seed_accounts(emulator, ids)
        settings = engine_settings(emulator, azurite, ids, drain="PT1S")
        table_counts = CallCounter(TABLE_OPERATIONS)
        ports = watch(build_ports(settings, build_credential(settings)), table_counts)
        clock = ManualClock(ticking=True)
        service = RotationService(
            settings.targets,
            ports,
            build_policy(settings),
            clock=clock,
            concurrency=settings.sweep_concurrency,
            vault_url=settings.key_vault_url,
        )
        phases: dict[str, dict[str, int]] = {}
        emulator.control.reset_calls()  # the first phase also pays the one-off identity tokens
        for phase in ("adoption", "phase1", "phase2"):
            if phase == "phase1":
                clock.advance(PAST_ANY_ROTATION_PERIOD)
            if phase == "phase2":
                time.sleep(1.1)  # the drain (PT1S)
            table_counts.clear()
            summary = service.sweep()
            advanced = sum(r.outcome == "advanced" for r in summary.results)
            if advanced != targets:
                raise RuntimeError(f"{phase}: only {advanced}/{targets} targets advanced")
            phases[phase] = {**emulator.control.calls(), **table_counts.counts}
            emulator.control.reset_calls()

        cycle: Counter[str] = Counter()
        for phase in ("phase1", "phase2"):
            cycle.update(phases[phase])
        per_service = by_service(dict(cycle))
        report.add(
            "targets", f"{targets} in {subscriptions} subscriptions (latency 0; counts do not depend on it)"
        )
        for phase, calls in phases.items():
            detail = ", ".join(f"{k}={v / targets:g}" for k, v in sorted(calls.items()))
            report.add(f"{phase} per target", detail)
        for service_name, minimum in MINIMUM_PER_CYCLE.items():
            measured = per_service.get(service_name, 0) / targets
            report.add(f"cycle {service_name} calls/target", f"{measured:g} (minimum {minimum})")
            if minimum:
                report.ratio(f"{service_name} measured/minimum", measured / minimum)
        total = sum(per_service.get(s, 0) for s in MINIMUM_PER_CYCLE) / targets
        report.add("cycle total calls/target", f"{total:g} (minimum {sum(MINIMUM_PER_CYCLE.values())})")
        report.ratio("all services measured/minimum", total / sum(MINIMUM_PER_CYCLE.values()))
        report.data = {"targets": targets, "phases": phases, "per_service": per_service, "total": total}
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m bench.call_counts", description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--subscriptions", type=int, default=2)
    args = parser.parse_args(argv)
    report = measure(args.targets, args.subscriptions)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
