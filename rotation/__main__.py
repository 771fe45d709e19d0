"""``python -m rotation``: the one entry point of the domain package allowed to reach the composition
root (through the operator CLI); the layering contract in pyproject.toml exempts exactly this import."""

import sys

from operator_cli.main import main

sys.exit(main())
