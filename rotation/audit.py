"""The audit trail of every transition: the structured log record (CONTRACTS.md "Structured records"),
the append-only history row and the lifecycle event. Never a key value (I5)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from rotation.errors import RotationError
from rotation.model import HistoryRecord, Slot, Target, TargetState
from rotation.outcomes import LifecycleEventType, StepOutcome
from rotation.ports import LifecycleEvent

if TYPE_CHECKING:
    from rotation.steps.context import StepContext

logger = logging.getLogger("rotation")


def error_text(exc: BaseException) -> str:
    """``Class: reason`` — our exceptions never carry key values, so their text is safe to record."""
    return f"{type(exc).__name__}: {exc}"


def log_transition(
    *,
    target: str,
    cycle: str | None,
    step: str,
    slot: str | None,
    trigger: str,
    outcome: StepOutcome,
    duration_ms: int = 0,
    error: str | None = None,
    level: int | None = None,
) -> None:
    record: dict[str, Any] = {
        "target": target,
        "cycle": cycle,
        "step": step,
        "slot": slot,
        "trigger": trigger,
        "outcome": outcome.value,
        "durationMs": duration_ms,
        "error": error,
    }
    if level is None:
        level = logging.WARNING if outcome is StepOutcome.FAILED else logging.INFO
    logger.log(level, "rotation.transition %s", json.dumps(record, sort_keys=True))


def log_sweep(summary: dict[str, Any]) -> None:
    logger.info("rotation.sweep %s", json.dumps(summary, sort_keys=True))


def append_history(
    ctx: StepContext,
    state: TargetState,
    step: str,
    outcome: StepOutcome,
    slot: Slot | None = None,
    error: str | None = None,
    duration_ms: int = 0,
    note: str = "",
) -> None:
    record = HistoryRecord(
        target=ctx.target.resource_id,
        at=ctx.clock(),
        step=step,
        outcome=outcome.value,
        trigger=ctx.trigger,
        # the cycle's requester; outside a cycle (adoption on an admin request), the invocation's
        requester=state.cycle_requester or ctx.requester,
        reason=note or state.cycle_reason or "",
        cycle=state.cycle_id,
        slot=slot_name(slot),
        error=error,
        duration_ms=duration_ms,
        emergency=state.emergency,
    )
    if ctx.pending_history is not None:
        ctx.pending_history.append(record)  # carried by the next state write (rotation/history_carry.py)
        return
    try:
        ctx.ports.history.append(ctx.target.state_key, record)
    except RotationError as exc:
        # History is an audit trail, not a precondition: a lost row must not undo a done side effect.
        logger.warning("rotation.history_write_failed %s", error_text(exc))


def publish(
    ctx: StepContext,
    state: TargetState,
    event_type: LifecycleEventType,
    slot: Slot | None,
    reason: str | None = None,
) -> None:
    target: Target = ctx.target
    ctx.ports.lifecycle.publish(
        [
            LifecycleEvent(
                event_type=event_type.value,
                target=target.resource_id,
                account_name=target.account_name,
                cycle_id=state.cycle_id,
                slot=slot_name(slot),
                active_slot=slot_name(state.active_slot),
                reason=reason or state.cycle_reason,
            )
        ]
    )


def announce_cycle(ctx: StepContext, started: TargetState) -> None:
    """History, log and CycleStarted event — only once the intent has won its compare-and-swap, so an
    invocation that lost the race leaves no trace of a cycle that never existed (I4)."""
    append_history(ctx, started, "cycle", StepOutcome.STARTED, slot=started.new_slot)
    log_transition(
        target=ctx.target.resource_id,
        cycle=started.cycle_id,
        step="cycle",
        slot=slot_name(started.new_slot),
        trigger=ctx.trigger,
        outcome=StepOutcome.STARTED,
    )
    publish(ctx, started, LifecycleEventType.CYCLE_STARTED, started.new_slot)


def loud_active_drift(ctx: StepContext, state: TargetState, slot: Slot, when: str = "") -> None:
    """The active slot's stored value was dead (regenerated outside the service): say so everywhere."""
    message = (
        f"active slot {slot.value} of {ctx.target.account_name} was regenerated outside the service "
        f"{when}; its stored value was dead; Key Vault now holds the service's value"
    )
    logger.error("rotation.drift %s", message)
    append_history(ctx, state, "drift", StepOutcome.REPAIRED, slot=slot, error=message)
    log_transition(
        target=ctx.target.resource_id,
        cycle=state.cycle_id,
        step="drift",
        slot=slot.value,
        trigger=ctx.trigger,
        outcome=StepOutcome.FAILED,
        error=f"ActiveKeyDrift: {message}",
        level=logging.ERROR,
    )


def slot_name(slot: Slot | None) -> str | None:
    return slot.value if slot else None
