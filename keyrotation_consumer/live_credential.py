"""An ``AzureKeyCredential`` that always answers the cache's current key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from azure.core.credentials import AzureKeyCredential

if TYPE_CHECKING:
    from .rotating_key import RotatingKey


class LiveAzureKeyCredential(AzureKeyCredential):
    """``.key`` reads :meth:`RotatingKey.get` on each access, so SDK clients need no ``update()`` calls.

    azure-core's ``AzureKeyCredentialPolicy`` reads ``credential.key`` on every request; the cache's warm
    path makes that cheap. ``update()`` is refused: the vault is the only source of truth.
    """

    def __init__(self, rotating_key: RotatingKey) -> None:
        rotating_key.get()  # fail now, not on the first request, when no key can be read
        # The base class stores a copy of the key; keep none, the property below is authoritative.
        super().__init__("")
        self._rotating_key = rotating_key

    @property
    def key(self) -> str:
        return self._rotating_key.get()

    def update(self, key: str) -> None:
        raise TypeError("this credential follows a RotatingKey and cannot be updated; "
                        "rotate the key in Key Vault instead")

    def __repr__(self) -> str:
        return f"LiveAzureKeyCredential({self._rotating_key!r})"
