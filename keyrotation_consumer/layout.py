"""The Key Vault layout of one target (docs/CONTRACTS.md) and the reads the cache performs on it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .active_key import SLOTS, ActiveKey
from .errors import KeyLayoutError
from .secret_source import SecretRecord, SecretSource

# Key Vault names are ^[0-9a-zA-Z-]{1,127}$; the longest suffix we append is "-active-key" (11).
_PREFIX_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,116}$")


class Layout(enum.Enum):
    """How the active key is found."""

    ACTIVE_SECRET = "active-secret"  # noqa: S105 - a mode name, not a secret
    """One read per refresh: ``P-active`` (the value) and its ``slot`` tag. The default."""
    POINTER = "pointer"
    """Two reads per refresh: the pointer ``P-active-key`` (``key1``/``key2``), then ``P-key1``/``P-key2``.
    For vaults populated without the ``P-active`` secret or its tags."""


@dataclass(frozen=True, slots=True)
class SecretNames:
    """Secret names for prefix ``P``: ``P-active``, ``P-active-key``, ``P-key1``, ``P-key2``."""

    prefix: str

    def __post_init__(self) -> None:
        if not _PREFIX_PATTERN.fullmatch(self.prefix):
            raise ValueError(f"invalid secret prefix {self.prefix!r}: expected 1-116 characters "
                             "of 0-9, a-z, A-Z and '-'")

    @property
    def active(self) -> str:
        return f"{self.prefix}-active"

    @property
    def pointer(self) -> str:
        return f"{self.prefix}-active-key"

    def slot(self, slot: str) -> str:
        return f"{self.prefix}-{slot}"


def read_active_key(source: SecretSource, names: SecretNames, layout: Layout) -> ActiveKey:
    """Read the key the vault currently designates as active (1 read, or 2 with ``POINTER``)."""
    if layout is Layout.POINTER:
        pointer = source.read_secret(names.pointer)
        return read_slot_key(source, names, parse_pointer(pointer))
    record = source.read_secret(names.active)
    return _as_key(record, _slot_tag(record))


def read_slot_key(source: SecretSource, names: SecretNames, slot: str) -> ActiveKey:
    """Read one slot secret (``P-key1``/``P-key2``)."""
    return _as_key(source.read_secret(names.slot(slot)), slot)


def parse_pointer(record: SecretRecord) -> str:
    slot = record.value.strip().lower()
    if slot not in SLOTS:
        # Never echo the bad value: someone may have stored a key in the pointer by mistake.
        raise KeyLayoutError(f"pointer secret {record.name!r} does not hold one of {SLOTS}")
    return slot


def _slot_tag(record: SecretRecord) -> str | None:
    slot = record.tags.get("slot", "").strip().lower()
    return slot if slot in SLOTS else None


def _as_key(record: SecretRecord, slot: str | None) -> ActiveKey:
    if not record.value:
        raise KeyLayoutError(f"secret {record.name!r} is empty")
    return ActiveKey(value=record.value, slot=slot, secret_name=record.name, version=record.version)
