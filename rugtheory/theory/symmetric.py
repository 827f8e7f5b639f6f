r"""The symmetric large-N loss :math:`L(a, b, \sigma; p)` of docs/theory.md §3 in closed form.

Model of one output in the permutation-symmetric regime (docs/theory.md §2):
:math:`y = \mathrm{ReLU}(a x + b + \sigma Z)` with :math:`x = B U`, :math:`B\sim\mathrm{Bernoulli}(p)`,
:math:`U \sim \mathrm{U}[0,1)`, :math:`Z\sim N(0,1)` independent. Per-feature loss

.. math::
    L(a,b,\sigma;p) = (1-p)\,G_2(b,\sigma) + p\int_0^1 E\big[(\mathrm{ReLU}(ax+b+\sigma Z)-x)^2\big]\,dx .

The x-integral is done in closed form (derived symbolically in ``derivations/symmetric_loss.py``,
which a test re-runs and compares with this module). The runtime evaluates it in a form that does
not cancel: with :math:`u = ax+b`, :math:`t = u/\sigma`,

.. math::
    E[(\mathrm{ReLU}(u+\sigma Z)-x)^2] = \underbrace{((u-x)^2+\sigma^2)\,1\{u>0\} + x^2\,1\{u\le0\}}_{P}
      \;+\; \underbrace{\sigma^2\big[(1-\tfrac2a)g_2(t) - g_0(t)\big] + 2\sigma x_0\,g_1(t)}_{Q},

:math:`x_0=-b/a`, :math:`T(t) = 1\{t>0\}-\Phi(t)`, :math:`g_0 = T`, :math:`g_1 = tT-\varphi`,
:math:`g_2 = -t^2T + t\varphi`. P is a piecewise polynomial integrated exactly (Simpson on each
piece, all terms non-negative); Q is concentrated near the kink and integrates to
:math:`(\sigma/a)\,[\sigma^2((1-2/a)\Delta G_2-\Delta G_0) + 2\sigma x_0\Delta G_1]` with the
antiderivatives (t >= 0, extended by parity: G_0, G_2 even, G_1 odd)

.. math::
    G_0 = \varphi(0) - \varphi(t)\psi_1,\quad G_1 = \tfrac12\varphi(t)\psi_2 - \tfrac14,\quad
    G_2 = \tfrac13(\varphi(0) - \varphi(t)\psi_3),

:math:`\psi_1 = 1-tR`, :math:`\psi_2 = (t^2+1)R-t`, :math:`\psi_3 = 1 - t^2\psi_1`, R the Mills ratio
(continued-fraction forms in the tail, see :mod:`rugtheory.theory.normal`). Where the kink is wider than
the data range (:math:`|a| \le \sigma`) the removable cancellation of :math:`(\sigma/a)\Delta G` is
avoided by 24-point Gauss–Legendre quadrature of the (then smooth) integrand, which is exact to
rounding there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import check_finite, check_nonnegative, check_probability, check_ratio
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.normal import (
    CF_THRESHOLD,
    PHI0,
    laplace_tails,
    mills_ratio,
    norm_cdf,
    norm_pdf,
    relu_gaussian_moments,
)

__all__ = [
    "DataMoments",
    "data_moments",
    "interference_scale",
    "relu_gaussian_mean",
    "relu_gaussian_second_moment",
    "symmetric_loss",
    "on_feature_error",
]

#: |a|/sigma at or below which the x-integral is done by Gauss–Legendre quadrature (smooth integrand).
GL_SWITCH = 1.0
_GL_X, _GL_W = gauss_legendre_unit(24)


@with_compact_repr
@dataclass(frozen=True)
class DataMoments:
    r"""Exact moments of one input :math:`x = B U` (docs/theory.md §1).

    ``mean = p/2``, ``second = p/3``, ``third = p/4``, ``variance = p/3 - p^2/4``,
    ``kappa3`` and ``kappa4`` the third and fourth cumulants.
    """

    mean: np.ndarray
    second: np.ndarray
    third: np.ndarray
    variance: np.ndarray
    kappa3: np.ndarray
    kappa4: np.ndarray


def data_moments(p: np.ndarray | float) -> DataMoments:
    r"""Moments of :math:`x = BU`: :math:`E x^k = p/(k+1)`; cumulants from central moments.

    .. math::
        v = p/3 - p^2/4,\quad \kappa_3 = p/4 - p^2/2 + p^3/4,\quad
        \kappa_4 = p/5 - p^2/2 + p^3/2 - 3p^4/16 - 3v^2 .
    """
    p = check_probability(p)
    v = p * (1.0 / 3.0 - p / 4.0)
    k3 = p * (0.25 - p / 2.0 + p * p / 4.0)
    m4 = p * (0.2 - p / 2.0 + p * p / 2.0 - 3.0 * p**3 / 16.0)
    return DataMoments(mean=p / 2.0, second=p / 3.0, third=p / 4.0, variance=v, kappa3=k3, kappa4=m4 - 3.0 * v * v)


def interference_scale(p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    r"""Rank-bound interference standard deviation at unit gain, :math:`s = \sqrt{v(1/r-1)}` (docs/theory.md §4).

    Computed as ``sqrt(v * (1 - r) / r)`` so that r close to 1 keeps full relative accuracy.
    """
    p = check_probability(p)
    r = check_ratio(r)
    v = p * (1.0 / 3.0 - p / 4.0)
    return np.sqrt(v * (1.0 - r) / r)


def _ratio(mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """t = mu/s with s = 0 giving +-inf (and 0 for mu = 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = np.where(s > 0, mu / np.where(s > 0, s, 1.0), np.sign(mu) * np.inf)
    return np.where((s == 0) & (mu == 0), 0.0, t)


def relu_gaussian_mean(mu: np.ndarray | float, s: np.ndarray | float) -> np.ndarray:
    r""":math:`G_1(\mu,s) = E\,\mathrm{ReLU}(\mu+sZ) = \mu\Phi(\mu/s) + s\varphi(\mu/s)` (docs/theory.md §3).

    Stable for s -> 0 (gives ReLU(mu)) and for mu/s -> -inf (lower-tail form, no cancellation).
    """
    mu = check_finite(mu, "mu")
    s = check_nonnegative(s, "s")
    mu, s = np.broadcast_arrays(mu, s)
    t = _ratio(mu, s)
    direct = mu * norm_cdf(t) + s * norm_pdf(np.where(np.isinf(t), 0.0, t)) * np.isfinite(t)
    tail = s * relu_gaussian_moments(np.where(t <= -CF_THRESHOLD, t, 0.0), 1)[1]
    return np.where(t <= -CF_THRESHOLD, tail, direct)


def relu_gaussian_second_moment(mu: np.ndarray | float, s: np.ndarray | float) -> np.ndarray:
    r""":math:`G_2(\mu,s) = E\,\mathrm{ReLU}(\mu+sZ)^2 = (\mu^2+s^2)\Phi(\mu/s) + \mu s\varphi(\mu/s)`
    (docs/theory.md §3)."""
    mu = check_finite(mu, "mu")
    s = check_nonnegative(s, "s")
    mu, s = np.broadcast_arrays(mu, s)
    return _g2(mu, s)


def _g2(mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    t = _ratio(mu, s)
    fin = np.isfinite(t)
    direct = (mu * mu + s * s) * norm_cdf(t) + mu * s * norm_pdf(np.where(fin, t, 0.0)) * fin
    tail = s * s * relu_gaussian_moments(np.where(t <= -CF_THRESHOLD, t, 0.0), 2)[2]
    return np.where(t <= -CF_THRESHOLD, tail, direct)


def _psi(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """phi(tau) and psi_1..3 at tau >= 0 (tau may be +inf)."""
    tau = np.atleast_1d(tau)
    tail = tau >= CF_THRESHOLD
    td = np.where(tail, 0.0, tau)
    rd = mills_ratio(td)
    psi1 = 1.0 - td * rd
    psi2 = (td * td + 1.0) * rd - td
    psi3 = 1.0 - td * td * psi1
    inf = np.isinf(tau)
    phi = np.where(inf, 0.0, norm_pdf(np.where(inf, 0.0, tau)))
    if tail.any():
        tc = tau[tail]
        tc = np.where(np.isinf(tc), 1e300, tc)  # psi's are 0 there and phi is 0: any large c will do
        r, k1, k2 = laplace_tails(tc, 2)
        psi1[tail], psi2[tail], psi3[tail] = k1 * r, k1 * k2 * r, r * k1 * (1.0 + tc * k2)
    return phi, psi1, psi2, psi3


def _antiderivatives(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G_0, G_1, G_2 (integrals of g_0, g_1, g_2 from 0 to t)."""
    tau = np.abs(t)
    phi, psi1, psi2, psi3 = _psi(tau)
    with np.errstate(under="ignore"):
        g0 = PHI0 - phi * psi1
        g1 = np.sign(t) * (0.5 * phi * psi2 - 0.25)
        g2 = (PHI0 - phi * psi3) / 3.0
    return g0, g1, g2


def _piece(xl: np.ndarray, xh: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Integral over [xl, xh] of the deterministic part P (active side decided at the midpoint)."""
    xm = 0.5 * (xl + xh)
    length = xh - xl
    active = a * xm + b > 0
    d = a - 1.0
    f = lambda x: (d * x + b) ** 2  # noqa: E731
    on = length * ((f(xl) + 4.0 * f(xm) + f(xh)) / 6.0 + sigma * sigma)
    off = length * (xl * xl + xl * xh + xh * xh) / 3.0
    return np.where(active, on, off)


def _on_error_closed(a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    safe_a = np.where(a != 0, a, 1.0)
    xc = np.where(a != 0, np.clip(-b / safe_a, 0.0, 1.0), 0.0)
    p_part = _piece(np.zeros_like(xc), xc, a, b, sigma) + _piece(xc, np.ones_like(xc), a, b, sigma)
    has_q = sigma > 0
    s_safe = np.where(has_q, sigma, 1.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        t0 = b / s_safe
        t1 = (a + b) / s_safe
    g00, g10, g20 = _antiderivatives(t0)
    g01, g11, g21 = _antiderivatives(t1)
    d0, d1, d2 = g01 - g00, g11 - g10, g21 - g20
    ratio = s_safe / safe_a
    q = ratio * (s_safe * s_safe * ((1.0 - 2.0 / safe_a) * d2 - d0)) - 2.0 * ratio * ratio * b * d1
    return p_part + np.where(has_q, q, 0.0)


def _on_error_gl(a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    x = _GL_X
    a_, b_, s_ = a[..., None], b[..., None], sigma[..., None]
    u = a_ * x + b_
    t = u / s_
    dev = (a_ - 1.0) * x + b_
    f = (dev * dev + s_ * s_) * norm_cdf(t) + s_ * (u - 2.0 * x) * norm_pdf(t) + x * x * norm_cdf(-t)
    return f @ _GL_W


def on_feature_error(a: np.ndarray | float, b: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    r"""Error of an active feature, :math:`\int_0^1 E[(\mathrm{ReLU}(ax+b+\sigma Z)-x)^2]\,dx`."""
    a = check_finite(a, "a")
    b = check_finite(b, "b")
    sigma = check_nonnegative(sigma, "sigma")
    a, b, sigma = (np.array(v, dtype=np.float64) for v in np.broadcast_arrays(a, b, sigma))
    out = np.empty(a.shape)
    gl = (sigma > 0) & (np.abs(a) <= GL_SWITCH * sigma)
    if gl.any():
        out[gl] = _on_error_gl(a[gl], b[gl], sigma[gl])
    cf = ~gl
    if cf.any():
        out[cf] = _on_error_closed(a[cf], b[cf], sigma[cf])
    return out


def symmetric_loss(
    a: np.ndarray | float, b: np.ndarray | float, sigma: np.ndarray | float, p: np.ndarray | float
) -> np.ndarray:
    r"""Symmetric large-N per-feature loss :math:`L(a, b, \sigma; p)` (docs/theory.md §3).

    .. math::
        L = (1-p)\,G_2(b,\sigma) + p\int_0^1 \big[x^2 - 2xG_1(ax+b,\sigma) + G_2(ax+b,\sigma)\big]dx

    Parameters
    ----------
    a : array_like
        Diagonal gain :math:`W_{ii}` (any finite real).
    b : array_like
        Effective bias :math:`b_i + \mu_i` (any finite real).
    sigma : array_like
        Interference standard deviation, ``>= 0`` (0 is the deterministic ReLU).
    p : array_like
        Feature probability in (0, 1].

    Returns
    -------
    numpy.ndarray
        The loss, broadcast over the inputs, in the unit of ``mse_loss`` (mean over features).

    Notes
    -----
    Evaluated without cancellation (see the module docstring); relative error against the mpmath
    oracle ``rugtheory.twins.oracle.symmetric_loss`` is below 1e-12 on the tested domain.
    """
    a = check_finite(a, "a")
    b = check_finite(b, "b")
    sigma = check_nonnegative(sigma, "sigma")
    p = check_probability(p)
    a, b, sigma, p = np.broadcast_arrays(a, b, sigma, p)
    off = _g2(b, sigma)
    on = on_feature_error(a, b, sigma)
    return (1.0 - p) * off + p * on
