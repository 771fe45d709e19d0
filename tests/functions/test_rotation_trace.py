"""One manual, one event-driven and one timer-driven rotation, each through its trigger, traced in history.

Everything runs for real: the handlers are called as the worker calls them, the service talks to the
emulator (Key Vault, ARM, data plane, managed identity, Event Grid topic) over HTTPS with the real SDKs,
state and history live in Azurite. The Key Vault event is the one the emulator emitted for `P-active`.
Run with `-s` to see the printed trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functions.harness import FunctionHarness, account_id, body_of

ACCOUNT = "fn-trace"
TARGET_ID = account_id(ACCOUNT)
PERIOD_SECONDS = 6
DRAIN_SECONDS = 1


@pytest.fixture(scope="module")
def harness(emulator: Any, azurite: Any) -> Iterator[FunctionHarness]:
    emulator.control.add_account(TARGET_ID)
    target = {"resourceId": TARGET_ID, "rotationPeriod": f"PT{PERIOD_SECONDS}S",
              "drainTime": f"PT{DRAIN_SECONDS}S", "verify": "dataplane"}
    h = FunctionHarness(emulator, azurite, [target],
                        ROTATION_EVENTS_TOPIC_ENDPOINT=emulator.env["EVENTGRID_TOPIC_ENDPOINT"])
    with h.active():
        yield h


def _phase(h: FunctionHarness) -> str:
    return str(body_of(h.get_target(ACCOUNT))["target"]["phase"])


def _finish_cycle(h: FunctionHarness) -> None:
    """Drain is stored state (I6): wait it out here, in the test, then let the timer retire the old slot."""
    assert _phase(h) == "draining"
    time.sleep(DRAIN_SECONDS + 0.2)
    h.timer()
    assert _phase(h) == "idle"


def _near_expiry_event(h: FunctionHarness, version: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for event in h.emulator.control.kv_events():
            data = event["data"]
            if (event["eventType"] == "Microsoft.KeyVault.SecretNearExpiry"
                    and data["ObjectName"] == f"{ACCOUNT}-active" and data["Version"] == version):
                return event
        return None

    found = h.emulator.wait_for(find, timeout=PERIOD_SECONDS + 10, interval=0.2)
    assert isinstance(found, dict)
    return found


def test_manual_event_and_timer_rotations_are_traced_in_history(harness: FunctionHarness,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rotation")
    h = harness
    secrets = h.emulator.secret_client()

    h.timer()  # first sweep adopts the new target: both keys, pointer and active value stored
    assert _phase(h) == "idle"
    assert body_of(h.get_target(ACCOUNT))["target"]["activeSlot"] in ("key1", "key2")

    # 1. manual rotation (admin API)
    response = h.rotate(ACCOUNT, {"reason": "trace: manual"})
    assert response.status_code == 202, response.get_body()
    assert body_of(response)["status"] == "started"
    _finish_cycle(h)

    # 2. event-driven rotation: P-active's expiry is last rotation + period + 30 days, so the emulator emits
    # SecretNearExpiry about PERIOD_SECONDS after that rotation
    active = secrets.get_secret(f"{ACCOUNT}-active")
    event = _near_expiry_event(h, active.properties.version)
    h.event(event)
    assert _phase(h) == "draining"
    h.event(event)  # at-least-once: the duplicate must not start a second cycle
    _finish_cycle(h)
    h.event(event)  # a late duplicate is now about a replaced version
    assert _phase(h) == "idle"

    sweeps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rotation.sweep ")]
    assert len(sweeps) == 3 and all('"seen": 1' in line and '"nextDue"' in line for line in sweeps), sweeps
    ignored = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rotation.event_ignored")]
    assert len(ignored) == 2 and all('"reason": "stale_version"' in line for line in ignored), ignored

    # 3. timer-driven rotation: once the period has passed the sweep starts the cycle by itself
    time.sleep(PERIOD_SECONDS + 0.5)
    h.timer()
    assert _phase(h) == "draining"
    _finish_cycle(h)

    history = list(reversed(body_of(h.get_target(ACCOUNT, params={"limit": "100"}))["history"]))
    print("\nhistory of", TARGET_ID)
    print(f"{'at':<27} {'trigger':<7} {'step':<16} {'outcome':<10} {'slot':<5} {'cycle':<27} "
          "requester / reason")
    for row in history:
        print(f"{row['at'][:26]:<27} {row['trigger']:<7} {row['step']:<16} {row['outcome']:<10} "
              f"{row['slot'] or '-':<5} {row['cycle'] or '-':<27} "
              f"{row['requester'] or '-'} / {row['reason']}")

    started = [row for row in history if row["step"] == "cycle" and row["outcome"] == "started"]
    assert [row["trigger"] for row in started] == ["admin", "event", "timer"], history
    assert started[0]["requester"] == "function-key" and started[0]["reason"] == "trace: manual"
    assert started[1]["requester"] == f"eventgrid:{event['id']}"
    cycles = {row["cycle"] for row in started}
    assert len(cycles) == 3
    for cycle in cycles:
        steps = [row["step"] for row in history if row["cycle"] == cycle and row["outcome"] == "succeeded"]
        assert steps == ["regenerate_new", "verify_and_swap", "retire_old"], (cycle, steps)
    assert body_of(h.get_target(ACCOUNT))["target"]["cyclesCompleted"] == 3

    # lifecycle events reached the topic, without any key value
    arm = h.emulator.arm_client(subscription_id=TARGET_ID.split("/")[2])
    keys = arm.accounts.list_keys("rg-functions", ACCOUNT)
    published = [e for e in h.emulator.control.eventgrid_events() if e.get("subject") == TARGET_ID]
    kinds = [e["eventType"] for e in published]
    assert kinds.count("KeyRotation.CycleStarted") == 3 and kinds.count("KeyRotation.CycleCompleted") == 3
    assert "KeyRotation.KeySwapped" in kinds
    text = repr(published)
    assert keys.key1 not in text and keys.key2 not in text
