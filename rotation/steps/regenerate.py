"""Cycle step 1: regenerate the inactive slot (nobody uses it) and store its new value."""

from __future__ import annotations

from datetime import datetime

from rotation.decision import WRITES_PER_REGENERATE
from rotation.errors import TransientAzureError
from rotation.model import Phase, Slot, TargetState
from rotation.outcomes import StepOutcome
from rotation.ports import AccountKeys
from rotation.steps.context import StepContext, StepResult
from rotation.steps.guard import guard_regenerate
from rotation.vault_layout import observed_versions, store_slot, stored_generation


def regenerate_inactive_slot(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    assert state.active_slot is not None and state.cycle_id is not None
    new = state.active_slot.other
    verifying = state.with_changes(
        phase=Phase.VERIFYING, verify_deadline=now + ctx.policy.verify_timeout, next_attempt_at=None
    )
    existing = None if ctx.wrote_intent else stored_generation(ctx, new)
    if existing is not None and existing.tags.get("generation") == state.cycle_id:
        ctx.values[new] = existing.value
        return StepResult(
            verifying, StepOutcome.SKIPPED, new, history=False, note="already regenerated and stored"
        )
    guard_regenerate(ctx, state, new, now)
    keys = regenerate_and_list(ctx, new)
    store_slot(ctx, new, keys.of(new), state.cycle_id)
    return StepResult(verifying.with_changes(**observed_versions(ctx)), StepOutcome.SUCCEEDED, new)


def regenerate_and_list(ctx: StepContext, slot: Slot) -> AccountKeys:
    """regenerateKey, whose answer carries both keys; listKeys only when that answer may be stale (azure-core
    retried the POST, so an earlier one's response may have come back after the one that won)."""
    if not ctx.regenerate_budget and not ctx.ports.limiter.try_acquire(
        ctx.target.subscription_id, WRITES_PER_REGENERATE
    ):
        raise TransientAzureError(f"{ctx.target.account_name}: ARM write budget exhausted; retrying later")
    ctx.regenerate_budget = False
    answered = ctx.ports.keys.regenerate_key(ctx.target.resource_id, slot)
    if answered is not None:
        return answered
    if not ctx.ports.limiter.try_acquire(ctx.target.subscription_id):  # listKeys is an ARM write too
        raise TransientAzureError(
            f"{ctx.target.account_name}: ARM write budget exhausted before listKeys (azure-core sent "
            "regenerateKey twice); retrying later"
        )
    return ctx.ports.keys.list_keys(ctx.target.resource_id)
