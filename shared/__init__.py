"""Adapters (Azure SDKs), settings and the composition root."""
