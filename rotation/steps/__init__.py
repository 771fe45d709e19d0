"""The steps of a rotation, one function each, named after DESIGN §1 — each first checks whether its work
is already done, so re-running it after a crash is harmless:

| action (``rotation.decision.Action``) | function |
|---|---|
| ``adopt`` | ``adopt.adopt`` |
| ``regenerate_new`` | ``regenerate.regenerate_inactive_slot`` (the I2 guard: ``guard.guard_regenerate``) |
| ``verify_and_swap`` | ``verify.verify_new_key`` → ``swap.swap_pointer`` → ``drain.begin_drain`` |
| ``retire_old`` | ``retire.retire_old_slot`` |
| ``check_drift`` | ``drift.check_drift`` |
| ``recheck_keyless`` | ``keyless.recheck_keyless`` |
| ``check_consumers`` | ``consumers.check_consumers`` (the acknowledged drain) |

``start_cycle`` and ``begin_retire`` only record intent in the state; the runner writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rotation.decision import Action
from rotation.model import TargetState
from rotation.steps.adopt import adopt
from rotation.steps.consumers import check_consumers
from rotation.steps.context import StepContext, StepResult
from rotation.steps.drain import begin_drain
from rotation.steps.drift import check_drift
from rotation.steps.keyless import recheck_keyless
from rotation.steps.regenerate import regenerate_inactive_slot
from rotation.steps.retire import retire_old_slot
from rotation.steps.swap import swap_pointer
from rotation.steps.verify import verify_new_key

Step = Callable[[StepContext, TargetState, datetime], StepResult]


def verify_swap_and_drain(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    """Steps 2-4 in one go: once the new key is accepted, swap every reader to it and start the drain."""
    waiting = verify_new_key(ctx, state, now)
    if waiting is not None:
        return waiting
    swap_pointer(ctx, state, now)
    return begin_drain(ctx, state)


STEPS: dict[Action, Step] = {
    Action.ADOPT: adopt,
    Action.REGENERATE_NEW: regenerate_inactive_slot,
    Action.VERIFY_AND_SWAP: verify_swap_and_drain,
    Action.RETIRE_OLD: retire_old_slot,
    Action.CHECK_DRIFT: check_drift,
    Action.RECHECK_KEYLESS: recheck_keyless,
    Action.CHECK_CONSUMERS: check_consumers,
}
