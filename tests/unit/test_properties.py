"""Property-based: random interleavings of timer sweeps, admin/event requests (forced, emergency), crashes
after any side effect, slow key propagation and time passing, against the fakes. I1-I4 (and I5 for the
state/history) are checked after every step; the fakes record I2/I4 violations at each regenerate."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.model import Phase, Policy
from testkit.watch import SimulatedCrash
from tests.unit.rig import make_rig

OPERATIONS = st.one_of(
    st.tuples(st.just("sweep"), st.none()),
    st.tuples(st.just("advance"), st.integers(0, 1)),
    st.tuples(st.just("request"), st.sampled_from(["plain", "force", "emergency"])),
    st.tuples(st.just("time"), st.sampled_from([1, 20, 90, 400, 3_600, 7 * 3_600, 2 * 86_400, 31 * 86_400])),
    st.tuples(st.just("crash"), st.integers(1, 6)),
    st.tuples(st.just("crash_on"), st.just("history.append_all")),  # between a flush and its state write
    st.tuples(st.just("propagation"), st.integers(0, 3)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, min_size=1, max_size=40))
def test_invariants_hold_under_any_interleaving(operations: list[tuple[str, object]]) -> None:
    policy = Policy(
        verify_timeout=timedelta(minutes=5),
        verify_retry_interval=timedelta(seconds=15),
        emergency_drain_time=timedelta(0),
    )
    rig = make_rig(names=("acc1", "acc2"), drain=timedelta(hours=6), policy=policy)
    for op, arg in operations:
        try:
            if op == "sweep":
                rig.service.sweep()
            elif op == "advance":
                rig.service.advance_target(rig.targets[int(arg)].resource_id)  # type: ignore[call-overload]
            elif op == "request":
                rig.service.request_rotation(
                    "acc1", trigger="admin", force=arg == "force", emergency=arg == "emergency"
                )
            elif op == "time":
                rig.clock.advance(seconds=int(arg))  # type: ignore[call-overload]
            elif op == "crash":
                rig.crasher.side_effects = 0
                rig.crasher.crash_after = int(arg)  # type: ignore[call-overload]
            elif op == "crash_on":
                rig.crasher.crash_on = str(arg)
            elif op == "propagation":
                rig.world.propagation_probes = int(arg)  # type: ignore[call-overload]
        except SimulatedCrash:
            pass
        rig.check_invariants()
        for target in rig.targets:  # I4: one state entity per target, never two cycles at once
            state = rig.states.rows.get(target.state_key)
            if state is not None and state[0].phase.in_cycle:
                assert state[0].cycle_id is not None
    # Liveness: with no more crashes and time passing, every target comes to rest.
    rig.crasher.crash_after = rig.crasher.crash_on = None
    rig.world.propagation_probes = 0
    for _ in range(10):
        rig.clock.advance(hours=7)
        rig.service.sweep()
        rig.check_invariants()
    for index in range(len(rig.targets)):
        state = rig.state(index)
        assert state is not None and state.lease_owner is None
        assert state.phase in (Phase.IDLE, Phase.DRAINING), state
    # History: no row written twice, none both carried and in the table at rest. (Request rows are written
    # one per request: the same request refused twice at one instant of this clock is two equal rows.)
    for target in rig.targets:
        stored = [r for r in rig.history.rows.get(target.state_key, []) if r.step != "request"]
        assert [r for r, n in Counter(stored).items() if n > 1] == []
        carried = rig.states.rows[target.state_key][0].history_carried
        assert not set(carried) & set(stored)
    values = rig.world.all_key_values()
    texts = [repr(row[0]) for row in rig.states.rows.values()]
    texts += [repr(r) for rows in rig.history.rows.values() for r in rows]
    assert not any(v in t for v in values for t in texts)


@given(st.lists(st.sampled_from(list(Phase))), st.integers(0, 9), st.text(max_size=8), st.booleans())
def test_with_changes_is_dataclasses_replace(
    phases: list[Phase], attempts: int, text: str, emergency: bool
) -> None:
    """TargetState.with_changes copies without running __init__ (it is hot): it must give exactly what
    dataclasses.replace gives, leave the original alone, and refuse a field the state does not have."""
    import dataclasses

    import pytest

    from rotation.model import TargetState

    state = TargetState("t", Phase.IDLE, attempts=1, history_carried=())
    for phase in phases or [Phase.DRAINING]:
        changes = {"phase": phase, "attempts": attempts, "last_error": text or None, "emergency": emergency}
        changed = state.with_changes(**changes)
        assert changed == dataclasses.replace(state, **changes) and type(changed) is TargetState
        assert hash(changed) == hash(dataclasses.replace(state, **changes))
        assert (state.phase, state.attempts) == (Phase.IDLE, 1)  # the original is untouched
        with pytest.raises(dataclasses.FrozenInstanceError):
            changed.phase = Phase.IDLE  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field not_a_field"):
        state.with_changes(not_a_field=1)
