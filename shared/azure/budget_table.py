"""Write budgets shared by every instance of the Function App: one Table entity per scope (ARM writes per
subscription and identity, Key Vault secret writes per vault), updated by ETag compare-and-swap, holding
the token bucket as one number (``shared.budgets.gcra``). Permission: "Storage Table Data Contributor".

Why a table and not only paced queue messages: a timer can pace the messages it writes, but requests,
events, retries and several timers' worth of queued work still meet in the same ARM and Key Vault
buckets; only state every instance reads before spending counts them all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from rotation.audit import logger
from rotation.ports import WriteRateLimiter
from shared.budgets import gcra

PARTITION = "budget"
CAS_ATTEMPTS = 8
UNREACHABLE_WAIT = 5.0  # the table cannot be read: spend nothing, try again in a few seconds
# Each compare-and-swap takes, when the bucket has them, tokens for this many more takes of the same size,
# kept in this process for RESERVE_SECONDS: the sweep's other threads spend them without a Table round
# trip (before: a read and a CAS per take, and retries when 16 threads raced for one row — 60 % of a
# cycle's calls). Unused reserved tokens lapse: the fleet may under-spend a little, never over-spend.
RESERVE_TAKES = 2
RESERVE_SECONDS = 0.5
RESERVE_ONLY_ABOVE = 0.5  # of the burst (below: take exactly what is asked, nothing lapses)
# A compare-and-swap needs the entity's ETag, not a fresh read: with the ETag this process's last write
# returned, the next take is one Table request (before: a read and a write). When another instance wrote
# since, Table answers 412 and the take reads and retries — a stale ETag can cost a request, never a token.
CAS_FROM_LAST_WRITE = True


class TableTokenBucket(WriteRateLimiter):
    """``scope`` names the bucket family (``arm|<client id>``, ``kv``); the key passed to ``try_acquire``
    (a subscription id, a vault URL) completes the row key."""

    def __init__(
        self,
        client: TableClient,
        scope: str,
        rate_per_second: float,
        burst: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.scope = scope
        self.rate = rate_per_second
        self.burst = float(burst)
        self.clock = clock  # wall clock: instances compare their times through the shared entity
        self._created = False
        self._lock = threading.Lock()
        self._waits: dict[str, float] = {}
        self._reserve: dict[str, tuple[int, float]] = {}  # row -> (tokens held here, until)
        # The latest ``tat`` seen per row. Instances only ever push it later (spending), so a refusal
        # computed from it is certain until time passes: refuse locally, without a Table read.
        self._known_tat: dict[str, float] = {}
        self._row_locks: dict[str, threading.Lock] = {}
        self._last_write: dict[str, tuple[float, str]] = {}  # row -> (tat, ETag) this process wrote
        self._booked: dict[str, float] = {}  # row -> when the last refused take was told to come back

    def _row(self, key: str) -> str:
        # Table keys may not contain / \ # ? (vault URLs and ids are flattened).
        text = f"{self.scope}|{key.lower()}"
        return "".join("|" if c in "/\\#?" else c for c in text)

    def _ensure_table(self) -> None:
        if self._created:
            return
        with self._lock:
            try:
                self.client.create_table()
            except ResourceExistsError:
                pass
            self._created = True

    def _row_lock(self, row: str) -> threading.Lock:
        with self._lock:
            return self._row_locks.setdefault(row, threading.Lock())

    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        row = self._row(subscription_id)
        # One Table round trip per row at a time from this process: its threads queue here instead of
        # racing each other's compare-and-swap (and most are then served from the reserve).
        with self._row_lock(row):
            now = self.clock()
            held, until = self._reserve.get(row, (0, 0.0))
            if held >= writes and now < until:
                self._reserve[row] = (held - writes, until)
                self._waits.pop(row, None)
                return True
            known = self._known_tat.get(row)
            if known is not None:
                allowed, _, wait = gcra(known, now, writes, self.rate, self.burst)
                if not allowed:
                    self._waits[row] = wait
                    return False
            return self._acquire_shared(row, writes)

    def _acquire_shared(self, row: str, writes: int) -> bool:
        try:
            self._ensure_table()
            for _ in range(CAS_ATTEMPTS):
                if self._attempt(row, writes):
                    self._waits.pop(row, None)
                    return True
                if row in self._waits:
                    return False
            self._waits[row] = 0.5  # lost every race: others are spending it now
            return False
        except AzureError as error:
            logger.warning("rotation.budget_unavailable %s: %s", self.scope, type(error).__name__)
            self._waits[row] = UNREACHABLE_WAIT
            return False

    def _take(self, seen_tat: float, now: float, writes: int) -> tuple[bool, float, float, int]:
        """(allowed, new tat, wait, tokens taken): ``writes`` plus up to RESERVE_TAKES more takes of the
        same size when the bucket holds them."""
        allowed, _, wait = gcra(seen_tat, now, writes, self.rate, self.burst)
        if not allowed:
            return False, seen_tat, wait, 0
        available = int((now - max(seen_tat, now)) * self.rate + self.burst + 1e-9)
        # Reserve only from a bucket more than half full: when the budget is what limits the work, reserved
        # tokens that lapse unspent are throughput lost (a sweep ends, its deferred targets wait).
        spare = available - int(self.burst * RESERVE_ONLY_ABOVE)
        taken = max(writes, min(spare, writes * (1 + RESERVE_TAKES)))
        return True, max(seen_tat, now) + taken / self.rate, 0.0, taken

    def _attempt(self, row: str, writes: int) -> bool:
        """One compare-and-swap round: True when taken; False with ``_waits[row]`` set when refused;
        False without it when another instance changed the entity first (retry)."""
        now = self.clock()
        last = self._last_write.pop(row, None) if CAS_FROM_LAST_WRITE else None
        if last is not None:
            seen, etag = last
        else:
            try:
                entity = self.client.get_entity(PARTITION, row)
            except ResourceNotFoundError:
                allowed, tat, wait, taken = self._take(0.0, now, writes)
                if not allowed:
                    self._waits[row] = wait
                    return False
                try:
                    written = self.client.create_entity(
                        {"PartitionKey": PARTITION, "RowKey": row, "tat": tat}
                    )
                except ResourceExistsError:
                    return False
                self._taken(row, tat, now, taken - writes, written.get("etag"))
                return True
            seen, etag = float(entity.get("tat", 0.0)), str(entity.metadata["etag"])
            self._known_tat[row] = max(seen, self._known_tat.get(row, 0.0))
        allowed, tat, wait, taken = self._take(seen, now, writes)
        if not allowed:
            if last is not None:
                return False  # refused by what this instance wrote last: read what the fleet holds now
            self._waits[row] = wait
            return False
        try:
            written = self.client.update_entity(
                {"PartitionKey": PARTITION, "RowKey": row, "tat": tat},
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return False  # another instance wrote since: the next attempt reads
        self._taken(row, tat, now, taken - writes, written.get("etag"))
        return True

    def _taken(self, row: str, tat: float, now: float, extra: int, etag: str | None) -> None:
        self._known_tat[row] = max(tat, self._known_tat.get(row, 0.0))
        if etag:
            self._last_write[row] = (tat, etag)
        held, until = self._reserve.get(row, (0, 0.0))
        self._reserve[row] = ((held if now < until else 0) + extra, now + RESERVE_SECONDS)

    def wait_seconds(self, subscription_id: str, writes: int = 1) -> float:
        """After a refusal: when to come back. Each refused take books the tokens after those booked by the
        takes refused before it in this process, so deferred targets return spread at the refill rate —
        each once — instead of all at the next token, where all but one are refused again (and each refusal
        costs a queue message and an invocation)."""
        row = self._row(subscription_id)
        wait = self._waits.get(row, writes / self.rate)
        with self._lock:
            now = self.clock()
            slot = max(now + wait, self._booked.get(row, 0.0) + writes / self.rate)
            self._booked[row] = slot
        return slot - now

    def penalize(self, subscription_id: str, retry_after_seconds: float) -> None:
        """Azure answered 429 anyway (another client of the same bucket): push the shared bucket back so
        no instance writes before Retry-After."""
        row = self._row(subscription_id)
        with self._lock:
            self._reserve.pop(row, None)  # Azure said 429: spend nothing held here either
            self._last_write.pop(row, None)
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            try:
                entity = self.client.get_entity(PARTITION, row)
                tat = max(float(entity.get("tat", 0.0)), now + retry_after_seconds + self.burst / self.rate)
                self._known_tat[row] = max(tat, self._known_tat.get(row, 0.0))
                self.client.update_entity(
                    {"PartitionKey": PARTITION, "RowKey": row, "tat": tat},
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue
            except AzureError:
                return
