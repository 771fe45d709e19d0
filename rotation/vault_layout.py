"""The Key Vault layout of a target (DESIGN §3, CONTRACTS.md "Key Vault layout"): which secret holds what,
its tags, and every read and write of the slot secrets, the pointer ``P-active-key`` and ``P-active``.

Pointer and P-active versions carry a ``slot`` tag (what they name or hold) and a ``cycle`` tag (who wrote
them), so a later version listing can tell what consumers were handed without reading any value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rotation.errors import SecretDeleted, TransientAzureError, UnsafeToProceed
from rotation.model import MANAGED_BY, SecretValue, Slot, Target, TargetState
from rotation.ports import SecretStore, SecretVersion, StoredSecret
from rotation.views import SlotAge

if TYPE_CHECKING:  # a type only: importing it would load rotation.steps, which imports this module
    from rotation.steps.context import StepContext

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def managed_tags(target: Target, slot: Slot, cycle: str) -> dict[str, str]:
    """Tags of the pointer and P-active: the slot each version names or holds, and the cycle that wrote it."""
    return {"managed-by": MANAGED_BY, "target": target.resource_id, "slot": slot.value, "cycle": cycle}


def slot_tags(target: Target, slot: Slot, generation: str) -> dict[str, str]:
    return {
        "managed-by": MANAGED_BY,
        "target": target.resource_id,
        "slot": slot.value,
        "generation": generation,
    }


def store(
    ctx: StepContext, name: str, value: SecretValue, tags: dict[str, str], expires_on: datetime | None = None
) -> str:
    """Write a managed secret. One that was deleted by hand (soft delete holds its name) is recovered —
    its versions come back, so nothing about what consumers read is lost — and the step retried."""
    try:
        return ctx.secrets.set_secret(name, value, tags, expires_on=expires_on)
    except SecretDeleted:
        ctx.secrets.recover_secret(name)
        raise TransientAzureError(
            f"secret {name} had been deleted; its recovery has started, the step is retried", 15
        ) from None


# ------------------------------------------------------------------------------------------ slots


def store_slot(ctx: StepContext, slot: Slot, value: SecretValue, generation: str) -> None:
    store(ctx, ctx.target.slot_secret(slot), value, slot_tags(ctx.target, slot, generation))
    ctx.values[slot] = value


def slot_value(ctx: StepContext, slot: Slot) -> SecretValue:
    if slot not in ctx.values:
        stored = ctx.secrets.get_secret(ctx.target.slot_secret(slot))
        if stored is None:
            raise UnsafeToProceed(
                f"{ctx.target.account_name}: secret {ctx.target.slot_secret(slot)} is missing"
            )
        ctx.values[slot] = stored.value
    return ctx.values[slot]


def stored_generation(ctx: StepContext, slot: Slot) -> StoredSecret | None:
    """The slot secret as Key Vault has it (its ``generation`` tag says which cycle stored it)."""
    return ctx.secrets.get_secret(ctx.target.slot_secret(slot))


def slot_age(secrets: SecretStore, target: Target, slot: Slot, active: Slot | None, now: datetime) -> SlotAge:
    """The key-age report's reading of one slot secret (outside any step: no context, no lease).

    The value is fetched by Key Vault's GET but never revealed. A generation tag that is a cycle id means
    the service generated that key when it stored it; ``adopted`` and ``drift-…`` values were found already
    issued, so their stored time is only a lower bound of the key's age."""
    stored = secrets.get_secret(target.slot_secret(slot))
    created = stored.created_on if stored is not None else None
    generation = stored.tags.get("generation") if stored is not None else None
    exact = bool(generation) and generation != "adopted" and not str(generation).startswith("drift-")
    return SlotAge(
        slot=slot.value,
        stored_at=created,
        # Key Vault stamps versions with its own clock: a few seconds of skew must not read as a negative age.
        age_seconds=max(0.0, (now - created).total_seconds()) if created else None,
        generation=generation,
        exact=exact,
        active=slot is active,
    )


# ------------------------------------------------------------------------------------ the pointer


def read_pointer(ctx: StepContext, fresh: bool = False) -> Slot | None:
    if fresh or not ctx.pointer_known:
        _know_pointer(ctx, ctx.secrets.get_secret(ctx.target.pointer_secret))
    return ctx.pointer


def read_pointer_and_active(ctx: StepContext) -> tuple[Slot | None, StoredSecret | None]:
    """Both secrets a consumer may read, fresh, in one round trip (the I2 guard reads both): the slot the
    pointer names and P-active."""
    target = ctx.target
    pointer, active = ctx.secrets.get_secrets((target.pointer_secret, target.active_secret))
    _know_pointer(ctx, pointer)
    ctx.active, ctx.active_known = active, True
    return ctx.pointer, active


def _know_pointer(ctx: StepContext, secret: StoredSecret | None) -> None:
    ctx.pointer_secret = secret
    ctx.pointer = Slot.parse(secret.value.reveal()) if secret else None
    ctx.pointer_known = True


def write_pointer(ctx: StepContext, slot: Slot, cycle: str) -> None:
    tags = managed_tags(ctx.target, slot, cycle)
    name = ctx.target.pointer_secret
    version = store(ctx, name, SecretValue(slot.value), tags)
    ctx.pointer_secret = StoredSecret(name, SecretValue(slot.value), version, tags)
    ctx.pointer, ctx.pointer_known = slot, True


# ------------------------------------------------------------------------------------- P-active


def read_active(ctx: StepContext, fresh: bool = False) -> StoredSecret | None:
    if fresh or not ctx.active_known:
        ctx.active = ctx.secrets.get_secret(ctx.target.active_secret)
        ctx.active_known = True
    return ctx.active


def write_active(ctx: StepContext, slot: Slot, value: SecretValue, cycle: str, now: datetime) -> None:
    target = ctx.target
    tags = managed_tags(target, slot, cycle)
    expires = now + target.rotation_period + ctx.policy.expiry_margin
    version = store(ctx, target.active_secret, value, tags, expires)
    ctx.active, ctx.active_known = StoredSecret(target.active_secret, value, version, tags, expires), True
    ctx.active_rewritten = True


def swap_begun(ctx: StepContext, new: Slot, cycle: str) -> bool:
    """Whether this cycle's swap has written P-active (its commit point, docs/ENGINE.md)."""
    active = read_active(ctx)
    return active is not None and active.tags.get("slot") == new.value and active.tags.get("cycle") == cycle


def sync_active(
    ctx: StepContext, state: TargetState, slot: Slot, value: SecretValue, cycle: str, now: datetime
) -> dict[str, datetime]:
    """Make P-active hold ``slot``'s value. When it held anything else, consumers may have read that key,
    so the other slot is protected for a drain time (returned as the state change to make)."""
    stored = read_active(ctx)
    if stored is not None and stored.value == value and stored.tags.get("slot") == slot.value:
        return {}
    write_active(ctx, slot, value, cycle, now)
    if stored is None or stored.tags.get("slot") == slot.value:
        return {}  # nothing was there, or only a stale copy of the same slot
    until = now + ctx.target.drain_time
    current = state.inactive_protected_until
    return {"inactive_protected_until": max(until, current) if current else until}


# ------------------------------------------------------------------------- versions and history


def observed_versions(ctx: StepContext) -> dict[str, str]:
    """The versions of the pointer and P-active this invocation read or wrote, to record in the state."""
    observed: dict[str, str] = {}
    if ctx.pointer_known and ctx.pointer_secret is not None:
        observed["pointer_version"] = ctx.pointer_secret.version
    if ctx.active_known and ctx.active is not None:
        observed["active_version"] = ctx.active.version
    return observed


def named_outside_service(ctx: StepContext, state: TargetState, slot: Slot) -> datetime | None:
    """Until when a version of the pointer or P-active that the service did not record (a hand edit,
    another tool) may have named or held ``slot``; None when there is none. Costs a version listing only
    when a secret's current version differs from the one the state recorded."""
    latest: datetime | None = None
    for secret, recorded in ((ctx.pointer_secret, state.pointer_version), (ctx.active, state.active_version)):
        if secret is None or recorded is None or secret.version == recorded:
            continue  # nothing recorded yet (adoption, older state) or nobody wrote it since we did
        until = named_until(ctx.secrets.list_versions(secret.name), recorded, slot)
        if until is not None and (latest is None or until > latest):
            latest = until
    return latest


def named_until(versions: list[SecretVersion], recorded: str, slot: Slot) -> datetime | None:
    """Until when a version written since ``recorded`` may have named ``slot``: None when none did.

    Key Vault lists versions in no order and stamps them in whole seconds, so the order of versions made
    in one second is unknown. Conservatively, every earlier version (not the current one) created at or
    after ``recorded`` that named ``slot`` — or whose slot is unknown: an untagged hand edit — counts as
    named until the newest version was created."""
    stamped = [v for v in versions if v.created_on is not None]
    if not stamped:
        return None
    newest = max(stamped, key=lambda v: v.created_on or _EPOCH)
    since = next((v.created_on for v in stamped if v.version == recorded), None) or _EPOCH
    for version in stamped:
        if version is newest or version.version == recorded or (version.created_on or _EPOCH) < since:
            continue
        named = Slot.parse(version.tags.get("slot"))
        if named is None or named is slot:
            return newest.created_on
    return None
