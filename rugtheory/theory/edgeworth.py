r"""Edgeworth-corrected finite-n loss: the cheap analytic step between Gaussian and exact (docs/theory.md §7).

The interference :math:`\nu_i = \sum_{j\ne i}W_{ij}(x_j - p/2)` is a sum of independent terms, so its
cumulants are exact sums, :math:`\kappa_r(\nu_i) = \kappa_r(X)\sum_{j\ne i}W_{ij}^r` with the
cumulants of one input :math:`X = BU` (:func:`rugtheory.theory.symmetric.data_moments`):
:math:`\kappa_2 = v`, :math:`\kappa_3 = p/4 - p^2/2 + p^3/4`, :math:`\kappa_4 = \mu_4 - 3v^2`.

Second-order Edgeworth density :math:`\varphi_\sigma(x)[1 + \tfrac{\kappa_3}{6\sigma^3}He_3 +
\tfrac{\kappa_4}{24\sigma^4}He_4 + \tfrac{\kappa_3^2}{72\sigma^6}He_6](x/\sigma)`. With
:math:`\int h\,\varphi_\sigma He_k(x/\sigma)\,dx = \sigma^k E_G[h^{(k)}]` and the error profile
depending on ν only through c + ν, every correction is a c-derivative of the Gaussian loss
:math:`L_G(c) = L(a, c, \sigma; p)` of docs/theory.md §3:

.. math::
    L_E = L_G + \frac{\kappa_3}{6}\partial_c^3 L_G + \frac{\kappa_4}{24}\partial_c^4 L_G
          + \frac{\kappa_3^2}{72}\partial_c^6 L_G .

Closed form of the derivatives (:math:`g_j = \partial_\mu^j G_1(\mu,\sigma)`: :math:`g_1 = \Phi(t)`,
:math:`g_j = \sigma^{1-j}(-1)^j He_{j-2}(t)\varphi(t)` for j ≥ 2, :math:`t = \mu/\sigma`;
:math:`\partial_\mu G_2 = 2G_1`; the x-integral done by parts with μ = ax + c):

.. math::
    \partial_c^k L_G = 2(1-p)\,g_{k-1}(c) + \frac{2p}{a}\Big[(1 + \tfrac1a)\big(g_{k-2}(c+a) - g_{k-2}(c)\big)
      - g_{k-1}(c+a)\Big],

and, where :math:`|a| < 10^{-2}\sigma` (removable cancellation), its expansion at μ = c,
:math:`2(1-p)g_{k-1} + 2p\sum_{j=0}^{4} a^j\,[g_{k-1+j}/(j+1)! - (j+1)g_{k+j}/(j+2)!]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.finite_n import check_weights
from rugtheory.theory.normal import norm_cdf, norm_pdf
from rugtheory.theory.symmetric import data_moments, relu_gaussian_mean, symmetric_loss
from rugtheory.theory.weights import row_parameters

__all__ = [
    "InterferenceCumulants",
    "EdgeworthLoss",
    "interference_cumulants",
    "gaussian_loss_c_derivative",
    "edgeworth_loss_from_weights",
]

#: Below |a|/sigma = 1e-2 the divided differences in a would lose up to ~8 digits (more for k = 6);
#: the 5-term expansion in a is used there (truncation ~ (a/sigma)^5 = 1e-10 relative).
_SMALL_A = 1e-2


@with_compact_repr
@dataclass(frozen=True)
class InterferenceCumulants:
    """Per-row exact cumulants of ν_i: variance, κ3, κ4, skewness κ3/σ³, excess kurtosis κ4/σ⁴."""

    variance: np.ndarray
    kappa3: np.ndarray
    kappa4: np.ndarray
    skewness: np.ndarray
    excess_kurtosis: np.ndarray


@with_compact_repr
@dataclass(frozen=True)
class EdgeworthLoss:
    """Gaussian, first-order (κ3 only) and second-order Edgeworth predictions, per row and mean."""

    gaussian: float
    first_order: float
    edgeworth: float
    row_gaussian: np.ndarray
    row_first_order: np.ndarray
    row_edgeworth: np.ndarray
    cumulants: InterferenceCumulants


def interference_cumulants(W: object, p: object) -> InterferenceCumulants:
    r"""Exact :math:`\kappa_r(\nu_i) = \kappa_r(X)\sum_{j\ne i}W_{ij}^r`, r = 2, 3, 4, for every row i."""
    W = np.asarray(W)
    W, _, p = check_weights(W, np.zeros(W.shape[0] if W.ndim == 2 else 0), p)
    rp = row_parameters(W, np.zeros(W.shape[0]), p)
    _, _, off = rp.a, rp.effective_bias, rp.off
    dm = data_moments(p)
    var = float(dm.variance) * np.sum(off**2, axis=1)
    k3 = float(dm.kappa3) * np.sum(off**3, axis=1)
    k4 = float(dm.kappa4) * np.sum(off**4, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(var > 0, k3 / np.where(var > 0, var, 1.0) ** 1.5, 0.0)
        kurt = np.where(var > 0, k4 / np.where(var > 0, var, 1.0) ** 2, 0.0)
    return InterferenceCumulants(variance=var, kappa3=k3, kappa4=k4, skewness=skew, excess_kurtosis=kurt)


def _hermite(k: int, t: np.ndarray) -> np.ndarray:
    """Probabilists' Hermite He_k(t)."""
    h0, h1 = np.ones_like(t), t
    if k == 0:
        return h0
    for j in range(1, k):
        h0, h1 = h1, t * h1 - j * h0
    return h1


def _g(j: int, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """g_j = d^j/dmu^j G1(mu, sigma) for j >= 0 (sigma > 0)."""
    if j == 0:
        return relu_gaussian_mean(mu, sigma)
    t = mu / sigma
    if j == 1:
        return norm_cdf(t)
    return sigma ** (1 - j) * (-1.0) ** j * _hermite(j - 2, t) * norm_pdf(t)


def gaussian_loss_c_derivative(k: int, a: object, c: object, sigma: object, p: object) -> np.ndarray:
    r""":math:`\partial_c^k L(a, c, \sigma; p)` for k ≥ 2 in closed form (module docstring), σ > 0.

    A test compares it with finite differences of :func:`rugtheory.theory.symmetric.symmetric_loss`.
    """
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    a, c, sigma = (np.asarray(v, dtype=np.float64) for v in (a, c, sigma))
    p = float(p)
    if not (0 < p <= 1):
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    if np.any(~(sigma > 0)):
        raise ValueError("sigma must be in (0, inf) for the Edgeworth derivatives")
    a, c, sigma = np.broadcast_arrays(a, c, sigma)
    small = np.abs(a) < _SMALL_A * sigma
    a_safe = np.where(small, 1.0, a)
    g_km1_c = _g(k - 1, c, sigma)
    closed = 2.0 * (1.0 - p) * g_km1_c + (2.0 * p / a_safe) * (
        (1.0 + 1.0 / a_safe) * (_g(k - 2, c + a_safe, sigma) - _g(k - 2, c, sigma)) - _g(k - 1, c + a_safe, sigma)
    )
    # B = sum_j a^j [g_{k-1+j}/(j+1)! - (j+1) g_{k+j}/(j+2)!]
    bracket = np.zeros(a.shape)
    for j in range(4, -1, -1):
        term = _g(k - 1 + j, c, sigma) / math.factorial(j + 1) - (j + 1) * _g(k + j, c, sigma) / math.factorial(j + 2)
        bracket = bracket * a + term
    series = 2.0 * (1.0 - p) * g_km1_c + 2.0 * p * bracket
    return np.where(small, series, closed)


def edgeworth_loss_from_weights(W: object, b: object, p: object) -> EdgeworthLoss:
    r"""Gaussian and Edgeworth-corrected loss of ``y = ReLU(W x + b)`` from its weights (docs/theory.md §2, §7).

    Per row: :math:`a_i = W_{ii}`, :math:`c_i = b_i + (p/2)\sum_{j\ne i}W_{ij}`, exact cumulants of
    ν_i; ``row_gaussian`` is :math:`L(a_i, c_i, \sigma_i; p)`, ``row_first_order`` adds
    :math:`\kappa_3\partial_c^3L/6`, ``row_edgeworth`` adds the κ4 and κ3² terms too.
    Rows with σ_i = 0 get no correction (ν_i ≡ 0).
    """
    W, b, p = check_weights(W, b, p)
    rp = row_parameters(W, b, p)
    a, c, _ = rp.a, rp.effective_bias, rp.off
    cum = interference_cumulants(W, p)
    sigma = np.sqrt(cum.variance)
    lg = symmetric_loss(a, c, sigma, p)
    live = sigma > 0
    first = lg.copy()
    second = lg.copy()
    if live.any():
        al, cl, sl = a[live], c[live], sigma[live]
        d3 = gaussian_loss_c_derivative(3, al, cl, sl, p)
        d4 = gaussian_loss_c_derivative(4, al, cl, sl, p)
        d6 = gaussian_loss_c_derivative(6, al, cl, sl, p)
        k3, k4 = cum.kappa3[live], cum.kappa4[live]
        first[live] = lg[live] + k3 * d3 / 6.0
        second[live] = first[live] + k4 * d4 / 24.0 + k3 * k3 * d6 / 72.0
    # fields in declaration order: the three means, then the three per-row arrays
    return EdgeworthLoss(float(lg.mean()), float(first.mean()), float(second.mean()), lg, first, second, cum)

