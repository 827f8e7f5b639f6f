r"""Which structure did a model pick? Measures read off the weights (docs/theory.md §10).

Feature dimensionality (Elhage et al., arXiv:2209.10652, for tied weights
:math:`D_i = \|W_i\|^2 / \sum_j (\hat W_i\cdot W_j)^2` with :math:`W_i` the i-th column of the
embedding) is defined here for the untied model through the effective matrix
:math:`W = W_\mathrm{out}W_\mathrm{in}`:

.. math:: D_i^\mathrm{row} = \frac{W_{ii}^2}{\sum_j W_{ij}^2}, \qquad
          D_i^\mathrm{col} = \frac{W_{ii}^2}{\sum_j W_{ji}^2},

(0 for a zero row/column). With tied weights :math:`W_{ij} = W_i\cdot W_j` both reduce to the
paper's :math:`D_i`. Since the rows of W lie in the ``m``-dimensional row space of
:math:`W_\mathrm{in}` (projector P), :math:`D_i^\mathrm{row} \le P_{ii}` and
:math:`\sum_i D_i^\mathrm{row} \le m`; likewise for columns. The row version measures the
interference *into* feature i's output (what the loss sees) and is the primary one. Values:
dedicated 1, dropped 0, antipodal pair 1/2, simplex (k-1)/k, polygon 2/k, rug ``r``: a rug and a
polytope mixture with the same ``r`` have the same mean D but different distributions.

Negative partners: for learned features (``W_ii > learned_threshold``) the normalised coupling
:math:`\rho_{ij} = W_{ij}/\sqrt{W_{ii}W_{jj}}` is -1 for a tied antipodal partner and -1/(k-1)
inside a simplex, while a rug row has entries of size :math:`\sqrt{(1/r-1)/n}` of either sign. An
*untied* pair has :math:`\rho_{12} = -t\sqrt{g_1/g_2}`, :math:`\rho_{21} = -\sqrt{g_2/g_1}/t` (rank one),
so the pair strength used is the geometric mean :math:`\kappa_{ij} = \sqrt{\rho_{ij}\rho_{ji}}` over
pairs with both couplings negative (1 for any antipodal pair, tied or not). Features are linked when
:math:`\kappa_{ij}` exceeds ``partner_threshold``; the connected components are the clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from rugtheory.theory.checks import check_finite
from rugtheory.theory.display import with_compact_repr

__all__ = ["StructureMeasures", "feature_dimensionality", "structure_measures"]


def feature_dimensionality(w_in: np.ndarray, w_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column feature dimensionalities ``(D_row, D_col)`` of ``W = W_out W_in`` (see module)."""
    w_in = check_finite(w_in, "W_in")
    w_out = check_finite(w_out, "W_out")
    if w_in.ndim != 2 or w_out.ndim != 2 or w_out.shape != (w_in.shape[1], w_in.shape[0]):
        raise ValueError(f"W_in must be m x n and W_out n x m, got {w_in.shape} and {w_out.shape}")
    w = w_out @ w_in
    d2 = np.diag(w) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        row = np.where(d2 > 0, d2 / np.sum(w**2, axis=1), 0.0)
        col = np.where(d2 > 0, d2 / np.sum(w**2, axis=0), 0.0)
    return row, col


@with_compact_repr
@dataclass(frozen=True)
class StructureMeasures:
    """Per-model structure summary.

    Attributes
    ----------
    d_row, d_col : per-feature dimensionalities; ``sum_d_row <= m``.
    learned : bool mask, ``W_ii > learned_threshold``.
    strongest_partner : per learned feature, min_j rho_ij (NaN for unlearned features).
    partner_strengths : (n, 3) the three largest kappa_ij of each learned feature (NaN if unlearned).
    cluster_sizes : size of the negative-partner cluster of each learned feature (1 = no partner).
    fractions : share of all n features that are unlearned, dedicated (D_row > 0.9, no partner),
        in antipodal pairs (cluster of 2 with kappa > 0.7), in other clusters, or diffuse (learned,
        no strong partner, D_row <= 0.9: the rug-like case).
    """

    d_row: np.ndarray
    d_col: np.ndarray
    learned: np.ndarray
    strongest_partner: np.ndarray
    partner_strengths: np.ndarray
    cluster_sizes: np.ndarray
    fractions: dict[str, float]

    @property
    def sum_d_row(self) -> float:
        return float(np.sum(self.d_row))

    def cluster_histogram(self) -> dict[int, int]:
        """Number of learned features by the size of their cluster."""
        sizes, counts = np.unique(self.cluster_sizes[self.learned], return_counts=True)
        return {int(s): int(c) for s, c in zip(sizes, counts)}


def structure_measures(w_in: np.ndarray, w_out: np.ndarray, *, learned_threshold: float = 0.3,
                       partner_threshold: float = 0.3) -> StructureMeasures:
    """Feature dimensionalities and negative-partner clusters of a model (see module docstring).

    ``partner_threshold = 0.3`` sits well above the largest kappa of a Persian rug at the sizes
    studied (its entries are ``sqrt((1/r - 1)/n)``: 0.06 at n = 256, r = 0.5, 0.11 at r = 0.25, ~3x
    that at the extreme of n entries) and well below pairs (1) and triangles (0.5).
    """
    d_row, d_col = feature_dimensionality(w_in, w_out)
    w = np.asarray(w_out, float) @ np.asarray(w_in, float)
    diag = np.diag(w)
    learned = diag > learned_threshold
    n = w.shape[0]
    rho = np.full((n, n), np.nan)
    idx = np.flatnonzero(learned)
    if idx.size:
        sub = w[np.ix_(idx, idx)] / np.sqrt(np.outer(diag[idx], diag[idx]))
        np.fill_diagonal(sub, np.nan)
        rho[np.ix_(idx, idx)] = sub
    strongest = np.full(n, np.nan)
    if idx.size > 1:
        strongest[idx] = np.nanmin(rho[np.ix_(idx, idx)], axis=1)
    r0 = np.nan_to_num(rho, nan=0.0)
    both_negative = (r0 < 0) & (r0.T < 0)
    kappa = np.where(both_negative, np.sqrt(np.abs(r0 * r0.T)), 0.0)
    top = np.full((n, 3), np.nan)
    if idx.size > 3:
        top[idx] = -np.sort(-kappa[np.ix_(idx, idx)], axis=1)[:, :3]
    link = kappa > partner_threshold
    _, comp = connected_components(csr_matrix(link), directed=False)
    sizes = np.bincount(comp)[comp]
    sizes = np.where(learned, sizes, 0)
    pair = learned & (sizes == 2) & (np.max(kappa, axis=1) > 0.7)
    dedicated = learned & (sizes == 1) & (d_row > 0.9)
    diffuse = learned & (sizes == 1) & ~dedicated
    other = learned & ~pair & ~dedicated & ~diffuse
    fractions = {
        "unlearned": float(np.mean(~learned)),
        "dedicated": float(np.mean(dedicated)),
        "pairs": float(np.mean(pair)),
        "other clusters": float(np.mean(other)),
        "diffuse": float(np.mean(diffuse)),
    }
    return StructureMeasures(d_row, d_col, learned, strongest, top, sizes, fractions)
