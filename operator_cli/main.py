"""Operator CLI over the same service the functions use: ``python -m rotation``.

Presentation only (argparse, rich); it reaches the composition root (``shared.bootstrap``) to build the
service, which is why it lives outside the domain package.

Settings come from the environment (the same app settings as the function app); ``--env-file`` adds
KEY=VALUE lines (e.g. the emulator's ``--env-file`` output) or a ``local.settings.json``; the file wins
over variables already set (the operator named it explicitly — e.g. its REQUESTS_CA_BUNDLE must win).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rotation.errors import RotationError, SettingsError, UnknownTarget
from rotation.outcomes import RequestStatus
from rotation.views import TargetResult, TargetStatus, to_json

if TYPE_CHECKING:
    from rotation.service import RotationService

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``#`` comments, blank lines) or a Functions ``local.settings.json``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--env-file {path}: {exc.strerror}") from exc
    if path.suffix == ".json":
        try:
            values = json.loads(text).get("Values", {})
        except (json.JSONDecodeError, AttributeError) as exc:
            raise SettingsError(f"--env-file {path}: not a local.settings.json with a Values object") from exc
        return {str(k): str(v) for k, v in values.items()}
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--env-file {path}:{number}: expected KEY=VALUE")
        result[key.strip().removeprefix("export ").strip()] = value.strip().strip('"').strip("'")
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rotation", description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE file or local.settings.json to load first")
    parser.add_argument("-v", "--verbose", action="store_true", help="log transitions to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sweep", help="one timer tick: advance every target with something due")
    rotate = commands.add_parser("rotate", help="start a cycle for TARGET (account name or resource id)")
    rotate.add_argument("target")
    rotate.add_argument("--reason", default="", help="recorded in history")
    rotate.add_argument("--requester", default="", help="who asks (default: $USER)")
    rotate.add_argument("--force", action="store_true", help="even if a cycle just completed or in backoff")
    rotate.add_argument(
        "--emergency", action="store_true", help="compromised key: use EMERGENCY_DRAIN_TIME (implies --force)"
    )
    status = commands.add_parser("status", help="state of every target, or of TARGET")
    status.add_argument("target", nargs="?")
    status.add_argument("--json", action="store_true")
    history = commands.add_parser("history", help="recent history of TARGET")
    history.add_argument("target")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(message)s",
    )
    if not args.verbose:
        logging.getLogger("azure").setLevel(logging.WARNING)
    out = Console()
    err = Console(stderr=True)
    try:
        if args.env_file is not None:
            for key, value in read_env_file(args.env_file).items():
                os.environ[key] = value
        service = _service()
        if args.command == "sweep":
            return _sweep(service, out)
        if args.command == "rotate":
            return _rotate(service, args, out)
        if args.command == "status":
            return _status(service, args, out)
        return _history(service, args, out)
    except (SettingsError, UnknownTarget) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return EXIT_USAGE
    except RotationError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", markup=True, highlight=False)
        return EXIT_FAILED


def _service() -> RotationService:
    # The CLI is a composition root like function_app.py: it alone reaches into shared/.
    from shared.bootstrap import build_service
    from shared.settings import load_settings

    return build_service(load_settings(os.environ))


def _sweep(service: RotationService, out: Console) -> int:
    if out.is_terminal:
        columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=out, transient=True) as progress:
            task = progress.add_task("sweep", total=None)

            def advanced(result: TargetResult) -> None:
                progress.advance(task)

            summary = service.sweep(trigger="cli", progress=advanced)
        table = Table("target", "outcome", "steps", "phase", "next due", "error", title="sweep")
        for result in summary.results:
            table.add_row(
                result.target.rsplit("/", 1)[-1],
                result.outcome,
                " ".join(result.steps),
                result.phase or "",
                _when(result.next_due),
                result.error or "",
            )
        out.print(table)
        out.print(
            f"seen {summary.seen}, advanced {summary.advanced}, failed {summary.failed}, "
            f"busy {summary.busy}, next due {_when(summary.next_due)}, {summary.duration_ms} ms"
        )
    else:
        summary = service.sweep(trigger="cli")
        payload = to_json(summary) | {"results": to_json(summary.results)}
        out.print_json(json.dumps(payload))
    return EXIT_FAILED if summary.failed else EXIT_OK


def _rotate(service: RotationService, args: argparse.Namespace, out: Console) -> int:
    requester = args.requester or os.environ.get("USER", "cli")
    outcome = service.request_rotation(
        args.target,
        trigger="cli",
        requester=requester,
        reason=args.reason,
        force=args.force,
        emergency=args.emergency,
    )
    if out.is_terminal:
        colour = "green" if outcome.accepted else "yellow"
        out.print(f"[{colour}]{outcome.status.value}[/{colour}]: {outcome.message}", highlight=False)
        if outcome.state is not None:
            _print_statuses([outcome.state], out)
    else:
        out.print_json(json.dumps(to_json(outcome)))
    return EXIT_FAILED if outcome.status is RequestStatus.REFUSED else EXIT_OK


def _status(service: RotationService, args: argparse.Namespace, out: Console) -> int:
    statuses = service.status(args.target)
    if args.json or not out.is_terminal:
        out.print_json(json.dumps(to_json(statuses)))
    else:
        _print_statuses(statuses, out)
    return EXIT_OK


def _history(service: RotationService, args: argparse.Namespace, out: Console) -> int:
    records = service.history(args.target, args.limit)
    if args.json or not out.is_terminal:
        out.print_json(json.dumps(to_json(records)))
        return EXIT_OK
    table = Table("at", "step", "outcome", "slot", "trigger", "requester", "reason", "error")
    for r in records:
        table.add_row(
            r.at.strftime("%Y-%m-%d %H:%M:%S"),
            r.step,
            r.outcome,
            r.slot or "",
            r.trigger,
            r.requester,
            r.reason,
            r.error or "",
        )
    out.print(table)
    return EXIT_OK


def _print_statuses(statuses: list[TargetStatus], out: Console) -> None:
    table = Table("account", "phase", "active", "due", "drain until", "attempts", "last error")
    for s in statuses:
        table.add_row(
            s.account_name,
            s.phase,
            s.active_slot or "",
            _when(s.due_at),
            _when(s.drain_until),
            str(s.attempts),
            s.last_error or "",
        )
    out.print(table)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""
