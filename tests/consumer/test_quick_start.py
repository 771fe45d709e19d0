"""docs/CONSUMER.md's quick start runs as written (here against the emulator, as after `make local`), and a
missing optional extra says which command installs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .vault_rotation import VaultRotation

REPO = Path(__file__).resolve().parents[2]


def quick_start_code() -> str:
    text = (REPO / "docs" / "CONSUMER.md").read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the quick start"
    return match.group(1)


def test_the_quick_start_runs_as_written_against_the_emulator(emulator, tmp_path: Path) -> None:
    rotation = VaultRotation.create(emulator)
    try:
        script = tmp_path / "quick_start.py"
        script.write_text(quick_start_code())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))},
            **emulator.app_env,  # IDENTITY_ENDPOINT/HEADER (managed identity), the CA, KEY_VAULT_URL
            "SECRET_PREFIX": rotation.prefix,
            "ACCOUNT_ENDPOINT": emulator.dataplane_url(rotation.account),
            "PYTHONPATH": str(REPO),
        }
        result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                                timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "200"
    finally:
        rotation.close()


def test_httpx_auth_without_the_extra_names_the_command() -> None:
    code = (
        "import sys; sys.modules['anyio'] = None\n"  # as if only httpx were installed, not the extra
        "from keyrotation_consumer import MissingDependencyError, RotatingKey\n"
        "from testkit.secret_source import FakeSecretSource\n"
        "key = RotatingKey(FakeSecretSource(), prefix='p')\n"
        "try:\n    key.httpx_auth()\nexcept MissingDependencyError as error:\n"
        "    assert isinstance(error, ImportError); print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'pip install "keyrotation_consumer[httpx]"' in result.stdout and "anyio" in result.stdout
