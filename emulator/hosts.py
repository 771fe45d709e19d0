"""One data-plane host name per account (``--account-hosts``), as Azure gives every account with a custom
subdomain its own DNS name (``https://{customSubDomainName}.cognitiveservices.azure.com/``).

The emulator still listens on 127.0.0.1 only: the names live under a reserved suffix (``.test``, RFC 2606 /
RFC 6761 — never a real DNS name), its certificate covers ``*.{suffix}``, and whoever wants to reach them
maps the suffix to 127.0.0.1 in its own process (``emulator/client/hosts.py``), standing in for DNS. This
middleware turns ``Host: {subdomain}.{suffix}`` into the path the path-based data plane already serves
(``/accounts/{subdomain}/...``), so both endpoint shapes share one implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

ACCOUNT_HOST_SUFFIX = "cognitiveservices.emulator.test"


def account_from_host(host: str, suffix: str = ACCOUNT_HOST_SUFFIX) -> str | None:
    """The subdomain of ``{subdomain}.{suffix}[:port]``; None for any other host (127.0.0.1, localhost)."""
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    tail = "." + suffix
    if not name.endswith(tail):
        return None
    subdomain = name[: -len(tail)]
    return subdomain if subdomain and "." not in subdomain else None


class AccountHostMiddleware:
    """Route requests addressed to an account's own host name to that account's data plane."""

    def __init__(self, app: Callable[..., Awaitable[None]], suffix: str = ACCOUNT_HOST_SUFFIX) -> None:
        self.app = app
        self.suffix = suffix

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            subdomain = account_from_host(host, self.suffix)
            if subdomain is not None:
                prefix = f"/accounts/{subdomain}"
                scope = {
                    **scope,
                    "path": prefix + scope["path"],
                    "raw_path": prefix.encode() + scope.get("raw_path", scope["path"].encode()),
                }
        await self.app(scope, receive, send)
