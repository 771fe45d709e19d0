"""Invoke function_app.py's handlers the way the Azure Functions Python worker does.

The worker imports function_app.py, builds each function (``handler.build().get_user_function()``) and
calls it with the trigger types of the azure-functions library: a ``TimerRequest`` (plus the queue output
binding), an ``EventGridEvent`` decoded by the library's own converter, an ``HttpRequest``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import secrets
import sys
import types
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.timer import TimerRequest

from local_host.bindings import Output
from testkit.watch import SimulatedCrash

REPO_ROOT = Path(__file__).resolve().parents[1]


# What the worker passes for an output binding: the local Functions host's own (one implementation).
QueueOutput = Output


def load_function_app() -> types.ModuleType:
    """A fresh instance of function_app.py, as a worker process has one."""
    name = f"function_app_demo_{secrets.token_hex(4)}"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "function_app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("function_app.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FunctionHost:
    def __init__(self) -> None:
        module = load_function_app()
        self._functions = {
            name: getattr(module, name).build().get_user_function()
            for name in ("sweep_timer", "key_vault_events", "admin_rotate")
        }

    # A SimulatedCrash is the invocation's process dying (a BaseException, so no product code handles it):
    # the host only sees the invocation end, and the target's lease is left to expire.

    def timer_tick(self) -> None:
        with contextlib.suppress(SimulatedCrash):
            self._functions["sweep_timer"](TimerRequest(past_due=False), QueueOutput())

    def key_vault_event(self, body: dict[str, Any]) -> None:
        event = EventGridEventInConverter.decode(meta.Datum(json.dumps(body), "json"), trigger_metadata={})
        with contextlib.suppress(SimulatedCrash):
            self._functions["key_vault_events"](event)

    def admin_rotate(self, target: str, reason: str, force: bool = False) -> tuple[int, dict[str, Any]]:
        encoded = quote(target, safe="")
        request = func.HttpRequest(
            method="POST",
            url=f"https://localhost/api/targets/{encoded}/rotate",
            headers={"content-type": "application/json", "x-functions-key": "demo"},
            params={},
            route_params={"name": encoded},
            body=json.dumps({"reason": reason, "force": force}).encode(),
        )
        try:
            response = self._functions["admin_rotate"](request)
        except SimulatedCrash:
            return 500, {"error": {"code": "invocation_crashed"}}
        body = json.loads(response.get_body() or b"{}")
        return response.status_code, body
