"""The fleet-wide budgets against Azurite: two limiter objects (two Function instances) share one bucket
through Table storage, and a deferred target comes back as a queue message that is invisible until its
budget refills."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rotation.ports import WriteRateLimiter
from shared.azure.budget_table import RESERVE_TAKES, TableTokenBucket
from shared.azure.queues import QueueWorkScheduler
from shared.budgets import TokenBucketLimiter
from tests.contract.conftest import StoragePath, storage_path
from triggers.queue_handler import parse_message


def test_two_instances_share_one_bucket_and_never_exceed_it(storage: StoragePath) -> None:
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    first = TableTokenBucket(table, "arm|id", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "arm|id", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    taken = [first.try_acquire("sub-1", 2) for _ in range(6)] + [
        second.try_acquire("sub-1", 2) for _ in range(6)
    ]
    assert taken.count(True) == 10  # 20 tokens, 2 at a time, whichever instance asks
    assert second.wait_seconds("sub-1", 2) > 0 and not first.try_acquire("sub-1", 2)
    assert second.try_acquire("sub-2", 2)  # another subscription, another bucket
    frozen[0] += 0.2  # two tokens refilled
    assert first.try_acquire("sub-1", 2) and not second.try_acquire("sub-1", 2)
    second.penalize("sub-1", 5.0)  # ARM said 429 anyway: nobody writes before Retry-After
    frozen[0] += 4.9
    assert not first.try_acquire("sub-1")
    frozen[0] += 0.2
    assert first.try_acquire("sub-1")


def test_a_deferred_target_is_rescheduled_as_an_invisible_queue_message(storage: StoragePath) -> None:
    name = "sched-" + uuid.uuid4().hex[:8]
    queue = storage.queue(name)
    queue.create_queue()
    QueueWorkScheduler(queue).schedule("/subscriptions/s/x", delay_seconds=1.2)
    assert list(queue.receive_messages()) == []  # not before its budget refills
    time.sleep(2.5)  # the test waits for Azurite's visibility clock; the product never sleeps
    [message] = list(queue.receive_messages())
    assert json.loads(message.content) == {"target": "/subscriptions/s/x"}


def test_one_instances_threads_share_a_reserve_and_never_exceed_the_bucket(storage: StoragePath) -> None:
    """16 sweep threads taking tokens at once: every token of the bucket is spent, never one more, and
    most takes are served from the instance's reserve instead of a Table read + compare-and-swap each."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    reads = [0]
    get_entity = table.get_entity

    def counted_get_entity(*args: object, **kwargs: object) -> object:
        reads[0] += 1
        return get_entity(*args, **kwargs)

    table.get_entity = counted_get_entity
    frozen = [1_000.0]
    bucket = TableTokenBucket(table, "kv", rate_per_second=10, burst=60, clock=lambda: frozen[0])
    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(lambda _: bucket.try_acquire("vault", 3), range(40)))
    assert taken.count(True) == 20  # 60 tokens, 3 at a time: all of them, not one more
    # One read per reserve, not per take; each of the 20 refusals reads the table (never decided from a
    # state seen earlier: tokens another instance released must count at once).
    assert reads[0] <= 20 // (1 + RESERVE_TAKES) + 2 + 20, reads[0]
    assert not bucket.try_acquire("vault", 3)  # empty: refused (read from the table: see the release test)
    other = TableTokenBucket(table, "kv", rate_per_second=10, burst=60, clock=lambda: frozen[0])
    assert not other.try_acquire("vault", 1)  # the other instance sees the same empty bucket


def test_threads_queued_behind_a_take_are_served_by_one_compare_and_swap(storage: StoragePath) -> None:
    """Group commit: while one thread's compare-and-swap is on the wire, the takes queued behind it are
    granted together by the next one, in order, never beyond the bucket — instead of one round trip each
    (4 processes x 24 threads on one vault's bucket spent two thirds of their time in that queue)."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    writes = [0]
    update_entity, create_entity = table.update_entity, table.create_entity

    def slow(call: Any) -> Any:
        def wrapped(*args: object, **kwargs: object) -> object:
            writes[0] += 1
            time.sleep(0.2)  # a Table round trip under load: the other threads queue meanwhile
            return call(*args, **kwargs)

        return wrapped

    table.update_entity = slow(update_entity)
    table.create_entity = slow(create_entity)
    frozen = [1_000.0]
    bucket = TableTokenBucket(table, "kv", rate_per_second=10, burst=30, clock=lambda: frozen[0])
    with ThreadPoolExecutor(max_workers=24) as pool:
        taken = list(pool.map(lambda _: bucket.try_acquire("vault", 2), range(24)))
    assert taken.count(True) == 15  # 30 tokens, 2 at a time: all of them, not one more
    assert writes[0] <= 4, writes[0]  # one per round trip, not one per take (or per 3 with the reserve)
    assert bucket.wait_seconds("vault", 2) > 0  # the refused ones come back when the bucket refills
    other = TableTokenBucket(table, "kv", rate_per_second=10, burst=30, clock=lambda: frozen[0])
    assert not other.try_acquire("vault", 1)  # the table holds what was granted: the bucket is empty


@pytest.mark.parametrize("kind", ["memory", "sync", "async"])
def test_released_tokens_come_back_to_every_instance_and_never_beyond_the_burst(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """What the runner does when one budget grants and the other refuses: the granted tokens go back."""
    frozen = [1_000.0]
    if kind != "memory":  # Table storage on that I/O path
        table = storage_path(kind, request.getfixturevalue("azurite")).table("budget" + uuid.uuid4().hex[:8])
        first: WriteRateLimiter = TableTokenBucket(table, "kv", 10, 8, clock=lambda: frozen[0])
        second: WriteRateLimiter = TableTokenBucket(table, "kv", 10, 8, clock=lambda: frozen[0])
    else:
        first = second = TokenBucketLimiter(10, 8, clock=lambda: frozen[0])
    second.release("https://kv-a", 3)  # nothing taken yet: a full bucket stays at its burst
    assert first.try_acquire("https://kv-a", 8) and not second.try_acquire("https://kv-a")
    first.release("https://kv-a", 3)  # e.g. ARM refused the step these were taken for
    assert second.try_acquire("https://kv-a", 3) and not second.try_acquire("https://kv-a")
    second.release("https://kv-b", 2)  # a bucket nobody used: still only its burst
    assert first.try_acquire("https://kv-b", 8) and not first.try_acquire("https://kv-b")


class _RacingTable:
    """The real table client, except that right before the next conditional update another instance
    spends from the same bucket (the race many instances and threads run all the time)."""

    def __init__(self, real: Any, rival: Any) -> None:
        self.real, self.rival, self.armed = real, rival, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_entity(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            self.rival()
        return self.real.update_entity(*args, **kwargs)


def test_a_lost_race_after_an_earlier_refusal_is_retried_not_read_as_a_refusal(
    storage: StoragePath,
) -> None:
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    rival = TableTokenBucket(table, "kv", 10, 10, clock=lambda: frozen[0])
    racing = _RacingTable(table, lambda: rival.try_acquire("https://kv-a"))
    bucket = TableTokenBucket(racing, "kv", 10, 10, clock=lambda: frozen[0])  # type: ignore[arg-type]
    assert bucket.try_acquire("https://kv-a", 10) and not bucket.try_acquire("https://kv-a")  # refused once
    frozen[0] += 1.0  # the bucket is full again
    racing.armed = True
    assert bucket.try_acquire("https://kv-a", 2)  # lost one compare-and-swap to the rival, then took it
    # Spent from the table: the rival 1 + a reserve of 2 takes (the bucket was over half full), this
    # instance exactly its 2 (at 7 of 10 it may reserve only what is above half) → 5 of 10 are left.
    assert RESERVE_TAKES == 2
    third = TableTokenBucket(table, "kv", 10, 10, clock=lambda: frozen[0])
    assert third.try_acquire("https://kv-a", 5) and not third.try_acquire("https://kv-a")


def test_reserved_tokens_that_lapse_go_back_to_the_bucket(storage: StoragePath) -> None:
    """A reserve not spent in time is given back in the instance's next compare-and-swap: the fleet does
    not lose the tokens one instance took ahead and did not use."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    first = TableTokenBucket(table, "kv", 1, 10, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "kv", 1, 10, clock=lambda: frozen[0])
    assert first.try_acquire("https://kv-a", 3)  # 3 + a reserve of 2 (what is above half the bucket)
    assert second.try_acquire("https://kv-a", 5) and not second.try_acquire("https://kv-a")  # empty
    frozen[0] += 0.51  # the reserve (0.5 s) lapsed; less than one token refilled
    assert first.try_acquire("https://kv-a")  # possible only because its 2 lapsed tokens go back first
    assert second.try_acquire("https://kv-a") and not second.try_acquire("https://kv-a")  # 2 - 1 = 1 left


def test_a_take_after_this_instances_own_write_is_one_request_and_a_stale_etag_costs_no_token(
    storage: StoragePath,
) -> None:
    """The compare-and-swap reuses the ETag of this instance's last write instead of reading the entity
    first; when another instance wrote since, Table answers 412 and the take reads and retries."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    requests: list[str] = []
    for name in ("get_entity", "update_entity", "create_entity"):
        original = getattr(table, name)

        def counted(
            *args: object, _name: str = name, _original: object = original, **kwargs: object
        ) -> object:
            requests.append(_name)
            return _original(*args, **kwargs)  # type: ignore[operator]

        setattr(table, name, counted)
    frozen = [1_000.0]
    first = TableTokenBucket(table, "arm|id", rate_per_second=10, burst=1000, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "arm|id", rate_per_second=10, burst=1000, clock=lambda: frozen[0])
    takes_per_write = 1 + RESERVE_TAKES
    for _ in range(2 * takes_per_write):
        assert first.try_acquire("sub-1", 10)
    # the first write creates the row after a 404; the next one reuses that write's ETag: no read
    assert requests == ["get_entity", "create_entity", "update_entity"], requests
    requests.clear()
    assert second.try_acquire("sub-1", 10)  # the other instance reads, then writes: first's ETag is stale
    frozen[0] += 1.0  # first's reserve lapses
    requests.clear()
    assert first.try_acquire("sub-1", 10)
    assert requests[:3] == ["update_entity", "get_entity", "update_entity"], requests  # 412, read, retry
    granted = 2 * takes_per_write + 2  # takes of 10 granted so far
    while first.try_acquire("sub-1", 10) or second.try_acquire("sub-1", 10):
        granted += 1
    assert granted * 10 <= 1000 + 10 * 1.0 + 1e-9  # the burst plus one second of refill, never more


def test_refused_takes_come_back_spread_at_the_refill_rate_not_all_at_the_next_token(
    storage: StoragePath,
) -> None:
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    bucket = TableTokenBucket(table, "kv", rate_per_second=10, burst=3, clock=lambda: frozen[0])
    assert bucket.try_acquire("vault", 3)
    waits = []
    for _ in range(4):
        assert not bucket.try_acquire("vault", 3)
        waits.append(bucket.wait_seconds("vault", 3))
    # the first comes back when 3 tokens have refilled, each next one 3 tokens (0.3 s) later
    assert [round(w, 3) for w in waits] == [0.3, 0.6, 0.9, 1.2], waits
    frozen[0] += 0.3
    assert bucket.try_acquire("vault", 3)  # the first deferred take finds its tokens when told to come


def test_a_target_already_scheduled_by_this_instance_is_not_sent_twice(storage: StoragePath) -> None:
    """A sweep that defers a target again before its message is due does not add a second message; an
    earlier time than the pending message's, or a target whose message is due already, gets one."""
    name = "dedup-" + uuid.uuid4().hex[:8]
    queue = storage.queue(name)
    queue.create_queue()
    now = [0.0]
    scheduler = QueueWorkScheduler(queue, clock=lambda: now[0])
    scheduler.schedule("/subscriptions/s/a", delay_seconds=5)
    now[0] = 1.0
    scheduler.schedule("/subscriptions/s/a", delay_seconds=4.5)  # due at 5 anyway: not sent again
    scheduler.schedule("/subscriptions/s/a", delay_seconds=30)  # later than the pending one: not sent
    assert queue.get_queue_properties().approximate_message_count == 1
    scheduler.schedule("/subscriptions/s/a", delay_seconds=1)  # earlier than the pending one: sent
    now[0] = 10.0  # both are due: a new deferral gets its own message
    scheduler.schedule("/subscriptions/s/a", delay_seconds=2)
    scheduler.schedule("/subscriptions/s/b", delay_seconds=2)  # another target
    assert queue.get_queue_properties().approximate_message_count == 4


def test_targets_due_in_the_same_second_share_a_message_of_at_most_sixteen(storage: StoragePath) -> None:
    """``schedule_many``: 20 targets due together are two messages (16 and 4), each what the queue trigger
    parses back into its targets; one this instance already brings back by then is left out."""
    name = "group-" + uuid.uuid4().hex[:8]
    queue = storage.queue(name)
    queue.create_queue()
    scheduler = QueueWorkScheduler(queue, clock=lambda: 0.0)
    ids = [f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a{i}"
           for i in range(21)]
    scheduler.schedule(ids[20], delay_seconds=1)
    scheduler.schedule_many(ids, delay_seconds=0.4)  # visible after 1 s, as ids[20]'s own message
    assert queue.get_queue_properties().approximate_message_count == 3
    assert list(queue.receive_messages()) == []  # none visible before its second
    time.sleep(1.2)
    received = list(queue.receive_messages(max_messages=32))
    groups = sorted((parse_message(m.content.encode()) for m in received), key=len)
    assert [len(g) for g in groups] == [1, 4, 16]
    assert sorted(t for g in groups for t in g) == sorted(ids)


def test_an_instance_reserves_nothing_from_a_bucket_under_half_full(storage: StoragePath) -> None:
    """When the budget is what limits the work, tokens reserved by one instance and left unspent are lost to
    every instance: below half the burst a take takes exactly what it asks."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    first = TableTokenBucket(table, "kv", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "kv", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    assert second.try_acquire("vault", 12)  # 8 left: under half of 20
    assert first.try_acquire("vault", 2)  # takes 2, not 2 plus a reserve of 4
    assert [second.try_acquire("vault", 2) for _ in range(4)] == [True, True, True, False]  # the other 6


def _counted(table: Any, *names: str) -> list[str]:
    """The Table requests ``table`` sends through the named methods, in order."""
    requests: list[str] = []
    for name in names:
        original = getattr(table, name)

        def counted(*args: object, _name: str = name, _original: Any = original, **kwargs: object) -> object:
            requests.append(_name)
            return _original(*args, **kwargs)

        setattr(table, name, counted)
    return requests


def test_a_burst_of_refused_takes_is_decided_by_the_next_read_not_by_a_read_each(
    storage: StoragePath,
) -> None:
    """16 threads refused by an empty bucket: the takes that began while a read was on the wire are all
    refused by the next read (a view at least as recent as each of them), not by a read each (16 before)."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    other = TableTokenBucket(table, "kv", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    assert other.try_acquire("vault", 20)  # another instance spent the bucket
    started, everyone = [0], threading.Event()
    get_entity = table.get_entity

    def slow_read(*args: object, **kwargs: object) -> object:
        everyone.wait(10)  # the first read is on the wire while every other take begins
        time.sleep(0.05)
        return get_entity(*args, **kwargs)

    table.get_entity = slow_read
    reads = _counted(table, "get_entity", "update_entity", "create_entity")
    bucket = TableTokenBucket(table, "kv", rate_per_second=10, burst=20, clock=lambda: frozen[0])
    lock = threading.Lock()

    def take(_: int) -> bool:
        with lock:
            started[0] += 1
            if started[0] == 16:
                everyone.set()
        return bucket.try_acquire("vault", 2)

    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(take, range(16)))
    assert taken.count(True) == 0
    # the first read began before the other 15 takes, so it refuses only its own; the second decides all
    assert reads == ["get_entity", "get_entity"], reads
    assert 0 < bucket.wait_seconds("vault", 2) <= 0.2 + 1e-9  # told when the bucket has them, as before
    reads.clear()
    assert not bucket.try_acquire("vault", 2)  # a take that begins after every view: read again
    assert reads == ["get_entity"], reads


def test_takes_refused_by_the_write_that_emptied_the_bucket_read_nothing(storage: StoragePath) -> None:
    """Group commit: the takes queued behind the compare-and-swap that spent the last tokens are refused
    by what that write returned — they began before it was sent — instead of each reading the entity."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    update_entity, create_entity = table.update_entity, table.create_entity

    def slow(call: Any) -> Any:
        def wrapped(*args: object, **kwargs: object) -> object:
            time.sleep(0.2)  # a Table round trip under load: the other threads queue meanwhile
            return call(*args, **kwargs)

        return wrapped

    table.update_entity = slow(update_entity)
    table.create_entity = slow(create_entity)
    requests = _counted(table, "get_entity", "update_entity", "create_entity")
    frozen = [1_000.0]
    bucket = TableTokenBucket(table, "kv", rate_per_second=10, burst=30, clock=lambda: frozen[0])
    with ThreadPoolExecutor(max_workers=24) as pool:
        taken = list(pool.map(lambda _: bucket.try_acquire("vault", 2), range(24)))
    assert taken.count(True) == 15  # 30 tokens, 2 at a time: all of them, not one more
    assert requests.count("get_entity") == 1, requests  # the 404 before the row exists; no refusal reads
    assert bucket.wait_seconds("vault", 2) > 0
    other = TableTokenBucket(table, "kv", rate_per_second=10, burst=30, clock=lambda: frozen[0])
    assert not other.try_acquire("vault", 1)  # the table holds what was granted: the bucket is empty


def test_a_release_by_another_instance_is_seen_by_the_next_take_despite_a_fresh_refusing_view(
    storage: StoragePath,
) -> None:
    """This instance's view (its last read, a moment ago) refuses, but a take that begins after another
    instance released reads before refusing: the release counts at once, the clock has not moved."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    first = TableTokenBucket(table, "kv", rate_per_second=10, burst=8, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "kv", rate_per_second=10, burst=8, clock=lambda: frozen[0])
    assert second.try_acquire("https://kv-a", 8)
    requests = _counted(table, "get_entity", "update_entity")
    assert not first.try_acquire("https://kv-a", 2)  # read: its view is the empty bucket
    second.release("https://kv-a", 2)  # from second's own view (its write): one request
    assert first.try_acquire("https://kv-a", 2)  # its view is older than this take: read, then taken
    assert requests == ["get_entity", "update_entity", "get_entity", "update_entity"], requests
    assert not second.try_acquire("https://kv-a") and not first.try_acquire("https://kv-a")


def test_release_and_penalize_write_from_the_view_and_a_stale_one_costs_a_request_not_a_token(
    storage: StoragePath,
) -> None:
    """``release`` and ``penalize`` compare-and-swap with the ETag of this instance's last view: one Table
    request where a read and a write were two; after another instance wrote, 412, read and retry."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    first = TableTokenBucket(table, "kv", rate_per_second=10, burst=10, clock=lambda: frozen[0])
    second = TableTokenBucket(table, "kv", rate_per_second=10, burst=10, clock=lambda: frozen[0])
    assert first.try_acquire("https://kv-a", 6)  # 6 of 10 spent (no reserve: 4 left is under half)
    requests = _counted(table, "get_entity", "update_entity", "create_entity")
    first.release("https://kv-a", 2)  # 4 spent
    assert requests == ["update_entity"], requests
    requests.clear()
    assert second.try_acquire("https://kv-a", 3)  # 7 spent; first's view is stale now
    first.release("https://kv-a", 1)  # 6 spent
    assert requests == ["get_entity", "update_entity", "update_entity", "get_entity", "update_entity"]
    third = TableTokenBucket(table, "kv", rate_per_second=10, burst=10, clock=lambda: frozen[0])
    assert third.try_acquire("https://kv-a", 4) and not third.try_acquire("https://kv-a")  # exactly 4 left
    requests.clear()
    third.penalize("https://kv-a", 2.0)  # from third's own view (its refusal's read): one request
    assert requests == ["update_entity"], requests
    frozen[0] += 2.0  # Retry-After: the bucket refills from empty only then, for every instance
    assert not first.try_acquire("https://kv-a") and not second.try_acquire("https://kv-a")
    frozen[0] += 0.1 + 1e-6
    assert first.try_acquire("https://kv-a") and not second.try_acquire("https://kv-a")


def test_two_instances_taking_and_releasing_at_once_never_spend_more_than_the_bucket(
    storage: StoragePath,
) -> None:
    """Refusals decided from views, releases written from them, group commit and reserves, two instances
    of 8 threads each on one row: what is granted minus what is given back never exceeds the burst."""
    table = storage.table("budget" + uuid.uuid4().hex[:8])
    frozen = [1_000.0]
    instances = [
        TableTokenBucket(table, "kv", rate_per_second=10, burst=40, clock=lambda: frozen[0]) for _ in range(2)
    ]
    lock = threading.Lock()
    spent = [0]

    def work(worker: int) -> None:
        bucket, rng = instances[worker % 2], random.Random(worker)
        for _ in range(25):
            writes = rng.randint(1, 3)
            if bucket.try_acquire("vault", writes):
                with lock:
                    spent[0] += writes
                if rng.random() < 0.4:  # e.g. the ARM budget refused: the vault's tokens go back
                    with lock:
                        spent[0] -= writes  # counted back first: a release never makes room before it
                    bucket.release("vault", writes)
            with lock:
                assert spent[0] <= 40, spent[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(work, range(16)))
    for bucket in [*instances, TableTokenBucket(table, "kv", 10, 40, clock=lambda: frozen[0])]:
        while bucket.try_acquire("vault", 1):  # what is left: reserves, then the table
            spent[0] += 1
    assert spent[0] <= 40, spent[0]
