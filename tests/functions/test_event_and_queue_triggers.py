"""key_vault_events and rotate_from_queue end to end: what they ignore, what they act on, what they raise."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rotation.errors import TransientAzureError
from tests.functions.builders import EXPIRED, key_vault_event_body
from tests.functions.harness import FunctionHarness, account_id, body_of

ACCOUNT = "fn-events"
IDLE_ACCOUNT = "fn-events-idle"


@pytest.fixture(scope="module")
def harness(emulator: Any, azurite: Any) -> Iterator[FunctionHarness]:
    for name in (ACCOUNT, IDLE_ACCOUNT):
        emulator.control.add_account(account_id(name))
    targets = [{"resourceId": account_id(name), "drainTime": "PT1H"} for name in (ACCOUNT, IDLE_ACCOUNT)]
    h = FunctionHarness(emulator, azurite, targets)
    with h.active():
        h.timer()  # adopt
        yield h


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    prefix = name + " "
    messages = [r.getMessage() for r in caplog.records]
    return [json.loads(m[len(prefix):]) for m in messages if m.startswith(prefix)]


def _current_version(h: FunctionHarness, secret: str) -> str:
    version = h.emulator.secret_client().get_secret(secret).properties.version
    assert isinstance(version, str)
    return version


@pytest.mark.parametrize(("label", "change", "reason"), [
    ("other event type", {"event_type": "Microsoft.KeyVault.SecretNewVersionCreated"},
     "unhandled_event_type"),
    ("other vault", {"vault_url": "https://kv-elsewhere.vault.azure.net/"}, "unmanaged_secret"),
    ("unmanaged secret", {"secret": "somebody-elses-secret"}, "unmanaged_secret"),
    ("slot secret", {"secret": f"{ACCOUNT}-key1"}, "not_rotated_by_events"),
    ("stale version", {"version": "0" * 32}, "stale_version"),
    ("malformed exp", {"exp": "tomorrow"}, "malformed"),
])
def test_events_that_must_not_rotate_are_ignored_with_a_reason(
        harness: FunctionHarness, caplog: pytest.LogCaptureFixture, label: str, change: dict[str, Any],
        reason: str) -> None:
    caplog.set_level(logging.INFO, logger="rotation")
    args: dict[str, Any] = {"vault_url": harness.emulator.vault_url, "secret": f"{ACCOUNT}-active",
                            "version": _current_version(harness, f"{ACCOUNT}-active"), **change}
    body = key_vault_event_body(args.pop("vault_url"), args.pop("secret"), args.pop("version"), **args)
    before = harness.snapshot()
    harness.event(body)
    assert harness.snapshot() == before, label
    ignored = _records(caplog, "rotation.event_ignored")
    assert [r["reason"] for r in ignored] == [reason], label


@pytest.mark.parametrize("variant", [{"cloud": True, "pascal": False}, {"cloud": False, "pascal": True}])
def test_an_expired_event_for_the_current_version_starts_exactly_one_cycle(
        harness: FunctionHarness, caplog: pytest.LogCaptureFixture, variant: dict[str, bool]) -> None:
    caplog.set_level(logging.INFO, logger="rotation")
    name = ACCOUNT if variant["cloud"] else IDLE_ACCOUNT
    body = key_vault_event_body(harness.emulator.vault_url, f"{name}-active",
                                _current_version(harness, f"{name}-active"), event_type=EXPIRED,
                                event_id=f"evt-{name}", exp=None, **variant)
    harness.event(body)
    harness.event(body)  # redelivery: the secret already has a newer version → stale, not a second cycle
    accepted = _records(caplog, "rotation.event_accepted")
    assert len(accepted) == 1 and accepted[0]["target"] == account_id(name)
    assert [r["reason"] for r in _records(caplog, "rotation.event_ignored")] == ["stale_version"]
    history = body_of(harness.get_target(name))["history"]
    assert [r["requester"] for r in history if r["step"] == "cycle"] == [f"eventgrid:evt-{name}"]


def test_a_transient_failure_on_a_valid_event_raises_so_event_grid_retries(
        emulator: Any, azurite: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rotation")
    name = "fn-events-retry"
    emulator.control.add_account(account_id(name))
    h = FunctionHarness(emulator, azurite, [{"resourceId": account_id(name), "drainTime": "PT1H"}])
    with h.active():
        h.timer()
        version = _current_version(h, f"{name}-active")
        body = key_vault_event_body(emulator.vault_url, f"{name}-active", version)
        emulator.control.add_fault("keyvault.get_secret", status=503, count=20)
        try:
            with pytest.raises(TransientAzureError):
                h.event(body)
        finally:
            emulator.control.clear_faults()
        assert _records(caplog, "rotation.event_retry")
        h.event(body)  # the redelivery succeeds
        assert len(_records(caplog, "rotation.event_accepted")) == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cloud=st.booleans(),
       data=st.dictionaries(st.sampled_from(["Id", "id", "ObjectName", "Version", "EXP", "NBF", "VaultName",
                                             "ObjectType", "x"]),
                            st.none() | st.integers() | st.text(max_size=60)
                            | st.lists(st.integers(), max_size=2),
                            max_size=6),
       event_type=st.sampled_from(["Microsoft.KeyVault.SecretNearExpiry", EXPIRED, "Other"]),
       subject=st.none() | st.text(max_size=30))
def test_fuzzed_events_never_raise_and_change_nothing(harness: FunctionHarness, cloud: bool,
                                                      data: dict[str, Any],
                                                      event_type: str, subject: str | None) -> None:
    body = key_vault_event_body(harness.emulator.vault_url, f"{ACCOUNT}-active", "0" * 32, cloud=cloud,
                                event_type=event_type)
    body["data"] = data
    body["subject"] = subject
    before = harness.snapshot()
    harness.event(body)
    assert harness.snapshot()[:2] == before[:2]


# -- queue fan-out -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"target": 5}', b'{"target": "nope"}',
                                  b"\xff\xfe", json.dumps({"target": "x" * 5000}).encode(),
                                  b'{"targets": []}', b'{"targets": "acc"}', b'{"targets": ["a", 5]}',
                                  b'{"targets": ["a", " "]}', b'{"target": "a", "targets": ["b"]}',
                                  json.dumps({"targets": [f"a{i}" for i in range(17)]}).encode(),
                                  json.dumps({"targets": ["x" * 30_000, "y" * 30_000]}).encode()])
def test_bad_queue_messages_are_rejected_without_retry(harness: FunctionHarness,
                                                       caplog: pytest.LogCaptureFixture,
                                                       body: bytes) -> None:
    caplog.set_level(logging.INFO, logger="rotation")
    before = harness.snapshot()
    harness.queue_message(body, dequeue_count=1)  # returns normally: the host deletes the message
    assert harness.snapshot() == before
    assert len(_records(caplog, "rotation.queue_message_rejected")) == 1


def test_fan_out_timer_enqueues_due_targets_and_the_queue_trigger_advances_them(
        emulator: Any, azurite: Any, caplog: pytest.LogCaptureFixture) -> None:
    from azure.storage.queue import QueueClient

    caplog.set_level(logging.INFO, logger="rotation")
    names = ["fn-fanout-a", "fn-fanout-b"]
    for name in names:
        emulator.control.add_account(account_id(name))
    targets = [{"resourceId": account_id(n)} for n in names]
    h = FunctionHarness(emulator, azurite, targets, ROTATION_FANOUT="true")
    with h.active():
        outbox = h.timer()
        # both are due now: one message names them (the queue trigger runs them side by side)
        expected = sorted(account_id(n) for n in names)
        assert [sorted(json.loads(m)["targets"]) for m in outbox.value] == [expected]
        assert h.state_rows() == []  # the timer itself advanced nothing
        # the host writes the output binding's messages to the queue; do that with the real client
        queue = QueueClient.from_connection_string(azurite.connection_string, h.queue)
        queue.create_queue()
        for message in outbox.value:
            queue.send_message(message)
        for received in queue.receive_messages(max_messages=10):
            h.queue_message(received.content, dequeue_count=received.dequeue_count)
            queue.delete_message(received)
        phases = {t["accountName"]: t["phase"] for t in body_of(h.list_targets())["targets"]}
        assert phases == dict.fromkeys(names, "idle")
        advanced = _records(caplog, "rotation.queue_advanced")
        assert sorted(r["target"] for r in advanced) == sorted(account_id(n) for n in names)
        assert h.timer().value is None  # nothing due any more: no messages


def test_a_group_message_advances_its_targets_and_rejects_only_the_unknown_one(
        emulator: Any, azurite: Any, caplog: pytest.LogCaptureFixture) -> None:
    """``{"targets": [...]}`` (what the scheduler sends for targets due in the same second): each known
    target is advanced, the unknown name gets its own rejection record, and the message completes (no retry:
    the host deletes it)."""
    caplog.set_level(logging.INFO, logger="rotation")
    names = ["fn-group-a", "fn-group-b"]
    for name in names:
        emulator.control.add_account(account_id(name))
    h = FunctionHarness(emulator, azurite, [{"resourceId": account_id(n)} for n in names])
    with h.active():
        h.queue_message(json.dumps({"targets": [account_id(names[0]), "fn-group-unknown", names[1]]}))
        phases = {t["accountName"]: t["phase"] for t in body_of(h.list_targets())["targets"]}
        assert phases == dict.fromkeys(names, "idle")  # both adopted
        advanced = _records(caplog, "rotation.queue_advanced")
        assert sorted(r["target"] for r in advanced) == sorted(account_id(n) for n in names)
        rejected = _records(caplog, "rotation.queue_message_rejected")
        assert [(r["reason"], r["target"]) for r in rejected] == [("unknown target", "fn-group-unknown")]
