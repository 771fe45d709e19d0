"""The consumer library reading what the real rotation engine writes (engine harness: real adapters,
emulator, Azurite): the contract between the two parts, under traffic, with zero failed requests."""

from __future__ import annotations

import time

from keyrotation_consumer import RotatingKey
from rotation.model import Phase, Slot
from tests.engine.harness import make_engine

from .test_consumer_emulator import requests_sender
from .traffic import Traffic


class EngineTarget:
    """Adapts the engine harness to what the traffic helpers need (account name, prefix)."""

    def __init__(self, engine) -> None:
        self.account = engine.names[0]
        self.prefix = engine.target().secret_prefix


def wait_for(traffic: Traffic, more: int) -> None:
    target = traffic.total() + more
    deadline = time.monotonic() + 20
    while traffic.total() < target:
        assert time.monotonic() < deadline, "traffic stalled"
        time.sleep(0.01)


def test_scheduled_cycles_of_the_engine_never_fail_a_request(emulator, azurite, monkeypatch):
    engine = make_engine(emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    engine.service.sweep()  # adoption writes the Key Vault layout
    secrets = emulator.secret_client()
    ttl = 0.25
    key = RotatingKey.from_secret_client(secrets, EngineTarget(engine).prefix, ttl=ttl)
    first_slot = key.current().slot

    with Traffic(requests_sender(emulator, EngineTarget(engine), key), 6) as traffic:
        for _ in range(2):
            wait_for(traffic, 10)
            engine.clock.advance(days=30)
            engine.service.sweep()  # regenerate inactive, store, verify, swap
            assert engine.state().phase is Phase.DRAINING
            time.sleep(4 * ttl)  # real time for the consumer's TTL; the engine's drain is on its clock
            engine.clock.advance(hours=1)
            engine.service.sweep()  # regenerate the old slot
            assert engine.state().phase is Phase.IDLE
        wait_for(traffic, 10)

    assert set(traffic.outcomes) == {"200"}, traffic.outcomes
    assert key.stats.unauthorized_refreshes == 0
    time.sleep(ttl)
    assert key.current().slot == first_slot  # two swaps later
    assert key.get() == engine.service_keys()[Slot(first_slot)]
    secrets.close()


def test_emergency_rotation_by_the_engine_is_absorbed_by_401_refresh(emulator, azurite, monkeypatch):
    engine = make_engine(emulator, azurite, monkeypatch)
    engine.service.sweep()
    secrets = emulator.secret_client()
    key = RotatingKey.from_secret_client(secrets, EngineTarget(engine).prefix, ttl=600)
    key.get()

    with Traffic(requests_sender(emulator, EngineTarget(engine), key), 6) as traffic:
        wait_for(traffic, 10)
        engine.service.request_rotation(engine.names[0], trigger="cli", emergency=True, reason="consumer")
        for _ in range(6):  # later invocations finish the cycle (no drain)
            if engine.state().phase is Phase.IDLE and engine.state().lease_owner is None:
                break
            engine.clock.advance(minutes=6)
            engine.service.sweep()
        assert engine.state().phase is Phase.IDLE
        wait_for(traffic, 20)

    assert set(traffic.outcomes) == {"200"}, traffic.outcomes
    assert key.stats.unauthorized_refreshes == 1
    active = engine.secret(engine.target().pointer_secret)
    assert key.get() == engine.service_keys()[Slot(active)]
    secrets.close()
