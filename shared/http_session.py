"""The requests session under every azure-core transport and the probe (why: ``shared/http_settings.py``)."""

from __future__ import annotations

import os
from typing import Any

import requests

from shared.http_settings import HttpEnvironment

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # requests' own order


def ca_bundle_from_environment() -> str | None:
    """The CA bundle the environment names, looked up per request as requests does; None when unset."""
    return next((os.environ[n] for n in CA_VARIABLES if os.environ.get(n)), None)


class LeanSession(requests.Session):
    """A session that reads only the CA variables per request, unless a proxy makes it trust the whole
    environment (then it is a plain ``requests.Session``)."""

    def __init__(self, http: HttpEnvironment) -> None:
        super().__init__()
        self.trust_env = http.use_proxy_settings

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if (verify is True or verify is None) and self.verify is True:
            verify = ca_bundle_from_environment() or verify
        if self.proxies:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        # requests' own merge (``merge_setting`` per value) for a session without proxies, without its
        # generic mapping checks: a tenth of the per-request CPU in requests (docs/BENCHMARKS.md §7)
        return {
            "proxies": {k: v for k, v in proxies.items() if v is not None} if proxies else {},
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }
