"""Engine integration harness: the real adapters (real SDK clients) against the emulator and Azurite,
wrapped only to count calls, record the keys the service hands out, and inject crashes."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import EmulatorProcess
from rotation.model import (
    HistoryRecord,
    Policy,
    SecretValue,
    Slot,
    Target,
    TargetState,
    VersionedState,
)
from rotation.ports import (
    AccountInfo,
    AccountKeys,
    HistoryStore,
    KeyService,
    Ports,
    SecretStore,
    SecretVersion,
    StateStore,
    StoredSecret,
)
from rotation.service import RotationService
from rotation.views import to_json
from shared.azure.cognitive_services import CognitiveServicesKeys
from shared.bootstrap import build_credential, build_ports
from shared.budgets import TokenBucketLimiter
from shared.settings import Settings, load_settings

SUB = "11111111-2222-3333-4444-555555555555"


def resource_id(name: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg-engine/providers/Microsoft.CognitiveServices/accounts/{name}"
    )


class SimulatedCrash(BaseException):  # a process dying, not an error it handles
    """The invocation died right after a real call reached Azure (the call's effect stays)."""


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **kwargs: float) -> None:
        with self._lock:
            self.now += timedelta(**kwargs)


@dataclass
class Recorder:
    """Counts calls per port method; crashes after the Nth side effect; remembers every key value seen."""

    counts: dict[str, int] = field(default_factory=dict)
    side_effects: int = 0
    crash_after: int | None = None
    key_values: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def side_effect_done(self, name: str) -> None:
        with self.lock:
            self.side_effects += 1
            crash = self.crash_after is not None and self.side_effects == self.crash_after
            if crash:
                self.crash_after = None
        if crash:
            raise SimulatedCrash(f"crash after side effect {self.side_effects} ({name})")


class RecordingSecrets(SecretStore):
    def __init__(self, inner: SecretStore, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def get_secret(self, name: str) -> StoredSecret | None:
        self.recorder.count("keyvault.get_secret")
        secret = self.inner.get_secret(name)
        if secret is not None and not name.endswith("-active-key"):  # the pointer holds a slot name
            self.recorder.key_values.add(secret.value.reveal())
        return secret

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        self.recorder.count("keyvault.set_secret")
        version = self.inner.set_secret(name, value, tags, expires_on)
        self.recorder.side_effect_done(f"set_secret {name}")
        return version

    def recover_secret(self, name: str) -> None:
        self.recorder.count("keyvault.recover_deleted_secret")
        self.inner.recover_secret(name)

    def list_versions(self, name: str) -> list[SecretVersion]:
        self.recorder.count("keyvault.list_secret_versions")
        return self.inner.list_versions(name)


class RecordingKeys(KeyService):
    def __init__(self, inner: KeyService, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def get_account(self, resource_id: str) -> AccountInfo:
        self.recorder.count("arm.get_account")
        return self.inner.get_account(resource_id)

    def list_keys(self, resource_id: str) -> AccountKeys:
        self.recorder.count("arm.list_keys")
        keys = self.inner.list_keys(resource_id)
        self.recorder.key_values.update({keys.key1.reveal(), keys.key2.reveal()})
        return keys

    def regenerate_key(self, resource_id: str, slot: Slot) -> None:
        self.recorder.count("arm.regenerate_key")
        self.inner.regenerate_key(resource_id, slot)
        self.recorder.side_effect_done(f"regenerate {slot.value}")


class RecordingStates(StateStore):
    def __init__(self, inner: StateStore, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def get(self, target_key: str) -> VersionedState | None:
        self.recorder.count("table.state_get")
        return self.inner.get(target_key)

    def create(self, target_key: str, state: TargetState) -> VersionedState:
        self.recorder.count("table.state_write")
        created = self.inner.create(target_key, state)
        self.recorder.side_effect_done("state create")
        return created

    def replace(self, target_key: str, state: TargetState, etag: str) -> VersionedState:
        self.recorder.count("table.state_write")
        written = self.inner.replace(target_key, state, etag)
        self.recorder.side_effect_done(f"state {state.phase.value}")
        return written

    def list_all(self) -> Iterator[tuple[str, VersionedState]]:
        self.recorder.count("table.state_list")
        return self.inner.list_all()


class RecordingHistory(HistoryStore):
    def __init__(self, inner: HistoryStore, recorder: Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def append(self, target_key: str, record: HistoryRecord) -> None:
        self.recorder.count("table.history_append")
        self.inner.append(target_key, record)

    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        return self.inner.list(target_key, limit)


@dataclass
class Engine:
    emulator: EmulatorProcess
    settings: Settings
    service: RotationService
    recorder: Recorder
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
        self.recorder.key_values.update({keys.key1.reveal(), keys.key2.reveal()})
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
        values = {v for v in self.recorder.key_values if v}
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
    wrap: Callable[[Ports, Recorder], Ports] | None = None,
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
        settings.arm_writes_per_second, settings.arm_write_burst, clock=lambda: clock().timestamp()
    )
    assert isinstance(raw.keys, CognitiveServicesKeys)
    raw.keys.limiter = limiter
    raw.limiter = limiter
    recorder = Recorder()
    ports = Ports(
        secrets=RecordingSecrets(raw.secrets, recorder),
        keys=RecordingKeys(raw.keys, recorder),
        probe=raw.probe,
        states=RecordingStates(raw.states, recorder),
        history=RecordingHistory(raw.history, recorder),
        lifecycle=raw.lifecycle,
        limiter=raw.limiter,
    )
    if wrap is not None:
        ports = wrap(ports, recorder)
    service = RotationService(
        settings.targets,
        ports,
        policy or Policy(verify_retry_interval=timedelta(seconds=1)),
        clock=clock,
        concurrency=settings.sweep_concurrency,
        vault_url=settings.key_vault_url,
    )
    return Engine(emulator, settings, service, recorder, clock, names, raw)
