"""App settings: the one list of names (``APP_SETTINGS``) and ``load_settings``, which fails fast with a
message naming the bad setting (and the target entry)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlparse

from rotation.discovery import DiscoveryTag
from rotation.errors import SettingsError
from rotation.model import Target
from shared.http_settings import HttpEnvironment, read_http_environment
from shared.target_settings import parse_duration, parse_targets


@dataclass(frozen=True)
class SettingSpec:
    name: str
    required: bool
    default: str | None
    description: str


APP_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "ROTATION_TARGETS",
        False,
        None,
        "JSON list of targets: resourceId, secretPrefix, rotationPeriod, drainTime, verify, probe, vault, "
        "consumers (this or ROTATION_DISCOVERY=true)",
    ),
    SettingSpec(
        "ROTATION_DISCOVERY",
        False,
        "false",
        "true: also rotate every account carrying ROTATION_DISCOVERY_TAG (listed each sweep)",
    ),
    SettingSpec(
        "ROTATION_DISCOVERY_SCOPES",
        False,
        None,
        "comma-separated subscription ids to discover in; empty: every subscription the identity can see",
    ),
    SettingSpec(
        "ROTATION_DISCOVERY_TAG",
        False,
        "key-rotation=enabled",
        "name=value of the tag that opts an account in",
    ),
    SettingSpec("KEY_VAULT_URL", True, None, "vault URL, e.g. https://kv-rot.vault.azure.net/"),
    SettingSpec(
        "ARM_ENDPOINT",
        False,
        "https://management.azure.com",
        "Resource Manager base URL (sovereign clouds, emulator); token scope {ARM_ENDPOINT}/.default",
    ),
    SettingSpec(
        "AzureWebJobsStorage",
        False,
        None,
        "storage connection string (Azurite locally); this or AzureWebJobsStorage__tableServiceUri",
    ),
    SettingSpec(
        "AzureWebJobsStorage__tableServiceUri", False, None, "identity-based storage: table endpoint"
    ),
    SettingSpec(
        "AzureWebJobsStorage__queueServiceUri", False, None, "identity-based storage: queue endpoint"
    ),
    SettingSpec("AzureWebJobsStorage__credential", False, None, "managedidentity for identity-based storage"),
    SettingSpec(
        "AzureWebJobsStorage__clientId",
        False,
        None,
        "client id of the user-assigned identity used for storage",
    ),
    SettingSpec("AZURE_CLIENT_ID", False, None, "client id of the user-assigned managed identity"),
    SettingSpec("ROTATION_SCHEDULE", False, "0 */15 * * * *", "NCRONTAB of the sweep timer"),
    SettingSpec(
        "ADMIN_ROLE", False, None, "Entra app role required in X-MS-CLIENT-PRINCIPAL for the admin API"
    ),
    SettingSpec(
        "ROTATION_EVENTS_TOPIC_ENDPOINT", False, None, "Event Grid topic endpoint for lifecycle events"
    ),
    SettingSpec("ROTATION_STATE_TABLE", False, "rotationstate", "state table"),
    SettingSpec("ROTATION_HISTORY_TABLE", False, "rotationhistory", "history table"),
    SettingSpec("ROTATION_QUEUE", False, "rotation-requests", "fan-out queue"),
    SettingSpec(
        "ROTATION_FANOUT", False, "false", "timer enqueues due targets instead of rotating in-process"
    ),
    SettingSpec("SWEEP_CONCURRENCY", False, "16", "targets advanced at once by one sweep"),
    SettingSpec(
        "ARM_WRITES_PER_SECOND",
        False,
        "5",
        "per-subscription ARM write rate: regenerateKey and listKeys POSTs (token bucket refill)",
    ),
    SettingSpec("ARM_WRITE_BURST", False, "100", "per-subscription ARM write burst (token bucket size)"),
    SettingSpec(
        "KEY_VAULT_SECRET_WRITES_PER_10S",
        False,
        "250",
        "secret writes per vault per 10 s, shared by every instance (at most 250; Key Vault allows 300)",
    ),
    SettingSpec("ROTATION_BUDGET_TABLE", False, "rotationbudgets", "table of the fleet-wide write budgets"),
    SettingSpec(
        "VERIFY_TIMEOUT", False, "PT10M", "how long a new key may take to be accepted before the cycle fails"
    ),
    SettingSpec("EMERGENCY_DRAIN_TIME", False, "PT0S", "drain used by an emergency rotation"),
    SettingSpec(
        "ROTATION_ASYNC_IO",
        False,
        "true",
        "true: the Azure SDKs' asynchronous clients on one event loop do the HTTP (less CPU per call)",
    ),
    SettingSpec(
        "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE",
        False,
        "true",
        "false only for the local emulator (vault on 127.0.0.1)",
    ),
)
_DEFAULTS = {spec.name: spec.default for spec in APP_SETTINGS}
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


DEFAULT_DISCOVERY_TAG = DiscoveryTag("key-rotation", "enabled")
# Key Vault allows 300 secret writes in any 10 s per vault and counts a write when it arrives; the budget
# counts it when its token is taken, up to one step earlier (regenerateKey + listKeys, or the probe). A
# bucket of r = setting / 10 per second and a burst of r lets 11 r + r x D through in any 10 s window when
# writes follow their tokens by up to D seconds: at 250 that is 300 for D = 1 s (docs/ENGINE.md).
MAX_VAULT_SECRET_WRITES_PER_10S = 250


@dataclass(frozen=True)
class Settings:
    targets: tuple[Target, ...]
    key_vault_url: str
    arm_endpoint: str
    storage_connection_string: str | None
    table_service_uri: str | None
    storage_client_id: str | None
    azure_client_id: str | None
    rotation_schedule: str
    admin_role: str | None
    events_topic_endpoint: str | None
    state_table: str
    history_table: str
    queue_name: str
    fanout: bool
    sweep_concurrency: int
    arm_writes_per_second: float
    arm_write_burst: int
    verify_timeout: timedelta
    emergency_drain_time: timedelta
    verify_challenge_resource: bool
    use_managed_identity: bool  # IDENTITY_ENDPOINT is set (Azure Functions, the emulator)
    queue_service_uri: str | None = None
    discovery: bool = False
    discovery_scopes: tuple[str, ...] = ()  # subscription ids; empty: every subscription visible
    discovery_tag: DiscoveryTag = DEFAULT_DISCOVERY_TAG
    vault_secret_writes_per_10s: int = 250
    budget_table: str = "rotationbudgets"
    async_io: bool = True  # ROTATION_ASYNC_IO: shared/aio_loop.py
    # Not an app setting: the platform's CA bundle and proxy variables, read once (shared/http_settings.py).
    http: HttpEnvironment = field(default_factory=HttpEnvironment)

    @property
    def arm_scope(self) -> str:
        return f"{self.arm_endpoint.rstrip('/')}/.default"

    @property
    def vault_suffix(self) -> str:
        """The DNS suffix of vaults in this cloud (``vault.azure.net``), for a vault named by tag."""
        host = (urlparse(self.key_vault_url).hostname or "").lower()
        _, _, suffix = host.partition(".")
        return suffix or "vault.azure.net"


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raises SettingsError naming the first bad one."""

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or not str(value).strip():
            return _DEFAULTS.get(name)
        return str(value).strip()

    def required(name: str) -> str:
        value = get(name)
        if value is None:
            raise SettingsError(f"{name} is required but not set")
        return value

    discovery = _boolean("ROTATION_DISCOVERY", get("ROTATION_DISCOVERY"))
    targets_text = get("ROTATION_TARGETS")
    if targets_text is None and not discovery:
        raise SettingsError(
            "ROTATION_TARGETS is required unless ROTATION_DISCOVERY=true (rotate the accounts tagged "
            "ROTATION_DISCOVERY_TAG, default key-rotation=enabled)"
        )
    targets = parse_targets(targets_text) if targets_text is not None else ()
    try:
        tag = DiscoveryTag.parse(get("ROTATION_DISCOVERY_TAG") or "")
    except ValueError as exc:
        raise SettingsError(f"ROTATION_DISCOVERY_TAG: {exc}") from exc
    scopes = tuple(s.strip() for s in (get("ROTATION_DISCOVERY_SCOPES") or "").split(",") if s.strip())
    for scope in scopes:
        if not _SUBSCRIPTION_ID.match(scope):
            raise SettingsError(
                f"ROTATION_DISCOVERY_SCOPES: {scope!r} is not a subscription id "
                "(comma-separated GUIDs; leave empty for every subscription the identity can see)"
            )
    vault = required("KEY_VAULT_URL")
    if not vault.startswith("https://"):
        raise SettingsError(f"KEY_VAULT_URL: {vault!r} must be an https:// URL")
    arm = get("ARM_ENDPOINT") or ""
    if not arm.startswith("https://"):
        raise SettingsError(f"ARM_ENDPOINT: {arm!r} must be an https:// URL")
    connection = get("AzureWebJobsStorage")
    table_uri = get("AzureWebJobsStorage__tableServiceUri")
    if connection is None and table_uri is None:
        raise SettingsError(
            "AzureWebJobsStorage (connection string) or AzureWebJobsStorage__tableServiceUri must be set"
        )
    for name in ("ROTATION_STATE_TABLE", "ROTATION_HISTORY_TABLE", "ROTATION_BUDGET_TABLE"):
        if not _TABLE_NAME.match(get(name) or ""):
            raise SettingsError(f"{name}: {get(name)!r} is not a valid table name (3-63 letters/digits)")
    queue = get("ROTATION_QUEUE") or ""
    if not _QUEUE_NAME.match(queue):
        raise SettingsError(f"ROTATION_QUEUE: {queue!r} is not a valid queue name")
    return Settings(
        targets=targets,
        key_vault_url=vault if vault.endswith("/") else vault + "/",
        arm_endpoint=arm.rstrip("/"),
        storage_connection_string=connection,
        table_service_uri=table_uri,
        storage_client_id=get("AzureWebJobsStorage__clientId"),
        azure_client_id=get("AZURE_CLIENT_ID"),
        rotation_schedule=get("ROTATION_SCHEDULE") or "",
        admin_role=get("ADMIN_ROLE"),
        events_topic_endpoint=get("ROTATION_EVENTS_TOPIC_ENDPOINT"),
        state_table=get("ROTATION_STATE_TABLE") or "",
        history_table=get("ROTATION_HISTORY_TABLE") or "",
        queue_name=queue,
        fanout=_boolean("ROTATION_FANOUT", get("ROTATION_FANOUT")),
        sweep_concurrency=_integer("SWEEP_CONCURRENCY", get("SWEEP_CONCURRENCY"), 1, 256),
        arm_writes_per_second=_number("ARM_WRITES_PER_SECOND", get("ARM_WRITES_PER_SECOND")),
        arm_write_burst=_integer("ARM_WRITE_BURST", get("ARM_WRITE_BURST"), 1, 100_000),
        verify_timeout=parse_duration(get("VERIFY_TIMEOUT") or "", "VERIFY_TIMEOUT"),
        emergency_drain_time=parse_duration(get("EMERGENCY_DRAIN_TIME") or "", "EMERGENCY_DRAIN_TIME"),
        verify_challenge_resource=_boolean(
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", get("KEY_VAULT_VERIFY_CHALLENGE_RESOURCE")
        ),
        use_managed_identity=bool(env.get("IDENTITY_ENDPOINT")),
        queue_service_uri=get("AzureWebJobsStorage__queueServiceUri"),
        discovery=discovery,
        discovery_scopes=scopes,
        discovery_tag=tag,
        vault_secret_writes_per_10s=_integer(
            "KEY_VAULT_SECRET_WRITES_PER_10S",
            get("KEY_VAULT_SECRET_WRITES_PER_10S"),
            1,
            MAX_VAULT_SECRET_WRITES_PER_10S,
        ),
        budget_table=get("ROTATION_BUDGET_TABLE") or "",
        async_io=_boolean("ROTATION_ASYNC_IO", get("ROTATION_ASYNC_IO")),
        http=read_http_environment(env),
    )


def _boolean(name: str, value: str | None) -> bool:
    text = (value or "").lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SettingsError(f"{name}: {value!r} is not true or false")


def _integer(name: str, value: str | None, low: int, high: int) -> int:
    try:
        number = int(value or "")
    except ValueError as exc:
        raise SettingsError(f"{name}: {value!r} is not an integer") from exc
    if not low <= number <= high:
        raise SettingsError(f"{name}: {number} is outside {low}..{high}")
    return number


def _number(name: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError as exc:
        raise SettingsError(f"{name}: {value!r} is not a number") from exc
    if not number > 0:
        raise SettingsError(f"{name}: must be positive")
    return number
