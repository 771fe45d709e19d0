"""Live consumers: threads calling an account's data plane through the consumer library, each with its own
``RotatingKey`` (like separate application processes), recording the outcome of every request.

A request *failed* when the application saw an error (a non-2xx answer, an exception) **or** when the key
it sent was rejected on the wire even once (a 401 the library then recovered from). Zero downtime means
zero of both; the second is what a cache that outlives the drain produces first.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyrotation_consumer import RotatingKey

# "p-active-only": a plain application that reads the P-active secret (what App Service Key Vault
# references read) every TTL and sends it, with no 401 fallback — the library's fallback would hide a
# P-active that held a revoked key.
# "app-service-reference": an App Service app that reads its key only from its app setting, a Key Vault
# reference the platform resolves (the emulated site's environment), and sends it with no 401 fallback.
SITE_KIND = "app-service-reference"
KINDS = ("requests", "httpx", "azure-key-credential", "p-active-only", SITE_KIND)
MODELS_PATH = "openai/models?api-version=2024-10-21"


@dataclass(frozen=True)
class ConsumerGroup:
    account: str  # account name (data-plane endpoint) and Key Vault prefix
    prefix: str
    kind: str  # one of KINDS
    threads: int
    ttl: float
    max_stale: float
    label: str = "live"  # "live" consumers count towards zero downtime; "control" is the negative control


@dataclass(frozen=True)
class Outcome:
    at: float  # time.time() when the request finished
    account: str
    kind: str
    label: str
    status: int  # final HTTP status, 0 for an exception
    rejected_on_wire: int  # 401s seen before the final answer

    @property
    def failed(self) -> bool:
        return not 200 <= self.status < 300 or self.rejected_on_wire > 0


@dataclass
class ConsumerFleet:
    groups: list[ConsumerGroup]
    secret_client: Any  # azure.keyvault.secrets.SecretClient (thread-safe, shared)
    endpoint_of: Callable[[str], str]  # account name -> data-plane endpoint URL (ends with /)
    ca_bundle: str
    remember_key: Callable[[str], None]
    pace: float = 0.05  # pause between two requests of one consumer
    site_setting: Callable[[], str] | None = None  # the App Service app's resolved setting (SITE_KIND)
    outcomes: list[Outcome] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> None:
        for group in self.groups:
            for index in range(group.threads):
                thread = threading.Thread(
                    target=self._run, args=(group,), name=f"consumer-{group.account}-{group.kind}-{index}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise RuntimeError(f"consumer threads did not stop: {stuck}")

    def _run(self, group: ConsumerGroup) -> None:
        if group.kind == "p-active-only":
            self._loop(group, *self._p_active_sender(group))
            return
        if group.kind == SITE_KIND:
            self._loop(group, *self._site_sender(group))
            return
        key = RotatingKey.from_secret_client(
            self.secret_client, group.prefix, ttl=group.ttl, max_stale=group.max_stale,
            retry_interval=min(0.2, group.ttl),
        )
        key.subscribe(lambda active: self.remember_key(active.value))
        self._loop(group, *self._sender(group, key))

    def _loop(
        self, group: ConsumerGroup, send: Callable[[], tuple[int, int]], close: Callable[[], None]
    ) -> None:
        try:
            while not self._stop.is_set():
                try:
                    status, rejected = send()
                except Exception as error:  # the application would have seen this exception
                    status, rejected = 0, 0
                    with self._lock:
                        self.errors[type(error).__name__] += 1
                outcome = Outcome(time.time(), group.account, group.kind, group.label, status, rejected)
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(self.pace)
        finally:
            close()

    def _sender(self, group: ConsumerGroup, key: RotatingKey) -> tuple[Callable[[], tuple[int, int]],
                                                                         Callable[[], None]]:
        url = self.endpoint_of(group.account) + MODELS_PATH
        if group.kind == "requests":
            import requests

            session = requests.Session()
            session.auth = key.requests_auth()
            session.verify = self.ca_bundle

            def send_requests() -> tuple[int, int]:
                response = session.get(url, timeout=10)
                return response.status_code, sum(r.status_code == 401 for r in response.history)

            return send_requests, session.close
        if group.kind == "httpx":
            import httpx

            context = ssl.create_default_context(cafile=self.ca_bundle)
            client = httpx.Client(auth=key.httpx_auth(), verify=context, timeout=10)

            def send_httpx() -> tuple[int, int]:
                response = client.get(url)
                return response.status_code, sum(r.status_code == 401 for r in response.history)

            return send_httpx, client.close
        if group.kind == "azure-key-credential":
            from azure.core import PipelineClient
            from azure.core.pipeline.policies import AzureKeyCredentialPolicy
            from azure.core.pipeline.transport import RequestsTransport
            from azure.core.rest import HttpRequest

            # The pipeline key-based Azure SDK clients build; the credential reads the cache per request.
            pipeline: PipelineClient[HttpRequest, Any] = PipelineClient(
                self.endpoint_of(group.account),
                policies=[AzureKeyCredentialPolicy(key.azure_key_credential(), "api-key")],
                transport=RequestsTransport(connection_verify=self.ca_bundle),
            )

            def send_azure() -> tuple[int, int]:
                response = pipeline.send_request(HttpRequest("GET", url))
                # No 401 retry in this path: a rejected key is the final answer.
                return response.status_code, 0

            return send_azure, pipeline.close
        raise ValueError(f"unknown consumer kind {group.kind!r}; expected one of {KINDS}")

    def _p_active_sender(
        self, group: ConsumerGroup
    ) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
        name = f"{group.prefix}-active"
        return self._plain_sender(group, lambda: self.secret_client.get_secret(name).value)

    def _site_sender(self, group: ConsumerGroup) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
        """The app reads its environment (what App Service resolved) every TTL: it never touches Key Vault."""
        assert self.site_setting is not None, "an app-service-reference consumer needs the site's setting"
        return self._plain_sender(group, self.site_setting)

    def _plain_sender(
        self, group: ConsumerGroup, read_key: Callable[[], str]
    ) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
        """A plain application: reads its key every TTL and sends it, with no 401 fallback to hide a
        revoked key (a 401 is a failed request)."""
        import requests

        session = requests.Session()
        session.verify = self.ca_bundle
        url = self.endpoint_of(group.account) + MODELS_PATH
        cache: dict[str, Any] = {"value": None, "read_at": 0.0}

        def send_with_cached_key() -> tuple[int, int]:
            if cache["value"] is None or time.monotonic() - cache["read_at"] >= group.ttl:
                cache["value"] = read_key()
                cache["read_at"] = time.monotonic()
                self.remember_key(cache["value"])
            response = session.get(url, headers={"api-key": cache["value"]}, timeout=10)
            return response.status_code, int(response.status_code == 401)

        return send_with_cached_key, session.close

    # -- reading ------------------------------------------------------------------------------------

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def totals(self, label: str = "live") -> tuple[int, int]:
        """(requests, failed requests) for consumers with ``label``."""
        outcomes = [o for o in self.snapshot() if o.label == label]
        return len(outcomes), sum(o.failed for o in outcomes)
