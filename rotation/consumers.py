"""Declared consumers of a target's key and the drain computed from them (docs/ENGINE.md "Consumers").

A consumer is whatever reads ``P-active``: an App Service / Functions app through a Key Vault reference,
a Container App secret reference, an API Management named value, a Kubernetes secret sync, the project's
consumer library, or anything else with a known refresh bound. The drain must outlast the slowest one's
refresh — or, where the platform can be told to refresh and shows what it resolved, the consumer is seen to
move (the acknowledged drain, ``rotation/steps/consumers.py``).

Pure: no Azure SDK; parsing helpers raise ``ValueError`` with a message naming what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class ConsumerKind(StrEnum):
    APP_SERVICE = "appService"  # App Service / Functions / Logic Apps Standard Key Vault references
    CONTAINER_APP = "containerApp"  # Container Apps Key Vault secret references
    API_MANAGEMENT = "apiManagement"  # API Management Key Vault named value
    KUBERNETES = "kubernetes"  # AKS Secrets Store CSI driver, External Secrets Operator
    LIBRARY = "library"  # keyrotation_consumer (its TTL)
    OTHER = "other"


# Documented refresh intervals (docs/ENGINE.md "Consumers" cites each). Kinds without one here must declare
# ``refreshBound``: a CSI driver polls every 2 min only when rotation is enabled, ESO's refreshInterval is
# per ExternalSecret, a library's TTL is the application's choice.
DEFAULT_BOUNDS: dict[ConsumerKind, timedelta] = {
    ConsumerKind.APP_SERVICE: timedelta(hours=24),
    ConsumerKind.CONTAINER_APP: timedelta(minutes=30),
    ConsumerKind.API_MANAGEMENT: timedelta(hours=4),
}
# Kinds whose platform has a forced refresh and shows the secret version each consumer resolved.
SIGNAL_KINDS = frozenset({ConsumerKind.APP_SERVICE, ConsumerKind.API_MANAGEMENT})

_ARM_PREFIX = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
RESOURCE_PATTERNS: dict[ConsumerKind, tuple[re.Pattern[str], str]] = {
    ConsumerKind.APP_SERVICE: (
        re.compile(_ARM_PREFIX + r"Microsoft\.Web/sites/[^/]+(/slots/[^/]+)?$", re.IGNORECASE),
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{app}",
    ),
    ConsumerKind.API_MANAGEMENT: (
        re.compile(_ARM_PREFIX + r"Microsoft\.ApiManagement/service/[^/]+/namedValues/[^/]+$", re.IGNORECASE),
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{apim}"
        "/namedValues/{id}",
    ),
    ConsumerKind.CONTAINER_APP: (
        re.compile(_ARM_PREFIX + r"Microsoft\.App/containerApps/[^/]+$", re.IGNORECASE),
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App/containerApps/{app}",
    ),
}
_LABELS = {
    ConsumerKind.APP_SERVICE: "App Service app",
    ConsumerKind.CONTAINER_APP: "Container App",
    ConsumerKind.API_MANAGEMENT: "API Management named value",
    ConsumerKind.KUBERNETES: "Kubernetes secret sync",
    ConsumerKind.LIBRARY: "consumer library",
    ConsumerKind.OTHER: "consumer",
}
# With nothing declared the slowest documented platform cache is App Service's 24 h Key Vault reference
# refetch; a drain of exactly 24 h (the old default) would let an app that refetched just before the swap
# pick up the new key about when the old one dies. 6 h more covers a refetch that is late or fails once.
DEFAULT_DRAIN = timedelta(hours=30)
MIN_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Consumer:
    kind: ConsumerKind
    resource_id: str = ""
    refresh_bound: timedelta | None = None  # declared; else the kind's documented interval

    @property
    def bound(self) -> timedelta:
        return self.refresh_bound if self.refresh_bound is not None else DEFAULT_BOUNDS[self.kind]

    @property
    def has_signal(self) -> bool:
        """The platform can be told to refresh and shows which secret version this consumer resolved."""
        return self.kind in SIGNAL_KINDS and bool(self.resource_id)

    @property
    def key(self) -> str:
        """Stable id in the state (which consumers acknowledged) and history."""
        if self.resource_id:
            return self.resource_id.lower()
        return f"{self.kind.value}:{int(self.bound.total_seconds())}s"

    @property
    def label(self) -> str:
        """``API Management named value apim-x/openai-key`` — what the operator reads in status/history."""
        if not self.resource_id:
            return _LABELS[self.kind]
        parts = self.resource_id.rstrip("/").split("/")
        if self.kind is ConsumerKind.API_MANAGEMENT:
            return f"{_LABELS[self.kind]} {parts[-3]}/{parts[-1]}"
        if self.kind is ConsumerKind.APP_SERVICE and len(parts) > 2 and parts[-2].lower() == "slots":
            return f"{_LABELS[self.kind]} {parts[-3]}/{parts[-1]}"
        return f"{_LABELS[self.kind]} {parts[-1]}"


def margin(bound: timedelta) -> timedelta:
    """Slack after a consumer's bound: a refetch may land a little late (sweeps run every 15 min, platform
    timers drift). 10 min, or 1/24 of the bound for long bounds (1 h on a 24 h reference); a bound under
    20 min (a library TTL of seconds) gets half of itself."""
    return max(min(MIN_MARGIN, bound / 2), bound / 24)


def deadline_after_swap(consumer: Consumer) -> timedelta:
    """How long after the swap this consumer is certain to have refetched."""
    return consumer.bound + margin(consumer.bound)


def quiet_drain(consumers: Iterable[Consumer]) -> timedelta:
    """The drain the consumers without a signal need whatever the others report: an acknowledged drain never
    ends before it (zero when every consumer has a signal)."""
    return max((deadline_after_swap(c) for c in consumers if not c.has_signal), default=timedelta(0))


def parse_consumer(
    kind_text: object, resource_id: object, bound: timedelta | None, declared: Iterable[Consumer] = ()
) -> Consumer:
    """One declared consumer (after ``declared``); raises ValueError naming the field and what to put
    there, or that the consumer is declared twice."""
    kinds = ", ".join(k.value for k in ConsumerKind)
    try:
        kind = ConsumerKind(str(kind_text))
    except ValueError:
        raise ValueError(f"kind must be one of {kinds}, not {kind_text!r}") from None
    rid = "" if resource_id is None else resource_id
    if not isinstance(rid, str):
        raise ValueError(f"resourceId must be a string, not {rid!r}")
    rid = rid.strip().rstrip("/")
    if rid and kind in RESOURCE_PATTERNS and not RESOURCE_PATTERNS[kind][0].match(rid):
        raise ValueError(f"resourceId {rid!r} is not a {kind.value} id ({RESOURCE_PATTERNS[kind][1]})")
    if kind in SIGNAL_KINDS and not rid:
        raise ValueError(
            f"a {kind.value} consumer needs its resourceId ({RESOURCE_PATTERNS[kind][1]}): the service "
            "refreshes it after the swap and reads which secret version it resolved"
        )
    if bound is not None and bound <= timedelta(0):
        raise ValueError("refreshBound must be positive")
    if bound is None and kind not in DEFAULT_BOUNDS:
        raise ValueError(
            f"a {kind.value} consumer needs refreshBound (ISO 8601, e.g. PT1H): the longest time it may keep "
            "a key before reading it again (CSI driver poll interval, ESO refreshInterval, library TTL)"
        )
    consumer = Consumer(kind, rid, bound)
    if any(c.key == consumer.key for c in declared):
        raise ValueError(f"{consumer.label} is declared twice")
    return consumer


@dataclass(frozen=True)
class DrainPlan:
    """The drain a target's cycles use and the reason the operator is shown."""

    time: timedelta
    reason: str


def plan_drain(consumers: Iterable[Consumer], explicit: timedelta | None) -> DrainPlan:
    """Slowest declared consumer's bound + margin (never shorter than any library TTL, which is a bound
    too); an explicit ``drainTime`` is kept when longer. Nothing declared: ``drainTime`` or DEFAULT_DRAIN."""
    declared = tuple(consumers)
    if not declared:
        if explicit is not None:
            return DrainPlan(explicit, f"drain {short(explicit)}: drainTime setting, no consumers declared")
        return DrainPlan(
            DEFAULT_DRAIN,
            f"drain {short(DEFAULT_DRAIN)}: default, no consumers declared (App Service Key Vault reference "
            "24 h refetch + 6 h margin)",
        )
    slowest = max(declared, key=lambda c: c.bound)
    computed = deadline_after_swap(slowest)
    if explicit is not None and explicit > computed:
        return DrainPlan(
            explicit,
            f"drain {short(explicit)}: drainTime setting, longer than the slowest consumer "
            f"({slowest.label}, {short(slowest.bound)} bound)",
        )
    return DrainPlan(
        computed, f"drain {short(computed)}: {slowest.label}, {short(slowest.bound)} bound + margin"
    )


def short(delta: timedelta) -> str:
    """``4h10m``, ``30h``, ``40m``, ``5s``: how drains read in status and history."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
