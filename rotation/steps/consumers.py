"""The acknowledged drain (docs/ENGINE.md "Consumers"): after the swap, tell every consumer whose platform can
refetch (App Service Key Vault references, API Management named values) to do so, then look at what each
one resolved. The drain ends early once every such consumer shows the new ``P-active`` version and every
consumer without a signal has passed its bound; a consumer still off the new version when the drain's bound
is over holds the cycle in DRAINING, loudly, until it moves or an admin releases the drain.

Waiting is stored state (``consumers_check_at``), advanced by later invocations (I6). Each check is one
ARM read per consumer; the refresh is one ARM write per consumer, taken from the same per-subscription
budget as ``regenerateKey`` (a refresh the budget cannot pay now is sent by a later check).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from rotation.audit import append_history, error_text, logger
from rotation.consumers import Consumer, ConsumerKind, quiet_drain, short
from rotation.errors import RotationError
from rotation.model import TargetState
from rotation.outcomes import StepOutcome
from rotation.ports import ConsumerObservation
from rotation.steps.context import StepContext, StepResult

CHECK_INTERVAL = timedelta(minutes=1)  # while the bound lasts: a refreshed platform moves within seconds
HELD_RECHECK = timedelta(minutes=15)  # once held: one look per sweep interval


def check_consumers(ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
    target = ctx.target
    signal = [c for c in target.consumers if c.has_signal]
    swapped_at = state.swapped_at or now
    refreshed_at = state.consumers_refreshed_at or _refresh_all(ctx, state, signal, now)
    waiting: list[tuple[Consumer, str]] = []
    for consumer in signal:
        try:
            observation = ctx.ports.consumers.observe(consumer)
        except RotationError as exc:
            waiting.append((consumer, f"not readable ({error_text(exc)})"))
            continue
        why = off_new_version(consumer, observation, ctx, state, swapped_at)
        if why:
            waiting.append((consumer, why))
    if not waiting:
        end = max(now, swapped_at + quiet_drain(target.consumers))
        # Honest accounting (the report counts both): acknowledged when the consumers' move ended the drain —
        # before its bound, or after holding it — not when the bound of the others ends it anyway.
        early = state.drain_until is None or end < state.drain_until
        ended_by = "acknowledged" if early or state.drain_held_since is not None else "bound"
        moved = ", ".join(c.label for c in signal)
        after = "now" if end <= now else f"at {end.isoformat()} (consumers without a signal: their bound)"
        done = state.with_changes(
            drain_until=end,
            drain_seconds=(end - swapped_at).total_seconds(),
            drain_ended_by=ended_by,
            consumers_waiting=None,
            consumers_check_at=None,
            consumers_refreshed_at=refreshed_at,
            drain_held_since=None,
        )
        return StepResult(
            done, StepOutcome.SUCCEEDED, note=f"acknowledged: {moved} on the new key; drain ends {after}"
        )
    labels = "; ".join(f"{c.label}: {why}" for c, why in waiting)
    bound_over = state.drain_until is not None and now >= state.drain_until
    if bound_over:
        first = state.drain_held_since is None
        held = state.with_changes(
            consumers_waiting=labels,
            drain_held_since=state.drain_held_since or now,
            consumers_check_at=now + HELD_RECHECK,
            consumers_refreshed_at=refreshed_at,
        )
        message = (
            f"drain held after its {short(timedelta(seconds=state.drain_seconds or 0))} bound: {labels}. "
            "The old key is not retired while a consumer may use it: fix the consumer (restart it, check its "
            "access to Key Vault), or release the drain with a reason: python -m rotation release "
            f"{target.account_name} --reason …"
        )
        logger.error(
            "rotation.drain_held %s",
            json.dumps({"target": target.resource_id, "cycle": state.cycle_id, "consumers": labels}),
        )
        return StepResult(held, StepOutcome.HELD, history=first, note=message)
    waiting_state = state.with_changes(
        consumers_waiting=labels,
        consumers_check_at=min(now + CHECK_INTERVAL, state.drain_until or now + CHECK_INTERVAL),
        consumers_refreshed_at=refreshed_at,
    )
    first_look = state.consumers_check_at is None or state.consumers_refreshed_at is None
    return StepResult(
        waiting_state, StepOutcome.WAITING, history=first_look, note=f"waiting for consumers: {labels}"
    )


def off_new_version(
    consumer: Consumer,
    observation: ConsumerObservation,
    ctx: StepContext,
    state: TargetState,
    swapped_at: datetime,
) -> str:
    """Why the consumer is not (yet) seen on the new key; empty when it is."""
    vault = ctx.ports.vault_key(ctx.target.vault_url).lower()
    vault_host = vault.split("//", 1)[-1].strip("/")
    secret = ctx.target.active_secret.lower()
    # App Service reports the vault by name, which a vault URL does not always tell (a private or local
    # host); its version ids are unique across vaults, so a same-named secret elsewhere never matches the
    # version compared below. API Management reports the secret's URI: its host must be this vault's.
    mine = [
        r
        for r in observation.references
        if r.secret_name.lower() == secret
        and (consumer.kind is ConsumerKind.APP_SERVICE or r.vault == vault_host)
    ]
    if not mine:
        return f"has no Key Vault reference to {ctx.target.active_secret} in this vault"
    for reference in mine:
        if not reference.resolved:
            return f"reference not resolved ({reference.detail or 'unknown status'})"
        if consumer.kind is ConsumerKind.APP_SERVICE and reference.version != state.active_version:
            return f"still resolves version {reference.version or '?'}, not {state.active_version}"
    if consumer.kind is ConsumerKind.API_MANAGEMENT and (
        observation.fetched_at is None or observation.fetched_at < swapped_at
    ):
        # API Management reports no version: a successful fetch after the swap can only have read the new one.
        return "has not fetched the secret since the swap"
    return ""


def _refresh_all(
    ctx: StepContext, state: TargetState, consumers: list[Consumer], now: datetime
) -> datetime | None:
    """Send each forced refresh once; None while any could not be sent (the next check sends it again)."""
    all_sent = True
    for consumer in consumers:
        subscription = consumer.resource_id.split("/")[2]
        if not ctx.ports.limiter.try_acquire(subscription):
            all_sent = False
            continue
        try:
            ctx.ports.consumers.refresh(consumer)
        except RotationError as exc:
            all_sent = False
            append_history(
                ctx, state, "refresh_consumer", StepOutcome.FAILED, error=error_text(exc), note=consumer.label
            )
            continue
        append_history(
            ctx, state, "refresh_consumer", StepOutcome.SUCCEEDED, note=f"refresh sent to {consumer.label}"
        )
    return now if all_sent else None
