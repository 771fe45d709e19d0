"""Smoke-test a local Azure emulator with nothing but the Azure SDKs.

    python -m emulator --account /subscriptions/.../accounts/NAME --env-file .local/emulator.env &
    python examples/sdk_smoke.py .local/emulator.env

Reads the env file the emulator wrote, then: reads the account, lists and regenerates its keys, stores both
keys in Key Vault and reads them back, and shows that the data plane rejects the revoked key at once.
Prints what it did, never a key value.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from azure.core import PipelineClient
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient


def load_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def parse_account_id(resource_id: str) -> tuple[str, str, str]:
    parts = resource_id.strip("/").split("/")
    return parts[1], parts[3], parts[7]


def probe(endpoint: str, key: str, ca_bundle: str) -> int:
    """POST the documented key check ``{endpoint}sts/v1.0/issueToken`` with the key (200 = accepted).

    The endpoint's root is no API: the gateway answers 404 there whatever the key."""
    url = endpoint.rstrip("/") + "/sts/v1.0/issueToken"
    client = PipelineClient(endpoint, policies=[RetryPolicy(retry_total=0)], connection_verify=ca_bundle)
    with client:
        request = HttpRequest("POST", url, headers={"Ocp-Apim-Subscription-Key": key}, content=b"")
        return client.send_request(request).status_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_file", type=Path)
    parser.add_argument("--account", help="resource id (default: the first account the emulator seeded)")
    args = parser.parse_args(argv)
    env = load_env_file(args.env_file)
    # The managed-identity credential reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the environment, as on
    # App Service; the CA bundle makes every SDK trust the emulator's certificate.
    os.environ.update(env)
    ca_bundle = env["REQUESTS_CA_BUNDLE"]
    credential = ManagedIdentityCredential(connection_verify=ca_bundle)

    arm_endpoint = env["ARM_ENDPOINT"]
    resource_id = (
        args.account
        or env.get("SMOKE_ACCOUNT_ID")
        or env.get("EMULATOR_ACCOUNTS", "").split(",")[0]
    )
    if not resource_id:
        parser.error("no account: pass --account or start the emulator with --account")
    subscription, group, name = parse_account_id(resource_id)
    arm = CognitiveServicesManagementClient(
        credential,
        subscription,
        base_url=arm_endpoint,
        credential_scopes=[arm_endpoint + "/.default"],
        connection_verify=ca_bundle,
    )
    account = arm.accounts.get(group, name)
    endpoint = account.properties.endpoint
    print(
        f"account {account.name}: kind={account.kind} endpoint={endpoint} "
        f"disableLocalAuth={account.properties.disable_local_auth}"
    )

    before = arm.accounts.list_keys(group, name)
    print(f"listKeys: key1 and key2 present ({len(before.key1)} characters each)")
    after = arm.accounts.regenerate_key(group, name, "Key1")
    changed, unchanged = after.key1 != before.key1, after.key2 == before.key2
    print(f"regenerateKey Key1: key1 changed={changed}, key2 unchanged={unchanged}")

    vault = SecretClient(
        env["KEY_VAULT_URL"], credential, verify_challenge_resource=False, connection_verify=ca_bundle
    )
    vault.set_secret(f"{name}-key1", after.key1, tags={"slot": "key1"})
    vault.set_secret(f"{name}-key2", after.key2, tags={"slot": "key2"})
    stored = vault.get_secret(f"{name}-key1")
    print(
        f"Key Vault: {name}-key1 stored (version {stored.properties.version}), "
        f"matches listKeys={stored.value == after.key1}"
    )

    old_status = probe(endpoint, before.key1, ca_bundle)
    new_status = probe(endpoint, stored.value or "", ca_bundle)
    print(f"data plane: revoked key1 -> HTTP {old_status}, new key1 from Key Vault -> HTTP {new_status}")
    ok = old_status == 401 and new_status == 200 and stored.value == after.key1
    print("SMOKE OK" if ok else "SMOKE FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
