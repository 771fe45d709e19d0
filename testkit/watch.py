"""One way to watch the engine's ports: ``watch(ports, *watchers)`` wraps each port so that every call
goes through the watchers' ``before``/``after`` hooks. Watchers count calls, record what the engine did,
or crash the "process" right after the Nth side effect reached Azure (or a fake).

Used by the unit rig (over the fakes), the engine harness and the demo (over the real adapters).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from rotation.model import HistoryRecord, ProbeOverride, SecretValue, Slot, TargetState, VersionedState
from rotation.ports import (
    AccountInfo,
    AccountKeys,
    DataPlane,
    HistoryStore,
    KeyProbe,
    KeyService,
    Ports,
    ProbeResult,
    SecretStore,
    SecretVersion,
    StateStore,
    StoredSecret,
)

R = TypeVar("R")

# What changes Azure (or the table): the calls a crash can follow.
SIDE_EFFECTS = frozenset({"secrets.set_secret", "keys.regenerate_key", "states.create", "states.replace"})

# Port calls under the names of the Azure requests they make (what docs/ENGINE.md and docs/BENCHMARKS.md
# count): Key Vault and ARM as the emulator names its operations, Table Storage by state/history request.
AZURE_OPERATIONS: Mapping[str, str] = {
    "secrets.get_secret": "keyvault.get_secret",
    "secrets.set_secret": "keyvault.set_secret",
    "secrets.recover_secret": "keyvault.recover_deleted_secret",
    "secrets.list_versions": "keyvault.list_secret_versions",
    "keys.get_account": "arm.get_account",
    "keys.list_keys": "arm.list_keys",
    "keys.regenerate_key": "arm.regenerate_key",
    "states.get": "table.state_get",
    "states.create": "table.state_write",
    "states.replace": "table.state_write",
    "states.list_all": "table.state_list",
    "history.append": "table.history_append",
    "history.append_all": "table.history_append",  # several rows: one entity, one request
    "history.list": "table.history_query",
    "history.stored_since": "table.history_query",
}
TABLE_OPERATIONS = {call: name for call, name in AZURE_OPERATIONS.items() if name.startswith("table.")}


class SimulatedCrash(BaseException):  # a process dying, not an error it handles
    """The invocation died right after a call reached Azure (the call's effect stays)."""


@dataclass
class PortCall:
    """One call of a port method, as the watchers see it (``result`` is set once it returned)."""

    port: str  # secrets | keys | probe | states | history
    method: str
    args: tuple[Any, ...]
    started: float = field(default_factory=time.time)
    result: Any = None
    notes: dict[str, Any] = field(default_factory=dict)  # a watcher's own per-call data

    @property
    def operation(self) -> str:
        return f"{self.port}.{self.method}"

    @property
    def side_effect(self) -> bool:
        return self.operation in SIDE_EFFECTS

    def describe(self) -> str:
        """A short label that never holds a value (crash messages go to logs)."""
        if self.operation == "secrets.set_secret":
            return f"set_secret {self.args[0]}"
        if self.operation == "keys.regenerate_key":
            return f"regenerate {self.args[1].value}"
        if self.operation == "states.create":
            return "state create"
        if self.operation == "states.replace":
            return f"state {self.args[1].phase.value}"
        return self.operation


class Watcher:
    """Hooks around every port call. ``after`` runs whether the call returned or raised (``error``)."""

    def before(self, call: PortCall) -> None:
        return None

    def after(self, call: PortCall, error: BaseException | None) -> None:
        return None


class CallCounter(Watcher):
    """Calls per operation (``secrets.get_secret``…); with ``names``, only those operations, renamed."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names = names
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def before(self, call: PortCall) -> None:
        name = call.operation if self.names is None else self.names.get(call.operation)
        if name is not None:
            with self._lock:
                self.counts[name] += 1

    def get(self, name: str, default: int = 0) -> int:
        with self._lock:
            return self.counts.get(name, default)

    def of(self, port: str) -> dict[str, int]:
        """One port's counts by method name."""
        with self._lock:
            return {op.split(".", 1)[1]: n for op, n in self.counts.items() if op.startswith(port + ".")}

    def clear(self) -> None:
        with self._lock:
            self.counts.clear()


class Crasher(Watcher):
    """Counts side effects that returned; raises ``SimulatedCrash`` right after the ``crash_after``-th,
    or right after the next call of the operation ``crash_on`` that returned (e.g. a history write)."""

    def __init__(self) -> None:
        self.side_effects = 0
        self.crash_after: int | None = None
        self.crash_on: str | None = None
        self._lock = threading.Lock()

    def after(self, call: PortCall, error: BaseException | None) -> None:
        if error is None and call.operation == self.crash_on:
            self.crash_on = None
            raise SimulatedCrash(f"crash after {call.operation}")
        if error is not None or not call.side_effect:
            return
        with self._lock:
            self.side_effects += 1
            crash = self.crash_after is not None and self.side_effects == self.crash_after
            if crash:
                self.crash_after = None
            count = self.side_effects
        if crash:
            raise SimulatedCrash(f"crash after side effect {count} ({call.describe()})")


class KeyValueRecorder(Watcher):
    """Hands every key value the engine reads (slot secrets, ``P-active``, ``listKeys``) — and with
    ``writes``, every one it stores — to ``remember``, for the I5 leak checks. Pointer secrets hold a slot
    name, not a key: ``is_pointer`` tells them apart."""

    def __init__(
        self,
        remember: Callable[[Iterable[str]], None],
        is_pointer: Callable[[str], bool],
        writes: bool = False,
    ) -> None:
        self.remember = remember
        self.is_pointer = is_pointer
        self.writes = writes

    def before(self, call: PortCall) -> None:
        if self.writes and call.operation == "secrets.set_secret" and not self.is_pointer(call.args[0]):
            self.remember([call.args[1].reveal()])

    def after(self, call: PortCall, error: BaseException | None) -> None:
        if error is not None or call.result is None:
            return
        if call.operation == "secrets.get_secret" and not self.is_pointer(call.args[0]):
            self.remember([call.result.value.reveal()])
        elif call.operation == "keys.list_keys":
            self.remember([call.result.key1.reveal(), call.result.key2.reveal()])


class _Watched:
    def __init__(self, port: str, watchers: tuple[Watcher, ...]) -> None:
        self._port = port
        self._watchers = watchers

    def _call(self, method: str, args: tuple[Any, ...], invoke: Callable[[], R]) -> R:
        call = PortCall(self._port, method, args)
        for watcher in self._watchers:
            watcher.before(call)
        try:
            call.result = invoke()
        except BaseException as error:
            for watcher in self._watchers:
                watcher.after(call, error)
            raise
        for watcher in self._watchers:
            watcher.after(call, None)
        return call.result


class WatchedSecrets(_Watched, SecretStore):
    def __init__(self, inner: SecretStore, watchers: tuple[Watcher, ...]) -> None:
        super().__init__("secrets", watchers)
        self.inner = inner

    def get_secret(self, name: str) -> StoredSecret | None:
        return self._call("get_secret", (name,), lambda: self.inner.get_secret(name))

    def set_secret(
        self, name: str, value: SecretValue, tags: Mapping[str, str], expires_on: datetime | None = None
    ) -> str:
        return self._call(
            "set_secret", (name, value, tags, expires_on),
            lambda: self.inner.set_secret(name, value, tags, expires_on),
        )  # fmt: skip

    def recover_secret(self, name: str) -> None:
        self._call("recover_secret", (name,), lambda: self.inner.recover_secret(name))

    def list_versions(self, name: str) -> list[SecretVersion]:
        return self._call("list_versions", (name,), lambda: self.inner.list_versions(name))


class WatchedKeys(_Watched, KeyService):
    def __init__(self, inner: KeyService, watchers: tuple[Watcher, ...]) -> None:
        super().__init__("keys", watchers)
        self.inner = inner

    def get_account(self, resource_id: str) -> AccountInfo:
        return self._call("get_account", (resource_id,), lambda: self.inner.get_account(resource_id))

    def list_keys(self, resource_id: str) -> AccountKeys:
        return self._call("list_keys", (resource_id,), lambda: self.inner.list_keys(resource_id))

    def regenerate_key(self, resource_id: str, slot: Slot) -> AccountKeys | None:
        return self._call(
            "regenerate_key", (resource_id, slot), lambda: self.inner.regenerate_key(resource_id, slot)
        )


class WatchedProbe(_Watched, KeyProbe):
    def __init__(self, inner: KeyProbe, watchers: tuple[Watcher, ...]) -> None:
        super().__init__("probe", watchers)
        self.inner = inner

    def probe(self, plane: DataPlane, key: SecretValue, override: ProbeOverride | None = None) -> ProbeResult:
        return self._call("probe", (plane, key), lambda: self.inner.probe(plane, key, override))


class WatchedStates(_Watched, StateStore):
    def __init__(self, inner: StateStore, watchers: tuple[Watcher, ...]) -> None:
        super().__init__("states", watchers)
        self.inner = inner

    def get(self, target_key: str) -> VersionedState | None:
        return self._call("get", (target_key,), lambda: self.inner.get(target_key))

    def create(self, target_key: str, state: TargetState) -> VersionedState:
        return self._call("create", (target_key, state), lambda: self.inner.create(target_key, state))

    def replace(self, target_key: str, state: TargetState, etag: str) -> VersionedState:
        return self._call(
            "replace", (target_key, state, etag), lambda: self.inner.replace(target_key, state, etag)
        )

    def list_all(self) -> Iterator[tuple[str, VersionedState]]:
        return self._call("list_all", (), self.inner.list_all)


class WatchedHistory(_Watched, HistoryStore):
    def __init__(self, inner: HistoryStore, watchers: tuple[Watcher, ...]) -> None:
        super().__init__("history", watchers)
        self.inner = inner

    def append(self, target_key: str, record: HistoryRecord) -> None:
        self._call("append", (target_key, record), lambda: self.inner.append(target_key, record))

    def append_all(self, target_key: str, records: Sequence[HistoryRecord]) -> None:
        # Passed through as one call: the adapter writes the rows as one entity (one request), which the
        # base class's default (one ``append`` per row) would hide from the adapter and the counts.
        self._call("append_all", (target_key, records), lambda: self.inner.append_all(target_key, records))

    def stored_since(self, target_key: str, since: datetime) -> list[HistoryRecord]:
        return self._call(
            "stored_since", (target_key, since), lambda: self.inner.stored_since(target_key, since)
        )

    def list(self, target_key: str, limit: int = 20) -> list[HistoryRecord]:
        return self._call("list", (target_key, limit), lambda: self.inner.list(target_key, limit))


def watch(ports: Ports, *watchers: Watcher) -> Ports:
    """The same ports, each call seen by ``watchers`` in order (lifecycle sink and limiter unchanged)."""
    return Ports(
        secrets=WatchedSecrets(ports.secrets, watchers),
        keys=WatchedKeys(ports.keys, watchers),
        probe=WatchedProbe(ports.probe, watchers),
        states=WatchedStates(ports.states, watchers),
        history=WatchedHistory(ports.history, watchers),
        lifecycle=ports.lifecycle,
        limiter=ports.limiter,
        consumers=ports.consumers,  # App Service / API Management consumers (issue 14), not watched
    )
