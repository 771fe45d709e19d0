"""Accounts with ``disableLocalAuth``: nothing to store or rotate; re-checked now and then."""

from __future__ import annotations

from datetime import datetime

from rotation.model import Phase, TargetState
from rotation.outcomes import StepOutcome
from rotation.ports import AccountInfo
from rotation.steps.context import StepContext, StepResult


def keyless_state(ctx: StepContext, state: TargetState, now: datetime, account: AccountInfo) -> StepResult:
    keyless = state.with_changes(
        phase=Phase.KEYLESS,
        cycle_id=None,
        next_attempt_at=now + ctx.policy.keyless_recheck_interval,
        attempts=0,
        last_error=None,
        **account.kept_in_state(),
    )
    return StepResult(
        keyless, StepOutcome.SKIPPED, None, note="local authentication disabled (disableLocalAuth)"
    )


def recheck_keyless(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    ctx.account = ctx.ports.keys.get_account(ctx.target.resource_id)
    if ctx.account.disable_local_auth:
        return StepResult(
            state.with_changes(next_attempt_at=now + ctx.policy.keyless_recheck_interval),
            StepOutcome.WAITING,
            None,
            history=False,
            note="still keyless",
        )
    # Local auth is back: adopt again (keeps the pointer, stores both keys).
    return StepResult(
        state.with_changes(phase=Phase.ADOPTING, next_attempt_at=None),
        StepOutcome.SUCCEEDED,
        None,
        note="local authentication re-enabled",
    )
