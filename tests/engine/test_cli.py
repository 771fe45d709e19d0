"""``python -m rotation`` as an operator runs it: a subprocess reading the settings from --env-file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _settings(emulator, azurite, names: list[str], tmp_path: Path, **extra: str) -> tuple[Path, str]:
    suffix = uuid.uuid4().hex[:8]
    settings = {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps([{"resourceId": resource_id(n), "drainTime": "PT1H"} for n in names]),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"clistate{suffix}",
        "ROTATION_HISTORY_TABLE": f"clihistory{suffix}",
        **extra,
    }
    env_file = tmp_path / f"rotation-{suffix}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return env_file, suffix


def _tables(azurite) -> set[str]:
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        return {t.name for t in service.list_tables()}


def test_reading_commands_create_nothing_and_options_go_anywhere(emulator, azurite, tmp_path) -> None:
    name = "clir" + uuid.uuid4().hex[:8]
    emulator.control.add_account(resource_id(name))
    env_file, suffix = _settings(emulator, azurite, [name], tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    for args in (["status", "--env-file", str(env_file)], ["--env-file", str(env_file), "plan", "--json"],
                 ["report", "--format", "json", "--env-file", str(env_file)]):
        result = subprocess.run([sys.executable, "-m", "rotation", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
    assert not {t for t in _tables(azurite) if suffix in t}, "a read created a table"

    [planned] = json.loads(run_cli(env_file, "plan").stdout)
    assert (planned["action"], planned["wouldRun"], planned["phase"]) == ("adopt", True, "unadopted")
    assert json.loads(run_cli(env_file, "sweep").stdout)["advanced"] == 1
    [after] = json.loads(run_cli(env_file, "plan").stdout)
    assert after["action"] == "wait" and after["wouldRun"] is False and after["notBefore"]

    report = json.loads(run_cli(env_file, "report", "--format", "json", "--window-days", "7").stdout)
    [row] = report["targets"]
    assert report["windowSeconds"] == 7 * 86400 and row["overdue"] is False and row["failuresInWindow"] == 0
    # adopted keys existed before the service stored them: the report says their age is a lower bound
    assert [(s["slot"], s["exact"], s["generation"]) for s in row["slots"]] == [
        ("key1", False, "adopted"), ("key2", False, "adopted")]
    csv_text = run_cli(env_file, "report", "--format", "csv").stdout.splitlines()
    assert csv_text[0].startswith("account,phase,active_slot,key1_age_seconds,key2_age_seconds")
    assert csv_text[1].startswith(f"{name},idle,key1,")

    [status] = json.loads(run_cli(env_file, "status", "--json").stdout)
    assert {"leaseHeld", "leaseOwner", "leaseExpiresAt", "nextAttemptAt"} <= set(status)


def test_errors_off_a_terminal_are_one_line_with_the_whole_resource_id(emulator, azurite, tmp_path) -> None:
    """A missing account: the message names ARM, the endpoint and what to check — never wrapped at 80."""
    missing = "clinone" + uuid.uuid4().hex[:8]  # not in the emulator
    env_file, _ = _settings(emulator, azurite, [missing], tmp_path)
    result = run_cli(env_file, "sweep")
    assert result.returncode == 1
    [failed] = json.loads(result.stdout)["results"]
    assert failed["outcome"] == "failed"
    error = failed["error"]
    assert "arm.get_account at " + emulator.env["ARM_ENDPOINT"] in error
    assert "HTTP 404 ResourceNotFound" in error
    assert "check the resource id in ROTATION_TARGETS" in error
    [status] = json.loads(run_cli(env_file, "status").stdout)
    assert status["lastError"] == error and status["leaseHeld"] is False
    table = subprocess.run(
        [sys.executable, "-c", "import sys; from operator_cli.main import main; sys.exit(main())",
         "--env-file", str(env_file), "rotate", resource_id(missing) + "x"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert table.returncode == 2
    assert len(table.stderr.strip().splitlines()) == 1 and resource_id(missing) + "x" in table.stderr


def test_ctrl_c_stops_a_sweep_cleanly_and_the_next_one_resumes(fresh_emulator, azurite, tmp_path) -> None:
    names = [f"clis{n:02d}" + uuid.uuid4().hex[:4] for n in range(40)]
    for name in names:
        fresh_emulator.control.add_account(resource_id(name))
    fresh_emulator.control.set_latency(0.05)
    env_file, _ = _settings(fresh_emulator, azurite, names, tmp_path, SWEEP_CONCURRENCY="2")
    env = {k: v for k, v in os.environ.items() if k not in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    command = [sys.executable, "-m", "rotation", "sweep", "--env-file", str(env_file)]
    sweep = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(4)  # a few adoptions in flight
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, err
    assert "Traceback" not in err and "stopping: no new target will be started" in err
    summary = json.loads(out)
    assert summary["interrupted"] > 0 and summary["advanced"] > 0 and summary["failed"] == 0
    # every target accounted for: adopted, not started after Ctrl-C, or paced past the vault's write budget
    # (40 adoptions x 4 secret writes; the sweep starts what the budget pays within 2 s, the rest go back)
    assert summary["advanced"] + summary["interrupted"] + summary["deferred"] == 40
    left = summary["interrupted"] + summary["deferred"]
    phases = [s["phase"] for s in json.loads(run_cli(env_file, "status").stdout)]
    assert "adopting" not in phases, "an interrupted sweep left a target half adopted"

    # the next sweeps take exactly the targets that were not adopted, with a pool sized to their threads;
    # adopting 32 targets writes 128 secrets, more than the vault's write budget (KEY_VAULT_SECRET_WRITES_
    # PER_10S, at most 250 per 10 s) lets through at once, so what it holds back is deferred, never failed,
    # and a later sweep adopts it
    fresh_emulator.control.set_latency(0)
    wide = tmp_path / "wide.env"
    wide.write_text(env_file.read_text().replace("SWEEP_CONCURRENCY=2", "SWEEP_CONCURRENCY=24"))
    advanced = 0
    for _ in range(8):
        resumed = run_cli(wide, "sweep")
        assert resumed.returncode == 0, resumed.stderr
        assert "Connection pool is full" not in resumed.stderr
        later = json.loads(resumed.stdout)
        assert later["failed"] == 0
        assert later["advanced"] + later["deferred"] == left - advanced
        advanced += later["advanced"]
        if advanced == left:
            break
        time.sleep(2)  # test driver: the vault's write budget refills in real time
    assert advanced == left


def test_cli_release_of_a_drain_held_by_a_stuck_site(emulator, azurite, tmp_path) -> None:
    name = "cli" + uuid.uuid4().hex[:8]
    emulator.control.add_account(resource_id(name))
    site = resource_id(name).split("/providers/")[0] + f"/providers/Microsoft.Web/sites/app-{name}"
    suffix = uuid.uuid4().hex[:8]
    settings = {
        **emulator.app_env,
        "ROTATION_TARGETS": json.dumps(
            [{"resourceId": resource_id(name), "consumers": [{"kind": "appService", "resourceId": site}]}]
        ),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_STATE_TABLE": f"clistate{suffix}",
        "ROTATION_HISTORY_TABLE": f"clihistory{suffix}",
    }
    env_file = tmp_path / "rotation.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    assert run_cli(env_file, "sweep").returncode == 0
    emulator.control.add_site(
        site, {"KEY": f"@Microsoft.KeyVault(SecretUri={emulator.vault_url}secrets/{name}-active)"}
    )
    emulator.control.shape_consumer(site, stuck=True)
    assert run_cli(env_file, "rotate", name, "--reason", "quarterly").returncode == 0
    [one] = json.loads(run_cli(env_file, "status", name, "--json").stdout)
    assert one["phase"] == "draining" and "still resolves version" in one["consumersWaiting"]
    assert one["drainReason"] == f"drain 25h: App Service app app-{name}, 24h bound + margin"

    no_reason = run_cli(env_file, "release", name)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    released = run_cli(env_file, "release", name, "--reason", "site retired", "--requester", "ops")
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout)["status"] == "released"
    [after] = json.loads(run_cli(env_file, "status", name, "--json").stdout)
    assert after["drainEndedBy"] == "released" and after["drainReleasedBy"] == "ops"
    again = run_cli(env_file, "release", name, "--reason", "twice")
    assert again.returncode == 1 and json.loads(again.stdout)["status"] == "refused"
