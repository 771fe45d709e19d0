"""Per kind and endpoint shape: the request the probe makes, and its verdict for a live key, a revoked key,
a firewalled account and a keyless one — against the emulator: ``python -m bench.probe_verdicts``.

Uses the service's own adapters (ARM through azure-mgmt-cognitiveservices, the data-plane probe through
requests), so the table shows what the engine would decide. Prints a Markdown table (docs/ENGINE.md keeps
a copy); exits 1 if a revoked key was ever accepted or a live one refused. Never prints a key value.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import dataclass

import requests

from emulator.client.launcher import EmulatorProcess
from rotation.model import Slot
from rotation.ports import AccountInfo, DataPlane, ProbeResult, UnlimitedWrites
from shared.azure.cognitive_services import CognitiveServicesKeys
from shared.azure.data_plane_probe import DataPlaneProbe
from shared.azure.probe_table import endpoint_shape, probe_request

SUBSCRIPTION = "33333333-0000-0000-0000-000000000000"
GROUP = "rg-probe"


@dataclass(frozen=True)
class Case:
    kind: str
    custom_subdomain: bool
    location: str = "eastus"


CASES: tuple[Case, ...] = (
    *(
        Case(kind, custom)
        for kind in (
            "OpenAI", "AIServices", "CognitiveServices", "TextAnalytics", "SpeechServices", "ComputerVision",
            "FormRecognizer", "ContentSafety",
        )
        for custom in (True, False)
    ),
    Case("TextTranslation", True, "westeurope"),
    Case("TextTranslation", False, "westeurope"),
    Case("TextTranslation", False, "global"),
    Case("Face", True),  # a kind the table does not name: the issueToken fallback
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    case: Case
    shape: str
    request: str
    live: ProbeResult
    revoked: ProbeResult
    firewalled: ProbeResult
    keyless: ProbeResult

    def markdown(self) -> str:
        kind = self.case.kind + (f" ({self.case.location})" if self.case.kind == "TextTranslation" else "")
        verdicts = [self.live, self.revoked, self.firewalled, self.keyless]
        cells = [kind, self.shape, f"`{self.request}`", *verdicts]
        return "| " + " | ".join(str(cell) for cell in cells) + " |"


HEADER = (
    "| kind | endpoint shape | request made (key header, other headers) | live key | revoked key "
    "| firewalled account | disableLocalAuth |\n|---|---|---|---|---|---|---|"
)


def _resource_id(name: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.CognitiveServices"
        f"/accounts/{name}"
    )


def _plane(info: AccountInfo) -> DataPlane:
    assert info.endpoint, f"{info.resource_id} has no endpoint"
    return DataPlane(info.endpoint, info.kind, info.location, info.custom_subdomain)


def verdicts(
    emulator: EmulatorProcess, keys: CognitiveServicesKeys, probe: DataPlaneProbe, case: Case
) -> Row:
    """Seed two accounts of ``case`` (one behind a firewall), then probe them the way the engine does."""
    name = "probe" + uuid.uuid4().hex[:10]
    for suffix, action in (("", "Allow"), ("fw", "Deny")):
        emulator.control.add_account(
            _resource_id(name + suffix),
            case.kind,
            location=case.location,
            custom_subdomain=case.custom_subdomain,
            network_default_action=action,
        )
    info = keys.get_account(_resource_id(name))
    plane = _plane(info)
    before = keys.list_keys(info.resource_id)
    live = probe.probe(plane, before.key1)
    keys.regenerate_key(info.resource_id, Slot.KEY1)
    revoked = probe.probe(plane, before.key1)  # key1 was just regenerated: this value is dead
    firewalled_info = keys.get_account(_resource_id(name + "fw"))
    firewalled = probe.probe(_plane(firewalled_info), keys.list_keys(firewalled_info.resource_id).key1)
    current = keys.list_keys(info.resource_id).key1
    emulator.control.set_disable_local_auth(name, True)
    keyless = probe.probe(plane, current)
    shape = endpoint_shape(plane.kind, plane.custom_subdomain).value
    return Row(case, shape, probe_request(plane).describe(), live, revoked, firewalled, keyless)


def adapters(emulator: EmulatorProcess) -> tuple[CognitiveServicesKeys, DataPlaneProbe]:
    """The probe trusts the emulator's CA the way the service does: REQUESTS_CA_BUNDLE (set by the caller;
    requests lets that variable win over a session's ``verify``)."""
    session = requests.Session()
    arm = emulator.env["ARM_ENDPOINT"]
    keys = CognitiveServicesKeys(
        emulator.credential(), arm, f"{arm}/.default", UnlimitedWrites(),
        {"connection_verify": emulator.ca_bundle},
    )
    return keys, DataPlaneProbe(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    rows = []
    with EmulatorProcess() as emulator:
        os.environ["REQUESTS_CA_BUNDLE"] = emulator.ca_bundle
        keys, probe = adapters(emulator)
        rows = [verdicts(emulator, keys, probe, case) for case in CASES]
    print(HEADER)
    for row in rows:
        print(row.markdown())
    wrong = [r for r in rows if r.live is not ProbeResult.ACCEPTED or r.revoked is ProbeResult.ACCEPTED]
    print(f"\n{len(rows)} cases; live accepted and revoked never accepted: {'yes' if not wrong else 'NO'}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
