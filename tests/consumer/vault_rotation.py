"""Drives the rotation protocol on the emulator with the real SDK clients, as the engine does.

Stands in for the engine in consumer tests so that they exercise exactly the Key Vault layout and the
order of writes of docs/CONTRACTS.md: regenerate the inactive slot, store it, write ``P-active`` then the
pointer ``P-active-key``, drain, regenerate the old slot, store it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

ARM_SLOT_NAMES = {"key1": "Key1", "key2": "Key2"}
RESOURCE_GROUP = "rg-consumer"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def other(slot: str) -> str:
    return "key2" if slot == "key1" else "key1"


@dataclass
class VaultRotation:
    secrets: Any  # azure.keyvault.secrets.SecretClient
    arm: Any  # azure.mgmt.cognitiveservices.CognitiveServicesManagementClient
    account: str
    prefix: str
    active: str = "key1"

    @classmethod
    def create(cls, emulator: Any, **secret_client_options: Any) -> VaultRotation:
        account = f"consumer{uuid.uuid4().hex[:10]}"
        resource_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
                       f"/providers/Microsoft.CognitiveServices/accounts/{account}")
        emulator.control.add_account(resource_id)
        rotation = cls(secrets=emulator.secret_client(**secret_client_options), arm=emulator.arm_client(),
                       account=account, prefix=account)
        rotation.seed()
        return rotation

    def service_keys(self) -> dict[str, str]:
        keys = self.arm.accounts.list_keys(RESOURCE_GROUP, self.account)
        return {"key1": keys.key1, "key2": keys.key2}

    def seed(self) -> None:
        keys = self.service_keys()
        for slot in ("key1", "key2"):
            self.secrets.set_secret(f"{self.prefix}-{slot}", keys[slot], tags={"slot": slot})
        self._swap_to(self.active, keys[self.active])

    def regenerate(self, slot: str) -> str:
        """Regenerate a slot at the service and store its new value in its slot secret."""
        self.arm.accounts.regenerate_key(RESOURCE_GROUP, self.account, ARM_SLOT_NAMES[slot])
        value = self.service_keys()[slot]
        self.secrets.set_secret(f"{self.prefix}-{slot}", value, tags={"slot": slot})
        return value

    def _swap_to(self, slot: str, value: str) -> None:
        self.secrets.set_secret(f"{self.prefix}-active", value, tags={"slot": slot})
        self.secrets.set_secret(f"{self.prefix}-active-key", slot)
        self.active = slot

    def rotate(self, drain_seconds: float) -> None:
        """One full cycle; ``drain_seconds`` = 0 is an emergency rotation (consumers learn by 401)."""
        old = self.active
        new_value = self.regenerate(other(old))
        self._swap_to(other(old), new_value)
        if drain_seconds:
            time.sleep(drain_seconds)  # test driver only; the engine stores drain_until instead
        self.regenerate(old)

    def close(self) -> None:
        self.secrets.close()
        self.arm.close()
