"""One measured round of ``bench.cost_per_cycle``: what it counts (``Meter``: this process's CPU, the
emulator's and Azurite's, the requests sent) and how a round is driven — the engine's cycle by a timer
sweep per phase and then the fan-out queue (as deployed; bench/queue_drive.py) or by a sweep every
second (the earlier benchmark): ``engine_round`` — and the reference script's cycle."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.baseline_reference import ReferenceRotation
from bench.function_shape import RequestCounter, descendants, own_cpu_seconds
from bench.harness import process_cpu_seconds
from bench.latency_proxy import HeldStorage
from bench.queue_drive import QueuePump
from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from testkit.clock import ManualClock

PAST_ANY_ROTATION_PERIOD = timedelta(days=366)


@dataclass
class Side:
    """One side's figures for one round (engine or reference)."""

    targets: int
    wall_seconds: float
    client_cpu: float
    server_cpu: dict[str, float]
    calls: int
    sweeps: tuple[int, int] = (1, 1)
    invocations: int = 0  # queue-triggered invocations (--drive queue)
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

    def __init__(
        self,
        emulator: EmulatorProcess,
        azurite: AzuriteProcess,
        counter: RequestCounter,
        storage: HeldStorage,
    ):
        self.emulator, self.counter = emulator, counter
        # the engine's Table requests: to Azurite's port, or to the latency proxy's in front of it
        self.table_port = storage.table_port
        self.servers = {"emulator": [emulator._process.pid] if emulator._process else []}
        if storage.pid is not None:
            self.servers["storage proxy"] = [storage.pid]
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
    invocations: int = 0  # queue-triggered (--drive queue)
    pump_requests: int = 0  # the benchmark's queue host's own, not the engine's


def run_phase(service: Any, deadline_seconds: float = 600) -> PhaseRun:
    """Sweep until no target is deferred: the vault's write budget (KEY_VAULT_SECRET_WRITES_PER_10S,
    25/s by default) lets about 25 secret writes through per second, so a phase of N targets takes several
    sweeps, one second apart, as timer ticks would. CPU is counted inside the sweeps only."""
    begun = time.perf_counter()
    cpu = 0.0
    sweeps = advanced = 0
    while True:
        before = own_cpu_seconds()
        summary = _swept(service)
        cpu += own_cpu_seconds() - before
        sweeps += 1
        advanced += summary.advanced
        if not summary.deferred:
            return PhaseRun(time.perf_counter() - begun, cpu, sweeps, advanced)
        if time.perf_counter() - begun > deadline_seconds:
            raise RuntimeError(f"still {summary.deferred} deferred after {deadline_seconds} s")
        time.sleep(1.0)


def queued_phase(service: Any, pump: QueuePump) -> PhaseRun:
    """A timer sweep, then the queue trigger for every message the engine scheduled (the targets paced past
    the sweep's horizon, refused takes) until the queue is empty. The host's receiving and deleting are
    left out: the pump's thread CPU here, its requests by the caller."""
    begun, cpu = time.perf_counter(), own_cpu_seconds()
    summary = _swept(service)
    drive = pump.drain()
    return PhaseRun(
        time.perf_counter() - begun, own_cpu_seconds() - cpu - drive.pump_cpu_seconds, 1, summary.advanced,
        drive.invocations, drive.pump_requests,
    )  # fmt: skip


def _swept(service: Any) -> Any:
    summary = service.sweep(trigger="timer")
    if summary.failed:
        errors = {r.error for r in summary.results if r.error}
        raise RuntimeError(f"{summary.failed} target(s) failed: {errors}")
    return summary


def engine_round(
    service: Any, clock: ManualClock, meter: Meter, drain: float, targets: int, pump: QueuePump | None = None
) -> Side:
    """One cycle of every target: phase 1, the drain, phase 2. With ``pump`` each phase is driven as a
    deployment drives it (``queued_phase``: a timer sweep — the next tick finds the drain's end — then the
    fan-out queue); without, by a sweep every second (``run_phase``, the earlier benchmark)."""
    clock.advance(PAST_ANY_ROTATION_PERIOD)
    if pump is not None:
        pump.clear()

    def phase() -> PhaseRun:
        return run_phase(service) if pump is None else queued_phase(service, pump)

    started = meter.start()
    first = phase()
    time.sleep(drain + 0.1)  # a benchmark may sleep; the engine never does (I6)
    second = phase()
    side = meter.stop(started, targets, first.wall_seconds + second.wall_seconds)
    side.client_cpu = first.cpu_seconds + second.cpu_seconds
    side.calls -= first.pump_requests + second.pump_requests
    side.sweeps = (first.sweeps, second.sweeps)
    side.invocations = first.invocations + second.invocations
    return side


def describe(side: Side) -> str:
    targets = side.targets
    driven = f"sweeps {side.sweeps}"
    if side.invocations:
        driven = f"2 sweeps + {side.invocations} queue invocations"
    return (
        f"cycle wall {side.wall_seconds:.2f} s, client CPU {side.cpu_ms_per_cycle:.1f} ms/target-cycle, "
        f"{side.cpu_ms_per_call:.2f} ms/call, {driven}, calls/cycle {side.calls / targets:.1f} ("
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
