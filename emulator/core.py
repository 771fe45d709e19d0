"""The emulator's shared context: configuration, state, test knobs, token authority, clock, events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.knobs import Knobs
from emulator.state import Account, EmulatorState, StateFile, Vault
from emulator.tokens import TokenAuthority

EventCallback = Callable[[dict[str, Any]], None]

KEY_VAULT_AUDIENCES = frozenset({"https://vault.azure.net"})
EVENTGRID_AUDIENCES = frozenset({"https://eventgrid.azure.net"})
PUBLIC_ARM_AUDIENCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})


@dataclass
class EmulatorConfig:
    port: int
    host: str = "127.0.0.1"
    vault_name: str = "kv-emulator"
    tenant_id: str = "72f988bf-0000-0000-0000-000000000000"
    principal_id: str = "5b4f7c1a-0000-0000-0000-00000000e1e1"
    vault_subscription_id: str = "00000000-0000-0000-0000-000000000000"
    vault_resource_group: str = "rg-demo"
    event_webhook: str | None = None
    state_file: Path | None = None
    ca_bundle: Path | None = None
    # The server certificate, so vaults added at run time (emulator/vaults.py) serve TLS with it too.
    server_cert: Path | None = None
    server_key: Path | None = None
    topic_name: str = "rotation"
    # ``--account-hosts``: accounts with a custom subdomain answer on ``https://{subdomain}.{suffix}:port/``
    # (their own TLS connection per account, as in Azure) instead of ``/accounts/{subdomain}/``.
    account_host_suffix: str | None = None

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"


class Emulator:
    def __init__(
        self,
        config: EmulatorConfig,
        state: EmulatorState,
        knobs: Knobs,
        on_event: EventCallback | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.knobs = knobs
        self.on_event = on_event
        self.tokens = TokenAuthority(bytes.fromhex(state.signing_key), config.tenant_id, config.principal_id)
        self._state_file = StateFile(config.state_file) if config.state_file else None
        # Set by the event module at startup; called whenever secrets or the clock change.
        self.evaluate_events: Callable[[], None] = lambda: None
        # Set by the event module too: a secret changed, schedule its next event (name as stored).
        self.secret_changed: Callable[[str], None] = lambda name: None

    @property
    def arm_audiences(self) -> frozenset[str]:
        return PUBLIC_ARM_AUDIENCES | {self.config.base_url.lower()}

    def now(self) -> float:
        return time.time() + self.state.clock_offset

    @property
    def vault_url(self) -> str:
        return self.config.base_url

    def vault(self, name: str | None) -> Vault:
        """A vault's secrets: ``None`` is the default vault (on the main port, ``KEY_VAULT_URL``), whose
        secrets stay in ``state.secrets`` (what Key Vault events and older state files use)."""
        if name is None:
            return Vault(self.config.vault_name, self.state.secrets, self.state.deleted_secrets)
        return self.state.vaults[name.lower()]

    @property
    def vault_resource_id(self) -> str:
        return (
            f"/subscriptions/{self.config.vault_subscription_id}/resourceGroups/"
            f"{self.config.vault_resource_group}/providers/Microsoft.KeyVault/vaults/{self.config.vault_name}"
        )

    def account_endpoint(self, account: Account) -> str:
        """``properties.endpoint``: the account's own host, or the shared host the gateway serves it on."""
        base = self.config.base_url
        if account.custom_subdomain and self.config.account_host_suffix:
            return f"https://{account.host_name.lower()}.{self.config.account_host_suffix}:{self.config.port}/"
        if account.custom_subdomain:
            return f"{base}/accounts/{account.host_name}/"
        if account.kind == "TextTranslation":
            return f"{base}/global/translator/"
        return f"{base}/regional/{account.location}/"

    def persist(self) -> None:
        if self._state_file is not None:
            self._state_file.save(self.state)

    def env_lines(self) -> dict[str, str]:
        base = self.config.base_url
        ca = str(self.config.ca_bundle) if self.config.ca_bundle else ""
        return {
            "KEY_VAULT_URL": f"{base}/",
            "ARM_ENDPOINT": base,
            "IDENTITY_ENDPOINT": f"{base}/msi/token",
            "IDENTITY_HEADER": self.state.identity_header,
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "EMULATOR_CONTROL_URL": f"{base}/_emulator",
            "EVENTGRID_TOPIC_ENDPOINT": f"{base}/eventgrid/topics/{self.config.topic_name}/api/events",
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            # the accounts seeded at start (resource ids, comma-separated), so a script knows what exists
            "EMULATOR_ACCOUNTS": ",".join(account.resource_id for account in self.state.accounts.values()),
        }
