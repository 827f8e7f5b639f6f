"""rugtheory: theory engine for toy models of superposition (the Persian rug, arXiv:2410.12101).

Light on import: numpy and scipy only (no torch, sympy or matplotlib). The symmetric theory is
imported eagerly; the larger layers (decoders, Persian rug, finite-n, phase map) load on first
use of one of their names, so that ``rugtheory predict`` starts fast. Every public name is in
``__all__`` either way.
"""

from __future__ import annotations

import importlib
from typing import Any

from rugtheory.theory.normal import mills_ratio, norm_cdf, norm_pdf, relu_gaussian_moments
from rugtheory.theory.optimum import (
    SymmetricOptimum,
    affine_threshold,
    linear_loss,
    linear_loss_no_bias,
    optimal_symmetric_loss,
    zero_loss,
)
from rugtheory.theory.symmetric import (
    DataMoments,
    data_moments,
    interference_scale,
    on_feature_error,
    relu_gaussian_mean,
    relu_gaussian_second_moment,
    symmetric_loss,
)
from rugtheory.theory.weights import (
    WeightStatistics,
    effective_matrix,
    predicted_loss_from_weights,
    sample_interference,
    weight_statistics,
)

#: Public names loaded lazily: name -> defining module.
_LAZY: dict[str, str] = {
    "DecoderTable": "rugtheory.theory.decoders",
    "decoder_table": "rugtheory.theory.decoders",
    "PersianRug": "rugtheory.constructions.persian_rug",
    "RugScalars": "rugtheory.constructions.persian_rug",
    "persian_rug": "rugtheory.constructions.persian_rug",
    "theory_scalars": "rugtheory.constructions.persian_rug",
    "FiniteNLoss": "rugtheory.theory.finite_n",
    "AccuracyWarning": "rugtheory.theory.checks",
    "exact_loss_from_factors": "rugtheory.theory.finite_n",
    "exact_loss_from_weights": "rugtheory.theory.finite_n",
    "EdgeworthLoss": "rugtheory.theory.edgeworth",
    "edgeworth_loss_from_weights": "rugtheory.theory.edgeworth",
    "ExpectedStructure": "rugtheory.constructions.phase_map",
    "PhaseMap": "rugtheory.constructions.phase_map",
    "expected_structure": "rugtheory.constructions.phase_map",
    "FiniteNPrediction": "rugtheory.constructions.finite_n_predictions",
    "FiniteNPredictions": "rugtheory.constructions.finite_n_predictions",
    "finite_n_predictions": "rugtheory.constructions.finite_n_predictions",
    "sample_sparse_uniform": "rugtheory.theory.data",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rugtheory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "DataMoments",
    "SymmetricOptimum",
    "WeightStatistics",
    "affine_threshold",
    "data_moments",
    "effective_matrix",
    "interference_scale",
    "linear_loss",
    "linear_loss_no_bias",
    "mills_ratio",
    "norm_cdf",
    "norm_pdf",
    "on_feature_error",
    "optimal_symmetric_loss",
    "predicted_loss_from_weights",
    "relu_gaussian_mean",
    "relu_gaussian_moments",
    "relu_gaussian_second_moment",
    "sample_interference",
    "symmetric_loss",
    "weight_statistics",
    "zero_loss",
    "DecoderTable",
    "decoder_table",
    "PersianRug",
    "RugScalars",
    "persian_rug",
    "theory_scalars",
    "ExpectedStructure",
    "PhaseMap",
    "expected_structure",
    "AccuracyWarning",
    "FiniteNLoss",
    "exact_loss_from_factors",
    "exact_loss_from_weights",
    "EdgeworthLoss",
    "edgeworth_loss_from_weights",
    "FiniteNPrediction",
    "FiniteNPredictions",
    "finite_n_predictions",
    "sample_sparse_uniform",
]
