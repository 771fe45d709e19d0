"""Cycle step 4: the drain — stored as ``drain_until``, never slept (I6). Later invocations wait it out."""

from __future__ import annotations

from datetime import timedelta

from rotation.audit import publish
from rotation.consumers import short
from rotation.model import Phase, TargetState
from rotation.outcomes import LifecycleEventType, StepOutcome
from rotation.steps.context import StepContext, StepResult
from rotation.vault_layout import observed_versions


def begin_drain(ctx: StepContext, state: TargetState) -> StepResult:
    assert state.active_slot is not None
    new = state.active_slot.other
    drain_seconds = (
        state.cycle_drain_seconds
        if state.cycle_drain_seconds is not None
        else ctx.target.drain_time.total_seconds()
    )
    # The drain counts from after the pointer write (not from the step's start, which precedes the probe
    # and both writes), so the old slot is never retired earlier than drainTime after the swap. On a re-run
    # after a crash the pointer moved earlier than this: later is the safe side.
    swapped_at = ctx.clock()
    draining = state.with_changes(
        phase=Phase.DRAINING,
        active_slot=new,
        swapped_at=swapped_at,
        drain_seconds=drain_seconds,
        drain_until=swapped_at + timedelta(seconds=drain_seconds),
        verify_deadline=None,
        next_attempt_at=None,
        attempts=0,
        # a new drain: consumers are refreshed and looked at afresh (rotation/steps/consumers.py)
        consumers_check_at=None,
        consumers_refreshed_at=None,
        consumers_waiting=None,
        drain_held_since=None,
        drain_released_by=None,
        drain_release_reason=None,
        drain_ended_by=None,
        **observed_versions(ctx),
    )
    publish(ctx, draining, LifecycleEventType.KEY_SWAPPED, new)
    reason = (
        ctx.target.drain_reason
        if drain_seconds == ctx.target.drain_time.total_seconds() and ctx.target.drain_reason
        else f"drain {short(timedelta(seconds=drain_seconds))}"
    )
    return StepResult(draining, StepOutcome.SUCCEEDED, new, note=f"verified and swapped; {reason}")
