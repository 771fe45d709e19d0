"""Cycle step 2: verify the new key on the account's data plane before anyone is pointed at it."""

from __future__ import annotations

from datetime import datetime

from rotation.errors import DataPlaneUnreachable, KeylessAccount, KeyVerificationFailed
from rotation.model import TargetState, VerifyMode
from rotation.outcomes import StepOutcome
from rotation.ports import DataPlane, ProbeResult
from rotation.steps.context import StepContext, StepResult
from rotation.vault_layout import slot_value, swap_begun

NETWORK_DENIED_ADVICE = (
    "the service cannot reach this account's data plane (network rules): deploy with VNet integration, "
    "or set verify to none for this target"
)


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
    result = ctx.ports.probe.probe(data_plane(ctx, state), value, target.probe)
    if result is ProbeResult.NETWORK_DENIED:
        raise DataPlaneUnreachable(f"{target.account_name}: {NETWORK_DENIED_ADVICE}")
    if result is ProbeResult.LOCAL_AUTH_DISABLED:
        raise KeylessAccount(f"{target.account_name}: data plane: AuthenticationTypeDisabled")
    if result is ProbeResult.ACCEPTED:
        return None
    if state.verify_deadline is not None and now >= state.verify_deadline:
        raise KeyVerificationFailed(
            f"{target.account_name}: new {new.value} still {result.value} by the data plane "
            f"after VERIFY_TIMEOUT; pointer left on {state.active_slot.value}"
        )
    waiting = state.with_changes(next_attempt_at=now + ctx.policy.verify_retry_interval)
    return StepResult(waiting, StepOutcome.WAITING, new, history=False, note=f"probe {result.value}")


def data_plane(ctx: StepContext, state: TargetState) -> DataPlane:
    """Kept in the state at adoption; a state written before location/custom_subdomain were kept reads the
    account instead (one ARM GET per verification)."""
    if state.endpoint and state.kind and state.location and state.custom_subdomain is not None:
        return DataPlane(state.endpoint, state.kind, state.location, state.custom_subdomain)
    if ctx.account is None:
        ctx.account = ctx.ports.keys.get_account(ctx.target.resource_id)
    account = ctx.account
    if not account.endpoint:
        raise KeyVerificationFailed(f"{ctx.target.account_name}: the account has no data-plane endpoint")
    return DataPlane(account.endpoint, account.kind, account.location, account.custom_subdomain)
