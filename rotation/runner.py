"""The step runner: advances one target through as many steps as are ready now.

It owns the loop, the leases and compare-and-swap writes, and the failure bookkeeping; the steps
themselves are in ``rotation/steps/``. Intent is recorded in the state entity (with a lease) before any
side effect, and waiting is stored state (``drain_until``, ``next_attempt_at``) — nothing here sleeps (I6).

State writes per cycle (the minimum): intent REGENERATING (+lease), DRAINING (lease released), intent
RETIRING (+lease), IDLE (lease released). Steps in between are not persisted one by one: every step can be
recomputed from Key Vault (generation tags, the P-active and pointer tags), which is what makes that safe.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from rotation import history_carry
from rotation.audit import (
    announce_cycle,
    append_history,
    error_text,
    log_transition,
    logger,
    publish,
    slot_name,
)
from rotation.decision import (
    INTENT_ACTIONS,
    Action,
    Decision,
    decide,
)
from rotation.errors import (
    AzureAccessDenied,
    KeylessAccount,
    KeyVerificationFailed,
    LeaseLost,
    RotationError,
    StateConflict,
    TransientAzureError,
    UnexpectedError,
    UnsafeToProceed,
)
from rotation.model import CycleRequest, Phase, Policy, Slot, Target, TargetState, VersionedState
from rotation.outcomes import LifecycleEventType, StepOutcome, TargetOutcome
from rotation.ports import Clock, Ports, utc_now
from rotation.steps import STEPS
from rotation.steps.context import StepContext, StepResult
from rotation.views import TargetResult
from rotation.write_budgets import WritesDeferred, mark_spent, return_unspent, take_budget

MAX_STEPS_PER_INVOCATION = 12


class StepRunner:
    def __init__(self, ports: Ports, policy: Policy, clock: Clock = utc_now) -> None:
        self.ports = ports
        self.policy = policy
        self.clock = clock

    def advance(
        self,
        target: Target,
        trigger: str,
        loaded: VersionedState | None = None,
        request: CycleRequest | None = None,
        owner: str | None = None,
        preloaded: bool = False,
    ) -> TargetResult:
        """Run every step that is ready now; return what was done (and the id of a cycle it started).
        Never raises ``RotationError``.

        ``loaded`` is the state the caller already read (``preloaded=True`` also trusts a ``None``: the
        sweep's query found no state, so the target is not adopted and is not read again)."""
        ctx = StepContext(
            ports=self.ports,
            policy=self.policy,
            clock=self.clock,
            target=target,
            trigger=trigger,
            owner=owner or uuid.uuid4().hex,
            requester=request.requester if request else "",
            pending_history=[],
        )
        try:
            return self._advance(ctx, loaded, request, preloaded)
        finally:
            return_unspent(ctx)  # tokens taken for writes this invocation will not make go back
            history_carry.flush_unsaved(ctx)  # rows no state write carried (it failed): written now

    def _advance(
        self,
        ctx: StepContext,
        loaded: VersionedState | None,
        request: CycleRequest | None,
        preloaded: bool,
    ) -> TargetResult:
        target = ctx.target
        try:
            current = loaded if loaded is not None or preloaded else self.ports.states.get(target.state_key)
        except RotationError as exc:
            return TargetResult(target.resource_id, TargetOutcome.FAILED, error=error_text(exc))
        state = current.state if current else None
        etag = current.etag if current else None
        history_carry.loaded(ctx, state)
        dirty = False
        decision = Decision(Action.WAIT, "not evaluated")
        try:
            for _ in range(MAX_STEPS_PER_INVOCATION):
                now = self.clock()
                decision = decide(state, target, now, self.policy, ctx.owner, request)
                if not decision.actionable:
                    break
                # Budget first, before any intent is written: a deferred target stays exactly as it was.
                exhausted = take_budget(ctx, decision.action)
                if exhausted:
                    decision, ctx.deferred = Decision(Action.WAIT, exhausted, now), True
                    # Deferred work is rescheduled for when the budget has the tokens (a queue message
                    # with a visibility delay), not left for the next timer tick — and never slept on.
                    self.ports.scheduler.schedule(target.resource_id, ctx.retry_in)
                    break
                if state is None:
                    state, etag = self._create_adoption_intent(target, now, ctx.owner)
                    continue
                assert etag is not None
                if decision.action in INTENT_ACTIONS:
                    intent = self._intent(decision.action, state, now, ctx, request)
                    state, etag = self._write(ctx, intent, etag)
                    dirty = False
                    ctx.steps.append(decision.action.value)
                    ctx.wrote_intent = True
                    if decision.action is Action.START_CYCLE:
                        announce_cycle(ctx, state)
                        ctx.started_cycle = state.cycle_id
                        request = None  # one request starts at most one cycle
                    continue
                if not self._holds_lease(state, ctx.owner, now):
                    state, etag = self._write(ctx, self._with_lease(state, ctx.owner, now), etag)
                    dirty = False
                started = time.monotonic()
                try:
                    result = self._run(decision.action, ctx, state, now)
                except WritesDeferred as deferred:  # the step wrote nothing: as a deferral before it
                    mark_spent(ctx, decision.action, wrote=False)  # its ARM calls were made
                    ctx.steps.pop()
                    decision, ctx.deferred = Decision(Action.WAIT, str(deferred), now), True
                    self.ports.scheduler.schedule(target.resource_id, ctx.retry_in)
                    break
                except RotationError as exc:
                    mark_spent(ctx, decision.action)
                    failed = self._failure_state(state, decision.action, exc, now, ctx, started)
                    state, etag = self._write(ctx, _without_lease(failed), etag, last=True)
                    if isinstance(exc, TransientAzureError) and state.next_attempt_at is not None:
                        # retried when its backoff ends, not at the next timer tick (fan-out)
                        backoff = (state.next_attempt_at - now).total_seconds()
                        self.ports.scheduler.schedule(target.resource_id, backoff)
                    return self._result(ctx, state, TargetOutcome.FAILED, error=error_text(exc))
                mark_spent(ctx, decision.action, wrote=result.outcome is not StepOutcome.WAITING)
                self._record(ctx, state, decision.action, result, started)
                state = result.state
                dirty = True
                if result.outcome is StepOutcome.WAITING:
                    break
            if state is not None and etag is not None and (dirty or state.lease_owner == ctx.owner):
                state, etag = self._write(ctx, _without_lease(state), etag, last=True)
        except RotationError as exc:
            # LeaseLost: another invocation changed the state first, so it owns the target now. Anything
            # else here is a failed state write (storage unreachable): our lease, if any, simply expires.
            lost = isinstance(exc, LeaseLost)
            self._log_write_failure(ctx, state, decision, error_text(exc), lost)
            if isinstance(exc, TransientAzureError):
                # Storage hiccup: try again once our lease (if we held one) has expired, or after the
                # first backoff — not at the next timer tick.
                held = state is not None and state.lease_owner == ctx.owner
                wait = self.policy.lease_duration if held else self.policy.backoff(1)
                self.ports.scheduler.schedule(target.resource_id, wait.total_seconds())
            return self._result(
                ctx, state, TargetOutcome.BUSY if lost else TargetOutcome.FAILED, error=error_text(exc)
            )
        except Exception as unexpected:  # a state write failed unexpectedly: the lease expires by itself
            logger.error("rotation.unexpected_error writing state", exc_info=True)
            failure = error_text(UnexpectedError.wrapping(unexpected))
            self._log_write_failure(ctx, state, decision, failure, lost=False)
            return self._result(ctx, state, TargetOutcome.FAILED, error=failure)
        if decision.action is Action.BUSY:
            return self._result(ctx, state, TargetOutcome.BUSY, next_due=decision.not_before)
        if ctx.steps:
            outcome = TargetOutcome.ADVANCED
        elif ctx.deferred:
            outcome = TargetOutcome.DEFERRED
        else:
            outcome = TargetOutcome.WAITING if state and state.phase.in_cycle else TargetOutcome.IDLE
        next_due = decide(state, target, self.clock(), self.policy, ctx.owner).not_before if state else None
        return self._result(ctx, state, outcome, next_due=next_due)

    def _result(
        self,
        ctx: StepContext,
        state: TargetState | None,
        outcome: TargetOutcome,
        next_due: datetime | None = None,
        error: str | None = None,
    ) -> TargetResult:
        return TargetResult(
            ctx.target.resource_id,
            outcome,
            tuple(ctx.steps),
            state.phase.value if state else None,
            next_due,
            error,
            started_cycle=ctx.started_cycle,
        )

    def _run(self, action: Action, ctx: StepContext, state: TargetState, now: datetime) -> StepResult:
        ctx.steps.append(action.value)
        try:
            return STEPS[action](ctx, state, now)
        except (RotationError, WritesDeferred):
            raise
        except Exception as unexpected:  # recorded as the target's error; its lease is released at once
            logger.error("rotation.unexpected_error in %s", action.value, exc_info=True)
            raise UnexpectedError.wrapping(unexpected) from None

    # ------------------------------------------------------------ persistence

    def _create_adoption_intent(self, target: Target, now: datetime, owner: str) -> tuple[TargetState, str]:
        intent = TargetState(
            target_id=target.resource_id,
            phase=Phase.ADOPTING,
            lease_owner=owner,
            lease_expires_at=now + self.policy.lease_duration,
        )
        try:
            created = self.ports.states.create(target.state_key, intent)
        except StateConflict as exc:
            raise LeaseLost(f"{target.resource_id}: another invocation is adopting it") from exc
        return created.state, created.etag

    def _write(
        self, ctx: StepContext, state: TargetState, etag: str, last: bool = False
    ) -> tuple[TargetState, str]:
        """Compare-and-swap ``state`` carrying the history rows not yet in the history table (an invocation's
        ``last`` write first writes them there if the cycle ended: rotation/history_carry.py)."""
        state, carried = (history_carry.settle if last else history_carry.carry)(ctx, state)
        try:
            written = self.ports.states.replace(ctx.target.state_key, state, etag)
        except BaseException as exc:
            ctx.state_write_failed = True  # whether it was stored is unknown
            if isinstance(exc, StateConflict):
                raise LeaseLost(f"{ctx.target.resource_id}: state changed by another invocation") from exc
            raise
        ctx.history_saved, ctx.state_write_failed = carried, False
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
        now: datetime,
        ctx: StepContext,
        request: CycleRequest | None,
    ) -> TargetState:
        leased = self._with_lease(state, ctx.owner, now)
        if action is Action.BEGIN_RETIRE:
            return leased.with_changes(phase=Phase.RETIRING, next_attempt_at=None)
        emergency = bool(request and request.emergency)
        drain = self.policy.emergency_drain_time if emergency else ctx.target.drain_time
        return leased.with_changes(
            phase=Phase.REGENERATING,
            active_slot=state.active_slot or Slot.KEY1,
            cycle_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}",
            cycle_started_at=now,
            cycle_trigger=request.trigger if request else ctx.trigger,
            cycle_requester=request.requester if request else "",
            cycle_reason=(request.reason if request else "rotation due"),
            emergency=emergency,
            cycle_drain_seconds=drain.total_seconds(),
            verify_deadline=None,
            next_attempt_at=None,
            drain_until=None,
        )

    # ------------------------------------------------------------ bookkeeping

    def _failure_state(
        self,
        state: TargetState,
        action: Action,
        exc: RotationError,
        now: datetime,
        ctx: StepContext,
        started: float,
    ) -> TargetState:
        attempts = state.attempts + 1
        delay = self.policy.backoff(attempts)
        if isinstance(exc, TransientAzureError) and exc.retry_after_seconds:
            delay = max(delay, timedelta(seconds=exc.retry_after_seconds))
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
            # Abandon the cycle without touching the pointer (possible only before the swap's P-active
            # write). After UnsafeToProceed a drift check first reconciles the state with Key Vault.
            failed = failed.with_changes(
                phase=Phase.IDLE,
                cycle_id=None,
                verify_deadline=None,
                drain_until=None,
                drift_checked_at=None if isinstance(exc, UnsafeToProceed) else state.drift_checked_at,
            )
            publish(ctx, state, LifecycleEventType.CYCLE_FAILED, slot, reason=error_text(exc))
        duration = int((time.monotonic() - started) * 1000)
        level = logging.ERROR if isinstance(exc, UnsafeToProceed | AzureAccessDenied) else logging.WARNING
        log_transition(
            target=ctx.target.resource_id,
            cycle=state.cycle_id,
            step=action.value,
            slot=slot_name(slot),
            trigger=ctx.trigger,
            outcome=StepOutcome.FAILED,
            duration_ms=duration,
            error=error_text(exc),
            level=level,
        )
        append_history(
            ctx,
            state,
            action.value,
            StepOutcome.FAILED,
            slot=slot,
            error=error_text(exc),
            duration_ms=duration,
        )
        return failed

    def _record(
        self, ctx: StepContext, before: TargetState, action: Action, result: StepResult, started: float
    ) -> None:
        duration = int((time.monotonic() - started) * 1000)
        log_transition(
            target=ctx.target.resource_id,
            cycle=before.cycle_id or result.state.cycle_id,
            step=action.value,
            slot=slot_name(result.slot),
            trigger=ctx.trigger,
            outcome=result.outcome,
            duration_ms=duration,
            error=None,
        )
        if result.history:
            append_history(
                ctx,
                before,
                action.value,
                result.outcome,
                slot=result.slot,
                duration_ms=duration,
                note=result.note,
            )

    def _log_write_failure(
        self, ctx: StepContext, state: TargetState | None, decision: Decision, error: str, lost: bool
    ) -> None:
        log_transition(
            target=ctx.target.resource_id,
            cycle=state.cycle_id if state else None,
            step=decision.action.value,
            slot=None,
            trigger=ctx.trigger,
            outcome=StepOutcome.SKIPPED if lost else StepOutcome.FAILED,
            error=error,
        )


def _without_lease(state: TargetState) -> TargetState:
    return state.with_changes(lease_owner=None, lease_expires_at=None)
