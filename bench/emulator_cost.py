"""The emulator's own CPU per request with few and with many accounts and secrets
(``python -m bench.cost_per_cycle --emulator-scaling 100 2000``; docs/BENCHMARKS.md "Cost per cycle").

For each N: a fresh emulator with N accounts and N secrets carrying an expiry (what the once-a-second
event tick watches), then a fixed mix of requests sent one after another — a data-plane probe on an
account's own endpoint, one on the shared regional endpoint (the key selects the account there), a Key
Vault read — and a few idle seconds (the tick alone). The emulator's CPU (``/proc``) divided by the
requests is its cost per request; the ratio between the largest and the smallest N says whether that cost
grows with the number of accounts and secrets. Azure's latencies are not added (they cost no CPU).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.function_shape import own_cpu_seconds, pin, pinned_here
from bench.harness import Report, account_ids, process_cpu_seconds, seed_accounts
from emulator.client.launcher import EmulatorProcess

REQUESTS_PER_KIND = 200
IDLE_SECONDS = 3.0
FAR_FUTURE_EXPIRY = 4_000_000_000  # 2096: never due, but watched


def _seed_secrets(emulator: EmulatorProcess, count: int, token: str) -> None:
    with emulator.http_client(headers={"Authorization": f"Bearer {token}"}) as client:

        def put(index: int) -> None:
            response = client.put(
                f"/secrets/scale-{index}?api-version=7.5",
                json={"value": "v", "attributes": {"exp": FAR_FUTURE_EXPIRY}},
            )
            response.raise_for_status()

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, range(count)))


def _one_size(count: int, requests: int) -> dict[str, Any]:
    with EmulatorProcess() as emulator, pinned_here({0}) as client_pinned:
        pid = emulator._process.pid if emulator._process else 0
        if client_pinned:
            pin([pid], {1})  # the emulator on the other core
        # seeding writes thousands of secrets at once: lift Key Vault's per-vault limits for this bench
        emulator.control.set_throttling(vaultSecretWrites=10**9, vaultOtherTransactions=10**9)
        ids = account_ids(count, max(1, count // 20), "sc")
        seed_accounts(emulator, ids)
        token = emulator.credential().get_token("https://vault.azure.net/.default").token
        _seed_secrets(emulator, count, token)
        names = [resource_id.rsplit("/", 1)[1] for resource_id in ids]
        chooser = random.Random(17)
        headers = {"Authorization": f"Bearer {token}"}
        with emulator.http_client() as client:
            for _ in range(20):  # warm the connection and the server's code paths
                client.get("/accounts/none/openai/models?api-version=2024-10-21")
            cpu_before, server_before = own_cpu_seconds(), process_cpu_seconds(pid)
            for _ in range(requests):
                name = chooser.choice(names)
                # an unknown key: every lookup runs, the answer is the 401 (no key is needed here)
                client.get(
                    f"/accounts/{name}/openai/models?api-version=2024-10-21", headers={"api-key": "0" * 32}
                )
                client.post(
                    "/regional/eastus/sts/v1.0/issueToken", headers={"Ocp-Apim-Subscription-Key": "0" * 32}
                )
                client.get(f"/secrets/scale-{chooser.randrange(count)}/?api-version=7.5", headers=headers)
                client.put(
                    f"/secrets/scale-{chooser.randrange(count)}?api-version=7.5",
                    headers=headers,
                    json={"value": "w", "attributes": {"exp": FAR_FUTURE_EXPIRY}},
                )
            server_busy = process_cpu_seconds(pid) - server_before
            client_busy = own_cpu_seconds() - cpu_before
        idle_before = process_cpu_seconds(pid)
        time.sleep(IDLE_SECONDS)
        idle = process_cpu_seconds(pid) - idle_before
    sent = requests * 4
    return {
        "accounts": count,
        "secrets": count,
        "requests": sent,
        "emulator_ms_per_request": server_busy * 1000 / sent,
        "client_ms_per_request": client_busy * 1000 / sent,
        "idle_ms_per_second": idle * 1000 / IDLE_SECONDS,
    }


def measure_scaling(sizes: Sequence[int], requests: int = REQUESTS_PER_KIND) -> Report:
    report = Report("bench.cost_per_cycle --emulator-scaling: emulator CPU per request vs accounts/secrets")
    report.add(
        "requests per size",
        f"{requests * 4} (probe on the account's host, regional probe, Key Vault read, Key Vault write)",
    )
    figures = [_one_size(count, requests) for count in sorted(sizes)]
    for figure in figures:
        report.add(
            f"N={figure['accounts']} accounts + {figure['secrets']} secrets",
            f"emulator {figure['emulator_ms_per_request']:.3f} ms CPU/request; idle tick "
            f"{figure['idle_ms_per_second']:.2f} ms CPU/s",
        )
    smallest, largest = figures[0], figures[-1]
    if len(figures) > 1:
        report.ratio(
            f"emulator CPU per request N={largest['accounts']} / N={smallest['accounts']}",
            largest["emulator_ms_per_request"] / smallest["emulator_ms_per_request"],
        )
    report.data = {"sizes": figures}
    return report
