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

The routes that check this module: :func:`enumeration_loss_from_weights` (subsets of active
features and exact repeated integration over their uniform values, n ≤ 12) and
:func:`rugtheory.twins.montecarlo.model_loss_monte_carlo` (sampling the model itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rugtheory.theory.checks import (
    check_finite,
    check_int,
    check_on_inaccurate,
    check_probability,
    check_seed,
    report_accuracy,
)
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.weights import row_parameters

__all__ = [
    "FiniteNLoss",
    "exact_loss_from_weights",
    "exact_loss_of_row",
    "exact_loss_from_factors",
    "interference_error_profile",
    "interference_log_mgf",
    "sparse_uniform_log_mgf_coefficients",
    "enumeration_loss_from_weights",
    "check_weights",
]

#: Radius of the Cauchy circle for the Taylor coefficients of log E e^{uX}; the nearest zero of
#: 1 - p + p(e^u - 1)/u has modulus >= 4.83 over p in (0, 1] (minimum near p = 0.44).
_RHO = 3.6
#: An entry goes through the Taylor series where |z W| <= _Q * _RHO (ratio 0.4 to the Cauchy circle).
_Q = 0.4
#: Series order. The remainder is bounded per node by Cauchy's estimate with the actual power sum
#: sum |w|^{R+1} (it enters the error estimate); at most 0.4^25 = 1e-10 relative per entry, and far
#: less for the bulk of entries, which sit well inside the threshold except at the outermost nodes
#: where |Psi| is already negligible.
_R = 24
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
# the log-MGF of one scaled sparse-uniform term


def _e1(u: np.ndarray) -> np.ndarray:
    """(e^u - 1)/u, entire; Horner-form Taylor series (16 terms, error < 0.5^16/17! ~ 1e-19) for |u| < 0.5."""
    u = np.asarray(u, dtype=np.complex128)
    small = np.abs(u) < 0.5
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.expm1(u) / u
    if small.any():
        us = u[small]
        ser = np.full(us.shape, 1.0 / math.factorial(17), dtype=np.complex128)
        for k in range(15, -1, -1):
            ser = ser * us + 1.0 / math.factorial(k + 1)
        out[small] = ser
    return out


def _nearest_zero_modulus(p: float) -> float:
    """|u| of the zero of 1 - p + p(e^u - 1)/u nearest to 0 (Lambert W, branches +-1 and +-2).

    With c = (1-p)/p the zeros are u = 1/c - W_k(e^{1/c}/c). For p > 0.99 (where e^{1/c} overflows
    for p near 1) the modulus is bounded below by 6.2 (it rises from 6.22 at p = 0.99 to 2 pi at p = 1).
    """
    if p > 0.99:
        return 6.2
    from scipy.special import lambertw

    cc = (1.0 - p) / p
    arg = math.exp(1.0 / cc) / cc
    return float(min(abs(1.0 / cc - lambertw(arg, k)) for k in (1, -1, 2, -2)))


def _log_f_real(u: np.ndarray, p: float) -> np.ndarray:
    """log(1 - p + p (e^u - 1)/u) - p u/2 for real u without overflow (log-sum-exp for u > 30)."""
    u = np.asarray(u, dtype=np.float64)
    big = u > 30.0
    ub = np.where(big, u, 1.0)
    us = np.where(big, 0.0, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where(us == 0, 1.0, np.expm1(us) / np.where(us == 0, 1.0, us))
        small_val = np.log((1.0 - p) + p * e1)
        rest = np.maximum(1.0 - p - p / ub, 0.0)
        big_val = np.logaddexp(np.log(rest) if np.all(rest > 0) else np.where(rest > 0, np.log(np.where(rest > 0, rest, 1.0)), -np.inf),
                               math.log(p) + ub - np.log(ub))
    return np.where(big, big_val, small_val) - 0.5 * p * u


@lru_cache(maxsize=256)
def _log_mgf_coefficients(p: float) -> tuple[np.ndarray, float, float]:
    """Taylor coefficients lambda_0..lambda_{R+1} of log(1 - p + p E1(u)), M = max |log| on |u| = rho, and rho.

    rho = 0.75 x (modulus of the nearest zero), at least 3.6 (the zero is >= 4.83 away for every p).
    """
    rho = max(3.6, 0.75 * _nearest_zero_modulus(p))
    N = 512
    theta = 2.0 * np.pi * np.arange(N) / N
    u = rho * np.exp(1j * theta)
    f = (1.0 - p) + p * _e1(u)
    logf = np.log(np.abs(f)) + 1j * np.unwrap(np.angle(f))
    coef = np.fft.fft(logf)[: _R + 2] / N / rho ** np.arange(_R + 2)
    lam = coef.real.copy()
    return lam, float(np.max(np.abs(logf))), rho


def sparse_uniform_log_mgf_coefficients(p: float, order: int = _R) -> np.ndarray:
    r"""Taylor coefficients :math:`\lambda_r` of :math:`\log E e^{uX} = \log(1-p+p(e^u-1)/u)`, X = BU.

    :math:`\lambda_r = \kappa_r(X)/r!` (cumulants; :math:`\lambda_1 = p/2`, :math:`\lambda_2 = v/2`).
    Computed as a Cauchy integral (512-point trapezoid) on :math:`|u| = 3.6`, inside the
    convergence disc (radius ≥ 4.83 for every p). Returns r = 0..order.
    """
    p = float(check_probability(p))
    order = check_int(order, "order", low=0, high=_R + 1)
    return _log_mgf_coefficients(p)[0][: order + 1].copy()


# --------------------------------------------------------------------------------------------
# log Psi(z) per row: Taylor series for small |zW|, exact product for the rest


class _SortedRows:
    """Off-diagonal rows sorted by |W_ij|, with cumulative power sums for the series part."""

    def __init__(self, off: np.ndarray, p: float):
        order = np.argsort(np.abs(off), axis=1, kind="stable")
        self.w = np.take_along_axis(off, order, axis=1)
        self.absw = np.abs(self.w)
        self.p = p
        self.rows, self.n1 = off.shape
        self.lam, self.M, self.rho = _log_mgf_coefficients(p)
        self.exact_count = 0
        # C[r, i, j] = sum_{l < j} w_il^r for r = 0..R, and sum |w|^{R+1} in the last slot
        self.C = np.empty((_R + 2, self.rows, self.n1 + 1))
        self.C[:, :, 0] = 0.0
        pw = np.ones_like(self.w)
        for r in range(0, _R + 1):
            if r > 0:
                pw *= self.w
            np.cumsum(pw, axis=1, out=self.C[r, :, 1:])
        np.cumsum(np.abs(pw * self.w), axis=1, out=self.C[_R + 1, :, 1:])

    def cuts(self, zabs: np.ndarray) -> np.ndarray:
        """Number of entries per row with |W| <= Q RHO/|z| (those go through the series)."""
        tau = np.where(zabs > 0, _Q * self.rho / np.where(zabs > 0, zabs, 1.0), np.inf)
        out = np.empty(zabs.shape, dtype=np.int64)
        for i in range(self.rows):
            out[i] = np.searchsorted(self.absw[i], tau[i], side="right")
        return out

    def evaluate(self, z: np.ndarray, *, singles: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """log Psi (centred), sum_j E1(z W_j) (if singles) and a bound on the series remainder of log Psi.

        ``z`` has shape (rows, K), complex.
        """
        p, lam = self.p, self.lam
        zabs = np.abs(z)
        rows, K = z.shape
        n1 = self.n1
        if n1 == 0:
            zero = np.zeros(z.shape, dtype=np.complex128)
            return zero, (zero if singles else None), np.zeros(z.shape)
        cut = self.cuts(zabs)
        G = np.stack([np.take_along_axis(self.C[r], cut, axis=1) for r in range(_R + 2)], axis=2)  # (rows, K, R+2)
        acc = np.zeros(z.shape, dtype=np.complex128)
        for r in range(_R, 1, -1):
            acc = acc * z + lam[r] * G[:, :, r]
        logpsi = acc * z * z
        e1sum = None
        if singles:
            # E1 has Taylor coefficients 1/(r+1)!: remainder at |zw| <= 1.44 is < 1.44^37/37! per entry
            acc = np.zeros(z.shape, dtype=np.complex128)
            for r in range(_R, -1, -1):
                acc = acc * z + G[:, :, r] / math.factorial(r + 1)
            e1sum = acc
        # Cauchy: |lambda_r| <= M/RHO^r; sum_{r>R} M (|z||w|/RHO)^r <= M/(1-Q) (|z|/RHO)^{R+1} sum |w|^{R+1}
        series_bound = self.M / (1.0 - _Q) * (zabs / self.rho) ** (_R + 1) * G[:, :, _R + 1]
        self.exact_count += int((n1 - cut).sum())
        # exact part: entries above the threshold, node by node, as a product of factors
        ne = n1 - cut
        pos = np.arange(n1)
        real = not np.any(z.imag)
        zz = z.real if real else z
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            for k in range(K):
                e = int(ne[:, k].max())
                if e == 0:
                    continue
                sub = self.w[:, n1 - e :]
                mask = pos[n1 - e :][None, :] >= cut[:, k][:, None]
                if real and not singles:  # real arguments (Chernoff grid): overflow-free log-sum-exp form
                    logpsi[:, k] += np.where(mask, _log_f_real(zz[:, k][:, None] * sub, p), 0.0).sum(axis=1)
                    continue
                u = zz[:, k][:, None] * sub
                e1 = np.expm1(u) / u
                f = np.where(mask, (1.0 - p) + p * e1, 1.0)
                prod = f.prod(axis=1)
                shift = -0.5 * p * zz[:, k] * np.where(mask, sub, 0.0).sum(axis=1)
                bad = ~np.isfinite(prod)
                if bad.any():  # overflow of the running product: sum of logarithms instead
                    prod[bad] = 1.0
                    shift[bad] += np.log(f[bad]).sum(axis=1)
                logpsi[:, k] += np.log(prod) + shift
                if singles:
                    e1sum[:, k] += np.where(mask, e1, 0.0).sum(axis=1)
        return logpsi, e1sum, series_bound


def _direct_log_mgf(off: np.ndarray, z: np.ndarray, p: float, singles: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact sum over all entries (small n): (rows, K) from off (rows, n1) and z (rows, K)."""
    rows, K = z.shape
    n1 = off.shape[1]
    lp = np.zeros(z.shape, dtype=np.complex128)
    es = np.zeros(z.shape, dtype=np.complex128) if singles else None
    step = max(1, int(2_000_000 // max(1, rows * n1)))
    if not singles and not np.any(z.imag):  # real arguments: overflow-free form
        for k0 in range(0, K, step):
            lp[:, k0 : k0 + step] = _log_f_real(z.real[:, k0 : k0 + step, None] * off[:, None, :], p).sum(axis=2)
        return lp, None
    for k0 in range(0, K, step):
        u = z[:, k0 : k0 + step, None] * off[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            e1 = _e1(u)
            lp[:, k0 : k0 + step] = (np.log((1.0 - p) + p * e1) - 0.5 * p * u).sum(axis=2)
        if singles:
            es[:, k0 : k0 + step] = e1.sum(axis=2)
    return lp, es


def _series_or(x: np.ndarray, small: float, series, direct) -> np.ndarray:  # noqa: ANN001
    """``series(x)`` where |x| < small, ``direct(x)`` elsewhere (both vectorised)."""
    m = np.abs(x) < small
    out = np.empty_like(x)
    if m.any():
        out[m] = series(x[m])
    if (~m).any():
        out[~m] = direct(x[~m])
    return out


def _direct_remainder(off: np.ndarray, z: np.ndarray, p: float) -> np.ndarray:
    """Psi_rem / (e^{z nu0} (1-p)^{n1}) = prod(1 + q E1_j) - 1 - q sum E1_j, q = p/(1-p), without cancellation.

    With x_j = q E1(z W_j) and S = sum log1p(x_j): expm1(S) - S + sum(log1p(x_j) - x_j), each bracket
    by its Taylor series where small (the atom and single-feature parts never enter).
    """
    q = p / (1.0 - p)
    rows, K = z.shape
    out = np.zeros(z.shape, dtype=np.complex128)
    step = max(1, int(2_000_000 // max(1, rows * off.shape[1])))
    for k0 in range(0, K, step):
        x = q * _e1(z[:, k0 : k0 + step, None] * off[:, None, :])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            l1 = np.log1p(x)
            d1 = _series_or(x, 0.1, lambda t: sum((-1) ** (k + 1) * t**k / k for k in range(2, 18)), lambda t: np.log1p(t) - t)
            S = l1.sum(axis=2)
            e2 = _series_or(S, 0.1, lambda t: sum(t**k / math.factorial(k) for k in range(2, 16)), lambda t: np.expm1(t) - t)
        out[:, k0 : k0 + step] = e2 + d1.sum(axis=2)
    return out


def interference_log_mgf(W: object, p: object, z: object) -> np.ndarray:
    r"""Exact :math:`\log\Psi_i(z) = \log E\,e^{z\nu_i}` for every row i at complex points z (docs/theory.md §7).

    .. math::
        \log\Psi_i(z) = \sum_{j\ne i}\Big[\log\big(1-p+p\,\tfrac{e^{zW_{ij}}-1}{zW_{ij}}\big) - \tfrac p2 zW_{ij}\Big]

    evaluated by the series/exact split described in the module docstring (branch: the sum of
    principal logarithms, so ``exp`` of the result is exact, the imaginary part is defined mod 2π).
    ``z`` is a 1-D array; returns shape (n, len(z)).
    """
    W = check_finite(W, "W")
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be a square n×n matrix, got shape {W.shape}")
    p = float(check_probability(p))
    z = np.atleast_1d(np.asarray(z, dtype=np.complex128))
    if not np.all(np.isfinite(z)):
        raise ValueError("z must be finite")
    n = W.shape[0]
    rp = row_parameters(W, np.zeros(n), p)
    _, _, off = rp.a, rp.effective_bias, rp.off
    sr = _SortedRows(off, p)
    return sr.evaluate(np.broadcast_to(z, (n, z.size)).copy(), singles=False)[0]


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


def _invert_block(
    off: np.ndarray, a: np.ndarray, c: np.ndarray, p: float, tol: float, direct: bool, max_nodes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    r_live = off.shape[0]
    sr = None if direct else _SortedRows(off, p)

    # discrete parts: atom (all off) and single-uniform parts (exactly one feature on)
    with np.errstate(divide="ignore"):
        log_a0 = (n1 * np.log1p(-p)) if p < 1 else -np.inf
        log_a1 = (math.log(p) + (n1 - 1) * np.log1p(-p)) if (p < 1 and n1 >= 1) else (0.0 if n1 == 1 else -np.inf)
    alpha0 = math.exp(log_a0) if np.isfinite(log_a0) else 0.0
    alpha1 = math.exp(log_a1) if np.isfinite(log_a1) else 0.0
    subtract = (alpha0 + n1 * alpha1) > 1e-3 * tol
    base = np.full(r_live, p / 3.0)
    if subtract:
        atom = alpha0 * _profile(nu0, a, c, p)
        singles_val = alpha1 * _uniform_average_profile(nu0[:, None], off, a[:, None], c[:, None], p).sum(axis=1)
        base = atom + singles_val + (p / 3.0) * (1.0 - alpha0 - n1 * alpha1)

    def log_mgf(z: np.ndarray, singles: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if direct:
            lp, e1s = _direct_log_mgf(off, z, p, singles)
            return lp, e1s, np.zeros(z.shape)
        return sr.evaluate(z, singles=singles)

    # Chernoff grid (real z): P(nu > x) <= Psi(theta) e^{-theta x}
    theta = sigma[:, None] * 0 + np.array([1.0, 3.0, 6.0, 12.0])[None, :] / sigma[:, None]
    lp_theta = log_mgf(theta.astype(np.complex128), False)[0].real
    x_top = np.maximum(c, a + c)
    x_clip = -x_top
    A = 2.0 * np.abs(a) + 1.0
    T = np.maximum(_chernoff_upper(lp_theta, theta, 70.0) - x_clip, 12.0 * sigma)
    T = np.maximum(T, 1e-300)

    def alias_bound(T: np.ndarray) -> np.ndarray:
        beta = _BETA_T / T
        left = np.min(
            np.exp(np.minimum(_BETA_T + lp_theta - theta * (T + x_clip)[:, None], 700.0))
            * _sup_poly_exp(p / 3.0, A[:, None], theta),
            axis=1,
        )
        right = np.exp(-beta * T) * (p / 3.0 + 2.0 * (T + np.abs(x_clip) + A) ** 2 + 2.0 * sigma**2) * 1.01
        return left + right

    def roundoff_prediction(T: np.ndarray) -> np.ndarray:
        # 16 eps (h/pi) K max|F|, max|F| <= Psi(beta)|Lambda(beta)|; log Psi is convex with log Psi(0) = 0,
        # so chords of the theta grid bound it from above (beyond the grid: the last chord, extended)
        beta = _BETA_T / T
        h = 2.0 * np.pi / T
        th = np.concatenate([np.zeros((r_live, 1)), theta], axis=1)
        lp = np.concatenate([np.zeros((r_live, 1)), lp_theta], axis=1)
        j = np.clip((th < beta[:, None]).sum(axis=1), 1, th.shape[1] - 1)
        rr = np.arange(r_live)
        slope = (lp[rr, j] - lp[rr, j - 1]) / (th[rr, j] - th[rr, j - 1])
        lp_beta = lp[rr, j - 1] + slope * (beta - th[rr, j - 1])
        lam0 = np.abs(_lambda_transform(beta.astype(np.complex128), a, c, p))
        k_est = np.sqrt(beta**2 + 2.0 * (math.log(1.0 / tol) + 10.0)) / sigma / h + 1.0
        with np.errstate(over="ignore"):
            return 16.0 * _EPS * (h / np.pi) * k_est * np.exp(np.minimum(lp_beta, 700.0)) * lam0

    for _ in range(80):
        bad = (alias_bound(T) > 0.25 * tol) | (roundoff_prediction(T) > 0.25 * tol)
        if not bad.any():
            break
        T = np.where(bad, T * 1.2, T)
    ab = alias_bound(T)
    beta = _BETA_T / T
    h = 2.0 * np.pi / T

    # nodes: Gaussian guess for the first chunk, then extend until the trailing terms are small
    s_max = np.sqrt(beta**2 + 2.0 * (math.log(1.0 / tol) + 10.0)) / sigma
    K0 = int(min(max(np.max(np.ceil(s_max / h)) + 1, 16), max_nodes))
    total = np.zeros(r_live, dtype=np.complex128)
    abs_sum = np.zeros(r_live)
    series_err = np.zeros(r_live)
    k_done = 0
    chunk = K0
    trunc = np.full(r_live, np.inf)
    while True:
        k = np.arange(k_done, k_done + chunk)
        z = beta[:, None] + 1j * h[:, None] * k[None, :]
        stable = direct and subtract and p < 1.0
        if stable:  # small n: the remainder without cancellation (matters when p n is small)
            with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
                rem = _direct_remainder(off, z, p)
                psi = np.exp(z * nu0[:, None] + n1 * math.log1p(-p)) * rem
            lp, e1s, sb = np.log(np.where(psi == 0, 1.0, psi)), None, np.zeros(z.shape)
        else:
            lp, e1s, sb = log_mgf(z, subtract)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            if not stable:
                psi = np.exp(lp)
            scale = np.abs(psi)  # magnitude before the subtraction: what roundoff is relative to
            if subtract and not stable:
                disc = np.exp(z * nu0[:, None]) * (alpha0 + alpha1 * e1s)
                psi = psi - disc
                scale = scale + np.abs(disc)
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
    integral = (h / np.pi) * total.real
    # each node's Psi carries ~n1 rounding errors (sum of logs / product) before the subtraction
    roundoff = 16.0 * _EPS * (h / np.pi) * abs_sum * max(1.0, math.sqrt(n1))
    loss[live] = base + integral
    err[live] = ab + trunc + roundoff + (h / np.pi) * series_err + 16.0 * _EPS * np.abs(base)
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
) -> FiniteNLoss:
    r"""Exact expected loss :math:`\frac1n\sum_i E\,\ell(\nu_i)` of ``y = ReLU(W x + b)`` at finite n (docs/theory.md §7).

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
    block_rows = max(1, min(block_rows, int(24_000_000 // (n * (_R + 2)))))
    for start in range(0, n, block_rows):
        sl = slice(start, min(n, start + block_rows))
        row_loss[sl], row_err[sl], nodes[sl] = _invert_block(off[sl], a[sl], c[sl], p, tol, direct, max_nodes)
    report_accuracy(float(row_err.mean()), tol, on_inaccurate, "exact_loss_from_weights loss")
    return FiniteNLoss(
        loss=float(row_loss.mean()),
        error=float(row_err.mean()),
        row_loss=row_loss,
        row_error=row_err,
        a=a,
        c=c,
        sigma=sigma,
        nodes=nodes,
    )


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
    val, err, _ = _invert_block(off, np.array([w[i]]), c, p, tol, off.shape[1] <= 48, 1 << 15)
    return float(val[0]), float(err[0])


def exact_loss_from_factors(W_in: object, W_out: object, b: object, p: object, **kwargs: object) -> FiniteNLoss:
    """:func:`exact_loss_from_weights` of ``W = W_out @ W_in`` (W_in m×n, W_out n×m)."""
    W_in = check_finite(W_in, "W_in")
    W_out = check_finite(W_out, "W_out")
    if W_in.ndim != 2 or W_out.ndim != 2 or W_in.shape[::-1] != W_out.shape:
        raise ValueError(f"W_in (m×n) and W_out (n×m) must have transposed shapes, got {W_in.shape} and {W_out.shape}")
    return exact_loss_from_weights(W_out @ W_in, b, p, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# independent routes: enumeration (tiny n) and Monte Carlo


def _profile_relu_terms(a: float, c: float, p: float) -> list[tuple[float, float, int]]:
    """l(nu) - p/3 = sum coef * ReLU(nu + shift)^q, as (coef, shift, q); needs a != 0."""
    k3 = p * (1.0 / (3.0 * a) + 1.0 / (3.0 * a * a))
    return [(1.0 - p, c, 2), (k3, a + c, 3), (-k3, c, 3), (-p / a, a + c, 2)]


def enumeration_loss_from_weights(W: object, b: object, p: object, *, return_error: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
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
        states = np.array(np.meshgrid(*([np.arange(3)] * m), indexing="ij")).reshape(m, -1).T if m else np.zeros((1, 0), int)
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
            val = math.factorial(q) / np.array([math.factorial(q + kk) for kk in k]) * sign * _relu(y) ** (q + k) / prod_w
            total += coef * math.fsum(prob * val)
            abs_total += float(np.sum(np.abs(coef * prob * val) * (q + k + 1)))
        del n_zero
        out[i] = total
        err[i] = 8.0 * _EPS * abs_total
    return (out, err) if return_error else out

