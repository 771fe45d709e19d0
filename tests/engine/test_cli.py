"""``python -m rotation`` as an operator runs it: a subprocess reading the settings from --env-file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.engine.harness import resource_id

REPO = Path(__file__).resolve().parents[2]


def run_cli(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    return subprocess.run(
        [sys.executable, "-m", "rotation", "--env-file", str(env_file), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_sweep_rotate_status_history(emulator, azurite, tmp_path) -> None:
    name = "cli" + uuid.uuid4().hex[:8]
    emulator.control.add_account(resource_id(name))
    suffix = uuid.uuid4().hex[:8]
    settings = {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": resource_id(name), "drainTime": "PT1H"}]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"clistate{suffix}",
        "ROTATION_HISTORY_TABLE": f"clihistory{suffix}",
    }
    env_file = tmp_path / "rotation.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    sweep = run_cli(env_file, "sweep")
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout)["advanced"] == 1

    rotate = run_cli(env_file, "rotate", name, "--reason", "quarterly", "--requester", "ops")
    assert rotate.returncode == 0, rotate.stderr
    assert json.loads(rotate.stdout)["status"] == "started"

    again = run_cli(env_file, "rotate", name)
    assert json.loads(again.stdout)["status"] == "in_progress"

    status = run_cli(env_file, "status", resource_id(name), "--json")
    [one] = json.loads(status.stdout)
    assert one["phase"] == "draining" and one["activeSlot"] == "key2"

    history = run_cli(env_file, "history", name, "--json")
    rows = json.loads(history.stdout)
    assert any(r["step"] == "cycle" and r["reason"] == "quarterly" and r["requester"] == "ops" for r in rows)

    unknown = run_cli(env_file, "rotate", "no-such-account")
    assert unknown.returncode == 2 and "not a configured target" in unknown.stderr

    bad = tmp_path / "bad.env"
    bad.write_text(env_file.read_text() + "VERIFY_TIMEOUT=ten minutes\n")
    settings_error = run_cli(bad, "status")
    assert settings_error.returncode == 2 and "VERIFY_TIMEOUT" in settings_error.stderr
