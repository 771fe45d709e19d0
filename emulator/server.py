"""Assemble the ASGI app and run it with uvicorn, as a process (``python -m emulator``) or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Router

from emulator.arm import ArmCognitiveServices
from emulator.certs import CertificateFiles, ensure_certificates
from emulator.consumer_routes import ArmConsumers, ConsumerControl
from emulator.control_api import ControlApi
from emulator.core import Emulator, EmulatorConfig, EventCallback
from emulator.dataplane import DataPlane
from emulator.eventgrid import EventGridTopic
from emulator.events import KeyVaultEvents
from emulator.hosts import ACCOUNT_HOST_SUFFIX, AccountHostMiddleware
from emulator.identity import ManagedIdentity
from emulator.keyvault import KeyVaultSecrets
from emulator.knobs import Knobs
from emulator.operations import ConnectionAbortMiddleware
from emulator.state import DEMO_ACCOUNT_ID, EmulatorState, StateFile
from emulator.vaults import VaultServers, bind_loopback, server_config


@dataclass
class EmulatorOptions:
    port: int = 0
    accounts: list[str] = field(default_factory=list)
    kind: str = "AIServices"
    location: str = "eastus"
    state_dir: Path | None = None
    state_file: Path | None = None
    event_webhook: str | None = None
    latency: float = 0.0
    propagation: float = 0.0
    vault_name: str = "kv-emulator"
    seed_demo_account: bool = True
    account_hosts: bool = False  # --account-hosts: one data-plane host name per account (emulator/hosts.py)


def build_app(emulator: Emulator) -> Any:
    events = KeyVaultEvents(emulator)
    emulator.evaluate_events = events.evaluate
    emulator.secret_changed = events.watch
    control = ControlApi(emulator)
    vaults = VaultServers(emulator)
    control.reset_hooks.append(vaults.stop_all)
    routes = [
        *control.routes(),
        *ConsumerControl(emulator).routes(),
        *ArmConsumers(emulator).routes(),  # before Cognitive Services: it answers every other ARM path
        *vaults.routes(),
        *ManagedIdentity(emulator).routes(),
        *KeyVaultSecrets(emulator).routes(),
        *ArmCognitiveServices(emulator).routes(),
        *DataPlane(emulator).routes(),
        *EventGridTopic(emulator).routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(events.tick_forever())]
        if emulator.config.event_webhook:
            events.outbox = asyncio.Queue()
            tasks.append(asyncio.create_task(events.deliver_forever()))
        events.evaluate()
        await vaults.start_all()
        try:
            yield
        finally:
            await vaults.stop_all()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = Starlette(routes=routes, lifespan=lifespan)
    # Key Vault distinguishes /secrets/{name} from /secrets/{name}/; never redirect between them.
    assert isinstance(app.router, Router)
    app.router.redirect_slashes = False
    app.state.control = control
    return ConnectionAbortMiddleware(AccountHostMiddleware(app))


@dataclass
class Prepared:
    emulator: Emulator
    app: Any
    certificates: CertificateFiles
    sock: socket.socket


def prepare(options: EmulatorOptions, on_event: EventCallback | None = None) -> Prepared:
    """Bind the port, create certificates and state, seed accounts; nothing is served yet."""
    state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="azure-emulator-"))
    certificates = ensure_certificates(state_dir)
    sock = bind_loopback(options.port)
    port = sock.getsockname()[1]
    config = EmulatorConfig(
        port=port,
        vault_name=options.vault_name,
        event_webhook=options.event_webhook,
        state_file=options.state_file,
        ca_bundle=certificates.ca_bundle,
        account_host_suffix=ACCOUNT_HOST_SUFFIX if options.account_hosts else None,
        server_cert=certificates.server_cert,
        server_key=certificates.server_key,
    )
    loaded = StateFile(options.state_file).load() if options.state_file else None
    state = loaded or EmulatorState()
    if loaded is None:
        state.propagation_seconds = options.propagation
    emulator = Emulator(config, state, Knobs(options.latency), on_event)
    app = build_app(emulator)
    control: ControlApi = app.app.app.state.control
    seeds = options.accounts or (
        [DEMO_ACCOUNT_ID] if options.seed_demo_account and not state.accounts else []
    )
    for resource_id in seeds:
        existing = state.accounts.get(resource_id.lower())
        if existing is None:
            control.add_account_from(resource_id, options.kind, False, options.location)
    emulator.persist()
    return Prepared(emulator, app, certificates, sock)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop on SIGTERM/SIGINT and exit 0: uvicorn's own handler re-raises the signal afterwards, which
        would end the process with -15 instead of a clean exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def make_server(prepared: Prepared) -> uvicorn.Server:
    return _Server(server_config(prepared.app, prepared.emulator, "on"))


class RunningEmulator:
    """An emulator served by a background thread of this process (tests, demos needing callbacks)."""

    def __init__(self, prepared: Prepared, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.emulator = prepared.emulator
        self.env: dict[str, str] = prepared.emulator.env_lines()
        self._server = server
        self._thread = thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    accounts: Iterable[str] = (), *, on_event: EventCallback | None = None, **options: Any
) -> RunningEmulator:
    """Start the emulator in a daemon thread and return once it accepts connections.

    ``on_event`` receives each Key Vault event (an Event Grid schema dict) on the emulator's thread.
    """
    prepared = prepare(EmulatorOptions(accounts=list(accounts), **options), on_event)
    server = make_server(prepared)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [prepared.sock]}, name="azure-emulator", daemon=True
    )
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the emulator thread stopped during startup")
        threading.Event().wait(0.02)
    return RunningEmulator(prepared, server, thread)


def serve(prepared: Prepared, announce: Callable[[], None]) -> None:
    """Serve in the foreground until SIGTERM/SIGINT; ``announce`` runs once the port accepts requests."""
    server = make_server(prepared)

    def announce_when_started() -> None:
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.01)
        announce()

    threading.Thread(target=announce_when_started, name="announce", daemon=True).start()
    server.run(sockets=[prepared.sock])
