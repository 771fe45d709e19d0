"""Zero-downtime key rotation for Azure AI services accounts: the domain (no Azure SDK imports)."""
