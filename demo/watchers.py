"""Independent observers that run while cycles do: each uses its own clients, never the engine's.

- ``PhaseWatcher`` polls the state table and records every phase change (the picture's bands) and, each
  time a cycle completes, checks I3: both slot secrets equal the service's keys (``listKeys``).
- ``PointerSampler`` checks I1 continuously: the slot the pointer names holds a value the data plane
  accepts, and so does ``P-active``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from rotation.model import Phase, Slot, Target

MODELS_PATH = "openai/models?api-version=2024-10-21"


@dataclass(frozen=True)
class PhaseChange:
    at: float
    target: str  # account name
    phase: str
    active_slot: str | None
    cycle_id: str | None
    trigger: str | None
    cycles_completed: int
    lease_held: bool


@dataclass
class InvariantLog:
    i1_samples: int = 0
    i1_violations: list[str] = field(default_factory=list)
    i3_checks: int = 0
    i3_violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Loop:
    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors: list[str] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as error:  # an observer's own failure is reported, never hidden
                self.errors.append(f"{type(error).__name__}: {error}"[:300])
            self._stop.wait(self.interval)

    def step(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


class PhaseWatcher(_Loop):
    def __init__(self, states: Any, targets: tuple[Target, ...], secret_client: Any, arm_client: Any,
                 log: InvariantLog, on_change: Callable[[PhaseChange], None] | None = None) -> None:
        super().__init__("phase-watcher", 0.1)
        self.states = states  # shared.azure.tables.TableStateStore on its own table client
        self.targets = {t.state_key: t for t in targets}
        self.secrets = secret_client
        self.arm = arm_client
        self.log = log
        self.on_change = on_change
        self.changes: list[PhaseChange] = []
        self._last: dict[str, tuple[Any, ...]] = {}
        self._checked_cycles: dict[str, int] = {}

    def current(self) -> dict[str, PhaseChange]:
        latest: dict[str, PhaseChange] = {}
        for change in list(self.changes):
            latest[change.target] = change
        return latest

    def step(self) -> None:
        now = time.time()
        for key, versioned in self.states.list_all():
            target = self.targets.get(key)
            if target is None:
                continue
            state = versioned.state
            lease = bool(state.lease_expires_at and state.lease_expires_at.timestamp() > now)
            signature = (state.phase, state.active_slot, state.cycle_id, state.cycles_completed, lease)
            if self._last.get(key) != signature:
                self._last[key] = signature
                change = PhaseChange(now, target.account_name, state.phase.value,
                                     state.active_slot.value if state.active_slot else None, state.cycle_id,
                                     state.cycle_trigger, state.cycles_completed, lease)
                self.changes.append(change)
                if self.on_change is not None:
                    self.on_change(change)
            done = self._checked_cycles.setdefault(key, state.cycles_completed)
            if state.cycles_completed > done and state.phase is Phase.IDLE and not state.lease_owner:
                if self._check_i3(target, state.cycles_completed, versioned.etag):
                    self._checked_cycles[key] = state.cycles_completed

    def _check_i3(self, target: Target, completed: int, etag: str) -> bool:
        """Both slot secrets equal listKeys; only judged if the target did not move meanwhile."""
        _, group, name = _parse(target.resource_id)
        keys = self.arm.accounts.list_keys(group, name)
        stored = {slot: self.secrets.get_secret(target.slot_secret(slot)).value for slot in Slot}
        again = self.states.get(target.state_key)
        if again is None or again.etag != etag:
            return False  # a new cycle started in between: judge the next rest instead
        with self.log.lock:
            self.log.i3_checks += 1
            for slot, service_value in ((Slot.KEY1, keys.key1), (Slot.KEY2, keys.key2)):
                if stored[slot] != service_value:
                    self.log.i3_violations.append(
                        f"{target.account_name}: after cycle {completed}, {target.slot_secret(slot)} "
                        "differs from listKeys")
        return True


class PointerSampler(_Loop):
    def __init__(self, targets: tuple[Target, ...], secret_client: Any, endpoint_of: Callable[[str], str],
                 ca_bundle: str, log: InvariantLog, remember_key: Callable[[str], None]) -> None:
        super().__init__("pointer-sampler", 0.05)
        self.targets = targets
        self.secrets = secret_client
        self.endpoint_of = endpoint_of
        self.log = log
        self.remember_key = remember_key
        self.session = requests.Session()
        self.session.verify = ca_bundle

    def _accepted(self, target: Target, value: str) -> bool:
        url = self.endpoint_of(target.account_name) + MODELS_PATH
        response = self.session.get(url, headers={"api-key": value}, timeout=10)
        return response.status_code == 200

    def step(self) -> None:
        for target in self.targets:
            pointer = str(self.secrets.get_secret(target.pointer_secret).value)
            slot_value = str(self.secrets.get_secret(target.slot_secret(Slot(pointer))).value)
            active_value = str(self.secrets.get_secret(target.active_secret).value)
            self.remember_key(slot_value)
            self.remember_key(active_value)
            problems = []
            if not self._accepted(target, slot_value):
                problems.append(f"{target.slot_secret(Slot(pointer))} (named by the pointer) was refused")
            if not self._accepted(target, active_value):
                problems.append(f"{target.active_secret} was refused")
            with self.log.lock:
                self.log.i1_samples += 1
                self.log.i1_violations.extend(f"{time.strftime('%H:%M:%S')} {target.account_name}: {p}"
                                              for p in problems)

    def stop(self) -> None:
        super().stop()
        self.session.close()


def _parse(resource_id: str) -> tuple[str, str, str]:
    from rotation.model import parse_resource_id

    return parse_resource_id(resource_id)
