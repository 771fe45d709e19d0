"""Local Azure for the key rotation service: Key Vault secrets, ARM Cognitive Services accounts, their
data planes, the App Service managed-identity endpoint and an Event Grid topic, over HTTPS.

Start it with ``python -m emulator`` or in-process with :func:`emulator.server.run_in_thread`.
See docs/EMULATOR.md for every operation and its fidelity notes.
"""
