"""A tiny evaluator for the Bicep expressions that build app settings, so tests can feed the values a
deployment would produce to the app's own settings validation. Values only Azure knows at deployment
time (outputs, endpoints) come from `samples`, keyed by their rendered expression."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.infra import bicep


class Unevaluable(Exception):
    pass


class Evaluator:
    def __init__(
        self,
        path: Path,
        *,
        params: Mapping[str, Any] | None = None,
        samples: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.tree = bicep.parse(path)
        self.params = dict(params or {})
        self.samples = dict(samples or {})

    def name(self, name: str, scope: Mapping[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name in self.params:
            return self.params[name]
        if name in self.samples:
            return self.samples[name]
        if name in self.tree.get("variables", {}):
            return self.eval(self.tree["variables"][name]["value"], scope)
        declared = self.tree.get("parameters", {}).get(name)
        if declared is not None:
            if "default" not in declared:
                raise Unevaluable(f"parameter {name} has no default and no value")
            return self.eval(declared["default"], scope)
        return None

    def eval(self, expr: Any, scope: Mapping[str, Any] | None = None) -> Any:
        scope = scope or {}
        if expr is None or isinstance(expr, bool | int):
            return expr
        if isinstance(expr, str):
            value = self.name(expr, scope)
            if value is not None:
                return value
            return re.sub(r"\$\{(\w+)\}", lambda m: str(self.eval(m.group(1), scope)), expr)
        if isinstance(expr, list):
            return [self.eval(item, scope) for item in expr]
        rendered = bicep.render(expr)
        if rendered in self.samples:
            return self.samples[rendered]
        if "function" in expr and len(expr) == 1:
            return self.function(expr["function"], scope)
        if "operator" in expr and len(expr) == 1:
            return self.operator(expr["operator"], scope)
        return {key: self.eval(value, scope) for key, value in expr.items()}

    def function(self, function: dict[str, Any], scope: Mapping[str, Any]) -> Any:
        kind = function["type"]
        args = list((function.get("parameters") or {}).values())
        if kind == "map":
            items, lam = self.eval(args[0], scope), args[1]
            return [
                self.eval(lam["detail"]["expression"], {**scope, lam["detail"]["var_1"]: item})
                for item in items
            ]
        if kind == "toObject":
            items, key, value = self.eval(args[0], scope), args[1]["detail"], args[2]["detail"]
            return {
                self.eval(key["expression"], {**scope, key["var_1"]: item}): self.eval(
                    value["expression"], {**scope, value["var_1"]: item}
                )
                for item in items
            }
        values = [self.eval(arg, scope) for arg in args if arg is not None]
        if kind == "union" and values and all(isinstance(v, list) for v in values):
            # ARM's union of arrays: ordered, without duplicates
            return list(dict.fromkeys(item for value in values for item in value))
        if kind == "join":
            return values[1].join(values[0])
        if kind == "union":
            merged: dict[str, Any] = {}
            for value in values:
                merged.update(value)
            return merged
        if kind == "string":
            value = values[0]
            if isinstance(value, bool):
                return str(value)  # ARM's string(true) is 'True', which the app would reject
            return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if kind == "concat":
            joined: list[Any] = []
            for value in values:
                joined.extend(value)
            return joined
        if kind == "json":
            return json.loads(values[0])
        if kind == "empty":
            return not values[0]
        if kind == "ends_with":
            return values[0].endswith(values[1])
        if kind == "length":
            return len(values[0])
        if kind == "substring":
            return values[0][values[1] : values[1] + values[2]]
        if kind == "split":
            return values[0].split(values[1])
        if kind == "last":
            return values[0][-1]
        raise Unevaluable(f"function {kind} in {self.path.name}")

    def operator(self, operator: dict[str, Any], scope: Mapping[str, Any]) -> Any:
        kind, operands = operator["type"], operator["operands"]
        if kind == "conditional":
            branch = "true_value" if self.eval(operands["condition"], scope) else "false_value"
            return self.eval(operands[branch], scope)
        if kind == "not":
            return not self.eval(operands["bool_value"], scope)
        if kind == "or":
            return any(self.eval(value, scope) for value in operands.values())
        if kind == "and":
            return all(self.eval(value, scope) for value in operands.values())
        if kind in ("equals", "not_equals"):
            left, right = (self.eval(value, scope) for value in operands.values())
            return (left == right) == (kind == "equals")
        if kind == "substract":
            return self.eval(operands["operand_1"], scope) - self.eval(operands["operand_2"], scope)
        if kind == "index_accessor":
            return self.eval(operands["operand_1"], scope)[self.eval(operands["operand_2"], scope)]
        raise Unevaluable(f"{bicep.render({'operator': operator})} in {self.path.name}: add it to samples")
