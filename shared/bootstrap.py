"""The composition root: every Azure client is built here, once per process, from one credential.

``ManagedIdentityCredential`` when IDENTITY_ENDPOINT is set (Azure Functions, the local emulator), with
AZURE_CLIENT_ID for a user-assigned identity; ``DefaultAzureCredential`` elsewhere (a developer's az login).
TLS verification is never disabled: the emulator's CA is trusted through REQUESTS_CA_BUNDLE; no request
re-reads the rest of the environment (proxies, ``.netrc``) unless a proxy is configured
(``shared/http_settings.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from urllib3.util.retry import Retry

from rotation.catalog import DiscoverySettings, TargetCatalog
from rotation.model import Policy
from rotation.pacing import Budget
from rotation.ports import (
    LifecycleSink,
    NoScheduler,
    NullLifecycleSink,
    Ports,
    SecretStore,
    WorkScheduler,
    utc_now,
)
from rotation.service import RotationService
from rotation.side_by_side import SideBySide, on_threads
from shared.azure.arm_rest import ArmRest
from shared.azure.budget_table import TableTokenBucket
from shared.azure.cognitive_services import CognitiveServicesKeys
from shared.azure.consumer_platforms import ArmConsumerPlatforms
from shared.azure.data_plane_probe import DataPlaneProbe
from shared.azure.key_vault import KeyVaultSecretStore
from shared.azure.queues import QueueWorkScheduler
from shared.azure.resource_manager import ArmAccountDirectory
from shared.azure.tables import TableHistoryStore, TableStateStore
from shared.azure.token_cache import SingleFlightCredential
from shared.http_session import LeanSession
from shared.http_settings import HttpEnvironment
from shared.settings import Settings

if TYPE_CHECKING:  # imported at run time only when ROTATION_ASYNC_IO is on (aiohttp is a cold-start cost)
    from shared.aio_clients import AsyncClients

# azure-core already retries 429/5xx/timeouts with backoff (honouring Retry-After); keep it short so one
# slow target cannot hold a sweep thread for minutes — later invocations retry with stored backoff.
# `timeout` bounds one call including its retries (azure-core RetryPolicy's absolute timeout): a call
# must never outlive the lease it runs under (Policy.lease_duration), or a slow regenerate could land
# after another invocation has taken over the target.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "connection_timeout": 10,
    "read_timeout": 30,
    "timeout": 40,
}


# azure-core logs every request and response at INFO; a Function's root logger is at INFO, so each SDK
# call would format and ship two records (~7 % more CPU per call, measured). Operators who want them set
# this logger's level themselves (then it is left alone): docs/ENGINE.md "Cost per cycle".
HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def quiet_sdk_http_logging() -> None:
    http_logger = logging.getLogger(HTTP_LOGGER)
    if http_logger.level == logging.NOTSET:
        http_logger.setLevel(logging.WARNING)


def http_session(pool_size: int, http: HttpEnvironment) -> requests.Session:
    """A requests session that does not scan the environment for proxies and ``.netrc`` on every request
    (unless a proxy is configured; shared/http_settings.py)."""
    session = LeanSession(http)
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=max(10, pool_size),
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def sized_transport(pool_size: int, http: HttpEnvironment | None = None) -> RequestsTransport:
    """An azure-core transport whose connection pool holds ``pool_size`` connections per host.

    requests' default pool keeps 10: a sweep running more threads than that against one host opens extra
    connections and throws them away ("Connection pool is full, discarding connection"), which costs a TLS
    handshake each time and floods the log. urllib3's own retries stay off, as azure-core sets them."""
    return RequestsTransport(session=http_session(pool_size, http or HttpEnvironment()), session_owner=False)


def build_credential(settings: Settings) -> TokenCredential:
    """One token request per scope however many threads start at once (SingleFlightCredential)."""
    if settings.use_managed_identity:
        return SingleFlightCredential(ManagedIdentityCredential(client_id=settings.azure_client_id))
    return SingleFlightCredential(DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id))


def storage_identity(settings: Settings) -> TokenCredential | None:
    """Storage's own identity when AzureWebJobsStorage__clientId names another one than AZURE_CLIENT_ID."""
    if settings.storage_client_id and settings.storage_client_id != settings.azure_client_id:
        return SingleFlightCredential(ManagedIdentityCredential(client_id=settings.storage_client_id))
    return None


def build_table_service(settings: Settings, credential: TokenCredential) -> TableServiceClient:
    options = {**CLIENT_OPTIONS, "transport": sized_transport(settings.sweep_concurrency, settings.http)}
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    assert settings.table_service_uri is not None  # load_settings guarantees one of the two
    storage_credential = storage_identity(settings) or credential
    return TableServiceClient(endpoint=settings.table_service_uri, credential=storage_credential, **options)


def build_tables(
    settings: Settings, credential: TokenCredential, aio: AsyncClients | None
) -> Callable[[str], TableClient]:
    """table name -> its client, on the path ROTATION_ASYNC_IO chose."""
    if aio is None:
        return build_table_service(settings, credential).get_table_client
    service = aio.table_service(
        settings.storage_connection_string, settings.table_service_uri, storage_identity(settings)
    )
    return lambda name: aio.table(service, name)


# A vault other than KEY_VAULT_URL is named per target: errors say where to change it.
VAULT_ORIGIN = "the target's vault: its account's key-rotation-vault tag, or `vault` in ROTATION_TARGETS"


class VaultStores:
    """One SecretClient per vault a target names (``vault`` / tag ``key-rotation-vault``), built on first
    use and kept for the life of the process."""

    def __init__(
        self, settings: Settings, credential: TokenCredential, aio: AsyncClients | None = None
    ) -> None:
        self.settings = settings
        self.credential = credential
        self.aio = aio
        self._stores: dict[str, SecretStore] = {}
        self._lock = threading.Lock()

    def __call__(self, vault_url: str) -> SecretStore:
        key = vault_url.rstrip("/").lower()
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = self.new_store(vault_url, VAULT_ORIGIN)
            return store

    def new_store(self, vault_url: str, origin: str = "") -> KeyVaultSecretStore:
        if self.aio is None:
            return KeyVaultSecretStore(self.build_client(vault_url), origin)
        client = self.aio.secret_client(vault_url, self.settings.verify_challenge_resource)
        return KeyVaultSecretStore(client, origin, recovery=self.build_client(vault_url))

    def build_client(self, vault_url: str) -> SecretClient:
        return SecretClient(
            vault_url,
            self.credential,
            verify_challenge_resource=self.settings.verify_challenge_resource,
            transport=sized_transport(self.settings.sweep_concurrency, self.settings.http),
            **CLIENT_OPTIONS,
        )


def build_scheduler(
    settings: Settings, credential: TokenCredential, aio: AsyncClients | None = None
) -> WorkScheduler:
    """Deferred work goes back on the fan-out queue with a visibility delay (QueueWorkScheduler)."""
    encoding = TextBase64EncodePolicy()
    if aio is not None and (settings.storage_connection_string or settings.queue_service_uri):
        return QueueWorkScheduler(
            aio.queue_client(
                settings.storage_connection_string, settings.queue_service_uri, settings.queue_name, encoding
            )
        )
    if settings.storage_connection_string:
        client = QueueClient.from_connection_string(
            settings.storage_connection_string,
            settings.queue_name,
            message_encode_policy=encoding,
            transport=sized_transport(settings.sweep_concurrency, settings.http),
            **CLIENT_OPTIONS,
        )
        return QueueWorkScheduler(client)
    if settings.queue_service_uri:
        client = QueueClient(
            settings.queue_service_uri,
            settings.queue_name,
            credential,
            message_encode_policy=encoding,
            transport=sized_transport(settings.sweep_concurrency, settings.http),
            **CLIENT_OPTIONS,
        )
        return QueueWorkScheduler(client)
    return NoScheduler()


def build_async_clients(settings: Settings, credential: TokenCredential) -> AsyncClients | None:
    """The ``.aio`` clients' factory when ROTATION_ASYNC_IO is on (aiohttp imported only then)."""
    if not settings.async_io:
        return None
    from shared.aio_clients import AsyncClients

    proxies = settings.http.use_proxy_settings
    return AsyncClients(credential, settings.sweep_concurrency, proxies, CLIENT_OPTIONS)


def build_ports(settings: Settings, credential: TokenCredential) -> Ports:
    aio = build_async_clients(settings, credential)
    table = build_tables(settings, credential, aio)
    budgets = table(settings.budget_table)
    # ARM counts writes per subscription *and principal*: every instance shares the identity, so they
    # share the bucket (its row key names the identity).
    arm, vault = write_budget_pacing(settings)
    identity = settings.azure_client_id or "system"
    limiter = TableTokenBucket(budgets, f"arm|{identity}", arm.per_second, arm.burst)
    vault_limiter = TableTokenBucket(budgets, "kv", vault.per_second, vault.burst)
    vaults = VaultStores(settings, credential, aio)
    lifecycle: LifecycleSink = NullLifecycleSink()
    if settings.events_topic_endpoint:
        # imported only when a topic is configured: azure.eventgrid is a cold-start cost otherwise
        from azure.eventgrid import EventGridPublisherClient

        from shared.azure.event_grid import EventGridLifecyclePublisher

        lifecycle = EventGridLifecyclePublisher(
            aio.event_grid(settings.events_topic_endpoint)
            if aio is not None
            else EventGridPublisherClient(
                settings.events_topic_endpoint,
                credential,
                transport=sized_transport(settings.sweep_concurrency, settings.http),
                **CLIENT_OPTIONS,
            )
        )
    keys = CognitiveServicesKeys(
        credential,
        settings.arm_endpoint,
        settings.arm_scope,
        limiter,
        # one transport for every subscription's client: one pool per ARM host, sized to the sweep
        {**CLIENT_OPTIONS, "transport": sized_transport(settings.sweep_concurrency, settings.http)},
        None if aio is None else lambda sub: aio.arm_client(sub, settings.arm_endpoint, settings.arm_scope),
    )
    return Ports(
        secrets=vaults.new_store(settings.key_vault_url),
        keys=keys,
        # one pool per account host: each probe of a new account opens its connection (as in Azure)
        probe=DataPlaneProbe(
            http_session(settings.sweep_concurrency, settings.http),
            sender=aio.probe_sender() if aio is not None else None,
        ),
        states=TableStateStore(table(settings.state_table)),
        history=TableHistoryStore(table(settings.history_table)),
        lifecycle=lifecycle,
        limiter=limiter,
        vault_limiter=vault_limiter,
        vaults=vaults,
        directory=(
            ArmAccountDirectory(
                credential,
                keys,
                settings.discovery_scopes,
                {**CLIENT_OPTIONS, "transport": sized_transport(settings.sweep_concurrency, settings.http)},
            )
            if settings.discovery
            else None
        ),
        scheduler=build_scheduler(settings, credential, aio),
        default_vault_url=settings.key_vault_url,
        consumers=ArmConsumerPlatforms(
            ArmRest(credential, settings.arm_endpoint, settings.arm_scope, dict(CLIENT_OPTIONS))
        ),
    )


def build_policy(settings: Settings) -> Policy:
    return Policy(verify_timeout=settings.verify_timeout, emergency_drain_time=settings.emergency_drain_time)


def build_service(
    settings: Settings,
    *,
    credential: TokenCredential | None = None,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
) -> RotationService:
    """The service the triggers and the CLI use. ``credential``/``clock``/``policy`` are for tests."""
    quiet_sdk_http_logging()
    credential = credential or build_credential(settings)
    ports = build_ports(settings, credential)
    discovery = DiscoverySettings(settings.discovery_tag, settings.vault_suffix, settings.key_vault_url)
    catalog = TargetCatalog(
        settings.targets, ports.directory, discovery if settings.discovery else None, clock=clock
    )
    return RotationService(
        settings.targets,
        ports,
        policy or build_policy(settings),
        clock=clock,
        concurrency=settings.sweep_concurrency,
        vault_url=settings.key_vault_url,
        catalog=catalog,
        pacing=write_budget_pacing(settings),
        side_by_side=side_by_side(settings),
    )


def side_by_side(settings: Settings) -> SideBySide:
    """How a sweep's targets run side by side: as greenlets on the I/O loop the ``.aio`` clients use (the
    process's, ``build_async_clients``) when ROTATION_ASYNC_IO is on, a thread each otherwise."""
    if not settings.async_io:
        return on_threads
    from shared.aio_loop import process_loop

    return process_loop().run_each


def write_budget_pacing(settings: Settings) -> tuple[Budget, Budget]:
    """The write budgets' rates and bursts (ARM per subscription and identity, Key Vault per vault): what
    ``build_ports`` gives the shared buckets and what ``rotation.pacing`` paces a wave by."""
    # Key Vault's limit is a window (300 secret writes in any 10 s); a bucket of rate r and burst r*1 s
    # lets at most 11*r tokens be taken in 10 s, and writes that follow their tokens by up to D s add r*D:
    # r = writes/10 with the setting at most 250 keeps the window under 300 for D <= 1 s.
    per_second = settings.vault_secret_writes_per_10s / 10
    return (
        Budget(settings.arm_writes_per_second, settings.arm_write_burst),
        Budget(per_second, max(1.0, per_second)),
    )
