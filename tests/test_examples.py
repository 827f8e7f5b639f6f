"""The scripts in examples/ run as a user would run them: ``python examples/<name>.py`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import requires_torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.training
@requires_torch
def test_own_model_example() -> None:
    """examples/test_own_model.py: trains four small models with plain torch and property-tests them (~30 s)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="error")
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "test_own_model.py")], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "all properties hold" in res.stdout
    assert res.stdout.count("held-out") == 4  # one line per hypothesis example
