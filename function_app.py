"""Azure Functions entry point (Python v2 programming model): thin triggers over the rotation engine.

Each function parses its trigger, calls the engine's service and maps errors — the logic is in
`triggers/`. Settings are validated at load (bad ones logged by name); the service and every Azure SDK
behind it are built on the first invocation, once per worker process (`triggers.runtime`), which keeps
indexing fast.
Function names are fixed: infra and docs/FUNCTIONS.md refer to them.
"""

import typing

import azure.functions as func

from triggers import admin_api, runtime
from triggers.event_handler import handle_key_vault_event
from triggers.queue_handler import handle_queue_message
from triggers.sweep_handler import run_sweep

# Function keys guard the admin API at the host; ADMIN_ROLE adds an Entra app role check on top.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
# Settings are validated when the host loads the app: a bad one is logged, by name, at deployment.
runtime.validate_at_load()


@app.function_name("sweep_timer")
@app.timer_trigger(arg_name="timer", schedule="%ROTATION_SCHEDULE%", run_on_startup=False, use_monitor=True)
@app.queue_output(arg_name="requests", queue_name="%ROTATION_QUEUE%", connection="AzureWebJobsStorage")
def sweep_timer(timer: func.TimerRequest, requests: func.Out[typing.List[str]]) -> None:  # noqa: UP006
    # typing.List, not list[str]: the library's queue converter does not recognise builtin generics.
    # `requests` is written only when ROTATION_FANOUT=true (one message per due target).
    run_sweep(timer, runtime.current(), requests)


@app.function_name("key_vault_events")
@app.event_grid_trigger(arg_name="event")
def key_vault_events(event: func.EventGridEvent) -> None:
    # The library's converter hands over a CloudEvent instead when the subscription uses CloudEvents 1.0.
    handle_key_vault_event(event, runtime.current())


@app.function_name("rotate_from_queue")
@app.queue_trigger(arg_name="message", queue_name="%ROTATION_QUEUE%", connection="AzureWebJobsStorage")
def rotate_from_queue(message: func.QueueMessage) -> None:
    handle_queue_message(message, runtime.current())


@app.function_name("admin_rotate")
@app.route(route="targets/{name}/rotate", methods=[func.HttpMethod.POST], auth_level=func.AuthLevel.FUNCTION)
def admin_rotate(req: func.HttpRequest) -> func.HttpResponse:
    return admin_api.rotate(req, runtime.current)


@app.function_name("admin_release_drain")
@app.route(route="targets/{name}/release", methods=[func.HttpMethod.POST], auth_level=func.AuthLevel.FUNCTION)
def admin_release_drain(req: func.HttpRequest) -> func.HttpResponse:
    return admin_api.release_drain(req, runtime.current)


@app.function_name("admin_list_targets")
@app.route(route="targets", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def admin_list_targets(req: func.HttpRequest) -> func.HttpResponse:
    return admin_api.list_targets(req, runtime.current)


@app.function_name("admin_get_target")
@app.route(route="targets/{name}", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def admin_get_target(req: func.HttpRequest) -> func.HttpResponse:
    return admin_api.get_target(req, runtime.current)


@app.function_name("admin_key_age_report")
@app.route(route="report", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def admin_key_age_report(req: func.HttpRequest) -> func.HttpResponse:
    return admin_api.key_age_report(req, runtime.current)
