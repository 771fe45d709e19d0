"""The step runner and service against fakes: whole cycles, crash after every side effect, retries."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from rotation.errors import UnknownTarget
from rotation.model import Phase, Policy, Slot
from rotation.outcomes import RequestStatus
from rotation.views import to_json
from testkit.watch import SimulatedCrash
from tests.unit.rig import make_rig, transient


def test_adoption_stores_both_keys_pointer_and_active_value() -> None:
    rig = make_rig()
    summary = rig.service.sweep()
    assert (summary.seen, summary.advanced, summary.failed) == (1, 1, 0)
    t, account = rig.target(), rig.world.account(rig.target().resource_id)
    assert rig.world.secret_value(t.slot_secret(Slot.KEY1)) == account.keys[Slot.KEY1]
    assert rig.world.secret_value(t.slot_secret(Slot.KEY2)) == account.keys[Slot.KEY2]
    assert rig.world.secret_value(t.pointer_secret) == "key1"
    assert rig.world.secret_value(t.active_secret) == account.keys[Slot.KEY1]
    state = rig.state()
    assert (
        state is not None and state.phase is Phase.IDLE and state.due_at == rig.clock.now + t.rotation_period
    )
    assert state.lease_owner is None
    rig.check_invariants()


def test_adoption_keeps_an_existing_pointer() -> None:
    rig = make_rig()
    from rotation.model import SecretValue

    rig.secrets.set_secret(rig.target().pointer_secret, SecretValue("key2"), {})
    rig.service.sweep()
    state = rig.state()
    assert state is not None and state.active_slot is Slot.KEY2
    assert (
        rig.world.secret_value(rig.target().active_secret)
        == rig.world.account(rig.target().resource_id).keys[Slot.KEY2]
    )


def test_full_cycle_regenerate_verify_swap_then_drain_then_retire() -> None:
    rig = make_rig()
    rig.service.sweep()
    first = rig.world.account(rig.target().resource_id).keys.copy()
    rig.clock.advance(days=30)
    rig.service.sweep()
    state = rig.state()
    assert state is not None and state.phase is Phase.DRAINING and state.active_slot is Slot.KEY2
    account = rig.world.account(rig.target().resource_id)
    assert account.keys[Slot.KEY1] == first[Slot.KEY1]  # old slot untouched during the drain
    assert account.keys[Slot.KEY2] != first[Slot.KEY2]
    assert rig.world.secret_value(rig.target().pointer_secret) == "key2"
    rig.check_invariants()
    rig.clock.advance(hours=23)
    assert rig.service.sweep().advanced == 0  # still draining: nothing to do, no calls
    rig.clock.advance(hours=1)
    rig.service.sweep()
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.cycles_completed == 1
    assert account.keys[Slot.KEY1] != first[Slot.KEY1]
    assert rig.world.regenerations == [
        (rig.target().resource_id, Slot.KEY2),
        (rig.target().resource_id, Slot.KEY1),
    ]
    assert [e.event_type for e in rig.lifecycle.events] == [
        "KeyRotation.CycleStarted",
        "KeyRotation.KeySwapped",
        "KeyRotation.CycleCompleted",
    ]
    rig.check_invariants()


def test_state_writes_per_cycle_are_the_minimum() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.calls.clear()
    rig.service.sweep()
    rig.clock.advance(days=1)
    rig.service.sweep()
    assert rig.calls.get("states.replace") == 4  # REGENERATING, DRAINING, RETIRING, IDLE
    assert rig.calls.get("states.get", 0) == 0  # sweeps read everything with one list query each
    assert rig.calls.get("states.list_all") == 2


def test_failed_verification_never_swaps_and_the_cycle_fails_after_the_timeout() -> None:
    policy = Policy(verify_timeout=timedelta(minutes=2), verify_retry_interval=timedelta(seconds=30))
    rig = make_rig(policy=policy)
    rig.service.sweep()
    rig.world.propagation_probes = 10_000  # the new key is never accepted
    rig.clock.advance(days=30)
    rig.service.sweep()
    state = rig.state()
    assert state is not None and state.phase is Phase.VERIFYING and state.next_attempt_at is not None
    for _ in range(4):  # 30 s retries until the 2-minute timeout
        assert rig.state().phase is Phase.VERIFYING  # type: ignore[union-attr]
        rig.clock.advance(seconds=30)
        rig.service.sweep()
        assert rig.world.secret_value(rig.target().pointer_secret) == "key1"
        rig.check_invariants()
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.active_slot is Slot.KEY1
    assert state.last_error and "KeyVerificationFailed" in state.last_error
    assert state.next_attempt_at is not None and state.next_attempt_at > rig.clock.now
    assert rig.lifecycle.events[-1].event_type == "KeyRotation.CycleFailed"
    # after the backoff, a new cycle starts and (now that the key propagates) completes the swap
    rig.world.propagation_probes = 0
    rig.clock.advance(minutes=5)
    rig.service.sweep()
    state = rig.state()
    assert state is not None and state.phase is Phase.DRAINING and state.active_slot is Slot.KEY2
    rig.check_invariants()


def test_slow_propagation_is_waited_for_as_stored_state() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.world.propagation_probes = 2
    rig.clock.advance(days=30)
    rig.service.sweep()
    assert rig.state().phase is Phase.VERIFYING  # type: ignore[union-attr]
    rig.clock.advance(seconds=15)
    rig.service.sweep()
    assert rig.state().phase is Phase.VERIFYING  # type: ignore[union-attr]
    rig.clock.advance(seconds=15)
    rig.service.sweep()
    assert rig.state().phase is Phase.DRAINING  # type: ignore[union-attr]
    assert len(rig.world.regenerations) == 1


# An emergency cycle makes 9 writes: state REGENERATING, regenerate key2, P-key2, P-active, pointer,
# state RETIRING, regenerate key1, P-key1, state IDLE.
@pytest.mark.parametrize("crash_after", range(1, 10))
def test_crash_after_every_side_effect_then_next_invocation_completes(crash_after: int) -> None:
    """Crash after the Nth write (Key Vault, ARM regenerate, state) of a whole emergency cycle."""
    rig = make_rig(drain=timedelta(hours=1))
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.crasher.side_effects = 0
    rig.crasher.crash_after = crash_after
    crashed = False
    try:
        rig.service.request_rotation("acc1", trigger="cli", emergency=True, reason="test")
    except SimulatedCrash:
        crashed = True
    assert crashed
    rig.check_invariants()
    for _ in range(4):  # later invocations: the lease expires, the cycle resumes and completes
        rig.clock.advance(minutes=6)
        rig.service.sweep()
        rig.check_invariants()
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.lease_owner is None
    assert state.cycles_completed == 1
    regenerated = [slot for _, slot in rig.world.regenerations]
    assert set(regenerated) == {Slot.KEY1, Slot.KEY2}
    assert len(regenerated) <= 3  # at most one repeat, and only of the unused slot


def test_transient_failure_is_recorded_and_retried_with_backoff() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    rig.world.faults["arm.regenerate_key"] = [transient("arm.regenerate_key")]
    result = rig.service.sweep()
    assert result.failed == 1
    state = rig.state()
    assert state is not None and state.phase is Phase.REGENERATING and state.attempts == 1
    assert state.last_error == "TransientAzureError: arm.regenerate_key: HTTP 503"
    assert state.next_attempt_at == rig.clock.now + Policy().backoff(1)
    assert rig.service.sweep().advanced == 0  # in backoff: nothing happens
    rig.clock.advance(minutes=1)
    rig.service.sweep()
    assert rig.state().phase is Phase.DRAINING  # type: ignore[union-attr]
    rows = rig.history_rows()
    assert any(r.outcome == "failed" and r.step == "regenerate_new" for r in rows)


def test_request_semantics_in_progress_refused_forced_emergency() -> None:
    rig = make_rig()
    rig.service.sweep()
    outcome = rig.service.request_rotation("acc1", requester="alice", reason="audit")
    assert outcome.status is RequestStatus.STARTED and outcome.cycle_id
    assert outcome.state is not None and outcome.state.phase == "draining"
    again = rig.service.request_rotation("acc1")
    assert again.status is RequestStatus.IN_PROGRESS and len(rig.world.regenerations) == 1
    rig.clock.advance(days=1)
    rig.service.sweep()
    refused = rig.service.request_rotation("acc1")
    assert refused.status is RequestStatus.REFUSED and "less than the drain time" in refused.message
    forced = rig.service.request_rotation("acc1", force=True)
    assert forced.status is RequestStatus.STARTED
    emergency = rig.service.request_rotation("acc1", emergency=True, reason="leaked")
    assert emergency.status is RequestStatus.DRAIN_SHORTENED
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.cycles_completed == 2
    rows = rig.history_rows()
    assert any(r.step == "request" and r.emergency and r.outcome == "drain_shortened" for r in rows)
    rig.check_invariants()
    with pytest.raises(UnknownTarget):
        rig.service.request_rotation("nope")


def test_emergency_rotation_completes_the_whole_cycle_at_once() -> None:
    rig = make_rig()
    rig.service.sweep()
    outcome = rig.service.request_rotation("acc1", emergency=True, requester="bob", reason="key leaked")
    assert outcome.status is RequestStatus.STARTED
    state = rig.state()
    assert state is not None and state.phase is Phase.IDLE and state.cycles_completed == 1
    started = [r for r in rig.history_rows() if r.step == "cycle"]
    assert started and started[0].emergency and started[0].requester == "bob"


def test_drift_in_the_active_slot_is_repaired_loudly(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig()
    rig.service.sweep()
    account = rig.world.account(rig.target().resource_id)
    account.keys[Slot.KEY1] = "portal-regenerated-0123456789"
    account.issued.append(account.keys[Slot.KEY1])
    rig.clock.advance(hours=7)
    with caplog.at_level(logging.INFO, logger="rotation"):
        rig.service.sweep()
    assert rig.world.secret_value(rig.target().slot_secret(Slot.KEY1)) == account.keys[Slot.KEY1]
    assert rig.world.secret_value(rig.target().active_secret) == account.keys[Slot.KEY1]
    assert any(r.levelno == logging.ERROR and "rotation.drift" in r.getMessage() for r in caplog.records)
    assert any(r.step == "drift" for r in rig.history_rows())
    rig.check_invariants()


def test_keyless_account_is_left_alone_and_rechecked() -> None:
    rig = make_rig()
    rig.world.account(rig.target().resource_id).disable_local_auth = True
    assert rig.service.sweep().failed == 0
    state = rig.state()
    assert state is not None and state.phase is Phase.KEYLESS
    calls = rig.calls.of("keys")
    rig.clock.advance(hours=1)
    rig.service.sweep()
    assert rig.calls.of("keys") == calls  # no error storm: not even a read before the re-check
    refused = rig.service.request_rotation("acc1", force=True)
    assert refused.status is RequestStatus.REFUSED and "disableLocalAuth" in refused.message
    rig.world.account(rig.target().resource_id).disable_local_auth = False
    rig.clock.advance(days=1)
    rig.service.sweep()
    assert rig.state().phase is Phase.IDLE  # type: ignore[union-attr]
    rig.check_invariants()


def test_transition_records_are_structured_json(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig()
    with caplog.at_level(logging.INFO, logger="rotation"):
        rig.service.sweep()
        rig.service.request_rotation("acc1")
    transitions = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("rotation.transition ")
    ]
    assert transitions
    for message in transitions:
        record = json.loads(message[len("rotation.transition ") :])
        assert set(record) == {"target", "cycle", "step", "slot", "trigger", "outcome", "durationMs", "error"}
        assert record["outcome"] in {"started", "succeeded", "waiting", "failed", "skipped"}
    sweeps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rotation.sweep ")]
    assert json.loads(sweeps[0][len("rotation.sweep ") :])["seen"] == 1
    values = rig.world.all_key_values()
    for record in caplog.records:
        assert not any(v in record.getMessage() for v in values)


def test_sweep_counts_targets_overdue_past_their_grace_and_clears_them_once_rotated() -> None:
    rig = make_rig(names=("acc1", "acc2"))
    rig.service.sweep()
    rig.clock.advance(days=30)
    # Every regenerate keeps failing, so neither due rotation can complete.
    rig.world.faults["arm.regenerate_key"] = [transient("arm.regenerate_key") for _ in range(50)]
    grace = rig.service.policy.overdue_grace
    first = rig.service.sweep()
    assert first.overdue == 0  # due, but not yet past the grace
    rig.clock.advance(seconds=grace.total_seconds() + 1)
    late = rig.service.sweep()
    assert late.overdue == 2 and json.loads(json.dumps(to_json(late)))["overdue"] == 2
    rig.world.faults.clear()
    for _ in range(4):  # backoff retries, the drain, then the old slot is retired
        rig.clock.advance(days=1)
        rig.service.sweep()
    assert all((s := rig.state(i)) is not None and s.phase is Phase.IDLE for i in (0, 1))
    assert rig.service.sweep().overdue == 0


def test_keyless_targets_are_never_overdue() -> None:
    rig = make_rig()
    rig.world.account(rig.target().resource_id).disable_local_auth = True
    rig.service.sweep()
    rig.clock.advance(days=90)
    assert rig.service.sweep().overdue == 0


def test_an_invocation_that_loses_the_start_race_leaves_no_trace_of_a_cycle() -> None:
    rig = make_rig()
    rig.service.sweep()
    rig.clock.advance(days=30)
    t = rig.target()
    stale = rig.states.get(t.state_key)  # what a slower invocation loaded before the winner wrote
    winner = rig.service.runner.advance(t, "timer")
    assert "start_cycle" in winner.steps
    loser = rig.service.runner.advance(t, "event", loaded=stale)
    assert loser.outcome == "busy" and "start_cycle" not in loser.steps
    started = [r for r in rig.history_rows() if (r.step, r.outcome) == ("cycle", "started")]
    state = rig.state()
    assert state is not None and [r.cycle for r in started] == [state.cycle_id]
    assert [e.event_type for e in rig.lifecycle.events].count("KeyRotation.CycleStarted") == 1
    rig.check_invariants()


def test_an_admin_request_that_adopts_a_new_target_records_who_asked() -> None:
    rig = make_rig()
    rig.service.request_rotation("acc1", trigger="admin", requester="alice@contoso", reason="onboarding")
    rows = rig.history_rows()
    adopt = [r for r in rows if r.step == "adopt"]
    assert len(adopt) == 1 and adopt[0].requester == "alice@contoso" and adopt[0].trigger == "admin"
