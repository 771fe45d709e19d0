"""Adoption: store both keys, P-active and (unless one exists) the pointer; the target becomes IDLE."""

from __future__ import annotations

from datetime import datetime

from rotation.decision import KEY_VAULT_WRITES_SPENT, Action
from rotation.errors import KeylessAccount
from rotation.model import Phase, Slot, Target, TargetState, staggered_due
from rotation.outcomes import StepOutcome
from rotation.steps.context import StepContext, StepResult
from rotation.steps.keyless import keyless_state
from rotation.vault_layout import (
    observed_versions,
    read_active,
    read_pointer,
    store_slot,
    stored_generation,
    sync_active,
    write_pointer,
)
from rotation.write_budgets import take_vault_writes


def first_due(target: Target, now: datetime) -> datetime:
    """A discovered account's first rotation is staggered over its period (a fleet tagged at once must not
    come due on one day); an explicitly configured one is due a period after adoption, as it always was.
    """
    if target.source == "discovered":
        return staggered_due(target.resource_id, target.rotation_period, now)
    return now + target.rotation_period


def adopt(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    target = ctx.target
    account = ctx.account = ctx.ports.keys.get_account(target.resource_id)
    if account.disable_local_auth:
        return keyless_state(ctx, state, now, account)
    try:
        keys = ctx.ports.keys.list_keys(target.resource_id)
    except KeylessAccount:
        return keyless_state(ctx, state, now, account)
    pointer = read_pointer(ctx, fresh=True)
    active = pointer or state.active_slot or Slot.KEY1  # an existing pointer is kept (seed material)
    # Every read first, then the vault's tokens, then the writes back to back: the time between a token
    # and its write stays that of the writes before it.
    stored = {slot: stored_generation(ctx, slot) for slot in Slot}
    read_active(ctx)
    take_vault_writes(ctx, KEY_VAULT_WRITES_SPENT[Action.ADOPT])
    for slot, current in stored.items():
        if current is None or current.value != keys.of(slot):
            store_slot(ctx, slot, keys.of(slot), "adopted")
    protection = sync_active(ctx, state, active, keys.of(active), "adopted", now)
    if pointer is None:
        write_pointer(ctx, active, "adopted")
    adopted = state.with_changes(
        phase=Phase.IDLE,
        active_slot=active,
        due_at=first_due(target, now),
        drift_checked_at=now,
        attempts=0,
        last_error=None,
        next_attempt_at=None,
        cycle_id=None,
        **account.kept_in_state(),
        **observed_versions(ctx),
        **protection,
    )
    return StepResult(adopted, StepOutcome.SUCCEEDED, active, note="adopted")
