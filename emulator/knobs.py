"""Test knobs that are not Azure state: call counters, injected latency and faults, ARM throttling."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

OPERATIONS = (
    "identity.token",
    "keyvault.set_secret",
    "keyvault.get_secret",
    "keyvault.update_secret_properties",
    "keyvault.list_secrets",
    "keyvault.list_secret_versions",
    "keyvault.delete_secret",
    "keyvault.get_deleted_secret",
    "keyvault.purge_deleted_secret",
    "keyvault.recover_deleted_secret",
    "arm.get_account",
    "arm.list_accounts",
    "arm.list_subscriptions",
    "arm.list_keys",
    "arm.regenerate_key",
    "dataplane.request",
    "eventgrid.publish",
    # emulated consumers (emulator/consumers.py)
    "web.list_kv_references",
    "web.get_kv_reference",
    "web.refresh_kv_references",
    "apim.get_named_value",
    "apim.refresh_secret",
)
FAULT_ACTIONS = ("status", "drop", "timeout")


class InvalidControl(ValueError):
    """A control-API request that cannot be applied; nothing was changed."""


@dataclass
class Fault:
    operation: str
    action: str
    status: int
    remaining: int
    retry_after: float | None
    timeout_seconds: float
    # "before": the operation does not run; "after": it runs and then its response is lost/replaced
    # (a regenerate that happened although the caller saw an error).
    when: str
    code: str | None
    # Only requests whose path ends with this (e.g. "/secrets/acct-active-key") take the fault; None: any.
    path_suffix: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Fault:
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise InvalidControl(f"operation must be one of {list(OPERATIONS)}, got {operation!r}")
        action = body.get("action", "status")
        if action not in FAULT_ACTIONS:
            raise InvalidControl(f"action must be one of {list(FAULT_ACTIONS)}, got {action!r}")
        status = body.get("status", 500 if action == "status" else 0)
        if action == "status" and (not isinstance(status, int) or not 400 <= status <= 599):
            raise InvalidControl(f"status must be an HTTP error status 400-599, got {status!r}")
        count = body.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise InvalidControl(f"count must be a positive integer, got {count!r}")
        retry_after = body.get("retryAfter")
        if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
            raise InvalidControl(f"retryAfter must be a non-negative number, got {retry_after!r}")
        timeout_seconds = body.get("timeoutSeconds", 30)
        if not isinstance(timeout_seconds, int | float) or not 0 <= timeout_seconds <= 600:
            raise InvalidControl(f"timeoutSeconds must be 0-600, got {timeout_seconds!r}")
        when = body.get("when", "before")
        if when not in ("before", "after"):
            raise InvalidControl(f"when must be 'before' or 'after', got {when!r}")
        code = body.get("code")
        if code is not None and not isinstance(code, str):
            raise InvalidControl("code must be a string")
        path_suffix = body.get("pathSuffix")
        if path_suffix is not None and (not isinstance(path_suffix, str) or not path_suffix):
            raise InvalidControl("pathSuffix must be a non-empty string")
        return cls(
            operation, action, int(status or 0), count, retry_after, float(timeout_seconds), when, code,
            path_suffix,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "action": self.action,
            "status": self.status or None,
            "count": self.remaining,
            "retryAfter": self.retry_after,
            "timeoutSeconds": self.timeout_seconds,
            "when": self.when,
            "code": self.code,
            # only when set: listings of faults without one keep their documented shape
            **({"pathSuffix": self.path_suffix} if self.path_suffix else {}),
        }


class TokenBucket:
    """ARM's per-subscription request budget: ``capacity`` tokens refilling at ``refill_per_second``."""

    def __init__(self, capacity: float, refill_per_second: float) -> None:
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self.tokens = capacity
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill_per_second)
        self.stamp = now

    def wait(self) -> int:
        """Whole seconds until one token is back (0 when there is one)."""
        if self.tokens >= 1:
            return 0
        wait = (1 - self.tokens) / self.refill_per_second if self.refill_per_second > 0 else 60
        return max(1, math.ceil(wait))


class SlidingWindow:
    """Key Vault's limits: at most ``limit`` transactions in any ``window`` seconds (emulated as a sliding
    window, the strictest reading of "maximum transactions allowed in 10 seconds")."""

    def __init__(self, limit: float, window: float) -> None:
        self.limit = limit
        self.window = window
        self.stamps: deque[float] = deque()

    def try_take(self) -> tuple[bool, int]:
        """(allowed, seconds until one more transaction would be allowed)."""
        now = time.monotonic()
        while self.stamps and self.stamps[0] <= now - self.window:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            self.stamps.append(now)
            return True, 0
        return False, max(1, math.ceil(self.stamps[0] + self.window - now))


@dataclass
class ThrottleLimits:
    # Azure Resource Manager, per region, subscription, principal and operation type (token buckets);
    # the global bucket across principals is GLOBAL_FACTOR times as large.
    read_capacity: float = 250
    read_refill_per_second: float = 25
    write_capacity: float = 200
    write_refill_per_second: float = 10
    # Key Vault, per vault: "Secret CREATE secret 300; all other transactions 4,000" per 10 seconds.
    vault_secret_writes: float = 300
    vault_other_transactions: float = 4000
    vault_window_seconds: float = 10
    arm_list_page_size: float = 100  # accounts per page of an ARM list (undocumented; nextLink pages)


GLOBAL_FACTOR = 15
_LIMIT_FIELDS = {
    "readCapacity": "read_capacity",
    "readRefillPerSecond": "read_refill_per_second",
    "writeCapacity": "write_capacity",
    "writeRefillPerSecond": "write_refill_per_second",
    "vaultSecretWrites": "vault_secret_writes",
    "vaultOtherTransactions": "vault_other_transactions",
    "vaultWindowSeconds": "vault_window_seconds",
    "armListPageSize": "arm_list_page_size",
}


@dataclass
class ThrottleVerdict:
    allowed: bool
    retry_after: int
    headers: dict[str, str] = field(default_factory=dict)


class Knobs:
    def __init__(self, latency_seconds: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.default_latency = latency_seconds
        self.latency: dict[str, float] = {}
        self.faults: list[Fault] = []
        self.limits = ThrottleLimits()
        self.buckets: dict[tuple[str, ...], TokenBucket] = {}
        self.windows: dict[tuple[str, str], SlidingWindow] = {}
        self.throttled: Counter[str] = Counter()  # 429s answered by the limits, per family (arm, keyvault)

    def reset(self) -> None:
        self.calls.clear()
        self.default_latency = 0.0
        self.latency.clear()
        self.faults.clear()
        self.limits = ThrottleLimits()
        self.buckets.clear()
        self.windows.clear()
        self.throttled.clear()

    def latency_for(self, operation: str) -> float:
        return self.latency.get(operation, self.default_latency)

    def set_latency(self, seconds: Any, operation: Any = None) -> None:
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            raise InvalidControl(f"seconds must be a number 0-600, got {seconds!r}")
        if operation is None:
            self.default_latency = float(seconds)
        elif operation in OPERATIONS:
            self.latency[operation] = float(seconds)
        else:
            raise InvalidControl(f"operation must be one of {list(OPERATIONS)}, got {operation!r}")

    def take_fault(self, operation: str, path: str = "") -> Fault | None:
        for fault in self.faults:
            if fault.operation == operation and (
                fault.path_suffix is None or path.rstrip("/").endswith(fault.path_suffix)
            ):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def limits_json(self) -> dict[str, float]:
        return {name: getattr(self.limits, attribute) for name, attribute in _LIMIT_FIELDS.items()}

    def set_limits(self, body: dict[str, Any]) -> None:
        fields = _LIMIT_FIELDS
        unknown = set(body) - set(fields)
        if unknown:
            raise InvalidControl(f"unknown throttling fields {sorted(unknown)}; allowed {sorted(fields)}")
        for key, value in body.items():
            if not isinstance(value, int | float) or value < 0:
                raise InvalidControl(f"{key} must be a non-negative number, got {value!r}")
        for key in ("vaultWindowSeconds", "armListPageSize"):
            if key in body and body[key] < 1:
                raise InvalidControl(f"{key} must be at least 1, got {body[key]!r}")
        for key, value in body.items():
            setattr(self.limits, fields[key], float(value))
        self.buckets.clear()
        self.windows.clear()

    def _bucket(self, key: tuple[str, ...], kind: str, factor: float) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            limits = self.limits
            if kind == "writes":
                bucket = TokenBucket(limits.write_capacity * factor, limits.write_refill_per_second * factor)
            else:
                bucket = TokenBucket(limits.read_capacity * factor, limits.read_refill_per_second * factor)
            self.buckets[key] = bucket
        return bucket

    def throttle(self, subscription_id: str, kind: str, principal: str = "") -> ThrottleVerdict:
        """ARM: a request spends a token of the (subscription, principal) bucket and of the subscription's
        global bucket (15x, across principals); either empty → 429."""
        sub = subscription_id.lower()
        own = self._bucket((sub, principal.lower(), kind), kind, 1)
        shared = self._bucket((sub, "*", kind), kind, GLOBAL_FACTOR)
        own.refill()
        shared.refill()
        allowed = own.tokens >= 1 and shared.tokens >= 1
        retry_after = 0
        if allowed:
            own.tokens -= 1
            shared.tokens -= 1
        else:
            retry_after = max(own.wait(), shared.wait())
            self.throttled["arm"] += 1
        headers = {
            f"x-ms-ratelimit-remaining-subscription-{kind}": str(int(own.tokens)),
            f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(int(shared.tokens)),
        }
        return ThrottleVerdict(allowed, retry_after, headers)

    def vault_throttle(self, vault: str, secret_write: bool) -> tuple[bool, int]:
        """Key Vault: secret writes and all other transactions each have their window per vault."""
        kind = "secret_writes" if secret_write else "other"
        key = (vault.lower(), kind)
        window = self.windows.get(key)
        if window is None:
            limit = self.limits.vault_secret_writes if secret_write else self.limits.vault_other_transactions
            window = SlidingWindow(limit, self.limits.vault_window_seconds)
            self.windows[key] = window
        allowed, retry_after = window.try_take()
        if not allowed:
            self.throttled["keyvault"] += 1
        return allowed, retry_after
