"""The acknowledged drain (issue 14) with the real adapters against the emulator: an App Service site reads
the target's key only through a Key Vault reference to ``P-active``; after the swap the engine refreshes it
and retires the old key as soon as the site shows the new version — or holds the cycle while it does not."""

from __future__ import annotations

import uuid
from datetime import timedelta

from rotation.model import Phase, Slot
from rotation.outcomes import RequestStatus
from tests.engine.harness import SUB, make_engine


def site_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-apps/providers/Microsoft.Web/sites/{name}"


def with_site(fresh_emulator, azurite, monkeypatch, stuck: bool = False):
    site = "app-" + uuid.uuid4().hex[:8]
    engine = make_engine(
        fresh_emulator,
        azurite,
        monkeypatch,
        target_options={"consumers": [{"kind": "appService", "resourceId": site_id(site)}]},
    )
    engine.service.sweep()  # adoption: P-active exists
    target = engine.target()
    reference = f"@Microsoft.KeyVault(SecretUri={fresh_emulator.vault_url}secrets/{target.active_secret})"
    fresh_emulator.control.add_site(site_id(site), {"OPENAI_KEY": reference})
    if stuck:
        fresh_emulator.control.shape_consumer(site_id(site), stuck=True)
    return engine, site


def regenerations(engine) -> int:
    return engine.calls().get("arm.regenerate_key", 0)


def history_notes(engine) -> list[str]:
    return [f"{r.step}:{r.outcome}:{r.reason}" for r in engine.service.history(engine.target(), limit=100)]


def test_the_drain_ends_when_the_site_shows_the_new_version(fresh_emulator, azurite, monkeypatch) -> None:
    engine, site = with_site(fresh_emulator, azurite, monkeypatch)
    target = engine.target()
    assert target.drain_time == timedelta(hours=25)  # 24 h reference interval + margin, unless acknowledged
    old_env = fresh_emulator.control.site_app_settings(site)["OPENAI_KEY"]
    outcome = engine.service.request_rotation(target, trigger="cli", reason="test", force=True)
    assert outcome.status is RequestStatus.STARTED
    state = engine.state()
    assert state is not None and state.phase is Phase.IDLE and state.drain_ended_by == "acknowledged"
    assert regenerations(engine) == 2  # both slots, in one invocation: no 25 h wait
    new_env = fresh_emulator.control.site_app_settings(site)["OPENAI_KEY"]
    engine.key_values.update({old_env, new_env})
    assert new_env != old_env and new_env == engine.service_keys()[state.active_slot or Slot.KEY1]
    notes = history_notes(engine)
    assert any(n.startswith("refresh_consumer:succeeded:refresh sent to App Service app") for n in notes)
    assert any("check_consumers:succeeded:acknowledged: App Service app" in n for n in notes)
    assert any(n.endswith("cycle completed; drain ended by acknowledged") for n in notes)
    assert fresh_emulator.control.calls()["web.refresh_kv_references"] == 1
    engine.check_i1_i3()
    engine.assert_no_key_values_in(engine.state_and_history_texts())


def test_a_stuck_site_holds_the_cycle_and_the_old_key_lives_until_an_admin_releases_it(
    fresh_emulator, azurite, monkeypatch
) -> None:
    engine, site = with_site(fresh_emulator, azurite, monkeypatch, stuck=True)
    target = engine.target()
    held_key = fresh_emulator.control.site_app_settings(site)["OPENAI_KEY"]
    engine.key_values.add(held_key)
    engine.service.request_rotation(target, trigger="cli", reason="test", force=True)
    assert regenerations(engine) == 1  # the new slot only
    state = engine.state()
    assert state is not None and state.phase is Phase.DRAINING and state.drain_ended_by is None
    assert state.consumers_waiting and "still resolves version" in state.consumers_waiting
    # Well past the 25 h bound, sweep after sweep: held, the old key never regenerated.
    for _ in range(4):
        engine.clock.advance(hours=9)
        engine.service.sweep()
        assert regenerations(engine) == 1
        assert held_key in engine.service_keys().values(), "the key the site holds was regenerated"
    state = engine.state()
    assert state is not None and state.phase is Phase.DRAINING and state.drain_held_since is not None
    status = engine.service.status(target)[0]
    assert status.phase == "draining" and status.consumers == (f"App Service app {site}",)
    notes = history_notes(engine)
    assert sum(n.startswith("check_consumers:held:drain held after its 25h bound") for n in notes) == 1
    assert any("python -m rotation release" in n for n in notes)
    # A release without a reason changes nothing; with one, the old key is retired at once.
    refused = engine.service.release_drain(target, requester="ops@example.com", reason=" ")
    assert refused.status is RequestStatus.REFUSED and regenerations(engine) == 1
    released = engine.service.release_drain(target, requester="ops@example.com", reason="site decommissioned")
    assert released.status is RequestStatus.RELEASED and "App Service app" in released.message
    assert regenerations(engine) == 2
    assert held_key not in engine.service_keys().values()
    state = engine.state()
    assert state is not None and state.phase is Phase.IDLE and state.drain_ended_by == "released"
    notes = history_notes(engine)
    assert any(n.startswith("request:released:site decommissioned") for n in notes)
    assert any(n.endswith("cycle completed; drain ended by released") for n in notes)
    engine.check_i1_i3()
    engine.assert_no_key_values_in(engine.state_and_history_texts())


def test_a_stuck_site_that_recovers_ends_the_held_drain_by_acknowledgement(
    fresh_emulator, azurite, monkeypatch
) -> None:
    engine, site = with_site(fresh_emulator, azurite, monkeypatch, stuck=True)
    engine.service.request_rotation(engine.target(), trigger="cli", reason="test", force=True)
    engine.clock.advance(hours=26)
    engine.service.sweep()
    assert regenerations(engine) == 1 and engine.state().drain_held_since is not None  # type: ignore[union-attr]
    fresh_emulator.control.shape_consumer(site_id(site), stuck=False)
    fresh_emulator.control.advance_clock(timedelta(hours=24, minutes=1).total_seconds())  # its own refetch
    engine.clock.advance(minutes=16)
    engine.service.sweep()
    state = engine.state()
    assert state is not None and state.phase is Phase.IDLE and state.drain_ended_by == "acknowledged"
    assert regenerations(engine) == 2
