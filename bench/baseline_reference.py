"""The baseline: the seed material's reference rotation script ("Challenge 09", Tasks 1-2), rewritten
with the same real SDK clients the engine uses, so the benchmarks compare like with like.

Per account, one after another, in one process, with no persisted state, no lock, no verification:

- Task 1 (setup): get the account (endpoint), ``list_keys``, store ``P-key1``, ``P-key2``, ``P-endpoint``
  and the pointer ``P-active-key`` = ``key1``.
- Task 2 (rotation): read the pointer, ``regenerate_key(key_name=<the other slot>)``, store the new key
  from the response, point ``P-active-key`` at it, *wait*, ``regenerate_key`` the old slot (which the
  script never stores back in Key Vault).

The script's ``time.sleep(5)`` per account ("in production: wait for app cache TTL") is replaced by the
same drain handling the engine gets: phase 1 (everything up to the swap) runs for every account, then the
drain is waited once, then phase 2 (regenerate the old key) runs for every account. That is the most
favourable reading of the script; taken literally it would add 5 s x N of sleeping.
``regenerate_key(..., parameters={"keyName": ...})`` no longer exists in azure-mgmt-cognitiveservices
14.x; ``key_name=`` is the current form.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from azure.core.credentials import TokenCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

from rotation.model import parse_resource_id

SLOTS = ("key1", "key2")


@dataclass
class ReferenceTimings:
    setup_seconds: float
    phase1_seconds: float
    drain_seconds: float
    phase2_seconds: float
    accounts: int

    @property
    def cycle_seconds(self) -> float:
        """Phase 1 + phase 2 (the drain wait is the same for both sides and excluded)."""
        return self.phase1_seconds + self.phase2_seconds


class ReferenceRotation:
    """Tasks 1-2 of the reference script for one vault and any number of accounts."""

    def __init__(
        self,
        vault_url: str,
        arm_endpoint: str,
        credential: TokenCredential,
        verify_challenge_resource: bool = True,
    ) -> None:
        self.arm_endpoint = arm_endpoint.rstrip("/")
        self.credential = credential
        self.secrets = SecretClient(
            vault_url, credential, verify_challenge_resource=verify_challenge_resource
        )
        self._arm: dict[str, CognitiveServicesManagementClient] = {}

    def arm(self, subscription: str) -> CognitiveServicesManagementClient:
        client = self._arm.get(subscription)
        if client is None:
            client = CognitiveServicesManagementClient(
                self.credential,
                subscription,
                base_url=self.arm_endpoint,
                credential_scopes=[f"{self.arm_endpoint}/.default"],
            )
            self._arm[subscription] = client
        return client

    def store_keys(self, resource_id: str) -> None:
        """Task 1: list the keys and store them (plus the endpoint and the pointer) in Key Vault."""
        sub, group, name = parse_resource_id(resource_id)
        accounts = self.arm(sub).accounts
        properties = accounts.get(group, name).properties
        endpoint = (properties.endpoint if properties else None) or ""
        keys = accounts.list_keys(group, name)
        self.secrets.set_secret(f"{name}-key1", keys.key1 or "", tags={"service": name, "key": "1"})
        self.secrets.set_secret(f"{name}-key2", keys.key2 or "", tags={"service": name, "key": "2"})
        self.secrets.set_secret(f"{name}-endpoint", endpoint)
        self.secrets.set_secret(f"{name}-active-key", "key1")

    def swap(self, resource_id: str) -> str:
        """Task 2 up to its sleep: regenerate the inactive key, store it, point at it. Returns the old one."""
        sub, group, name = parse_resource_id(resource_id)
        active = self.secrets.get_secret(f"{name}-active-key").value or "key1"
        new = SLOTS[1] if active == SLOTS[0] else SLOTS[0]
        keys = self.arm(sub).accounts.regenerate_key(group, name, key_name=new.capitalize())
        value = keys.key1 if new == "key1" else keys.key2
        self.secrets.set_secret(f"{name}-{new}", value or "", tags={"service": name, "key": new[-1]})
        self.secrets.set_secret(f"{name}-active-key", new)
        return active

    def retire(self, resource_id: str, old: str) -> None:
        """Task 2 after its sleep: regenerate the old key (not stored back, as in the script)."""
        sub, group, name = parse_resource_id(resource_id)
        self.arm(sub).accounts.regenerate_key(group, name, key_name=old.capitalize())

    def close(self) -> None:
        self.secrets.close()
        for client in self._arm.values():
            client.close()


def run_reference(
    rotation: ReferenceRotation, resource_ids: Sequence[str], drain_seconds: float
) -> ReferenceTimings:
    """Setup, phase 1 for every account, one drain, phase 2 for every account — sequentially."""
    started = time.perf_counter()
    for resource_id in resource_ids:
        rotation.store_keys(resource_id)
    setup = time.perf_counter() - started

    started = time.perf_counter()
    old_slots = [rotation.swap(resource_id) for resource_id in resource_ids]
    phase1 = time.perf_counter() - started

    started = time.perf_counter()
    time.sleep(drain_seconds)
    drain = time.perf_counter() - started

    started = time.perf_counter()
    for resource_id, old in zip(resource_ids, old_slots, strict=True):
        rotation.retire(resource_id, old)
    phase2 = time.perf_counter() - started
    return ReferenceTimings(setup, phase1, drain, phase2, len(resource_ids))
