"""The picture: consumer success over time (top) against each target's rotation phases (bottom)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from demo.analysis import drain_endings
from demo.scenario import ScenarioResult

PHASE_COLOURS = {
    "regenerating": "#f2c14e",
    "verifying": "#f78154",
    "draining": "#4d9de0",
    "retiring": "#7768ae",
}
ACTION_MARKERS = {"admin": ("^", "admin request"), "event": ("D", "near-expiry event"),
                  "crash": ("X", "crash"), "fault": ("v", "injected fault")}
BIN_SECONDS = 0.5


def draw(result: ScenarioResult, path: Path) -> Path:
    origin = result.rotation_started
    end = result.finished - origin
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True
    )
    outcomes = result.fleet.snapshot() if result.fleet else []
    ok: dict[int, int] = defaultdict(int)
    failed: dict[int, int] = defaultdict(int)
    control_failed: dict[int, int] = defaultdict(int)
    for outcome in outcomes:
        slot = int((outcome.at - origin) // BIN_SECONDS)
        if outcome.label == "control":
            control_failed[slot] += outcome.failed
        elif outcome.failed:
            failed[slot] += 1
        else:
            ok[slot] += 1
    slots = range(min([*ok, *failed, 0]), max([*ok, *failed, 0]) + 1)
    xs = [s * BIN_SECONDS for s in slots]
    rate = 1 / BIN_SECONDS
    top.fill_between(xs, [ok[s] * rate for s in slots], step="post", color="#3bb273", alpha=0.8,
                     label="successful consumer requests / s")
    top.step(xs, [failed[s] * rate for s in slots], where="post", color="#e15554", linewidth=2,
             label=f"failed consumer requests / s (total {sum(failed.values())})")
    if control_failed:
        top.step(xs, [control_failed[s] * rate for s in slots], where="post", color="#999999", linestyle="--",
                 label="negative control (TTL > drain): rejected keys / s")
    top.set_ylabel("requests per second")
    top.set_ylim(bottom=0)
    top.legend(loc="lower left", fontsize=8)
    # Throughput dips are not failures (the red line shows those): consumers, engine, emulator and Azurite
    # share the machine's CPUs, so a burst of rotation work or an injected latency slows a bin or two.
    note = "dips in green = less throughput (shared CPU, injected latency), not failures — failures are red"
    top.annotate(note, xy=(0.99, 0.02), xycoords="axes fraction", ha="right", fontsize=7, color="#555555")
    live = [o for o in outcomes if o.label == "live"]
    top.set_title(f"Consumers: {len(live)} requests, {sum(o.failed for o in live)} failed — "
                  f"rotation phases below")

    names = [t.account_name for t in result.targets]
    for row, name in enumerate(names):
        changes = [c for c in result.phase_changes if c.target == name]
        for change, following in zip(changes, [*changes[1:], None], strict=False):
            colour = PHASE_COLOURS.get(change.phase)
            if colour is None:
                continue
            start = change.at - origin
            stop = (following.at - origin) if following is not None else end
            bottom.broken_barh([(start, max(0.01, stop - start))], (row - 0.35, 0.7), color=colour)
    seen_labels: set[str] = set()
    _mark_cycles(bottom, result, names, origin, seen_labels)
    for action in result.actions:
        marker, label = ACTION_MARKERS[action.kind]
        height = names.index(action.target) + 0.45 if action.target in names else len(names) - 0.5
        bottom.scatter([action.at - origin], [height], marker=marker, s=60,
                       color="black", zorder=3, label=None if label in seen_labels else label)
        seen_labels.add(label)
    bottom.set_yticks(range(len(names)), names)
    bottom.set_ylim(-0.6, len(names) - 0.1)
    bottom.set_xlabel("seconds since the first rotation trigger")
    bottom.set_xlim(left=-1.0, right=end)
    handles = [Patch(color=c, label=p) for p, c in PHASE_COLOURS.items()]
    marker_handles, marker_labels = bottom.get_legend_handles_labels()
    bottom.legend(handles + marker_handles, [h.get_label() for h in handles] + marker_labels,
                  loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=8, fontsize=8)
    endings = "; ".join(
        f"{name}: {counts.get('acknowledged', 0)} ended by acknowledgement, {counts.get('bound', 0)} by bound"
        for name, counts in drain_endings(result).items()
    )
    legend_line = "● timer-started cycle   | verified: the data plane accepted the new key, then the swap"
    bottom.set_title(f"{legend_line}\ndrains — {endings}", fontsize=8, loc="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mark_cycles(axes: Any, result: ScenarioResult, names: list[str], origin: float, seen: set[str]) -> None:
    """Where each cycle started by the timer begins (●), and each verification (|): the engine verifies and
    swaps in the same invocation, so VERIFYING is rarely stored long enough to be a band — the moment the
    cycle enters DRAINING is when the data plane accepted the new key."""
    started: set[tuple[str, str]] = set()
    verified: set[tuple[str, str]] = set()
    for change in result.phase_changes:
        if change.target not in names or change.cycle_id is None:
            continue
        key, row = (change.target, change.cycle_id), names.index(change.target)
        if change.trigger == "timer" and key not in started:
            started.add(key)
            label = "timer-started cycle"
            axes.scatter([change.at - origin], [row - 0.45], marker="o", s=22, color="#2d6a4f", zorder=3,
                         label=None if label in seen else label)
            seen.add(label)
        if change.phase == "draining" and key not in verified:
            verified.add(key)
            label = "verified → swap"
            axes.scatter([change.at - origin], [row], marker="|", s=160, color="#f78154", linewidths=2.5,
                         zorder=4, label=None if label in seen else label)
            seen.add(label)
