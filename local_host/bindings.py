"""What the host learns from the app: each function's trigger and other bindings, read from the same
function.json metadata the Functions host indexes (``FunctionApp.get_functions()``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

_SETTING = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: dict[str, Any]  # the binding whose type ends in "Trigger"
    outputs: tuple[dict[str, Any], ...]  # output bindings other than an HTTP trigger's "$return"
    call: Callable[..., Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return str(self.trigger["type"])


def resolve(value: str, settings: Mapping[str, str] = os.environ) -> str:
    """Binding expressions ``%NAME%`` are app settings, resolved by the host before any code runs; a
    missing one stops the host from indexing the function, as Azure's does."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise LookupError(f"binding expression %{name}% names an app setting that does not exist")
        return settings[name]

    return _SETTING.sub(setting, value)


def index(app: func.FunctionApp) -> list[FunctionSpec]:
    specs = []
    for function in app.get_functions():  # may be called once per app instance
        bindings = json.loads(function.get_function_json())["bindings"]
        [trigger] = [b for b in bindings if str(b["type"]).endswith("Trigger")]
        outputs = tuple(b for b in bindings if b["direction"] == "OUT" and b["name"] != "$return")
        specs.append(
            FunctionSpec(function.get_function_name() or "", trigger, outputs, function.get_user_function())
        )
    return specs


class Output(func.Out):
    """An output binding's value, as the worker hands it to the function and reads it back after."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value
