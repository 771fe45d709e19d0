"""Operator CLI over the same service the functions use: ``python -m rotation``.

Presentation only (argparse, rich); it reaches the composition root (``shared.bootstrap``) to build the
service, which is why it lives outside the domain package.

Settings come from the environment (the same app settings as the function app); ``--env-file`` adds
KEY=VALUE lines (e.g. the file ``make local`` writes) or a ``local.settings.json``; the file wins over
variables already set (the operator named it explicitly — e.g. its REQUESTS_CA_BUNDLE must win).
Global options (``--env-file``, ``-v``, ``--http-logs``) are accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from operator_cli import logs, render
from operator_cli.sweep import EXIT_INTERRUPTED, run_sweep
from rotation.errors import RotationError, SettingsError, UnknownTarget
from rotation.outcomes import RequestStatus

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


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    """The options every subcommand also accepts. Inside a subcommand they default to "not given"
    (SUPPRESS), so a value given before the subcommand is not overwritten by the subparser's default."""
    options = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    options.add_argument("--env-file", type=Path, default=default(None),
                         help="KEY=VALUE file (e.g. the one `make local` writes) or local.settings.json")
    options.add_argument("-v", "--verbose", action="store_true", default=default(False),
                         help="show every transition (step, slot, outcome, error) as it happens, on stderr")
    options.add_argument("--http-logs", action="store_true", default=default(False),
                         help="also show the Azure SDKs' HTTP logging (noisy)")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rotation", description=__doc__.splitlines()[0],
                                     parents=[_global_options(True)])
    common = _global_options(False)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", parents=[common],
                                help="one timer tick: advance every target with something due")
    sweep.add_argument("--all", action="store_true", help="list every target, not only failures (big sweeps)")
    sweep.add_argument("--json", action="store_true", help="JSON (the default when stdout is not a terminal)")
    rotate = commands.add_parser("rotate", parents=[common],
                                 help="start a cycle for TARGET (account name or resource id)")
    rotate.add_argument("target")
    rotate.add_argument("--reason", default="", help="recorded in history")
    rotate.add_argument("--requester", default="", help="who asks (default: $USER)")
    rotate.add_argument("--force", action="store_true", help="even if a cycle just completed or in backoff")
    rotate.add_argument(
        "--emergency", action="store_true", help="compromised key: use EMERGENCY_DRAIN_TIME (implies --force)"
    )
    rotate.add_argument("--json", action="store_true")
    release = commands.add_parser("release", parents=[common],
                                  help="retire the old key of TARGET although a consumer was not seen on "
                                       "the new one (a drain held by consumers); needs --reason")
    release.add_argument("target")
    release.add_argument("--reason", required=True, help="why it is safe: recorded in history")
    release.add_argument("--requester", default="", help="who releases (default: $USER)")
    release.add_argument("--json", action="store_true")
    status = commands.add_parser("status", parents=[common],
                                 help="state of every target, or of TARGET (reads only, creates nothing)")
    status.add_argument("target", nargs="?")
    status.add_argument("--json", action="store_true")
    history = commands.add_parser("history", parents=[common], help="recent history of TARGET")
    history.add_argument("target")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")
    plan = commands.add_parser("plan", parents=[common],
                               help="what the next sweep would do for each target (changes nothing)")
    plan.add_argument("--json", action="store_true")
    report = commands.add_parser("report", parents=[common],
                                 help="key age per target: each slot's age, last rotation, next due, "
                                      "overdue, failures (changes nothing)")
    report.add_argument("--format", choices=("table", "json", "csv"), default=None,
                        help="default: table on a terminal, JSON otherwise")
    report.add_argument("--window-days", type=int, default=30, help="count failures over this many days")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = render.consoles()
    logs.configure(err, args.verbose, args.http_logs)
    try:
        if args.env_file is not None:
            for key, value in read_env_file(args.env_file).items():
                os.environ[key] = value
        if args.command == "report" and not 1 <= args.window_days <= 366:
            raise SettingsError("--window-days must be from 1 to 366")
        service = _service()
        as_json = bool(getattr(args, "json", False)) or not sys.stdout.isatty()
        if args.command == "sweep":
            return run_sweep(service, out, err, args.all, as_json)
        if args.command == "rotate":
            return _rotate(service, args, out, as_json)
        if args.command == "release":
            return _release(service, args, out, as_json)
        if args.command == "status":
            return _show(service.status(args.target), out, as_json, render.statuses)
        if args.command == "plan":
            return _show(service.plan(), out, as_json, render.plan)
        if args.command == "report":
            return _report(service, args, out)
        return _history(service, args, out, as_json)
    except (SettingsError, UnknownTarget) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return EXIT_USAGE
    except RotationError as exc:
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", markup=True, highlight=False)
        return EXIT_FAILED
    except KeyboardInterrupt:  # outside a sweep nothing is half done: reads, or one request's steps
        err.print("interrupted")
        return EXIT_INTERRUPTED


def _release(service: RotationService, args: argparse.Namespace, out: Console, as_json: bool) -> int:
    requester = args.requester or os.environ.get("USER", "cli")
    outcome = service.release_drain(args.target, requester=requester, reason=args.reason, trigger="cli")
    if as_json:
        render.print_json(outcome)
    else:
        colour = "green" if outcome.status is RequestStatus.RELEASED else "yellow"
        out.print(f"[{colour}]{outcome.status.value}[/{colour}]: {outcome.message}", highlight=False)
    return EXIT_OK if outcome.status is RequestStatus.RELEASED else EXIT_FAILED


def _service() -> RotationService:
    # The CLI is a composition root like function_app.py: it alone reaches into shared/.
    from shared.bootstrap import build_service
    from shared.settings import load_settings

    return build_service(load_settings(os.environ))


def _rotate(service: RotationService, args: argparse.Namespace, out: Console, as_json: bool) -> int:
    requester = args.requester or os.environ.get("USER", "cli")
    outcome = service.request_rotation(
        args.target,
        trigger="cli",
        requester=requester,
        reason=args.reason,
        force=args.force,
        emergency=args.emergency,
    )
    if as_json:
        render.print_json(outcome)
    else:
        colour = "green" if outcome.accepted else "yellow"
        out.print(f"[{colour}]{outcome.status.value}[/{colour}]: {outcome.message}", highlight=False)
        if outcome.state is not None:
            out.print(render.statuses([outcome.state]))
    return EXIT_FAILED if outcome.status is RequestStatus.REFUSED else EXIT_OK


def _show(items: Sequence[object], out: Console, as_json: bool, table: Callable[[Any], Table]) -> int:
    if as_json:
        render.print_json(items)
    else:
        out.print(table(items))
    return EXIT_OK


def _report(service: RotationService, args: argparse.Namespace, out: Console) -> int:
    report = service.key_age_report(timedelta(days=args.window_days))
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    if fmt == "json":
        render.print_json(report)
    elif fmt == "csv":
        sys.stdout.write(render.report_csv(report))
    else:
        out.print(render.report_table(report))
    return EXIT_OK


def _history(service: RotationService, args: argparse.Namespace, out: Console, as_json: bool) -> int:
    records = service.history(args.target, args.limit)
    if as_json:
        render.print_json(records)
        return EXIT_OK
    table = Table("at", "step", "outcome", "slot", "trigger", "requester", "reason", "error")
    for r in records:
        table.add_row(render.when(r.at), r.step, r.outcome, r.slot or "", r.trigger, r.requester, r.reason,
                      r.error or "")
    out.print(table)
    return EXIT_OK
