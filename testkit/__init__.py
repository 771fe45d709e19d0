"""Test doubles shared by the tests, the demo and the benchmarks (never deployed: see ``.funcignore``).

- ``testkit.clock``: ``ManualClock``, the engine's clock under test control.
- ``testkit.watch``: ``watch(ports, *watchers)`` wraps the engine's ports to count calls, observe side
  effects and crash after the Nth one (``SimulatedCrash``).
- ``testkit.fakes``: in-memory fakes of the engine's ports, with invariant bookkeeping.
- ``testkit.secret_source``: an in-memory ``SecretSource`` for the consumer library's cache.

tests/contract runs the same cases against each fake and its real adapter (emulator/Azurite), so the
fakes cannot drift from Azure's behaviour. The demo and the benchmarks import from here, never from tests/.
"""
