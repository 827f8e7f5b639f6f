"""Explicit n-dimensional weights of the competing structures (docs/theory.md §10).

Each function returns ``(W_in, W_out, b)`` of a full model built from a construction, so that the
exact losses of :mod:`rugtheory.constructions.polytopes` and :mod:`rugtheory.constructions.paired_rug`
can be checked against a Monte Carlo of the model itself (:func:`rugtheory.twins.montecarlo.model_loss_monte_carlo`)
and compared with trained weights.
"""

from __future__ import annotations

import numpy as np

from rugtheory.constructions.polytopes import Construction
from rugtheory.theory.checks import check_int

__all__ = [
    "block_diagonal_weights",
    "construction_weights",
    "mixture_weights",
    "paired_rug_weights",
    "untied_pair_weights",
]

# --------------------------------------------------------------------------------------------------
# explicit weights and their Monte Carlo twin


def construction_weights(construction: Construction, n_groups: int, gain: float = 1.0,
                         bias: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-model weights of ``n_groups`` copies of a construction in orthogonal subspaces.

    Returns ``W_in`` (m x n), ``W_out`` (n x m), ``b`` (n,) with ``n = n_groups k``,
    ``m = n_groups dim``, ``W_out = gain W_in^T`` and ``b = bias``.
    """
    n_groups = check_int(n_groups, "n_groups", low=1)
    return mixture_weights([(construction, n_groups, gain, bias)])


def mixture_weights(parts: list[tuple[Construction | str, int, float, float]],
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-diagonal weights of a mixture of structures.

    ``parts`` lists ``(construction, n_groups, gain, bias)``; ``construction`` may also be the
    string ``"dropped"`` (``n_groups`` features with no hidden unit, output ``ReLU(bias)``) or
    ``"dedicated"`` (``n_groups`` features with one hidden unit each, ``W_ii = gain``).
    """
    blocks = []
    for spec, count, gain, bias in parts:
        count = check_int(count, "n_groups", low=0)
        if spec == "dropped":
            blocks.append((np.zeros((0, count)), np.zeros((count, 0)), np.full(count, float(bias))))
            continue
        if spec == "dedicated":
            eye = np.eye(count)
            blocks.append((eye, gain * eye, np.full(count, float(bias))))
            continue
        if not isinstance(spec, Construction):
            raise ValueError(f"construction must be a Construction, 'dropped' or 'dedicated', got {spec!r}")
        v = spec.vertices
        for _ in range(count):
            blocks.append((v, gain * v.T, np.full(spec.k, float(bias))))
    return block_diagonal_weights(blocks)


def block_diagonal_weights(
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model from independent blocks ``(W_in, W_out, b)`` in orthogonal subspaces: ``W_in`` and
    ``W_out`` block-diagonal, the biases concatenated (each block keeps its own features and hidden units)."""
    m = sum(bl[0].shape[0] for bl in blocks)
    n = sum(bl[0].shape[1] for bl in blocks)
    w_in, w_out, b = np.zeros((m, n)), np.zeros((n, m)), np.zeros(n)
    row = col = 0
    for wi, wo, bi in blocks:
        dm, dn = wi.shape
        w_in[row:row + dm, col:col + dn] = wi
        w_out[col:col + dn, row:row + dm] = wo
        b[col:col + dn] = bi
        row += dm
        col += dn
    return w_in, w_out, b


def paired_rug_weights(n_pairs: int, m: int, gain: float, bias: float, *, seed: int,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit weights of a rug of pairs: a Persian rug on ``n_pairs`` directions (power of two), doubled.

    ``W_in = [H_S, -H_S]`` (m x 2 n_pairs), ``W_out = gain [H_S^T; -H_S^T] / m``, ``b = bias``:
    ``W = gain [[R, -R], [-R, R]]`` with ``R`` the rug (unit diagonal), so feature ``j`` and
    ``j + n_pairs`` are antipodal partners.
    """
    from rugtheory.constructions.persian_rug import persian_rug

    rug = persian_rug(n_pairs, m, seed=seed)
    w_in = np.hstack([rug.W_in, -rug.W_in])
    w_out = gain * np.vstack([rug.W_out, -rug.W_out])
    return w_in, w_out, np.full(2 * n_pairs, float(bias))


def untied_pair_weights(n_pairs: int, t: float, gain: tuple[float, float], bias: tuple[float, float],
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit weights of ``n_pairs`` untied pairs (features ``2k, 2k+1`` share hidden unit ``k``)."""
    n_pairs = check_int(n_pairs, "n_pairs", low=1)
    w_in = np.zeros((n_pairs, 2 * n_pairs))
    w_out = np.zeros((2 * n_pairs, n_pairs))
    k = np.arange(n_pairs)
    w_in[k, 2 * k], w_in[k, 2 * k + 1] = 1.0, -t
    w_out[2 * k, k], w_out[2 * k + 1, k] = gain[0], -gain[1] / t
    b = np.tile([bias[0], bias[1]], n_pairs).astype(float)
    return w_in, w_out, b
