"""Reading the Bicep templates offline with pycep: find resources and modules, render expressions.

pycep turns a template into a JSON-like tree. Identifiers and string literals both come out as plain
strings, so `render` gives an expression back in Bicep-like text ("guid(vault.id, principalId, roleId)")
that tests compare against; `resolve` follows a name to the parameter default or variable it stands for.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parse_cached(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def parse(path: Path) -> dict[str, Any]:
    return _parse_cached(path.resolve())


def app_module(name: str) -> Path:
    return INFRA / "app" / f"{name}.bicep"


@dataclass(frozen=True)
class Declaration:
    """A resource or module declaration with its condition / loop taken apart."""

    path: Path
    symbol: str
    type: str
    body: dict[str, Any]
    condition: Any = None
    loop: Any = None
    existing: bool = False

    @property
    def properties(self) -> dict[str, Any]:
        return self.body.get("properties", {})


def _unwrap(symbol: str, path: Path, type_: str, config: dict[str, Any], existing: bool) -> Declaration:
    condition = None
    loop = None
    if "loop_type" in config:
        loop = config["loop_type"]
        condition = config.get("condition")
        config = config["config"]
    elif set(config) == {"condition", "config"}:
        condition = config["condition"]
        config = config["config"]
    return Declaration(path, symbol, type_, config, condition, loop, existing)


def resources(path: Path, type_: str | None = None, *, include_existing: bool = False) -> list[Declaration]:
    found = []
    for symbol, item in parse(path).get("resources", {}).items():
        if item["existing"] and not include_existing:
            continue
        if type_ is not None and item["type"].lower() != type_.lower():
            continue
        found.append(_unwrap(symbol, path, item["type"], item["config"], item["existing"]))
    return found


def all_resources(type_: str, *, include_existing: bool = False) -> list[Declaration]:
    return [r for path in bicep_files() for r in resources(path, type_, include_existing=include_existing)]


def resource(path: Path, symbol: str) -> Declaration:
    item = parse(path)["resources"][symbol]
    return _unwrap(symbol, path, item["type"], item["config"], item["existing"])


def the_resource(path: Path, type_: str) -> Declaration:
    found = resources(path, type_)
    assert len(found) == 1, f"expected one {type_} in {path.name}, found {[r.symbol for r in found]}"
    return found[0]


def module(path: Path, symbol: str) -> Declaration:
    item = parse(path)["modules"][symbol]
    return _unwrap(symbol, path, item["detail"]["path"], item["config"], False)


def modules(path: Path) -> list[Declaration]:
    return [module(path, symbol) for symbol in parse(path).get("modules", {})]


def module_file(declaration: Declaration) -> Path:
    return (declaration.path.parent / declaration.type).resolve()


def param(path: Path, name: str) -> dict[str, Any]:
    return parse(path)["parameters"][name]


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def output(path: Path, name: str) -> Any:
    return parse(path)["outputs"][name]["value"]


def decorator(path: Path, param_name: str, kind: str) -> Any:
    for deco in param(path, param_name)["decorators"]:
        if deco["type"] == kind:
            return deco["argument"]
    raise KeyError(f"{param_name} in {path.name} has no @{kind}")


def resolve(path: Path, expr: Any) -> Any:
    """Follow a bare name to the variable's value or the parameter's default (one file)."""
    tree = parse(path)
    while isinstance(expr, str):
        if expr in tree.get("variables", {}):
            expr = tree["variables"][expr]["value"]
        elif expr in tree.get("parameters", {}) and "default" in tree["parameters"][expr]:
            expr = tree["parameters"][expr]["default"]
        else:
            break
    return expr


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_BINARY = {
    "equals": "==",
    "not_equals": "!=",
    "and": "&&",
    "or": "||",
    "add": "+",
    "substract": "-",
    "greater_than": ">",
    "less_than": "<",
    "coalesce": "??",
}


def render(expr: Any) -> str:
    """Bicep-like text of an expression, for comparisons in tests."""
    if expr is None:
        return "null"
    if isinstance(expr, bool):
        return "true" if expr else "false"
    if isinstance(expr, int):
        return str(expr)
    if isinstance(expr, str):
        return expr
    if isinstance(expr, list):
        return "[" + ", ".join(render(item) for item in expr) + "]"
    if "function" in expr and len(expr) == 1:
        function = expr["function"]
        name = _camel(function["type"])
        args = dict(function.get("parameters") or {})
        if name == "resourceGroup" and args.get("subscription_id") is not None:
            ordered = [args["subscription_id"], args["resource_group_name"]]
        else:
            ordered = [value for value in args.values() if value is not None]
        return f"{name}(" + ", ".join(render(arg) for arg in ordered) + ")"
    if "operator" in expr and len(expr) == 1:
        operator = expr["operator"]
        kind = operator["type"]
        operands = operator["operands"]
        if kind == "property_accessor":
            return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
        if kind == "index_accessor":
            return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
        if kind == "nested_resource_accessor":
            return f"{render(operands['operand_1'])}::{render(operands['operand_2'])}"
        if kind == "conditional":
            return (
                f"{render(operands['condition'])} ? {render(operands['true_value'])}"
                f" : {render(operands['false_value'])}"
            )
        if kind == "not":
            return f"!{render(operands['bool_value'])}"
        if kind in _BINARY:
            values = [render(value) for value in operands.values()]
            return f" {_BINARY[kind]} ".join(values)
        return f"{kind}(" + ", ".join(render(value) for value in operands.values()) + ")"
    if expr.get("type") == "lambda_expression":
        detail = expr["detail"]
        variables = [value for key, value in detail.items() if key.startswith("var_")]
        return f"{', '.join(variables)} => {render(detail['expression'])}"
    return "{" + ", ".join(f"{key}: {render(value)}" for key, value in expr.items()) + "}"


def comment_before(path: Path, symbol: str) -> str:
    """The `//` comment block right above `resource <symbol>` in the source (pycep drops comments)."""
    lines = path.read_text().splitlines()
    pattern = re.compile(rf"^resource\s+{re.escape(symbol)}\s")
    for index, line in enumerate(lines):
        if pattern.match(line):
            block = []
            cursor = index - 1
            while cursor >= 0 and lines[cursor].lstrip().startswith("//"):
                block.insert(0, lines[cursor].lstrip()[2:].strip())
                cursor -= 1
            return " ".join(block)
    raise KeyError(f"resource {symbol} not declared in {path.name}")


@functools.cache
def function_triggers() -> dict[str, str]:
    """Function name -> trigger binding type, from the real function_app.py as the worker indexes it.

    A private copy of the module is loaded because a FunctionApp can list its functions only once.
    """
    spec = importlib.util.spec_from_file_location("_function_app_for_infra_tests", ROOT / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {fn.get_function_name(): fn.get_trigger().get_binding_name() for fn in module.app.get_functions()}
