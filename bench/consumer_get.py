"""The consumer library's hot path and its Key Vault load, against the emulator's Key Vault.

    python -m bench.consumer_get                     # 1/8/32 threads, TTL 1 s hammered for 5 s
    python -m bench.consumer_get --calls 20000 --hammer-seconds 3

1. Warm ``RotatingKey.get()`` in ns/call (aggregate over all threads) versus two baselines measured the
   same way in the same run: a plain dict lookup and a lock-protected read of a shared variable.
2. Key Vault reads per process per TTL while 32 threads call ``get()`` as fast as they can (expect 1),
   counted both by the library (``stats.key_vault_reads``) and by the emulator (``keyvault.get_secret``).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence

from bench.harness import Report, local_azure
from keyrotation_consumer import KeyVaultSecretSource, RotatingKey, SecretRecord

PREFIX = "consumerbench"
MANAGED = {"managed-by": "ai-key-rotation"}


def per_call_ns(function: Callable[[], object], threads: int, calls: int) -> float:
    """Wall time of ``threads`` threads each calling ``function`` ``calls`` times, per call, in ns."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(calls):
            function()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    started = time.perf_counter_ns()
    for thread in pool:
        thread.join()
    return (time.perf_counter_ns() - started) / (threads * calls)


class TimedSource:
    """Records when each Key Vault read started, to check that reads are at least a TTL apart."""

    def __init__(self, inner: KeyVaultSecretSource) -> None:
        self.inner = inner
        self.started: list[float] = []

    def read_secret(self, name: str) -> SecretRecord:
        self.started.append(time.perf_counter())
        return self.inner.read_secret(name)


def repeated(function: Callable[[], object], threads: int, calls: int, repeats: int = 3) -> float:
    return sorted(per_call_ns(function, threads, calls) for _ in range(repeats))[repeats // 2]


def hammer(key: RotatingKey, threads: int, seconds: float) -> int:
    """Call ``key.get()`` from ``threads`` threads for ``seconds``; returns the number of calls."""
    stop = threading.Event()
    counts = [0] * threads

    def worker(index: int) -> None:
        n = 0
        while not stop.is_set():
            key.get()
            n += 1
        counts[index] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return sum(counts)


def measure(
    thread_counts: Sequence[int], calls: int, ttl: float, hammer_seconds: float, latency: float
) -> Report:
    report = Report("bench.consumer_get: RotatingKey.get() vs dict / lock, Key Vault reads per TTL")
    with local_azure(latency=latency) as (emulator, _azurite):
        client = emulator.secret_client()
        client.set_secret(f"{PREFIX}-key1", "value-of-key1", tags={**MANAGED, "slot": "key1"})
        client.set_secret(f"{PREFIX}-key2", "value-of-key2", tags={**MANAGED, "slot": "key2"})
        client.set_secret(f"{PREFIX}-active-key", "key1", tags=MANAGED)
        client.set_secret(f"{PREFIX}-active", "value-of-key1", tags={**MANAGED, "slot": "key1"})

        warm = RotatingKey.from_secret_client(client, PREFIX, ttl=3600)
        warm.get()  # the one cold read; everything below is the warm path
        cache = {"key": warm.get()}
        lock = threading.Lock()
        shared = [warm.get()]

        def dict_lookup() -> str:
            return cache["key"]

        def locked_read() -> str:
            with lock:
                return shared[0]

        hot: dict[int, dict[str, float]] = {}
        for threads in thread_counts:
            hot[threads] = {
                "get": repeated(warm.get, threads, calls),
                "dict": repeated(dict_lookup, threads, calls),
                "lock": repeated(locked_read, threads, calls),
            }
            row = hot[threads]
            report.add(
                f"{threads} threads, ns/call",
                f"get() {row['get']:.0f}, dict {row['dict']:.0f}, lock {row['lock']:.0f}",
            )
            report.ratio(f"{threads} threads get()/dict", row["get"] / row["dict"])
            report.ratio(f"{threads} threads get()/lock", row["get"] / row["lock"])
        if warm.stats.key_vault_reads != 1:
            raise RuntimeError(f"the warm benchmark read Key Vault {warm.stats.key_vault_reads} times")

        source = TimedSource(KeyVaultSecretSource(client))
        hammered = RotatingKey(source, PREFIX, ttl=ttl, max_stale=max(ttl, 60.0))
        emulator.control.reset_calls()
        started = time.perf_counter()
        total_calls = hammer(hammered, 32, hammer_seconds)
        elapsed = time.perf_counter() - started
        reads = hammered.stats.key_vault_reads
        vault_reads = emulator.control.calls().get("keyvault.get_secret", 0)
        gaps = [b - a for a, b in zip(source.started, source.started[1:], strict=False)]
        # A read is due once per TTL after the previous one completed: the most there can be.
        windows = 1 + math.floor(elapsed / ttl)
        report.add(
            "32 threads hammering",
            f"{total_calls} get() calls in {elapsed:.2f} s, TTL {ttl:g} s, Key Vault latency "
            f"{latency * 1000:.0f} ms",
        )
        report.add(
            "Key Vault reads",
            f"library {reads}, emulator {vault_reads} (at most {windows} possible); gaps between reads "
            f"min {min(gaps, default=0):.3f} s, max {max(gaps, default=0):.3f} s",
        )
        if gaps:
            # A refresh is due one TTL after the previous read completed: 1.0 means exactly one read per TTL.
            report.ratio("Key Vault reads per TTL (TTL / mean gap)", ttl / (sum(gaps) / len(gaps)))
        report.data = {
            "hot": hot,
            "hammer_calls": total_calls,
            "reads": reads,
            "vault_reads": vault_reads,
            "windows": windows,
            "gaps": gaps,
            "elapsed": elapsed,
        }
        client.close()
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_get", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per thread")
    parser.add_argument("--ttl", type=float, default=1.0, help="TTL of the hammered cache (seconds)")
    parser.add_argument("--hammer-seconds", type=float, default=5.5)
    parser.add_argument("--latency", type=float, default=0.03, help="Key Vault latency (seconds)")
    args = parser.parse_args(argv)
    report = measure(args.threads, args.calls, args.ttl, args.hammer_seconds, args.latency)
    report.print()
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
