"""The set of targets the service knows now, with its lookups, refreshed from discovery.

Without discovery it is the explicit list, fixed for the life of the process. With discovery, every sweep
(and a lookup that misses, at most once per ``MIN_REFRESH_INTERVAL``) lists the accounts again: a newly
tagged account is adopted by the next sweep, an account deleted or untagged leaves the set (its state and
history stay; ``status`` shows it as gone). A listing that fails keeps the previous set — a partial list
would make accounts look deleted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotation.audit import error_text, logger
from rotation.discovery import DiscoveryTag, Fleet, Rejected, build_fleet
from rotation.errors import RotationError
from rotation.model import Target, table_key
from rotation.ports import AccountDirectory, Clock, utc_now

MIN_REFRESH_INTERVAL = timedelta(seconds=30)


@dataclass(frozen=True)
class DiscoverySettings:
    tag: DiscoveryTag
    vault_suffix: str = "vault.azure.net"  # where a vault named by tag lives (sovereign clouds differ)
    default_vault_url: str = ""


@dataclass(frozen=True)
class _Index:
    fleet: Fleet
    by_key: dict[str, Target]
    by_name: dict[str, Target]
    by_secret: dict[str, tuple[Target, ...]]  # secret name -> targets using it (in different vaults)


class TargetCatalog:
    def __init__(
        self,
        explicit: tuple[Target, ...],
        directory: AccountDirectory | None = None,
        discovery: DiscoverySettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.explicit = explicit
        self.directory = directory if discovery is not None else None
        self.discovery = discovery
        self.clock = clock
        self.last_error: str | None = None
        self._refreshed_at: datetime | None = None
        self._lock = threading.Lock()
        self._index = _index(Fleet(explicit))

    @property
    def discovering(self) -> bool:
        return self.directory is not None

    @property
    def targets(self) -> tuple[Target, ...]:
        return self._index.fleet.targets

    @property
    def rejected(self) -> tuple[Rejected, ...]:
        return self._index.fleet.rejected

    def refresh(self, force: bool = True) -> None:
        """List the accounts again (``force``), or only when the last listing is older than the minimum
        interval. Never raises: a failed listing is logged and the previous set kept."""
        if self.directory is None or self.discovery is None:
            return
        with self._lock:
            now = self.clock()
            if not force and self._refreshed_at and now - self._refreshed_at < MIN_REFRESH_INTERVAL:
                return
            self._refreshed_at = now
            try:
                accounts = self.directory.list_accounts()
            except RotationError as error:
                self.last_error = error_text(error)
                logger.warning("rotation.discovery_failed %s", self.last_error)
                return
            fleet = build_fleet(
                self.explicit,
                ((a.resource_id, a.tags) for a in accounts),
                self.discovery.tag,
                self.discovery.vault_suffix,
                self.discovery.default_vault_url,
            )
            self.last_error = None
            for rejected in fleet.rejected:
                logger.warning("rotation.discovery_rejected %s: %s", rejected.resource_id, rejected.reason)
            self._index = _index(fleet)

    def by_key(self, state_key: str) -> Target | None:
        return self._index.by_key.get(state_key)

    def find(self, text: str) -> Target | None:
        """A target by resource id or account name (names can repeat across resource groups: the first
        in the catalog's order answers; use the resource id to be exact)."""
        text = text.strip()
        index = self._index
        return index.by_key.get(table_key(text)) if text.startswith("/") else index.by_name.get(text.lower())

    def with_secret(self, secret_name: str) -> tuple[Target, ...]:
        """The targets (each in its own vault) that have a secret of this name."""
        return self._index.by_secret.get(secret_name.strip().lower(), ())


def _index(fleet: Fleet) -> _Index:
    by_name: dict[str, Target] = {}
    for target in fleet.targets:
        by_name.setdefault(target.account_name.lower(), target)
    by_secret: dict[str, tuple[Target, ...]] = {}
    for target in fleet.targets:
        for name in target.secret_names:
            by_secret[name.lower()] = (*by_secret.get(name.lower(), ()), target)
    return _Index(fleet, {t.state_key: t for t in fleet.targets}, by_name, by_secret)
