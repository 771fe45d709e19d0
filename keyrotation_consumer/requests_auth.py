"""``requests`` integration: set the key header, retry once on 401 after refreshing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

    from .active_key import ActiveKey
    from .rotating_key import RotatingKey


class RotatingKeyRequestsAuth(AuthBase):
    """``requests.get(url, auth=key.requests_auth())``; also ``session.auth = ...``.

    Each request carries the cached key in ``header`` (``api-key`` by default, or e.g.
    ``Ocp-Apim-Subscription-Key``). A 401 makes the cache re-read Key Vault (shared between threads)
    and the request is sent once more with the new key; a second 401 is returned to the caller.
    Bodies that cannot be replayed (generators) are not retried.
    """

    def __init__(self, rotating_key: RotatingKey, header: str) -> None:
        if not header:
            raise ValueError("header must be a non-empty header name")
        self._rotating_key = rotating_key
        self._header = header

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        used = self._rotating_key.current()
        request.headers[self._header] = used.value
        tell = getattr(request.body, "tell", None)
        body_position = tell() if tell is not None else None

        def retry_on_401(response: Response, **send_kwargs: Any) -> Response:
            return self._retry_on_401(response, used, body_position, send_kwargs)

        request.register_hook("response", retry_on_401)
        return request

    def _retry_on_401(self, response: Response, used: ActiveKey, body_position: int | None,
                      send_kwargs: dict[str, Any]) -> Response:
        if response.status_code != 401:
            return response
        body = response.request.body
        if body is not None and not isinstance(body, str | bytes):
            seek = getattr(body, "seek", None)
            if seek is None or body_position is None:
                return response
            seek(body_position)
        replacement = self._rotating_key.refresh_after_unauthorized(used)
        if replacement is None:
            return response
        # Drain and release the 401 so the retry can reuse the pooled connection.
        _ = response.content
        response.close()
        retry = response.request.copy()
        # Hooks are shared with the original by copy(); the adapter below does not dispatch them,
        # so the retry cannot loop back into this hook.
        jar = retry._cookies
        if jar is not None:
            extract_cookies_to_jar(jar, response.request, response.raw)
            retry.prepare_cookies(jar)
        retry.headers[self._header] = replacement.value
        retried = response.connection.send(retry, **send_kwargs)
        retried.history.append(response)
        retried.request = retry
        return retried

    def __repr__(self) -> str:
        return f"RotatingKeyRequestsAuth(header={self._header!r}, key={self._rotating_key!r})"
