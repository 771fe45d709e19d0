"""``sweep`` at scale: a progress bar with the known total, Ctrl-C that stops starting new targets, and a
summary that counts every outcome.

Ctrl-C once: no further target is started; targets already started finish the step they are in (a step is
never cut in half, so nothing is left for a lease to expire on), the summary is printed and the CLI exits
130. Ctrl-C twice: exit at once. The engine is crash-safe (intent before side effects, leases that
expire), so the next sweep resumes either way.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from operator_cli import render
from rotation.views import SweepSummary, TargetResult

if TYPE_CHECKING:
    from rotation.service import RotationService

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class StopOnInterrupt:
    """SIGINT handler for the sweep: the first sets ``stop``, the second exits the process at once."""

    def __init__(self, err: Console) -> None:
        self.stop = threading.Event()
        self.err = err
        self._previous: object = None

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.err.print("interrupted again: exiting now (leases left behind expire; next sweep resumes)")
            os._exit(EXIT_INTERRUPTED)
        self.stop.set()
        self.err.print(
            "[yellow]stopping:[/yellow] no new target will be started; in-flight targets finish their step "
            "(Ctrl-C again to exit at once)"
        )


def run_sweep(service: RotationService, out: Console, err: Console, show_all: bool, as_json: bool) -> int:
    with StopOnInterrupt(err) as interrupt:
        if err.is_terminal:
            summary = _with_progress(service, err, interrupt.stop)
        else:
            summary = service.sweep(trigger="cli", stop=interrupt.stop)
    if as_json:
        render.print_json(render_json(summary))
    else:
        _print_summary(summary, out, show_all)
    if interrupt.stop.is_set():
        return EXIT_INTERRUPTED
    return 1 if summary.failed else 0


def render_json(summary: SweepSummary) -> dict[str, object]:
    from rotation.views import to_json

    return {**to_json(summary), "results": to_json(summary.results)}


def _with_progress(service: RotationService, err: Console, stop: threading.Event) -> SweepSummary:
    columns = (
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tally]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("sweep", total=None, tally="")
        tally: dict[str, int] = {}

        def planned(total: int) -> None:
            progress.update(task, total=total)

        def advanced(result: TargetResult) -> None:
            tally[result.outcome.value] = tally.get(result.outcome.value, 0) + 1
            text = " ".join(f"{name} {count}" for name, count in sorted(tally.items()))
            progress.update(task, advance=1, tally=text)

        return service.sweep(trigger="cli", progress=advanced, planned=planned, stop=stop)


def _print_summary(summary: SweepSummary, out: Console, show_all: bool) -> None:
    table, hidden = render.sweep_results(summary.results, show_all)
    if table is not None:
        out.print(table)
    if hidden:
        out.print(f"({hidden} targets without failure not listed; --all lists every one)")
    counts = (
        f"seen {summary.seen}: advanced {summary.advanced}, not due {summary.not_due}, "
        f"deferred {summary.deferred}, busy {summary.busy}, failed {summary.failed}"
    )
    if summary.interrupted:
        counts += f", not started (interrupted) {summary.interrupted}"
    out.print(counts, highlight=False)
    out.print(
        f"overdue {summary.overdue}; next due {render.when(summary.next_due) or '-'}; "
        f"{summary.duration_ms / 1000:.1f} s",
        highlight=False,
    )
    if summary.deferred:
        out.print(
            "deferred: the subscription's ARM write budget (ARM_WRITES_PER_SECOND) was spent; "
            "the next sweep takes them",
            highlight=False,
        )
