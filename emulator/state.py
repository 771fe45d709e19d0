"""Everything the emulated Azure remembers, and its optional JSON persistence (``--state-file``).

Handlers run on one asyncio event loop and never await between reading and writing state, so the state
needs no locks; the in-thread API (``run_in_thread``) talks to it only through HTTP.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_ID_PATTERN = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
ACCOUNT_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$")
LOCATION_PATTERN = re.compile(r"^[a-z0-9]{2,40}$")
NETWORK_ACTIONS = ("Allow", "Deny")
ACCOUNT_KINDS = frozenset(
    {
        "AIServices",
        "CognitiveServices",
        "OpenAI",
        "TextAnalytics",
        "ComputerVision",
        "SpeechServices",
        "FormRecognizer",
        "ContentSafety",
        "TextTranslation",
        "Face",
        "LUIS",
        "CustomVision.Prediction",
    }
)
DEMO_ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo"
    "/providers/Microsoft.CognitiveServices/accounts/ai-services"
)


class InvalidAccount(ValueError):
    """A control-API or CLI account definition that cannot be accepted."""


# Every account key this process has issued or loaded, so the test suite's session-wide scan (I5) can
# look for them in everything the product logged or stored. Only the emulator (a fake Azure) holds these.
KEYS_ISSUED_HERE: set[str] = set()


def new_account_key() -> str:
    # Cognitive Services keys are 32 hexadecimal characters.
    key = secrets.token_hex(16)
    KEYS_ISSUED_HERE.add(key)
    return key


@dataclass
class Account:
    resource_id: str
    subscription_id: str
    resource_group: str
    name: str
    kind: str
    location: str
    disable_local_auth: bool
    key1: str
    key2: str
    # Emulator-clock instant from which each key is accepted by the data plane (propagation delay).
    key1_accepted_from: float
    key2_accepted_from: float
    created: float
    internal_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Without a custom subdomain the account answers on the shared regional host (Translator: the global
    # one) and the key selects the account there. Defaults keep older --state-file snapshots loadable.
    custom_subdomain: bool = True
    network_default_action: str = "Allow"  # networkAcls.defaultAction; Deny: this caller is outside
    # Resource tags (ARM ``tags``): what discovery selects accounts by. Azure stores up to 50 per resource.
    tags: dict[str, str] = field(default_factory=dict)
    # ``customSubDomainName``: globally unique in Azure (it is a DNS name), unlike the account name, which
    # is unique only within its resource group. Empty: the account name (what the portal proposes).
    subdomain: str = ""

    @staticmethod
    def parse_resource_id(resource_id: str) -> tuple[str, str, str]:
        match = ACCOUNT_ID_PATTERN.match(resource_id.strip())
        if not match:
            raise InvalidAccount(
                "resourceId must look like /subscriptions/{sub}/resourceGroups/{rg}/providers/"
                f"Microsoft.CognitiveServices/accounts/{{name}}, got {resource_id!r}"
            )
        name = match["name"]
        if not ACCOUNT_NAME_PATTERN.match(name):
            raise InvalidAccount(f"account name {name!r} must be 1-63 letters, digits or hyphens")
        return match["subscription"], match["group"], name

    @classmethod
    def create(
        cls,
        resource_id: str,
        kind: str,
        disable_local_auth: bool,
        now: float,
        location: str = "eastus",
        custom_subdomain: bool | None = None,
        network_default_action: str = "Allow",
        tags: dict[str, str] | None = None,
        subdomain: str | None = None,
    ) -> Account:
        if kind not in ACCOUNT_KINDS:
            raise InvalidAccount(f"kind {kind!r} is not one of {sorted(ACCOUNT_KINDS)}")
        if not LOCATION_PATTERN.match(location):
            raise InvalidAccount(f"location {location!r} must be a region name such as eastus (or global)")
        if network_default_action not in NETWORK_ACTIONS:
            raise InvalidAccount(f"networkDefaultAction must be one of {list(NETWORK_ACTIONS)}")
        if custom_subdomain is None:
            # Translator resources are usually created without one and answer on the global endpoint.
            custom_subdomain = kind != "TextTranslation"
        subscription, group, name = cls.parse_resource_id(resource_id)
        canonical = (
            f"/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{name}"
        )
        return cls(
            canonical,
            subscription,
            group,
            name,
            kind,
            location,
            disable_local_auth,
            new_account_key(),
            new_account_key(),
            now,
            now,
            now,
            custom_subdomain=custom_subdomain,
            network_default_action=network_default_action,
            tags=validated_tags(tags or {}),
            subdomain=_validated_subdomain(subdomain or name),
        )

    @property
    def host_name(self) -> str:
        """The custom subdomain the account's own endpoint answers on."""
        return self.subdomain or self.name

    @property
    def network_denied(self) -> bool:
        return self.network_default_action == "Deny"

    def key(self, slot: str) -> str:
        return self.key1 if slot == "key1" else self.key2


class AccountTable(dict[str, Account]):
    """The accounts by lower-cased resource id, plus the two lookups the data plane makes on every request
    — by custom subdomain (an account's own host) and by key (shared regional/global hosts, where the key
    selects the account) — kept as indexes, so a request costs the same with 10 or 10,000 accounts.
    Every change goes through ``[id] = account``, ``del [id]`` or :meth:`rekey` (the only writers:
    the control API and ARM ``regenerateKey``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._by_subdomain: dict[str, Account] = {}
        self._by_key: dict[str, Account] = {}
        for account in self.values():
            # dataclasses.asdict() rebuilds this mapping type with plain dicts as values (persistence)
            if isinstance(account, Account):
                self._index(account)

    def _index(self, account: Account) -> None:
        self._by_subdomain.setdefault(account.host_name.lower(), account)
        for key in (account.key1, account.key2):
            self._by_key[key] = account

    def _unindex(self, account: Account) -> None:
        if self._by_subdomain.get(account.host_name.lower()) is account:
            del self._by_subdomain[account.host_name.lower()]
        for key in (account.key1, account.key2):
            if self._by_key.get(key) is account:
                del self._by_key[key]

    def __setitem__(self, resource_id: str, account: Account) -> None:
        previous = self.get(resource_id)
        if previous is not None:
            self._unindex(previous)
        super().__setitem__(resource_id, account)
        self._index(account)

    def __delitem__(self, resource_id: str) -> None:
        self._unindex(self[resource_id])
        super().__delitem__(resource_id)

    def rekey(self, account: Account, slot: str, key: str) -> None:
        """Replace one slot's key (``regenerateKey``): the old key stops selecting the account at once."""
        old = account.key(slot)
        if self._by_key.get(old) is account:
            del self._by_key[old]
        if slot == "key1":
            account.key1 = key
        else:
            account.key2 = key
        self._by_key[key] = account

    def by_subdomain(self, subdomain: str) -> Account | None:
        return self._by_subdomain.get(subdomain.lower())

    def by_key(self, key: str) -> Account | None:
        return self._by_key.get(key)


MAX_TAGS = 50  # per resource ("Each resource ... can have a maximum of 50 tag name-value pairs")
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256


def validated_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidAccount("tags must be an object of string names to string values")
    if len(tags) > MAX_TAGS:
        raise InvalidAccount(f"an account can carry at most {MAX_TAGS} tags, got {len(tags)}")
    for name, value in tags.items():
        if not name or len(name) > MAX_TAG_NAME or any(c in name for c in "<>%&\\?/"):
            raise InvalidAccount(f"tag name {name!r} must be 1-{MAX_TAG_NAME} characters without <>%&\\?/")
        if len(value) > MAX_TAG_VALUE:
            raise InvalidAccount(f"tag {name!r}: value longer than {MAX_TAG_VALUE} characters")
    return dict(tags)


def _validated_subdomain(text: str) -> str:
    if not ACCOUNT_NAME_PATTERN.match(text):
        raise InvalidAccount(f"customSubDomainName {text!r} must be 1-63 letters, digits or hyphens")
    return text


@dataclass
class SecretVersion:
    name: str
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


@dataclass
class DeletedSecret:
    versions: list[SecretVersion]
    deleted_date: int
    scheduled_purge_date: int


VAULT_NAME_PATTERN = re.compile(r"^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


@dataclass
class Vault:
    """A Key Vault besides the default one (``POST /_emulator/vaults``): its own secrets, its own URL (its
    own port) and its own throttling windows, as Key Vault's limits are per vault."""

    name: str
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)  # key: lower-cased name
    deleted_secrets: dict[str, DeletedSecret] = field(default_factory=dict)
    # True: the emulated identity has no role on this vault (every request → 403 ForbiddenByRbac).
    identity_denied: bool = False

    @staticmethod
    def validated_name(name: Any) -> str:
        # Key Vault names: 3-24 characters, letters, digits and '-', a letter first, no '--', no '-' last.
        if not isinstance(name, str) or not VAULT_NAME_PATTERN.match(name):
            raise InvalidAccount(
                f"vault name {name!r} must be 3-24 letters, digits or single hyphens, starting with a letter "
                "and ending with a letter or digit"
            )
        return name

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vault:
        return cls(
            data["name"],
            {k: [SecretVersion(**v) for v in versions] for k, versions in data.get("secrets", {}).items()},
            {k: _deleted_from_json(d) for k, d in data.get("deleted_secrets", {}).items()},
            bool(data.get("identity_denied", False)),
        )


def _deleted_from_json(data: dict[str, Any]) -> DeletedSecret:
    return DeletedSecret(
        [SecretVersion(**v) for v in data["versions"]], data["deleted_date"], data["scheduled_purge_date"]
    )


@dataclass
class EmulatorState:
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    signing_key: str = field(default_factory=lambda: secrets.token_hex(32))
    clock_offset: float = 0.0
    propagation_seconds: float = 0.0
    accounts: AccountTable = field(default_factory=AccountTable)  # key: lower-cased resource id
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)  # key: lower-cased name
    deleted_secrets: dict[str, DeletedSecret] = field(default_factory=dict)
    kv_events: list[dict[str, Any]] = field(default_factory=list)
    emitted_events: list[str] = field(default_factory=list)  # "{eventType}|{version}"
    eventgrid_events: list[dict[str, Any]] = field(default_factory=list)
    # Emulated App Service sites and API Management named values (emulator/consumers.py), plain JSON.
    consumers: dict[str, dict[str, Any]] = field(default_factory=dict)
    vaults: dict[str, Vault] = field(default_factory=dict)  # vaults besides the default; key: lower name

    def reset(self) -> None:
        """Forget everything except what clients hold on to (identity header, token signing key)."""
        keep_header, keep_key = self.identity_header, self.signing_key
        self.__init__()  # type: ignore[misc]
        self.identity_header, self.signing_key = keep_header, keep_key

    def account_by_name(self, name: str) -> Account | None:
        """The account of that name; with several (same name, other resource groups) the first created."""
        lowered = name.lower()
        for account in self.accounts.values():
            if account.name.lower() == lowered:
                return account
        return None

    def accounts_named(self, name: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.name.lower() == name.lower()]

    def account_by_subdomain(self, subdomain: str) -> Account | None:
        return self.accounts.by_subdomain(subdomain)

    # -- persistence ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmulatorState:
        state = cls()
        state.identity_header = data["identity_header"]
        state.signing_key = data["signing_key"]
        state.clock_offset = float(data.get("clock_offset", 0.0))
        state.propagation_seconds = float(data.get("propagation_seconds", 0.0))
        state.accounts = AccountTable({k: Account(**v) for k, v in data.get("accounts", {}).items()})
        state.consumers = data.get("consumers", {})
        KEYS_ISSUED_HERE.update(
            key for account in state.accounts.values() for key in (account.key1, account.key2)
        )
        state.secrets = {
            k: [SecretVersion(**v) for v in versions] for k, versions in data.get("secrets", {}).items()
        }
        state.deleted_secrets = {k: _deleted_from_json(d) for k, d in data.get("deleted_secrets", {}).items()}
        state.vaults = {k: Vault.from_json(v) for k, v in data.get("vaults", {}).items()}
        state.kv_events = list(data.get("kv_events", []))
        state.emitted_events = list(data.get("emitted_events", []))
        state.eventgrid_events = list(data.get("eventgrid_events", []))
        return state


class StateFile:
    """Atomic JSON snapshots of :class:`EmulatorState` (write to a temp file, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> EmulatorState | None:
        if not self.path.exists():
            return None
        return EmulatorState.from_json(json.loads(self.path.read_text(encoding="utf-8")))

    def save(self, state: EmulatorState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle)
        os.replace(temporary, self.path)
