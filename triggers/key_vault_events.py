"""Key Vault secret events as the Event Grid trigger delivers them, parsed without trusting anything.

The trigger hands over `azure.functions.EventGridEvent` (Event Grid schema) or
`azure.functions.CloudEvent` (CloudEvents 1.0 schema): the library's converter picks the class from the
payload (`specversion` present → CloudEvent), whatever the handler's annotation says. Key Vault's
published samples use PascalCase data keys with NBF/EXP as strings; its JSON schema says camelCase and
numbers; either may carry null. All are accepted. Everything else is an `IgnoredEvent` with a reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
HANDLED_EVENT_TYPES = frozenset({NEAR_EXPIRY, EXPIRED})

_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_VERSION = re.compile(r"^[0-9a-zA-Z]{1,64}$")
_VAULT_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_TOPIC_VAULT = re.compile(r"/providers/Microsoft\.KeyVault/vaults/([^/]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class SecretEvent:
    """A well-formed Key Vault secret event this app acts on."""

    event_id: str
    event_type: str
    vault_url: str  # scheme + host of the secret id, with a trailing slash, like KEY_VAULT_URL
    vault_name: str | None
    secret_name: str
    version: str | None
    not_before: int | None  # Unix seconds
    expires: int | None


@dataclass(frozen=True)
class IgnoredEvent:
    reason: str  # short machine-friendly code: malformed, unhandled_event_type, ...
    detail: str
    event_id: str | None = None
    event_type: str | None = None


class _Malformed(ValueError):
    pass


def parse_event(event: Any) -> SecretEvent | IgnoredEvent:
    """Turn a trigger payload into a SecretEvent, or say why it is ignored. Never raises: whatever the
    payload's size, depth or numbers, a shape this parser did not foresee is a malformed event, because an
    exception would make Event Grid retry it for 24 h and then dead-letter it."""
    try:
        return _parse(event)
    except Exception as error:  # hostile input (deep nesting, huge numbers, odd types)
        return IgnoredEvent("malformed", f"event could not be parsed ({type(error).__name__})")


def _parse(event: Any) -> SecretEvent | IgnoredEvent:
    try:
        envelope = _envelope(event)
    except _Malformed as error:
        return IgnoredEvent("malformed", str(error))
    event_id, event_type, topic, subject, data = envelope
    if event_type not in HANDLED_EVENT_TYPES:
        return IgnoredEvent("unhandled_event_type", "not a secret near-expiry/expired event",
                            event_id, event_type)
    try:
        return _secret_event(event_id, event_type, topic, subject, data)
    except _Malformed as error:
        return IgnoredEvent("malformed", str(error), event_id, event_type)


def _envelope(event: Any) -> tuple[str | None, str | None, str | None, str | None, Any]:
    # Duck-typed on purpose: a CloudEvent has `type`/`source`, an EventGridEvent `event_type`/`topic`.
    if hasattr(event, "specversion"):
        event_type, topic = getattr(event, "type", None), getattr(event, "source", None)
    elif hasattr(event, "event_type"):
        event_type, topic = getattr(event, "event_type", None), getattr(event, "topic", None)
    else:
        raise _Malformed("not an Event Grid event or CloudEvent")
    event_id, subject = getattr(event, "id", None), getattr(event, "subject", None)
    try:
        data = event.get_json()
    except (ValueError, TypeError) as error:
        raise _Malformed("event data is not JSON") from error
    for label, value in (("id", event_id), ("type", event_type), ("topic", topic), ("subject", subject)):
        if value is not None and not isinstance(value, str):
            raise _Malformed(f"event {label} is not a string")
    return event_id, event_type, topic, subject, data


def _secret_event(event_id: str | None, event_type: str, topic: str | None, subject: str | None,
                  data: Any) -> SecretEvent:
    if not event_id:
        raise _Malformed("event has no id")
    if not isinstance(data, dict):
        raise _Malformed("event data is not an object")
    fields = _case_insensitive(data)
    object_type = fields.get("objecttype")
    if object_type is not None and object_type != "Secret":
        raise _Malformed("event data objectType is not Secret")
    secret_id = _string_field(fields, "id", required=True)
    assert secret_id is not None
    vault_url, id_name, id_version = _split_secret_id(secret_id)
    object_name = _string_field(fields, "objectname") or id_name
    version = _string_field(fields, "version") or id_version
    if object_name != id_name or (version and id_version and version != id_version):
        raise _Malformed("event data objectName/version disagree with its id")
    if subject and subject != object_name:
        raise _Malformed("event subject disagrees with its data")
    if version is not None and not _VERSION.match(version):
        raise _Malformed("event secret version is not a Key Vault version")
    vault_name = _string_field(fields, "vaultname") or _vault_from_topic(topic)
    if vault_name is not None and not _VAULT_NAME.match(vault_name):
        raise _Malformed("event vault name is invalid")
    return SecretEvent(
        event_id=event_id,
        event_type=event_type,
        vault_url=vault_url,
        vault_name=vault_name,
        secret_name=object_name,
        version=version,
        not_before=_epoch_field(fields, "nbf"),
        expires=_epoch_field(fields, "exp"),
    )


def _case_insensitive(data: dict[Any, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise _Malformed("event data has a non-string key")
        lowered = key.lower()
        if lowered in fields and fields[lowered] != value:
            raise _Malformed(f"event data has conflicting {key!r} fields")
        fields[lowered] = value
    return fields


def _string_field(fields: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise _Malformed(f"event data has no {name}")
        return None
    if not isinstance(value, str):
        raise _Malformed(f"event data {name} is not a string")
    return value


def _split_secret_id(secret_id: str) -> tuple[str, str, str | None]:
    """`https://{vault}/secrets/{name}[/{version}]` → (vault URL, name, version)."""
    try:
        parts = urlsplit(secret_id)
        port = parts.port
    except ValueError as error:
        raise _Malformed("event secret id is not a URL") from error
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise _Malformed("event secret id is not an https Key Vault URL")
    segments = parts.path.strip("/").split("/")
    if len(segments) not in (2, 3) or segments[0] != "secrets" or not _SECRET_NAME.match(segments[1]):
        raise _Malformed("event secret id is not a Key Vault secret id")
    host = parts.hostname.lower() + (f":{port}" if port else "")
    version = segments[2] if len(segments) == 3 and segments[2] else None
    return f"https://{host}/", segments[1], version


def _vault_from_topic(topic: str | None) -> str | None:
    match = _TOPIC_VAULT.search(topic or "")
    return match.group(1) if match else None


def _epoch_field(fields: dict[str, Any], name: str) -> int | None:
    """NBF/EXP: Unix seconds as a number or a numeric string, an ISO 8601 string, or null."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Malformed(f"event data {name} is a boolean")
    if isinstance(value, int) and not 0 <= value < 2**37:
        raise _Malformed(f"event data {name} is out of range")  # float() of a huge int overflows
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        number = _epoch_from_string(value.strip(), name)
    else:
        raise _Malformed(f"event data {name} is not a time")
    if not math.isfinite(number) or not 0 <= number < 2**37:
        raise _Malformed(f"event data {name} is out of range")
    return int(number)


def _epoch_from_string(text: str, name: str) -> float:
    if len(text) > 64:
        raise _Malformed(f"event data {name} is not a time")  # int(str) of thousands of digits is slow
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise _Malformed(f"event data {name} is not a time") from error
    if parsed.tzinfo is None:
        raise _Malformed(f"event data {name} has no time zone")
    return parsed.timestamp()
