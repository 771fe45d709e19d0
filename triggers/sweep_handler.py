"""The timer's sweep: one call into the engine, one summary record.

In-process (default): the engine's `sweep` advances every due target with bounded concurrency, isolates
each target's failure and logs the `rotation.sweep` summary itself. With `ROTATION_FANOUT=true` the timer
only asks which targets are due and writes queue messages naming them (up to 16 per message) through the
function's queue output binding; `rotate_from_queue` advances them, spread over instances by the host.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from rotation.pacing import by_second
from rotation.views import to_json
from shared.fanout import fanout_message, target_groups
from triggers import records
from triggers.runtime import Runtime


class Outbox(Protocol):
    """The `func.Out[List[str]]` the worker passes for the queue output binding."""

    def set(self, val: Any) -> None: ...


def run_sweep(timer: Any, runtime: Runtime, outbox: Outbox) -> None:
    past_due = bool(getattr(timer, "past_due", False))
    try:
        if runtime.settings.fanout:
            _fan_out(runtime, outbox, past_due)
        else:
            runtime.service.sweep(trigger="timer")  # logs `rotation.sweep {seen, advanced, failed, nextDue}`
    except Exception as error:
        # A sweep-wide failure (state table unreachable, ...) fails this run loudly; the next schedule
        # tries again — timer triggers are never retried by the host.
        records.emit("rotation.sweep_failed", logging.ERROR, pastDue=past_due, fanout=runtime.settings.fanout,
                     error=f"{type(error).__name__}: {records.clip(str(error))}")
        raise
    if past_due:
        records.emit("rotation.sweep_past_due", logging.WARNING,
                     detail="the previous scheduled run was missed (host down or a sweep overran)")


def _fan_out(runtime: Runtime, outbox: Outbox, past_due: bool) -> None:
    """Due targets, paced by the write budgets: those that may start now go out through the output binding,
    the rest as queue messages that become visible when their subscription's ARM budget and their vault's
    Key Vault budget have room (docs/ENGINE.md "Budgets across instances")."""
    from shared.bootstrap import write_budget_pacing

    paced = runtime.service.paced_due_targets(*write_budget_pacing(runtime.settings))
    now = [target.resource_id for target, delay in paced if delay < 1]
    later = [(target.resource_id, delay) for target, delay in paced if delay >= 1]
    if now:
        outbox.set([fanout_message(*group) for group in target_groups(now)])
    for seconds, resource_ids in by_second(later).items():
        runtime.service.ports.scheduler.schedule_many(resource_ids, seconds)
    records.emit("rotation.sweep", fanout=True, pastDue=past_due, seen=len(runtime.service.targets),
                 enqueued=len(paced), delayed=len(later),
                 targets=to_json([target.resource_id for target, _ in paced]))
