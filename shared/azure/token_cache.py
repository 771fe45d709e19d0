"""One token request per scope, however many sweep threads ask at once.

azure-identity's credentials cache tokens, but when 16 sweep threads make their first call together each
finds the cache empty and fetches its own token (13-25 token requests for 20 targets in a fresh process,
measured). This wrapper lets one thread per scope fetch while the others wait for its answer, and serves
the token from memory until five minutes before it expires (azure-core refreshes earlier still).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential

REFRESH_MARGIN_SECONDS = 300


def _token_options(
    claims: str | None = None, tenant_id: str | None = None, enable_cae: bool = False, **_: Any
) -> dict[str, Any]:
    """``get_token``'s keywords as ``get_token_info``'s options (the ones set)."""
    options = {"claims": claims, "tenant_id": tenant_id, "enable_cae": enable_cae}
    return {k: v for k, v in options.items() if v}


class SingleFlightCredential:
    """A ``TokenCredential`` (and ``SupportsTokenInfo``) over another one, fetching each scope once."""

    def __init__(self, inner: TokenCredential) -> None:
        self.inner = inner
        self._tokens: dict[tuple[str, ...], AccessTokenInfo] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._guard = threading.Lock()

    def _fresh(self, key: tuple[str, ...]) -> AccessTokenInfo | None:
        token = self._tokens.get(key)
        if token is not None and token.expires_on - REFRESH_MARGIN_SECONDS > time.time():
            return token
        return None

    @staticmethod
    def _key(scopes: tuple[str, ...], options: dict[str, Any]) -> tuple[str, ...]:
        return (*scopes, str(options.get("tenant_id") or ""), str(bool(options.get("enable_cae"))))

    def cached(self, *scopes: str, options: Any = None) -> AccessTokenInfo | None:
        """The token held in memory for these scopes, if still fresh (never fetches)."""
        options = dict(options or {})
        return None if options.get("claims") else self._fresh(self._key(scopes, options))

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        options = dict(options or {})
        if options.get("claims"):  # a claims challenge wants a new token: never served from here
            return self._fetch(scopes, options)
        key = self._key(scopes, options)
        token = self._fresh(key)
        if token is not None:
            return token
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # the first thread fetches; the others find its token when they get the lock
            token = self._fresh(key)
            if token is None:
                token = self._tokens[key] = self._fetch(scopes, options)
            return token

    def _fetch(self, scopes: tuple[str, ...], options: dict[str, Any]) -> AccessTokenInfo:
        if hasattr(self.inner, "get_token_info"):
            return self.inner.get_token_info(*scopes, options=options or None)
        legacy = self.inner.get_token(*scopes, **options)
        return AccessTokenInfo(legacy.token, legacy.expires_on)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        options = _token_options(claims=claims, tenant_id=tenant_id, enable_cae=enable_cae)
        token = self.get_token_info(*scopes, options=options)
        return AccessToken(token.token, token.expires_on)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class AsyncSingleFlightCredential:
    """The ``.aio`` clients' credential (``AsyncTokenCredential``) over the same ``SingleFlightCredential``
    the synchronous clients use: one token per scope for the whole process, whichever path asks. A fresh
    token is served from memory on the event loop; a fetch (rare: once per scope and hour) runs on a worker
    thread, so the loop never blocks on the identity endpoint."""

    def __init__(self, tokens: SingleFlightCredential) -> None:
        self.tokens = tokens

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token = self.tokens.cached(*scopes, options=options)
        if token is not None:
            return token
        return await asyncio.to_thread(self.tokens.get_token_info, *scopes, options=options)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The legacy interface (claims, tenant_id, enable_cae as keywords), served like the sync one."""
        token = await self.get_token_info(*scopes, options=_token_options(**kwargs))
        return AccessToken(token.token, token.expires_on)

    async def close(self) -> None:
        """The synchronous credential belongs to the composition root; it is not closed from here."""

    async def __aenter__(self) -> AsyncSingleFlightCredential:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
