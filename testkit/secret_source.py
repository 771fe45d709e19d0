"""An in-memory ``SecretSource`` (the consumer library's port) with fault injection, for the cache's unit
tests; their clock is ``testkit.clock.ManualClock.timestamp``."""

from __future__ import annotations

import threading
from collections import Counter

from keyrotation_consumer import KeyVaultReadError, SecretNotFoundError, SecretRecord


class FakeSecretSource:
    """Implements the SecretSource port in memory; counts reads per secret name."""

    def __init__(self) -> None:
        self.secrets: dict[str, SecretRecord] = {}
        self.reads: Counter[str] = Counter()
        self.failures_left = 0
        # When set, every read blocks until the event is set: lets a test hold a refresh in flight.
        self.gate: threading.Event | None = None
        self.read_started = threading.Event()
        self._versions = 0
        self._lock = threading.Lock()

    def store(self, name: str, value: str, **tags: str) -> None:
        with self._lock:
            self._versions += 1
            self.secrets[name] = SecretRecord(name=name, value=value, tags=tags, version=f"v{self._versions}")

    def store_layout(self, prefix: str, key1: str, key2: str, active: str, *, slot_tag: bool = True) -> None:
        """The CONTRACTS.md layout with `active` ("key1"/"key2") as the active slot."""
        values = {"key1": key1, "key2": key2}
        self.store(f"{prefix}-key1", key1, slot="key1")
        self.store(f"{prefix}-key2", key2, slot="key2")
        self.store(f"{prefix}-active-key", active)
        tags = {"slot": active} if slot_tag else {}
        self.store(f"{prefix}-active", values[active], **tags)

    @property
    def total_reads(self) -> int:
        with self._lock:
            return sum(self.reads.values())

    def read_secret(self, name: str) -> SecretRecord:
        with self._lock:
            self.reads[name] += 1
            failing = self.failures_left > 0
            if failing:
                self.failures_left -= 1
            gate = self.gate
        self.read_started.set()
        if gate is not None:
            assert gate.wait(10), "test gate never opened"
        if failing:
            raise KeyVaultReadError(name, "HttpResponseError", status_code=503,
                                    error_code="ServiceUnavailable")
        with self._lock:
            record = self.secrets.get(name)
        if record is None:
            raise SecretNotFoundError(name, "secret not found", status_code=404, error_code="SecretNotFound")
        return record
