"""Thin trigger logic for function_app.py: parse what a trigger delivers, call the engine, map errors.

Nothing here imports an Azure SDK at module level, so `import function_app` stays fast; the engine's
service is built on first use (`triggers.runtime`).
"""
