"""The engine's real adapters, watched (``testkit.watch``) to see what it does to Azure and to inject a crash.

Nothing here changes what the adapters do, except the armed crash (``Observations.arm_crash``): the
regenerate reaches Azure, then the invocation dies (a ``SimulatedCrash``, as when a worker is recycled). The
watchers record every ``regenerateKey`` with the pointer as Key Vault holds it at that instant (read with
an independent client), every pointer write, and every key value the engine handles (for the I5 scan).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rotation.model import Target
from rotation.ports import Ports
from testkit.watch import KeyValueRecorder, PortCall, SimulatedCrash, Watcher, watch


@dataclass(frozen=True)
class RegenerateCall:
    target: str
    slot: str
    started: float  # time.time() before the call
    pointer_before: str | None  # the pointer in Key Vault right before the call (independent read)
    pointer_after: str | None = None  # and right after it returned: the effect landed in between


@dataclass(frozen=True)
class PointerWrite:
    target: str
    slot: str
    started: float
    finished: float


@dataclass
class Observations:
    """Shared by the wrappers, the consumers and the samplers; read after the run."""

    key_values: set[str] = field(default_factory=set)
    regenerates: list[RegenerateCall] = field(default_factory=list)
    pointer_writes: list[PointerWrite] = field(default_factory=list)
    crashes: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _crash_armed_for: str | None = None

    def remember(self, *values: str) -> None:
        with self.lock:
            self.key_values.update(v for v in values if v)

    def arm_crash(self, resource_id: str) -> None:
        with self.lock:
            self._crash_armed_for = resource_id.lower()

    @property
    def crash_armed(self) -> bool:
        with self.lock:
            return self._crash_armed_for is not None

    def take_crash(self, resource_id: str) -> bool:
        with self.lock:
            if self._crash_armed_for == resource_id.lower():
                self._crash_armed_for = None
                self.crashes.append((time.time(), resource_id))
                return True
            return False


class PointerReader:
    """Reads a target's pointer with its own SecretClient (not through the engine's adapter)."""

    def __init__(self, secret_client: Any, targets: tuple[Target, ...]) -> None:
        self._client = secret_client
        self._pointer_by_target = {t.resource_id.lower(): t.pointer_secret for t in targets}

    def pointer(self, resource_id: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            value = self._client.get_secret(self._pointer_by_target[resource_id.lower()]).value
        except ResourceNotFoundError:
            return None
        return str(value) if value is not None else None


class RegenerateAndPointerWatcher(Watcher):
    """Records every ``regenerateKey`` with the pointer right before and after it (returned or not), every
    pointer write, and raises the armed crash right after a regenerate of the armed target reached Azure."""

    def __init__(
        self, observations: Observations, pointers: PointerReader, targets: tuple[Target, ...]
    ) -> None:
        self.observations = observations
        self.pointers = pointers
        self._pointer_owner = {t.pointer_secret.lower(): t.resource_id for t in targets}

    def is_pointer(self, name: str) -> bool:
        return name.lower() in self._pointer_owner

    def before(self, call: PortCall) -> None:
        if call.operation == "keys.regenerate_key":
            call.notes["pointer_before"] = self.pointers.pointer(call.args[0])

    def after(self, call: PortCall, error: BaseException | None) -> None:
        if call.operation == "keys.regenerate_key":
            resource_id, slot = call.args
            after = self.pointers.pointer(resource_id)
            before = call.notes["pointer_before"]
            regenerate = RegenerateCall(resource_id, slot.value, call.started, before, after)
            with self.observations.lock:
                self.observations.regenerates.append(regenerate)
            if error is None and self.observations.take_crash(resource_id):
                raise SimulatedCrash(f"simulated crash after regenerating {slot.value} of {resource_id}")
        elif call.operation == "secrets.set_secret" and error is None:
            name, value = call.args[0], call.args[1]
            owner = self._pointer_owner.get(name.lower())
            if owner is not None:
                write = PointerWrite(owner, value.reveal(), call.started, time.time())
                with self.observations.lock:
                    self.observations.pointer_writes.append(write)


def observe(ports: Ports, observations: Observations, pointers: PointerReader,
            targets: tuple[Target, ...]) -> Ports:
    """The engine's ports, watched: key values read or stored (I5), regenerates and pointer writes (I2)."""
    watcher = RegenerateAndPointerWatcher(observations, pointers, targets)
    seen = KeyValueRecorder(
        lambda values: observations.remember(*values), is_pointer=watcher.is_pointer, writes=True
    )
    return watch(ports, seen, watcher)
