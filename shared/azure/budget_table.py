"""Write budgets shared by every instance of the Function App: one Table entity per scope (ARM writes per
subscription and identity, Key Vault secret writes per vault), updated by ETag compare-and-swap, holding
the token bucket as one number (``shared.budgets.gcra``). Permission: "Storage Table Data Contributor".

Why a table and not only paced queue messages: a timer can pace the messages it writes, but requests,
events, retries and several timers' worth of queued work still meet in the same ARM and Key Vault
buckets; only state every instance reads before spending counts them all.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from shared.loop_greenlets import IoLock

PARTITION = "budget"
CAS_ATTEMPTS = 8
UNREACHABLE_WAIT = 5.0  # the table cannot be read: spend nothing, try again in a few seconds
# Each compare-and-swap takes, when the bucket has them, tokens for this many more takes of the same size,
# kept in this process for RESERVE_SECONDS: the sweep's other threads spend them without a Table round
# trip (before: a read and a CAS per take, and retries when 16 threads raced for one row — 60 % of a
# cycle's calls). Unused reserved tokens lapse: the fleet may under-spend a little, never over-spend.
RESERVE_TAKES = 2
RESERVE_SECONDS = 0.5
# ... and never longer than this share of the bucket's full refill time: a token held is a token taken
# earlier than it is spent, and Key Vault counts writes in a sliding 10 s window (0.5 s of 10 s at Azure's
# rates; a budget sized for a shorter window, e.g. the fleet bench's compressed clock, holds less).
RESERVE_REFILL_SHARE = 0.05
RESERVE_ONLY_ABOVE = 0.5  # of the burst (below: take exactly what is asked, nothing lapses)
# A compare-and-swap needs the entity's ETag, not a fresh read: with the ETag of this process's last view
# of the entity (its last write's or read's answer), the next take is one Table request (before: a read
# and a write). When another instance wrote since, Table answers 412 and the take reads and retries — a
# stale ETag can cost a request, never a token.
CAS_FROM_LAST_WRITE = True
# A take the bucket refuses by a view sent to the table after the take began is refused without another
# Table call: that view is at least as recent as the take, so it holds every token another instance gave
# back before (the release contract), and refill is in the GCRA arithmetic. A view older than the take
# is re-read before it refuses. ``release`` and ``penalize`` also compare-and-swap from the view (412:
# read and retry). Before: every refusal read the entity, and the asks queued behind a refused one each
# read again, milliseconds apart (4.1 Table reads per target-cycle in a budget-limited sweep).
DECIDE_FROM_VIEW = True


@dataclass
class _Ask:
    """One thread's take, queued while another thread of this process holds the bucket's row lock."""

    writes: int
    since: int  # the bucket's tick when the take began: a view of a later tick may refuse it
    granted: bool | None = None


@dataclass(frozen=True)
class _View:
    """The entity as this process last saw it: its own last write, or its last read."""

    tat: float
    etag: str
    tick: int  # the bucket's tick right before the request was sent (the state is at least that recent)


_FLATTENED = str.maketrans(dict.fromkeys("/\\#?", "|"))


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
        self._lock = IoLock()  # held across creating the table, once
        self._waits: dict[str, float] = {}
        self._reserve: dict[str, tuple[int, float]] = {}  # row -> (tokens held here, until)
        self._views: dict[str, _View] = {}  # row -> this process's last view of the entity
        # Orders takes and Table requests within the process (not a clock: a frozen or coarse clock
        # would tie a take with a view and let a view older than the take refuse it).
        self._ticks = itertools.count(1)
        self._booked: dict[str, float] = {}  # row -> when the last refused take was told to come back
        self._reserve_seconds = min(RESERVE_SECONDS, RESERVE_REFILL_SHARE * self.burst / self.rate)
        # One compare-and-swap in flight per bucket per process: this process's threads take turns instead
        # of racing each other for the same entity (at 16 threads on one vault's bucket most rounds were
        # lost races, each two wasted Table calls, and 8 lost in a row deferred the target).
        # An ``IoLock``: held across the Table round trip, by threads or by the I/O loop's greenlets.
        self._row_locks: dict[str, IoLock] = {}
        # Takes waiting for the row lock. The thread that gets the lock serves every take queued by then in
        # one compare-and-swap, in order (group commit): with the lock held across a Table round trip, 4
        # processes x 24 threads on one vault's bucket spent two thirds of their time queued behind it.
        self._asks: dict[str, list[_Ask]] = {}

    def _row(self, key: str) -> str:
        # Table keys may not contain / \ # ? (vault URLs and ids are flattened).
        return f"{self.scope}|{key.lower()}".translate(_FLATTENED)

    def _ensure_table(self) -> None:
        if self._created:
            return
        with self._lock:
            try:
                self.client.create_table()
            except ResourceExistsError:
                pass
            self._created = True

    def _row_lock(self, row: str) -> IoLock:
        with self._lock:
            return self._row_locks.setdefault(row, IoLock())

    def _tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def try_acquire(self, subscription_id: str, writes: int = 1) -> bool:
        row = self._row(subscription_id)
        with self._lock:
            ask = _Ask(writes, next(self._ticks))
            self._asks.setdefault(row, []).append(ask)
        with self._row_lock(row):
            if ask.granted is None:  # not served by the thread that held the lock before: serve the queue
                with self._lock:
                    queued = [other for other in self._asks.pop(row, []) if other is not ask]
                unserved = self._serve(row, [ask, *queued])
                if ask.granted is None:  # refused: it led the queue, so it heads what was not served
                    ask.granted = False
                    unserved = unserved[1:]
                with self._lock:  # the others make their own attempt when they get the lock
                    self._asks[row] = unserved + self._asks.get(row, [])
        assert ask.granted is not None
        return ask.granted

    def _serve(self, row: str, asks: list[_Ask]) -> list[_Ask]:
        """Grant a prefix of ``asks`` — from this process's reserve first, then in one compare-and-swap —
        and return the rest, the asks the bucket could not pay in order (the first of them refused, with
        ``_waits[row]`` saying when to come back)."""
        now = self.clock()
        held, until = self._reserve.pop(row, (0, 0.0))
        while asks and now < until and held >= asks[0].writes:
            held -= asks[0].writes
            asks.pop(0).granted = True
        if not asks:
            self._reserve[row] = (held, until)
            self._waits.pop(row, None)
            return []
        # Held tokens that lapsed (or are too few) were never spent: this compare-and-swap gives them back
        # to the bucket, so a reserve costs the fleet nothing once a next take comes.
        granted = self._acquire_shared(row, [ask.writes for ask in asks], asks[0].since, held)
        for ask in asks[:granted]:
            ask.granted = True
        if not granted and held and now < until:
            self._reserve[row] = (held, until)  # not given back: still this process's to spend
        return asks[granted:]

    def _acquire_shared(self, row: str, asks: Sequence[int], since: int, returned: int = 0) -> int:
        """How many of ``asks`` (a prefix; the first began at tick ``since``) the shared bucket granted."""
        try:
            self._ensure_table()
            return self._acquire(row, asks, since, returned)
        except AzureError as error:
            logger.warning("rotation.budget_unavailable %s: %s", self.scope, type(error).__name__)
            self._waits[row] = UNREACHABLE_WAIT
            return 0

    def _acquire(self, row: str, asks: Sequence[int], since: int, returned: int) -> int:
        for _ in range(CAS_ATTEMPTS):
            granted = self._attempt(row, asks, since, returned)
            if granted is None:
                continue  # another instance changed the entity first: recompute
            if granted == len(asks):
                self._waits.pop(row, None)
            return granted
        self._waits[row] = 0.5  # lost every race: other instances are spending it now
        return 0

    def _attempt(self, row: str, asks: Sequence[int], since: int, returned: int = 0) -> int | None:
        """One compare-and-swap round: how many of ``asks`` (a prefix) were taken — 0 with ``_waits[row]``
        set when refused; None when another instance changed the entity first (retry). A race is never
        read as a refusal: ``_waits`` is shared by this process's threads, and an entry left by an earlier
        refusal must not turn a lost race into a deferral. ``returned`` tokens held here and never spent go
        back first. Grants always go through the compare-and-swap; only a refusal may be decided from the
        view, and only from one sent after the first ask began (tick ``since``)."""
        now = self.clock()
        view = self._views.get(row) if CAS_FROM_LAST_WRITE else None
        cached = view is not None
        if view is None:
            view = self._read(row)
            if view is None:  # no entity yet: the first take creates it
                granted, tat, wait, extra = self._take(0.0, now, asks)
                if not granted:
                    self._waits[row] = wait
                    return 0
                tick = self._tick()
                try:
                    written = self.client.create_entity(
                        {"PartitionKey": PARTITION, "RowKey": row, "tat": tat}
                    )
                except ResourceExistsError:
                    return None
                self._taken(row, tat, now, extra, written.get("etag"), tick, wait)
                return granted
        granted, tat, wait, extra = self._take(view.tat - returned / self.rate, now, asks)
        if not granted:
            if cached and (view.tick < since or not DECIDE_FROM_VIEW):
                self._views.pop(row, None)
                return None  # refused by a view older than the take: read what the fleet holds now
            self._waits[row] = wait
            return 0
        tick = self._tick()
        try:
            written = self.client.update_entity(
                {"PartitionKey": PARTITION, "RowKey": row, "tat": tat},
                mode=UpdateMode.REPLACE,
                etag=view.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            self._views.pop(row, None)
            return None  # another instance wrote since: the next attempt reads
        self._taken(row, tat, now, extra, written.get("etag"), tick, wait)
        return granted

    def _read(self, row: str) -> _View | None:
        """The entity as the table holds it now (None: not created yet), kept as this process's view
        (without ``DECIDE_FROM_VIEW``: used only by the call that read it, as before)."""
        tick = self._tick()
        try:
            entity = self.client.get_entity(PARTITION, row)
        except ResourceNotFoundError:
            return None
        view = _View(float(entity.get("tat", 0.0)), str(entity.metadata["etag"]), tick)
        if DECIDE_FROM_VIEW:
            self._views[row] = view
        return view

    def _take(self, seen_tat: float, now: float, asks: Sequence[int]) -> tuple[int, float, float, int]:
        """(asks granted — the longest prefix the bucket holds, new tat, wait for the first ask refused,
        tokens reserved besides): up to RESERVE_TAKES more takes of the first ask's size when every ask was
        granted and the bucket holds them."""
        granted, needed, wait = 0, 0, 0.0
        for writes in asks:
            allowed, _, wait = gcra(seen_tat, now, needed + writes, self.rate, self.burst)
            if not allowed:
                break
            granted, needed = granted + 1, needed + writes
        if not granted:
            return 0, seen_tat, wait, 0
        available = int((now - max(seen_tat, now)) * self.rate + self.burst + 1e-9)
        # Reserve only from a bucket more than half full: when the budget is what limits the work, reserved
        # tokens that lapse unspent are throughput lost (a sweep ends, its deferred targets wait).
        spare = available - int(self.burst * RESERVE_ONLY_ABOVE)
        taken = needed
        if granted == len(asks):
            taken = max(needed, min(spare, needed + asks[0] * RESERVE_TAKES))
        return granted, max(seen_tat, now) + taken / self.rate, wait, taken - needed

    def _taken(
        self, row: str, tat: float, now: float, extra: int, etag: str | None, tick: int, wait: float = 0.0
    ) -> None:
        self._reserve[row] = (extra, now + self._reserve_seconds)  # what was held went back in this take
        if wait:
            self._waits[row] = wait  # some asks were refused: when the bucket has the first of them
        self._remember(row, tat, etag, tick)

    def _remember(self, row: str, tat: float, etag: str | None, tick: int) -> None:
        if etag:
            self._views[row] = _View(tat, etag, tick)
        else:  # no ETag in the answer: the view would be stale
            self._views.pop(row, None)

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
        with self._row_lock(row):  # the row's view changes only under its lock
            with self._lock:
                self._reserve.pop(row, None)  # Azure said 429: spend nothing held here
            self._move_tat(row, lambda tat, now: max(tat, now + retry_after_seconds + self.burst / self.rate))

    def release(self, subscription_id: str, writes: int) -> None:
        """Move the shared bucket's ``tat`` back by ``writes`` intervals. A ``tat`` in the past already
        means a full bucket (``gcra`` starts from ``max(tat, now)``): never more than the burst is held."""
        row = self._row(subscription_id)
        with self._row_lock(row):
            self._move_tat(row, lambda tat, now: tat - writes / self.rate)
        self._waits.pop(row, None)

    def _move_tat(self, row: str, move: Callable[[float, float], float]) -> None:
        """Compare-and-swap ``tat`` to ``move(tat, now)``; best effort (a missing entity: nothing taken).
        From this process's view of the entity when it has one: one Table call, where a read first made
        two; the ETag makes it exactly what a read would have given, and a 412 reads and retries."""
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            cached = self._views.pop(row, None)  # this write changes the ETag
            view = cached if DECIDE_FROM_VIEW and CAS_FROM_LAST_WRITE else None
            try:
                view = view or self._read(row)
                if view is None:
                    return
                tat = move(view.tat, now)
                tick = self._tick()
                written = self.client.update_entity(
                    {"PartitionKey": PARTITION, "RowKey": row, "tat": tat},
                    mode=UpdateMode.REPLACE,
                    etag=view.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                self._views.pop(row, None)  # another instance wrote since: the next round reads
                continue
            except AzureError:
                self._views.pop(row, None)
                return
            if DECIDE_FROM_VIEW:
                self._remember(row, tat, written.get("etag"), tick)
            return
