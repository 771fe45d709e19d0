"""Read rotating Azure AI services keys from Key Vault without ever failing a request.

``RotatingKey`` caches the active key (one Key Vault read per TTL per process) and refreshes at once
on a 401; ``requests_auth()``, ``httpx_auth()``, ``azure_policy()``, ``bind()`` and
``azure_key_credential()`` plug it into HTTP clients and Azure SDK clients. See docs/CONSUMER.md.
"""

from __future__ import annotations

from .active_key import SLOTS, ActiveKey, other_slot
from .azure_policy import RotatingKeyPolicy
from .errors import (
    KeyLayoutError,
    KeyRotationConsumerError,
    KeyUnavailableError,
    KeyVaultReadError,
    MissingDependencyError,
    SecretNotFoundError,
)
from .layout import Layout, SecretNames
from .live_credential import LiveAzureKeyCredential
from .requests_auth import RotatingKeyRequestsAuth
from .rotating_key import (
    DEFAULT_HEADER,
    DEFAULT_MAX_STALE,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_TTL,
    CacheStats,
    RotatingKey,
)
from .secret_source import KeyVaultSecretSource, SecretRecord, SecretSource

# RotatingKeyHttpxAuth is deliberately not imported here: httpx is an optional dependency.
# Import it from keyrotation_consumer.httpx_auth, or call RotatingKey.httpx_auth().

__all__ = [
    "DEFAULT_HEADER",
    "DEFAULT_MAX_STALE",
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TTL",
    "SLOTS",
    "ActiveKey",
    "CacheStats",
    "KeyLayoutError",
    "KeyRotationConsumerError",
    "KeyUnavailableError",
    "KeyVaultReadError",
    "KeyVaultSecretSource",
    "Layout",
    "LiveAzureKeyCredential",
    "MissingDependencyError",
    "RotatingKey",
    "RotatingKeyPolicy",
    "RotatingKeyRequestsAuth",
    "SecretNames",
    "SecretNotFoundError",
    "SecretRecord",
    "SecretSource",
    "other_slot",
]

__version__ = "0.1.0"
