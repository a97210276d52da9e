"""Every runnable example works on a machine with no API keys (the offline provider)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
_VENDOR_VARS = ("OPENAI_", "ANTHROPIC_", "AZURE_", "OPENROUTER_", "LLM_", "PRIMARY_MODEL",
                "SECONDARY_MODEL")


def _offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_VENDOR_VARS)}


def test_there_are_examples() -> None:
    """The examples folder is not empty (so the parametrised test below means something)."""
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_offline(path: Path) -> None:
    """The example exits 0 on the offline mock provider and says so on stderr."""
    done = subprocess.run([sys.executable, str(path)], env=_offline_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "offline mock provider" in done.stderr
    assert done.stdout.strip()
