"""Every benchmark runs end to end at a tiny size and prints its ratios, so none can rot.

Only structural facts are asserted (every target completed its cycle, call counts add up, the right
modules were loaded); timings are never asserted — they depend on the machine.
"""

from __future__ import annotations

import math

import pytest

from bench import (
    async_prototype,
    call_counts,
    consumer_get,
    cost_per_cycle,
    cycle_scale,
    fleet_scale,
    import_time,
    sweep_memory,
)
from bench.sdk_floor import MINIMUM_CYCLE, lone_call


def assert_printed_ratios(output: str, report_ratios: list[tuple[str, float]]) -> None:
    assert report_ratios, "a benchmark must print at least one ratio"
    for label, value in report_ratios:
        assert math.isfinite(value) and value > 0, (label, value)
        assert f"RATIO {label}" in output


def test_cycle_scale_completes_every_target_on_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    report = cycle_scale.main(["--sizes", "4", "--latency", "0.005", "--drain", "1", "--budget-demo", "3"])
    figures = report.data["N=4"]
    engine, baseline_calls = figures["engine"], figures["baseline_calls"]
    assert engine.completed == 4
    assert engine.phase1_outcomes == {"advanced": 4}
    assert engine.phase2_outcomes == {"advanced": 4}
    assert engine.calls["phase1"]["arm.regenerate_key"] == 4
    assert engine.calls["phase2"]["arm.regenerate_key"] == 4
    assert engine.calls["phase1"]["dataplane.request"] == 4  # every new key verified before the swap
    # The reference script: one regenerate per phase, a pointer read per swap, nothing verified.
    assert baseline_calls["arm.regenerate_key"] == 8
    assert baseline_calls["keyvault.get_secret"] == 4
    assert "dataplane.request" not in baseline_calls
    assert figures["baseline"].accounts == 4
    demo = report.data["budget_demo"]
    assert demo["regenerate_calls"] == 3  # 3 targets fit the burst of one subscription
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_call_counts_meet_at_least_the_minimum(capsys: pytest.CaptureFixture[str]) -> None:
    report = call_counts.main(["--targets", "3", "--subscriptions", "2"])
    per_service = report.data["per_service"]
    for service, minimum in call_counts.MINIMUM_PER_CYCLE.items():
        assert per_service.get(service, 0) >= minimum * 3, service
    for phase in ("phase1", "phase2"):
        assert report.data["phases"][phase]["arm.regenerate_key"] == 3
    # history: one Table request per target and cycle, by the invocation that ends it (phase 1's rows ride
    # in its state write)
    assert report.data["phases"]["phase1"].get("table.history_append", 0) == 0
    assert report.data["phases"]["phase2"]["table.history_append"] == 3
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_import_time_function_app_defers_every_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    report = import_time.main(["--runs", "1"])
    assert report.data["function_app"]["loaded"] == [], "function_app imported an Azure SDK eagerly"
    assert report.data["every SDK"]["loaded"] == sorted(import_time.SDKS)
    assert report.data["function_app"]["importtime"] > 0
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_consumer_get_reads_key_vault_at_most_once_per_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    report = consumer_get.main(
        ["--threads", "1", "4", "--calls", "2000", "--ttl", "0.5", "--hammer-seconds", "1.6"]
    )
    data = report.data
    assert set(data["hot"]) == {1, 4}
    assert 1 <= data["reads"] <= data["windows"]
    assert data["vault_reads"] == data["reads"], "the library's counter disagrees with the emulator's"
    assert all(gap >= 0.5 for gap in data["gaps"]), data["gaps"]
    assert data["hammer_calls"] > data["reads"]
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_sweep_memory_measures_an_idle_and_an_adoption_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    report = sweep_memory.main(["--idle", "20", "--adopt", "3"])
    assert report is not None
    idle, adoption = report.data["idle"], report.data["adoption"]
    assert (idle["seen"], idle["advanced"], idle["failed"]) == (20, 0, 0)
    assert (adoption["seen"], adoption["advanced"], adoption["failed"]) == (3, 3, 0)
    assert idle["traced_peak_bytes"] > 0 and adoption["traced_peak_bytes"] > 0
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_fleet_scale_discovers_adopts_and_rotates_every_tagged_account(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = fleet_scale.main(
        ["--accounts", "12", "--untagged", "3", "--subscriptions", "3", "--workers", "2", "--vaults", "3"]
    )
    data = report.data
    assert data["vaults"] == [4, 4, 4]  # spread over the default vault and two more (key-rotation-vault)
    adoption = data["waves"]["discovery + adoption"]
    assert adoption["floor_key_vault"] == max(adoption[f"floor_key_vault_{i}"] for i in range(3)) > 0
    assert (data["targets"], data["states"], data["completed"]) == (12, 12, 12)  # untagged never adopted
    assert data["throttled"] == {}, "the budgets kept ARM and Key Vault from answering 429"
    assert set(data["waves"]) == {"discovery + adoption", "cycle: regenerate, verify, swap", "cycle: retire"}
    assert data["counts"]["keyvault.set_secret"] >= 12 * 8  # adoption 4 + cycle 4 per account
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_cost_per_cycle_rotates_every_target_in_a_function_shaped_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = cost_per_cycle.main(
        ["--targets", "4", "--reference-targets", "2", "--rounds", "1", "--latency-scale", "0.05",
         "--drain", "1", "--variants", "now", "before"]
    )  # fmt: skip
    data = report.data
    assert data["completed"] == 4  # every target finished its cycles (one per variant)
    assert data["environment_size"] >= 90  # about a Function's 100 variables
    assert data["log_records"] > 0  # INFO records went through the worker-like handler
    engine, before = data["engine"]["now"][0], data["engine"]["before"][0]
    assert engine.by_service["dataplane"] == 4  # one probe each
    # two regenerateKey each, whose answers carry the keys; before: each followed by listKeys
    assert engine.by_service["arm"] == 4 * 2 and before.by_service["arm"] == 4 * 4
    for variant in ("now", "before"):
        assert data["figures"][variant]["calls_per_cycle"] >= sum(call_counts.MINIMUM_PER_CYCLE.values())
    # one history entity per target and invocation instead of a request per history row
    assert engine.by_service["table"] < before.by_service["table"]
    assert engine.client_cpu > 0 and data["reference"][0].calls == 2 * 5  # the script: 5 calls a cycle
    # Table and Queue behind the latency proxy (bench/latency_proxy.py), its CPU a server's, not the client's;
    # the Table counts above are the requests sent to it
    assert "storage proxy" in engine.server_cpu and engine.by_service["table"] > 0
    # the extra, timed round: every Key Vault read of it timed on the loop, inside the loop thread's CPU —
    # on the lean pipeline (shared/azure/lean_calls.py), not the SDK's generated operation
    breakdown = data["breakdown"]
    assert breakdown.calls["LeanSecrets.get_secret"] >= 4 * 2
    assert "SecretClient.get_secret" not in breakdown.calls
    assert breakdown.loop_seconds > breakdown.sdk_seconds > 0
    # the targets ran as greenlets on the loop (the default): their steps timed apart from the calls'
    assert breakdown.greenlet_seconds > 0 and breakdown.callback_seconds > 0
    # the floor's calls of the minimum cycle measured twice: 16 at a time, and one at a time
    assert all(data["floor"][op] > 0 and data["floor"][lone_call(op)] > 0 for op in MINIMUM_CYCLE)
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_cost_per_cycle_measures_the_async_path_against_the_sync_one_after_a_warm_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = cost_per_cycle.main(
        ["--targets", "4", "--reference-targets", "2", "--rounds", "1", "--latency-scale", "0.05",
         "--drain", "1", "--variants", "async", "sync", "--warm-rounds", "1"]
    )  # fmt: skip
    data = report.data
    assert data["completed"] == 4  # every target finished the warm and the measured cycles of both
    on_loop, threads = data["engine"]["async"][0], data["engine"]["sync"][0]
    for side in (on_loop, threads):  # the same work counted on both transports (aiohttp, http.client)
        assert side.by_service["table"] >= 4 * 4 and side.by_service["keyvault"] >= 4 * 6
        assert side.calls >= 4 * sum(call_counts.MINIMUM_PER_CYCLE.values())
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_emulator_scaling_measures_each_size(capsys: pytest.CaptureFixture[str]) -> None:
    report = cost_per_cycle.main(["--emulator-scaling", "5", "20"])
    sizes = report.data["sizes"]
    assert [s["accounts"] for s in sizes] == [5, 20]
    assert all(s["requests"] > 0 and s["emulator_ms_per_request"] > 0 for s in sizes)
    assert_printed_ratios(capsys.readouterr().out, report.ratios)


def test_async_prototype_runs_the_same_step_on_both_client_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    report = async_prototype.main(["--targets", "4", "--rounds", "1", "--latency-scale", "0.05"])
    for side in ("sync", "async", "threads+loop"):
        [run] = report.data["sides"][side]
        assert run["calls"] == 4 * async_prototype.CALLS_PER_STEP  # the same 5 calls per target each
        assert run["cpu_ms_per_call"] > 0
    assert_printed_ratios(capsys.readouterr().out, report.ratios)
