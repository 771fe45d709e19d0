"""Start the local Azure emulator for tests, the demo and benchmarks, and build real SDK clients for it.

No pytest in here: ``with EmulatorProcess() as emu:`` works from any script.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from emulator.client.child_process import stop_process
from emulator.client.control_client import ControlClient, ControlError, EmulatorError
from emulator.client.credential import EmulatorManagedIdentityCredential

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo"
    "/providers/Microsoft.CognitiveServices/accounts/ai-services"
)
# Keys issued by every emulator this process started and stopped (read by the leak scan in tests/conftest.py).
KEYS_FROM_STOPPED_EMULATORS: set[str] = set()


class EmulatorProcess:
    """``python -m emulator --port 0`` as a child process; a context manager.

    ``env`` holds the printed KEY=VALUE lines; ``control`` drives the control API.
    """

    def __init__(
        self,
        accounts: Iterable[str] = (),
        kind: str = "AIServices",
        latency: float | None = None,
        event_webhook: str | None = None,
        extra_args: Iterable[str] = (),
        state_file: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        env_file: str | os.PathLike[str] | None = None,
        propagation: float | None = None,
        startup_timeout: float = 30.0,
        vaults: Iterable[str] = (),
    ) -> None:
        self.accounts = list(accounts)
        self.kind = kind
        self.latency = latency
        self.event_webhook = event_webhook
        self.extra_args = list(extra_args)
        self.state_file = state_file
        self.state_dir = state_dir
        self.env_file = env_file
        self.propagation = propagation
        self.startup_timeout = startup_timeout
        self.env: dict[str, str] = {}
        self.vault_names = list(vaults)
        self.vault_urls: dict[str, str] = {}  # the added vaults' URLs, by name (KEY_VAULT_URL: the default)
        self._process: subprocess.Popen[str] | None = None
        self._stdout: list[str] = []
        self._log: Any = None
        self._control: ControlClient | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "emulator", "--port", "0", "--kind", self.kind]
        for account in self.accounts:
            args += ["--account", account]
        if self.latency is not None:
            args += ["--latency", str(self.latency)]
        if self.propagation is not None:
            args += ["--propagation", str(self.propagation)]
        if self.event_webhook:
            args += ["--event-webhook", self.event_webhook]
        if self.state_file is not None:
            args += ["--state-file", str(self.state_file)]
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
        if self.env_file is not None:
            args += ["--env-file", str(self.env_file)]
        return args + self.extra_args

    def start(self) -> EmulatorProcess:
        if self._process is not None:
            raise EmulatorError("already started")
        self._log = tempfile.TemporaryFile(mode="w+", prefix="emulator-stderr-")
        self._process = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ready = threading.Event()
        threading.Thread(target=self._read_stdout, args=(ready,), daemon=True).start()
        if not ready.wait(self.startup_timeout) or "EMULATOR_READY" not in self.env:
            output = self.stderr_text()
            self.stop()
            raise EmulatorError(f"emulator did not become ready; stderr:\n{output[-4000:]}")
        for name in self.vault_names:
            self.vault_urls[name] = self.control.add_vault(name)
        return self

    def _read_stdout(self, ready: threading.Event) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self._stdout.append(line)
            key, sep, value = line.partition("=")
            if sep and not ready.is_set():
                self.env[key] = value
                if key == "EMULATOR_READY":
                    self.env.pop("EMULATOR_READY")
                    self.env["EMULATOR_READY"] = value
                    ready.set()
        ready.set()

    def stderr_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text: str = self._log.read()
        return text

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, wait, and return the exit code (SIGKILL only if it does not exit in 10 s).

        Before stopping, the keys it issued join ``KEYS_FROM_STOPPED_EMULATORS`` so the session-wide leak
        scan sees them.
        """
        if self.running and "EMULATOR_CONTROL_URL" in self.env:
            try:
                KEYS_FROM_STOPPED_EMULATORS.update(self.control.issued_keys())
            except (httpx.HTTPError, ControlError):
                pass  # a test that broke the emulator on purpose; its own assertions report that
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self._process = self._process, None
        if process is None:
            return None
        return stop_process(process, signal.SIGTERM, grace_seconds=10)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- settings -----------------------------------------------------------------------------------

    @property
    def app_env(self) -> dict[str, str]:
        """The env lines an application needs (without EMULATOR_READY)."""
        return {k: v for k, v in self.env.items() if k != "EMULATOR_READY"}

    @property
    def base_url(self) -> str:
        return self.env["ARM_ENDPOINT"]

    @property
    def ca_bundle(self) -> str:
        return self.env["REQUESTS_CA_BUNDLE"]

    @property
    def vault_url(self) -> str:
        return self.env["KEY_VAULT_URL"]

    def ssl_context(self) -> ssl.SSLContext:
        """For httpx and other clients that take an SSLContext (httpx deprecates verify=<path>)."""
        return ssl.create_default_context(cafile=self.ca_bundle)

    def http_client(self, **kwargs: Any) -> httpx.Client:
        """Plain HTTPS to the emulator (data planes, raw wire checks). TCP_NODELAY matters: httpx writes a
        POST's headers and body separately, and Nagle + delayed ACK would add ~40 ms to each request."""
        transport = httpx.HTTPTransport(
            verify=self.ssl_context(), socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.base_url, transport=transport, **kwargs)

    def dataplane_url(self, account_name: str) -> str:
        """The custom-subdomain endpoint of an account (``properties.endpoint`` when it has one)."""
        return f"{self.base_url}/accounts/{account_name}/"

    def endpoint_of(self, account_name: str) -> str:
        """``properties.endpoint`` of an account, whatever its shape (custom, regional, global)."""
        return str(self.control.account(account_name)["endpoint"])

    def apply_env(self, target: Any) -> None:
        """Put the settings where an app under test reads them: a pytest ``monkeypatch`` (undone after the
        test) or any mutable mapping such as ``os.environ`` or a subprocess env dict."""
        for key, value in self.app_env.items():
            if hasattr(target, "setenv"):
                target.setenv(key, value)
            else:
                mapping: MutableMapping[str, str] = target
                mapping[key] = value

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            self._control = ControlClient(self.env["EMULATOR_CONTROL_URL"], self.ca_bundle)
        return self._control

    # -- real SDK clients ---------------------------------------------------------------------------

    def credential(self, **kwargs: Any) -> EmulatorManagedIdentityCredential:
        return EmulatorManagedIdentityCredential(
            self.env["IDENTITY_ENDPOINT"], self.env["IDENTITY_HEADER"], self.ca_bundle, **kwargs
        )

    def secret_client(self, credential: Any = None, vault_url: str | None = None, **kwargs: Any) -> Any:
        from azure.keyvault.secrets import SecretClient

        return SecretClient(
            vault_url or self.vault_url,
            credential or self.credential(),
            verify_challenge_resource=False,
            connection_verify=self.ca_bundle,
            **kwargs,
        )

    def arm_client(
        self,
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        credential: Any = None,
        **kwargs: Any,
    ) -> Any:
        from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

        arm = self.env["ARM_ENDPOINT"]
        return CognitiveServicesManagementClient(
            credential or self.credential(),
            subscription_id,
            base_url=arm,
            credential_scopes=[arm + "/.default"],
            connection_verify=self.ca_bundle,
            **kwargs,
        )

    def eventgrid_client(self, credential: Any = None, **kwargs: Any) -> Any:
        """azure-eventgrid 4.22's basic-tier client drops constructor kwargs (no connection_verify, no
        transport), so pass ``connection_verify=emu.ca_bundle`` to each ``send`` or set REQUESTS_CA_BUNDLE."""
        from azure.eventgrid import EventGridPublisherClient

        return EventGridPublisherClient(
            self.env["EVENTGRID_TOPIC_ENDPOINT"], credential or self.credential(), **kwargs
        )

    def wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``predicate()`` until it returns something truthy (events arrive asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)
