"""Shared pytest configuration."""

from __future__ import annotations

import importlib.util

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly (not fail) where CUDA is absent."""
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
