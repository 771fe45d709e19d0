"""Function keys as the Functions host checks them: a key in the ``x-functions-key`` header or the ``code``
query parameter. The host's default key opens every function-level function; the master key opens
everything; the ``eventgrid_extension`` system key opens the Event Grid webhook. Keys are generated per run
(they are printed and written to the git-ignored env file, never to the repository)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request


def _new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class HostKeys:
    function: str = field(default_factory=_new_key)  # the host key "default"
    master: str = field(default_factory=_new_key)
    eventgrid: str = field(default_factory=_new_key)  # system key "eventgrid_extension"

    def presented(self, request: Request) -> str:
        return request.headers.get("x-functions-key") or request.query_params.get("code") or ""

    def allows(self, request: Request, level: str) -> bool:
        """``level``: the binding's authLevel (ANONYMOUS, FUNCTION, ADMIN) or ``system`` for webhooks."""
        level = level.upper()
        if level == "ANONYMOUS":
            return True
        accepted = {
            "FUNCTION": (self.function, self.master),
            "ADMIN": (self.master,),
            "SYSTEM": (self.eventgrid, self.master),
        }.get(level, (self.master,))
        given = self.presented(request).encode()
        return any(hmac.compare_digest(given, key.encode()) for key in accepted)
