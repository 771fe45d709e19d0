"""Contract of ``ConsumerRefresher``: the same cases against the fake (testkit.fakes.FakeConsumerPlatforms)
and against the ARM adapters (shared/azure/consumer_platforms.py) talking to the emulator's sites and named
values. The adapters against the emulator are the reference."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from rotation.consumers import Consumer, ConsumerKind
from rotation.errors import AzureRequestRejected
from rotation.model import SecretValue
from rotation.ports import ConsumerRefresher, SecretStore
from shared.azure.arm_rest import ArmRest
from shared.azure.consumer_platforms import ArmConsumerPlatforms
from shared.azure.key_vault import KeyVaultSecretStore
from testkit.clock import ManualClock
from testkit.fakes import T0, FakeConsumerPlatforms, FakeSecrets, World

SUB = "44444444-5555-6666-7777-888888888888"


@dataclass
class Platforms:
    name: str
    consumers: ConsumerRefresher
    secrets: SecretStore
    add: Callable[[Consumer, str], None]  # (consumer, secret name it references)
    set_stuck: Callable[[Consumer], None]
    advance: Callable[[float], None]


def _fake() -> Platforms:
    clock = ManualClock(T0)
    world = World(clock)
    fake = FakeConsumerPlatforms(world)
    return Platforms(
        "fake", fake, FakeSecrets(world),
        lambda consumer, secret: fake.add(consumer.resource_id, secret),
        lambda consumer: fake.stuck.add(consumer.resource_id.lower()),
        lambda seconds: clock.advance(seconds=seconds),
    )  # fmt: skip


def _real(emulator, monkeypatch) -> Iterator[Platforms]:
    emulator.apply_env(monkeypatch)
    arm = emulator.env["ARM_ENDPOINT"]
    advanced: list[float] = []

    def add(consumer: Consumer, secret: str) -> None:
        uri = f"{emulator.vault_url}secrets/{secret}"
        if consumer.kind is ConsumerKind.APP_SERVICE:
            emulator.control.add_site(consumer.resource_id, {"K": f"@Microsoft.KeyVault(SecretUri={uri})"})
        else:
            emulator.control.add_named_value(consumer.resource_id, uri)

    def advance(seconds: float) -> None:
        emulator.control.advance_clock(seconds)
        advanced.append(seconds)

    yield Platforms(
        "real",
        ArmConsumerPlatforms(ArmRest(emulator.credential(), arm, f"{arm}/.default")),
        KeyVaultSecretStore(emulator.secret_client()),
        add,
        lambda consumer: emulator.control.shape_consumer(consumer.resource_id, stuck=True),
        advance,
    )
    emulator.control.advance_clock(-sum(advanced))


@pytest.fixture(params=["fake", "real"])
def platforms(request, monkeypatch) -> Iterator[Platforms]:
    if request.param == "fake":
        yield _fake()
    else:
        yield from _real(request.getfixturevalue("emulator"), monkeypatch)


def site() -> Consumer:
    name = "app-" + uuid.uuid4().hex[:8]
    return Consumer(
        ConsumerKind.APP_SERVICE,
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/{name}",
    )


def named_value() -> Consumer:
    service = f"apim-{uuid.uuid4().hex[:6]}"
    rid = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{service}"
    return Consumer(ConsumerKind.API_MANAGEMENT, f"{rid}/namedValues/openai-key")


def write(platforms: Platforms, name: str, value: str) -> str:
    platforms.secrets.set_secret(name, SecretValue(value), {})
    stored = platforms.secrets.get_secret(name)
    assert stored is not None
    return stored.version


def test_a_site_shows_the_version_it_holds_until_refreshed(platforms: Platforms) -> None:
    name = "s" + uuid.uuid4().hex[:10]
    v1 = write(platforms, name, "one")
    consumer = site()
    platforms.add(consumer, name)
    (ref,) = platforms.consumers.observe(consumer).references
    assert (ref.secret_name, ref.resolved, ref.version) == (name, True, v1)
    v2 = write(platforms, name, "two")
    assert platforms.consumers.observe(consumer).references[0].version == v1
    platforms.consumers.refresh(consumer)
    assert platforms.consumers.observe(consumer).references[0].version == v2


def test_a_stuck_site_keeps_its_version_through_a_refresh(platforms: Platforms) -> None:
    name = "s" + uuid.uuid4().hex[:10]
    v1 = write(platforms, name, "one")
    consumer = site()
    platforms.add(consumer, name)
    platforms.set_stuck(consumer)
    write(platforms, name, "two")
    platforms.consumers.refresh(consumer)
    assert platforms.consumers.observe(consumer).references[0].version == v1


def test_a_named_value_reports_a_later_fetch_after_a_refresh(platforms: Platforms) -> None:
    name = "s" + uuid.uuid4().hex[:10]
    write(platforms, name, "one")
    consumer = named_value()
    platforms.add(consumer, name)
    before = platforms.consumers.observe(consumer)
    assert before.references[0].resolved and before.references[0].secret_name == name
    platforms.advance(60)
    platforms.consumers.refresh(consumer)
    after = platforms.consumers.observe(consumer)
    assert before.fetched_at is not None and after.fetched_at is not None
    assert after.fetched_at - before.fetched_at >= timedelta(seconds=59)


def test_an_unknown_consumer_is_rejected(platforms: Platforms) -> None:
    with pytest.raises(AzureRequestRejected, match="404"):
        platforms.consumers.observe(site())
    with pytest.raises(AzureRequestRejected, match="404"):
        platforms.consumers.refresh(named_value())
