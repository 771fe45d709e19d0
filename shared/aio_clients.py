"""The SDKs' ``.aio`` clients for the asynchronous I/O path (``ROTATION_ASYNC_IO``; ``shared/aio_loop.py``
says why), each wrapped in a ``BlockingClient`` so the adapters in ``shared/azure/`` take it in place of the
synchronous client.

All of them share one ``AioHttpTransport`` over one ``aiohttp.ClientSession`` per process (per connection
limit and proxy choice, in practice one): one connection pool, sized from SWEEP_CONCURRENCY, and TLS
contexts built once per CA bundle rather than per request. The environment is read as
``shared/http_settings.py`` decides for the synchronous sessions: proxies only when a proxy variable is set
(``trust_env``), the CA bundle looked up by name per request (``REQUESTS_CA_BUNDLE`` then
``CURL_CA_BUNDLE``, as requests does; otherwise the bundle requests ships with (certifi's)).
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from requests.certs import where as requests_ca_bundle

from shared.aio_loop import BlockingClient, IoLoop, process_loop
from shared.azure.data_plane_probe import MAX_BODY_BYTES, ProbeConnectionFailed, ProbeNoAnswer, ProbeSender
from shared.azure.lean_calls import (
    LeanArm,
    LeanQueue,
    LeanSecrets,
    LeanTable,
    queue_auth,
    storage_auth,
)
from shared.azure.token_cache import AsyncSingleFlightCredential, SingleFlightCredential
from shared.http_session import ca_bundle_from_environment


class TlsContexts:
    """One ``SSLContext`` per CA bundle path: azure-core's aiohttp transport would build one per request
    when given a path, which costs more than the request. Looked up by name per request, as requests does
    (two dictionary reads), so an operator's change of REQUESTS_CA_BUNDLE applies to the next request."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def for_environment(self) -> ssl.SSLContext:
        path = ca_bundle_from_environment() or requests_ca_bundle()
        context = self._contexts.get(path)
        if context is None:
            with self._lock:
                # a missing file raises FileNotFoundError here: shared/azure/errors.py names the setting
                context = self._contexts.setdefault(path, ssl.create_default_context(cafile=path))
        return context


class LeanAioTransport(AioHttpTransport):
    """azure-core's aiohttp transport with the TLS context taken from ``TlsContexts``."""

    def __init__(self, session: aiohttp.ClientSession, contexts: TlsContexts) -> None:
        super().__init__(session=session, session_owner=False, use_env_settings=session.trust_env)
        self.contexts = contexts

    def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
        if not cert and verify is True:
            return self.contexts.for_environment()
        return super()._build_ssl_config(cert, verify)


# Key Vault's secret reads and writes, ARM's key operations and Table's entity writes and reads on a plain
# azure-core pipeline instead of the SDKs' generated operations (shared/azure/lean_calls.py says why); off:
# the SDK clients as they are.
LEAN_CALLS = True

_TRANSPORTS: dict[tuple[IoLoop, int, bool], LeanAioTransport] = {}
_TRANSPORTS_LOCK = threading.Lock()


def process_transport(io: IoLoop, concurrency: int, trust_env: bool) -> LeanAioTransport:
    """The process's transport for this connection limit and proxy choice, its session closed with the
    loop. Every sweep thread has at most one request in flight, so ``concurrency`` connections per host
    (at least 10, azure-core's default) never make a thread wait for a connection."""
    key = (io, concurrency, trust_env)
    with _TRANSPORTS_LOCK:
        transport = _TRANSPORTS.get(key)
        if transport is None:

            async def open_session() -> aiohttp.ClientSession:
                # created on the loop: aiohttp binds a session to the loop it is made on
                return aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, limit_per_host=max(10, concurrency)),
                    trust_env=trust_env,
                )

            session = io.run(open_session, 30.0)

            async def close_session() -> None:
                with _TRANSPORTS_LOCK:
                    _TRANSPORTS.pop(key, None)
                await session.close()

            io.on_close(close_session)
            transport = _TRANSPORTS[key] = LeanAioTransport(session, TlsContexts())
        return transport


def async_credential(credential: Any) -> AsyncSingleFlightCredential:
    """The ``.aio`` face of the composition root's credential (one token per scope for both paths)."""
    single = isinstance(credential, SingleFlightCredential)
    tokens = credential if single else SingleFlightCredential(credential)
    return AsyncSingleFlightCredential(tokens)


class AsyncClients:
    """Builds the ``.aio`` clients, wrapped for the synchronous adapters. ``options`` are the composition
    root's ``CLIENT_OPTIONS`` (retries, timeouts): the same on both paths."""

    def __init__(
        self,
        credential: Any,
        concurrency: int,
        trust_env: bool,
        options: dict[str, Any],
        io: IoLoop | None = None,
    ) -> None:
        self.io = io or process_loop()
        self.credential = async_credential(credential)
        self.transport = process_transport(self.io, concurrency, trust_env)
        self.options = {**options, "transport": self.transport}
        # A call's own bound is azure-core's absolute ``timeout`` plus one attempt's read timeout (the retry
        # policy checks the absolute one between attempts); the loop is given a little more before the
        # waiting thread gives up on it.
        self.wait_seconds = float(options.get("timeout", 40)) + float(options.get("read_timeout", 30)) + 5

    def wrap(self, client: Any) -> Any:
        return BlockingClient(client, self.io, self.wait_seconds)

    def secret_client(self, vault_url: str, verify_challenge_resource: bool) -> Any:
        return self.wrap(self.aio_secret_client(vault_url, verify_challenge_resource))

    def aio_secret_client(self, vault_url: str, verify_challenge_resource: bool) -> Any:
        """The ``.aio`` ``SecretClient``, with the lean calls on it (unwrapped: awaited on the loop)."""
        from azure.keyvault.secrets.aio import SecretClient

        client = SecretClient(
            vault_url, self.credential, verify_challenge_resource=verify_challenge_resource, **self.options
        )
        return LeanSecrets(client, self.credential, self.options) if LEAN_CALLS else client

    def arm_client(self, subscription_id: str, arm_endpoint: str, arm_scope: str) -> Any:
        return self.wrap(self.aio_arm_client(subscription_id, arm_endpoint, arm_scope))

    def aio_arm_client(self, subscription_id: str, arm_endpoint: str, arm_scope: str) -> Any:
        """The ``.aio`` management client, with the lean calls on it (unwrapped: awaited on the loop)."""
        from azure.mgmt.cognitiveservices.aio import CognitiveServicesManagementClient

        client = CognitiveServicesManagementClient(
            self.credential,
            subscription_id,
            base_url=arm_endpoint,
            credential_scopes=[arm_scope],
            **self.options,
        )
        if LEAN_CALLS:
            return LeanArm(client, subscription_id, self.credential, arm_endpoint, arm_scope, self.options)
        return client

    def table_service(self, connection_string: str | None, endpoint: str | None, credential: Any) -> Any:
        """The raw ``.aio`` service client (``table`` wraps each table's client)."""
        from azure.data.tables.aio import TableServiceClient

        if connection_string:
            return TableServiceClient.from_connection_string(connection_string, **self.options)
        assert endpoint is not None  # load_settings guarantees one of the two
        own = credential is None
        return TableServiceClient(
            endpoint=endpoint,
            credential=self.credential if own else async_credential(credential),
            **self.options,
        )

    def table(self, service: Any, name: str) -> Any:
        return self.wrap(self.aio_table(service.get_table_client(name)))

    def aio_table(self, client: Any) -> Any:
        """A ``.aio`` ``TableClient`` with the lean calls on it when its credential allows (unwrapped)."""
        auth = storage_auth(client.credential) if LEAN_CALLS else None
        return client if auth is None else LeanTable(client, auth, self.options)

    def queue_client(
        self, connection_string: str | None, queue_url: str | None, queue_name: str, encoding: Any
    ) -> Any:
        from azure.storage.queue.aio import QueueClient

        if connection_string:
            client = QueueClient.from_connection_string(
                connection_string, queue_name, message_encode_policy=encoding, **self.options
            )
        else:
            client = QueueClient(
                queue_url or "", queue_name, self.credential, message_encode_policy=encoding, **self.options
            )
        return self.wrap(self.aio_queue(client, encoding))

    def aio_queue(self, client: Any, encoding: Any) -> Any:
        """A ``.aio`` ``QueueClient`` with the lean ``send_message`` on it when its credential allows
        (unwrapped); ``encoding`` is the one it was built with."""
        auth = queue_auth(client.credential) if LEAN_CALLS else None
        return client if auth is None else LeanQueue(client, auth, encoding, self.options)

    def event_grid(self, endpoint: str) -> Any:
        from azure.eventgrid.aio import EventGridPublisherClient

        return self.wrap(EventGridPublisherClient(endpoint, self.credential, **self.options))

    def probe_sender(self) -> ProbeSender:
        """The data-plane probe's request on the same session (``DataPlaneProbe(sender=...)``): redirects not
        followed, TLS verified with the same contexts, at most MAX_BODY_BYTES of a refusal's body read."""
        session, contexts = self.transport.session, self.transport.contexts
        assert session is not None  # process_transport opened it

        def send(
            method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: tuple[float, float]
        ) -> tuple[int, bytes, dict[str, str]]:
            async def request() -> tuple[int, bytes, dict[str, str]]:
                try:
                    async with session.request(
                        method,
                        url,
                        headers=headers,
                        data=body,
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(sock_connect=timeout[0], sock_read=timeout[1]),
                        ssl=contexts.for_environment(),
                        # as requests: no Content-Type unless the probe names one
                        skip_auto_headers=() if "Content-Type" in headers else ("Content-Type",),
                    ) as response:
                        read = b""
                        if not 200 <= response.status < 300:
                            while len(read) < MAX_BODY_BYTES:
                                chunk = await response.content.read(MAX_BODY_BYTES - len(read))
                                if not chunk:
                                    break
                                read += chunk
                        return response.status, read, dict(response.headers)
                except TimeoutError as error:  # aiohttp's ServerTimeoutError is one too
                    raise ProbeNoAnswer(type(error).__name__) from None
                except aiohttp.ClientConnectionError as error:  # refused, DNS, TLS, dropped: retried once
                    raise ProbeConnectionFailed(type(error).__name__) from None
                except aiohttp.ClientError as error:
                    raise ProbeNoAnswer(type(error).__name__) from None

            return self.io.run(request, timeout[0] + timeout[1] + 5)

        return send
