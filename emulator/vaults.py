"""Vaults besides the default one, added with ``POST /_emulator/vaults``.

Each Azure vault has its own host name (``https://{vault}.vault.azure.net``) and the Key Vault SDK keeps
only scheme, host and port of a secret id (a path prefix would not survive ``KeyVaultSecretIdentifier``),
so each added vault gets its own loopback port: its own URL, its own secrets, its own throttling windows
(Key Vault's service limits are per vault). The vault servers run on the main server's event loop, so the
state still has one writer and needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from emulator.core import Emulator
from emulator.errors import json_response
from emulator.keyvault import KeyVaultSecrets
from emulator.knobs import InvalidControl
from emulator.operations import ConnectionAbortMiddleware
from emulator.state import Vault


def bind_loopback(port: int) -> socket.socket:
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP,
    # and accepted connections take the listener's. With Nagle on, a response written in two parts (headers,
    # then body) waited for the client's delayed ACK: 40 ms per request on kernels that delay it on loopback.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app: Any, emulator: Emulator, lifespan: Literal["on", "off"]) -> uvicorn.Config:
    assert emulator.config.server_cert is not None and emulator.config.server_key is not None
    return uvicorn.Config(
        app,
        ssl_certfile=str(emulator.config.server_cert),
        ssl_keyfile=str(emulator.config.server_key),
        log_level="warning",
        access_log=False,  # request lines would carry nothing secret, but they are noise at 1000s/s
        proxy_headers=False,
        server_header=False,
        http="httptools",
        lifespan=lifespan,
        timeout_keep_alive=30,
        # Idle TLS keep-alive connections wait for a close_notify SDK clients never send: do not wait long.
        timeout_graceful_shutdown=1,
    )


class _VaultServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The main server owns the process's signals and stops the vault servers when it stops.
        yield


class VaultServers:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._running: dict[str, tuple[uvicorn.Server, asyncio.Task[None], str]] = {}

    async def start(self, name: str) -> str:
        """Serve the vault ``name`` (already in the state) on a free port; its URL."""
        sock = bind_loopback(0)
        url = f"https://{self.emulator.config.host}:{sock.getsockname()[1]}"
        app = Starlette(routes=KeyVaultSecrets(self.emulator, name, url).routes())
        assert isinstance(app.router, Router)
        app.router.redirect_slashes = False  # /secrets/{name} and /secrets/{name}/ differ in Key Vault
        server = _VaultServer(server_config(ConnectionAbortMiddleware(app), self.emulator, "off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                raise RuntimeError(f"the server of vault {name} stopped during startup")
            await asyncio.sleep(0.01)
        self._running[name.lower()] = (server, task, url)
        return url

    async def start_all(self) -> None:
        """At startup: serve the vaults a ``--state-file`` remembers (on new ports: URLs change)."""
        for vault in self.emulator.state.vaults.values():
            await self.start(vault.name)

    async def stop_all(self) -> None:
        running, self._running = list(self._running.values()), {}
        for server, _, _ in running:
            server.should_exit = True
        await asyncio.gather(*(task for _, task, _ in running), return_exceptions=True)

    # -- control API ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/_emulator/vaults", self.list_vaults, methods=["GET"]),
            Route("/_emulator/vaults", self.add_vault, methods=["POST"]),
            Route("/_emulator/vaults/{name}", self.patch_vault, methods=["PATCH"]),
        ]

    def _view(self, vault: Vault, url: str) -> dict[str, Any]:
        return {"name": vault.name, "url": f"{url}/", "identityDenied": vault.identity_denied}

    async def list_vaults(self, request: Request) -> Response:
        default = self.emulator.vault(None)
        views = [self._view(default, self.emulator.vault_url)]
        for key, vault in self.emulator.state.vaults.items():
            views.append(self._view(vault, self._running[key][2]))
        return json_response(views)

    async def add_vault(self, request: Request) -> Response:
        try:
            body = await request.json()
            vault = self._validated_new(body)
        except (ValueError, InvalidControl) as error:
            return _invalid(str(error))
        self.emulator.state.vaults[vault.name.lower()] = vault
        url = await self.start(vault.name)
        self.emulator.persist()
        return json_response(self._view(vault, url), 201)

    def _validated_new(self, body: Any) -> Vault:
        if not isinstance(body, dict) or set(body) - {"name", "identityDenied"}:
            raise InvalidControl('body must be {"name": vault name, "identityDenied"?: bool}')
        name = Vault.validated_name(body.get("name"))
        taken = {v.lower() for v in self.emulator.state.vaults} | {self.emulator.config.vault_name.lower()}
        if name.lower() in taken:
            raise InvalidControl(f"vault {name} already exists: vault names are unique")
        denied = body.get("identityDenied", False)
        if not isinstance(denied, bool):
            raise InvalidControl("identityDenied must be true or false")
        return Vault(name, identity_denied=denied)

    async def patch_vault(self, request: Request) -> Response:
        vault = self.emulator.state.vaults.get(request.path_params["name"].lower())
        if vault is None:
            return _invalid(f"no vault {request.path_params['name']} (POST /_emulator/vaults adds one)", 404)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or set(body) != {"identityDenied"}
            or not isinstance(body["identityDenied"], bool)
        ):
            return _invalid('body must be {"identityDenied": true|false}')
        vault.identity_denied = body["identityDenied"]
        self.emulator.persist()
        return json_response(self._view(vault, self._running[vault.name.lower()][2]))


def _invalid(message: str, status: int = 400) -> Response:
    code = "InvalidControlRequest" if status == 400 else "NotFound"
    return json_response({"error": {"code": code, "message": message}}, status)
