"""Cycle step 3: swap — point every reader at the verified new key.

P-active first, then the pointer (docs/ENGINE.md "Order of writes"): the P-active write, tagged with the
cycle id, is the swap's commit point; after it the cycle only rolls forward."""

from __future__ import annotations

from datetime import datetime

from rotation.model import TargetState
from rotation.steps.context import StepContext
from rotation.vault_layout import read_pointer, slot_value, swap_begun, write_active, write_pointer


def swap_pointer(ctx: StepContext, state: TargetState, now: datetime) -> None:
    assert state.active_slot is not None and state.cycle_id is not None
    new = state.active_slot.other
    if not swap_begun(ctx, new, state.cycle_id):
        write_active(ctx, new, slot_value(ctx, new), state.cycle_id, now)
    if read_pointer(ctx) is not new:
        write_pointer(ctx, new, state.cycle_id)
