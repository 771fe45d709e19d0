"""`make local` as the README tells an operator to use it: start it, wait for LOCAL_READY=1, call the admin
API with curl and the printed function key, rotate over HTTP, run the CLI on the printed env file, reach
the Event Grid webhook and the queue trigger, then Ctrl-C — and nothing it started is left running."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_local_command(extra: str) -> list[str]:
    """The recipe of the Makefile's `local` target, with $(PY) and $(LOCAL_ARGS) filled in."""
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^local:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None, "Makefile has no `local` target"
    line = recipe.group(1).replace("$(PY)", shlex.quote(sys.executable)).replace("$(LOCAL_ARGS)", extra)
    return shlex.split(line)


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            child = int(status.parent.name)
            found |= {child} | children_of(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalRun:
    def __init__(self, tmp_path: Path) -> None:
        self.env_path = tmp_path / "local.env"
        command = make_local_command(f"--schedule '*/2 * * * * *' --accounts 1 --env-file {self.env_path}")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def wait_ready(self, timeout: float = 90) -> dict[str, str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.strip() == "LOCAL_READY=1":
                return dict(x.split("=", 1) for x in self.lines if re.match(r"^[A-Z_]+=", x))
        raise AssertionError(f"no LOCAL_READY=1: {self.lines} {''.join(self.errors)[-2000:]}")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalRun]:
    run = LocalRun(tmp_path)
    try:
        yield run
    finally:
        if run.process.poll() is None:  # a failed test: stop it as Ctrl-C would, so its children stop too
            run.process.send_signal(signal.SIGINT)
            try:
                run.process.wait(30)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait(10)


def curl(*args: str) -> tuple[int, Any]:
    """The README's curl commands; without curl installed, the same request (-X, -H, -d, URL) via httpx."""
    if shutil.which("curl"):
        result = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                                timeout=60, check=True)
        body, _, status = result.stdout.rpartition("\n")
        code = int(status)
    else:
        import httpx

        method, headers, data, url, rest = "GET", {}, None, "", list(args)
        while rest:
            flag = rest.pop(0)
            if flag == "-X":
                method = rest.pop(0)
            elif flag == "-H":
                name, _, value = rest.pop(0).partition(":")
                headers[name.strip()] = value.strip()
            elif flag == "-d":
                data, method = rest.pop(0), ("POST" if method == "GET" else method)
            else:
                url = flag
        answer = httpx.request(method, url, headers=headers, content=data, timeout=60)
        body, code = answer.text, answer.status_code
    return code, (json.loads(body) if body.strip().startswith(("{", "[")) else body)


def cli(env_file: str, *args: str) -> Any:
    result = subprocess.run([sys.executable, "-m", "rotation", "--env-file", env_file, *args], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_make_local_serves_the_function_app_until_ctrl_c(local: LocalRun) -> None:
    printed = local.wait_ready()
    url, key, env_file = printed["FUNCTIONS_URL"], printed["FUNCTIONS_KEY"], printed["ENV_FILE"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and local.lines[-1] == "LOCAL_READY=1"
    settings = dict(line.split("=", 1) for line in Path(env_file).read_text().splitlines()
                    if line and not line.startswith("#"))
    assert {"ROTATION_TARGETS", "KEY_VAULT_URL", "AzureWebJobsStorage", "IDENTITY_HEADER"} <= set(settings)
    assert oct(Path(env_file).stat().st_mode & 0o777) == "0o600"

    # the admin API, with function keys checked as the host does
    assert curl(f"{url}/api/targets")[0] == 401
    assert curl("-H", "x-functions-key: wrong", f"{url}/api/targets")[0] == 401
    status, listed = curl("-H", f"x-functions-key: {key}", f"{url}/api/targets")
    assert status == 200 and {t["accountName"] for t in listed["targets"]} == {
        "ai-services", "contoso-openai", "local-0001"}
    # the timer runs on its schedule (every 2 s here): it adopts every target, nobody else asked
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        phases = {t["phase"] for t in curl(f"{url}/api/targets?code={key}")[1]["targets"]}
        if phases == {"idle"}:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the timer did not adopt the targets: {phases}")
    assert any(row["trigger"] == "timer" for row in cli(env_file, "history", "contoso-openai", "--json"))

    status, outcome = curl("-X", "POST", f"{url}/api/targets/ai-services/rotate?code={key}",
                           "-H", "Content-Type: application/json", "-d", '{"reason": "by hand"}')
    assert status == 202 and outcome["status"] == "started", outcome
    assert curl("-X", "GET", f"{url}/api/targets/ai-services/rotate?code={key}")[0] == 404  # POST only
    status, report = curl(f"{url}/api/report?code={key}")
    assert status == 200 and len(report["targets"]) == 3

    # the CLI on the printed env file sees what the API did
    [one] = cli(env_file, "status", "ai-services", "--json")
    assert one["phase"] == "draining" and one["activeSlot"] == "key2"

    # the Event Grid webhook: system key, handshake, unknown function, a notification
    webhook = f"{url}/runtime/webhooks/eventgrid?functionName=key_vault_events"
    validation = '[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"",' \
                 '"eventTime":"2026-01-01T00:00:00Z","dataVersion":"1","data":{"validationCode":"c0de"}}]'
    handshake = ("-H", "aeg-event-type: SubscriptionValidation", "-d", validation)
    assert curl("-X", "POST", webhook, *handshake)[0] == 401
    system = settings["EVENTGRID_SYSTEM_KEY"]
    status, answer = curl("-X", "POST", f"{webhook}&code={system}", *handshake)
    assert (status, answer) == (200, {"validationResponse": "c0de"})
    missing = webhook.replace("key_vault_events", "nope") + f"&code={system}"
    assert curl("-X", "POST", missing, "-H", "aeg-event-type: Notification", "-d", "[]")[0] == 404
    vault = settings["KEY_VAULT_URL"].rstrip("/")
    event = [{"id": "e1", "eventType": "Microsoft.KeyVault.SecretNearExpiry", "subject": "not-ours",
              "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "1",
              "topic": "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/v",
              "data": {"Id": f"{vault}/secrets/not-ours/0123456789abcdef0123456789abcdef", "VaultName": "v",
                       "ObjectType": "Secret", "ObjectName": "not-ours",
                       "Version": "0123456789abcdef0123456789abcdef", "NBF": None, "EXP": None}}]
    assert curl("-X", "POST", f"{webhook}&code={system}", "-H", "aeg-event-type: Notification",
                "-d", json.dumps(event))[0] == 202

    # the queue trigger, from Azurite
    from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

    with QueueClient.from_connection_string(settings["AzureWebJobsStorage"], settings["ROTATION_QUEUE"],
                                            message_encode_policy=BinaryBase64EncodePolicy()) as queue:
        queue.send_message(json.dumps({"target": "local-0001"}).encode())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("rotate_from_queue ran" in e for e in local.errors):
        time.sleep(0.5)
    assert any("rotate_from_queue ran" in e for e in local.errors), "".join(local.errors)[-2000:]
    assert any("key_vault_events ran" in e for e in local.errors)

    # Ctrl-C stops everything it started
    started = children_of(local.process.pid)
    assert len(started) >= 3, started  # emulator, azurite-table, azurite-queue
    local.process.send_signal(signal.SIGINT)
    assert local.process.wait(timeout=60) == 0, "".join(local.errors)[-2000:]
    time.sleep(0.5)
    assert not [pid for pid in started if alive(pid)], "left running after Ctrl-C"
    assert "Traceback" not in "".join(local.errors)
