"""Keep-alive throughput of the local Azure emulator: ``python -m bench.emulator_throughput``.

Starts its own emulator, then drives it from several client processes, each holding one keep-alive HTTPS
connection (TCP_NODELAY, like the Azure SDKs' urllib3) and sending requests back to back for a fixed time.
Scenarios, all in the same run against the same process:

- baseline: ``GET /_emulator/health`` (the framework + TLS floor: no auth, no state);
- dataplane: ``GET /accounts/{name}/openai/models`` with ``api-key`` (routing + key check, what consumers
  and the OpenAI/AIServices probe hit);
- keyvault: ``GET /secrets/{name}/`` with a bearer token (token validation + secret lookup).

Key Vault's service limit (4,000 transactions per 10 s per vault, which the emulator enforces) is lifted for
the run: at thousands of requests a second the keyvault scenario would otherwise measure that limit's 429s,
not the server.

Prints requests/s per scenario and each one's ratio to the baseline; fails (exit 1) if any request did not
answer 200 or the data plane is below ``--min-rps`` (default 500, the issue's target).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from emulator.client.launcher import DEMO_ACCOUNT_ID, EmulatorProcess


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    headers: dict[str, str]


def _drive(
    host: str, port: int, ca_bundle: str, scenario: Scenario, seconds: float, results: multiprocessing.Queue
) -> None:
    context = ssl.create_default_context(cafile=ca_bundle)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ok = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.request("GET", scenario.path, headers=scenario.headers)
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            ok += 1
        else:
            failed += 1
    connection.close()
    results.put((ok, failed))


def run_scenario(base_url: str, ca_bundle: str, scenario: Scenario, clients: int, seconds: float) -> dict:
    parts = urlsplit(base_url)
    results: multiprocessing.Queue = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=_drive, args=(parts.hostname, parts.port, ca_bundle, scenario, seconds, results)
        )
        for _ in range(clients)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    totals = [results.get(timeout=seconds + 60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    elapsed = time.monotonic() - started
    ok = sum(t[0] for t in totals)
    failed = sum(t[1] for t in totals)
    # Requests counted over the measured window of each client; process start-up is outside it.
    return {
        "scenario": scenario.name,
        "path": scenario.path.split("?")[0],
        "ok": ok,
        "failed": failed,
        "requests_per_second": ok / seconds,
        "wall_seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes (one connection each)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per scenario")
    parser.add_argument("--min-rps", type=float, default=500.0, help="required data-plane requests/s")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with EmulatorProcess(accounts=[DEMO_ACCOUNT_ID]) as emu:
        key = emu.arm_client().accounts.list_keys("rg-demo", "ai-services").key1
        emu.secret_client().set_secret("bench-secret", "not-a-real-key")
        # The bench measures serving cost, not Azure's vault limit (see the module docstring).
        emu.control.set_throttling(vaultOtherTransactions=10**9)
        with emu.credential() as credential:
            vault_token = credential.get_token("https://vault.azure.net/.default").token
        scenarios = [
            Scenario("baseline", "/_emulator/health", {}),
            Scenario(
                "dataplane", "/accounts/ai-services/openai/models?api-version=2024-10-21", {"api-key": key}
            ),
            Scenario(
                "keyvault",
                "/secrets/bench-secret/?api-version=2026-04-01",
                {"Authorization": f"Bearer {vault_token}"},
            ),
        ]
        results = [
            run_scenario(emu.base_url, emu.ca_bundle, s, args.clients, args.seconds) for s in scenarios
        ]

    baseline = results[0]["requests_per_second"]
    print(
        f"emulator keep-alive throughput: {args.clients} client processes x 1 HTTPS connection, "
        f"{args.seconds:.0f} s per scenario, same emulator process"
    )
    print(f"baseline = GET /_emulator/health on the same server ({baseline:.0f} req/s)")
    print("Key Vault's 4,000 transactions per 10 s limit lifted for this run")
    print(f"{'scenario':<10} {'path':<28} {'req/s':>8} {'vs baseline':>12} {'failed':>7}")
    for result in results:
        result["ratio_to_baseline"] = result["requests_per_second"] / baseline if baseline else 0.0
        print(
            f"{result['scenario']:<10} {result['path']:<28} {result['requests_per_second']:>8.0f} "
            f"{result['ratio_to_baseline']:>11.2f}x {result['failed']:>7}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    dataplane = results[1]["requests_per_second"]
    failures = sum(r["failed"] for r in results)
    if failures or dataplane < args.min_rps:
        print(f"FAIL: {failures} failed requests; data plane {dataplane:.0f} req/s (need {args.min_rps:.0f})")
        return 1
    print(f"OK: data plane {dataplane:.0f} req/s >= {args.min_rps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
