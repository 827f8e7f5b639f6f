"""Validation harness: train real toy models in batches and test the theory against them.

Submodules (import them directly; this package imports nothing heavy at import time):

- :mod:`rugtheory.validation.train`    batched torch training (``TrainConfig``, ``TrainedModel``, ``train_models``)
- :mod:`rugtheory.validation.evaluate` per-model symmetry statistics and theory predictions
- :mod:`rugtheory.validation.store`    SQLite + safetensors + JSON results store (resumable)
- :mod:`rugtheory.validation.sweep`    sweep specs, the local and Ray backends
- :mod:`rugtheory.validation.figures`  the report figures and tables

``from validation import train_models`` works too: names resolve lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TrainConfig", "TrainedModel", "train_models"]

_LAZY = {
    "TrainConfig": "rugtheory.validation.train",
    "TrainedModel": "rugtheory.validation.train",
    "train_models": "rugtheory.validation.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'validation' has no attribute {name!r}")
