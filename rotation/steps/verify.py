"""Cycle step 2: verify the new key on the account's data plane before anyone is pointed at it."""

from __future__ import annotations

from datetime import datetime

from rotation.errors import KeyVerificationFailed
from rotation.model import TargetState, VerifyMode
from rotation.outcomes import StepOutcome
from rotation.ports import ProbeResult
from rotation.steps.context import StepContext, StepResult
from rotation.vault_layout import slot_value, swap_begun


def verify_new_key(ctx: StepContext, state: TargetState, now: datetime) -> StepResult | None:
    """None once the new key is accepted (or needs no probe); otherwise the stored retry to wait for.
    Raises ``KeyVerificationFailed`` when ``VERIFY_TIMEOUT`` has passed: the cycle is abandoned."""
    assert state.active_slot is not None and state.cycle_id is not None
    target, new = ctx.target, state.active_slot.other
    value = slot_value(ctx, new)
    if swap_begun(ctx, new, state.cycle_id):
        # P-active already holds the new key for this cycle: it was verified before that write, and
        # consumers may be using it, so the swap only rolls forward (never abandoned by a timeout).
        return None
    if target.verify is VerifyMode.NONE:
        return None
    endpoint, kind = state.endpoint, state.kind
    if not endpoint or not kind:
        if ctx.account is None:
            ctx.account = ctx.ports.keys.get_account(target.resource_id)
        endpoint, kind = ctx.account.endpoint, ctx.account.kind
    if not endpoint:
        raise KeyVerificationFailed(f"{target.account_name}: the account has no data-plane endpoint")
    result = ctx.ports.probe.probe(endpoint, kind or "", value)
    if result is ProbeResult.ACCEPTED:
        return None
    if state.verify_deadline is not None and now >= state.verify_deadline:
        raise KeyVerificationFailed(
            f"{target.account_name}: new {new.value} still {result.value} by the data plane "
            f"after VERIFY_TIMEOUT; pointer left on {state.active_slot.value}"
        )
    waiting = state.with_changes(next_attempt_at=now + ctx.policy.verify_retry_interval)
    return StepResult(waiting, StepOutcome.WAITING, new, history=False, note=f"probe {result.value}")
