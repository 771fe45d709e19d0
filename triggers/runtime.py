"""The engine's service, built on first use and cached for the life of the worker process.

Why not at import: the Functions host imports function_app.py to index the functions; a settings error
raised there would make the host index no function at all (timer silent, admin API gone) with one host
log line. Instead the first invocation loads and validates the settings
(`shared.settings.load_settings`), and every invocation on a misconfigured app fails with a
`rotation.settings_invalid` record naming the setting (the admin API answers 503 with the same message).
Importing the SDK-heavy composition root lazily also keeps `import function_app` fast.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from triggers import records

if TYPE_CHECKING:
    from rotation.service import RotationService
    from shared.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    service: RotationService


_lock = threading.Lock()
_runtime: Runtime | None = None


def current() -> Runtime:
    """Settings and service for this process; raises `rotation.errors.SettingsError` naming the setting."""
    global _runtime
    cached = _runtime
    if cached is not None:
        return cached
    with _lock:  # the worker may run sync functions on several threads; build once
        if _runtime is None:
            _runtime = _build()
        return _runtime


def validate_at_load(environ: Mapping[str, str] = os.environ) -> None:
    """Check the settings when the host loads (indexes) the app, so a misconfiguration is reported at
    deployment, naming the setting, not only at the first invocation. It logs instead of raising: the
    functions still index, the admin API answers 503 with the same message, and every invocation fails
    loudly until the setting is fixed. Costs ~50 ms of import that the first invocation would pay anyway;
    no Azure SDK is imported here."""
    from rotation.errors import SettingsError
    from shared.settings import load_settings

    try:
        load_settings(environ)
    except SettingsError as error:
        records.emit("rotation.settings_invalid", logging.CRITICAL, error=str(error), when="load")


def _build() -> Runtime:
    from rotation.errors import SettingsError
    from shared.bootstrap import build_service
    from shared.settings import load_settings

    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        records.emit("rotation.settings_invalid", logging.CRITICAL, error=str(error))
        raise
    return Runtime(settings=settings, service=build_service(settings))


def reset() -> None:
    """Forget the cached service (tests switch settings between modules; a real process never does)."""
    global _runtime
    with _lock:
        _runtime = None


def install(runtime: Any) -> None:
    """Use an already-built runtime (tests that build the service themselves)."""
    global _runtime
    with _lock:
        _runtime = runtime
