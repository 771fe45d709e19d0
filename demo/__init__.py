"""`make demo`: real rotations through the Function App's handlers against a local Azure (the emulator and
Azurite) while live consumers keep calling the data plane. See docs/DEMO.md.

The same scenario backs the end-to-end tests (tests/e2e), which assert on what the demo only reports.
"""
