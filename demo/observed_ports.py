"""The engine's real adapters, wrapped to watch what it does to Azure and to inject a crash.

Nothing here changes what the adapters do, except ``crash_after_next_regenerate``: the regenerate reaches
Azure, then the invocation dies (an unexpected exception, as when a worker is recycled mid-step). The
watchers record every ``regenerateKey`` with the pointer as Key Vault holds it at that instant (read with
an independent client), every pointer write, and every key value the engine handles (for the I5 scan).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rotation.model import SecretValue, Slot, Target
from rotation.ports import (
    AccountInfo,
    AccountKeys,
    KeyService,
    Ports,
    SecretStore,
    SecretVersion,
    StoredSecret,
)


class SimulatedCrash(BaseException):  # a process dying, not an error it handles
    """The invocation died right after a real call reached Azure (its effect stays)."""


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


class ObservedKeys(KeyService):
    def __init__(self, inner: KeyService, observations: Observations, pointers: PointerReader) -> None:
        self.inner = inner
        self.observations = observations
        self.pointers = pointers

    def get_account(self, resource_id: str) -> AccountInfo:
        return self.inner.get_account(resource_id)

    def list_keys(self, resource_id: str) -> AccountKeys:
        keys = self.inner.list_keys(resource_id)
        self.observations.remember(keys.key1.reveal(), keys.key2.reveal())
        return keys

    def regenerate_key(self, resource_id: str, slot: Slot) -> None:
        started, before = time.time(), self.pointers.pointer(resource_id)
        try:
            self.inner.regenerate_key(resource_id, slot)
        finally:
            after = self.pointers.pointer(resource_id)
            call = RegenerateCall(resource_id, slot.value, started, before, after)
            with self.observations.lock:
                self.observations.regenerates.append(call)
        if self.observations.take_crash(resource_id):
            raise SimulatedCrash(f"simulated crash after regenerating {slot.value} of {resource_id}")


class ObservedSecrets(SecretStore):
    def __init__(self, inner: SecretStore, observations: Observations, targets: tuple[Target, ...]) -> None:
        self.inner = inner
        self.observations = observations
        self._pointer_owner = {t.pointer_secret.lower(): t.resource_id for t in targets}

    def get_secret(self, name: str) -> StoredSecret | None:
        secret = self.inner.get_secret(name)
        if secret is not None and name.lower() not in self._pointer_owner:
            self.observations.remember(secret.value.reveal())
        return secret

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        owner = self._pointer_owner.get(name.lower())
        if owner is None:
            self.observations.remember(value.reveal())
        started = time.time()
        version = self.inner.set_secret(name, value, tags, expires_on)
        if owner is not None:
            write = PointerWrite(owner, value.reveal(), started, time.time())
            with self.observations.lock:
                self.observations.pointer_writes.append(write)
        return version

    def recover_secret(self, name: str) -> None:
        self.inner.recover_secret(name)

    def list_versions(self, name: str) -> list[SecretVersion]:
        return self.inner.list_versions(name)


def observe(ports: Ports, observations: Observations, pointers: PointerReader,
            targets: tuple[Target, ...]) -> Ports:
    return Ports(
        secrets=ObservedSecrets(ports.secrets, observations, targets),
        keys=ObservedKeys(ports.keys, observations, pointers),
        probe=ports.probe,
        states=ports.states,
        history=ports.history,
        lifecycle=ports.lifecycle,
        limiter=ports.limiter,
    )
