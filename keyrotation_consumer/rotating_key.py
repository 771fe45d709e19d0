"""The TTL cache of the active key: one Key Vault read per TTL per process, 401-driven refresh.

Protocol (docs/CONTRACTS.md, docs/CONSUMER.md): per TTL, read ``P-active`` (value + ``slot`` tag). When
the service answers 401 to a key, re-read ``P-active`` at once; if it still holds the rejected value,
read the other slot secret. Every read is single-flight: one thread reads, the others share its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .active_key import SLOTS, ActiveKey, other_slot
from .errors import KeyRotationConsumerError, KeyUnavailableError, MissingDependencyError, SecretNotFoundError
from .layout import Layout, SecretNames, read_active_key, read_slot_key
from .secret_source import KeyVaultSecretSource, SecretRecord, SecretSource

if TYPE_CHECKING:
    from azure.core.credentials import AzureKeyCredential
    from azure.keyvault.secrets import SecretClient

    from .azure_policy import RotatingKeyPolicy
    from .httpx_auth import RotatingKeyHttpxAuth
    from .requests_auth import RotatingKeyRequestsAuth

logger = logging.getLogger("keyrotation_consumer")

DEFAULT_TTL = timedelta(minutes=5)
DEFAULT_MAX_STALE = timedelta(hours=12)
DEFAULT_RETRY_INTERVAL = timedelta(seconds=10)
DEFAULT_HEADER = "api-key"

_T = TypeVar("_T")
Seconds = float | timedelta


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was created (a consistent snapshot)."""

    key_vault_reads: int
    """Every secret read sent to Key Vault, successful or not."""
    refreshes: int
    """Completed refreshes (TTL, forced or after a 401) that produced a key."""
    refresh_failures: int
    """Refreshes that failed with a Key Vault or layout error."""
    unauthorized_refreshes: int
    """Refreshes triggered by a 401 from the service."""
    other_slot_fallbacks: int
    """Times the other slot secret was used because ``P-active`` still held a rejected key."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """Immutable cache snapshot; replaced as a whole so readers never need a lock."""

    key: ActiveKey
    refresh_at: float
    usable_until: float
    fell_back_from: str | None = field(default=None, repr=False)
    """The rejected value ``P-active`` held when this entry came from the other slot."""


class _Flight:
    """One in-progress Key Vault read that other threads can wait for."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = dict.fromkeys(CacheStats.__dataclass_fields__, 0)

    def add(self, name: str) -> None:
        with self._lock:
            self.values[name] += 1

    def snapshot(self) -> CacheStats:
        with self._lock:
            return CacheStats(**self.values)


class _CountingSource:
    def __init__(self, inner: SecretSource, counters: _Counters) -> None:
        self._inner = inner
        self._counters = counters

    def read_secret(self, name: str) -> SecretRecord:
        self._counters.add("key_vault_reads")
        return self._inner.read_secret(name)


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class RotatingKey:
    """The current API key of one rotated Azure AI services account, cached for ``ttl``.

    Thread-safe. ``get()``/``current()`` on a fresh cache is one attribute read and one clock call.
    When the TTL is over, exactly one thread reads Key Vault while the others keep using the cached
    key (or wait, when there is none yet). A failed read keeps serving the cached key, retried every
    ``retry_interval``, until it is older than ``max_stale``; then ``current()`` raises
    :class:`KeyUnavailableError`.

    :param source: where secrets are read (:class:`KeyVaultSecretSource` in production)
    :param prefix: the target's secret-name prefix (default on the rotation side: the account name)
    :param ttl: how long a read is trusted; must be well below the rotation's drain time (default 24 h)
    :param max_stale: how long a key may be served after its last successful read when Key Vault fails;
        keep it below ``drainTime - ttl`` so a served key is never a revoked one
    :param retry_interval: minimum time between two failed reads, and between two 401-driven reads for
        the same rejected key
    :param layout: :attr:`Layout.ACTIVE_SECRET` (one read) or :attr:`Layout.POINTER` (two reads)
    :param clock: monotonic seconds; injectable for tests
    """

    def __init__(self, source: SecretSource, prefix: str, *, ttl: Seconds = DEFAULT_TTL,
                 max_stale: Seconds = DEFAULT_MAX_STALE, retry_interval: Seconds = DEFAULT_RETRY_INTERVAL,
                 layout: Layout = Layout.ACTIVE_SECRET, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = _seconds(ttl)
        self._max_stale = _seconds(max_stale)
        self._retry_interval = _seconds(retry_interval)
        if self._ttl <= 0:
            raise ValueError("ttl must be positive")
        if self._max_stale < self._ttl:
            raise ValueError("max_stale must be at least ttl")
        if self._retry_interval <= 0:
            raise ValueError("retry_interval must be positive")
        if not isinstance(layout, Layout):
            raise TypeError(f"layout must be a Layout, not {type(layout).__name__}")
        self._names = SecretNames(prefix)
        self._layout = layout
        self._clock = clock
        self._counters = _Counters()
        self._source = _CountingSource(source, self._counters)
        self._entry: _Entry | None = None
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._unauthorized_checked: dict[str, float] = {}
        self._listeners: list[Callable[[ActiveKey], None]] = []
        self._bind_lock = threading.Lock()

    @classmethod
    def from_secret_client(cls, client: SecretClient, prefix: str, **options: Any) -> RotatingKey:
        """Build a cache reading through a real ``SecretClient`` (keyword options as for ``__init__``)."""
        return cls(KeyVaultSecretSource(client), prefix, **options)

    def __repr__(self) -> str:
        entry = self._entry
        return (f"RotatingKey(prefix={self._names.prefix!r}, layout={self._layout.value}, ttl={self._ttl}, "
                f"slot={entry.key.slot if entry else None!r})")

    @property
    def prefix(self) -> str:
        return self._names.prefix

    @property
    def stats(self) -> CacheStats:
        return self._counters.snapshot()

    # -- reading -------------------------------------------------------------------------------

    def get(self) -> str:
        """The key value to send now. Raises :class:`KeyUnavailableError` when there is none."""
        return self.current().value

    def current(self) -> ActiveKey:
        """The key to send now, with its slot and origin (its ``repr`` hides the value)."""
        entry = self._entry
        if entry is not None and self._clock() < entry.refresh_at:
            return entry.key
        return self._current_slow()

    def refresh(self) -> ActiveKey:
        """Read Key Vault now (or share a read already in progress) and return the result."""
        with self._lock:
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if leader:
            return self._lead(flight, self._refresh_from_vault)
        self._await(flight)
        return self.current()

    def refresh_after_unauthorized(self, rejected: ActiveKey) -> ActiveKey | None:
        """Call when the service answered 401 to a request sent with ``rejected``.

        Returns the key to retry with, or ``None`` when nothing different is known (then return the
        401 to the caller rather than retrying). Threads reporting the same rejected key share one
        Key Vault read; reports for a key the cache has already replaced need no read at all.
        """
        while True:
            with self._lock:
                now = self._clock()
                entry = self._entry
                if entry is not None and entry.key.value != rejected.value:
                    return entry.key
                flight = self._flight
                leader = flight is None
                if flight is None:
                    # Join a read in progress first (it may be for this very 401); only then throttle.
                    checked_at = self._unauthorized_checked.get(rejected.value)
                    if checked_at is not None and now - checked_at < self._retry_interval:
                        return None
                    flight = self._flight = _Flight()
            if leader:
                return self._lead(flight, lambda: self._refresh_after_rejection(rejected.value))
            flight.done.wait()

    # -- integrations --------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[ActiveKey], None]) -> None:
        """Call ``listener(key)`` whenever a refresh changes the key value (from the refreshing thread)."""
        with self._lock:
            self._listeners.append(listener)

    def bind(self, credential: AzureKeyCredential) -> AzureKeyCredential:
        """Keep an existing ``AzureKeyCredential`` equal to the current key (via ``update()``).

        The credential is updated now and on every refresh that changes the key, so SDK clients
        already built with it keep working. Refreshes happen when something calls this cache
        (``get()``, the auth hooks, the pipeline policy); a process that only uses the bound
        credential should also call ``get()`` periodically, or use :meth:`azure_key_credential`.
        """

        def follow(_: ActiveKey) -> None:
            # Read the newest entry under a lock so a slow update never overwrites a newer one.
            with self._bind_lock:
                entry = self._entry
                if entry is not None:
                    credential.update(entry.key.value)

        self.subscribe(follow)
        key = self.current()
        with self._bind_lock:
            entry = self._entry
            credential.update(entry.key.value if entry is not None else key.value)
        return credential

    def azure_key_credential(self) -> AzureKeyCredential:
        """An ``AzureKeyCredential`` whose ``.key`` reads this cache on every request."""
        from .live_credential import LiveAzureKeyCredential

        return LiveAzureKeyCredential(self)

    def requests_auth(self, header: str = DEFAULT_HEADER) -> RotatingKeyRequestsAuth:
        """A ``requests`` auth hook setting ``header`` and retrying once on 401."""
        from .requests_auth import RotatingKeyRequestsAuth

        return RotatingKeyRequestsAuth(self, header)

    def httpx_auth(self, header: str = DEFAULT_HEADER) -> RotatingKeyHttpxAuth:
        """An ``httpx.Auth`` setting ``header`` and retrying once on 401 (needs the ``[httpx]`` extra)."""
        try:
            from .httpx_auth import RotatingKeyHttpxAuth
        except ModuleNotFoundError as error:
            if error.name is None or error.name.split(".")[0] not in ("httpx", "anyio"):
                raise
            raise MissingDependencyError(
                f"httpx_auth() needs the optional httpx integration, and {error.name.split('.')[0]} is not "
                'installed: pip install "keyrotation_consumer[httpx]" (httpx and anyio)'
            ) from error

        return RotatingKeyHttpxAuth(self, header)

    def azure_policy(self, header: str = DEFAULT_HEADER) -> RotatingKeyPolicy:
        """An azure-core pipeline policy setting ``header`` and retrying once on 401."""
        from .azure_policy import RotatingKeyPolicy

        return RotatingKeyPolicy(self, header)

    # -- single flight -------------------------------------------------------------------------

    def _current_slow(self) -> ActiveKey:
        while True:
            with self._lock:
                now = self._clock()
                entry = self._entry
                if entry is not None and now < entry.refresh_at:
                    return entry.key
                flight = self._flight
                leader = flight is None
                if flight is None:
                    flight = self._flight = _Flight()
                elif entry is not None and now < entry.usable_until:
                    # Someone is reading already; the stale key is still safe to use meanwhile.
                    return entry.key
            if leader:
                return self._lead(flight, self._refresh_from_vault)
            self._await(flight)

    def _await(self, flight: _Flight) -> None:
        flight.done.wait()
        if flight.error is not None:
            entry = self._entry
            if entry is None or self._clock() >= entry.usable_until:
                # A fresh exception per waiter (one object must not be raised in several threads),
                # chained to the same Key Vault error the reading thread saw.
                error = flight.error
                if isinstance(error, KeyUnavailableError):
                    raise KeyUnavailableError(str(error)) from error.__cause__
                raise KeyUnavailableError(f"no usable key for prefix {self._names.prefix!r}") from error

    def _lead(self, flight: _Flight, work: Callable[[], _T]) -> _T:
        try:
            return work()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()

    # -- the reads (run by the single leader thread only, so they may write self._entry) --------

    def _refresh_from_vault(self) -> ActiveKey:
        previous = self._entry
        try:
            key = read_active_key(self._source, self._names, self._layout)
        except KeyRotationConsumerError as exc:
            return self._keep_after_failure(previous, exc)
        if previous is not None and previous.fell_back_from == key.value:
            # P-active still holds the value the service rejected: stay on the other slot. A 401 on it
            # re-reads P-active first, so this heals as soon as the vault moves on.
            self._publish(previous.key, fell_back_from=previous.fell_back_from)
            return previous.key
        self._publish(key)
        return key

    def _keep_after_failure(self, previous: _Entry | None, exc: KeyRotationConsumerError) -> ActiveKey:
        self._counters.add("refresh_failures")
        now = self._clock()
        if previous is not None and now < previous.usable_until:
            logger.warning("key refresh failed for prefix %s, serving the cached key (slot %s) for now: %s",
                           self._names.prefix, previous.key.slot, exc)
            self._entry = replace(previous, refresh_at=min(now + self._retry_interval, previous.usable_until))
            return previous.key
        logger.error("key refresh failed for prefix %s and no usable key is cached: %s",
                     self._names.prefix, exc)
        raise KeyUnavailableError(f"no usable key for prefix {self._names.prefix!r}: {exc}") from exc

    def _refresh_after_rejection(self, rejected_value: str) -> ActiveKey | None:
        self._counters.add("unauthorized_refreshes")
        now = self._clock()
        recent = {value: at for value, at in self._unauthorized_checked.items()
                  if now - at < self._retry_interval}
        # Values the service refused recently, or that P-active held when we last had to fall back: a
        # stale P-active must not send us back to them.
        known_bad = {rejected_value, *recent}
        previous = self._entry
        if previous is not None and previous.fell_back_from is not None:
            known_bad.add(previous.fell_back_from)
        recent[rejected_value] = now
        self._unauthorized_checked = recent
        try:
            active = read_active_key(self._source, self._names, self._layout)
            if active.value not in known_bad:
                logger.info("key for prefix %s was rejected (401); Key Vault now names slot %s",
                            self._names.prefix, active.slot)
                self._publish(active)
                return active
            fallback = self._read_slots(active, known_bad)
        except KeyRotationConsumerError as exc:
            self._counters.add("refresh_failures")
            logger.warning("key for prefix %s was rejected (401) and re-reading Key Vault failed: %s",
                           self._names.prefix, exc)
            return None
        if fallback is None:
            logger.warning("key for prefix %s was rejected (401) and Key Vault holds no other key yet",
                           self._names.prefix)
            return None
        self._counters.add("other_slot_fallbacks")
        logger.warning("key for prefix %s was rejected (401) while %s still names slot %s; "
                       "using slot %s", self._names.prefix, active.secret_name, active.slot, fallback.slot)
        self._publish(fallback, fell_back_from=active.value)
        return fallback

    def _read_slots(self, active: ActiveKey, known_bad: set[str]) -> ActiveKey | None:
        """The other slot first (the usual case: P-active not moved yet), then the active slot's own
        secret, which may already hold a value newer than P-active."""
        if active.slot is None:
            candidates = list(SLOTS)
        else:
            candidates = [other_slot(active.slot), active.slot]
        for slot in candidates:
            if slot == active.slot and active.secret_name == self._names.slot(slot):
                continue  # POINTER layout: that secret is what we just read
            try:
                key = read_slot_key(self._source, self._names, slot)
            except SecretNotFoundError:
                continue
            if key.value not in known_bad:
                return key
        return None

    def _publish(self, key: ActiveKey, *, fell_back_from: str | None = None) -> None:
        now = self._clock()
        previous = self._entry
        self._entry = _Entry(key=key, refresh_at=now + self._ttl, usable_until=now + self._max_stale,
                             fell_back_from=fell_back_from)
        self._counters.add("refreshes")
        if previous is None or previous.key.value != key.value:
            if previous is not None:
                logger.info("key for prefix %s changed: slot %s -> %s (%s version %s)", self._names.prefix,
                            previous.key.slot, key.slot, key.secret_name, key.version)
            self._notify(key)

    def _notify(self, key: ActiveKey) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(key)
            except Exception:
                # A broken listener must not break key delivery; its traceback cannot hold our value
                # unless the listener put it there.
                logger.exception("key listener %r failed", listener)
