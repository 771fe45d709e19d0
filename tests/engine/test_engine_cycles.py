"""The engine with the real SDK clients against the emulator and Azurite: cycles, crashes, races, faults,
verification, drift, keyless, events, I5."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest

from rotation.model import Phase, Policy, Slot
from rotation.outcomes import RequestStatus
from testkit.watch import SimulatedCrash
from tests.engine.harness import make_engine


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
    engine.port_calls.clear()
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
    tables = dict(engine.port_calls.counts)
    print("EMULATOR_CALLS", json.dumps(calls, sort_keys=True))
    print("PORT_CALLS", json.dumps(tables, sort_keys=True))
    # The figures recorded in docs/ENGINE.md ("Calls per cycle"); service_keys()/check_i1_i3 add reads
    # that are not the engine's, so only the engine's own port calls are compared exactly.
    assert tables["arm.regenerate_key"] == 2
    assert tables.get("arm.list_keys", 0) == 0  # each regenerateKey's answer carries both keys
    assert tables.get("arm.get_account", 0) == 0  # endpoint and kind are kept in the state
    assert tables["keyvault.set_secret"] == 4  # new slot, P-active, pointer, old slot
    # 2 I2 guards each reading the pointer and P-active, 1 I3 check; no "already done?" read when this
    # invocation wrote the intent; no version listing (only after a write the service did not make)
    assert tables["keyvault.get_secret"] == 5
    assert tables.get("keyvault.list_secret_versions", 0) == 0
    assert tables["table.state_write"] == 4
    assert tables["table.state_list"] == 2 and tables.get("table.state_get", 0) == 0
    # history: one entity per cycle, written by phase 2 (phase 1's rows rode in its DRAINING write)
    assert tables["table.history_append"] == 1 and tables.get("table.history_query", 0) == 0
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
    engine.crasher.side_effects = 0
    engine.crasher.crash_after = crash_after
    with caplog.at_level(logging.INFO, logger="rotation"), pytest.raises(SimulatedCrash) as crashed:
        engine.service.request_rotation(engine.names[0], trigger="cli", emergency=True, reason="crash test")
    engine.check_i1_i3()
    _complete(engine)
    state = engine.state()
    assert state.phase is Phase.IDLE and state.cycles_completed == 1 and state.lease_owner is None
    after = engine.service_keys()
    assert after[Slot.KEY1] != before[Slot.KEY1] and after[Slot.KEY2] != before[Slot.KEY2]
    assert engine.port_calls.counts["arm.regenerate_key"] <= 3  # at most one repeat, of an unused slot
    engine.check_i1_i3()
    engine.assert_no_key_values_in(
        [str(crashed.value)] + [r.getMessage() for r in caplog.records] + engine.state_and_history_texts()
    )


def test_history_rows_ride_in_the_state_until_the_cycle_ends_and_a_replayed_flush_duplicates_none(
    emulator, azurite, monkeypatch
) -> None:
    engine = make_engine(emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    target = engine.target()
    engine.service.sweep()
    engine.clock.advance(days=30)
    engine.service.sweep()  # phase 1: regenerate, verify, swap
    assert [r.step for r in engine.raw_ports.history.list(target.state_key, 100)] == ["adopt"]
    phase_one = ["verify_and_swap", "regenerate_new", "cycle"]
    assert [r.step for r in engine.service.history(engine.names[0])][:3] == phase_one  # the view has them
    engine.clock.advance(hours=1)
    engine.crasher.crash_on = "history.append_all"  # the worker dies between the flush and its state write
    with pytest.raises(SimulatedCrash):
        engine.service.runner.advance(target, "timer")
    state = engine.state()
    assert state is not None and state.phase is Phase.RETIRING and len(state.history_carried) == 3
    assert len(engine.service.history(engine.names[0], 100)) == 5  # adopt, 3 carried + stored, retire
    engine.clock.advance(minutes=11)  # its lease expires; the next sweep finishes the cycle
    engine.service.sweep()
    state = engine.state()
    assert state is not None and state.phase is Phase.IDLE and state.history_carried == ()
    rows = engine.raw_ports.history.list(target.state_key, 100)
    assert len(rows) == len(set(rows))  # no row written twice
    assert sorted(r.step for r in rows if r.step in phase_one) == sorted(phase_one)
    engine.check_i1_i3()


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
        if operation == "arm.list_keys":
            # a cycle lists the keys only after azure-core sent a regenerateKey twice (its answer may be
            # stale): the listing that must survive the fault is that one
            emulator.control.add_fault("arm.regenerate_key", status=503, when="after", count=1)
        emulator.control.add_fault(operation, count=4, **fault)
        engine.clock.advance(days=30)
        engine.service.sweep()
        left = {f["operation"]: f["count"] for f in emulator.control.faults()}
        assert left.get(operation, 0) < 4, f"the cycle never met the {operation} fault"
    finally:
        emulator.control.clear_faults()
    engine.check_i1_i3()
    for _ in range(8):
        engine.clock.advance(minutes=10)
        engine.service.sweep()
        engine.check_i1_i3()
    state = engine.state()
    assert state.phase is Phase.IDLE and state.cycles_completed == 1, state


def test_a_regenerate_retried_by_azure_core_stores_the_key_the_service_kept(
    fresh_emulator, azurite, monkeypatch
) -> None:
    """The first POST regenerated the key and its answer was lost; azure-core sent it again. That answer
    may be an earlier POST's, so the step lists the keys and stores what the service has (I3)."""
    engine = make_engine(fresh_emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    engine.service.sweep()
    engine.port_calls.clear()
    fresh_emulator.control.reset_calls()
    fresh_emulator.control.add_fault("arm.regenerate_key", status=503, when="after", count=1)
    engine.clock.advance(days=30)
    assert engine.service.sweep().advanced == 1 and engine.state().phase is Phase.DRAINING
    assert fresh_emulator.control.calls()["arm.regenerate_key"] == 2  # one step, the POST sent twice
    assert engine.port_calls.counts["arm.regenerate_key"] == 1
    assert engine.port_calls.counts["arm.list_keys"] == 1
    engine.check_i1_i3()
    assert engine.secret(engine.target().slot_secret(Slot.KEY2)) == engine.service_keys()[Slot.KEY2]


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
    assert engine.port_calls.counts["arm.regenerate_key"] == 1


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


# ----------------------------------------------------------------- issue 10: every reader's invariants


def _p_active_accepted(engine, value: str) -> int:
    """What the data plane answers a consumer that read only P-active and calls with that key."""
    import requests

    url = engine.emulator.dataplane_url(engine.names[0]) + "openai/models?api-version=2024-10-21"
    answer = requests.get(url, headers={"api-key": value}, verify=engine.emulator.ca_bundle, timeout=10)
    return answer.status_code


def _assert_readers_agree(engine) -> None:
    """At rest the pointer and P-active name the same slot, and P-active holds that slot's live key (I1)."""
    target = engine.target()
    raw = engine.raw_ports.secrets
    pointer = raw.get_secret(target.pointer_secret)
    active = raw.get_secret(target.active_secret)
    assert pointer is not None and active is not None
    assert active.tags.get("slot") == pointer.value.reveal(), "P-active and the pointer disagree"
    assert active.value.reveal() == engine.service_keys()[Slot(pointer.value.reveal())]


def test_a_failed_pointer_write_rolls_the_swap_forward_never_regenerating_what_p_active_holds(
    fresh_emulator, azurite, monkeypatch
) -> None:
    """The adversarial finding (reproduced 3 times on the old code): P-active written, the pointer write
    answered 503, the probe then inconclusive past VERIFY_TIMEOUT — the cycle was abandoned with P-active on
    the new slot and the pointer on the old, and the next cycle regenerated the key P-active readers held."""
    policy = Policy(verify_timeout=timedelta(minutes=10), verify_retry_interval=timedelta(seconds=20))
    engine = make_engine(fresh_emulator, azurite, monkeypatch, policy=policy,
                         target_options={"drainTime": "PT1H"})
    engine.service.sweep()
    target = engine.target()
    fresh_emulator.control.add_fault("keyvault.set_secret", status=503, count=8,
                                     path_suffix=f"/secrets/{target.pointer_secret}")
    engine.service.request_rotation(engine.names[0], force=True)
    fresh_emulator.control.clear_faults()
    assert engine.state().phase is Phase.VERIFYING
    assert engine.secret(target.pointer_secret) == "key1"
    held = engine.secret(target.active_secret)  # what a plain P-active reader got just now
    assert held == engine.service_keys()[Slot.KEY2]
    # Every probe from now on is inconclusive (data plane 503), past VERIFY_TIMEOUT, over two sweeps.
    fresh_emulator.control.add_fault("dataplane.request", status=503, count=100)
    for _ in range(2):
        engine.clock.advance(minutes=15)
        engine.service.sweep()
    fresh_emulator.control.clear_faults()
    state = engine.state()
    assert state.phase is Phase.DRAINING and state.active_slot is Slot.KEY2, state
    _assert_readers_agree(engine)
    # A forced request and the sweeps after it: the slot P-active readers hold is never regenerated while
    # they may use it.
    engine.service.request_rotation(engine.names[0], force=True)
    engine.service.sweep()
    assert _p_active_accepted(engine, held) == 200
    engine.clock.advance(hours=1, minutes=1)
    engine.service.sweep()
    assert engine.state().phase is Phase.IDLE
    assert _p_active_accepted(engine, held) == 200  # key2 stays: key1 (the old slot) was retired
    _assert_readers_agree(engine)
    engine.check_i1_i3()


@pytest.mark.parametrize("tamper", ["moved", "deleted"])
def test_a_pointer_moved_or_deleted_by_hand_is_reconciled_and_rotation_resumes(
    fresh_emulator, azurite, monkeypatch, caplog, tamper: str
) -> None:
    """The adversarial finding: a due target whose pointer was moved by hand was refused by the I2 guard
    forever (decide() started a cycle before any drift check; the backoff grew to 6 h)."""
    engine = make_engine(fresh_emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    engine.service.sweep()
    target = engine.target()
    with fresh_emulator.secret_client() as vault:
        if tamper == "moved":
            vault.set_secret(target.pointer_secret, "key2")
        else:
            vault.begin_delete_secret(target.pointer_secret).wait()
    engine.clock.advance(days=30)
    with caplog.at_level(logging.INFO, logger="rotation"):
        for _ in range(6):
            engine.service.sweep()
            engine.clock.advance(minutes=31)
    state = engine.state()
    assert state.cycles_completed == 1, state
    assert state.phase is Phase.IDLE and state.attempts == 0, state
    refused = [r for r in engine.service.history(engine.names[0], 50) if "refusing" in (r.error or "")]
    assert len(refused) <= 1  # at most the first refusal, then a drift check, never a loop
    assert any(r.step == "check_drift" for r in engine.service.history(engine.names[0], 50))
    _assert_readers_agree(engine)
    engine.check_i1_i3()


def test_a_hand_edit_of_the_pointer_back_and_forth_protects_the_slot_it_named(
    fresh_emulator, azurite, monkeypatch
) -> None:
    """The pointer named key2 for a moment and then key1 again: a reader may hold key2, so key2 is not
    regenerated before a drain time after the hand edit (seen in the pointer's version history)."""
    engine = make_engine(fresh_emulator, azurite, monkeypatch, target_options={"drainTime": "PT2H"})
    engine.service.sweep()
    target = engine.target()
    key2 = engine.service_keys()[Slot.KEY2]
    with fresh_emulator.secret_client() as vault:
        vault.set_secret(target.pointer_secret, "key2")
        vault.set_secret(target.pointer_secret, "key1")
    engine.service.request_rotation(engine.names[0], force=True)  # the I2 guard refuses: cycle abandoned
    assert engine.state().phase is Phase.IDLE and "named outside the service" in engine.state().last_error
    engine.clock.advance(minutes=5)
    engine.service.sweep()  # the drift check the refusal asked for records the protection
    protected = engine.state().inactive_protected_until
    assert protected is not None and protected > engine.clock()
    refused = engine.service.request_rotation(engine.names[0], force=True)
    assert refused.status is RequestStatus.REFUSED and "may still be in use" in refused.message
    assert engine.service_keys()[Slot.KEY2] == key2  # never regenerated
    engine.clock.advance(hours=3)
    engine.service.request_rotation(engine.names[0], force=True)
    assert engine.state().phase is Phase.DRAINING
    _assert_readers_agree(engine)


def test_an_unexpected_error_records_the_error_and_releases_the_lease_at_once(
    fresh_emulator, azurite, monkeypatch
) -> None:
    """E.g. OSError from a CA file that no longer exists: the next sweep must not find the target busy."""
    from rotation.ports import Ports

    class BrokenProbe:
        def probe(self, endpoint, kind, key):  # type: ignore[no-untyped-def]
            raise OSError("Could not find a suitable TLS CA certificate bundle, invalid path: /gone/ca.pem")

    def wrap(ports: Ports) -> Ports:
        return Ports(ports.secrets, ports.keys, BrokenProbe(), ports.states, ports.history,  # type: ignore[arg-type]
                     ports.lifecycle, ports.limiter)

    engine = make_engine(fresh_emulator, azurite, monkeypatch, wrap=wrap)
    engine.service.sweep()
    result = engine.service.request_rotation(engine.names[0], force=True)
    assert result.status is RequestStatus.STARTED
    state = engine.state()
    assert state.lease_owner is None and state.lease_expires_at is None
    assert state.last_error is not None
    assert "OSError" in state.last_error and "/gone/ca.pem" in state.last_error
    status = engine.service.status(engine.names[0])[0]
    assert not status.lease_held and "OSError" in (status.last_error or "")
    rows = engine.service.history(engine.names[0])
    assert any(r.outcome == "failed" and "UnexpectedError" in (r.error or "") for r in rows)
