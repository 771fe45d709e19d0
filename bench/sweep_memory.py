"""Peak memory of one sweep over many targets, versus the same process just before the sweep.

    python -m bench.sweep_memory                          # idle sweep of 10,000, adoption sweep of 500
    python -m bench.sweep_memory --idle 2000 --adopt 50

Two sweeps, each measured in a fresh child process (so set-up cannot inflate ``ru_maxrss``):

- idle sweep of ``--idle`` targets: every target adopted, nothing due. The state table is seeded
  directly with adopted (IDLE) entities through the engine's own ``TableStateStore`` — adopting 10,000
  accounts through the emulator would take many minutes, and an idle sweep is what the timer does on
  almost every tick. It reads all the state (one query, 1,000 entities per page) and decides each target.
- adoption sweep of ``--adopt`` targets against the emulator: every target does real work (ARM, Key
  Vault, Table calls on SWEEP_CONCURRENCY threads).

Per-target bytes = (tracemalloc peak during the sweep - allocated before it) / targets. ``ru_maxrss``
growth is reported too (it includes the interpreter's allocator slack).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import Report, account_ids, engine_settings, local_azure, seed_accounts
from rotation.model import Phase, Slot, TargetState
from rotation.ports import utc_now
from shared.bootstrap import build_credential, build_ports, build_service
from shared.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def seed_idle_states(settings: Settings, workers: int = 16) -> float:
    """Write one adopted, not-due state entity per target; returns seconds."""
    states = build_ports(settings, build_credential(settings)).states
    now = utc_now()

    def adopted(index: int) -> None:
        target = settings.targets[index]
        states.create(
            target.state_key,
            TargetState(
                target_id=target.resource_id,
                phase=Phase.IDLE,
                active_slot=Slot.KEY1,
                due_at=now + timedelta(days=30),
                drift_checked_at=now,
                last_rotated_at=now,
                endpoint=f"https://{target.account_name}.cognitiveservices.azure.com/",
                kind="AIServices",
                location="eastus",
                custom_subdomain=True,
                cycles_completed=1,
            ),
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(adopted, range(len(settings.targets))))
    return time.perf_counter() - started


def child(env_file: str) -> dict[str, Any]:
    """In a fresh interpreter: build the service, then measure one sweep."""
    env = json.loads(Path(env_file).read_text())
    os.environ.update({k: v for k, v in env.items() if k != "ROTATION_TARGETS"})
    settings = load_settings(env)
    service = build_service(settings)
    service.ports.states.get("warm-up")  # create the table client / connection outside the measurement
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    started = time.perf_counter()
    summary = service.sweep()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "targets": len(settings.targets),
        "seen": summary.seen,
        "advanced": summary.advanced,
        "failed": summary.failed,
        "seconds": seconds,
        "traced_peak_bytes": peak - before,
        "rss_before_bytes": rss_before,
        "rss_growth_bytes": rss_after - rss_before,
    }


def run_child(settings_env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(settings_env, handle)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench.sweep_memory", "--child", handle.name],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise RuntimeError(f"the measuring child failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def measure(idle_targets: int, adopt_targets: int) -> Report:
    report = Report("bench.sweep_memory: peak memory of one sweep vs the process before it")
    results: dict[str, dict[str, Any]] = {}
    with local_azure() as (emulator, azurite):
        plans: list[tuple[str, int]] = [("idle", idle_targets), ("adoption", adopt_targets)]
        for kind, count in plans:
            if count <= 0:
                continue
            ids = account_ids(count, max(1, count // 50), kind[:3])
            settings = engine_settings(emulator, azurite, ids)
            if kind == "idle":
                seeded = seed_idle_states(settings)
                report.add(f"idle: seeding {count} state entities", f"{seeded:.1f} s")
            else:
                seeded = seed_accounts(emulator, ids)
                report.add(f"adoption: seeding {count} emulator accounts", f"{seeded:.1f} s")
            env = {
                **emulator.app_env,
                "ROTATION_TARGETS": json.dumps([{"resourceId": r, "drainTime": "PT2S"} for r in ids]),
                "AzureWebJobsStorage": azurite.connection_string,
                "ROTATION_STATE_TABLE": settings.state_table,
                "ROTATION_HISTORY_TABLE": settings.history_table,
            }
            measured = run_child(env)
            results[kind] = measured
            per_target = measured["traced_peak_bytes"] / count
            report.add(
                f"{kind} sweep of {count}",
                f"{measured['seconds']:.2f} s, advanced {measured['advanced']}, failed {measured['failed']}; "
                f"tracemalloc peak +{measured['traced_peak_bytes'] / 1e6:.1f} MB "
                f"({per_target / 1024:.1f} KiB/target); ru_maxrss "
                f"{measured['rss_before_bytes'] / 1e6:.0f} MB before, "
                f"+{measured['rss_growth_bytes'] / 1e6:.1f} MB",
            )
            report.ratio(
                f"{kind}: peak rss / rss before",
                (measured["rss_before_bytes"] + measured["rss_growth_bytes"]) / measured["rss_before_bytes"],
            )
    report.data = results
    return report


def main(argv: Sequence[str] | None = None) -> Report | None:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=10_000, help="targets of the idle sweep")
    parser.add_argument("--adopt", type=int, default=500, help="targets of the adoption sweep")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return None
    report = measure(args.idle, args.adopt)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
