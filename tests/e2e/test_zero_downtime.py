"""End to end: 24 live consumers (requests hook, httpx auth, AzureKeyCredential) call two accounts' data
planes while cycles run through the Function App's handlers — timer ticks, a Key Vault near-expiry event
delivered by webhook, admin requests — with a crash after a ``regenerateKey`` and injected 429/500/timeout/
dropped-connection faults. Zero failed consumer requests; I1-I6 checked (see demo/scenario.py for the run,
demo/watchers.py and demo/analysis.py for the checks).

One run (module fixture, ~60 s) serves every assertion; the negative control rides in the same run: two
consumers whose cache TTL (8 s) outlives the drain (2 s) must see their keys rejected.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from demo.analysis import build_report
from demo.scenario import Scenario, ScenarioConfig, ScenarioResult

CONFIG = ScenarioConfig(duration=42.0, control_consumers=2, control_ttl=8.0)


@pytest.fixture(scope="module")
def run() -> tuple[ScenarioResult, dict[str, Any]]:
    result = Scenario(CONFIG).run()
    report = build_report(result)
    print("E2E_REPORT", json.dumps({k: report[k] for k in ("cycles", "drains", "consumers", "chaos", "events",
                                                          "invariants", "negativeControl")}))
    return result, report


def test_live_consumers_never_fail(run) -> None:
    result, report = run
    consumers = report["consumers"]
    assert consumers["threads"] >= 20
    assert consumers["requests"] > 3000, consumers  # continuous traffic, not a trickle
    assert set(consumers["byKind"]) == {
        "requests", "httpx", "azure-key-credential", "p-active-only", "app-service-reference"
    }
    assert all(kind["requests"] > 500 for kind in consumers["byKind"].values()), consumers
    # Issue 10: a consumer that reads only P-active, with no 401 fallback to hide a revoked key.
    assert consumers["byKind"]["p-active-only"]["failures"] == 0, consumers
    # Issue 14: an app that reads its key only through an App Service Key Vault reference.
    assert consumers["byKind"]["app-service-reference"]["failures"] == 0, consumers
    assert consumers["errors"] == 0, result.fleet.errors if result.fleet else None
    assert consumers["rejectedOnWire"] == 0
    assert consumers["failures"] == 0
    # Traffic spans the whole run: requests before the first trigger and after the last cycle ended.
    live = [o for o in (result.fleet.snapshot() if result.fleet else []) if o.label == "live"]
    last_cycle_end = max(c.at for c in result.phase_changes)
    assert min(o.at for o in live) < result.rotation_started
    assert max(o.at for o in live) > last_cycle_end


def test_at_least_ten_cycles_over_two_targets_from_every_trigger(run) -> None:
    result, report = run
    cycles = report["cycles"]
    assert result.settled, "targets did not come to rest"
    assert cycles["completed"] >= 10, cycles
    unfinished = [
        (c, [(r.step, r.error) for r in result.history.get(c["target"], []) if r.cycle == c["cycle"]])
        for c in report["cycleList"] if not c["completed"]
    ]
    assert cycles["completed"] == cycles["started"], f"a cycle was left unfinished: {unfinished}"
    assert set(cycles["byTarget"]) == {"ai-services", "contoso-openai"}
    assert cycles["byTrigger"].get("timer", 0) >= 1, cycles
    assert cycles["byTrigger"].get("event", 0) >= 1, cycles
    assert cycles["byTrigger"].get("admin", 0) >= 1, cycles
    # The event path went through the webhook: emitted by the emulator's Key Vault, delivered, accepted.
    assert report["events"]["keyVaultEventsEmitted"] >= 1
    assert report["events"]["deliveries"] >= report["events"]["keyVaultEventsEmitted"]
    assert report["events"]["outcomes"].get("accepted", 0) >= 1
    assert any(a.kind == "event" and a.target == "contoso-openai" for a in result.actions)
    assert 202 in report["adminRequests"]


def test_crash_and_faults_hit_mid_cycle_and_were_recovered(run) -> None:
    result, report = run
    chaos = report["chaos"]
    assert chaos["crashes"] == 1
    assert len(chaos["faultsInjected"]) == len(CONFIG.faults)
    assert chaos["faultsNotConsumed"] == 0, "every injected fault was hit by a rotation step"
    # Timeouts and dropped connections of a POST are not retried by azure-core: the step failed and a later
    # invocation redid it.
    assert chaos["failedStepErrors"].get("TransientAzureError", 0) >= 1, chaos
    crash_at, crashed_target = result.observations.crashes[0]
    account = crashed_target.rsplit("/", 1)[-1]
    # The crashed invocation's lease expired and later invocations finished that cycle and more after it.
    later = [c for c in report["cycleList"] if c["target"] == account and c["completed"]]
    assert len(later) >= 2
    crashed_cycles = [c for c in result.phase_changes if c.target == account and c.at > crash_at]
    assert any(c.phase == "idle" for c in crashed_cycles)


def test_invariants_hold(run) -> None:
    _, report = run
    inv = report["invariants"]
    completed = report["cycles"]["completed"]
    assert inv["I1"]["samples"] >= 100 and inv["I1"]["violations"] == []
    assert inv["I2"]["regenerates"] >= 2 * completed and inv["I2"]["violations"] == []
    assert inv["I2"]["afterADrain"] >= completed  # every retire was checked against its pointer move
    assert inv["I3"]["checks"] == completed and inv["I3"]["violations"] == []
    assert inv["I4"]["cyclesChecked"] == report["cycles"]["started"] and inv["I4"]["violations"] == []
    assert inv["I5"]["keyValuesTracked"] >= 2 * completed, "the I5 scan would be vacuous"
    assert inv["I5"]["textsScanned"] > 100 and inv["I5"]["leaks"] == 0
    assert inv["I6"]["filesScanned"] > 10 and inv["I6"]["sleeps"] == []
    assert report["observerErrors"] == []
    assert report["invariantsHold"] and report["zeroDowntime"]


def test_negative_control_cache_outliving_the_drain_sees_rejected_keys(run) -> None:
    """Proves the failure counter can fire: same run, same counter, only the TTL differs (8 s > 2 s drain)."""
    _, report = run
    control = report["negativeControl"]
    assert control["requests"] > 100
    assert control["rejectedOnWire"] > 0, control
    assert control["failures"] > 0
    assert report["consumers"]["failures"] == 0


def test_drains_of_the_target_with_an_app_service_consumer_end_by_acknowledgement(run) -> None:
    """Issue 14: the secondary's declared consumers are an App Service site (24 h reference bound) and the
    library readers (1.4 s bound): every drain ends by acknowledgement, seconds after the swap, not after
    25 h; the primary (no consumer with a signal) drains by its bound. The site never failed a request."""
    result, report = run
    drains = report["drains"]
    secondary, primary = result.targets[1], result.targets[0]
    completed = report["cycles"]["byTarget"]
    assert drains[secondary.account_name]["acknowledged"] == completed[secondary.account_name] >= 2, drains
    assert drains[secondary.account_name]["bound"] == 0
    assert drains[primary.account_name]["bound"] == completed[primary.account_name], drains
    assert secondary.drain_time.total_seconds() == 25 * 3600
    refreshes = [r for r in result.history[secondary.account_name] if r.step == "refresh_consumer"]
    assert refreshes and all(r.outcome == "succeeded" for r in refreshes)
    assert result.emulator_calls.get("web.refresh_kv_references", 0) >= len(refreshes)
