"""How the service's HTTP clients reach Azure, read once from the environment when settings load.

``requests`` (under every azure-core transport here) re-reads proxy variables, ``.netrc`` and the CA
bundle variables from ``os.environ`` on *every* request while a session trusts the environment; in a
Function (~100 variables, the target list among them) that was a tenth of the engine's CPU. So the
sessions stop trusting the environment and get what it said once, explicitly:

- the CA bundle: ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``), exactly the variables requests honours —
  passed as ``connection_verify``; unset: the default trust store (certifi), as before;
- proxies: when any proxy variable (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, any case) is set, the
  sessions keep trusting the environment so proxies and ``NO_PROXY`` work exactly as they did (that
  operator pays the per-request cost); without one there is nothing to read per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


@dataclass(frozen=True)
class HttpEnvironment:
    ca_bundle: str | None = None  # a file or directory of CA certificates; None: the default store
    use_proxy_settings: bool = False  # a proxy is configured: let requests read the environment

    @property
    def verify(self) -> str | bool:
        """``connection_verify`` / ``Session.verify``: never False (TLS is always verified)."""
        return self.ca_bundle or True


def read_http_environment(env: Mapping[str, str]) -> HttpEnvironment:
    lowered = {name.lower(): value for name, value in env.items() if value and value.strip()}
    ca_bundle = lowered.get("requests_ca_bundle") or lowered.get("curl_ca_bundle")
    return HttpEnvironment(
        ca_bundle=ca_bundle.strip() if ca_bundle else None,
        use_proxy_settings=any(name in lowered for name in PROXY_VARIABLES),
    )
