"""The admins' HTTP API: authorise, validate, call the engine's service, map its errors to statuses.

Order matters for "bad input changes nothing": the caller is authorised and every input validated before
the service is called, so a rejected request never reaches the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from rotation.views import to_json
from triggers import records
from triggers.admin_requests import (
    BadRequest,
    history_limit,
    release_reason,
    report_window,
    rotate_request,
    target_name,
)
from triggers.http_responses import error_response, json_response
from triggers.principal import authorize
from triggers.runtime import Runtime

RuntimeProvider = Callable[[], Runtime]


def rotate(req: func.HttpRequest, runtime_provider: RuntimeProvider) -> func.HttpResponse:
    return _guarded("admin_rotate", req, runtime_provider, _rotate)


def release_drain(req: func.HttpRequest, runtime_provider: RuntimeProvider) -> func.HttpResponse:
    return _guarded("admin_release_drain", req, runtime_provider, _release_drain)


def list_targets(req: func.HttpRequest, runtime_provider: RuntimeProvider) -> func.HttpResponse:
    return _guarded("admin_list_targets", req, runtime_provider, _list_targets)


def get_target(req: func.HttpRequest, runtime_provider: RuntimeProvider) -> func.HttpResponse:
    return _guarded("admin_get_target", req, runtime_provider, _get_target)


def key_age_report(req: func.HttpRequest, runtime_provider: RuntimeProvider) -> func.HttpResponse:
    return _guarded("admin_key_age_report", req, runtime_provider, _key_age_report)


Handler = Callable[[func.HttpRequest, Runtime, str], func.HttpResponse]


def _guarded(function: str, req: func.HttpRequest, runtime_provider: RuntimeProvider,
             handler: Handler) -> func.HttpResponse:
    from rotation import errors

    try:
        runtime = runtime_provider()
    except errors.SettingsError as error:
        return error_response(503, "misconfigured", str(error))
    decision = authorize(req.headers, _admin_role(runtime))
    if not decision.allowed:
        assert decision.status is not None and decision.reason is not None
        records.emit("rotation.admin_denied", logging.WARNING, function=function, status=decision.status,
                     reason=decision.reason)
        code = "unauthorized" if decision.status == 401 else "forbidden"
        return error_response(decision.status, code, decision.reason)
    assert decision.requester is not None
    try:
        return handler(req, runtime, decision.requester)
    except BadRequest as error:
        code = "payload_too_large" if error.status == 413 else "bad_request"
        return error_response(error.status, code, str(error))
    except errors.UnknownTarget:
        return error_response(404, "unknown_target", "no such target in ROTATION_TARGETS")
    except errors.TransientAzureError as error:
        records.emit("rotation.admin_failed", logging.WARNING, function=function,
                     error=_error_text(error))
        return error_response(503, "azure_unavailable", "Azure is unavailable or throttling; retry later",
                              retry_after=error.retry_after_seconds or 30)
    except errors.LeaseLost:
        return error_response(409, "conflict", "the target changed concurrently; retry the request")
    except errors.RotationError as error:
        records.emit("rotation.admin_failed", logging.ERROR, function=function, error=_error_text(error))
        return error_response(502, _code_of(error), str(error))


def _rotate(req: func.HttpRequest, runtime: Runtime, requester: str) -> func.HttpResponse:

    name = target_name(req.route_params)
    body = rotate_request(req.get_body())
    # A running cycle is not an exception: the outcome says `in_progress` (409 below), never a second cycle.
    outcome = runtime.service.request_rotation(
        name, trigger="admin", requester=requester, reason=body.reason,
        force=body.force, emergency=body.emergency,
    )
    result = to_json(outcome)
    if outcome.accepted:
        return json_response(202, result)
    # Not started: a cycle is running (never a second one), or the engine refused (recent cycle, backoff,
    # keyless account) — the message says which and whether `force` would help.
    code = "cycle_in_progress" if result.get("status") == "in_progress" else "refused"
    return error_response(409, code, outcome.message, outcome=result)


def _release_drain(req: func.HttpRequest, runtime: Runtime, requester: str) -> func.HttpResponse:
    """Retire the old key although a consumer was not seen on the new one (docs/ENGINE.md "Consumers")."""
    from rotation.outcomes import RequestStatus

    name = target_name(req.route_params)
    reason = release_reason(req.get_body())
    outcome = runtime.service.release_drain(name, requester=requester, reason=reason, trigger="admin")
    if outcome.status is RequestStatus.RELEASED:
        return json_response(200, to_json(outcome))
    return error_response(409, "nothing_to_release", outcome.message, outcome=to_json(outcome))


def _list_targets(req: func.HttpRequest, runtime: Runtime, requester: str) -> func.HttpResponse:
    return json_response(200, {"targets": to_json(runtime.service.status())})


def _get_target(req: func.HttpRequest, runtime: Runtime, requester: str) -> func.HttpResponse:
    from rotation import errors

    name = target_name(req.route_params)
    limit = history_limit(req.params)
    statuses = runtime.service.status(target=name)
    if not statuses:
        raise errors.UnknownTarget(name)
    history = runtime.service.history(name, limit=limit)
    return json_response(200, {"target": to_json(statuses[0]), "history": to_json(history)})


def _key_age_report(req: func.HttpRequest, runtime: Runtime, requester: str) -> func.HttpResponse:
    window = report_window(req.params)
    return json_response(200, to_json(runtime.service.key_age_report(window)))


def _admin_role(runtime: Runtime) -> str | None:
    role = getattr(runtime.settings, "admin_role", None)
    return role if isinstance(role, str) and role else None


def _code_of(error: Exception) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in type(error).__name__).lstrip("_")


def _error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {records.clip(str(error))}"
