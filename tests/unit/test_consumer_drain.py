"""The acknowledged drain on the fakes (issue 14): decisions, refresh, hold, release, emergency."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rotation.consumers import Consumer, ConsumerKind, plan_drain
from rotation.decision import Action, decide
from rotation.errors import TransientAzureError
from rotation.model import Phase, Policy, Slot, Target, TargetState
from rotation.outcomes import RequestStatus
from rotation.ports import Ports, UnlimitedWrites
from rotation.service import RotationService
from testkit.clock import ManualClock
from testkit.fakes import (
    T0,
    FakeConsumerPlatforms,
    FakeHistory,
    FakeKeys,
    FakeLifecycle,
    FakeProbe,
    FakeSecrets,
    FakeStateStore,
    World,
    rid,
)

SITE = Consumer(
    ConsumerKind.APP_SERVICE, "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/app-a"
)
APIM = Consumer(
    ConsumerKind.API_MANAGEMENT,
    "/subscriptions/s/resourceGroups/r/providers/Microsoft.ApiManagement/service/apim-x/namedValues/openai-key",
)
LIBRARY = Consumer(ConsumerKind.LIBRARY, refresh_bound=timedelta(hours=2))


class Setup:
    def __init__(self, *consumers: Consumer, stuck: bool = False) -> None:
        self.clock = ManualClock(T0)
        self.world = World(self.clock)
        self.world.add_account("acc")
        plan = plan_drain(consumers, None)
        self.target = Target(rid("acc"), "acc", timedelta(days=30), plan.time, consumers=consumers,
                             drain_reason=plan.reason)  # fmt: skip
        self.world.targets[self.target.resource_id.lower()] = self.target
        self.platforms = FakeConsumerPlatforms(self.world)
        self.history = FakeHistory()
        ports = Ports(
            FakeSecrets(self.world), FakeKeys(self.world), FakeProbe(self.world), FakeStateStore(self.world),
            self.history, FakeLifecycle(), UnlimitedWrites(), consumers=self.platforms,
        )  # fmt: skip
        self.service = RotationService([self.target], ports, Policy(), clock=self.clock)
        self.service.sweep()  # adoption writes P-active
        for consumer in consumers:
            if consumer.has_signal:
                self.platforms.add(consumer.resource_id, self.target.active_secret)
                if stuck:
                    self.platforms.stuck.add(consumer.resource_id.lower())

    def rotate(self, **kwargs: object) -> None:
        self.service.request_rotation(self.target, trigger="cli", reason="test", force=True, **kwargs)  # type: ignore[arg-type]

    def state(self) -> TargetState:
        current = self.service.ports.states.get(self.target.state_key)
        assert current is not None
        return current.state

    def old_slot_regenerated(self) -> int:
        return sum(1 for _, slot in self.world.regenerations if slot is Slot.KEY1)

    def notes(self) -> list[str]:
        # the history view: the history table's rows and those the state carries until the cycle ends
        return [f"{r.step}:{r.outcome}:{r.reason}" for r in self.service.history(self.target, 200)]


def test_a_signal_consumer_gates_the_drain_even_after_its_bound() -> None:
    state = TargetState(rid("acc"), Phase.DRAINING, Slot.KEY2, swapped_at=T0, drain_seconds=90000.0,
                        drain_until=T0 + timedelta(hours=25))  # fmt: skip
    target = Target(rid("acc"), "acc", drain_time=timedelta(hours=25), consumers=(SITE,))
    late = T0 + timedelta(hours=30)
    assert decide(state, target, late, Policy(), "me").action is Action.CHECK_CONSUMERS
    waiting = state.with_changes(consumers_check_at=late + timedelta(minutes=15))
    assert decide(waiting, target, late, Policy(), "me").action is Action.WAIT
    for lifted in ({"drain_released_by": "ops"}, {"emergency": True}, {"drain_ended_by": "acknowledged"}):
        assert (
            decide(state.with_changes(**lifted), target, late, Policy(), "me").action is Action.BEGIN_RETIRE
        )
    no_signal = Target(rid("acc"), "acc", drain_time=timedelta(hours=2, minutes=10), consumers=(LIBRARY,))
    assert decide(state, no_signal, late, Policy(), "me").action is Action.BEGIN_RETIRE


def test_an_api_management_named_value_acknowledges_by_fetching_after_the_swap() -> None:
    setup = Setup(APIM)
    setup.clock.advance(seconds=5)
    setup.rotate()
    state = setup.state()
    assert state.phase is Phase.IDLE and state.drain_ended_by == "acknowledged"
    assert setup.platforms.refreshes == [APIM.resource_id]
    assert any(n.endswith("drain ended by acknowledged") for n in setup.notes())


def test_consumers_without_a_signal_still_get_their_bound() -> None:
    setup = Setup(SITE, LIBRARY)
    assert setup.target.drain_time == timedelta(hours=25)
    setup.rotate()
    state = setup.state()
    assert state.phase is Phase.DRAINING and state.drain_ended_by == "acknowledged"
    assert state.drain_until == state.swapped_at + timedelta(hours=2, minutes=10)  # not 25 h
    setup.clock.advance(hours=2, minutes=9)
    setup.service.sweep()
    assert setup.state().phase is Phase.DRAINING and setup.old_slot_regenerated() == 0
    setup.clock.advance(minutes=2)
    setup.service.sweep()
    assert setup.state().phase is Phase.IDLE and setup.old_slot_regenerated() == 1


def test_a_failed_refresh_is_recorded_and_sent_again_by_the_next_check() -> None:
    setup = Setup(SITE)
    setup.world.faults["consumers.refresh"] = [TransientAzureError("web.refresh_kv_references: HTTP 503")]
    setup.rotate()
    assert setup.state().phase is Phase.DRAINING and setup.platforms.refreshes == []
    assert any(n.startswith("refresh_consumer:failed:App Service app app-a") for n in setup.notes())
    setup.clock.advance(minutes=1)
    setup.service.sweep()
    assert setup.platforms.refreshes == [SITE.resource_id]
    assert setup.state().phase is Phase.IDLE and setup.state().drain_ended_by == "acknowledged"


def test_an_emergency_request_ends_a_held_drain() -> None:
    setup = Setup(SITE, stuck=True)
    setup.rotate()
    setup.clock.advance(hours=26)
    setup.service.sweep()
    assert setup.state().drain_held_since is not None and setup.old_slot_regenerated() == 0
    setup.rotate(emergency=True)
    assert setup.state().phase is Phase.IDLE and setup.state().drain_ended_by == "emergency"
    assert setup.old_slot_regenerated() == 1


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(min_value=1, max_value=20 * 60), min_size=3, max_size=12),
       release_at=st.integers(min_value=0, max_value=11))  # fmt: skip
def test_the_old_key_is_never_regenerated_while_the_consumer_holds_it_unless_released(
    steps: list[int], release_at: int
) -> None:
    """Sweeps at random intervals (minutes) around and past the bound; the stuck site holds the old key."""
    setup = Setup(SITE, stuck=True)
    setup.rotate()
    released = False
    for index, minutes in enumerate(steps):
        setup.clock.advance(minutes=minutes)
        setup.service.sweep()
        if not released:
            assert setup.old_slot_regenerated() == 0, (
                "the old key was regenerated under a consumer holding it"
            )
            assert setup.state().consumers_waiting
        if index == release_at:
            outcome = setup.service.release_drain(setup.target, requester="ops", reason="test release")
            released = outcome.status is RequestStatus.RELEASED
    assert not setup.world.violations
