"""What the host reads: function names and bindings (from the worker's indexing), host.json, the sample
settings; and that importing function_app stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from shared.settings import APP_SETTINGS
from tests.functions.harness import REPO_ROOT, load_function_app

LOCAL_EMULATOR_VALUES = {"ARM_ENDPOINT", "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE"}  # point at the emulator


@lru_cache(maxsize=1)
def indexed() -> dict[str, list[dict[str, Any]]]:
    """`app.get_functions()` may be called once per FunctionApp instance: index a fresh module, once."""
    app = load_function_app().app
    return {f.get_function_name(): json.loads(f.get_function_json())["bindings"] for f in app.get_functions()}


def _trigger(name: str) -> dict[str, Any]:
    triggers = [b for b in indexed()[name] if b["type"].endswith("Trigger")]
    assert len(triggers) == 1
    return triggers[0]


def test_function_names_are_the_fixed_ones() -> None:
    assert set(indexed()) == {"sweep_timer", "key_vault_events", "rotate_from_queue", "admin_rotate",
                              "admin_list_targets", "admin_get_target", "admin_key_age_report",
                              "admin_release_drain"}


def test_timer_binding() -> None:
    assert _trigger("sweep_timer") == {"direction": "IN", "type": "timerTrigger", "name": "timer",
                                       "schedule": "%ROTATION_SCHEDULE%", "runOnStartup": False,
                                       "useMonitor": True}
    outputs = [b for b in indexed()["sweep_timer"] if b["direction"] == "OUT"]
    assert outputs == [{"direction": "OUT", "type": "queue", "name": "requests",
                        "queueName": "%ROTATION_QUEUE%", "connection": "AzureWebJobsStorage"}]


def test_event_grid_and_queue_bindings() -> None:
    assert indexed()["key_vault_events"] == [{"direction": "IN", "type": "eventGridTrigger", "name": "event"}]
    assert indexed()["rotate_from_queue"] == [{"direction": "IN", "type": "queueTrigger", "name": "message",
                                               "queueName": "%ROTATION_QUEUE%",
                                               "connection": "AzureWebJobsStorage"}]


@pytest.mark.parametrize(("name", "method", "route"), [
    ("admin_rotate", "POST", "targets/{name}/rotate"),
    ("admin_list_targets", "GET", "targets"),
    ("admin_get_target", "GET", "targets/{name}"),
    ("admin_key_age_report", "GET", "report"),
    ("admin_release_drain", "POST", "targets/{name}/release"),
])
def test_http_bindings_use_function_keys(name: str, method: str, route: str) -> None:
    assert _trigger(name) == {"direction": "IN", "type": "httpTrigger", "name": "req", "methods": [method],
                              "authLevel": "FUNCTION", "route": route}
    assert [b for b in indexed()[name] if b["direction"] == "OUT"] == [
        {"direction": "OUT", "type": "http", "name": "$return"}]


def test_openapi_document_covers_every_http_route() -> None:
    document = json.loads((REPO_ROOT / "triggers" / "openapi.json").read_text())
    names = ("admin_rotate", "admin_list_targets", "admin_get_target", "admin_key_age_report",
             "admin_release_drain")
    routes = {"/" + _trigger(n)["route"]: n for n in names}
    operations = {path: next(iter(ops.values()))["operationId"] for path, ops in document["paths"].items()}
    assert operations == routes


def test_host_json() -> None:
    host = json.loads((REPO_ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle",
                                       "version": "[4.*, 5.0.0)"}
    assert host["functionTimeout"] == "00:30:00"
    assert host["extensions"]["queues"]["maxDequeueCount"] == 5
    assert "Trace" in host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"]


def test_sample_settings_document_every_app_setting() -> None:
    sample = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())
    documented = set(sample["SettingsReference"]) - {"_"}
    assert documented == {spec.name for spec in APP_SETTINGS}
    values = sample["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    # binding expressions (%X%) are resolved by the host from settings that must exist
    assert {"ROTATION_SCHEDULE", "ROTATION_QUEUE", "AzureWebJobsStorage"} <= set(values)
    for spec in APP_SETTINGS:
        if spec.default is not None and spec.name in values and spec.name not in LOCAL_EMULATOR_VALUES:
            assert values[spec.name] == spec.default, spec.name
    assert all(isinstance(v, str) for v in values.values())


def test_sample_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import load_settings

    values = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = load_settings(values)
    assert settings.rotation_schedule == "0 */15 * * * *" and settings.queue_name == "rotation-requests"


def test_importing_function_app_loads_no_azure_sdk_and_validates_settings_by_name() -> None:
    code = ("import sys, function_app; "
            "heavy = sorted(m for m in sys.modules if m.startswith(('azure.core', 'azure.identity', "
            "'azure.keyvault', 'azure.mgmt', 'azure.data', 'azure.storage', 'azure.eventgrid', "
            "'shared.bootstrap', 'rotation.service', 'requests'))); print(heavy)")
    # no settings at all: the import still works (the functions index) and reports the missing setting
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(REPO_ROOT), env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout
    assert "rotation.settings_invalid" in result.stderr and "ROTATION_TARGETS" in result.stderr
    # valid settings: nothing reported, and still no SDK loaded at import
    sample = json.loads((Path(REPO_ROOT) / "local.settings.sample.json").read_text())["Values"]
    valid = subprocess.run([sys.executable, "-c", code], cwd=Path(REPO_ROOT), env={**env, **sample},
                           capture_output=True, text=True, timeout=60, check=True)
    assert valid.stdout.strip() == "[]" and "settings_invalid" not in valid.stderr, valid.stderr
