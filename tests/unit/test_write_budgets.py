"""No write token is lost: a step that needs tokens from two budgets (Key Vault per vault, ARM per
subscription and identity) and gets only one gives the granted tokens back, and tokens taken ahead for
writes an invocation does not make (it stopped to wait) go back when it ends. The buckets are the
in-process ``TokenBucketLimiter`` on a frozen clock, so a lost token shows as a missing one. Also: work a
transient failure stopped is rescheduled (like deferred work) at its backoff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from rotation.decision import WRITES_PER_REGENERATE
from rotation.errors import AzureAccessDenied
from rotation.model import Policy
from rotation.outcomes import TargetOutcome
from rotation.pacing import Budget
from rotation.ports import WorkScheduler
from shared.budgets import TokenBucketLimiter
from tests.unit.rig import Rig, make_rig, transient

VAULT_BURST = 12
ARM_BURST = 6


def rig_with_budgets() -> tuple[Rig, TokenBucketLimiter, TokenBucketLimiter]:
    frozen = lambda: 1_000.0  # noqa: E731  (no refill: every token is accounted for)
    arm = TokenBucketLimiter(rate_per_second=1, burst=ARM_BURST, clock=frozen)
    vault = TokenBucketLimiter(rate_per_second=1, burst=VAULT_BURST, clock=frozen)
    rig = make_rig(("acc1",), limiter=arm, drain=timedelta(hours=1))
    rig.service.ports.vault_limiter = vault
    return rig, arm, vault


def tokens_left(bucket: TokenBucketLimiter, key: str, most: int) -> int:
    """How many tokens the bucket holds (taken one by one, then given back)."""
    taken = 0
    while taken < most + 1 and bucket.try_acquire(key):
        taken += 1
    bucket.release(key, taken)
    return taken


def test_granted_vault_tokens_go_back_when_arm_refuses() -> None:
    rig, arm, vault = rig_with_budgets()
    target = rig.target()
    vault_key = rig.service.ports.vault_key(target.vault_url)
    assert arm.try_acquire(target.subscription_id, ARM_BURST)  # another instance spent ARM's budget
    result = rig.service.advance_target(target.resource_id)
    assert result.outcome is TargetOutcome.DEFERRED and rig.state() is None  # nothing happened
    assert tokens_left(vault, vault_key, VAULT_BURST) == VAULT_BURST  # the 4 adoption writes came back
    arm.release(target.subscription_id, ARM_BURST)
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.ADVANCED
    # adoption spent exactly its 4 secret writes and 1 listKeys, nothing more went missing
    assert tokens_left(vault, vault_key, VAULT_BURST) == VAULT_BURST - 4
    assert tokens_left(arm, target.subscription_id, ARM_BURST) == ARM_BURST - 1


def test_tokens_held_for_writes_not_made_go_back_when_the_invocation_stops_to_wait() -> None:
    rig, arm, vault = rig_with_budgets()
    target = rig.target()
    vault_key = rig.service.ports.vault_key(target.vault_url)
    rig.service.advance_target(target.resource_id)  # adoption: 4 secret writes, 1 ARM write
    rig.world.propagation_probes = 100  # the new key is not accepted yet: verification waits
    rig.service.request_rotation(target.resource_id, reason="test")
    state = rig.state()
    assert state is not None and state.phase.value == "verifying"
    # the cycle took 1 secret write (the new slot) and wrote it, then the swap's 2 before the probe, which
    # waits: the 2 are back; ARM spent exactly regenerate + listKeys
    assert tokens_left(vault, vault_key, VAULT_BURST) == VAULT_BURST - 4 - 1
    assert tokens_left(arm, target.subscription_id, ARM_BURST) == ARM_BURST - 1 - WRITES_PER_REGENERATE
    rig.check_invariants()


class RecordingBucket(TokenBucketLimiter):
    """Records each take and how many secret versions the vault held when it was asked."""

    def __init__(self, rig_world: Rig, **kwargs: object) -> None:
        super().__init__(rate_per_second=1, burst=VAULT_BURST, clock=lambda: 1_000.0)
        self.rig = rig_world
        self.takes: list[tuple[int, int]] = []

    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        written = sum(len(versions) for versions in self.rig.world.vault.values())
        self.takes.append((writes, written))
        return super().try_acquire(subscription_id, writes)


def test_a_steps_vault_tokens_are_taken_right_before_it_never_a_step_earlier() -> None:
    # Key Vault counts a write when it arrives and the bucket when its token is taken: tokens taken a
    # step early (before the regenerate's ARM calls and the probe) would let the window overflow.
    rig, _, _ = rig_with_budgets()
    target = rig.target()
    rig.service.advance_target(target.resource_id)  # adoption
    vault = RecordingBucket(rig)
    rig.service.ports.vault_limiter = vault
    rig.service.request_rotation(target.resource_id, reason="test")
    state = rig.state()
    assert state is not None and state.phase.value == "draining"
    (first, before_first), (second, before_second) = vault.takes
    # the new slot's 1 write at the cycle's start; the swap's 2 only once that write was made
    assert (first, second) == (1, 2)
    assert before_second == before_first + 1
    rig.check_invariants()


def test_adoption_takes_its_vault_tokens_after_its_reads_right_before_its_writes() -> None:
    rig, _, vault = rig_with_budgets()
    target = rig.target()
    calls: list[str] = []
    fault, try_acquire = rig.world.fault, vault.try_acquire

    def logged_fault(operation: str) -> None:
        calls.append(operation)
        fault(operation)

    def logged_take(key: str, writes: int = 1) -> bool:
        calls.append(f"take {writes}")
        return try_acquire(key, writes)

    rig.world.fault = logged_fault  # type: ignore[method-assign]
    vault.try_acquire = logged_take  # type: ignore[method-assign]
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.ADVANCED
    # after the take: only the 4 writes (both slots, P-active, the pointer), no read or ARM call between
    taken = calls.index("take 4")
    assert calls[taken : taken + 5] == ["take 4"] + ["keyvault.set_secret"] * 4, calls
    assert any(call.startswith("arm.") for call in calls[: calls.index("take 4")])


def test_an_adoption_the_vault_cannot_pay_after_its_reads_is_deferred_having_written_nothing() -> None:
    rig, arm, vault = rig_with_budgets()
    target = rig.target()
    vault_key = rig.service.ports.vault_key(target.vault_url)
    assert vault.try_acquire(vault_key, VAULT_BURST - 3)  # 3 left: adoption writes 4
    result = rig.service.advance_target(target.resource_id)
    assert result.outcome is TargetOutcome.DEFERRED and result.steps == ()
    assert rig.world.vault == {}  # not one secret written
    state = rig.state()
    assert state is not None and state.phase.value == "adopting" and state.lease_owner is None
    assert tokens_left(vault, vault_key, VAULT_BURST) == 3  # nothing taken from the vault
    assert tokens_left(arm, target.subscription_id, ARM_BURST) == ARM_BURST - 1  # listKeys was made
    vault.release(vault_key, VAULT_BURST)  # the bucket refilled: the next invocation adopts
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.ADVANCED
    assert tokens_left(vault, vault_key, VAULT_BURST) == VAULT_BURST - 4
    rig.check_invariants()


def test_released_tokens_never_exceed_the_burst() -> None:
    bucket = TokenBucketLimiter(rate_per_second=1, burst=3, clock=lambda: 5.0)
    bucket.release("sub", 10)
    assert tokens_left(bucket, "sub", 10) == 3


class RecordingScheduler(WorkScheduler):
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, float]] = []

    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        self.scheduled.append((resource_id, delay_seconds))


def test_a_transient_failure_is_rescheduled_at_its_backoff_not_left_for_the_next_timer_tick() -> None:
    rig = make_rig(("acc1",))
    scheduler = RecordingScheduler()
    rig.service.ports.scheduler = scheduler
    target = rig.target()
    rig.world.faults["arm.list_keys"] = [transient("arm.list_keys")]
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.FAILED
    state = rig.state()
    assert state is not None and state.next_attempt_at is not None
    backoff = (state.next_attempt_at - rig.clock()).total_seconds()
    assert scheduler.scheduled == [(target.resource_id, backoff)] and backoff > 0
    # a failed state write (storage hiccup, no lease held): retried after the first backoff
    rig.clock.advance(seconds=backoff)
    rig.world.faults["table.write"] = [transient("table.write")]
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.FAILED
    assert scheduler.scheduled[-1] == (target.resource_id, Policy().backoff(1).total_seconds())
    # a refusal that is not transient (a missing role) waits for the timer, as before
    rig.world.faults["arm.list_keys"] = [AzureAccessDenied("arm.list_keys: HTTP 403")]
    count = len(scheduler.scheduled)
    rig.clock.advance(seconds=3600)
    assert rig.service.advance_target(target.resource_id).outcome is TargetOutcome.FAILED
    assert len(scheduler.scheduled) == count


def test_a_sweep_starts_what_the_budgets_pay_within_the_horizon_and_sends_the_rest_back_untouched() -> None:
    """Pacing in the in-process sweep: 6 targets to adopt (4 secret writes each) on one vault whose budget
    is 2 writes/s with a burst of 4 — delays 0, 2, 4, 6, 8, 10 s. Only the one paced under the horizon
    (2 s) starts; the others go back on the queue at their delay, with no call to Azure or the state."""
    rig = make_rig(tuple(f"acc{i}" for i in range(6)))
    scheduler = RecordingScheduler()
    rig.service.ports.scheduler = scheduler
    rig.service.pacing = (Budget(per_second=100, burst=100), Budget(per_second=2, burst=4))
    rig.calls.clear()
    summary = rig.service.sweep()
    assert (summary.advanced, summary.deferred) == (1, 5)
    assert [r.target for r in summary.results] == [rig.target(0).resource_id]
    assert scheduler.scheduled == [(rig.target(i).resource_id, 2.0 * i) for i in range(1, 6)]
    assert rig.calls.get("keys.list_keys") == 1  # the started one's adoption, no other target's
    assert all(rig.state(i) is None for i in range(1, 6))  # untouched: no intent, no lease
    # without pacing the same sweep starts all six (the budget here is unlimited)
    rig.service.pacing = None
    assert rig.service.sweep().advanced == 5
    rig.check_invariants()


class GroupingScheduler(WorkScheduler):
    """Records each group as the service hands it over (one queue message per group in the adapter)."""

    def __init__(self) -> None:
        self.groups: list[tuple[list[str], float]] = []

    def schedule(self, resource_id: str, delay_seconds: float) -> None:
        self.groups.append(([resource_id], delay_seconds))

    def schedule_many(self, resource_ids: Sequence[str], delay_seconds: float) -> None:
        self.groups.append((list(resource_ids), delay_seconds))


def test_targets_paced_within_the_same_second_go_back_together_never_before_their_time() -> None:
    """8 adoptions (4 secret writes each) on a vault refilling 8 writes/s with a burst of 4: paced 0, 0.5,
    1, ..., 3.5 s. The first four start (under the 2 s horizon); the queue's visibility is whole seconds, so
    the rest come back as one group per second — each at the end of its second, none earlier than paced."""
    rig = make_rig(tuple(f"acc{i}" for i in range(8)))
    scheduler = GroupingScheduler()
    rig.service.ports.scheduler = scheduler
    rig.service.pacing = (Budget(per_second=100, burst=100), Budget(per_second=8, burst=4))
    summary = rig.service.sweep()
    assert (summary.advanced, summary.deferred) == (4, 4)
    ids = [rig.target(i).resource_id for i in range(8)]
    assert scheduler.groups == [([ids[4]], 2), ([ids[5], ids[6]], 3), ([ids[7]], 4)]
    assert all(rig.state(i) is None for i in range(4, 8))  # sent back untouched
    # the group's invocation runs them side by side, each once; a name that is no target is returned
    results, unknown = rig.service.advance_targets([ids[5], "no-such-account", ids[6], ids[5]])
    assert sorted(r.target for r in results) == [ids[5], ids[6]]
    assert all(r.outcome is TargetOutcome.ADVANCED for r in results)
    assert unknown == ["no-such-account"]
    assert rig.state(5) is not None and rig.state(6) is not None and rig.state(7) is None
    rig.check_invariants()
