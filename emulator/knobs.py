"""Test knobs that are not Azure state: call counters, injected latency and faults, ARM throttling."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
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
    "arm.list_keys",
    "arm.regenerate_key",
    "dataplane.request",
    "eventgrid.publish",
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

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill_per_second)
        self.stamp = now

    def try_take(self) -> tuple[bool, int, int]:
        """Return (allowed, remaining tokens, seconds until one token is back)."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True, int(self.tokens), 0
        wait = (1 - self.tokens) / self.refill_per_second if self.refill_per_second > 0 else 60
        return False, 0, max(1, math.ceil(wait))


@dataclass
class ThrottleLimits:
    read_capacity: float = 250
    read_refill_per_second: float = 25
    write_capacity: float = 200
    write_refill_per_second: float = 10


class Knobs:
    def __init__(self, latency_seconds: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.default_latency = latency_seconds
        self.latency: dict[str, float] = {}
        self.faults: list[Fault] = []
        self.limits = ThrottleLimits()
        self.buckets: dict[tuple[str, str], TokenBucket] = {}

    def reset(self) -> None:
        self.calls.clear()
        self.default_latency = 0.0
        self.latency.clear()
        self.faults.clear()
        self.limits = ThrottleLimits()
        self.buckets.clear()

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

    def set_limits(self, body: dict[str, Any]) -> None:
        fields = {
            "readCapacity": "read_capacity",
            "readRefillPerSecond": "read_refill_per_second",
            "writeCapacity": "write_capacity",
            "writeRefillPerSecond": "write_refill_per_second",
        }
        unknown = set(body) - set(fields)
        if unknown:
            raise InvalidControl(f"unknown throttling fields {sorted(unknown)}; allowed {sorted(fields)}")
        for key, value in body.items():
            if not isinstance(value, int | float) or value < 0:
                raise InvalidControl(f"{key} must be a non-negative number, got {value!r}")
        for key, value in body.items():
            setattr(self.limits, fields[key], float(value))
        self.buckets.clear()

    def throttle(self, subscription_id: str, kind: str) -> tuple[bool, int, int]:
        key = (subscription_id.lower(), kind)
        bucket = self.buckets.get(key)
        if bucket is None:
            if kind == "writes":
                bucket = TokenBucket(self.limits.write_capacity, self.limits.write_refill_per_second)
            else:
                bucket = TokenBucket(self.limits.read_capacity, self.limits.read_refill_per_second)
            self.buckets[key] = bucket
        return bucket.try_take()
