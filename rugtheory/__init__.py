"""rugtheory: theory engine for toy models of superposition (the Persian rug, arXiv:2410.12101).

Light on import: numpy and scipy only (no torch, sympy or matplotlib).
"""

from rugtheory.decoders import DecoderTable, decoder_table
from rugtheory.normal import mills_ratio, norm_cdf, norm_pdf, relu_gaussian_moments
from rugtheory.optimum import (
    SymmetricOptimum,
    affine_threshold,
    linear_loss,
    linear_loss_no_bias,
    optimal_symmetric_loss,
    zero_loss,
)
from rugtheory.persian_rug import PersianRug, RugScalars, persian_rug, theory_scalars
from rugtheory.finite_n import FiniteNLoss, exact_loss_from_factors, exact_loss_from_weights
from rugtheory.edgeworth import EdgeworthLoss, edgeworth_loss_from_weights
from rugtheory.phase_map import ExpectedStructure, PhaseMap, expected_structure
from rugtheory.symmetric import (
    DataMoments,
    data_moments,
    interference_scale,
    on_feature_error,
    relu_gaussian_mean,
    relu_gaussian_second_moment,
    symmetric_loss,
)
from rugtheory.weights import (
    WeightStatistics,
    effective_matrix,
    predicted_loss_from_weights,
    sample_interference,
    weight_statistics,
)

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
    "DecoderTable", "decoder_table",
    "PersianRug", "RugScalars", "persian_rug", "theory_scalars",
    "ExpectedStructure", "PhaseMap", "expected_structure",
    "FiniteNLoss", "exact_loss_from_factors", "exact_loss_from_weights", "EdgeworthLoss", "edgeworth_loss_from_weights",
]
