"""``ROTATION_TARGETS``, the explicit target list: parsed and validated with messages that name the entry
(index and resource id) and the field, and refused well before Linux's limit on one app setting."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from rotation import durations
from rotation.consumers import Consumer, parse_consumer, plan_drain
from rotation.discovery import vault_url_from_tag
from rotation.errors import SettingsError
from rotation.model import ProbeOverride, Target, VerifyMode, parse_resource_id, table_key

_SECRET_PREFIX = re.compile(r"^[0-9a-zA-Z-]{1,116}$")  # + "-active-key" stays within Key Vault's 127
_TARGET_FIELDS = {
    "resourceId",
    "secretPrefix",
    "rotationPeriod",
    "drainTime",
    "verify",
    "probe",
    "vault",
    "consumers",
}
_CONSUMER_FIELDS = {"kind", "resourceId", "refreshBound"}
# Linux refuses one environment string over 128 KiB (MAX_ARG_STRLEN) and the Functions host passes app
# settings as environment variables: refuse well before that, with the way out.
MAX_TARGETS_BYTES = 96 * 1024
_PROBE_FIELDS = {"method", "path", "header"}
# A probe must not change anything: reads, plus POST for the token exchange and Translator's translate.
_PROBE_METHODS = ("GET", "HEAD", "POST")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_PROBE_PATH = re.compile(r"^[^\s#]{1,512}$")


def parse_duration(text: str, setting: str) -> timedelta:
    """``setting``'s value in the one duration grammar of the service (``rotation.durations``: the same as
    the account tags'), its error naming the setting."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise SettingsError(f"{setting}: {exc}") from exc


def parse_targets(text: str) -> tuple[Target, ...]:
    size = len(text.encode("utf-8"))
    if size > MAX_TARGETS_BYTES:
        raise SettingsError(
            f"ROTATION_TARGETS is {size // 1024} KiB; Linux refuses an app setting over 128 KiB "
            f"(MAX_ARG_STRLEN) and this service stops at {MAX_TARGETS_BYTES // 1024} KiB: tag the accounts "
            "key-rotation=enabled and set ROTATION_DISCOVERY=true instead (docs/DEPLOY.md)"
        )
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"ROTATION_TARGETS is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(entries, list) or not entries:
        raise SettingsError("ROTATION_TARGETS must be a non-empty JSON list of objects")
    targets: list[Target] = []
    seen_ids: dict[str, int] = {}
    seen_prefixes: dict[str, int] = {}
    for index, entry in enumerate(entries):
        target = _parse_target(index, entry)
        where = f"ROTATION_TARGETS[{index}] ({target.resource_id})"
        key = table_key(target.resource_id)
        if key in seen_ids:
            raise SettingsError(f"{where}: duplicate of entry {seen_ids[key]}")
        prefix = target.secret_prefix.lower()
        if prefix in seen_prefixes:
            raise SettingsError(
                f"{where}: secretPrefix {target.secret_prefix!r} already used by entry "
                f"{seen_prefixes[prefix]}"
            )
        seen_ids[key] = index
        seen_prefixes[prefix] = index
        targets.append(target)
    return tuple(targets)


def _parse_target(index: int, entry: Any) -> Target:
    where = f"ROTATION_TARGETS[{index}]"
    _check_object(where, entry, _TARGET_FIELDS, f"{where}: must be an object with at least resourceId")
    resource_id = entry.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id.strip():
        raise SettingsError(f"{where}: resourceId is required")
    resource_id = resource_id.strip().rstrip("/")
    where = f"{where} ({resource_id})"
    try:
        _, _, account = parse_resource_id(resource_id)
    except ValueError as exc:
        raise SettingsError(f"{where}: resourceId is {exc}") from exc
    prefix = entry.get("secretPrefix", account)
    if not isinstance(prefix, str) or not _SECRET_PREFIX.match(prefix):
        raise SettingsError(f"{where}: secretPrefix {prefix!r} must be 1-116 letters, digits or '-'")
    period = parse_duration(entry.get("rotationPeriod", "P30D"), f"{where}: rotationPeriod")
    explicit = parse_duration(entry["drainTime"], f"{where}: drainTime") if "drainTime" in entry else None
    consumers = _parse_consumers(where, entry.get("consumers", []))
    plan = plan_drain(consumers, explicit)
    drain = plan.time
    if period <= timedelta(0):
        raise SettingsError(f"{where}: rotationPeriod must be positive")
    if drain >= period:
        raise SettingsError(
            f"{where}: the drain ({plan.reason}) must be shorter than rotationPeriod; lengthen "
            "rotationPeriod or shorten drainTime / the consumers' refreshBound"
        )
    verify = entry.get("verify", "dataplane")
    try:
        verify_mode = VerifyMode(verify)
    except ValueError as exc:
        raise SettingsError(f"{where}: verify must be 'dataplane' or 'none', not {verify!r}") from exc
    probe = _parse_probe(where, entry["probe"]) if "probe" in entry else None
    vault_url = ""
    if "vault" in entry:
        if not isinstance(entry["vault"], str):
            raise SettingsError(
                f"{where}: vault must be a vault URL such as https://kv-rot-2.vault.azure.net/"
            )
        try:
            vault_url = vault_url_from_tag(entry["vault"], "vault.azure.net")
        except ValueError as exc:
            raise SettingsError(f"{where}: vault {exc}") from exc
    if probe is not None and verify_mode is VerifyMode.NONE:
        raise SettingsError(f"{where}: probe is only used with verify 'dataplane'; remove it or the verify")
    return Target(
        resource_id=resource_id,
        secret_prefix=prefix,
        rotation_period=period,
        drain_time=drain,
        verify=verify_mode,
        probe=probe,
        vault_url=vault_url,
        consumers=consumers,
        drain_reason=plan.reason,
    )


def _parse_consumers(where: str, value: Any) -> tuple[Consumer, ...]:
    """``consumers: [{"kind": "apiManagement", "resourceId": "…/namedValues/openai-key"},
    {"kind": "library", "refreshBound": "PT5M"}]`` (docs/ENGINE.md "Consumers")."""
    if not isinstance(value, list):
        raise SettingsError(
            f"{where}: consumers must be a list of objects with kind and resourceId or refreshBound"
        )
    consumers: list[Consumer] = []
    for index, item in enumerate(value):
        at = f"{where}: consumers[{index}]"
        _check_object(
            at, item, _CONSUMER_FIELDS, f"{at} must be an object with kind and resourceId or refreshBound"
        )
        bound = parse_duration(item["refreshBound"], f"{at}.refreshBound") if "refreshBound" in item else None
        try:
            consumers.append(parse_consumer(item.get("kind"), item.get("resourceId"), bound, consumers))
        except ValueError as exc:
            raise SettingsError(f"{at}: {exc}") from exc
    return tuple(consumers)


def _check_object(where: str, value: Any, allowed: frozenset[str] | set[str], not_an_object: str) -> None:
    if not isinstance(value, dict):
        raise SettingsError(not_an_object)
    unknown = set(value) - allowed
    if unknown:
        raise SettingsError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _parse_probe(where: str, value: Any) -> ProbeOverride:
    """``{"method": "GET", "path": "language/…?api-version=…", "header": "Ocp-Apim-Subscription-Key"}``:
    a request below the account's endpoint that the service authenticates with the key in ``header``."""
    where = f"{where}: probe"
    _check_object(where, value, _PROBE_FIELDS, f"{where} must be an object with method, path and header")
    method = value.get("method")
    if not isinstance(method, str) or method.upper() not in _PROBE_METHODS:
        raise SettingsError(f"{where}.method must be one of {', '.join(_PROBE_METHODS)}, not {method!r}")
    path = value.get("path")
    if not isinstance(path, str) or not _PROBE_PATH.match(path.strip()):
        raise SettingsError(f"{where}.path must be a non-empty path without spaces, not {path!r}")
    if "://" in path or path.startswith("//") or ".." in path.split("?")[0].split("/"):
        # The key goes only to the account's own endpoint, never to a URL the setting names.
        raise SettingsError(f"{where}.path {path!r} must be relative to the account's endpoint")
    header = value.get("header")
    if not isinstance(header, str) or not _HEADER_NAME.match(header):
        raise SettingsError(
            f"{where}.header must name the key header (e.g. Ocp-Apim-Subscription-Key or api-key), "
            f"not {header!r}"
        )
    return ProbeOverride(method=method.upper(), path=path.strip().lstrip("/"), header=header)
