"""The step runner: advances one target through as many steps as are ready now.

Each step first checks whether its work is already done (so re-running after a crash is harmless), intent
is recorded in the state entity (compare-and-swap, with a lease) before any side effect, and waiting is
stored state (``drain_until``, ``next_attempt_at``) — nothing here sleeps (I6).

State writes per cycle (the minimum): intent REGENERATING (+lease), DRAINING (lease released), intent
RETIRING (+lease), IDLE (lease released). Steps in between are not persisted one by one: every step can be
recomputed from Key Vault (generation tags, the pointer), which is what makes that safe.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rotation.decision import (
    INTENT_ACTIONS,
    LIST_KEYS_ACTIONS,
    REGENERATING_ACTIONS,
    WRITES_PER_REGENERATE,
    Action,
    Decision,
    decide,
)
from rotation.errors import (
    AzureAccessDenied,
    DataPlaneUnreachable,
    KeylessAccount,
    KeyVerificationFailed,
    LeaseLost,
    RotationError,
    SecretDeleted,
    StateConflict,
    TransientAzureError,
    UnexpectedError,
    UnsafeToProceed,
)
from rotation.model import (
    MANAGED_BY,
    CycleRequest,
    HistoryRecord,
    Phase,
    Policy,
    SecretValue,
    Slot,
    Target,
    TargetResult,
    TargetState,
    VersionedState,
)
from rotation.ports import (
    AccountInfo,
    AccountKeys,
    DataPlane,
    HistoryStore,
    KeyProbe,
    KeyService,
    LifecycleEvent,
    LifecycleSink,
    ProbeResult,
    SecretStore,
    SecretVersion,
    StateStore,
    StoredSecret,
    WriteRateLimiter,
)
from rotation.records import error_text, log_transition, logger

Clock = Callable[[], datetime]
MAX_STEPS_PER_INVOCATION = 12
BUDGET_EXHAUSTED = "ARM write budget exhausted for the subscription"
NETWORK_DENIED_ADVICE = (
    "the service cannot reach this account's data plane (network rules): deploy with VNet integration, "
    "or set verify to none for this target"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Ports:
    secrets: SecretStore
    keys: KeyService
    probe: KeyProbe
    states: StateStore
    history: HistoryStore
    lifecycle: LifecycleSink
    limiter: WriteRateLimiter


@dataclass
class _Invocation:
    """What one invocation learned so far, so a step does not re-read what the previous one just wrote."""

    target: Target
    trigger: str
    owner: str
    pointer: Slot | None = None
    pointer_known: bool = False
    pointer_secret: StoredSecret | None = None
    active: StoredSecret | None = None  # P-active as last read or written by this invocation
    active_known: bool = False
    active_rewritten: bool = False  # this invocation wrote P-active
    values: dict[Slot, SecretValue] = field(default_factory=dict)
    account: AccountInfo | None = None
    write_token: bool = False
    steps: list[str] = field(default_factory=list)
    # True once this invocation itself wrote a START_CYCLE/BEGIN_RETIRE intent: nobody can have done that
    # phase's regenerate yet (its generation tag is new), so the "already done?" read can be skipped.
    wrote_intent: bool = False
    list_token: bool = False  # an ARM write token for one listKeys (adoption, drift check) is held
    requester: str = ""  # who asked (admin principal, event id) when a request drives this invocation
    deferred: bool = False  # stopped because the subscription's ARM write budget is exhausted


@dataclass(frozen=True)
class _StepResult:
    state: TargetState
    outcome: str  # succeeded | waiting | skipped
    slot: Slot | None = None
    history: bool = True
    note: str = ""


class StepRunner:
    def __init__(self, ports: Ports, policy: Policy, clock: Clock = utc_now) -> None:
        self.ports = ports
        self.policy = policy
        self.clock = clock

    # ------------------------------------------------------------------ loop

    def advance(
        self,
        target: Target,
        trigger: str,
        loaded: VersionedState | None = None,
        request: CycleRequest | None = None,
        owner: str | None = None,
        preloaded: bool = False,
    ) -> TargetResult:
        """Run every step that is ready now; return what was done. Never raises ``RotationError``.

        ``loaded`` is the state the caller already read (``preloaded=True`` also trusts a ``None``: the
        sweep's query found no state, so the target is not adopted and is not read again)."""
        inv = _Invocation(
            target=target,
            trigger=trigger,
            owner=owner or uuid.uuid4().hex,
            requester=request.requester if request else "",
        )
        try:
            current = loaded if loaded is not None or preloaded else self.ports.states.get(target.key)
        except RotationError as exc:
            return TargetResult(target.resource_id, "failed", error=error_text(exc))
        state = current.state if current else None
        etag = current.etag if current else None
        dirty = False
        decision = Decision(Action.WAIT, "not evaluated")
        try:
            for _ in range(MAX_STEPS_PER_INVOCATION):
                now = self.clock()
                decision = decide(state, target, now, self.policy, inv.owner, request)
                if not decision.actionable:
                    break
                # Budget first, before any intent is written: a deferred target stays exactly as it was.
                if decision.action in REGENERATING_ACTIONS and not inv.write_token:
                    if not self.ports.limiter.try_acquire(target.subscription_id, WRITES_PER_REGENERATE):
                        decision, inv.deferred = Decision(Action.WAIT, BUDGET_EXHAUSTED, now), True
                        break
                    inv.write_token = True
                if decision.action in LIST_KEYS_ACTIONS and not inv.list_token:
                    if not self.ports.limiter.try_acquire(target.subscription_id):
                        decision, inv.deferred = Decision(Action.WAIT, BUDGET_EXHAUSTED, now), True
                        break
                    inv.list_token = True  # adoption: shared by its intent write and the ADOPT step
                if state is None:
                    state, etag = self._create_adoption_intent(target, now, inv.owner)
                    continue
                assert etag is not None
                if decision.action in INTENT_ACTIONS:
                    intent = self._intent(decision.action, state, target, now, inv, request)
                    state, etag = self._write(target, intent, etag)
                    dirty = False
                    inv.steps.append(decision.action.value)
                    inv.wrote_intent = True
                    if decision.action is Action.START_CYCLE:
                        self._announce_cycle(target, state, inv)
                        request = None  # one request starts at most one cycle
                    continue
                if not self._holds_lease(state, inv.owner, now):
                    state, etag = self._write(target, self._with_lease(state, inv.owner, now), etag)
                    dirty = False
                started = time.monotonic()
                try:
                    try:
                        result = self._run(decision.action, inv, state, now)
                    except RotationError:
                        raise
                    except Exception as unexpected:
                        logger.error("rotation.unexpected_error in %s", decision.action.value, exc_info=True)
                        raise UnexpectedError.wrapping(unexpected) from None
                except RotationError as exc:
                    failed = self._failure_state(target, state, decision.action, exc, now, inv, started)
                    state, etag = self._write(target, _without_lease(failed), etag)
                    return self._result(target, inv, state, "failed", error=error_text(exc))
                if decision.action in LIST_KEYS_ACTIONS:
                    inv.list_token = False
                self._record(inv, state, decision.action, result, started)
                state = result.state
                dirty = True
                if result.outcome == "waiting":
                    break
            if state is not None and etag is not None and (dirty or state.lease_owner == inv.owner):
                state, etag = self._write(target, _without_lease(state), etag)
        except RotationError as exc:
            # LeaseLost: another invocation changed the state first, so it owns the target now. Anything
            # else here is a failed state write (storage unreachable): our lease, if any, simply expires.
            lost = isinstance(exc, LeaseLost)
            log_transition(
                target=target.resource_id,
                cycle=state.cycle_id if state else None,
                step=decision.action.value,
                slot=None,
                trigger=trigger,
                outcome="skipped" if lost else "failed",
                error=error_text(exc),
            )
            return self._result(target, inv, state, "busy" if lost else "failed", error=error_text(exc))
        except Exception as unexpected:
            logger.error("rotation.unexpected_error writing state", exc_info=True)
            failure = error_text(UnexpectedError.wrapping(unexpected))
            log_transition(
                target=target.resource_id,
                cycle=state.cycle_id if state else None,
                step=decision.action.value,
                slot=None,
                trigger=trigger,
                outcome="failed",
                error=failure,
            )
            return self._result(target, inv, state, "failed", error=failure)
        if decision.action is Action.BUSY:
            return self._result(target, inv, state, "busy", next_due=decision.not_before)
        if inv.steps:
            outcome = "advanced"
        elif inv.deferred:
            outcome = "deferred"  # due, but the ARM write budget is spent: a later sweep takes it
        else:
            outcome = "waiting" if state and state.phase.in_cycle else "idle"
        next_due = decide(state, target, self.clock(), self.policy, inv.owner).not_before if state else None
        return self._result(target, inv, state, outcome, next_due=next_due)

    def _result(
        self,
        target: Target,
        inv: _Invocation,
        state: TargetState | None,
        outcome: str,
        next_due: datetime | None = None,
        error: str | None = None,
    ) -> TargetResult:
        return TargetResult(
            target.resource_id,
            outcome,
            tuple(inv.steps),
            state.phase.value if state else None,
            next_due,
            error,
        )

    # ------------------------------------------------------------ persistence

    def _create_adoption_intent(self, target: Target, now: datetime, owner: str) -> tuple[TargetState, str]:
        intent = TargetState(
            target_id=target.resource_id,
            phase=Phase.ADOPTING,
            lease_owner=owner,
            lease_expires_at=now + self.policy.lease_duration,
        )
        try:
            created = self.ports.states.create(target.key, intent)
        except StateConflict as exc:
            raise LeaseLost(f"{target.resource_id}: another invocation is adopting it") from exc
        return created.state, created.etag

    def _write(self, target: Target, state: TargetState, etag: str) -> tuple[TargetState, str]:
        try:
            written = self.ports.states.replace(target.key, state, etag)
        except StateConflict as exc:
            raise LeaseLost(f"{target.resource_id}: state changed by another invocation") from exc
        return written.state, written.etag

    def _holds_lease(self, state: TargetState, owner: str, now: datetime) -> bool:
        # Renew when less than half the lease is left, so no side effect runs near its expiry.
        return (
            state.lease_owner == owner
            and state.lease_expires_at is not None
            and state.lease_expires_at - now > self.policy.lease_duration / 2
        )

    def _with_lease(self, state: TargetState, owner: str, now: datetime) -> TargetState:
        return state.with_changes(lease_owner=owner, lease_expires_at=now + self.policy.lease_duration)

    def _intent(
        self,
        action: Action,
        state: TargetState,
        target: Target,
        now: datetime,
        inv: _Invocation,
        request: CycleRequest | None,
    ) -> TargetState:
        leased = self._with_lease(state, inv.owner, now)
        if action is Action.START_CYCLE:
            emergency = bool(request and request.emergency)
            drain = self.policy.emergency_drain_time if emergency else target.drain_time
            cycle_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
            started = leased.with_changes(
                phase=Phase.REGENERATING,
                active_slot=state.active_slot or Slot.KEY1,
                cycle_id=cycle_id,
                cycle_started_at=now,
                cycle_trigger=request.trigger if request else inv.trigger,
                cycle_requester=request.requester if request else "",
                cycle_reason=(request.reason if request else "rotation due"),
                emergency=emergency,
                cycle_drain_seconds=drain.total_seconds(),
                verify_deadline=None,
                next_attempt_at=None,
                drain_until=None,
            )
            return started
        return leased.with_changes(phase=Phase.RETIRING, next_attempt_at=None)

    def _announce_cycle(self, target: Target, started: TargetState, inv: _Invocation) -> None:
        """History, log and CycleStarted event — only once the intent has won its compare-and-swap, so
        an invocation that lost the race leaves no trace of a cycle that never existed (I4)."""
        self._history(target, started, "cycle", "started", inv.trigger, slot=started.new_slot)
        log_transition(
            target=target.resource_id,
            cycle=started.cycle_id,
            step="cycle",
            slot=_v(started.new_slot),
            trigger=inv.trigger,
            outcome="started",
        )
        self._publish(target, started, "KeyRotation.CycleStarted", started.new_slot)

    # ---------------------------------------------------------------- steps

    def _run(self, action: Action, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        steps: dict[Action, Callable[[_Invocation, TargetState, datetime], _StepResult]] = {
            Action.ADOPT: self._adopt,
            Action.REGENERATE_NEW: self._regenerate_new,
            Action.VERIFY_AND_SWAP: self._verify_and_swap,
            Action.RETIRE_OLD: self._retire_old,
            Action.CHECK_DRIFT: self._check_drift,
            Action.RECHECK_KEYLESS: self._recheck_keyless,
        }
        inv.steps.append(action.value)
        return steps[action](inv, state, now)

    def _adopt(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        target = inv.target
        account = self._account(inv, fresh=True)
        if account.disable_local_auth:
            return self._keyless(state, now, account)
        try:
            keys = self.ports.keys.list_keys(target.resource_id)
        except KeylessAccount:
            return self._keyless(state, now, account)
        pointer = self._pointer(inv, fresh=True)
        active = pointer or state.active_slot or Slot.KEY1
        for slot in Slot:
            self._store_slot_if_changed(target, slot, keys.of(slot), "adopted")
        protection = self._sync_active(inv, state, active, keys.of(active), "adopted", now)
        if pointer is None:
            self._set_pointer(inv, active, "adopted")
        adopted = state.with_changes(
            phase=Phase.IDLE,
            active_slot=active,
            due_at=now + target.rotation_period,
            drift_checked_at=now,
            endpoint=account.endpoint,
            kind=account.kind,
            location=account.location,
            custom_subdomain=account.custom_subdomain,
            attempts=0,
            last_error=None,
            next_attempt_at=None,
            cycle_id=None,
            **self._observed_versions(inv),
            **protection,
        )
        return _StepResult(adopted, "succeeded", active, note="adopted")

    def _regenerate_new(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        target = inv.target
        assert state.active_slot is not None and state.cycle_id is not None
        new = state.active_slot.other
        verifying = state.with_changes(
            phase=Phase.VERIFYING, verify_deadline=now + self.policy.verify_timeout, next_attempt_at=None
        )
        existing = None if inv.wrote_intent else self.ports.secrets.get_secret(target.slot_secret(new))
        if existing is not None and existing.tags.get("generation") == state.cycle_id:
            inv.values[new] = existing.value
            return _StepResult(
                verifying, "skipped", new, history=False, note="already regenerated and stored"
            )
        self._guard_regenerate(inv, state, new, now)
        keys = self._regenerate_and_list(inv, new)
        self._set_slot(target, new, keys.of(new), state.cycle_id)
        inv.values[new] = keys.of(new)
        return _StepResult(verifying.with_changes(**self._observed_versions(inv)), "succeeded", new)

    def _verify_and_swap(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        target = inv.target
        assert state.active_slot is not None and state.cycle_id is not None
        new = state.active_slot.other
        value = self._slot_value(inv, new)
        if self._swap_begun(inv, new, state.cycle_id):
            # P-active already holds the new key for this cycle: consumers may be using it, so the swap
            # can only roll forward (finish the pointer), never be abandoned by a verification timeout.
            pass
        elif target.verify.value == "dataplane":
            result = self.ports.probe.probe(self._data_plane(inv, state), value, target.probe)
            if result is ProbeResult.NETWORK_DENIED:
                raise DataPlaneUnreachable(f"{target.account_name}: {NETWORK_DENIED_ADVICE}")
            if result is ProbeResult.LOCAL_AUTH_DISABLED:
                raise KeylessAccount(f"{target.account_name}: data plane: AuthenticationTypeDisabled")
            if result is not ProbeResult.ACCEPTED:
                if state.verify_deadline is not None and now >= state.verify_deadline:
                    raise KeyVerificationFailed(
                        f"{target.account_name}: new {new.value} still {result.value} by the data plane "
                        f"after VERIFY_TIMEOUT; pointer left on {state.active_slot.value}"
                    )
                waiting = state.with_changes(next_attempt_at=now + self.policy.verify_retry_interval)
                return _StepResult(waiting, "waiting", new, history=False, note=f"probe {result.value}")
        # P-active first, then the pointer (docs/ENGINE.md "Order of writes"): the P-active write, tagged
        # with the cycle id, is the swap's commit point — after it the cycle only rolls forward.
        if not self._swap_begun(inv, new, state.cycle_id):
            self._set_active(inv, new, value, state.cycle_id, now)
        if self._pointer(inv) is not new:
            self._set_pointer(inv, new, state.cycle_id)
        drain_seconds = (
            state.cycle_drain_seconds
            if state.cycle_drain_seconds is not None
            else target.drain_time.total_seconds()
        )
        # The drain counts from after the pointer write (not from the step's start, which precedes the
        # probe and both writes), so the old slot is never retired earlier than drainTime after the swap.
        # On a re-run after a crash the pointer moved earlier than this: later is the safe side.
        swapped_at = self.clock()
        draining = state.with_changes(
            phase=Phase.DRAINING,
            active_slot=new,
            swapped_at=swapped_at,
            drain_seconds=drain_seconds,
            drain_until=swapped_at + _seconds(drain_seconds),
            verify_deadline=None,
            next_attempt_at=None,
            attempts=0,
            **self._observed_versions(inv),
        )
        self._publish(target, draining, "KeyRotation.KeySwapped", new)
        return _StepResult(draining, "succeeded", new, note="verified and swapped")

    def _retire_old(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        target = inv.target
        assert state.active_slot is not None and state.cycle_id is not None
        active, old = state.active_slot, state.active_slot.other
        existing = None if inv.wrote_intent else self.ports.secrets.get_secret(target.slot_secret(old))
        if existing is not None and existing.tags.get("generation") == state.cycle_id:
            keys = self.ports.keys.list_keys(target.resource_id)
            if keys.of(old) != existing.value:
                self._set_slot(target, old, keys.of(old), state.cycle_id)
        else:
            self._guard_regenerate(inv, state, old, now)
            keys = self._regenerate_and_list(inv, old)
            self._set_slot(target, old, keys.of(old), state.cycle_id)
        # I3: at the end of a cycle both slot secrets equal listKeys.
        stored_active = self.ports.secrets.get_secret(target.slot_secret(active))
        if stored_active is None or stored_active.value != keys.of(active):
            self._repair_active(inv, state, active, keys.of(active), now, "during the drain")
        done = state.with_changes(
            phase=Phase.IDLE,
            cycle_id=None,
            last_rotated_at=now,
            due_at=now + target.rotation_period,
            drift_checked_at=now,
            drain_until=None,
            next_attempt_at=None,
            attempts=0,
            last_error=None,
            cycles_completed=state.cycles_completed + 1,
            emergency=False,
            **self._observed_versions(inv),
        )
        self._publish(target, state, "KeyRotation.CycleCompleted", old)
        return _StepResult(done, "succeeded", old, note="cycle completed")

    def _check_drift(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        """Reconcile Key Vault with ``listKeys`` and the state. The pointer is the reference: P-active is
        made to agree with it (I1 at rest), and any slot that a consumer-readable secret named or held
        outside one of our swaps is protected for a drain time (I2), so no later cycle is refused."""
        target = inv.target
        keys = self.ports.keys.list_keys(target.resource_id)
        active = state.active_slot or Slot.KEY1
        changes: dict[str, object] = {"drift_checked_at": now}
        repaired: list[str] = []
        protect_until: datetime | None = None
        pointer = self._pointer(inv, fresh=True)
        if pointer is None:
            self._set_pointer(inv, active, "drift")
            repaired.append("pointer missing: restored")
        elif pointer is not active:
            # Someone moved the pointer: consumers may now use that slot, and may still use the other one
            # for a drain time (I2) — so record it as a swap that just happened.
            repaired.append(f"pointer moved to {pointer.value} outside the service: adopted")
            active = pointer
            changes.update(
                active_slot=pointer, swapped_at=now, drain_seconds=target.drain_time.total_seconds()
            )
        named_until = self._named_outside_service(inv, state, active.other)
        if named_until is not None:
            repaired.append(
                f"{active.other.value} was named outside the service until {named_until.isoformat()}"
            )
            protect_until = named_until + target.drain_time
        for slot in Slot:
            stored = self.ports.secrets.get_secret(target.slot_secret(slot))
            if stored is None or stored.value != keys.of(slot):
                self._set_slot(target, slot, keys.of(slot), f"drift-{now.strftime('%Y%m%dT%H%M%SZ')}")
                repaired.append(f"{slot.value} differed from listKeys: stored the service's value")
                if slot is active:
                    self._loud_active_drift(inv, state, slot)
        self._active(inv, fresh=True)
        protection = self._sync_active(inv, state, active, keys.of(active), state.cycle_id or "drift", now)
        if protection:
            repaired.append(f"P-active did not hold {active.value}, which the pointer names: restored")
        elif inv.active_rewritten:
            repaired.append("active value differed: restored")
        if protect_until is not None:
            current = protection.get("inactive_protected_until") or state.inactive_protected_until
            protection["inactive_protected_until"] = max(protect_until, current) if current else protect_until
        checked = state.with_changes(**changes, **protection, **self._observed_versions(inv))
        if repaired:
            return _StepResult(checked, "succeeded", active, note="; ".join(repaired))
        return _StepResult(checked, "succeeded", None, history=False, note="no drift")

    def _recheck_keyless(self, inv: _Invocation, state: TargetState, now: datetime) -> _StepResult:
        account = self._account(inv, fresh=True)
        if account.disable_local_auth:
            return _StepResult(
                state.with_changes(next_attempt_at=now + self.policy.keyless_recheck_interval),
                "waiting",
                None,
                history=False,
                note="still keyless",
            )
        # Local auth is back: adopt again (keeps the pointer, stores both keys).
        return _StepResult(
            state.with_changes(phase=Phase.ADOPTING, next_attempt_at=None),
            "succeeded",
            None,
            note="local authentication re-enabled",
        )

    # ------------------------------------------------------------- helpers

    def _keyless(self, state: TargetState, now: datetime, account: AccountInfo) -> _StepResult:
        keyless = state.with_changes(
            phase=Phase.KEYLESS,
            cycle_id=None,
            next_attempt_at=now + self.policy.keyless_recheck_interval,
            endpoint=account.endpoint,
            kind=account.kind,
            location=account.location,
            custom_subdomain=account.custom_subdomain,
            attempts=0,
            last_error=None,
        )
        return _StepResult(keyless, "skipped", None, note="local authentication disabled (disableLocalAuth)")

    def _guard_regenerate(self, inv: _Invocation, state: TargetState, slot: Slot, now: datetime) -> None:
        """I2, checked against Key Vault and the state right before every regenerate: neither secret a
        consumer may read (the pointer, P-active) names or holds ``slot`` now, and neither did less than a
        drain time ago — our own swaps (``swapped_at``), our repairs (``inactive_protected_until``) and
        anybody else's writes (versions we did not record) alike."""

        def refuse(why: str) -> UnsafeToProceed:
            return UnsafeToProceed(f"{inv.target.account_name}: refusing to regenerate {slot.value}: {why}")

        pointer = self._pointer(inv, fresh=True)
        if pointer is None or pointer is slot or pointer is not state.active_slot:
            raise refuse(
                f"the pointer names {_v(pointer) or 'nothing'}, the state expects {_v(state.active_slot)}"
            )
        active = self._active(inv, fresh=True)
        held = Slot.parse(active.tags.get("slot")) if active else None
        if held is not state.active_slot:
            raise refuse(f"P-active holds {_v(held) or 'an unknown slot'}, the pointer names {pointer.value}")
        # ``slot`` is the inactive one: it was named by the pointer until ``swapped_at``.
        if state.swapped_at is not None and now < state.swapped_at + _seconds(state.drain_seconds or 0):
            raise refuse(
                f"the pointer named it until {state.swapped_at.isoformat()}, less than the drain time ago"
            )
        if state.inactive_protected_until is not None and now < state.inactive_protected_until:
            raise refuse(f"a consumer may use it until {state.inactive_protected_until.isoformat()}")
        named_until = self._named_outside_service(inv, state, slot)
        if named_until is not None and now < named_until + inv.target.drain_time:
            raise refuse(f"it was named outside the service until {named_until.isoformat()}")

    def _named_outside_service(self, inv: _Invocation, state: TargetState, slot: Slot) -> datetime | None:
        """Until when a version of the pointer or P-active that the service did not record (a hand edit,
        another tool) may have named or held ``slot``; None when there is none. Costs a version listing
        only when a secret's current version differs from the one the state recorded."""
        latest: datetime | None = None
        for secret, recorded in (
            (inv.pointer_secret, state.pointer_version),
            (inv.active, state.active_version),
        ):
            if secret is None or recorded is None or secret.version == recorded:
                continue  # nothing recorded yet (adoption, older state) or nobody wrote it since we did
            versions = self.ports.secrets.list_versions(secret.name)
            until = _named_until(versions, recorded, slot)
            if until is not None and (latest is None or until > latest):
                latest = until
        return latest

    def _regenerate_and_list(self, inv: _Invocation, slot: Slot) -> AccountKeys:
        if not inv.write_token and not self.ports.limiter.try_acquire(
            inv.target.subscription_id, WRITES_PER_REGENERATE
        ):
            raise TransientAzureError(
                f"{inv.target.account_name}: ARM write budget exhausted; retrying later"
            )
        inv.write_token = False
        self.ports.keys.regenerate_key(inv.target.resource_id, slot)
        # The regenerate may have run twice (azure-core retries POST): the service's current value wins.
        return self.ports.keys.list_keys(inv.target.resource_id)

    def _data_plane(self, inv: _Invocation, state: TargetState) -> DataPlane:
        """Kept in the state at adoption; a state written before location/custom_subdomain were kept
        reads the account instead (one ARM GET per verification)."""
        if state.endpoint and state.kind and state.location and state.custom_subdomain is not None:
            return DataPlane(state.endpoint, state.kind, state.location, state.custom_subdomain)
        account = self._account(inv)
        if not account.endpoint:
            raise KeyVerificationFailed(f"{inv.target.account_name}: the account has no data-plane endpoint")
        return DataPlane(account.endpoint, account.kind, account.location, account.custom_subdomain)

    def _account(self, inv: _Invocation, fresh: bool = False) -> AccountInfo:
        if inv.account is None or fresh:
            inv.account = self.ports.keys.get_account(inv.target.resource_id)
        return inv.account

    def _pointer(self, inv: _Invocation, fresh: bool = False) -> Slot | None:
        if fresh or not inv.pointer_known:
            secret = self.ports.secrets.get_secret(inv.target.pointer_secret)
            inv.pointer_secret = secret
            inv.pointer = Slot.parse(secret.value.reveal()) if secret else None
            inv.pointer_known = True
        return inv.pointer

    def _set_pointer(self, inv: _Invocation, slot: Slot, cycle: str) -> None:
        # The slot tag lets a later version listing tell what each pointer version named (I2 history).
        tags = _managed_tags(inv.target, slot, cycle)
        name = inv.target.pointer_secret
        version = self._store(name, SecretValue(slot.value), tags)
        inv.pointer_secret = StoredSecret(name, SecretValue(slot.value), version, tags)
        inv.pointer, inv.pointer_known = slot, True

    def _active(self, inv: _Invocation, fresh: bool = False) -> StoredSecret | None:
        if fresh or not inv.active_known:
            inv.active = self.ports.secrets.get_secret(inv.target.active_secret)
            inv.active_known = True
        return inv.active

    def _swap_begun(self, inv: _Invocation, new: Slot, cycle: str) -> bool:
        """Whether this cycle's swap has written P-active (its commit point)."""
        active = self._active(inv)
        return (
            active is not None and active.tags.get("slot") == new.value and active.tags.get("cycle") == cycle
        )

    def _observed_versions(self, inv: _Invocation) -> dict[str, str]:
        """The versions of the pointer and P-active this invocation read or wrote, to record in the state."""
        observed: dict[str, str] = {}
        if inv.pointer_known and inv.pointer_secret is not None:
            observed["pointer_version"] = inv.pointer_secret.version
        if inv.active_known and inv.active is not None:
            observed["active_version"] = inv.active.version
        return observed

    def _slot_value(self, inv: _Invocation, slot: Slot) -> SecretValue:
        if slot not in inv.values:
            stored = self.ports.secrets.get_secret(inv.target.slot_secret(slot))
            if stored is None:
                raise UnsafeToProceed(
                    f"{inv.target.account_name}: secret {inv.target.slot_secret(slot)} is missing"
                )
            inv.values[slot] = stored.value
        return inv.values[slot]

    def _store(
        self, name: str, value: SecretValue, tags: dict[str, str], expires_on: datetime | None = None
    ) -> str:
        """Write a managed secret. One that was deleted by hand (soft delete holds its name) is recovered
        — its versions come back, so nothing about what consumers read is lost — and the step retried."""
        try:
            return self.ports.secrets.set_secret(name, value, tags, expires_on=expires_on)
        except SecretDeleted:
            self.ports.secrets.recover_secret(name)
            raise TransientAzureError(
                f"secret {name} had been deleted; its recovery has started, the step is retried", 15
            ) from None

    def _slot_tags(self, target: Target, slot: Slot, generation: str) -> dict[str, str]:
        return {
            "managed-by": MANAGED_BY,
            "target": target.resource_id,
            "slot": slot.value,
            "generation": generation,
        }

    def _set_slot(self, target: Target, slot: Slot, value: SecretValue, generation: str) -> None:
        self._store(target.slot_secret(slot), value, self._slot_tags(target, slot, generation))

    def _store_slot_if_changed(self, target: Target, slot: Slot, value: SecretValue, generation: str) -> bool:
        stored = self.ports.secrets.get_secret(target.slot_secret(slot))
        if stored is not None and stored.value == value:
            return False
        self._set_slot(target, slot, value, generation)
        return True

    def _set_active(
        self, inv: _Invocation, slot: Slot, value: SecretValue, cycle: str, now: datetime
    ) -> None:
        target = inv.target
        tags = _managed_tags(target, slot, cycle)
        expires = now + target.rotation_period + self.policy.expiry_margin
        version = self._store(target.active_secret, value, tags, expires)
        inv.active, inv.active_known = StoredSecret(target.active_secret, value, version, tags, expires), True
        inv.active_rewritten = True

    def _sync_active(
        self, inv: _Invocation, state: TargetState, slot: Slot, value: SecretValue, cycle: str, now: datetime
    ) -> dict[str, datetime]:
        """Make P-active hold ``slot``'s value. When it held anything else, consumers may have read that
        key, so the other slot is protected for a drain time (returned as the state change to make)."""
        stored = self._active(inv)
        if stored is not None and stored.value == value and stored.tags.get("slot") == slot.value:
            return {}
        self._set_active(inv, slot, value, cycle, now)
        if stored is None or stored.tags.get("slot") == slot.value:
            return {}  # nothing was there, or only a stale copy of the same slot
        until = now + inv.target.drain_time
        current = state.inactive_protected_until
        return {"inactive_protected_until": max(until, current) if current else until}

    def _repair_active(
        self, inv: _Invocation, state: TargetState, slot: Slot, value: SecretValue, now: datetime, when: str
    ) -> None:
        self._set_slot(inv.target, slot, value, f"drift-{now.strftime('%Y%m%dT%H%M%SZ')}")
        self._set_active(inv, slot, value, state.cycle_id or "drift", now)
        self._loud_active_drift(inv, state, slot, when)

    def _loud_active_drift(self, inv: _Invocation, state: TargetState, slot: Slot, when: str = "") -> None:
        message = (
            f"active slot {slot.value} of {inv.target.account_name} was regenerated outside the service "
            f"{when}; its stored value was dead; Key Vault now holds the service's value"
        )
        logger.error("rotation.drift %s", message)
        self._history(inv.target, state, "drift", "repaired", inv.trigger, slot=slot, error=message)
        log_transition(
            target=inv.target.resource_id,
            cycle=state.cycle_id,
            step="drift",
            slot=slot.value,
            trigger=inv.trigger,
            outcome="failed",
            error=f"ActiveKeyDrift: {message}",
            level=logging.ERROR,
        )

    def _failure_state(
        self,
        target: Target,
        state: TargetState,
        action: Action,
        exc: RotationError,
        now: datetime,
        inv: _Invocation,
        started: float,
    ) -> TargetState:
        attempts = state.attempts + 1
        delay = self.policy.backoff(attempts)
        if isinstance(exc, TransientAzureError) and exc.retry_after_seconds:
            delay = max(delay, _seconds(exc.retry_after_seconds))
        failed = state.with_changes(
            attempts=attempts, last_error=error_text(exc), last_error_at=now, next_attempt_at=now + delay
        )
        slot = state.new_slot if state.phase in (Phase.REGENERATING, Phase.VERIFYING) else state.active_slot
        if isinstance(exc, KeylessAccount):
            failed = state.with_changes(
                phase=Phase.KEYLESS,
                cycle_id=None,
                attempts=0,
                next_attempt_at=now + self.policy.keyless_recheck_interval,
                last_error=None,
            )
        elif state.phase.in_cycle and isinstance(exc, KeyVerificationFailed | UnsafeToProceed):
            # Abandon the cycle without touching the pointer; a new one starts after the backoff. After
            # UnsafeToProceed a drift check first reconciles the state with Key Vault's pointer.
            failed = failed.with_changes(
                phase=Phase.IDLE,
                cycle_id=None,
                verify_deadline=None,
                drain_until=None,
                drift_checked_at=None if isinstance(exc, UnsafeToProceed) else state.drift_checked_at,
            )
            self._publish(target, state, "KeyRotation.CycleFailed", slot, reason=error_text(exc))
        duration = int((time.monotonic() - started) * 1000)
        level = logging.ERROR if isinstance(exc, UnsafeToProceed | AzureAccessDenied) else logging.WARNING
        log_transition(
            target=target.resource_id,
            cycle=state.cycle_id,
            step=action.value,
            slot=_v(slot),
            trigger=inv.trigger,
            outcome="failed",
            duration_ms=duration,
            error=error_text(exc),
            level=level,
        )
        self._history(
            target,
            state,
            action.value,
            "failed",
            inv.trigger,
            slot=slot,
            error=error_text(exc),
            duration_ms=duration,
        )
        return failed

    def _record(
        self, inv: _Invocation, before: TargetState, action: Action, result: _StepResult, started: float
    ) -> None:
        duration = int((time.monotonic() - started) * 1000)
        cycle = before.cycle_id or result.state.cycle_id
        log_transition(
            target=inv.target.resource_id,
            cycle=cycle,
            step=action.value,
            slot=_v(result.slot),
            trigger=inv.trigger,
            outcome=result.outcome,
            duration_ms=duration,
            error=None,
        )
        if result.history:
            self._history(
                inv.target,
                before,
                action.value,
                result.outcome,
                inv.trigger,
                slot=result.slot,
                duration_ms=duration,
                note=result.note,
                requester=inv.requester,
            )

    def _history(
        self,
        target: Target,
        state: TargetState,
        step: str,
        outcome: str,
        trigger: str,
        slot: Slot | None = None,
        error: str | None = None,
        duration_ms: int = 0,
        note: str = "",
        requester: str = "",
    ) -> None:
        record = HistoryRecord(
            target=target.resource_id,
            at=self.clock(),
            step=step,
            outcome=outcome,
            trigger=trigger,
            # the cycle's requester; outside a cycle (adoption on an admin request), the invocation's
            requester=state.cycle_requester or requester,
            reason=note or state.cycle_reason or "",
            cycle=state.cycle_id,
            slot=_v(slot),
            error=error,
            duration_ms=duration_ms,
            emergency=state.emergency,
        )
        try:
            self.ports.history.append(target.key, record)
        except RotationError as exc:
            # History is an audit trail, not a precondition: a lost row must not undo a done side effect.
            logger.warning("rotation.history_write_failed %s", error_text(exc))

    def _publish(
        self,
        target: Target,
        state: TargetState,
        event_type: str,
        slot: Slot | None,
        reason: str | None = None,
    ) -> None:
        self.ports.lifecycle.publish(
            [
                LifecycleEvent(
                    event_type=event_type,
                    target=target.resource_id,
                    account_name=target.account_name,
                    cycle_id=state.cycle_id,
                    slot=_v(slot),
                    active_slot=_v(state.active_slot),
                    reason=reason or state.cycle_reason,
                )
            ]
        )


def _named_until(versions: list[SecretVersion], recorded: str, slot: Slot) -> datetime | None:
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


def _managed_tags(target: Target, slot: Slot, cycle: str) -> dict[str, str]:
    """Tags of the pointer and P-active: the slot each version names or holds, and the cycle that wrote it."""
    return {"managed-by": MANAGED_BY, "target": target.resource_id, "slot": slot.value, "cycle": cycle}


def _without_lease(state: TargetState) -> TargetState:
    return state.with_changes(lease_owner=None, lease_expires_at=None)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _v(slot: Slot | None) -> str | None:
    return slot.value if slot else None
