"""The pure decision function: what to do next for one target, from (state, target, now, policy).

No I/O, no clock reads: table-driven and property-based tests cover it (tests/unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rotation.consumers import Consumer
from rotation.model import CycleRequest, Phase, Policy, Target, TargetState
from rotation.outcomes import RequestStatus


class Action(StrEnum):
    ADOPT = "adopt"  # store both keys, pointer and active value; state IDLE
    START_CYCLE = "start_cycle"  # record intent (IDLE → REGENERATING) under a new lease
    REGENERATE_NEW = "regenerate_new"  # regenerate the inactive slot, store it from listKeys
    VERIFY_AND_SWAP = "verify_and_swap"  # probe the new key; once accepted, swap the pointer
    BEGIN_RETIRE = "begin_retire"  # record intent (DRAINING → RETIRING) under a new lease
    RETIRE_OLD = "retire_old"  # regenerate the previously active slot, store it; cycle ends
    CHECK_DRIFT = "check_drift"  # compare Key Vault with listKeys, repair
    RECHECK_KEYLESS = "recheck_keyless"  # is local auth still disabled?
    CHECK_CONSUMERS = (
        "check_consumers"  # DRAINING: refresh consumers, see whether they moved (acknowledged drain)
    )
    WAIT = "wait"  # nothing to do before ``not_before``
    BUSY = "busy"  # another invocation holds the lease until ``not_before``


# Actions that only record intent in the state entity (no Azure side effect).
INTENT_ACTIONS = frozenset({Action.START_CYCLE, Action.BEGIN_RETIRE})
# Actions whose invocation will call regenerateKey, so their ARM write token is taken before the intent is
# written (a deferred target stays exactly as it was).
SPENDS_REGENERATE_BUDGET = frozenset(
    {Action.START_CYCLE, Action.BEGIN_RETIRE, Action.REGENERATE_NEW, Action.RETIRE_OLD}
)
# ARM writes (POSTs) a regenerate step makes: regenerateKey, whose answer carries both keys. The rare step
# whose POST azure-core sent twice lists the keys too, and takes that write's token then
# (``rotation.steps.regenerate.regenerate_and_list``).
WRITES_PER_REGENERATE = 1
# Actions whose only ARM write is one listKeys; budgeted too, so adoption of a large fleet or its drift
# checks cannot starve the same subscription's rotations.
LIST_KEYS_ACTIONS = frozenset({Action.ADOPT, Action.CHECK_DRIFT})
# Key Vault secret writes (CREATE secret: 300 per 10 s per vault) an action and the steps that follow it
# in the same invocation make — what the fan-out paces a wave by: START_CYCLE runs regenerate (1: the new
# slot) and the swap (2: P-active, pointer); BEGIN_RETIRE the retire (1: the old slot); adoption stores
# both slots, P-active and the pointer (4).
KEY_VAULT_WRITES_PER_INVOCATION = {
    Action.ADOPT: 4,
    Action.START_CYCLE: 3,
    Action.REGENERATE_NEW: 3,
    Action.VERIFY_AND_SWAP: 2,
    Action.BEGIN_RETIRE: 1,
    Action.RETIRE_OLD: 1,
}
# What is taken from the vault's budget before an action: only the writes of the step it starts, never a
# later step's. Key Vault counts a write when it arrives, the bucket when its token is taken: the window
# holds only if the time between the two stays short (docs/ENGINE.md "Budgets across instances"), so the
# swap's tokens are not taken before the regenerate's ARM calls and the probe. An intent action takes its
# step's tokens (a cycle does not start, nor a retire, while its first write cannot be made). Adoption
# reads the account, its keys and four secrets before its writes: it takes its 4 itself, between its reads
# and its writes (``take_vault_writes``).
KEY_VAULT_WRITES_TAKEN = {
    Action.ADOPT: 0,
    Action.START_CYCLE: 1,
    Action.REGENERATE_NEW: 1,
    Action.VERIFY_AND_SWAP: 2,
    Action.BEGIN_RETIRE: 1,
    Action.RETIRE_OLD: 1,
}
# What each action itself writes (the rest of what was taken stays held for the next step).
KEY_VAULT_WRITES_SPENT = {
    Action.ADOPT: 4,
    Action.REGENERATE_NEW: 1,
    Action.VERIFY_AND_SWAP: 2,
    Action.RETIRE_OLD: 1,
}


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    not_before: datetime | None = None

    @property
    def actionable(self) -> bool:
        return self.action not in (Action.WAIT, Action.BUSY)


def decide(
    state: TargetState | None,
    target: Target,
    now: datetime,
    policy: Policy,
    owner: str,
    request: CycleRequest | None = None,
) -> Decision:
    """The next step for ``target``. ``request`` is an approved manual request (see ``judge_request``)."""
    if state is None:
        return Decision(Action.ADOPT, "target not adopted yet")
    if state.lease_held_by_other(owner, now):
        return Decision(Action.BUSY, "another invocation holds the lease", state.lease_expires_at)
    if state.phase is Phase.ADOPTING:
        return Decision(Action.ADOPT, "adoption interrupted; resuming")
    if state.phase is Phase.KEYLESS:
        if state.next_attempt_at is None or state.next_attempt_at <= now:
            return Decision(Action.RECHECK_KEYLESS, "keyless re-check due")
        return Decision(Action.WAIT, "local authentication disabled", state.next_attempt_at)
    if request is not None and state.phase is Phase.IDLE:
        if request.force or request.emergency or not _in_backoff(state, now):
            requested = Decision(Action.START_CYCLE, f"requested by {request.trigger}")
            return _before_cycle(state, now) or requested
    if _in_backoff(state, now):
        return Decision(
            Action.WAIT, f"retry after failure: {state.last_error or 'waiting'}", state.next_attempt_at
        )
    if state.phase is Phase.IDLE:
        if state.active_slot is None or state.due_at is None or state.due_at <= now:
            return _before_cycle(state, now) or Decision(Action.START_CYCLE, "rotation due")
        drift_due = _drift_due(state, policy, now)
        if drift_due <= now:
            return Decision(Action.CHECK_DRIFT, "drift check due")
        return Decision(Action.WAIT, "next rotation not due", min(state.due_at, drift_due))
    if state.phase is Phase.REGENERATING:
        return Decision(Action.REGENERATE_NEW, "cycle started")
    if state.phase is Phase.VERIFYING:
        return Decision(Action.VERIFY_AND_SWAP, "new key stored")
    if state.phase is Phase.DRAINING:
        if has_signal_consumers(state, target.consumers):
            check_at = state.consumers_check_at or now
            if check_at <= now:
                return Decision(Action.CHECK_CONSUMERS, "looking at what the consumers resolved")
            why = "drain held: " if state.drain_held_since else "draining, waiting for consumers: "
            return Decision(Action.WAIT, why + (state.consumers_waiting or "?"), check_at)
        if state.drain_until is None or state.drain_until <= now:
            return Decision(Action.BEGIN_RETIRE, "drain over")
        return Decision(Action.WAIT, "draining", state.drain_until)
    if state.phase is Phase.RETIRING:
        return Decision(Action.RETIRE_OLD, "retiring the old slot")
    raise AssertionError(f"unhandled phase {state.phase}")  # pragma: no cover - enum is exhaustive


def has_signal_consumers(state: TargetState, consumers: tuple[Consumer, ...]) -> bool:
    """Whether this drain is gated on what consumers report (not after an emergency or a release)."""
    return (
        any(c.has_signal for c in consumers)
        and not state.emergency
        and state.drain_released_by is None
        and state.drain_ended_by is None
    )


def _before_cycle(state: TargetState, now: datetime) -> Decision | None:
    """What must happen before a cycle may start, if anything: a drift check that a refused I2 guard asked
    for (it repairs or records what the guard saw, so cycles are never refused in a loop), then the end of
    the protection of the inactive slot (regenerating it earlier would break a consumer, I2)."""
    if state.drift_checked_at is None:
        return Decision(Action.CHECK_DRIFT, "Key Vault must be reconciled before the next cycle")
    until = protected_until(state)
    if until is not None and until > now:
        return Decision(
            Action.WAIT, "the inactive slot may still be in use (drain after a pointer change)", until
        )
    return None


def protected_until(state: TargetState) -> datetime | None:
    """Until when the inactive slot must not be regenerated: a drain time after the pointer last moved to
    the active slot, or after a consumer-readable secret last named or held the inactive one (I2)."""
    ends = [state.inactive_protected_until] if state.inactive_protected_until else []
    if state.swapped_at is not None:
        ends.append(state.swapped_at + timedelta(seconds=state.drain_seconds or 0))
    return max(ends) if ends else None


def _in_backoff(state: TargetState, now: datetime) -> bool:
    return state.next_attempt_at is not None and state.next_attempt_at > now


def _drift_due(state: TargetState, policy: Policy, now: datetime) -> datetime:
    if state.drift_checked_at is None:
        return now
    return state.drift_checked_at + policy.drift_check_interval


@dataclass(frozen=True)
class RequestVerdict:
    status: RequestStatus
    message: str
    new_drain_until: datetime | None = None


def judge_request(
    state: TargetState | None,
    target: Target,
    now: datetime,
    policy: Policy,
    owner: str,
    request: CycleRequest,
) -> RequestVerdict:
    """Whether a manual request starts a cycle. Semantics (docs/ENGINE.md):

    - a cycle in progress is never doubled: IN_PROGRESS with the current state — except that an emergency
      request on a DRAINING cycle shortens its drain to EMERGENCY_DRAIN_TIME after the swap;
    - keyless accounts are refused;
    - without ``force`` (emergency implies force): refused while in failure backoff, and refused when a
      cycle completed less than the target's drain time ago (duplicate requests / events);
    - otherwise STARTED, whether or not the rotation is due.
    """
    if state is None or state.phase is Phase.ADOPTING:
        return RequestVerdict(RequestStatus.STARTED, "target will be adopted, then rotated")
    if state.phase is Phase.KEYLESS:
        return RequestVerdict(
            RequestStatus.REFUSED,
            "local authentication is disabled on the account (disableLocalAuth); there is no key to rotate",
        )
    if state.phase.in_cycle:
        if request.emergency and state.phase is Phase.DRAINING and state.swapped_at is not None:
            shortened = max(state.swapped_at + policy.emergency_drain_time, now)
            # A drain held by consumers past its bound is shortened too: emergency keeps its meaning.
            held = has_signal_consumers(state, target.consumers)
            if state.drain_until is None or shortened < state.drain_until or held:
                return RequestVerdict(
                    RequestStatus.DRAIN_SHORTENED,
                    "emergency: drain of the running cycle shortened",
                    shortened,
                )
        return RequestVerdict(
            RequestStatus.IN_PROGRESS, f"cycle {state.cycle_id} already in progress ({state.phase.value})"
        )
    if state.lease_held_by_other(owner, now):
        return RequestVerdict(RequestStatus.IN_PROGRESS, "another invocation is working on this target")
    forced = request.force or request.emergency
    if not forced and _in_backoff(state, now):
        return RequestVerdict(
            RequestStatus.REFUSED,
            f"in failure backoff until {state.next_attempt_at.isoformat() if state.next_attempt_at else '?'}"
            f" after: {state.last_error}; use force to override",
        )
    until = protected_until(state)
    if until is not None and until > now and state.drift_checked_at is not None:
        # Not even an emergency may regenerate a slot that a consumer may still use (I2).
        return RequestVerdict(
            RequestStatus.REFUSED,
            f"the inactive slot may still be in use until {until.isoformat()} (a drain time after the "
            "pointer or P-active last named it); rotate after that",
        )
    # The last cycle's own drain: shorter than the target's when its consumers acknowledged the new key.
    recent = timedelta(seconds=state.drain_seconds) if state.drain_seconds is not None else target.drain_time
    if not forced and state.last_rotated_at is not None and now - state.last_rotated_at < recent:
        ago = _short(now - state.last_rotated_at)
        return RequestVerdict(
            RequestStatus.REFUSED,
            f"a cycle completed {ago} ago, less than the drain time "
            f"({_short(recent)}); use force to rotate again",
        )
    return RequestVerdict(RequestStatus.STARTED, "cycle started")


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
