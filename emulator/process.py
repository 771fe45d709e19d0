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
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from emulator.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo"
    "/providers/Microsoft.CognitiveServices/accounts/ai-services"
)
IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")
# Keys issued by every emulator this process started and stopped (read by the leak scan in conftest).
ISSUED_KEYS: set[str] = set()
# Variables that would make azure-identity/MSAL pick another managed-identity flavour than App Service.
CONFLICTING_IDENTITY_VARIABLES = ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")


class EmulatorError(RuntimeError):
    pass


class ControlError(EmulatorError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class ControlClient:
    """The emulator's control API (``EMULATOR_CONTROL_URL``), one method per endpoint."""

    def __init__(self, control_url: str, ca_bundle: str) -> None:
        self.url = control_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=ca_bundle), timeout=30.0
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise ControlError(response.status_code, response.text)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def issued_keys(self) -> set[str]:
        """Every account key the emulator ever issued (for leak scans, I5)."""
        return set(self._call("GET", "/issued-keys")["keys"])

    def add_account(
        self,
        resource_id: str,
        kind: str = "AIServices",
        disable_local_auth: bool = False,
        *,
        location: str | None = None,
        custom_subdomain: bool | None = None,
        network_default_action: str | None = None,
    ) -> dict:
        """``custom_subdomain`` defaults to the kind's usual shape (TextTranslation: the global endpoint)."""
        body: dict[str, Any] = {"resourceId": resource_id, "kind": kind}
        body["disableLocalAuth"] = disable_local_auth
        optional = {
            "location": location,
            "customSubDomain": custom_subdomain,
            "networkDefaultAction": network_default_action,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return dict(self._call("POST", "/accounts", body))

    def accounts(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/accounts"))

    def account(self, account_name: str) -> dict[str, Any]:
        """The control view of one account (kind, location, endpoint, switches), never its keys."""
        for view in self.accounts():
            if view["name"].lower() == account_name.lower():
                return view
        raise ControlError(404, f"no account named {account_name!r}")

    def set_account(
        self,
        account_name: str,
        *,
        disable_local_auth: bool | None = None,
        custom_subdomain: bool | None = None,
        network_default_action: str | None = None,
    ) -> dict[str, Any]:
        """Flip an account's switches: disableLocalAuth, custom subdomain, networkAcls.defaultAction."""
        fields = {
            "disableLocalAuth": disable_local_auth,
            "customSubDomain": custom_subdomain,
            "networkDefaultAction": network_default_action,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        return dict(self._call("PATCH", f"/accounts/{account_name}", body))

    def set_disable_local_auth(self, account_name: str, disabled: bool) -> dict[str, Any]:
        return self.set_account(account_name, disable_local_auth=disabled)

    def set_latency(self, seconds: float, operation: str | None = None) -> None:
        body: dict[str, Any] = {"seconds": seconds}
        if operation is not None:
            body["operation"] = operation
        self._call("PUT", "/latency", body)

    def set_propagation(self, seconds: float) -> None:
        self._call("PUT", "/propagation", {"seconds": seconds})

    def set_throttling(self, **limits: float) -> dict[str, Any]:
        """ARM token buckets: readCapacity, readRefillPerSecond, writeCapacity, writeRefillPerSecond."""
        return dict(self._call("PUT", "/throttling", limits))

    def add_fault(
        self,
        operation: str,
        status: int | None = None,
        count: int = 1,
        retry_after: float | None = None,
        action: str = "status",
        timeout_seconds: float | None = None,
        when: str = "before",
        code: str | None = None,
        path_suffix: str | None = None,
    ) -> dict:
        body: dict[str, Any] = {"operation": operation, "count": count, "action": action, "when": when}
        if status is not None:
            body["status"] = status
        if retry_after is not None:
            body["retryAfter"] = retry_after
        if timeout_seconds is not None:
            body["timeoutSeconds"] = timeout_seconds
        if code is not None:
            body["code"] = code
        if path_suffix is not None:
            body["pathSuffix"] = path_suffix
        return dict(self._call("POST", "/faults", body))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"advanceSeconds": seconds}))

    def set_clock(self, epoch_seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/clock", {"now": epoch_seconds}))

    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/clock"))

    def calls(self) -> dict[str, int]:
        return dict(self._call("GET", "/calls")["counts"])

    def reset_calls(self) -> None:
        self._call("DELETE", "/calls")

    def kv_events(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/events"))

    def eventgrid_events(self, topic: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/eventgrid/events", params={"topic": topic} if topic else None))

    def reset(self) -> None:
        self._call("POST", "/reset")


_identity_env_lock = threading.RLock()


@contextmanager
def _identity_environment(endpoint: str, header: str) -> Iterator[None]:
    """azure-identity and MSAL read IDENTITY_ENDPOINT/IDENTITY_HEADER from os.environ (at construction and
    at each token request), so set them for exactly that moment; the lock keeps concurrent credentials
    of different emulators from seeing each other's values."""
    with _identity_env_lock:
        names = IDENTITY_VARIABLES + CONFLICTING_IDENTITY_VARIABLES
        saved = {name: os.environ.get(name) for name in names}
        try:
            for name in CONFLICTING_IDENTITY_VARIABLES:
                os.environ.pop(name, None)
            os.environ["IDENTITY_ENDPOINT"] = endpoint
            os.environ["IDENTITY_HEADER"] = header
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class EmulatorManagedIdentityCredential:
    """The real ``ManagedIdentityCredential`` (App Service protocol) pointed at one emulator.

    Implements the azure-core TokenCredential/SupportsTokenInfo protocols by delegation.
    """

    def __init__(self, identity_endpoint: str, identity_header: str, ca_bundle: str, **kwargs: Any) -> None:
        from azure.identity import ManagedIdentityCredential

        self._endpoint = identity_endpoint
        self._header = identity_header
        with _identity_environment(identity_endpoint, identity_header):
            self._inner = ManagedIdentityCredential(connection_verify=ca_bundle, **kwargs)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        with _identity_environment(self._endpoint, self._header):
            return self._inner.get_token(*scopes, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        with _identity_environment(self._endpoint, self._header):
            return self._inner.get_token_info(*scopes, options=options)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> EmulatorManagedIdentityCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

        Before stopping, the keys it issued join ``ISSUED_KEYS`` so the session-wide leak scan sees them.
        """
        if self.running and "EMULATOR_CONTROL_URL" in self.env:
            try:
                ISSUED_KEYS.update(self.control.issued_keys())
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

    def secret_client(self, credential: Any = None, **kwargs: Any) -> Any:
        from azure.keyvault.secrets import SecretClient

        return SecretClient(
            self.vault_url,
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
