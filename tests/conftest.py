"""Shared pytest configuration.

Optional third-party packages: torch and safetensors (the ``[train]`` extra) and ray. Tests that
need them skip where they are absent (``pytest.importorskip`` / :data:`requires_torch`), but
``make test`` installs ``[all]`` and sets ``RUGTHEORY_REQUIRE_TRAIN=1``: there a missing torch or
safetensors is an error, not a silent skip of every training test. The package's own modules are
always imported plainly: a broken import must fail, never skip.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

# Deterministic property tests: derandomize (the examples depend on the test, not on a seed that
# changes per run) and no deadline (CI machines are slow and shared).
settings.register_profile(
    "rugtheory",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("rugtheory")


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


requires_cuda = pytest.mark.skipif(not _cuda_available(), reason="CUDA is not available")


_TRAIN_PACKAGES = ("torch", "safetensors")


def pytest_configure(config: pytest.Config) -> None:
    missing = [m for m in _TRAIN_PACKAGES if importlib.util.find_spec(m) is None]
    if missing and os.environ.get("RUGTHEORY_REQUIRE_TRAIN") == "1":
        raise pytest.UsageError(f"RUGTHEORY_REQUIRE_TRAIN=1 but {', '.join(missing)} not installed "
                                "(`make setup` installs them); the training tests would all skip")


def pytest_report_header(config: pytest.Config) -> str:
    have = {m: importlib.util.find_spec(m) is not None for m in (*_TRAIN_PACKAGES, "ray")}
    return "optional packages: " + ", ".join(f"{m} {'yes' if ok else 'NO (its tests skip)'}" for m, ok in have.items())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly (not fail) where CUDA is absent."""
    # torch is imported (about a second) only when some collected test needs CUDA
    if not any("gpu" in item.keywords for item in items) or _cuda_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
