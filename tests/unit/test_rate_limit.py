from __future__ import annotations

from shared.budgets import TokenBucketLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_subscription() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=2, burst=3, clock=ticks)
    assert [limiter.try_acquire("sub-a") for _ in range(4)] == [True, True, True, False]
    assert limiter.try_acquire("SUB-B")  # another subscription has its own bucket
    ticks.now = 0.5
    assert limiter.try_acquire("sub-a") and not limiter.try_acquire("sub-a")


def test_retry_after_blocks_until_it_has_passed() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=10, burst=10, clock=ticks)
    limiter.penalize("sub", 5)
    ticks.now = 4.9
    assert not limiter.try_acquire("sub")
    ticks.now = 5.2
    assert limiter.try_acquire("sub")


def test_several_writes_are_taken_all_or_nothing() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=1, burst=3, clock=ticks)
    assert limiter.try_acquire("sub", 2)
    assert not limiter.try_acquire("sub", 2)  # one token left: a regenerate step (2 writes) must wait
    assert limiter.try_acquire("sub")  # ... but a single listKeys fits
    ticks.now = 2.0
    assert limiter.try_acquire("sub", 2)


def test_a_sweep_spends_one_arm_write_per_regenerate_and_one_per_adoption() -> None:
    from rotation.model import Phase
    from rotation.views import to_json
    from tests.unit.rig import make_rig

    ticks = Ticks()  # frozen: no refill during the test
    limiter = TokenBucketLimiter(rate_per_second=1, burst=7, clock=ticks)
    rig = make_rig(names=("a1", "a2", "a3", "a4", "a5"), limiter=limiter)
    adoption = rig.service.sweep()
    assert adoption.advanced == 5  # 5 listKeys: 2 tokens left
    rig.clock.advance(days=30)
    due = rig.service.sweep()
    draining = [i for i in range(5) if getattr(rig.state(i), "phase", None) is Phase.DRAINING]
    # 1 write each: regenerateKey's answer carries the keys, no listKeys; the other three wait for tokens
    assert len(draining) == 2 and due.advanced == 2
    assert due.deferred == 3 and to_json(due)["deferred"] == 3
    assert len(rig.world.regenerations) == 2 and rig.calls.get("keys.list_keys", 0) == 5  # adoption's
    ticks.now = 3.0  # 3 tokens: the three waiting targets start (1 each) on the next sweep
    rig.clock.advance(minutes=1)
    rig.service.sweep()
    assert [getattr(rig.state(i), "phase", None) for i in range(5)] == [Phase.DRAINING] * 5


def test_a_regenerate_azure_core_retried_lists_the_keys_with_a_token_of_its_own() -> None:
    from rotation.model import Phase
    from tests.unit.rig import make_rig

    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=1, burst=3, clock=ticks)
    rig = make_rig(names=("a1",), limiter=limiter)
    rig.service.sweep()  # adoption: 1 token (listKeys), 2 left
    rig.clock.advance(days=30)
    rig.world.retried_regenerates = 1  # its answer may be an earlier POST's: the keys are listed
    assert rig.service.sweep().advanced == 1 and rig.state(0).phase is Phase.DRAINING
    assert rig.calls.get("keys.list_keys") == 2  # adoption's, and this one
    assert not limiter.try_acquire(rig.targets[0].subscription_id)  # regenerateKey 1 + listKeys 1: none left
    rig.check_invariants()

    # with no token left for its listKeys the step stops before storing and is run again later: the unused
    # slot is regenerated once more (I2), nothing is stored that the service does not have
    rig2 = make_rig(names=("a1",), limiter=TokenBucketLimiter(rate_per_second=1, burst=2, clock=ticks))
    rig2.service.sweep()
    rig2.clock.advance(days=30)
    rig2.world.retried_regenerates = 1
    summary = rig2.service.sweep()
    assert summary.advanced == 0 and rig2.state(0).phase is Phase.REGENERATING
    assert "listKeys" in (rig2.state(0).last_error or "")
    ticks.now += 2
    rig2.clock.advance(minutes=15)
    rig2.service.sweep()
    assert rig2.state(0).phase is Phase.DRAINING and len(rig2.world.regenerations) == 2
    rig2.check_invariants()


def test_a_deferred_adoption_writes_no_state_and_reads_it_once() -> None:
    from tests.unit.rig import make_rig

    ticks = Ticks()
    limiter = TokenBucketLimiter(rate_per_second=1, burst=2, clock=ticks)
    rig = make_rig(names=("a1", "a2", "a3"), limiter=limiter, concurrency=1)
    summary = rig.service.sweep()
    assert (summary.advanced, summary.deferred) == (2, 1)
    # the sweep's one query found no state: no per-target re-read, no intent for the deferred one
    assert rig.calls.get("states.get", 0) == 0 and rig.calls.get("states.create") == 2
    assert [rig.state(i) is None for i in range(3)].count(True) == 1  # no ADOPTING intent left behind
    ticks.now = 1.0
    assert rig.service.sweep().advanced == 1
    assert all(rig.state(i) is not None for i in range(3))
