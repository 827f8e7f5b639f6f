r"""Exact expected loss of given weights at finite n, without sampling (docs/theory.md §7).

Row i of the model sees :math:`y_i = \mathrm{ReLU}(a_i x_i + c_i + \nu_i)` with :math:`a_i = W_{ii}`,
:math:`c_i = b_i + \mu_i = b_i + (p/2)\sum_{j\ne i}W_{ij}` and the centred interference
:math:`\nu_i = \sum_{j\ne i} W_{ij}(x_j - p/2)`, independent of :math:`x_i` (docs/theory.md §2). Averaging
over :math:`x_i` first gives the *error profile* (closed form, piecewise cubic in ν with kinks at
:math:`\nu = -c` and :math:`\nu = -a-c`)

.. math::
    \ell(\nu) = (1-p)\,\mathrm{ReLU}(c+\nu)^2 + p\int_0^1 (\mathrm{ReLU}(au + c + \nu) - u)^2\,du,
    \qquad L_i = E\,\ell(\nu_i).

Writing :math:`R(w)^k/k! = \frac{1}{2\pi i}\int_{\beta-i\infty}^{\beta+i\infty} e^{zw} z^{-k-1}dz`
(β > 0) for each ReLU power in :math:`\ell - p/3` gives the Bromwich form

.. math::
    L_i = \frac p3 + \frac{1}{2\pi i}\int_{\beta-i\infty}^{\beta+i\infty}\Psi_i(z)\,\Lambda(z)\,dz,\qquad
    \Lambda(z) = e^{zc}\Big\{\frac{2}{z^3}\big[(1-p) + pE_1(za)\big] - \frac{2p}{z^2} D(za)\Big\},

with :math:`E_1(u) = (e^u-1)/u`, :math:`D(u) = e^u/u - (e^u-1)/u^2` (both entire) and the exact
moment generating function of docs/theory.md §7 (its characteristic function at :math:`z = it`)

.. math::
    \Psi_i(z) = E\,e^{z\nu_i} = \prod_{j\ne i} e^{-zW_{ij}p/2}\big[1-p+p\,E_1(zW_{ij})\big].

**Numerical inversion.** The integral is a trapezoidal sum on the line :math:`z = \beta + ikh`,
:math:`h = 2\pi/T` (Abate–Whitt). By Poisson summation the sum equals
:math:`\sum_m e^{-\beta m T}G(mT)` with :math:`G(y) = E[\ell(\nu+y)] - p/3`, so its error is the two
aliases: :math:`e^{-\beta T}G(T)` (β T = 40) and :math:`e^{\beta T}G(-T)`, bounded by a Chernoff
bound on :math:`P(\nu > T + x_{clip})` computed from the exact Ψ at real arguments. The period
T is chosen per row from that bound and from roundoff (:math:`\beta\,y_{hi} \le 40/3`). The sum is
truncated adaptively where the trailing terms fall below the tolerance.

**Discrete parts.** At small n·p, ν has an atom (no feature on, weight :math:`(1-p)^{n-1}`) and
single-uniform parts whose transforms do not decay. Their contributions are computed exactly
(2-point Gauss–Legendre on each polynomial piece of :math:`\ell`) and subtracted from Ψ, so the
remainder transform decays at least like :math:`|z|^{-2}`. For n ≤ 48 the remainder
:math:`\prod_j(1+qE_1(zW_j)) - 1 - q\sum_j E_1(zW_j)` (q = p/(1−p)) is formed without
cancellation (log1p/expm1 with Taylor series), exact to rounding down to p = 1e-12. For n > 48
and p·n ≪ 1 the subtraction cancels: the result stays within ``row_error``, but that estimate
(and the alias bound, which uses the full Ψ) can then be far larger than the true error.

**Speed.** For an entry with :math:`|zW_{ij}| \le 1.44`, :math:`\log[e^{-zWp/2}(1-p+pE_1(zW))]`
is its Taylor series :math:`\sum_{r\ge2}\lambda_r (zW)^r` (coefficients by a Cauchy integral on the
circle of radius 3.6; the nearest zero of :math:`1-p+pE_1` has modulus ≥ 4.83 for every p), so a
row's sum over those entries is :math:`\sum_r \lambda_r z^r S_r` with power sums :math:`S_r` over
the entries below a node-dependent threshold (cumulative sums over the row sorted by
:math:`|W_{ij}|`). Only the few entries above the threshold are multiplied out exactly. The
series remainder is bounded by Cauchy's estimate and added to the error estimate.

The exact law of ν_i comes from :mod:`rugtheory.theory.interference_mgf`. The routes that check
this module: :func:`rugtheory.twins.enumeration.enumeration_loss_from_weights` (subsets of active
features and exact repeated integration over their uniform values, n ≤ 12) and
:func:`rugtheory.twins.montecarlo.model_loss_monte_carlo` (sampling the model itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import (
    check_finite,
    check_int,
    check_on_inaccurate,
    check_probability,
    report_accuracy,
)
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.interference_mgf import (
    SERIES_ORDER,
    FullSortedRows,
    SortedRows,
    direct_log_mgf,
    direct_remainder,
)
from rugtheory.theory.weights import row_parameters

__all__ = [
    "FiniteNLoss",
    "invert_rows",
    "exact_loss_from_weights",
    "exact_loss_of_row",
    "exact_loss_from_factors",
    "interference_error_profile",
    "check_weights",
]

#: beta * T: the right alias is suppressed by e^{-40} = 4e-18.
_BETA_T = 40.0
_EPS = np.finfo(np.float64).eps


@with_compact_repr
@dataclass(frozen=True)
class FiniteNLoss:
    """Exact finite-n loss of given weights.

    Attributes
    ----------
    loss : float
        Mean over rows of ``row_loss`` (the ``mse_loss`` unit of docs/theory.md §1).
    error : float
        Estimated absolute error bound on ``loss`` (mean of ``row_error``).
    row_loss, row_error : numpy.ndarray
        Per row i: :math:`E\\,\\ell(\\nu_i)` and its estimated absolute error (alias bound +
        truncation estimate + series remainder bound + roundoff estimate).
    a, c, sigma : numpy.ndarray
        Per row: :math:`W_{ii}`, :math:`b_i + \\mu_i`, :math:`\\sigma_i` (std of ν_i).
    nodes : numpy.ndarray
        Number of trapezoid nodes used per row (0 where ν_i ≡ 0).
    """

    loss: float
    error: float
    row_loss: np.ndarray
    row_error: np.ndarray
    a: np.ndarray
    c: np.ndarray
    sigma: np.ndarray
    nodes: np.ndarray


# --------------------------------------------------------------------------------------------
# input checking


def check_weights(W: object, b: object, p: object) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate ``(W, b, p)``: W square finite n×n, b finite of length n, p in (0, 1].

    Returns float64 copies and p as a float. Raises ``ValueError`` naming the parameter.
    """
    W = check_finite(W, "W")
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 1:
        raise ValueError(f"W must be a square n×n matrix with n >= 1, got shape {W.shape}")
    b = check_finite(b, "b")
    if b.shape != (W.shape[0],):
        raise ValueError(f"b must have shape ({W.shape[0]},) to match W of shape {W.shape}, got {b.shape}")
    pa = check_probability(p)
    if pa.ndim != 0:
        raise ValueError(f"p must be a scalar in (0, 1], got an array of shape {pa.shape}")
    return np.array(W, dtype=np.float64), np.array(b, dtype=np.float64), float(pa)


# --------------------------------------------------------------------------------------------
# the error profile l(nu) and its average over one uniform


_GL2 = gauss_legendre_unit(2)[0]  # the 2-point rule on [0, 1] (weights 1/2 each)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _profile(x: np.ndarray, a: np.ndarray, c: np.ndarray, p: float) -> np.ndarray:
    w = c + x
    off = (1.0 - p) * _relu(w) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ustar = np.where(a != 0, -w / np.where(a != 0, a, 1.0), 0.0)
    u1 = np.clip(ustar, 0.0, 1.0)
    on = np.zeros(np.broadcast(x, a, c).shape)
    for lo, hi in ((0.0, u1), (u1, 1.0)):
        width = hi - lo
        for g in _GL2:
            u = lo + width * g
            on = on + 0.5 * width * (_relu(a * u + w) - u) ** 2
    return off + p * on


def interference_error_profile(x: object, a: object, c: object, p: object) -> np.ndarray:
    r"""The error profile :math:`\ell(\nu)` of one output (module docstring), broadcast.

    .. math::
        \ell(\nu) = (1-p)\,\mathrm{ReLU}(c+\nu)^2 + p\int_0^1 (\mathrm{ReLU}(au+c+\nu)-u)^2\,du

    The u-integral is split at the kink :math:`u^* = -(c+\nu)/a` and each piece (a quadratic in u)
    is integrated exactly by 2-point Gauss–Legendre. docs/theory.md §7; :math:`E\,\ell(\nu_i)` is the loss
    of row i.
    """
    x = check_finite(x, "x")
    a = check_finite(a, "a")
    c = check_finite(c, "c")
    p = float(check_probability(p))
    return _profile(x, a, c, p)


def _uniform_average_profile(y: np.ndarray, wj: np.ndarray, a: np.ndarray, c: np.ndarray, p: float) -> np.ndarray:
    """E_t l(y + wj t), t ~ U[0, 1): split at the kinks of l (x = -c, -a-c), 2-point GL per cubic piece."""
    y, wj, a, c = np.broadcast_arrays(y, wj, a, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(wj != 0, wj, 1.0)
        t1 = np.where(wj != 0, (-c - y) / safe, 0.0)
        t2 = np.where(wj != 0, (-a - c - y) / safe, 0.0)
    t1 = np.clip(t1, 0.0, 1.0)
    t2 = np.clip(t2, 0.0, 1.0)
    lo_t, hi_t = np.minimum(t1, t2), np.maximum(t1, t2)
    out = np.zeros(y.shape)
    for lo, hi in ((0.0, lo_t), (lo_t, hi_t), (hi_t, 1.0)):
        width = hi - lo
        for g in _GL2:
            out = out + 0.5 * width * _profile(y + wj * (lo + width * g), a, c, p)
    return out


# --------------------------------------------------------------------------------------------
# the transform of l - p/3


def _lambda_transform(z: np.ndarray, a: np.ndarray, c: np.ndarray, p: float) -> np.ndarray:
    """Lambda(z) of the module docstring; a, c broadcast against z (rows, K)."""
    u = z * a
    small = np.abs(u) < 0.5
    ez_c = np.exp(z * c)
    # Taylor for |u| < 0.5: E1 = sum u^k/(k+1)!, D = sum u^k (k+1)/(k+2)!
    us = np.where(small, u, 0.0)
    e1s = np.zeros_like(z)
    ds = np.zeros_like(z)
    term = np.ones_like(z)
    fk1, fk2 = 1.0, 2.0  # (k+1)!, (k+2)!
    for k in range(0, 22):
        e1s = e1s + term / fk1
        ds = ds + term * (k + 1) / fk2
        term = term * us
        fk1 *= k + 2
        fk2 *= k + 3
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ul = np.where(small, 1.0, u)
        ez_ac = np.exp(z * (a + c))
        e1_big = (ez_ac - ez_c) / ul  # e^{zc} E1(u)
        d_big = ez_ac / ul - (ez_ac - ez_c) / (ul * ul)  # e^{zc} D(u)
    e1c = np.where(small, ez_c * e1s, e1_big)
    dc = np.where(small, ez_c * ds, d_big)
    return (2.0 / z**3) * ((1.0 - p) * ez_c + p * e1c) - (2.0 * p / z**2) * dc


# --------------------------------------------------------------------------------------------
# the inversion


def _chernoff_upper(logpsi_theta: np.ndarray, theta: np.ndarray, level: float) -> np.ndarray:
    """x with P(nu > x) <= e^{-level} by Chernoff: min_theta (log Psi(theta) + level)/theta."""
    return np.min((logpsi_theta + level) / theta, axis=1)


def _sup_poly_exp(P: float, A: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """sup_{d >= 0} (P + (d + A)^2) e^{-theta d}."""
    at0 = P + A * A
    disc = 1.0 - theta * theta * P
    y = (1.0 + np.sqrt(np.maximum(disc, 0.0))) / theta
    d = y - A
    val = (P + y * y) * np.exp(-theta * np.maximum(d, 0.0))
    return np.where((disc >= 0) & (d > 0), np.maximum(val, at0), at0)


@dataclass(frozen=True)
class _Discrete:
    """The atom (no feature on, weight alpha0) and single-uniform parts (weight alpha1 each) of ν,
    integrated exactly and subtracted from the transform when they carry weight (``subtract``)."""

    subtract: bool
    alpha0: float
    alpha1: float
    base: np.ndarray  # p/3 plus the exact discrete contributions, per row


def _discrete_parts(off: np.ndarray, a: np.ndarray, c: np.ndarray, nu0: np.ndarray, p: float, tol: float) -> _Discrete:
    n1 = off.shape[1]
    with np.errstate(divide="ignore"):
        log_a0 = (n1 * np.log1p(-p)) if p < 1 else -np.inf
        log_a1 = (math.log(p) + (n1 - 1) * np.log1p(-p)) if (p < 1 and n1 >= 1) else (0.0 if n1 == 1 else -np.inf)
    alpha0 = math.exp(log_a0) if np.isfinite(log_a0) else 0.0
    alpha1 = math.exp(log_a1) if np.isfinite(log_a1) else 0.0
    subtract = (alpha0 + n1 * alpha1) > 1e-3 * tol
    base = np.full(off.shape[0], p / 3.0)
    if subtract:
        atom = alpha0 * _profile(nu0, a, c, p)
        singles_val = alpha1 * _uniform_average_profile(nu0[:, None], off, a[:, None], c[:, None], p).sum(axis=1)
        base = atom + singles_val + (p / 3.0) * (1.0 - alpha0 - n1 * alpha1)
    return _Discrete(bool(subtract), alpha0, alpha1, base)


@dataclass(frozen=True)
class _Period:
    """The trapezoid's period T per row, with what chose it: the Chernoff grid (theta, log Psi there),
    the clip point and the alias bound at T."""

    T: np.ndarray
    alias: np.ndarray
    theta: np.ndarray
    lp_theta: np.ndarray


def _alias_bound(T: np.ndarray, lp_theta: np.ndarray, theta: np.ndarray, x_clip: np.ndarray, A: np.ndarray,
                 sigma: np.ndarray, p: float) -> np.ndarray:
    """Both aliases of the trapezoid sum with period T (module docstring), bounded by Chernoff."""
    beta = _BETA_T / T
    left = np.min(
        np.exp(np.minimum(_BETA_T + lp_theta - theta * (T + x_clip)[:, None], 700.0))
        * _sup_poly_exp(p / 3.0, A[:, None], theta),
        axis=1,
    )
    right = np.exp(-beta * T) * (p / 3.0 + 2.0 * (T + np.abs(x_clip) + A) ** 2 + 2.0 * sigma**2) * 1.01
    return left + right


def _roundoff_prediction(T: np.ndarray, lp_theta: np.ndarray, theta: np.ndarray, a: np.ndarray, c: np.ndarray,
                         sigma: np.ndarray, p: float, tol: float) -> np.ndarray:
    """16 eps (h/pi) K max|F|, with max|F| <= Psi(beta)|Lambda(beta)|; log Psi is convex with
    log Psi(0) = 0, so chords of the theta grid bound it from above (beyond the grid: the last chord)."""
    rows = T.shape[0]
    beta = _BETA_T / T
    h = 2.0 * np.pi / T
    th = np.concatenate([np.zeros((rows, 1)), theta], axis=1)
    lp = np.concatenate([np.zeros((rows, 1)), lp_theta], axis=1)
    j = np.clip((th < beta[:, None]).sum(axis=1), 1, th.shape[1] - 1)
    rr = np.arange(rows)
    slope = (lp[rr, j] - lp[rr, j - 1]) / (th[rr, j] - th[rr, j - 1])
    lp_beta = lp[rr, j - 1] + slope * (beta - th[rr, j - 1])
    lam0 = np.abs(_lambda_transform(beta.astype(np.complex128), a, c, p))
    k_est = np.sqrt(beta**2 + 2.0 * (math.log(1.0 / tol) + 10.0)) / sigma / h + 1.0
    with np.errstate(over="ignore"):
        return 16.0 * _EPS * (h / np.pi) * k_est * np.exp(np.minimum(lp_beta, 700.0)) * lam0


def _choose_period(log_mgf, a: np.ndarray, c: np.ndarray, sigma: np.ndarray, p: float, tol: float) -> _Period:  # noqa: ANN001
    """The smallest period (from a Chernoff start, grown by 1.2) whose alias bound and predicted
    roundoff are both below tol/4."""
    # Chernoff grid (real z): P(nu > x) <= Psi(theta) e^{-theta x}
    theta = sigma[:, None] * 0 + np.array([1.0, 3.0, 6.0, 12.0])[None, :] / sigma[:, None]
    lp_theta = log_mgf(theta.astype(np.complex128), False)[0].real
    x_clip = -np.maximum(c, a + c)
    A = 2.0 * np.abs(a) + 1.0
    T = np.maximum(_chernoff_upper(lp_theta, theta, 70.0) - x_clip, 12.0 * sigma)
    T = np.maximum(T, 1e-300)
    for _ in range(80):
        bad = ((_alias_bound(T, lp_theta, theta, x_clip, A, sigma, p) > 0.25 * tol)
               | (_roundoff_prediction(T, lp_theta, theta, a, c, sigma, p, tol) > 0.25 * tol))
        if not bad.any():
            break
        T = np.where(bad, T * 1.2, T)
    return _Period(T, _alias_bound(T, lp_theta, theta, x_clip, A, sigma, p), theta, lp_theta)


def _trapezoid(log_mgf, off: np.ndarray, a: np.ndarray, c: np.ndarray, nu0: np.ndarray, sigma: np.ndarray,  # noqa: ANN001
               p: float, tol: float, T: np.ndarray, disc: _Discrete, stable: bool, max_nodes: int):
    """The trapezoid sum on z = beta + ikh, extended in chunks until the trailing terms are below
    tol/4; returns (integral, sum of |terms| before the subtraction, series bound, truncation, nodes)."""
    rows, n1 = off.shape
    beta = _BETA_T / T
    h = 2.0 * np.pi / T
    # nodes: Gaussian guess for the first chunk, then extend until the trailing terms are small
    s_max = np.sqrt(beta**2 + 2.0 * (math.log(1.0 / tol) + 10.0)) / sigma
    K0 = int(min(max(np.max(np.ceil(s_max / h)) + 1, 16), max_nodes))
    total = np.zeros(rows, dtype=np.complex128)
    abs_sum = np.zeros(rows)
    series_err = np.zeros(rows)
    k_done = 0
    chunk = K0
    trunc = np.full(rows, np.inf)
    while True:
        k = np.arange(k_done, k_done + chunk)
        z = beta[:, None] + 1j * h[:, None] * k[None, :]
        if stable:  # small n: the remainder without cancellation (matters when p n is small)
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                rem = direct_remainder(off, z, p)
                psi = np.exp(z * nu0[:, None] + n1 * math.log1p(-p)) * rem
            lp, e1s, sb = np.log(np.where(psi == 0, 1.0, psi)), None, np.zeros(z.shape)
        else:
            lp, e1s, sb = log_mgf(z, disc.subtract)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            if not stable:
                psi = np.exp(lp)
            scale = np.abs(psi)  # magnitude before the subtraction: what roundoff is relative to
            if disc.subtract and not stable:
                discrete = np.exp(z * nu0[:, None]) * (disc.alpha0 + disc.alpha1 * e1s)
                psi = psi - discrete
                scale = scale + np.abs(discrete)
            lam = _lambda_transform(z, a[:, None], c[:, None], p)
            F = psi * lam
            scale = scale * np.abs(lam)
        F = np.where(np.isfinite(F), F, 0.0)
        scale = np.where(np.isfinite(scale), scale, 0.0)
        wts = np.ones(chunk)
        if k_done == 0:
            wts[0] = 0.5
        total += (F * wts).sum(axis=1)
        absF = np.abs(F)
        abs_sum += scale.sum(axis=1)
        series_err += (np.abs(np.exp(lp)) * np.expm1(np.minimum(sb, 700.0)) * np.abs(lam)).sum(axis=1)
        k_done += chunk
        tail = absF[:, -min(8, chunk):]
        trunc = (h / np.pi) * (tail.sum(axis=1) + k_done * tail[:, -1] / 4.0)
        if np.all(trunc <= 0.25 * tol) or k_done >= max_nodes:
            break
        chunk = int(min(max(k_done // 2, 16), max_nodes - k_done))
    return (h / np.pi) * total.real, abs_sum, series_err, trunc, k_done


def invert_rows(
    off: np.ndarray, a: np.ndarray, c: np.ndarray, p: float, tol: float, direct: bool, max_nodes: int,
    *, legacy: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact loss of a block of rows (off-diagonal entries ``off``, diagonal ``a``, effective bias
    ``c``) by the Bromwich inversion of the module docstring; returns (loss, error estimate, nodes).

    ``direct`` sums the log-MGF over every entry exactly (small n) instead of the series split;
    both routes must agree within their error estimates (tests/test_finite_n.py). ``legacy`` uses the
    former layout of the series part (:class:`rugtheory.theory.interference_mgf.FullSortedRows`; benchmark only).
    """
    rows, n1 = off.shape
    v = p / 3.0 - p * p / 4.0
    sigma = np.sqrt(v * np.sum(off * off, axis=1))
    loss = np.zeros(rows)
    err = np.zeros(rows)
    nodes = np.zeros(rows, dtype=np.int64)
    nu0 = -0.5 * p * off.sum(axis=1)
    # nu == 0 identically (all off-diagonal entries zero): l(0) exactly
    trivial = sigma == 0
    if trivial.any():
        loss[trivial] = _profile(np.zeros(int(trivial.sum())), a[trivial], c[trivial], p)
    live = ~trivial
    if not live.any():
        return loss, err, nodes
    off, a, c, sigma, nu0 = off[live], a[live], c[live], sigma[live], nu0[live]
    sr = None if direct else (FullSortedRows if legacy else SortedRows)(off, p)

    def log_mgf(z: np.ndarray, singles: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if direct:
            lp, e1s = direct_log_mgf(off, z, p, singles)
            return lp, e1s, np.zeros(z.shape)
        return sr.evaluate(z, singles=singles)

    disc = _discrete_parts(off, a, c, nu0, p, tol)
    period = _choose_period(log_mgf, a, c, sigma, p, tol)
    stable = direct and disc.subtract and p < 1.0
    integral, abs_sum, series_err, trunc, k_done = _trapezoid(log_mgf, off, a, c, nu0, sigma, p, tol, period.T,
                                                              disc, stable, max_nodes)
    h = 2.0 * np.pi / period.T
    # each node's Psi carries ~n1 rounding errors (sum of logs / product) before the subtraction
    roundoff = 16.0 * _EPS * (h / np.pi) * abs_sum * max(1.0, math.sqrt(n1))
    loss[live] = disc.base + integral
    err[live] = period.alias + trunc + roundoff + (h / np.pi) * series_err + 16.0 * _EPS * np.abs(disc.base)
    nodes[live] = k_done
    return loss, err, nodes


def exact_loss_from_weights(
    W: object,
    b: object,
    p: object,
    *,
    tol: float = 1e-11,
    block_rows: int = 256,
    max_nodes: int = 1 << 15,
    on_inaccurate: str = "warn",
    legacy: bool = False,
) -> FiniteNLoss:
    r"""Exact expected loss :math:`\frac1n\sum_i E\,\ell(\nu_i)` of ``y = ReLU(W x + b)`` at finite n
    (docs/theory.md §7).

    No sampling and no Gaussian assumption: the exact characteristic function of every
    :math:`\nu_i` is inverted numerically (module docstring), with a per-row error estimate.

    Parameters
    ----------
    W : array_like, shape (n, n)
        ``W_out @ W_in`` (finite).
    b : array_like, shape (n,)
        Output bias (finite).
    p : float
        Feature probability in (0, 1].
    tol : float, keyword-only
        Target absolute error per row, >= 1e-13 (default 1e-11; losses are O(p)).
    block_rows : int, keyword-only
        Rows processed together (memory ~ block_rows·n·8 bytes × a few).
    max_nodes : int, keyword-only
        Cap on trapezoid nodes per row (further capped so that nodes·n·(n−1) ≤ 3e8, at least
        1024); if hit, ``row_error`` says how far from converged.
    on_inaccurate : {"warn", "raise", "ignore"}, keyword-only
        What to do when the estimated error of ``loss`` (``error``, the mean of ``row_error``)
        exceeds ``tol`` — e.g. weights of norm ~100, or p <= 1e-4 where the characteristic
        function decays too slowly for ``max_nodes``: ``"warn"`` (default) issues
        :class:`rugtheory.AccuracyWarning` with estimate vs tolerance, ``"raise"`` a ``ValueError``,
        ``"ignore"`` nothing. The result always carries ``error``.
    legacy : bool, keyword-only
        Use the former, fully sorted layout of the series part (same results within the error
        estimate; slower). Kept only so that ``benchmarks/bench_finite_n.py`` can time both in one process.

    Returns
    -------
    FiniteNLoss
    """
    W, b, p = check_weights(W, b, p)
    tol = float(tol)
    if not (np.isfinite(tol) and tol >= 1e-13):
        raise ValueError(f"tol must be in [1e-13, inf) (double-precision inversion), got {tol!r}")
    block_rows = check_int(block_rows, "block_rows", low=1)
    max_nodes = check_int(max_nodes, "max_nodes", low=16)
    on_inaccurate = check_on_inaccurate(on_inaccurate)
    n = W.shape[0]
    rp = row_parameters(W, b, p)
    a, c, off = rp.a, rp.effective_bias, rp.off
    v = p / 3.0 - p * p / 4.0
    sigma = np.sqrt(v * np.sum(off * off, axis=1))
    row_loss = np.empty(n)
    row_err = np.empty(n)
    nodes = np.empty(n, dtype=np.int64)
    direct = n <= 48
    # work cap: about 3e8 entry-node evaluations per call (nodes x (n-1) x n); beyond it the
    # truncation estimate in row_error reports how far from converged the sum is
    max_nodes = int(min(max_nodes, max(1024, 3e8 // max(1, n * (n - 1)))))
    block_rows = max(1, min(block_rows, int(24_000_000 // (n * (SERIES_ORDER + 2)))))
    for start in range(0, n, block_rows):
        sl = slice(start, min(n, start + block_rows))
        row_loss[sl], row_err[sl], nodes[sl] = invert_rows(off[sl], a[sl], c[sl], p, tol, direct, max_nodes,
                                                             legacy=legacy)
    report_accuracy(float(row_err.mean()), tol, on_inaccurate, "exact_loss_from_weights loss")
    return FiniteNLoss(float(row_loss.mean()), float(row_err.mean()), row_loss, row_err, a, c, sigma, nodes)


def exact_loss_of_row(w_row: object, i: int, b_i: float, p: object, *, tol: float = 1e-11) -> tuple[float, float]:
    r"""Exact loss of one output i from its pre-activation row ``w_row`` (length n, diagonal at index i).

    For matrices whose rows are permutations of each other (the Persian rug of docs/theory.md §8, any
    circulant), one row is the whole loss: :math:`O(n)` memory instead of :math:`O(n^2)`.
    Returns ``(loss, error_estimate)``.
    """
    w = check_finite(w_row, "w_row")
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"w_row must be a 1-D array of length n >= 1, got shape {w.shape}")
    i = check_int(i, "i", low=0, high=w.size - 1)
    b_i = float(check_finite(b_i, "b_i"))
    p = float(check_probability(p))
    tol = float(tol)
    if not (np.isfinite(tol) and tol >= 1e-13):
        raise ValueError(f"tol must be in [1e-13, inf) (double-precision inversion), got {tol!r}")
    off = np.delete(w, i)[None, :]
    c = np.array([b_i + 0.5 * p * off.sum()])
    val, err, _ = invert_rows(off, np.array([w[i]]), c, p, tol, off.shape[1] <= 48, 1 << 15)
    return float(val[0]), float(err[0])


def exact_loss_from_factors(W_in: object, W_out: object, b: object, p: object, **kwargs: object) -> FiniteNLoss:
    """:func:`exact_loss_from_weights` of ``W = W_out @ W_in`` (W_in m×n, W_out n×m)."""
    W_in = check_finite(W_in, "W_in")
    W_out = check_finite(W_out, "W_out")
    if W_in.ndim != 2 or W_out.ndim != 2 or W_in.shape[::-1] != W_out.shape:
        raise ValueError(f"W_in (m×n) and W_out (n×m) must have transposed shapes, got {W_in.shape} and {W_out.shape}")
    return exact_loss_from_weights(W_out @ W_in, b, p, **kwargs)  # type: ignore[arg-type]
