"""The value object handed to callers: one key value plus where it came from, never printable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

SLOTS: Final = ("key1", "key2")


def other_slot(slot: str) -> str:
    """The slot that is not ``slot`` (``key1`` <-> ``key2``)."""
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}; expected one of {SLOTS}")
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """A key value and its provenance.

    ``repr``/``str`` never show the value: this object ends up in debuggers, tracebacks and log
    lines, and a key value must never appear there (invariant I5).
    """

    value: str = field(repr=False)
    slot: str | None
    """``key1``/``key2`` when known (from the ``slot`` tag or the pointer), else ``None``."""
    secret_name: str
    """The Key Vault secret the value was read from, e.g. ``myaccount-active``."""
    version: str | None = None
    """The Key Vault version id of that secret, when the source reports one."""

    def __repr__(self) -> str:
        return (f"ActiveKey(slot={self.slot!r}, secret_name={self.secret_name!r}, "
                f"version={self.version!r}, value=<redacted>)")

    __str__ = __repr__
