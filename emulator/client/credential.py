"""The real ``ManagedIdentityCredential`` (App Service flavour) pointed at one emulator, for tests/tools."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

IDENTITY_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")
# Variables that would make azure-identity/MSAL pick another managed-identity flavour than App Service.
CONFLICTING_IDENTITY_VARIABLES = ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")

_identity_env_lock = threading.RLock()


@contextmanager
def _identity_environment(endpoint: str, header: str) -> Iterator[None]:
    """azure-identity and MSAL read IDENTITY_ENDPOINT/IDENTITY_HEADER from os.environ (at construction and
    at each token request), so set them for exactly that moment; the lock keeps concurrent credentials
    of different emulators from seeing each other's values."""
    with _identity_env_lock:
        names = IDENTITY_VARIABLES + CONFLICTING_IDENTITY_VARIABLES
        saved = {name: os.environ.get(name) for name in names}
        try:
            for name in CONFLICTING_IDENTITY_VARIABLES:
                os.environ.pop(name, None)
            os.environ["IDENTITY_ENDPOINT"] = endpoint
            os.environ["IDENTITY_HEADER"] = header
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class EmulatorManagedIdentityCredential:
    """The real ``ManagedIdentityCredential`` (App Service protocol) pointed at one emulator.

    Implements the azure-core TokenCredential/SupportsTokenInfo protocols by delegation.
    """

    def __init__(self, identity_endpoint: str, identity_header: str, ca_bundle: str, **kwargs: Any) -> None:
        from azure.identity import ManagedIdentityCredential

        self._endpoint = identity_endpoint
        self._header = identity_header
        with _identity_environment(identity_endpoint, identity_header):
            self._inner = ManagedIdentityCredential(connection_verify=ca_bundle, **kwargs)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        with _identity_environment(self._endpoint, self._header):
            return self._inner.get_token(*scopes, **kwargs)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        with _identity_environment(self._endpoint, self._header):
            return self._inner.get_token_info(*scopes, options=options)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> EmulatorManagedIdentityCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
