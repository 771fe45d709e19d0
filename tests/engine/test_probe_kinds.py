"""The data-plane probe (real requests, real ARM adapter) against the emulator's gateway: for every kind and
endpoint shape a live key is accepted and a revoked key never is; a firewalled account is a network verdict
and reaches the operator as such through the engine; an override that names no API proves nothing."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta

import pytest

from bench.probe_verdicts import CASES, Case, adapters, verdicts
from emulator.client.launcher import REPO_ROOT
from rotation.model import Phase, Policy, ProbeOverride, Slot
from rotation.ports import DataPlane, ProbeResult
from rotation.steps.verify import NETWORK_DENIED_ADVICE
from tests.engine.harness import make_engine


@pytest.fixture
def probe_adapters(emulator, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)  # how the service trusts the emulator
    return adapters(emulator)


def _case_id(case: Case) -> str:
    return f"{case.kind}-{'custom' if case.custom_subdomain else 'shared'}-{case.location}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_live_key_accepted_revoked_refused_firewall_and_keyless_have_their_verdicts(
    emulator, probe_adapters, case: Case
) -> None:
    keys, probe = probe_adapters
    row = verdicts(emulator, keys, probe, case)
    assert row.live is ProbeResult.ACCEPTED, row
    assert row.revoked is ProbeResult.REFUSED, row
    assert row.firewalled is ProbeResult.NETWORK_DENIED, row
    assert row.keyless is ProbeResult.LOCAL_AUTH_DISABLED, row
    path = row.request.split(" ")[1]
    assert path and not path.startswith("("), "the probe must never ask for the endpoint's root"


def test_an_override_naming_no_api_never_accepts_and_a_documented_one_does(
    emulator, probe_adapters, unique_name
):
    keys, probe = probe_adapters
    rid = (
        "/subscriptions/33333333-0000-0000-0000-000000000000/resourceGroups/rg-probe/providers/"
        f"Microsoft.CognitiveServices/accounts/{unique_name}"
    )
    emulator.control.add_account(rid, "ContentSafety")
    info = keys.get_account(rid)
    plane = DataPlane(info.endpoint or "", info.kind, info.location, info.custom_subdomain)
    live = keys.list_keys(rid).key1
    root = ProbeOverride("GET", "status", "Ocp-Apim-Subscription-Key")  # 404 whatever the key
    assert probe.probe(plane, live, root) is ProbeResult.INCONCLUSIVE
    token = ProbeOverride("POST", "/sts/v1.0/issueToken", "Ocp-Apim-Subscription-Key")
    assert probe.probe(plane, live, token) is ProbeResult.ACCEPTED
    keys.regenerate_key(rid, Slot.KEY1)
    assert probe.probe(plane, live, token) is ProbeResult.REFUSED


def test_a_firewalled_account_fails_the_cycle_with_the_network_advice(emulator, azurite, monkeypatch, caplog):
    engine = make_engine(emulator, azurite, monkeypatch, kind="SpeechServices")
    engine.service.sweep()  # adoption goes through ARM, which the account's network rules do not cover
    assert engine.state().location == "eastus" and engine.state().custom_subdomain is True
    emulator.control.set_account(engine.names[0], network_default_action="Deny")
    with caplog.at_level(logging.WARNING, logger="rotation"):
        engine.service.request_rotation(engine.names[0], requester="ops@contoso.com", reason="test")
    state = engine.state()
    assert state.phase is Phase.IDLE and state.active_slot is Slot.KEY1  # no swap, cycle abandoned
    assert state.last_error == f"DataPlaneUnreachable: {engine.names[0]}: {NETWORK_DENIED_ADVICE}"
    assert "refused" not in state.last_error
    failed = [r for r in engine.service.history(engine.names[0]) if r.outcome == "failed"]
    assert failed and failed[0].step == "verify_and_swap" and NETWORK_DENIED_ADVICE in (failed[0].error or "")
    assert any(NETWORK_DENIED_ADVICE in r.getMessage() for r in caplog.records)
    assert engine.secret(engine.target().pointer_secret) == "key1"
    status = engine.service.status(engine.target().resource_id)[0]
    assert NETWORK_DENIED_ADVICE in (status.last_error or "")
    engine.check_i1_i3()
    texts = [r.getMessage() for r in caplog.records] + engine.state_and_history_texts()
    engine.assert_no_key_values_in(texts)


def test_key_authentication_disabled_during_verification_makes_the_target_keyless(
    fresh_emulator, azurite, monkeypatch
):
    policy = Policy(verify_timeout=timedelta(minutes=10), verify_retry_interval=timedelta(seconds=20))
    engine = make_engine(fresh_emulator, azurite, monkeypatch, kind="FormRecognizer", policy=policy)
    engine.service.sweep()
    fresh_emulator.control.set_propagation(3600)  # the new key is not accepted yet: verification waits
    engine.service.request_rotation(engine.names[0])
    assert engine.state().phase is Phase.VERIFYING
    fresh_emulator.control.set_disable_local_auth(engine.names[0], True)
    engine.clock.advance(seconds=20)
    engine.service.sweep()
    state = engine.state()
    assert state.phase is Phase.KEYLESS and state.cycle_id is None
    assert engine.secret(engine.target().pointer_secret) == "key1"


def test_the_verdict_table_script_runs_and_prints_no_key(emulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.probe_verdicts"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "live accepted and revoked never accepted: yes" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ") and "accepted" in line]
    assert len(lines) == len(CASES)
    assert all("| accepted | refused | network-denied | local-auth-disabled |" in line for line in lines)
