"""A small, strict interpreter for the subset of KQL that the alerts and the workbook use, so tests run
the deployed queries over the records the engine really logs (no Azure here).

Tabular operators: a table name, then `where`, `extend`, `project`, `summarize ... by ...`, `order by` /
`sort by`. Scalar functions and aggregations are the ones in SCALARS and AGGREGATES. Anything else
raises `Unsupported`, so a query cannot silently use syntax this stand-in would get wrong; Kusto's null
semantics are kept where the queries rely on them (comparisons with null are false, `tostring(null)` is
"", `minif` over no row is null).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Row = dict[str, Any]


class Unsupported(Exception):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<timespan>\d+(?:\.\d+)?(?:d|h|m|s|ms)\b)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op>==|!=|>=|<=|=~|[-+*/<>(),.=|])
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    )""",
    re.X,
)
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1),
          "s": timedelta(seconds=1), "ms": timedelta(milliseconds=1)}  # fmt: skip


def tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise Unsupported(f"cannot read {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)  # type: ignore[arg-type]
        if kind == "string":
            tokens.append(("lit", json.loads('"' + value[1:-1].replace('"', '\\"') + '"')))
        elif kind == "timespan":
            number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
            tokens.append(("lit", float(number) * _UNITS[unit]))
        elif kind == "number":
            tokens.append(("lit", float(value) if "." in value else int(value)))
        else:
            tokens.append((kind, value))  # type: ignore[arg-type]
    return tokens


# ---- expressions ------------------------------------------------------------------------------------

_PRECEDENCE = {"or": 1, "and": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3, "=~": 3,
               "in": 3, "startswith": 3, "+": 4, "-": 4, "*": 5, "/": 5}  # fmt: skip


class Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> tuple[str, Any] | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise Unsupported(f"expected {value!r}, found {token!r}")
        self.index += 1
        return token

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] != "lit" and token[1] == value

    def done(self) -> bool:
        return self.index >= len(self.tokens)

    def expression(self, minimum: int = 0) -> Any:
        left = self.primary()
        while True:
            token = self.peek()
            if token is None or token[0] == "lit" or token[1] not in _PRECEDENCE:
                return left
            operator = token[1]
            precedence = _PRECEDENCE[operator]
            if precedence < minimum:
                return left
            self.take()
            if operator == "in":
                self.take("(")
                items = [self.expression()]
                while self.at(","):
                    self.take(",")
                    items.append(self.expression())
                self.take(")")
                left = ("in", left, items)
            else:
                left = ("bin", operator, left, self.expression(precedence + 1))

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "lit":
            return ("lit", value)
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == "-":
            return ("bin", "-", ("lit", 0), self.primary())
        if kind != "name":
            raise Unsupported(f"unexpected {value!r}")
        if self.at("("):
            self.take("(")
            args = []
            if not self.at(")"):
                args.append(self.expression())
                while self.at(","):
                    self.take(",")
                    args.append(self.expression())
            self.take(")")
            return ("call", value, args)
        node: Any = ("col", value)
        while self.at("."):
            self.take(".")
            node = ("member", node, self.take()[1])
        return node


def _compare(operator: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    return {"==": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[operator]


def _arith(operator: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a / b
    return a / b


def _tostring(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _toint(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _bin(value: Any, size: timedelta) -> Any:
    if value is None:
        return None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((value - epoch) // size) * size


def _round(value: Any, digits: int = 0) -> Any:
    return None if value is None else round(float(value), digits)


def _parse_json(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None


SCALARS: dict[str, Callable[..., Any]] = {
    "parse_json": _parse_json,
    "substring": lambda s, start, length=None: (
        None if s is None else s[start : None if length is None else start + length]
    ),
    "tostring": _tostring,
    "toint": _toint,
    "bin": _bin,
    "round": _round,
    "isnull": lambda v: v is None,
    "isnotnull": lambda v: v is not None,
    "isempty": lambda v: v is None or v == "",
    "isnotempty": lambda v: v is not None and v != "",
    "iff": lambda c, a, b: a if c else b,
    "strlen": lambda s: None if s is None else len(s),
}


class Evaluator:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def scalar(self, node: Any, row: Row) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "col":
            if node[1] not in row:
                raise Unsupported(f"no column {node[1]!r} (have {sorted(row)})")
            return row[node[1]]
        if kind == "member":
            base = self.scalar(node[1], row)
            return base.get(node[2]) if isinstance(base, dict) else None
        if kind == "in":
            value = self.scalar(node[1], row)
            return value is not None and value in [self.scalar(item, row) for item in node[2]]
        if kind == "bin":
            operator, left, right = node[1], node[2], node[3]
            if operator == "and":
                return bool(self.scalar(left, row)) and bool(self.scalar(right, row))
            if operator == "or":
                return bool(self.scalar(left, row)) or bool(self.scalar(right, row))
            a, b = self.scalar(left, row), self.scalar(right, row)
            if operator == "startswith":
                return isinstance(a, str) and a.lower().startswith(str(b).lower())
            if operator == "=~":
                return a is not None and b is not None and str(a).lower() == str(b).lower()
            if operator in ("==", "!=", ">", "<", ">=", "<="):
                return _compare(operator, a, b)
            return _arith(operator, a, b)
        if kind == "call":
            name, args = node[1], node[2]
            if name == "now" and not args:
                return self.now
            if name == "case":
                for index in range(0, len(args) - 1, 2):
                    if self.scalar(args[index], row):
                        return self.scalar(args[index + 1], row)
                return self.scalar(args[-1], row)
            if name not in SCALARS:
                raise Unsupported(f"function {name}()")
            return SCALARS[name](*[self.scalar(arg, row) for arg in args])
        raise Unsupported(str(node))


# ---- aggregations -----------------------------------------------------------------------------------


def _present(values: Iterable[Any]) -> list[Any]:
    return [value for value in values if value is not None]


def _aggregate(ev: Evaluator, name: str, args: list[Any], rows: list[Row]) -> Any:
    def values(arg: Any, where: Any = None) -> list[Any]:
        return [ev.scalar(arg, row) for row in rows if where is None or ev.scalar(where, row)]

    if name == "count" and not args:
        return len(rows)
    if name == "countif":
        return len(values(("lit", 1), args[0]))
    if name == "dcount":
        return len(set(_present(values(args[0]))))
    if name == "sum":
        return sum(_present(values(args[0])))
    if name in ("max", "min", "maxif", "minif"):
        found = _present(values(args[0], args[1] if name.endswith("if") else None))
        if not found:
            return None
        return max(found) if name.startswith("max") else min(found)
    if name in ("take_any", "take_anyif"):
        found = _present(values(args[0], args[1] if name.endswith("if") else None))
        return found[0] if found else None
    raise Unsupported(f"aggregation {name}()")


# ---- tabular operators ------------------------------------------------------------------------------


def _split_pipes(query: str) -> list[str]:
    parts, depth, quote, current = [], 0, "", []
    for char in query:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _assignments(parser: Parser, stop: str | None = None) -> list[tuple[str | None, Any]]:
    """`name = expr, expr, ...` until the end or the `stop` word."""
    items: list[tuple[str | None, Any]] = []
    while not parser.done() and not (stop and parser.at(stop)):
        name = None
        first, second = parser.peek(), parser.peek(1)
        if first and first[0] == "name" and second and second[1] == "=":
            name = parser.take()[1]
            parser.take("=")
        items.append((name, parser.expression()))
        if parser.at(","):
            parser.take(",")
    return items


def _column_name(name: str | None, node: Any) -> str:
    if name:
        return name
    if node[0] == "col":
        return node[1]
    raise Unsupported(f"name the computed column {node!r}")


def run(query: str, tables: Mapping[str, list[Row]], now: datetime) -> list[Row]:
    ev = Evaluator(now)
    stages = _split_pipes(query)
    if stages[0] not in tables:
        raise Unsupported(f"table {stages[0]!r}")
    rows = [dict(row) for row in tables[stages[0]]]
    for stage in stages[1:]:
        word, _, rest = stage.partition(" ")
        parser = Parser(tokenize(rest))
        if word == "where":
            condition = parser.expression()
            rows = [row for row in rows if ev.scalar(condition, row)]
        elif word in ("extend", "project"):
            items = _assignments(parser)
            out = []
            for row in rows:
                new = dict(row) if word == "extend" else {}
                for name, node in items:
                    new[_column_name(name, node)] = ev.scalar(
                        node, {**row, **new} if word == "extend" else row
                    )
                out.append(new)
            rows = out
        elif word == "summarize":
            rows = _summarize(ev, parser, rows)
        elif word in ("order", "sort"):
            parser.take("by")
            keys = []
            while not parser.done():
                node = parser.expression()
                descending = True  # Kusto's default
                if parser.at("asc") or parser.at("desc"):
                    descending = parser.take()[1] == "desc"
                keys.append((node, descending))
                if parser.at(","):
                    parser.take(",")
            for node, descending in reversed(keys):
                rows.sort(key=lambda row, n=node: _sort_key(ev.scalar(n, row)), reverse=descending)
        else:
            raise Unsupported(f"operator {word!r}")
        if not parser.done():
            raise Unsupported(f"left over in {stage!r}: {parser.tokens[parser.index :]}")
    return rows


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (0, 0)
    if isinstance(value, datetime):
        return (1, value.timestamp())
    if isinstance(value, timedelta):
        return (1, value.total_seconds())
    return (1, value)


def _summarize(ev: Evaluator, parser: Parser, rows: list[Row]) -> list[Row]:
    aggregations = _assignments(parser, stop="by")
    keys: list[tuple[str | None, Any]] = []
    if parser.at("by"):
        parser.take("by")
        keys = _assignments(parser)
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(ev.scalar(node, row) for _, node in keys), []).append(row)
    if not keys and not groups:
        groups[()] = []
    out = []
    for key, members in groups.items():
        result: Row = {_column_name(name, node): value for (name, node), value in zip(keys, key, strict=True)}
        for name, node in aggregations:
            if node[0] != "call":
                raise Unsupported(f"not an aggregation: {node!r}")
            function, args = node[1], node[2]
            if function in ("arg_max", "arg_min"):
                if name:
                    raise Unsupported("arg_max/arg_min columns keep their own names")
                scored = [(ev.scalar(args[0], row), row) for row in members]
                scored = [(score, row) for score, row in scored if score is not None]
                pick = (max if function == "arg_max" else min)(scored, key=lambda item: _sort_key(item[0]))
                result[_column_name(None, args[0])] = pick[0]
                for extra in args[1:]:
                    result[_column_name(None, extra)] = ev.scalar(extra, pick[1])
                continue
            default = {"count": "count_"}.get(function)
            column = name or default
            if column is None:
                raise Unsupported(f"name the aggregation {function}()")
            result[column] = _aggregate(ev, function, args, members)
        out.append(result)
    return out
