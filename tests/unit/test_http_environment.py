"""Issue 17: the service's HTTP sessions read only the CA variables per request (by name), never scan the
environment for proxies or ``.netrc`` — unless a proxy is configured, when they behave as plain requests;
and the token wrapper asks the real credential once per scope."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessTokenInfo

from shared.azure.token_cache import AsyncSingleFlightCredential, SingleFlightCredential
from shared.bootstrap import HTTP_LOGGER, quiet_sdk_http_logging
from shared.http_session import LeanSession
from shared.http_settings import HttpEnvironment, read_http_environment

URL = "https://kv.vault.azure.net/secrets/x"


def test_a_proxy_in_any_case_makes_the_sessions_trust_the_environment() -> None:
    assert read_http_environment({"PATH": "/bin"}) == HttpEnvironment(use_proxy_settings=False)
    assert read_http_environment({"https_proxy": "http://proxy:3128"}).use_proxy_settings
    assert read_http_environment({"ALL_PROXY": "socks5://p:1080"}).use_proxy_settings
    assert not read_http_environment({"HTTPS_PROXY": "  "}).use_proxy_settings  # empty: not configured


def test_without_a_proxy_only_the_ca_bundle_is_read_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    session = LeanSession(HttpEnvironment())
    assert session.trust_env is False
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/first.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://set-after-start:3128")  # not configured at start: ignored
    merged = session.merge_environment_settings(URL, {}, None, None, None)
    assert merged["verify"] == "/etc/first.pem" and merged["proxies"] == {}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/rotated.pem")  # named again on the next request
    assert session.merge_environment_settings(URL, {}, None, True, None)["verify"] == "/etc/rotated.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl.pem")
    assert session.merge_environment_settings(URL, {}, None, None, None)["verify"] == "/etc/curl.pem"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert session.merge_environment_settings(URL, {}, None, None, None)["verify"] is True  # default store


def test_an_explicit_verify_is_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/env.pem")
    session = LeanSession(HttpEnvironment())
    assert (
        session.merge_environment_settings(URL, {}, None, "/etc/given.pem", None)["verify"]
        == "/etc/given.pem"
    )
    session.verify = "/etc/session.pem"
    assert session.merge_environment_settings(URL, {}, None, None, None)["verify"] == "/etc/session.pem"


def test_with_a_proxy_configured_proxies_and_no_proxy_work_as_in_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    session = LeanSession(read_http_environment({"HTTPS_PROXY": "http://proxy.corp:3128"}))
    assert session.trust_env is True
    assert session.merge_environment_settings(URL, {}, None, None, None)["proxies"]["https"] == (
        "http://proxy.corp:3128"
    )
    bypassed = session.merge_environment_settings("https://internal.example/x", {}, None, None, None)
    assert "https" not in bypassed["proxies"]


class CountingCredential:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], Any]] = []

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.calls.append((scopes, options))
        token = f"token-{len(self.calls)}"
        time.sleep(0.05)  # a token request takes a while: the other threads must wait, not fetch
        return AccessTokenInfo(token, int(time.time()) + 3600)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("get_token_info is preferred")


def test_sixteen_threads_starting_together_fetch_one_token_per_scope() -> None:
    inner = CountingCredential()
    credential = SingleFlightCredential(inner)  # type: ignore[arg-type]
    barrier = threading.Barrier(16)
    tokens: list[str] = []

    def first_call(index: int) -> None:
        barrier.wait()
        scope = "https://vault.azure.net/.default" if index % 2 else "https://management.azure.com/.default"
        tokens.append(credential.get_token_info(scope).token)

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(inner.calls) == 2 and len(set(tokens)) == 2  # one per scope, shared by 8 threads each
    assert credential.get_token("https://vault.azure.net/.default").token in tokens  # served from memory
    assert len(inner.calls) == 2


def test_a_tenant_or_claims_challenge_is_not_answered_from_another_tokens_cache() -> None:
    inner = CountingCredential()
    credential = SingleFlightCredential(inner)  # type: ignore[arg-type]
    scope = "https://vault.azure.net/.default"
    credential.get_token_info(scope)
    credential.get_token_info(scope, options={"tenant_id": "other-tenant"})
    credential.get_token_info(scope, options={"claims": '{"access_token":{}}'})
    credential.get_token_info(scope, options={"claims": '{"access_token":{}}'})
    assert len(inner.calls) == 4  # a new tenant is its own entry; claims always go to the credential


def test_the_async_clients_share_the_sync_clients_tokens_and_fetch_off_the_loop() -> None:
    """ROTATION_ASYNC_IO: the ``.aio`` clients' credential serves the same per-scope cache; 16 coroutines
    starting together still fetch one token per scope, on a worker thread (the loop keeps running)."""
    inner = CountingCredential()
    tokens = SingleFlightCredential(inner)  # type: ignore[arg-type]
    credential = AsyncSingleFlightCredential(tokens)
    vault, arm = "https://vault.azure.net/.default", "https://management.azure.com/.default"
    fetched_by_sync = tokens.get_token_info(vault).token
    order: list[str] = []

    async def ticker() -> None:  # ~20 ms of loop turns, all during the 50 ms fetch if it is off the loop
        for _ in range(20):
            await asyncio.sleep(0.001)
        order.append("ticked")

    async def fetches() -> list[str]:
        got = await asyncio.gather(*(credential.get_token_info(arm if i % 2 else vault) for i in range(16)))
        order.append("fetched")
        return [token.token for token in got]

    async def first_calls() -> list[str]:
        got, _ = await asyncio.gather(fetches(), ticker())
        return got

    got = asyncio.run(first_calls())
    assert len(inner.calls) == 2  # the vault scope came from the sync side's fetch; ARM fetched once
    assert set(got) == {fetched_by_sync, "token-2"}
    assert order == ["ticked", "fetched"]  # the loop kept turning while the token was fetched
    legacy = asyncio.run(credential.get_token(arm))
    assert legacy.token == "token-2" and len(inner.calls) == 2
    asyncio.run(credential.get_token(arm, claims='{"access_token":{}}'))  # a claims challenge: fetched
    assert len(inner.calls) == 3


def test_sdk_http_logging_is_quieted_unless_the_operator_set_it() -> None:
    http_logger = logging.getLogger(HTTP_LOGGER)
    saved = http_logger.level
    try:
        http_logger.setLevel(logging.NOTSET)
        quiet_sdk_http_logging()
        assert http_logger.level == logging.WARNING
        http_logger.setLevel(logging.INFO)  # the operator asked for the request lines
        quiet_sdk_http_logging()
        assert http_logger.level == logging.INFO
    finally:
        http_logger.setLevel(saved)


@pytest.mark.parametrize(
    ("proxies", "stream", "verify", "cert"),
    [
        ({}, None, None, None),
        (None, True, False, "/c.pem"),
        ({"https": "http://given:1", "http": None}, False, "/v.pem", ("/c", "/k")),
        ({"https": None}, None, True, None),
    ],
)
def test_without_a_proxy_the_merge_is_requests_own(
    monkeypatch: pytest.MonkeyPatch, proxies: Any, stream: Any, verify: Any, cert: Any
) -> None:
    """The shortcut past requests' generic merge gives what requests gives (no CA variable set)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    plain = requests.Session()
    plain.trust_env = False
    expected = plain.merge_environment_settings(URL, proxies, stream, verify, cert)
    assert (
        LeanSession(HttpEnvironment()).merge_environment_settings(URL, proxies, stream, verify, cert)
        == expected
    )
    with_proxy, plain.proxies = LeanSession(HttpEnvironment()), {"https": "http://session:3128"}
    with_proxy.proxies = dict(plain.proxies)  # proxies set on the session: requests' own merge
    expected = plain.merge_environment_settings(URL, proxies, stream, verify, cert)
    assert with_proxy.merge_environment_settings(URL, proxies, stream, verify, cert) == expected
