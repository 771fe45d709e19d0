"""How the service's HTTP clients read their environment: once where they can, cheaply where they must.
(The settings side: no HTTP library is imported here, so loading settings stays light; the session that
applies it is ``shared/http_session.py``.)

``requests`` (under every azure-core transport here) re-reads the proxy variables, ``.netrc`` and the CA
bundle variables on *every* request while a session trusts the environment. The proxy lookup walks every
environment variable (``urllib.request.getproxies_environment``), so its cost grows with the environment:
in a Function (~100 variables, the target list among them) it was a tenth of the engine's CPU. So:

- proxies: decided once, when settings load. Without a proxy variable (``HTTPS_PROXY``, ``HTTP_PROXY``,
  ``ALL_PROXY``, any case) the sessions do not trust the environment (no proxy scan, no ``.netrc`` read).
  With one, they keep trusting it, so proxies and ``NO_PROXY`` work exactly as before (that operator pays
  the per-request cost);
- the CA bundle: what requests honours, ``REQUESTS_CA_BUNDLE`` then ``CURL_CA_BUNDLE``, looked up per
  request by name — two dictionary reads, the same cost with 10 or 1,000 variables — and passed to the TLS
  layer explicitly. Looking it up per request rather than once keeps what operators and the error
  messages rely on (shared/azure/errors.py names the variable when the file is missing or untrusted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


@dataclass(frozen=True)
class HttpEnvironment:
    use_proxy_settings: bool = False  # a proxy is configured: let requests read the environment


def read_http_environment(env: Mapping[str, str]) -> HttpEnvironment:
    configured = {name.lower() for name, value in env.items() if value and value.strip()}
    return HttpEnvironment(use_proxy_settings=any(name in configured for name in PROXY_VARIABLES))
