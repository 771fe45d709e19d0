from __future__ import annotations

from rotation.model import Phase
from tests.engine.harness import make_engine


def test_adopt_and_full_cycle(emulator, azurite, monkeypatch) -> None:
    engine = make_engine(emulator, azurite, monkeypatch, target_options={"drainTime": "PT1H"})
    summary = engine.service.sweep()
    assert summary.failed == 0, summary.results
    engine.check_i1_i3()
    outcome = engine.service.request_rotation(engine.names[0], trigger="cli")
    assert outcome.status.value == "started", outcome
    assert engine.state().phase is Phase.DRAINING
    engine.check_i1_i3()
    engine.clock.advance(hours=1)
    engine.service.sweep()
    assert engine.state().phase is Phase.IDLE
    engine.check_i1_i3()
