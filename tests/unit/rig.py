"""The unit rig: the engine's service over the in-memory fakes (testkit.fakes), watched by
``testkit.watch`` to count calls and to crash after the Nth side effect, plus invariant checks (I1-I4)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from rotation.errors import TransientAzureError
from rotation.model import HistoryRecord, Policy, Slot, Target, TargetState, VerifyMode
from rotation.ports import Ports, UnlimitedWrites, WriteRateLimiter
from rotation.service import RotationService
from testkit.clock import ManualClock
from testkit.fakes import (
    T0,
    FakeHistory,
    FakeKeys,
    FakeLifecycle,
    FakeProbe,
    FakeSecrets,
    FakeStateStore,
    World,
    rid,
)
from testkit.watch import CallCounter, Crasher, watch


@dataclass
class Rig:
    world: World
    clock: ManualClock
    secrets: FakeSecrets
    keys: FakeKeys
    probe: FakeProbe
    states: FakeStateStore
    history: FakeHistory
    lifecycle: FakeLifecycle
    service: RotationService
    targets: list[Target]
    calls: CallCounter  # every port call the service made, by operation ("states.replace")
    crasher: Crasher  # side effects the service made; ``crash_after`` arms a SimulatedCrash

    def target(self, index: int = 0) -> Target:
        return self.targets[index]

    def history_rows(self, index: int = 0) -> list[HistoryRecord]:
        """A target's history as the service shows it: the history table's rows and those the state
        entity still carries (a cycle's rows reach the table when it ends), newest first."""
        return self.service.history(self.targets[index], limit=1000)

    def state(self, index: int = 0) -> TargetState | None:
        row = self.states.rows.get(self.targets[index].state_key)
        return row[0] if row else None

    def check_invariants(self) -> None:
        """I1 (pointer names an accepted stored value, and so does P-active), I3 (IDLE ⇒ slots = listKeys),
        plus every violation the fakes recorded (I2, I4)."""
        assert not self.world.violations, self.world.violations
        for target in self.targets:
            account = self.world.account(target.resource_id)
            pointer = self.world.secret_value(target.pointer_secret)
            if pointer is None:
                continue
            slot = Slot(pointer)
            stored = self.world.secret_value(target.slot_secret(slot))
            assert stored == account.keys[slot], f"I1: pointer names {slot}, whose stored value is dead"
            active = self.world.secret_value(target.active_secret)
            assert active in account.keys.values(), "I1: P-active holds a dead key"
            state = self.state(self.targets.index(target))
            if state is not None and state.phase.value == "idle" and state.lease_owner is None:
                for s in Slot:
                    assert self.world.secret_value(target.slot_secret(s)) == account.keys[s], (
                        f"I3: {s} differs"
                    )


def make_rig(
    names: Iterable[str] = ("acc1",),
    period: timedelta = timedelta(days=30),
    drain: timedelta = timedelta(hours=24),
    policy: Policy | None = None,
    verify: str = "dataplane",
    concurrency: int = 4,
    limiter: WriteRateLimiter | None = None,
) -> Rig:
    clock = ManualClock(T0)
    world = World(clock)
    targets = []
    for name in names:
        world.add_account(name)
        target = Target(rid(name), name, period, drain, VerifyMode(verify))
        targets.append(target)
        world.targets[target.resource_id.lower()] = target
    secrets_ = FakeSecrets(world)
    keys = FakeKeys(world)
    probe = FakeProbe(world)
    states = FakeStateStore(world)
    history = FakeHistory()
    lifecycle = FakeLifecycle()
    calls, crasher = CallCounter(), Crasher()
    ports = watch(
        Ports(secrets_, keys, probe, states, history, lifecycle, limiter or UnlimitedWrites()), calls, crasher
    )
    service = RotationService(
        targets,
        ports,
        policy or Policy(),
        clock=clock,
        concurrency=concurrency,
        vault_url="https://kv.vault.azure.net/",
    )
    return Rig(
        world, clock, secrets_, keys, probe, states, history, lifecycle, service, targets, calls, crasher
    )


def transient(operation: str) -> TransientAzureError:
    return TransientAzureError(f"{operation}: HTTP 503", None)
