"""Engine integration harness: the real adapters (real SDK clients) against the emulator and Azurite,
watched (testkit.watch) only to count calls, record the keys the service hands out, and inject crashes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.model import Policy, Slot, Target, TargetState
from rotation.ports import Ports
from rotation.service import RotationService
from rotation.views import to_json
from shared.azure.cognitive_services import CognitiveServicesKeys
from shared.bootstrap import build_credential, build_ports
from shared.budgets import TokenBucketLimiter
from shared.settings import Settings, load_settings
from testkit.clock import ManualClock
from testkit.watch import AZURE_OPERATIONS, CallCounter, Crasher, KeyValueRecorder, watch

SUB = "11111111-2222-3333-4444-555555555555"


def resource_id(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg-engine/providers/Microsoft.CognitiveServices/accounts/{name}"
    )


@dataclass
class Engine:
    emulator: EmulatorProcess
    settings: Settings
    service: RotationService
    port_calls: CallCounter  # the engine's port calls, by Azure operation (AZURE_OPERATIONS)
    crasher: Crasher  # side effects the engine made; ``crash_after`` arms a SimulatedCrash
    key_values: set[str]  # every key value the engine (or this harness) read, for I5 checks
    clock: ManualClock
    names: list[str]
    raw_ports: Ports

    def target(self, index: int = 0) -> Target:
        return self.settings.targets[index]

    def secret(self, name: str) -> str | None:
        stored = self.raw_ports.secrets.get_secret(name)
        return stored.value.reveal() if stored else None

    def service_keys(self, index: int = 0) -> dict[Slot, str]:
        keys = self.raw_ports.keys.list_keys(self.target(index).resource_id)
        self.key_values.update({keys.key1.reveal(), keys.key2.reveal()})
        return {Slot.KEY1: keys.key1.reveal(), Slot.KEY2: keys.key2.reveal()}

    def state(self, index: int = 0) -> TargetState | None:
        current = self.raw_ports.states.get(self.target(index).state_key)
        return current.state if current else None

    def calls(self) -> dict[str, int]:
        return self.emulator.control.calls()

    def check_i1_i3(self, index: int = 0) -> None:
        """I1: the pointer names a slot whose stored value the service accepts (and P-active holds a live
        key). I3: at rest (IDLE, no lease) both slot secrets equal listKeys."""
        target = self.target(index)
        keys = self.service_keys(index)
        pointer = self.secret(target.pointer_secret)
        assert pointer in ("key1", "key2"), pointer
        assert self.secret(target.slot_secret(Slot(pointer))) == keys[Slot(pointer)], "I1 violated"
        assert self.secret(target.active_secret) in keys.values(), "I1 violated: P-active is dead"
        state = self.state(index)
        if state is not None and state.phase.value == "idle" and state.lease_owner is None:
            for slot in Slot:
                assert self.secret(target.slot_secret(slot)) == keys[slot], f"I3 violated for {slot}"

    def assert_no_key_values_in(self, texts: Iterable[str]) -> None:
        """I5: no key value the service ever issued during the test appears in any of ``texts``."""
        values = {v for v in self.key_values if v}
        assert values, "no key values were recorded: the I5 check would be vacuous"
        for text in texts:
            for value in values:
                assert value not in text, "a key value leaked"

    def state_and_history_texts(self) -> list[str]:
        texts = []
        for _, current in self.raw_ports.states.list_all():
            texts.append(repr(current.state))
        for target in self.settings.targets:
            texts.extend(json.dumps(to_json(r)) for r in self.raw_ports.history.list(target.state_key, 500))
        return texts


def make_engine(
    emulator: EmulatorProcess,
    azurite: AzuriteProcess,
    monkeypatch: Any,
    count: int = 1,
    target_options: Mapping[str, Any] | None = None,
    policy: Policy | None = None,
    extra_settings: Mapping[str, str] | None = None,
    kind: str = "AIServices",
    wrap: Callable[[Ports], Ports] | None = None,
) -> Engine:
    names = ["eng" + uuid.uuid4().hex[:10] for _ in range(count)]
    for name in names:
        emulator.control.add_account(resource_id(name), kind=kind)
    emulator.apply_env(monkeypatch)
    suffix = uuid.uuid4().hex[:8]
    env = {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps(
            [{"resourceId": resource_id(n), **(target_options or {})} for n in names]
        ),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"state{suffix}",
        "ROTATION_HISTORY_TABLE": f"history{suffix}",
        **(extra_settings or {}),
    }
    settings = load_settings(env)
    raw = build_ports(settings, build_credential(settings))
    clock = ManualClock()
    # The ARM write budget runs on the test's clock too, so Retry-After penalties end when the test says.
    limiter = TokenBucketLimiter(
        settings.arm_writes_per_second, settings.arm_write_burst, clock=clock.timestamp
    )
    assert isinstance(raw.keys, CognitiveServicesKeys)
    raw.keys.limiter = limiter
    raw.limiter = limiter
    calls, crasher, key_values = CallCounter(AZURE_OPERATIONS), Crasher(), set[str]()
    seen = KeyValueRecorder(key_values.update, is_pointer=lambda name: name.endswith("-active-key"))
    ports = watch(raw, calls, seen, crasher)
    if wrap is not None:
        ports = wrap(ports)
    service = RotationService(
        settings.targets,
        ports,
        policy or Policy(verify_retry_interval=timedelta(seconds=1)),
        clock=clock,
        concurrency=settings.sweep_concurrency,
        vault_url=settings.key_vault_url,
    )
    return Engine(emulator, settings, service, calls, crasher, key_values, clock, names, raw)
