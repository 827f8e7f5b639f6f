r"""Enumeration twin of the exact finite-n loss (docs/theory.md §7): every subset of active features,
with exact repeated integration over their uniform values. An independent route for n ≤ 12, against
which :func:`rugtheory.theory.finite_n.exact_loss_from_weights` is tested.
"""

from __future__ import annotations

import math

import numpy as np

from rugtheory.theory.finite_n import check_weights
from rugtheory.theory.weights import row_parameters

__all__ = ["enumeration_loss_from_weights"]

_EPS = np.finfo(np.float64).eps


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _profile_relu_terms(a: float, c: float, p: float) -> list[tuple[float, float, int]]:
    """l(nu) - p/3 = sum coef * ReLU(nu + shift)^q, as (coef, shift, q); needs a != 0."""
    k3 = p * (1.0 / (3.0 * a) + 1.0 / (3.0 * a * a))
    return [(1.0 - p, c, 2), (k3, a + c, 3), (-k3, c, 3), (-p / a, a + c, 2)]


def enumeration_loss_from_weights(
    W: object, b: object, p: object, *, return_error: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Per-row exact loss by enumerating which features are on (independent route, n ≤ 12).

    For a set S of active features (probability :math:`p^{|S|}(1-p)^{n-1-|S|}`),
    :math:`\nu = \nu_0 + \sum_{j\in S}W_jU_j` and :math:`\ell - p/3` is a sum of ReLU powers
    (:math:`\ell = p/3 + (1-p)R(w)^2 + p[k_3(R(a+w)^3 - R(w)^3) - R(a+w)^2/a]`,
    :math:`k_3 = 1/(3a) + 1/(3a^2)`, w = c + ν), whose expectation over the uniforms is exact by
    repeated integration:

    .. math::
        E\,R\Big(y + \sum_{j\in S}W_jU_j\Big)^q = \frac{q!}{(q+k)!\prod_S W_j}
        \sum_{\epsilon\subseteq S}(-1)^{k-|\epsilon|}R\Big(y+\sum_{j\in\epsilon}W_j\Big)^{q+k}.

    Needs every :math:`W_{ii} \ne 0`; zero off-diagonal entries are dropped (they do not move ν).
    Cost :math:`3^{n-1}` per row. The alternating sum cancels (badly when many features are on
    or some :math:`|W_{ij}|` is small); with ``return_error=True`` it also returns a rounding bound
    per row, :math:`8\epsilon (q+k+1)\sum|\text{terms}|`.
    """
    W, b, p = check_weights(W, b, p)
    n = W.shape[0]
    if n > 12:
        raise ValueError(f"n must be <= 12 for enumeration, got {n}")
    rp = row_parameters(W, b, p)
    a_all, c_all, off_all = rp.a, rp.effective_bias, rp.off
    if np.any(a_all == 0):
        raise ValueError("W must have a nonzero diagonal for the enumeration route")
    out = np.empty(n)
    err = np.empty(n)
    for i in range(n):
        w = off_all[i][off_all[i] != 0]
        m = w.size
        n_zero = n - 1 - m
        nu0 = -0.5 * p * off_all[i].sum()
        terms = _profile_relu_terms(a_all[i], c_all[i], p)
        # states per feature: 0 off, 1 on (not in eps), 2 on and in eps
        states = (
            np.array(np.meshgrid(*([np.arange(3)] * m), indexing="ij")).reshape(m, -1).T if m else np.zeros((1, 0), int)
        )
        on = states > 0
        k = on.sum(axis=1)
        shift = (np.where(states == 2, w[None, :], 0.0)).sum(axis=1)
        sign = np.where(((states == 1).sum(axis=1)) % 2 == 0, 1.0, -1.0)
        prod_w = np.where(on, w[None, :], 1.0).prod(axis=1)
        prob = p**k * (1.0 - p) ** (m - k)
        total = p / 3.0
        abs_total = p / 3.0
        for coef, s, q in terms:
            y = nu0 + s + shift
            val = (
                math.factorial(q) / np.array([math.factorial(q + kk) for kk in k]) * sign * _relu(y) ** (q + k) / prod_w
            )
            total += coef * math.fsum(prob * val)
            abs_total += float(np.sum(np.abs(coef * prob * val) * (q + k + 1)))
        del n_zero
        out[i] = total
        err[i] = 8.0 * _EPS * abs_total
    return (out, err) if return_error else out

