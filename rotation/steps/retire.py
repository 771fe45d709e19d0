"""Cycle step 5: retire the old slot once the drain is over — regenerate it (nobody uses it any more),
store it, check I3; the cycle ends with the new slot active."""

from __future__ import annotations

from datetime import datetime

from rotation.audit import loud_active_drift, publish
from rotation.model import Phase, TargetState
from rotation.outcomes import LifecycleEventType, StepOutcome
from rotation.steps.context import StepContext, StepResult
from rotation.steps.guard import guard_regenerate
from rotation.steps.regenerate import regenerate_and_list
from rotation.vault_layout import observed_versions, store_slot, stored_generation, write_active


def retire_old_slot(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    target = ctx.target
    assert state.active_slot is not None and state.cycle_id is not None
    active, old = state.active_slot, state.active_slot.other
    existing = None if ctx.wrote_intent else stored_generation(ctx, old)
    if existing is not None and existing.tags.get("generation") == state.cycle_id:
        keys = ctx.ports.keys.list_keys(target.resource_id)
        if keys.of(old) != existing.value:
            store_slot(ctx, old, keys.of(old), state.cycle_id)
    else:
        guard_regenerate(ctx, state, old, now)
        keys = regenerate_and_list(ctx, old)
        store_slot(ctx, old, keys.of(old), state.cycle_id)
    # I3: at the end of a cycle both slot secrets equal listKeys.
    stored_active = stored_generation(ctx, active)
    if stored_active is None or stored_active.value != keys.of(active):
        store_slot(ctx, active, keys.of(active), f"drift-{now.strftime('%Y%m%dT%H%M%SZ')}")
        write_active(ctx, active, keys.of(active), state.cycle_id, now)
        loud_active_drift(ctx, state, active, "during the drain")
    ended_by = state.drain_ended_by or ("emergency" if state.emergency else "bound")
    done = state.with_changes(
        drain_ended_by=ended_by,
        consumers_waiting=None,
        consumers_check_at=None,
        drain_held_since=None,
        phase=Phase.IDLE,
        cycle_id=None,
        last_rotated_at=now,
        due_at=now + target.rotation_period,
        drift_checked_at=now,
        drain_until=None,
        next_attempt_at=None,
        attempts=0,
        last_error=None,
        cycles_completed=state.cycles_completed + 1,
        emergency=False,
        **observed_versions(ctx),
    )
    publish(ctx, state, LifecycleEventType.CYCLE_COMPLETED, old)
    return StepResult(done, StepOutcome.SUCCEEDED, old, note=f"cycle completed; drain ended by {ended_by}")
