"""Key Vault SecretNearExpiry/SecretExpired events: clock moves, webhook delivery with retries, callbacks."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from azure.keyvault.secrets import SecretClient

from emulator.client.control_client import ControlError
from emulator.client.credential import EmulatorManagedIdentityCredential
from emulator.client.launcher import EmulatorProcess
from emulator.server import run_in_thread

DAY = 86400


def expiring(seconds_from_now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(time.time() + seconds_from_now), dt.UTC)


class FlakyWebhook:
    """A local HTTP endpoint that fails the first ``failures`` deliveries, then records the bodies."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[float] = []
        self.received: list[list[dict]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts.append(time.monotonic())
                if len(outer.attempts) <= outer.failures:
                    self.send_response(503)
                else:
                    outer.received.append(json.loads(body))
                    outer.headers.append(dict(self.headers))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_near_expiry_then_expired_by_clock_moves_once_per_version(fresh_emulator: EmulatorProcess):
    client = fresh_emulator.secret_client()
    first = client.set_secret("ai-services-active", "v", expires_on=expiring(31 * DAY))
    assert fresh_emulator.control.kv_events() == []
    fresh_emulator.control.advance_clock(2 * DAY)
    events = fresh_emulator.control.kv_events()
    assert [e["eventType"] for e in events] == ["Microsoft.KeyVault.SecretNearExpiry"]
    event = events[0]
    assert event["subject"] == "ai-services-active"
    assert event["topic"].endswith("/providers/Microsoft.KeyVault/vaults/kv-emulator")
    assert event["data"] == {
        "Id": first.id,
        "VaultName": "kv-emulator",
        "ObjectType": "Secret",
        "ObjectName": "ai-services-active",
        "Version": first.properties.version,
        "NBF": None,
        "EXP": int(first.properties.expires_on.timestamp()),
    }
    assert {"id", "eventTime", "dataVersion", "metadataVersion"} <= set(event)
    fresh_emulator.control.advance_clock(30 * DAY)
    fresh_emulator.control.advance_clock(5 * DAY)
    types = [e["eventType"] for e in fresh_emulator.control.kv_events()]
    assert types == ["Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"]
    # A new version is a new subject of events; the old version is not watched any more.
    clock_now = fresh_emulator.control.clock()["now"]
    second = client.set_secret(
        "ai-services-active", "w", expires_on=dt.datetime.fromtimestamp(int(clock_now + 10 * DAY), dt.UTC)
    )
    events = fresh_emulator.wait_for(lambda: fresh_emulator.control.kv_events()[2:])
    assert [(e["eventType"], e["data"]["Version"]) for e in events] == [
        ("Microsoft.KeyVault.SecretNearExpiry", second.properties.version)
    ]


def test_secrets_without_exp_or_far_from_it_emit_nothing(fresh_emulator):
    client = fresh_emulator.secret_client()
    client.set_secret("no-exp", "v")
    client.set_secret("far", "v", expires_on=expiring(400 * DAY))
    fresh_emulator.control.advance_clock(300 * DAY)
    time.sleep(1.2)  # one tick of the emulator's once-a-second evaluation
    assert fresh_emulator.control.kv_events() == []


def test_webhook_delivery_is_retried_with_backoff_until_accepted():
    with FlakyWebhook(failures=2) as hook, EmulatorProcess(event_webhook=hook.url) as emu:
        emu.secret_client().set_secret("soon", "v", expires_on=expiring(5 * DAY))
        emu.wait_for(lambda: hook.received, timeout=15)
        assert len(hook.attempts) == 3
        assert hook.attempts[2] - hook.attempts[1] > hook.attempts[1] - hook.attempts[0] > 0.1
        [batch] = hook.received
        assert isinstance(batch, list) and batch[0]["eventType"] == "Microsoft.KeyVault.SecretNearExpiry"
        assert hook.headers[0]["aeg-event-type"] == "Notification"
        assert emu.control.kv_events() == batch


def test_in_process_callback_receives_events():
    received: list[dict] = []
    with run_in_thread(on_event=received.append) as running:
        env = running.env
        credential = EmulatorManagedIdentityCredential(
            env["IDENTITY_ENDPOINT"], env["IDENTITY_HEADER"], env["REQUESTS_CA_BUNDLE"]
        )
        client = SecretClient(
            env["KEY_VAULT_URL"],
            credential,
            verify_challenge_resource=False,
            connection_verify=env["REQUESTS_CA_BUNDLE"],
        )
        client.set_secret("callback", "v", expires_on=expiring(40 * DAY))
        with httpx.Client(verify=ssl.create_default_context(cafile=env["REQUESTS_CA_BUNDLE"])) as http:
            http.post(env["EMULATOR_CONTROL_URL"] + "/clock", json={"advanceSeconds": 41 * DAY})
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [e["eventType"] for e in received] == [
        "Microsoft.KeyVault.SecretNearExpiry",
        "Microsoft.KeyVault.SecretExpired",
    ]
    assert received[0]["data"]["ObjectName"] == "callback"


@pytest.mark.parametrize("body", [{}, {"advanceSeconds": 1, "now": 2}, {"advanceSeconds": "x"}])
def test_bad_clock_moves_are_rejected(emulator, body):
    before = emulator.control.clock()["offsetSeconds"]
    with pytest.raises(ControlError) as raised:
        emulator.control._call("POST", "/clock", body)
    assert raised.value.status == 400
    assert emulator.control.clock()["offsetSeconds"] == before


def test_set_clock_to_an_absolute_time(fresh_emulator):
    target = time.time() + 90 * DAY
    moved = fresh_emulator.control.set_clock(target)
    assert abs(moved["now"] - target) < 2
