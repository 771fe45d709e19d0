"""Run function_app.py's handlers the way the Functions worker does, against the emulator and Azurite.

`FunctionHarness` sets the app settings in os.environ (before the app's service is built), loads a fresh
instance of function_app (so `app.get_functions()` can be called once on it, DESIGN §6), and calls each
handler through `handler.build().get_user_function()` with the real azure-functions trigger types.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import azure.functions as func
from azure.functions.timer import TimerRequest

from demo.function_host import QueueOutput as Outbox
from demo.function_host import load_function_app
from tests.functions.builders import decode_event, http_request, queue_message
from triggers import runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITE_OPERATIONS = frozenset({"keyvault.set_secret", "keyvault.update_secret_properties",
                              "keyvault.delete_secret",
                              "arm.regenerate_key", "eventgrid.publish"})
SUBSCRIPTION = "00000000-0000-0000-0000-00000000f00d"


def account_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-functions/providers/"
            f"Microsoft.CognitiveServices/accounts/{name}")


class FunctionHarness:
    def __init__(self, emulator: Any, azurite: Any, targets: list[dict[str, Any]], **settings: str) -> None:
        suffix = secrets.token_hex(3)
        self.emulator = emulator
        self.azurite = azurite
        self.state_table = f"fnstate{suffix}"
        self.history_table = f"fnhistory{suffix}"
        self.queue = f"fn-requests-{suffix}"
        self.env: dict[str, str] = {
            **emulator.app_env,
            "AzureWebJobsStorage": azurite.connection_string,
            "ROTATION_TARGETS": json.dumps(targets),
            "ROTATION_SCHEDULE": "0 */15 * * * *",
            "ROTATION_STATE_TABLE": self.state_table,
            "ROTATION_HISTORY_TABLE": self.history_table,
            "ROTATION_QUEUE": self.queue,
            **settings,
        }
        self.module = load_function_app()

    @contextmanager
    def active(self) -> Iterator[FunctionHarness]:
        """os.environ holds exactly these app settings while the service is built and used."""
        from shared.settings import APP_SETTINGS

        names = {spec.name for spec in APP_SETTINGS} | set(self.env)
        saved = {key: os.environ.get(key) for key in names}
        for key in names - set(self.env):
            os.environ.pop(key, None)
        os.environ.update(self.env)
        runtime.reset()
        try:
            yield self
        finally:
            runtime.reset()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # -- invoking handlers ---------------------------------------------------------------------------

    def handler(self, function_name: str) -> Any:
        return getattr(self.module, function_name).build().get_user_function()

    def timer(self, past_due: bool = False) -> Outbox:
        outbox = Outbox()
        self.handler("sweep_timer")(TimerRequest(past_due=past_due), outbox)
        return outbox

    def event(self, body: dict[str, Any]) -> None:
        self.handler("key_vault_events")(decode_event(body))

    def queue_message(self, body: bytes | str, dequeue_count: int = 1) -> None:
        self.handler("rotate_from_queue")(queue_message(body, dequeue_count=dequeue_count))

    def rotate(self, name: str, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        encoded = quote(name, safe="")
        req = http_request("POST", f"/api/targets/{encoded}/rotate", route_params={"name": encoded},
                           headers={"content-type": "application/json", **(headers or {})}, body=raw)
        return self.handler("admin_rotate")(req)

    def list_targets(self, headers: dict[str, str] | None = None) -> func.HttpResponse:
        return self.handler("admin_list_targets")(http_request("GET", "/api/targets", headers=headers))

    def get_target(self, name: str, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> func.HttpResponse:
        encoded = quote(name, safe="")
        req = http_request("GET", f"/api/targets/{encoded}", route_params={"name": encoded}, params=params,
                           headers=headers)
        return self.handler("admin_get_target")(req)

    # -- observing the stores ------------------------------------------------------------------------

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableClient

        with TableClient.from_connection_string(self.azurite.connection_string, table) as client:
            try:
                return [dict(entity) for entity in client.list_entities()]
            except ResourceNotFoundError:
                return []

    def state_rows(self) -> list[dict[str, Any]]:
        return self.table_rows(self.state_table)

    def history_rows(self) -> list[dict[str, Any]]:
        return self.table_rows(self.history_table)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a rejected request must leave untouched: state, history, Azure writes.

        Reads are allowed (deciding that an event is stale reads the secret's current version)."""
        calls = {op: n for op, n in self.emulator.control.calls().items() if op in WRITE_OPERATIONS}
        return (self.state_rows(), self.history_rows(), calls)


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())
