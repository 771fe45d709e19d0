"""Turn what a scenario observed into figures and invariant verdicts (the JSON report's content).

Pure functions over ``ScenarioResult``: no I/O except ``scan_product_code_for_sleeps`` (reads files).
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from demo.scenario import ScenarioResult
from rotation.consumers import quiet_drain
from rotation.model import HistoryRecord, Target

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT_CODE = ("rotation", "shared", "triggers", "function_app.py")
# I6: waiting must be stored state, so product code has no sleeps and no blocking waits with a timeout.
SLEEP_PATTERN = re.compile(
    r"\b(?:time\.sleep|asyncio\.sleep|sleep)\s*\(|\.wait\s*\(\s*(?:timeout\s*=\s*)?[\d.]"
)
PHASES = ("regenerating", "verifying", "draining", "retiring")
# The engine starts the drain clock after the pointer write returns (``swapped_at`` read then), and the
# observer stamps the write's end just before, with the same wall clock: no tolerance is needed.
SWAP_STEP_TOLERANCE_SECONDS = 0.0


@dataclass(frozen=True)
class Cycle:
    target: str
    cycle_id: str
    trigger: str
    started: float
    regenerated: float | None
    swapped: float | None
    retire_started: float | None
    completed: float | None
    failed_steps: int

    def phase_seconds(self) -> dict[str, float]:
        marks = (self.started, self.regenerated, self.swapped, self.retire_started, self.completed)
        result: dict[str, float] = {}
        for name, begin, end in zip(PHASES, marks, marks[1:], strict=False):
            if begin is not None and end is not None:
                result[name] = max(0.0, end - begin)
        return result


def cycles_of(history: dict[str, list[HistoryRecord]]) -> list[Cycle]:
    """One entry per cycle id, from the engine's append-only history."""
    cycles: list[Cycle] = []
    for target, records in history.items():
        by_cycle: dict[str, list[HistoryRecord]] = defaultdict(list)
        for record in records:
            if record.cycle:
                by_cycle[record.cycle].append(record)
        for cycle_id, rows in by_cycle.items():
            started = [r for r in rows if r.step == "cycle" and r.outcome == "started"]
            if not started:
                continue

            def first(step: str, rows: list[HistoryRecord] = rows) -> HistoryRecord | None:
                done = [r for r in rows if r.step == step and r.outcome in ("succeeded", "skipped")]
                return min(done, key=lambda r: r.at) if done else None

            regenerated, swapped = first("regenerate_new"), first("verify_and_swap")
            retired = first("retire_old")
            cycles.append(Cycle(
                target=target,
                cycle_id=cycle_id,
                trigger=started[0].trigger,
                started=started[0].at.timestamp(),
                regenerated=regenerated.at.timestamp() if regenerated else None,
                swapped=swapped.at.timestamp() if swapped else None,
                retire_started=(retired.at.timestamp() - retired.duration_ms / 1000) if retired else None,
                completed=retired.at.timestamp() if retired else None,
                failed_steps=sum(r.outcome == "failed" for r in rows),
            ))
    return sorted(cycles, key=lambda c: c.started)


def check_i2(result: ScenarioResult) -> dict[str, Any]:
    """Never regenerate the slot the pointer names (read independently right before and right after the
    call: the effect lands somewhere in between), nor the slot it named less than the drain time ago
    (measured from when the pointer write had completed)."""
    drains = {t.resource_id.lower(): required_drain(t).total_seconds() for t in result.targets}
    violations: list[str] = []
    margins: list[float] = []
    writes = sorted(result.observations.pointer_writes, key=lambda w: w.started)
    for call in result.observations.regenerates:
        name = call.target.rsplit("/", 1)[-1]
        if call.slot in (call.pointer_before, call.pointer_after):
            violations.append(f"{name}: regenerated {call.slot} while the pointer named it")
        previous: str | None = None
        moved_away_at: float | None = None
        for write in writes:
            if write.target.lower() != call.target.lower() or write.started >= call.started:
                continue
            if previous == call.slot and write.slot != call.slot:
                moved_away_at = write.finished
            previous = write.slot
        if moved_away_at is not None:
            margin = call.started - moved_away_at - drains[call.target.lower()]
            margins.append(margin)
            if margin < -SWAP_STEP_TOLERANCE_SECONDS:
                since = call.started - moved_away_at
                violations.append(f"{name}: regenerated {call.slot} {since:.3f} s after the pointer left it "
                                  f"(drain {drains[call.target.lower()]:.0f} s)")
    return {
        "regenerates": len(result.observations.regenerates),
        "afterADrain": len(margins),
        "minDrainMarginSeconds": round(min(margins), 3) if margins else None,
        "violations": violations,
    }


def required_drain(target: Target) -> timedelta:
    """The drain a target's consumers need before its old key may go: with a consumer that acknowledges
    (issue 14), what the consumers without a signal need — the acknowledgement stands for the others."""
    if any(c.has_signal for c in target.consumers):
        return quiet_drain(target.consumers)
    return target.drain_time


def drain_endings(result: ScenarioResult) -> dict[str, dict[str, int]]:
    """Per target, how its drains ended (the retire's history note): acknowledged by every consumer with a
    signal, by the bound, released by an admin, or an emergency."""
    endings: dict[str, dict[str, int]] = {}
    for target, rows in result.history.items():
        counts = endings.setdefault(target, {"acknowledged": 0, "bound": 0, "released": 0, "emergency": 0})
        for row in rows:
            if row.step == "retire_old" and row.outcome == "succeeded" and "drain ended by " in row.reason:
                ending = row.reason.rsplit("drain ended by ", 1)[1]
                counts[ending] = counts.get(ending, 0) + 1
    return endings


def check_i4(cycles: list[Cycle]) -> dict[str, Any]:
    """Cycles of one target never overlap: each completes before the next starts."""
    violations: list[str] = []
    by_target: dict[str, list[Cycle]] = defaultdict(list)
    for cycle in cycles:
        by_target[cycle.target].append(cycle)
    for target, items in by_target.items():
        for before, after in itertools.pairwise(items):
            if before.completed is None or before.completed > after.started:
                violations.append(f"{target}: cycle {after.cycle_id} started before {before.cycle_id} ended")
    return {"cyclesChecked": len(cycles), "violations": violations}


def check_i5(result: ScenarioResult, extra_texts: list[str]) -> dict[str, Any]:
    """No key value ever issued appears in logs, state, history, responses, events or the report."""
    values = {v for v in result.observations.key_values if v}
    texts = [
        *result.log_lines,
        result.emulator_stderr,
        *(json.dumps(row, default=str) for row in result.state_rows + result.history_rows),
        *(body for _, body in result.admin_responses),
        *(json.dumps(e) for e in result.kv_events + result.lifecycle_events),
        *extra_texts,
    ]
    leaks = sum(1 for text in texts for value in values if value in text)
    return {"keyValuesTracked": len(values), "textsScanned": len(texts), "leaks": leaks}


def scan_product_code_for_sleeps(root: Path = REPO_ROOT) -> dict[str, Any]:
    files = []
    for entry in PRODUCT_CODE:
        path = root / entry
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if SLEEP_PATTERN.search(code):
                hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return {"filesScanned": len(files), "sleeps": hits}


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "medianMs": round(statistics.median(values) * 1000),
            "maxMs": round(max(values) * 1000), "minMs": round(min(values) * 1000)}


def event_outcomes(log_lines: list[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for line in log_lines:
        if " rotation.event_accepted " in line:
            counts["accepted"] += 1
        elif " rotation.event_ignored " in line:
            reason = re.search(r'"reason": "([a-z_]+)"', line)
            counts[f"ignored:{reason.group(1) if reason else '?'}"] += 1
        elif " rotation.event_retry " in line:
            counts["retried"] += 1
    return dict(counts)


def build_report(result: ScenarioResult, extra_texts: list[str] | None = None) -> dict[str, Any]:
    fleet = result.fleet
    outcomes = fleet.snapshot() if fleet else []
    live = [o for o in outcomes if o.label == "live"]
    control = [o for o in outcomes if o.label == "control"]
    cycles = cycles_of(result.history)
    completed = [c for c in cycles if c.completed is not None]
    phase_values: dict[str, list[float]] = {p: [] for p in PHASES}
    for cycle in completed:
        for name, seconds in cycle.phase_seconds().items():
            phase_values[name].append(seconds)
    totals = [c.completed - c.started for c in completed if c.completed is not None]
    by_kind: dict[str, dict[str, int]] = {}
    for outcome in live:
        entry = by_kind.setdefault(outcome.kind, {"requests": 0, "failures": 0})
        entry["requests"] += 1
        entry["failures"] += outcome.failed
    rotation_seconds = max(0.0, (result.rotation_ended or result.finished) - result.rotation_started)
    failed_history = [r for rows in result.history.values() for r in rows if r.outcome == "failed"]
    faults = [a.detail for a in result.actions if a.kind == "fault"]
    invariants = {
        "I1": {"samples": result.invariants.i1_samples, "violations": list(result.invariants.i1_violations)},
        "I2": check_i2(result),
        "I3": {"checks": result.invariants.i3_checks, "cyclesCompleted": len(completed),
               "violations": list(result.invariants.i3_violations)},
        "I4": check_i4(cycles),
        "I6": scan_product_code_for_sleeps(),
    }
    report: dict[str, Any] = {
        "durationSeconds": round(result.finished - result.started, 1),
        "rotationSeconds": round(rotation_seconds, 1),
        "settled": result.settled,
        "targets": [_target_view(t) for t in result.targets],
        "cycles": {
            "completed": len(completed),
            "started": len(cycles),
            "byTarget": dict(Counter(c.target for c in completed)),
            "byTrigger": dict(Counter(c.trigger for c in completed)),
        },
        # issue 14: drains ended by acknowledgement (every consumer with a signal seen on the new key)
        # vs by their bound, per target
        "drains": drain_endings(result),
        "consumers": {
            "threads": sum(g.threads for g in fleet.groups if g.label == "live") if fleet else 0,
            "ttlSeconds": result.config.consumer_ttl,
            "requests": len(live),
            "failures": sum(o.failed for o in live),
            "rejectedOnWire": sum(o.rejected_on_wire for o in live),
            "errors": sum(o.status == 0 for o in live),
            "byKind": by_kind,
            "requestsPerSecond": round(len(live) / max(1.0, result.finished - result.rotation_started), 1),
        },
        "phases": {
            **{name: _stats(values) for name, values in phase_values.items()},
            "cycle": _stats(totals),
        },
        "cycleList": [
            {"target": c.target, "cycle": c.cycle_id, "trigger": c.trigger,
             "completed": c.completed is not None, "failedSteps": c.failed_steps,
             "phasesMs": {k: round(v * 1000) for k, v in c.phase_seconds().items()}}
            for c in cycles
        ],
        "chaos": {
            "crashes": len(result.observations.crashes),
            "faultsInjected": faults,
            "faultsNotConsumed": len(result.faults_left),
            "failedSteps": len(failed_history),
            "failedStepErrors": dict(Counter((r.error or "").split(":", 1)[0] for r in failed_history)),
        },
        "events": {
            "keyVaultEventsEmitted": len(result.kv_events),
            "deliveries": result.events_received,
            "failedDeliveries": result.event_deliveries_failed,
            "outcomes": event_outcomes(result.log_lines),
        },
        "adminRequests": [status for status, _ in result.admin_responses],
        "invariants": invariants,
        "observerErrors": list(result.watcher_errors),
    }
    if control:
        report["negativeControl"] = {
            "ttlSeconds": result.config.control_ttl,
            "requests": len(control),
            "failures": sum(o.failed for o in control),
            "rejectedOnWire": sum(o.rejected_on_wire for o in control),
        }
    # I5 last: the report itself is one of the texts scanned.
    invariants["I5"] = check_i5(result, [json.dumps(report), *(extra_texts or [])])
    report["zeroDowntime"] = report["consumers"]["failures"] == 0 and report["consumers"]["requests"] > 0
    report["invariantsHold"] = not any(
        invariants[name].get("violations") for name in ("I1", "I2", "I3", "I4")
    ) and invariants["I5"]["leaks"] == 0 and not invariants["I6"]["sleeps"]
    return report


def _target_view(target: Target) -> dict[str, Any]:
    return {
        "account": target.account_name,
        "secrets": list(target.secret_names),
        "rotationPeriodSeconds": target.rotation_period.total_seconds(),
        "drainSeconds": target.drain_time.total_seconds(),
        "drainReason": target.drain_reason,
        "consumers": [c.label for c in target.consumers],
    }
