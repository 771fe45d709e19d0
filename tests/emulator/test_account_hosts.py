"""``--account-hosts``: every account with a custom subdomain answers on its own host name
(``{subdomain}.cognitiveservices.emulator.test``), reached through 127.0.0.1 with the client-side resolver
override, over verified TLS; the engine's probe adapter opens one connection per account host."""

from __future__ import annotations

import socket
import ssl

import pytest
import requests

from emulator.client.hosts import account_hosts_on_loopback
from emulator.client.launcher import EmulatorProcess
from emulator.hosts import ACCOUNT_HOST_SUFFIX, account_from_host
from rotation.model import SecretValue
from rotation.ports import DataPlane, ProbeResult
from shared.azure.data_plane_probe import DataPlaneProbe
from tests.emulator.test_arm import SUBSCRIPTION, account_id

MODELS = "openai/models?api-version=2024-10-21"


@pytest.fixture(scope="module")
def hosts_emulator():
    with EmulatorProcess(extra_args=["--account-hosts"]) as emu, account_hosts_on_loopback():
        yield emu


def add(emu: EmulatorProcess, name: str, **fields: object) -> tuple[str, str, str]:
    emu.control.add_account(account_id(name), **fields)  # type: ignore[arg-type]
    arm = emu.arm_client(SUBSCRIPTION).accounts
    keys = arm.list_keys("rg-test", name)
    return str(arm.get("rg-test", name).properties.endpoint), keys.key1, keys.key2


def test_each_account_gets_its_own_host_under_the_reserved_suffix(hosts_emulator, unique_name):
    endpoint, _, _ = add(hosts_emulator, unique_name)
    port = hosts_emulator.base_url.rsplit(":", 1)[1]
    assert endpoint == f"https://{unique_name.lower()}.{ACCOUNT_HOST_SUFFIX}:{port}/"


def test_the_account_host_serves_its_data_plane_over_verified_tls(hosts_emulator, unique_name):
    endpoint, key1, _ = add(hosts_emulator, unique_name)
    ca = hosts_emulator.ca_bundle  # passed per request: it wins over REQUESTS_CA_BUNDLE
    accepted = requests.get(endpoint + MODELS, headers={"api-key": key1}, verify=ca, timeout=10)
    assert accepted.status_code == 200
    denied = requests.get(endpoint + MODELS, headers={"api-key": "0" * 32}, verify=ca, timeout=10)
    assert denied.status_code == 401
    # a path that is no API stays 404 whatever the key, as on the path-based endpoint
    missing = requests.get(endpoint + "nothing/here", headers={"api-key": key1}, verify=ca, timeout=10)
    assert missing.status_code == 404


def test_another_accounts_key_is_refused_on_this_host(hosts_emulator, unique_name):
    endpoint, _, _ = add(hosts_emulator, unique_name)
    _, other_key, _ = add(hosts_emulator, unique_name + "b")
    answer = requests.get(
        endpoint + MODELS, headers={"api-key": other_key}, verify=hosts_emulator.ca_bundle, timeout=10
    )
    assert answer.status_code == 401


def test_the_certificate_names_the_account_host(hosts_emulator, unique_name):
    endpoint, _, _ = add(hosts_emulator, unique_name)
    host = endpoint.split("//", 1)[1].split(":", 1)[0]
    port = int(hosts_emulator.base_url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=hosts_emulator.ca_bundle)  # hostname checking on
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host),
    ):
        pass  # the handshake itself is the assertion: a name outside the certificate raises here
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            context.wrap_socket(raw, server_hostname="other.example.test")


def test_the_probe_adapter_verifies_a_key_on_the_account_host(hosts_emulator, unique_name):
    endpoint, key1, _ = add(hosts_emulator, unique_name)
    session = requests.Session()
    session.trust_env, session.verify = False, hosts_emulator.ca_bundle  # as shared.bootstrap builds it
    probe = DataPlaneProbe(session)
    plane = DataPlane(endpoint=endpoint, kind="AIServices")
    assert probe.probe(plane, SecretValue(key1)) is ProbeResult.ACCEPTED
    assert probe.probe(plane, SecretValue("0" * 32)) is ProbeResult.REFUSED


def test_only_one_label_under_the_suffix_names_an_account() -> None:
    assert account_from_host(f"acct.{ACCOUNT_HOST_SUFFIX}:443") == "acct"
    assert account_from_host(f"a.b.{ACCOUNT_HOST_SUFFIX}") is None
    assert account_from_host("127.0.0.1:8443") is None
    assert account_from_host(ACCOUNT_HOST_SUFFIX) is None


def test_without_the_option_endpoints_stay_path_based(emulator, unique_name):
    endpoint, _, _ = add(emulator, unique_name)
    assert endpoint == f"{emulator.base_url}/accounts/{unique_name}/"
