"""Discovery: which accounts the service rotates — the explicit targets (ROTATION_TARGETS) plus every
account carrying the discovery tag, with per-account overrides read from the account's own tags.

Pure: the ARM listing comes in through ``rotation.ports.AccountDirectory``; here only the mapping of
tags to ``Target`` fields and the rules that keep a fleet consistent (docs/ENGINE.md "Discovery").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlparse

from rotation.consumers import Consumer, parse_consumer, plan_drain
from rotation.durations import parse_duration
from rotation.model import Target, VerifyMode, parse_resource_id, table_key

TAG_PERIOD = "key-rotation-period"
TAG_DRAIN = "key-rotation-drain"
TAG_PREFIX = "key-rotation-prefix"
TAG_VERIFY = "key-rotation-verify"
TAG_VAULT = "key-rotation-vault"
# One tag per consumer (a tag value holds 256 characters: one resource id each): ``key-rotation-consumer``,
# ``key-rotation-consumer-2``, ``key-rotation-consumer-apim``… valued ``<kind> [<resource id>] [<bound>]``.
TAG_CONSUMER = "key-rotation-consumer"
OVERRIDE_TAGS = (TAG_PERIOD, TAG_DRAIN, TAG_PREFIX, TAG_VERIFY, TAG_VAULT, TAG_CONSUMER)

SECRET_PREFIX = re.compile(r"^[0-9a-zA-Z-]{1,116}$")  # + "-active-key" stays within Key Vault's 127
_VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
_PREFIX_HASH_CHARS = 6


@dataclass(frozen=True)
class DiscoveryTag:
    """``name=value`` from ROTATION_DISCOVERY_TAG. Azure tag names are case-insensitive; the value is
    compared case-insensitively too, so ``Enabled`` and ``enabled`` both opt an account in."""

    name: str
    value: str

    @classmethod
    def parse(cls, text: str) -> DiscoveryTag:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{text!r} must be name=value, e.g. key-rotation=enabled")
        return cls(name.strip(), value.strip())

    def matches(self, tags: Mapping[str, str]) -> bool:
        return _tag(tags, self.name).lower() == self.value.lower()


@dataclass(frozen=True)
class Rejected:
    """A tagged account the service does not rotate, and why (shown in the sweep record and status)."""

    resource_id: str
    reason: str


@dataclass(frozen=True)
class Fleet:
    """The targets of one sweep: explicit first, then the discovered ones; and what was rejected."""

    targets: tuple[Target, ...]
    rejected: tuple[Rejected, ...] = field(default=())


def default_prefix(resource_id: str) -> str:
    """A discovered account's secret prefix: its name plus a hash of its whole (lower-cased) resource id.

    Account names are unique only within a resource group, so the name alone would collide across
    subscriptions and resource groups; the hash makes it unique, and it depends on nothing but the
    account's own id, so an account appearing elsewhere later can never change an existing prefix.
    """
    _, _, name = parse_resource_id(resource_id)
    digest = hashlib.sha256(resource_id.strip().rstrip("/").lower().encode()).hexdigest()
    return f"{name[: 116 - 1 - _PREFIX_HASH_CHARS]}-{digest[:_PREFIX_HASH_CHARS]}"


def vault_url_from_tag(text: str, vault_suffix: str) -> str:
    """``key-rotation-vault``: a vault name (``kv-rot-2``, in the cloud's vault DNS suffix) or its URL."""
    value = text.strip()
    if value.lower().startswith("https://"):
        parsed = urlparse(value)
        if not parsed.hostname or parsed.path not in ("", "/") or parsed.query:
            raise ValueError(f"{value!r} must be a vault URL such as https://kv-rot-2.vault.azure.net/")
        return f"https://{parsed.netloc}/"
    if not _VAULT_NAME.match(value):
        raise ValueError(f"{value!r} is neither a vault name (3-24 letters, digits, '-') nor an https:// URL")
    return f"https://{value.lower()}.{vault_suffix}/"


def target_from_tags(
    resource_id: str, tags: Mapping[str, str], vault_suffix: str = "vault.azure.net"
) -> Target:
    """A discovered target from its account's tags; raises ValueError naming the bad tag."""
    period = _duration_tag(tags, TAG_PERIOD, timedelta(days=30))
    explicit = _duration_tag(tags, TAG_DRAIN, timedelta(0)) if _tag(tags, TAG_DRAIN) else None
    consumers = consumers_from_tags(tags)
    plan = plan_drain(consumers, explicit)
    drain = plan.time
    if period <= timedelta(0):
        raise ValueError(f"tag {TAG_PERIOD} must be positive")
    if drain >= period:
        raise ValueError(
            f"the drain ({plan.reason}) must be shorter than the rotation period ({period}): shorten tag "
            f"{TAG_DRAIN} or the {TAG_CONSUMER} bounds, or lengthen {TAG_PERIOD}"
        )
    prefix = _tag(tags, TAG_PREFIX) or default_prefix(resource_id)
    if not SECRET_PREFIX.match(prefix):
        raise ValueError(f"tag {TAG_PREFIX} {prefix!r} must be 1-116 letters, digits or '-'")
    verify_text = _tag(tags, TAG_VERIFY) or VerifyMode.DATAPLANE.value
    try:
        verify = VerifyMode(verify_text.lower())
    except ValueError:
        raise ValueError(f"tag {TAG_VERIFY} must be 'dataplane' or 'none', not {verify_text!r}") from None
    vault_text = _tag(tags, TAG_VAULT)
    try:
        vault_url = vault_url_from_tag(vault_text, vault_suffix) if vault_text else ""
    except ValueError as error:
        raise ValueError(f"tag {TAG_VAULT}: {error}") from None
    return Target(
        resource_id=resource_id.strip().rstrip("/"),
        secret_prefix=prefix,
        rotation_period=period,
        drain_time=drain,
        verify=verify,
        vault_url=vault_url,
        source="discovered",
        consumers=consumers,
        drain_reason=plan.reason,
    )


def consumers_from_tags(tags: Mapping[str, str]) -> tuple[Consumer, ...]:
    """Every ``key-rotation-consumer*`` tag, in tag-name order: ``apiManagement /subscriptions/…/namedValues/
    openai-key``, ``appService /subscriptions/…/sites/app-x PT12H``, ``library PT5M``."""
    consumers: list[Consumer] = []
    named = sorted((k, v) for k, v in tags.items() if k.lower().startswith(TAG_CONSUMER))
    for name, value in named:
        words = str(value).split()
        if not words or len(words) > 3:
            raise ValueError(f"tag {name} must be '<kind> [<resource id>] [<refresh bound>]', not {value!r}")
        resource_id = next((w for w in words[1:] if w.startswith("/")), "")
        bounds = [w for w in words[1:] if not w.startswith("/")]
        try:
            bound = parse_duration(bounds[0]) if bounds else None
            consumers.append(parse_consumer(words[0], resource_id, bound, consumers))
        except ValueError as error:
            raise ValueError(f"tag {name}: {error}") from None
    return tuple(consumers)


def build_fleet(
    explicit: Iterable[Target],
    discovered: Iterable[tuple[str, Mapping[str, str]]],
    tag: DiscoveryTag,
    vault_suffix: str = "vault.azure.net",
    default_vault_url: str = "",
) -> Fleet:
    """The explicit targets plus every tagged account, in a stable order (explicit, then by id).

    An explicit entry wins over the same account discovered (its settings are the operator's). A tagged
    account whose tags are invalid, or whose prefix is already used in the same vault by another target,
    is rejected — never rotated with a guessed setting, never allowed to overwrite another's secrets.
    """
    targets = list(explicit)
    seen_ids = {t.state_key for t in targets}
    used_prefixes = {_prefix_key(t, default_vault_url): t.resource_id for t in targets}
    rejected: list[Rejected] = []
    tagged = sorted(
        ((rid.strip().rstrip("/"), tags) for rid, tags in discovered if tag.matches(tags)),
        key=lambda item: item[0].lower(),
    )
    for resource_id, tags in tagged:
        if table_key(resource_id) in seen_ids:
            continue
        try:
            target = target_from_tags(resource_id, tags, vault_suffix)
        except ValueError as error:
            rejected.append(Rejected(resource_id, str(error)))
            continue
        prefix_key = _prefix_key(target, default_vault_url)
        if prefix_key in used_prefixes:
            rejected.append(
                Rejected(
                    resource_id,
                    f"secret prefix {target.secret_prefix!r} is already used in that vault by "
                    f"{used_prefixes[prefix_key]}; set the {TAG_PREFIX} tag to another prefix",
                )
            )
            continue
        seen_ids.add(target.state_key)
        used_prefixes[prefix_key] = resource_id
        targets.append(target)
    return Fleet(tuple(targets), tuple(rejected))


def _prefix_key(target: Target, default_vault_url: str) -> tuple[str, str]:
    vault = (target.vault_url or default_vault_url).rstrip("/").lower()
    return vault, target.secret_prefix.lower()


def _tag(tags: Mapping[str, str], name: str) -> str:
    for key, value in tags.items():
        if key.lower() == name.lower():
            return str(value).strip()
    return ""


def _duration_tag(tags: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    text = _tag(tags, name)
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ValueError(f"tag {name}: {error}") from None
