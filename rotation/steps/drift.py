"""Drift check (IDLE, every 6 h, and before any cycle after a refused I2 guard): reconcile Key Vault with
``listKeys`` and the state. The pointer is the reference: P-active is made to agree with it (I1 at rest),
and any slot that a consumer-readable secret named or held outside one of our swaps is protected for a
drain time (I2), so no later cycle is refused."""

from __future__ import annotations

from datetime import datetime

from rotation.audit import loud_active_drift
from rotation.model import Slot, TargetState
from rotation.outcomes import StepOutcome
from rotation.steps.context import StepContext, StepResult
from rotation.vault_layout import (
    named_outside_service,
    observed_versions,
    read_active,
    read_pointer,
    store_slot,
    stored_generation,
    sync_active,
    write_pointer,
)


def check_drift(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    target = ctx.target
    keys = ctx.ports.keys.list_keys(target.resource_id)
    active = state.active_slot or Slot.KEY1
    changes: dict[str, object] = {"drift_checked_at": now}
    repaired: list[str] = []
    pointer = read_pointer(ctx, fresh=True)
    if pointer is None:
        write_pointer(ctx, active, "drift")
        repaired.append("pointer missing: restored")
    elif pointer is not active:
        # Someone moved the pointer: consumers may now use that slot, and may still use the other one for
        # a drain time (I2) — so record it as a swap that just happened.
        repaired.append(f"pointer moved to {pointer.value} outside the service: adopted")
        active = pointer
        changes.update(active_slot=pointer, swapped_at=now, drain_seconds=target.drain_time.total_seconds())
    # Both consumer-readable secrets must be known before their version history is read.
    read_active(ctx, fresh=True)
    named_until = named_outside_service(ctx, state, active.other)
    protect_until = named_until + target.drain_time if named_until is not None else None
    if named_until is not None:
        repaired.append(f"{active.other.value} was named outside the service until {named_until.isoformat()}")
    for slot in Slot:
        stored = stored_generation(ctx, slot)
        if stored is None or stored.value != keys.of(slot):
            store_slot(ctx, slot, keys.of(slot), f"drift-{now.strftime('%Y%m%dT%H%M%SZ')}")
            repaired.append(f"{slot.value} differed from listKeys: stored the service's value")
            if slot is active:
                loud_active_drift(ctx, state, slot)
    protection = sync_active(ctx, state, active, keys.of(active), state.cycle_id or "drift", now)
    if protection:
        repaired.append(f"P-active did not hold {active.value}, which the pointer names: restored")
    elif ctx.active_rewritten:
        repaired.append("active value differed: restored")
    if protect_until is not None:
        current = protection.get("inactive_protected_until") or state.inactive_protected_until
        protection["inactive_protected_until"] = max(protect_until, current) if current else protect_until
    checked = state.with_changes(**changes, **protection, **observed_versions(ctx))
    if repaired:
        return StepResult(checked, StepOutcome.SUCCEEDED, active, note="; ".join(repaired))
    return StepResult(checked, StepOutcome.SUCCEEDED, None, history=False, note="no drift")
