"""The operator CLI (``python -m rotation``): argument parsing, progress and tables over the engine's
service, built by the composition root. Presentation only — it lives outside the pure domain."""
