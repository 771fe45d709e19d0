"""The engine with the real SDK clients against the emulator and Azurite: cycles, crashes, races, faults,
verification, drift, keyless, events, I5."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest

from rotation.model import Phase, Policy, RequestStatus, Slot
from tests.engine.harness import SimulatedCrash, make_engine


def _complete(engine, rounds: int = 6) -> None:
    """Later invocations: let leases expire and drains end until the target rests."""
    for _ in range(rounds):
        state = engine.state()
        if state is not None and state.phase is Phase.IDLE and state.lease_owner is None:
            return
        engine.clock.advance(minutes=6)
        engine.service.sweep()


def test_full_cycle_counts_calls_against_the_minimum(fresh_emulator, azurite, monkeypatch, caplog) -> None:
    engine = make_engine(fresh_emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    engine.service.sweep()  # adoption
    fresh_emulator.control.reset_calls()
    engine.recorder.counts.clear()
    with caplog.at_level(logging.INFO, logger="rotation"):
        engine.clock.advance(days=30)
        first = engine.service.sweep()
        assert first.advanced == 1 and engine.state().phase is Phase.DRAINING
        engine.check_i1_i3()
        engine.clock.advance(hours=1)
        engine.service.sweep()
    assert engine.state().phase is Phase.IDLE
    engine.check_i1_i3()
    calls = {k: v for k, v in fresh_emulator.control.calls().items() if v and not k.startswith("identity")}
    tables = dict(engine.recorder.counts)
    print("EMULATOR_CALLS", json.dumps(calls, sort_keys=True))
    print("PORT_CALLS", json.dumps(tables, sort_keys=True))
    # The figures recorded in docs/ENGINE.md ("Calls per cycle"); service_keys()/check_i1_i3 add reads
    # that are not the engine's, so only the engine's own port calls are compared exactly.
    assert tables["arm.regenerate_key"] == 2
    assert tables["arm.list_keys"] == 2
    assert tables.get("arm.get_account", 0) == 0  # endpoint and kind are kept in the state
    assert tables["keyvault.set_secret"] == 4  # new slot, P-active, pointer, old slot
    # 2 pointer checks (I2), 1 I3 check; no "already done?" read when this invocation wrote the intent
    assert tables["keyvault.get_secret"] == 3
    assert tables["table.state_write"] == 4
    assert tables["table.state_list"] == 2 and tables.get("table.state_get", 0) == 0
    assert calls["dataplane.request"] == 1
    texts = [r.getMessage() for r in caplog.records] + engine.state_and_history_texts()
    engine.assert_no_key_values_in(texts)


# A whole emergency cycle makes 9 side effects: state REGENERATING, regenerate key2, P-key2, P-active,
# pointer, state RETIRING, regenerate key1, P-key1, state IDLE.
@pytest.mark.parametrize("crash_after", range(1, 10))
def test_crash_after_each_side_effect_then_next_invocation_completes(
    emulator, azurite, monkeypatch, crash_after: int, caplog
) -> None:
    engine = make_engine(emulator, azurite, monkeypatch)
    engine.service.sweep()
    before = engine.service_keys()
    engine.recorder.side_effects = 0
    engine.recorder.crash_after = crash_after
    with caplog.at_level(logging.INFO, logger="rotation"), pytest.raises(SimulatedCrash) as crashed:
        engine.service.request_rotation(engine.names[0], trigger="cli", emergency=True, reason="crash test")
    engine.check_i1_i3()
    _complete(engine)
    state = engine.state()
    assert state.phase is Phase.IDLE and state.cycles_completed == 1 and state.lease_owner is None
    after = engine.service_keys()
    assert after[Slot.KEY1] != before[Slot.KEY1] and after[Slot.KEY2] != before[Slot.KEY2]
    assert engine.recorder.counts["arm.regenerate_key"] <= 3  # at most one repeat, of an unused slot
    engine.check_i1_i3()
    engine.assert_no_key_values_in(
        [str(crashed.value)] + [r.getMessage() for r in caplog.records] + engine.state_and_history_texts()
    )


def test_ten_racing_invocations_make_exactly_one_cycle(fresh_emulator, azurite, monkeypatch) -> None:
    engine = make_engine(fresh_emulator, azurite, monkeypatch)
    engine.service.sweep()
    fresh_emulator.control.reset_calls()
    barrier = threading.Barrier(10)
    outcomes: list[RequestStatus] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        barrier.wait()
        if index % 2:
            result = engine.service.request_rotation(engine.names[0], trigger="admin", requester=f"r{index}")
            with lock:
                outcomes.append(result.status)
        else:
            engine.service.advance_target(engine.names[0], trigger="queue")

    engine.clock.advance(days=30)  # due, so the sweepers race the requesters too
    threads = [threading.Thread(target=race, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert fresh_emulator.control.calls()["arm.regenerate_key"] == 1
    assert engine.state().phase is Phase.DRAINING
    assert outcomes.count(RequestStatus.STARTED) <= 1
    engine.check_i1_i3()


FAULTS = [
    ("keyvault.get_secret", {"status": 500}),
    ("keyvault.set_secret", {"status": 429, "retry_after": 1}),
    ("keyvault.set_secret", {"action": "timeout", "timeout_seconds": 1}),
    ("arm.list_keys", {"status": 500}),
    ("arm.list_keys", {"status": 429, "retry_after": 1}),
    ("arm.regenerate_key", {"status": 503, "when": "after"}),  # effect happened, answer lost: retried POST
    ("arm.regenerate_key", {"status": 429, "retry_after": 1}),
    ("arm.regenerate_key", {"action": "timeout", "timeout_seconds": 1}),
    ("dataplane.request", {"status": 500}),
    ("dataplane.request", {"action": "drop"}),
]


@pytest.mark.parametrize(("operation", "fault"), FAULTS, ids=[f"{o}-{f}" for o, f in FAULTS])
def test_injected_faults_are_survived(emulator, azurite, monkeypatch, operation, fault) -> None:
    engine = make_engine(emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    engine.service.sweep()
    try:
        emulator.control.add_fault(operation, count=4, **fault)
        engine.clock.advance(days=30)
        engine.service.sweep()
        engine.check_i1_i3()
    finally:
        emulator.control.clear_faults()
    for _ in range(8):
        engine.clock.advance(minutes=10)
        engine.service.sweep()
        engine.check_i1_i3()
    state = engine.state()
    assert state.phase is Phase.IDLE and state.cycles_completed == 1, state


def test_failed_verification_leaves_the_pointer_and_fails_the_cycle(fresh_emulator, azurite, monkeypatch):
    policy = Policy(verify_timeout=timedelta(minutes=1), verify_retry_interval=timedelta(seconds=20))
    engine = make_engine(fresh_emulator, azurite, monkeypatch, policy=policy)
    engine.service.sweep()
    fresh_emulator.control.set_propagation(3600)  # new keys are refused by the data plane for an hour
    engine.service.request_rotation(engine.names[0])
    assert engine.state().phase is Phase.VERIFYING
    for _ in range(3):
        engine.clock.advance(seconds=20)
        engine.service.sweep()
        assert engine.secret(engine.target().pointer_secret) == "key1"
        engine.check_i1_i3()
    state = engine.state()
    assert state.phase is Phase.IDLE and state.active_slot is Slot.KEY1
    assert "KeyVerificationFailed" in state.last_error and state.next_attempt_at > engine.clock()
    rows = engine.service.history(engine.names[0])
    assert any(r.outcome == "failed" and r.step == "verify_and_swap" for r in rows)


def test_drift_in_the_active_slot_is_repaired(emulator, azurite, monkeypatch, caplog) -> None:
    engine = make_engine(emulator, azurite, monkeypatch)
    engine.service.sweep()
    target = engine.target()
    sub = target.subscription_id
    with emulator.arm_client(sub) as arm:  # someone regenerates the active key in the portal
        arm.accounts.regenerate_key("rg-engine", engine.names[0], key_name="Key1")
    engine.clock.advance(hours=7)
    with caplog.at_level(logging.INFO, logger="rotation"):
        engine.service.sweep()
    keys = engine.service_keys()
    assert engine.secret(target.slot_secret(Slot.KEY1)) == keys[Slot.KEY1]
    assert engine.secret(target.active_secret) == keys[Slot.KEY1]
    assert any(r.levelno == logging.ERROR and "rotation.drift" in r.getMessage() for r in caplog.records)
    assert any(r.step == "drift" for r in engine.service.history(engine.names[0]))
    engine.check_i1_i3()
    engine.assert_no_key_values_in(
        [r.getMessage() for r in caplog.records] + engine.state_and_history_texts()
    )


def test_keyless_account_is_reported_and_left_alone(emulator, azurite, monkeypatch, caplog) -> None:
    engine = make_engine(emulator, azurite, monkeypatch)
    emulator.control.set_disable_local_auth(engine.names[0], True)
    with caplog.at_level(logging.WARNING, logger="rotation"):
        summary = engine.service.sweep()
        again = engine.service.sweep()
    assert summary.failed == 0 and again.advanced == 0
    assert engine.state().phase is Phase.KEYLESS
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    emulator.control.set_disable_local_auth(engine.names[0], False)
    engine.clock.advance(days=1, minutes=1)
    engine.service.sweep()
    assert engine.state().phase is Phase.IDLE
    engine.check_i1_i3()


def test_secret_events_request_one_cycle_and_ignore_stale_ones(emulator, azurite, monkeypatch) -> None:
    engine = make_engine(emulator, azurite, monkeypatch)
    engine.service.sweep()
    target = engine.target()
    current = engine.raw_ports.secrets.get_secret(target.active_secret)
    vault = engine.settings.key_vault_url
    assert engine.service.handle_secret_near_expiry(vault, "unmanaged", None).reason == "unmanaged_secret"
    pointer_event = engine.service.handle_secret_near_expiry(vault, target.pointer_secret, None)
    assert pointer_event.reason == "not_rotated_by_events"
    stale = engine.service.handle_secret_near_expiry(vault, target.active_secret, "0" * 32)
    assert (stale.reason, stale.current_version) == ("stale_version", current.version)
    first = engine.service.handle_secret_near_expiry(vault, target.active_secret, current.version)
    assert first.requested and first.request is not None and first.request.cycle_id
    second = engine.service.handle_secret_near_expiry(vault, target.active_secret, current.version)
    # the version was replaced by the swap, or the cycle is still running: never a second cycle
    assert second.reason in ("stale_version", "cycle_in_progress") and not second.requested
    assert engine.recorder.counts["arm.regenerate_key"] == 1


def test_lifecycle_events_reach_the_event_grid_topic(emulator, azurite, monkeypatch) -> None:
    topic = emulator.env["EVENTGRID_TOPIC_ENDPOINT"]
    engine = make_engine(
        emulator, azurite, monkeypatch, extra_settings={"ROTATION_EVENTS_TOPIC_ENDPOINT": topic}
    )
    engine.service.sweep()
    engine.service.request_rotation(engine.names[0], emergency=True, reason="drill")
    target = engine.target().resource_id

    def mine() -> list[dict]:
        return [e for e in emulator.control.eventgrid_events() if e.get("subject") == target]

    events = emulator.wait_for(lambda: len(mine()) >= 3 and mine())
    assert [e["eventType"] for e in events] == [
        "KeyRotation.CycleStarted",
        "KeyRotation.KeySwapped",
        "KeyRotation.CycleCompleted",
    ]
    assert events[1]["data"]["activeSlot"] == "key2" and events[1]["data"]["accountName"] == engine.names[0]
    engine.assert_no_key_values_in([json.dumps(events)])
