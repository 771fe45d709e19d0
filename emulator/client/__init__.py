"""The emulator's client side: code that runs in the test, demo or benchmark process, never in the server.

``launcher`` (``EmulatorProcess``), ``azurite`` (``AzuriteProcess``), ``control_client`` (the control
API's client), ``credential`` (a managed-identity credential for one emulator), ``child_process`` (stopping
a child process).
"""
