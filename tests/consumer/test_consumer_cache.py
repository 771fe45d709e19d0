"""Pure unit tests of the RotatingKey cache: fake clock, in-memory secret source, real threads."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

from keyrotation_consumer import (
    ActiveKey,
    KeyLayoutError,
    KeyUnavailableError,
    KeyVaultReadError,
    Layout,
    RotatingKey,
)
from testkit.clock import ManualClock
from testkit.secret_source import FakeSecretSource

PREFIX = "acct"
TTL = 300.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def source() -> FakeSecretSource:
    source = FakeSecretSource()
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-a", active="key1")
    return source


def make_cache(source: FakeSecretSource, clock: ManualClock, **options) -> RotatingKey:
    options.setdefault("ttl", TTL)
    return RotatingKey(source, PREFIX, clock=clock.timestamp, **options)


def run_threads(count: int, target) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# -- TTL protocol ------------------------------------------------------------------------------------


def test_reads_active_secret_once_per_ttl_and_reports_its_slot(source, clock):
    cache = make_cache(source, clock)

    first = cache.current()
    assert (first.value, first.slot, first.secret_name) == ("value-one-a", "key1", "acct-active")
    for _ in range(100):
        assert cache.get() == "value-one-a"
    clock.advance(seconds=TTL - 0.001)
    assert cache.get() == "value-one-a"
    assert dict(source.reads) == {"acct-active": 1}
    assert cache.stats.key_vault_reads == 1

    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    clock.advance(seconds=0.001)
    swapped = cache.current()
    assert (swapped.value, swapped.slot) == ("value-two-b", "key2")
    assert dict(source.reads) == {"acct-active": 2}
    assert cache.stats.key_vault_reads == 2


def test_timedelta_options_are_accepted(source, clock):
    cache = RotatingKey(source, PREFIX, ttl=timedelta(minutes=1), max_stale=timedelta(hours=1),
                        retry_interval=timedelta(seconds=5), clock=clock.timestamp)
    cache.get()
    clock.advance(seconds=59)
    cache.get()
    clock.advance(seconds=1)
    cache.get()
    assert source.reads["acct-active"] == 2


def test_refresh_reads_now_even_when_fresh(source, clock):
    cache = make_cache(source, clock)
    cache.get()
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")

    assert cache.refresh().value == "value-two-b"
    assert cache.get() == "value-two-b"
    assert source.reads["acct-active"] == 2


def test_cold_start_threads_wait_for_one_shared_read(source, clock):
    cache = make_cache(source, clock)
    source.gate = threading.Event()
    results: list[str] = []
    threads = run_threads(24, lambda: results.append(cache.get()))

    assert source.read_started.wait(5)
    time.sleep(0.2)
    assert results == [], "with nothing cached, every thread must wait for the read"
    source.gate.set()
    join_all(threads)

    assert results == ["value-one-a"] * 24
    assert source.total_reads == 1


def test_exactly_one_read_per_ttl_under_24_threads(source, clock):
    cache = make_cache(source, clock)
    previous = cache.get()
    for period in range(1, 6):
        # Alternate the active slot so that every period brings a value different from the last one.
        new_value = f"value-two-{period}"
        active = "key2" if period % 2 else "key1"
        source.store_layout(PREFIX, key1="value-one-a", key2=new_value, active=active)
        expected = new_value if active == "key2" else "value-one-a"
        clock.advance(seconds=TTL)
        source.gate = threading.Event()
        source.read_started.clear()
        barrier = threading.Barrier(24)
        results: list[str] = []

        def worker(barrier=barrier, results=results) -> None:
            barrier.wait()
            results.append(cache.get())

        threads = run_threads(24, worker)
        assert source.read_started.wait(5)
        # The 23 threads that are not reading must not block: they get the still-usable cached key.
        wait_until(lambda results=results: len(results) == 23)
        assert results == [previous] * 23
        source.gate.set()
        join_all(threads)

        assert source.total_reads == 1 + period, f"period {period}: one Key Vault read per TTL"
        assert cache.stats.key_vault_reads == 1 + period
        assert results[-1] == expected, "the reading thread returns what it read"
        assert cache.get() == expected
        previous = expected


def test_many_threads_hammering_through_many_ttls_read_once_per_ttl(source, clock):
    cache = make_cache(source, clock)
    stop = threading.Event()
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            while not stop.is_set():
                assert cache.get().startswith("value-")
        except BaseException as exc:
            errors.append(exc)

    threads = run_threads(20, hammer)
    try:
        for _ in range(10):
            time.sleep(0.02)
            clock.advance(seconds=TTL)
            wait_until(lambda: cache.stats.refreshes >= source.total_reads)
    finally:
        stop.set()
        join_all(threads)
    assert errors == []
    # One read at start plus at most one per TTL period that elapsed (a period may see no traffic).
    assert 1 <= source.total_reads <= 11
    assert source.total_reads == cache.stats.key_vault_reads == cache.stats.refreshes


# -- 401 protocol ------------------------------------------------------------------------------------


def test_unauthorized_after_pointer_moved_adopts_the_new_active_key(source, clock):
    cache = make_cache(source, clock)
    rejected = cache.current()
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")

    replacement = cache.refresh_after_unauthorized(rejected)

    assert replacement is not None
    assert (replacement.value, replacement.slot) == ("value-two-b", "key2")
    assert cache.get() == "value-two-b"
    assert dict(source.reads) == {"acct-active": 2}
    assert cache.stats.unauthorized_refreshes == 1
    assert cache.stats.other_slot_fallbacks == 0


def test_unauthorized_before_pointer_moved_uses_the_other_slot(source, clock):
    cache = make_cache(source, clock)
    rejected = cache.current()

    replacement = cache.refresh_after_unauthorized(rejected)

    assert replacement is not None
    assert (replacement.value, replacement.slot) == ("value-two-a", "key2")
    assert replacement.secret_name == "acct-key2"
    assert cache.get() == "value-two-a"
    assert dict(source.reads) == {"acct-active": 2, "acct-key2": 1}
    assert cache.stats.other_slot_fallbacks == 1


def test_report_for_an_already_replaced_key_needs_no_read(source, clock):
    cache = make_cache(source, clock)
    old = cache.current()
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    cache.refresh_after_unauthorized(old)
    reads = source.total_reads

    again = cache.refresh_after_unauthorized(old)

    assert again is not None and again.value == "value-two-b"
    assert source.total_reads == reads


def test_twenty_threads_reporting_the_same_401_share_one_refresh(source, clock):
    cache = make_cache(source, clock)
    rejected = cache.current()
    source.gate = threading.Event()
    source.read_started.clear()
    barrier = threading.Barrier(20)
    results: list[ActiveKey | None] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.refresh_after_unauthorized(rejected))

    threads = run_threads(20, worker)
    assert source.read_started.wait(5)
    time.sleep(0.2)
    assert results == [], "threads reporting a 401 wait for the shared refresh"
    source.gate.set()
    join_all(threads)

    assert [r.value if r else None for r in results] == ["value-two-a"] * 20
    assert dict(source.reads) == {"acct-active": 2, "acct-key2": 1}
    assert cache.stats.unauthorized_refreshes == 1


def test_nothing_better_returns_none_and_is_not_re_read_within_retry_interval(source, clock):
    source.store_layout(PREFIX, key1="same-value", key2="same-value", active="key1")
    cache = make_cache(source, clock, retry_interval=10)
    rejected = cache.current()

    assert cache.refresh_after_unauthorized(rejected) is None
    reads = source.total_reads
    assert dict(source.reads) == {"acct-active": 2, "acct-key2": 1, "acct-key1": 1}
    for _ in range(50):
        assert cache.refresh_after_unauthorized(rejected) is None
    assert source.total_reads == reads

    clock.advance(seconds=10)
    assert cache.refresh_after_unauthorized(rejected) is None
    assert source.total_reads == reads + 3
    assert cache.get() == "same-value"


def test_other_slot_missing_returns_none(source, clock):
    del source.secrets["acct-key2"]
    cache = make_cache(source, clock)
    assert cache.refresh_after_unauthorized(cache.current()) is None
    assert cache.get() == "value-one-a"


def test_fallback_sticks_while_active_secret_still_holds_the_rejected_value(source, clock):
    cache = make_cache(source, clock)
    cache.refresh_after_unauthorized(cache.current())
    assert cache.get() == "value-two-a"

    clock.advance(seconds=TTL)
    assert cache.get() == "value-two-a", "P-active still holds the rejected key: keep the other slot"
    assert source.reads["acct-active"] == 3

    source.store_layout(PREFIX, key1="value-one-b", key2="value-two-a", active="key1")
    clock.advance(seconds=TTL)
    assert cache.get() == "value-one-b", "once the vault moves on, follow it again"


def test_stale_active_secret_never_sends_us_back_to_a_rejected_key(source, clock):
    cache = make_cache(source, clock)
    cache.refresh_after_unauthorized(cache.current())  # value-one-a rejected -> slot key2
    # Now key2 is revoked too; P-active still holds the old key1 value, P-key1 already a new one.
    source.store(f"{PREFIX}-key1", "value-one-b", slot="key1")
    source.store(f"{PREFIX}-key2", "value-two-a", slot="key2")

    replacement = cache.refresh_after_unauthorized(cache.current())

    assert replacement is not None
    assert (replacement.value, replacement.slot) == ("value-one-b", "key1")
    assert cache.get() == "value-one-b"


def test_unauthorized_without_slot_tag_tries_both_slots(clock):
    source = FakeSecretSource()
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-a", active="key1", slot_tag=False)
    cache = make_cache(source, clock)
    rejected = cache.current()
    assert rejected.slot is None

    replacement = cache.refresh_after_unauthorized(rejected)

    assert replacement is not None and (replacement.value, replacement.slot) == ("value-two-a", "key2")
    assert dict(source.reads) == {"acct-active": 2, "acct-key1": 1, "acct-key2": 1}


# -- pointer layout ----------------------------------------------------------------------------------


def test_pointer_layout_reads_pointer_then_slot(source, clock):
    cache = make_cache(source, clock, layout=Layout.POINTER)

    key = cache.current()

    assert (key.value, key.slot, key.secret_name) == ("value-one-a", "key1", "acct-key1")
    assert dict(source.reads) == {"acct-active-key": 1, "acct-key1": 1}
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    clock.advance(seconds=TTL)
    assert cache.get() == "value-two-b"
    assert cache.stats.key_vault_reads == 4


def test_pointer_layout_unauthorized_uses_other_slot(source, clock):
    cache = make_cache(source, clock, layout=Layout.POINTER)
    replacement = cache.refresh_after_unauthorized(cache.current())
    assert replacement is not None and replacement.value == "value-two-a"


def test_bad_pointer_is_a_layout_error_without_the_value(clock):
    source = FakeSecretSource()
    source.store(f"{PREFIX}-active-key", "sk-looks-like-a-key")
    cache = make_cache(source, clock, layout=Layout.POINTER)

    with pytest.raises(KeyUnavailableError) as raised:
        cache.get()

    assert isinstance(raised.value.__cause__, KeyLayoutError)
    assert "sk-looks-like-a-key" not in str(raised.value)
    assert "sk-looks-like-a-key" not in str(raised.value.__cause__)


# -- failures ----------------------------------------------------------------------------------------


def test_failed_refresh_serves_cached_key_retries_and_gives_up_after_max_stale(source, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="keyrotation_consumer")
    cache = make_cache(source, clock, max_stale=3600, retry_interval=30)
    cache.get()
    source.failures_left = 10_000

    clock.advance(seconds=TTL)
    assert cache.get() == "value-one-a"
    assert source.total_reads == 2
    clock.advance(seconds=29)
    assert cache.get() == "value-one-a"
    assert source.total_reads == 2, "no new read before retry_interval"
    clock.advance(seconds=1)
    assert cache.get() == "value-one-a"
    assert source.total_reads == 3
    assert cache.stats.refresh_failures == 2
    assert "serving the cached key" in caplog.text

    clock.advance(seconds=3600 - TTL - 30)
    with pytest.raises(KeyUnavailableError) as raised:
        cache.get()
    assert isinstance(raised.value.__cause__, KeyVaultReadError)
    assert raised.value.__cause__.status_code == 503

    source.failures_left = 0
    assert cache.get() == "value-one-a", "recovers as soon as Key Vault answers"


def test_cold_start_failure_raises_to_every_waiting_thread(source, clock):
    cache = make_cache(source, clock)
    source.failures_left = 1
    source.gate = threading.Event()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            cache.get()
            outcomes.append("ok")
        except KeyUnavailableError as exc:
            assert isinstance(exc.__cause__, KeyVaultReadError)
            outcomes.append("unavailable")

    threads = run_threads(8, worker)
    assert source.read_started.wait(5)
    time.sleep(0.3)
    source.gate.set()
    join_all(threads)

    assert outcomes == ["unavailable"] * 8, "threads waiting on a failed read share its error"
    assert source.total_reads == 1
    assert cache.get() == "value-one-a", "the next call reads again"


def test_unauthorized_refresh_failing_keeps_the_cached_key(source, clock):
    cache = make_cache(source, clock)
    rejected = cache.current()
    source.failures_left = 1

    assert cache.refresh_after_unauthorized(rejected) is None
    assert cache.get() == "value-one-a"
    assert cache.stats.refresh_failures == 1


# -- integrations that need no network ---------------------------------------------------------------


def test_bind_updates_the_credential_in_place(source, clock):
    from azure.core.credentials import AzureKeyCredential

    cache = make_cache(source, clock)
    credential = AzureKeyCredential("placeholder")

    assert cache.bind(credential) is credential
    assert credential.key == "value-one-a"
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    clock.advance(seconds=TTL)
    cache.get()
    assert credential.key == "value-two-b"


def test_failing_listener_does_not_break_refresh(source, clock, caplog):
    cache = make_cache(source, clock)
    cache.get()

    def broken(_: ActiveKey) -> None:
        raise RuntimeError("listener bug")

    cache.subscribe(broken)
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    clock.advance(seconds=TTL)
    assert cache.get() == "value-two-b"
    assert "key listener" in caplog.text


def test_live_credential_follows_the_cache(source, clock):
    from azure.core.credentials import AzureKeyCredential

    cache = make_cache(source, clock)
    credential = cache.azure_key_credential()

    assert isinstance(credential, AzureKeyCredential)
    assert credential.key == "value-one-a"
    source.store_layout(PREFIX, key1="value-one-a", key2="value-two-b", active="key2")
    clock.advance(seconds=TTL)
    assert credential.key == "value-two-b"
    with pytest.raises(TypeError):
        credential.update("something-else")


# -- input validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "options"),
    [
        ("bad prefix", {}),
        ("", {}),
        ("x" * 117, {}),
        ("acct", {"ttl": 0}),
        ("acct", {"ttl": -1}),
        ("acct", {"ttl": 600, "max_stale": 300}),
        ("acct", {"retry_interval": 0}),
    ],
)
def test_bad_options_raise_value_error_before_any_read(source, clock, prefix, options):
    with pytest.raises(ValueError):
        RotatingKey(source, prefix, clock=clock.timestamp, **options)
    assert source.total_reads == 0


def test_layout_must_be_a_layout(source, clock):
    with pytest.raises(TypeError):
        RotatingKey(source, PREFIX, clock=clock.timestamp, layout="pointer")  # type: ignore[arg-type]


def test_empty_header_name_is_refused(source, clock):
    cache = make_cache(source, clock)
    for factory in (cache.requests_auth, cache.httpx_auth, cache.azure_policy):
        with pytest.raises(ValueError):
            factory("")


# -- never a value in repr, str, logs, errors --------------------------------------------------------


def test_no_key_value_in_reprs_logs_or_errors(clock, caplog):
    caplog.set_level(logging.DEBUG)
    values = ["SECRET-ONE-a1b2c3", "SECRET-TWO-d4e5f6", "SECRET-TWO-g7h8i9"]
    source = FakeSecretSource()
    source.store_layout(PREFIX, key1=values[0], key2=values[1], active="key1")
    cache = make_cache(source, clock, max_stale=TTL * 2)
    from azure.core.credentials import AzureKeyCredential

    credential = cache.bind(AzureKeyCredential("placeholder"))
    texts = [repr(cache.current()), str(cache.current()), f"{cache.current()}", repr(cache),
             repr(cache.stats),
             repr(cache.requests_auth()), repr(cache.httpx_auth()), repr(cache.azure_policy()),
             repr(cache.azure_key_credential()), repr(source.read_secret(f"{PREFIX}-active"))]
    cache.refresh_after_unauthorized(cache.current())  # falls back to the other slot (logged)
    source.store_layout(PREFIX, key1=values[0], key2=values[2], active="key2")
    clock.advance(seconds=TTL)
    cache.get()  # slot change (logged)
    source.failures_left = 100
    clock.advance(seconds=TTL)
    cache.get()  # failed refresh (logged)
    clock.advance(seconds=TTL)
    with pytest.raises(KeyUnavailableError) as raised:
        cache.get()
    texts += [str(raised.value), repr(raised.value), str(raised.value.__cause__), caplog.text]

    assert credential.key == values[2]
    assert "serving the cached key" in caplog.text and "using slot key2" in caplog.text
    for text in texts:
        for value in values:
            assert value not in text


def test_importing_the_package_does_not_import_httpx():
    import subprocess
    import sys

    code = "import sys, keyrotation_consumer; print('httpx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
