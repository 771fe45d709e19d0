"""What ``-v`` shows: the engine's transitions, one readable line each (time with zone, account, step, slot,
outcome, duration, error) — not the SDKs' HTTP logging, which ``--http-logs`` turns on separately."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from rich.console import Console
from rich.markup import escape

TRANSITION = "rotation.transition "
OUTCOME_COLOURS = {"failed": "red", "succeeded": "green", "waiting": "yellow", "started": "cyan"}
# Loggers of the HTTP stacks under the SDKs: silent unless --http-logs.
HTTP_LOGGERS = ("azure", "urllib3", "msal", "httpx")


class ConsoleHandler(logging.Handler):
    """Prints records through the rich console, so they appear above a live progress bar, never inside it."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.render(record), highlight=False)
        except Exception:  # a log line must never break the command
            self.handleError(record)

    def render(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created).astimezone().strftime("%H:%M:%S %Z")
        message = record.getMessage()
        if message.startswith(TRANSITION):
            try:
                fields = json.loads(message[len(TRANSITION) :])
            except ValueError:
                fields = None
            if isinstance(fields, dict):
                return f"[dim]{at}[/dim] {transition_line(fields)}"
        level = "" if record.levelno < logging.WARNING else f"[yellow]{record.levelname}[/yellow] "
        return f"[dim]{at}[/dim] {level}{escape(record.name)}: {escape(message)}"


def transition_line(fields: dict[str, object]) -> str:
    target = str(fields.get("target") or "")
    outcome = str(fields.get("outcome") or "")
    colour = OUTCOME_COLOURS.get(outcome, "white")
    parts = [
        escape(target.rsplit("/", 1)[-1]),
        escape(str(fields.get("step") or "")),
        escape(str(fields.get("slot") or "")),
        f"[{colour}]{escape(outcome)}[/{colour}]",
    ]
    if fields.get("durationMs"):
        parts.append(f"{fields['durationMs']} ms")
    if fields.get("trigger"):
        parts.append(f"({escape(str(fields['trigger']))})")
    if fields.get("error"):
        parts.append(f"— {escape(str(fields['error']))}")
    return " ".join(p for p in parts if p)


def configure(err: Console, verbose: bool, http_logs: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = ConsoleHandler(err)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("rotation").setLevel(logging.INFO if verbose else logging.WARNING)
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if http_logs else logging.WARNING)
