"""Invariant I2, checked against Key Vault and the state right before every ``regenerateKey``."""

from __future__ import annotations

from datetime import datetime, timedelta

from rotation.audit import slot_name
from rotation.errors import UnsafeToProceed
from rotation.model import Slot, TargetState
from rotation.steps.context import StepContext
from rotation.vault_layout import named_outside_service, read_pointer_and_active


def guard_regenerate(ctx: StepContext, state: TargetState, slot: Slot, now: datetime) -> None:
    """Refuse unless neither secret a consumer may read (the pointer, P-active) names or holds ``slot``
    now, and neither did less than a drain time ago — our own swaps (``swapped_at``), our repairs
    (``inactive_protected_until``) and anybody else's writes (versions we did not record) alike."""

    def refuse(why: str) -> UnsafeToProceed:
        return UnsafeToProceed(f"{ctx.target.account_name}: refusing to regenerate {slot.value}: {why}")

    pointer, active = read_pointer_and_active(ctx)
    if pointer is None or pointer is slot or pointer is not state.active_slot:
        named, expected = slot_name(pointer) or "nothing", slot_name(state.active_slot)
        raise refuse(f"the pointer names {named}, the state expects {expected}")
    held = Slot.parse(active.tags.get("slot")) if active else None
    if held is not state.active_slot:
        raise refuse(
            f"P-active holds {slot_name(held) or 'an unknown slot'}, the pointer names {pointer.value}"
        )
    # ``slot`` is the inactive one: it was named by the pointer until ``swapped_at``.
    if state.swapped_at is not None and now < state.swapped_at + timedelta(seconds=state.drain_seconds or 0):
        raise refuse(
            f"the pointer named it until {state.swapped_at.isoformat()}, less than the drain time ago"
        )
    if state.inactive_protected_until is not None and now < state.inactive_protected_until:
        raise refuse(f"a consumer may use it until {state.inactive_protected_until.isoformat()}")
    named_until = named_outside_service(ctx, state, slot)
    if named_until is not None and now < named_until + ctx.target.drain_time:
        raise refuse(f"it was named outside the service until {named_until.isoformat()}")
