"""Azure adapters: one module per Azure service, each implementing ports of ``rotation/ports.py`` with the
Azure SDK and translating its errors through ``shared/azure/errors.py``."""
