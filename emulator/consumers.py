"""Consumers of the vault's secrets, as the platforms that host them resolve Key Vault references
(docs/EMULATOR.md "Consumers"):

- ``Microsoft.Web/sites``: app settings holding ``@Microsoft.KeyVault(SecretUri=…)`` or
  ``@Microsoft.KeyVault(VaultName=…;SecretName=…[;SecretVersion=…])``, resolved when the site is created (the
  app starts), every 24 h of the emulator's clock, and at once on
  ``POST …/config/configreferences/appsettings/refresh``; each reference reports ``status``,
  ``secretVersion`` (the version the reference pins, if any) and ``activeVersion`` (the version it resolved
  to).
- ``Microsoft.ApiManagement/service/namedValues`` with ``keyVault.secretIdentifier``: fetched at creation,
  every 4 h and on ``POST …/refreshSecret``; ``keyVault.lastStatus`` says when and whether it last fetched.

A consumer can be made slow (a refresh takes effect ``refreshDelaySeconds`` later) or stuck (it never picks
up a new version: the hardest case for a drain). Entries are plain JSON dicts in ``EmulatorState.consumers``
so the state file persists them. Periodic refetches are evaluated lazily on every read, each at its own
scheduled instant against the secret versions that existed then.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from emulator.knobs import InvalidControl

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import SecretVersion

_ARM = r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/"
SITE_ID = re.compile(_ARM + r"Microsoft\.Web/sites/(?P<name>[^/]+)$", re.IGNORECASE)
NAMED_VALUE_ID = re.compile(
    _ARM + r"Microsoft\.ApiManagement/service/(?P<service>[^/]+)/namedValues/(?P<name>[^/]+)$", re.IGNORECASE
)
_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)$", re.IGNORECASE | re.DOTALL)
# Learn, "Use Key Vault references as app settings": refetched every 24 hours; API Management "Use named
# values": Key Vault secrets are fetched every four hours.
REFETCH_SECONDS = {"appService": 24 * 3600.0, "apiManagement": 4 * 3600.0}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_reference(text: str) -> tuple[str, str, str | None] | None:
    """``(vault host or name, secret name, version or None)`` of a Key Vault reference, or None when the
    text is no reference (a plain app setting). Raises ValueError for a reference with invalid syntax."""
    match = _REFERENCE.match(text.strip())
    if match is None:
        return None
    body = match["body"].strip()
    if body.lower().startswith("secreturi="):
        uri = urlparse(body[len("secreturi=") :].strip())
        parts = [p for p in uri.path.split("/") if p]
        if uri.scheme != "https" or not uri.netloc or len(parts) not in (2, 3) or parts[0] != "secrets":
            raise ValueError("SecretUri must be https://{vault}/secrets/{name}[/{version}]")
        return uri.netloc.lower(), parts[1], parts[2] if len(parts) == 3 else None
    fields = dict(item.split("=", 1) for item in body.split(";") if "=" in item)
    lowered = {k.strip().lower(): v.strip() for k, v in fields.items()}
    if not lowered.get("vaultname") or not lowered.get("secretname"):
        raise ValueError("a reference needs SecretUri=… or VaultName=…;SecretName=…")
    return lowered["vaultname"].lower(), lowered["secretname"], lowered.get("secretversion") or None


class ConsumerBook:
    """Creates, refreshes and reads the consumers kept in ``emulator.state.consumers``."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        return self.emulator.state.consumers

    # -- creation (control API) ---------------------------------------------------------------------

    def add_site(self, resource_id: Any, app_settings: Any) -> dict[str, Any]:
        if not isinstance(resource_id, str) or not SITE_ID.match(resource_id.strip().rstrip("/")):
            raise InvalidControl(
                "resourceId must be /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web"
                "/sites/{name}"
            )
        if not isinstance(app_settings, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in app_settings.items()
        ):
            raise InvalidControl(
                'appSettings must be an object of strings, e.g. {"OPENAI_KEY": "@Microsoft.KeyVault(…)"}'
            )
        return self._add("appService", resource_id, {"appSettings": dict(app_settings)})

    def add_named_value(self, resource_id: Any, secret_identifier: Any) -> dict[str, Any]:
        if not isinstance(resource_id, str) or not NAMED_VALUE_ID.match(resource_id.strip().rstrip("/")):
            raise InvalidControl(
                "resourceId must be /subscriptions/{sub}/resourceGroups/{rg}/providers/"
                "Microsoft.ApiManagement/service/{apim}/namedValues/{id}"
            )
        if not isinstance(secret_identifier, str):
            raise InvalidControl("secretIdentifier must be a Key Vault secret URI")
        try:
            parse_reference(f"@Microsoft.KeyVault(SecretUri={secret_identifier})")
        except ValueError as error:
            raise InvalidControl(f"secretIdentifier: {error}") from None
        return self._add("apiManagement", resource_id, {"secretIdentifier": secret_identifier})

    def _add(self, kind: str, resource_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        rid = resource_id.strip().rstrip("/")
        if rid.lower() in self.entries:
            raise InvalidControl(f"{rid} already exists")
        now = self.emulator.now()
        entry = {
            "kind": kind,
            "resourceId": rid,
            **fields,
            "resolved": {},
            "lastFetchAt": None,
            "nextFetchAt": now + REFETCH_SECONDS[kind],
            "refreshDueAt": None,
            "refreshDelaySeconds": 0.0,
            "stuck": False,
        }
        self._resolve(entry, now)  # the app starts: every reference resolves once
        self.entries[rid.lower()] = entry
        self.emulator.persist()
        return entry

    def shape(self, resource_id: Any, delay: Any, stuck: Any) -> dict[str, Any]:
        entry = self.find(resource_id if isinstance(resource_id, str) else "")
        if entry is None:
            raise InvalidControl(f"no site or named value {resource_id!r}; create it first")
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                raise InvalidControl("refreshDelaySeconds must be a number >= 0")
            entry["refreshDelaySeconds"] = float(delay)
        if stuck is not None:
            if not isinstance(stuck, bool):
                raise InvalidControl("stuck must be true or false")
            entry["stuck"] = stuck
        self.emulator.persist()
        return entry

    # -- what ARM and the app see -------------------------------------------------------------------

    def find(self, resource_id: str) -> dict[str, Any] | None:
        entry = self.entries.get(resource_id.strip().rstrip("/").lower())
        if entry is not None:
            self.catch_up(entry)
        return entry

    def catch_up(self, entry: dict[str, Any]) -> None:
        """Run the refetches that were due by now, each at its own instant (lazy: only reads observe them)."""
        now = self.emulator.now()
        due = entry.get("refreshDueAt")
        while entry["nextFetchAt"] <= now or (due is not None and due <= now):
            if due is not None and due <= entry["nextFetchAt"]:
                self._resolve(entry, due)
                entry["refreshDueAt"] = due = None
            else:
                self._resolve(entry, entry["nextFetchAt"])
                entry["nextFetchAt"] += REFETCH_SECONDS[entry["kind"]]

    def refresh(self, entry: dict[str, Any]) -> None:
        """The forced refresh: at once, or ``refreshDelaySeconds`` later for a slow consumer."""
        now = self.emulator.now()
        if entry["refreshDelaySeconds"] > 0:
            entry["refreshDueAt"] = now + entry["refreshDelaySeconds"]
        else:
            self._resolve(entry, now)
        self.emulator.persist()

    def environment(self, entry: dict[str, Any]) -> dict[str, str]:
        """The app settings as the app's process sees them: a reference that did not resolve stays the
        literal ``@Microsoft.KeyVault(…)`` text (Learn, "Troubleshoot Key Vault references")."""
        settings: dict[str, str] = entry.get("appSettings", {})
        return {name: entry["resolved"].get(name, {}).get("value") or raw for name, raw in settings.items()}

    # -- resolution -----------------------------------------------------------------------------------

    def _resolve(self, entry: dict[str, Any], at: float) -> None:
        entry["lastFetchAt"] = at
        if entry["stuck"] and entry["resolved"]:
            return  # a stuck consumer keeps what it holds: the drain must never end under it
        references = (
            entry["appSettings"]
            if entry["kind"] == "appService"
            else {"": f"@Microsoft.KeyVault(SecretUri={entry['secretIdentifier']})"}
        )
        resolved: dict[str, dict[str, Any]] = {}
        for name, raw in references.items():
            try:
                parsed = parse_reference(raw)
            except ValueError as error:
                resolved[name] = {"status": "InvalidSyntax", "details": str(error), "reference": raw}
                continue
            if parsed is not None:
                resolved[name] = {"reference": raw, **self._fetch(*parsed, at)}
        entry["resolved"] = resolved

    def _fetch(self, vault: str, name: str, version: str | None, at: float) -> dict[str, Any]:
        own = {urlparse(self.emulator.vault_url).netloc.lower(), self.emulator.config.vault_name.lower()}
        # ``vaultName`` is the vault's name (the first label of its host in Azure; here the emulator's name)
        vault_name = self.emulator.config.vault_name if vault in own else vault.split(".")[0]
        base = {"vaultName": vault_name, "secretName": name, "secretVersion": version}
        if vault not in own:
            return {**base, "status": "VaultNotFound", "details": f"vault {vault} is not this emulator's"}
        found = self._version_at(name, version, at)
        if found is None:
            status = "SecretVersionNotFound" if version else "SecretNotFound"
            return {**base, "status": status, "details": f"secret {name} not found"}
        return {**base, "status": "Resolved", "activeVersion": found.version, "value": found.value}

    def _version_at(self, name: str, version: str | None, at: float) -> SecretVersion | None:
        versions = self.emulator.state.secrets.get(name.lower(), [])
        if version:
            return next((v for v in versions if v.version == version.lower()), None)
        # The latest version that existed at the fetch instant (a catch-up fetch must not see later ones).
        existing = [v for v in versions if v.enabled and v.created <= at]
        return existing[-1] if existing else None


def reference_view(entry: dict[str, Any], name: str, resolution: dict[str, Any]) -> dict[str, Any]:
    """One ``ApiKVReference`` (azure-rest-api-specs Microsoft.Web ``ApiKVReference.tsp``): never the value."""
    return {
        "id": f"{entry['resourceId']}/config/configreferences/appsettings/{name}",
        "name": name,
        "type": "Microsoft.Web/sites/config/configreferences",
        "properties": {
            "reference": resolution.get("reference"),
            "status": resolution.get("status"),
            "vaultName": resolution.get("vaultName"),
            "secretName": resolution.get("secretName"),
            "secretVersion": resolution.get("secretVersion"),
            "identityType": {"type": "SystemAssigned"},
            "details": resolution.get("details", "Reference has been successfully resolved."),
            "source": "KeyVault",
            "activeVersion": resolution.get("activeVersion"),
        },
    }


def named_value_view(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``NamedValueContract`` (``ApiManagementRefreshNamedValue.json``): a secret named value's value is
    never returned by GET (only ``listValue`` would), so neither is it here."""
    match = NAMED_VALUE_ID.match(entry["resourceId"])
    assert match is not None
    resolution = entry["resolved"].get("", {})
    ok = resolution.get("status") == "Resolved"
    return {
        "id": entry["resourceId"],
        "type": "Microsoft.ApiManagement/service/namedValues",
        "name": match["name"],
        "properties": {
            "displayName": match["name"],
            "secret": True,
            "tags": [],
            "keyVault": {
                "secretIdentifier": entry["secretIdentifier"],
                "identityClientId": None,
                "lastStatus": {
                    "code": "Success" if ok else resolution.get("status", "Unknown"),
                    "message": None if ok else resolution.get("details"),
                    "timeStampUtc": iso(entry["lastFetchAt"]) if entry["lastFetchAt"] else None,
                },
            },
        },
    }


def control_view(entry: dict[str, Any]) -> dict[str, Any]:
    """What the control API shows of a consumer: versions resolved, never values."""
    return {
        "kind": entry["kind"],
        "resourceId": entry["resourceId"],
        "references": {
            name: {k: v for k, v in resolution.items() if k != "value"}
            for name, resolution in entry["resolved"].items()
        },
        "lastFetchAt": entry["lastFetchAt"],
        "nextFetchAt": entry["nextFetchAt"],
        "refreshDueAt": entry["refreshDueAt"],
        "refreshDelaySeconds": entry["refreshDelaySeconds"],
        "stuck": entry["stuck"],
    }
