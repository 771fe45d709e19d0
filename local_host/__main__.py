"""``python -m local_host`` (``make local``): the emulator, Azurite and the Function App, in the foreground
until Ctrl-C, which stops all three.

It writes one git-ignored env file holding every setting the app and the CLI need (the emulator's, storage,
the targets of the seeded accounts, the function key) and prints ``ENV_FILE=…``, ``FUNCTIONS_URL=…``,
``FUNCTIONS_KEY=…``, then ``LOCAL_READY=1`` as its last line of setup. Exit status: 0 after Ctrl-C or
SIGTERM, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from emulator.client.azurite import AzuriteProcess
from emulator.client.launcher import DEMO_ACCOUNT_ID, EmulatorProcess
from local_host.bindings import FunctionSpec, index
from local_host.http_app import build_app, timed
from local_host.keys import HostKeys
from local_host.schedulers import Outputs, QueueTrigger, TimerTrigger

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENV_FILE = REPO / ".local" / "local.env"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
OPENAI_ACCOUNT_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.CognitiveServices/accounts/"
    "contoso-openai"
)
logger = logging.getLogger("local_host")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_host", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="HTTP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE, help="where to write the settings")
    parser.add_argument(
        "--accounts",
        type=int,
        default=0,
        metavar="N",
        help="seed N more accounts (local-0001…) as targets, e.g. 300 for a sweep at scale",
    )
    parser.add_argument(
        "--schedule",
        default="0 * * * * *",
        help="ROTATION_SCHEDULE, NCRONTAB (default: every minute; Azure's default is 15 min)",
    )
    parser.add_argument("--drain", default="PT2M", help="drainTime of the seeded targets (ISO 8601)")
    parser.add_argument(
        "--event-function",
        default="key_vault_events",
        help="function the emulator's Key Vault events are delivered to (as infra subscribes)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535 or not 0 <= args.accounts <= 5000:
        parser.error("--port must be 0-65535 and --accounts 0-5000")
    return args


def seed_ids(extra: int) -> list[str]:
    base = OPENAI_ACCOUNT_ID.rsplit("/", 1)[0]
    return [DEMO_ACCOUNT_ID, OPENAI_ACCOUNT_ID, *(f"{base}/local-{n:04d}" for n in range(1, extra + 1))]


def settings_for(
    emulator: EmulatorProcess, azurite: AzuriteProcess, args: argparse.Namespace, url: str, keys: HostKeys
) -> dict[str, str]:
    """Every app setting the engine reads (explicit, defaults included) plus what an operator needs."""
    from shared.settings import APP_SETTINGS

    targets = [{"resourceId": rid, "drainTime": args.drain} for rid in seed_ids(args.accounts)]
    values = {
        **emulator.app_env,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "ROTATION_TARGETS": json.dumps(targets),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_SCHEDULE": args.schedule,
        "ROTATION_EVENTS_TOPIC_ENDPOINT": emulator.env["EVENTGRID_TOPIC_ENDPOINT"],
    }
    for spec in APP_SETTINGS:
        if spec.name not in values and spec.default is not None:
            values[spec.name] = spec.default
    values.update(
        {"FUNCTIONS_URL": url, "FUNCTIONS_KEY": keys.function, "EVENTGRID_SYSTEM_KEY": keys.eventgrid}
    )
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by `make local` (python -m local_host); valid while it runs. Holds credentials of the\n"
        "# local emulator and the host's function key: git-ignored, mode 0600, rewritten on every start.\n"
    )
    if path.suffix == ".json":  # Core Tools' local.settings.json, for `func start` where it is installed
        text = json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n"
    else:
        text = header + "".join(f"{key}={value}\n" for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def load_app() -> Any:
    """function_app.py as the host loads it (a fresh module: ``get_functions()`` works once per app)."""
    spec = importlib.util.spec_from_file_location("function_app", REPO / "function_app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("function_app.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    return module.app


def call(spec: FunctionSpec, arguments: dict[str, Any]) -> Any:
    """What the worker does: call the user function with one argument per binding name."""
    return spec.call(**arguments)


def _stopping(signum: int, frame: object) -> None:
    """After uvicorn has stopped: nothing to do, the ExitStack stops everything else in order."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    for noisy in ("azure", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # IPPROTO_TCP named: asyncio turns Nagle off only then (emulator/vaults.py bind_loopback says why)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(128)  # events the emulator delivers before uvicorn serves wait in the backlog
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    keys = HostKeys()
    webhook = f"{url}/runtime/webhooks/eventgrid?functionName={args.event_function}&code={keys.eventgrid}"
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        azurite = stack.enter_context(AzuriteProcess())
        emulator = stack.enter_context(EmulatorProcess(accounts=[DEMO_ACCOUNT_ID], event_webhook=webhook))
        emulator.control.add_account(OPENAI_ACCOUNT_ID, kind="OpenAI")
        for resource_id in seed_ids(args.accounts)[2:]:
            emulator.control.add_account(resource_id)
        settings = settings_for(emulator, azurite, args, url, keys)
        write_env_file(args.env_file, settings)
        os.environ.update(settings)  # the app reads its settings from the environment, as in Azure
        specs = index(load_app())
        if args.event_function not in {s.name for s in specs if s.kind == "eventGridTrigger"}:
            print(
                f"error: --event-function {args.event_function} is not an Event Grid function",
                file=sys.stderr,
            )
            return 2
        host_json = json.loads((REPO / "host.json").read_text())
        extensions = host_json.get("extensions", {})
        outputs = Outputs(settings)
        invoke = timed(call)
        workers: list[threading.Thread] = []
        for spec in specs:
            if spec.kind == "timerTrigger":
                workers.append(TimerTrigger(spec, invoke, outputs, stop))
            elif spec.kind == "queueTrigger":
                workers.append(
                    QueueTrigger(spec, invoke, outputs, settings, extensions.get("queues", {}), stop)
                )
        route_prefix = str(extensions.get("http", {}).get("routePrefix", "api"))
        app = build_app(specs, keys, route_prefix, invoke)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        for worker in workers:
            worker.start()
        stack.callback(stop.set)
        http_names = ", ".join(
            f"{s.name} {'/'.join(s.trigger.get('methods') or [])} /{route_prefix}/{s.trigger.get('route')}"
            for s in specs
            if s.kind == "httpTrigger"
        )
        print(
            f"functions: {http_names}; timer {settings['ROTATION_SCHEDULE']!r}; queue "
            f"{settings['ROTATION_QUEUE']!r}; Event Grid {url}/runtime/webhooks/eventgrid",
            flush=True,
        )
        print(f"ENV_FILE={args.env_file}", flush=True)
        print(f"FUNCTIONS_URL={url}", flush=True)
        print(f"FUNCTIONS_KEY={keys.function}", flush=True)
        print("LOCAL_READY=1", flush=True)
        # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal to the handler installed before it:
        # with the default ones the process would die right there (SIGTERM) or unwind with a traceback
        # (SIGINT) instead of stopping the emulator and Azurite below.
        for handled in (signal.SIGINT, signal.SIGTERM):
            signal.signal(handled, _stopping)
        server.run(sockets=[listener])
        print("stopping: Function App, emulator, Azurite", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
