"""What every benchmark needs: the local Azure (emulator + Azurite), many accounts spread over several
subscriptions, the engine built by ``shared.bootstrap`` against them, and a uniform way to print figures.

Benchmarks are scripts, not product code: they may sleep (the drain) and they set ``os.environ`` (the
emulator's identity endpoint and CA), which is exactly what an Azure Functions host would provide.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.service import RotationService
from rotation.views import SweepSummary
from shared.bootstrap import build_service
from shared.settings import Settings, load_settings

# Targets per subscription: adoption spends 1 ARM write per target (listKeys) and each phase 2
# (regenerateKey + listKeys, both POSTs); the engine budgets exactly these against ARM_WRITE_BURST (100 by
# default, half of ARM's 200), so 20 targets per subscription (100 writes per full cycle + adoption) are
# never deferred or throttled. ``--budget-demo`` shows what happens beyond that.
TARGETS_PER_SUBSCRIPTION = 20
RESOURCE_GROUP = "rg-bench"


def subscription_id(index: int) -> str:
    return f"{index:08d}-0000-4000-8000-00000000beef"


def account_ids(count: int, subscriptions: int, label: str) -> list[str]:
    """``count`` resource ids, dealt round-robin over ``subscriptions`` subscriptions.

    Account names are globally unique per run so several benchmarks can share one emulator.
    """
    run = uuid.uuid4().hex[:6]
    return [
        f"/subscriptions/{subscription_id(i % subscriptions)}/resourceGroups/{RESOURCE_GROUP}"
        f"/providers/Microsoft.CognitiveServices/accounts/{label}{run}{i:05d}"
        for i in range(count)
    ]


def subscriptions_for(count: int) -> int:
    return max(1, -(-count // TARGETS_PER_SUBSCRIPTION))


@contextmanager
def local_azure(
    latency: float = 0.0, account_hosts: bool = False
) -> Iterator[tuple[EmulatorProcess, AzuriteProcess]]:
    """Emulator + Azurite; the emulator's settings are put in ``os.environ`` (managed identity, CA) the way
    the Functions host provides them, and removed again afterwards. ``account_hosts``: one data-plane host
    name per account (``--account-hosts``; the caller maps them to 127.0.0.1, emulator/client/hosts.py)."""
    saved = dict(os.environ)
    extra = ["--account-hosts"] if account_hosts else []
    with EmulatorProcess(latency=latency, extra_args=extra) as emulator, AzuriteProcess() as azurite:
        emulator.apply_env(os.environ)
        try:
            yield emulator, azurite
        finally:
            os.environ.clear()
            os.environ.update(saved)


def seed_accounts(emulator: EmulatorProcess, resource_ids: Sequence[str], workers: int = 8) -> float:
    """Create the accounts through the control API (``POST /_emulator/accounts``); returns seconds."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(emulator.control.add_account, resource_ids))
    return time.perf_counter() - started


def engine_settings(
    emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    resource_ids: Iterable[str],
    drain: str = "PT2S",
    **overrides: str,
) -> Settings:
    return load_settings(engine_env(emulator, azurite, resource_ids, drain, **overrides))


def engine_env(
    emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    resource_ids: Iterable[str],
    drain: str = "PT2S",
    **overrides: str,
) -> dict[str, str]:
    """The engine's app settings against this emulator and Azurite (fresh table names)."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": r, "drainTime": drain} for r in resource_ids]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"benchstate{suffix}",
        "ROTATION_HISTORY_TABLE": f"benchhistory{suffix}",
        **overrides,
    }


def build_engine(settings: Settings, clock: Callable[[], datetime] | None = None) -> RotationService:
    """The production composition root (``shared.bootstrap.build_service``), unchanged."""
    if clock is None:
        return build_service(settings)
    return build_service(settings, clock=clock)


@dataclass
class Timed:
    seconds: float
    summary: SweepSummary


def timed_sweep(service: RotationService, trigger: str = "timer") -> Timed:
    started = time.perf_counter()
    summary = service.sweep(trigger=trigger)
    return Timed(time.perf_counter() - started, summary)


def outcomes(summary: SweepSummary) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in summary.results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return counts


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``); 0.0 where that is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent (Linux ``/proc/stat``; 0.0 elsewhere): with a
    run's own CPU, what other jobs took from the cores its floor assumes it has."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by this process, the emulator and Azurite (tables) between two readings."""

    def __init__(self, emulator: EmulatorProcess, azurite: AzuriteProcess) -> None:
        self.pids = {"engine": os.getpid()}
        for name, process in (("emulator", emulator._process), ("azurite", azurite.table.process)):
            if process is not None:
                self.pids[name] = process.pid
        self._start = self.read()

    def read(self) -> dict[str, float]:
        return {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}

    def restart(self) -> None:
        self._start = self.read()

    def elapsed(self) -> dict[str, float]:
        now = self.read()
        return {name: now[name] - self._start[name] for name in now}


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


@dataclass
class Report:
    """Rows of figures printed as an aligned table, plus ratios; ``data`` is what tests inspect."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    ratios: list[tuple[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def ratio(self, label: str, value: float) -> None:
        self.ratios.append((label, value))

    def render(self) -> str:
        width = max([len(label) for label, _ in self.rows + [(r, "") for r, _ in self.ratios]] + [10])
        lines = [f"== {self.title} ==", f"machine: {json.dumps(machine())}"]
        lines += [f"  {label:<{width}}  {value}" for label, value in self.rows]
        lines += [f"  RATIO {label:<{width - 6}}  {value:.2f}x" for label, value in self.ratios]
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render(), flush=True)
