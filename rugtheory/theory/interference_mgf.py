r"""The exact moment generating function of the interference ν_i (docs/theory.md §7.1, §13.6).

For ``ν_i = Σ_{j≠i} W_ij (x_j − p/2)`` with independent ``x_j = B_j U_j``,

.. math::
    \log\Psi_i(z) = \sum_{j\ne i}\Big[\log\big(1-p+p\,E_1(zW_{ij})\big) - \tfrac p2 zW_{ij}\Big],
    \qquad E_1(u) = (e^u - 1)/u.

An entry with :math:`|zW_{ij}| \le` ``SERIES_FRACTION · SERIES_RADIUS`` enters through the Taylor series
:math:`\sum_{r\ge2}\lambda_r (zW)^r` (coefficients by a Cauchy integral on the circle of radius
``SERIES_RADIUS``; the nearest zero of :math:`1-p+pE_1` has modulus ≥ 4.83 for every p), so a row's sum
over those entries is :math:`\sum_r \lambda_r z^r S_r` with power sums over the row sorted by
:math:`|W_{ij}|` (:class:`SortedRows`); the few larger entries are multiplied out exactly. For small n,
:func:`direct_log_mgf` sums every entry exactly and :func:`direct_remainder` forms the transform
without its atom and single-feature parts, without cancellation. :mod:`rugtheory.theory.finite_n`
inverts these transforms.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from rugtheory.theory.checks import check_finite, check_int, check_probability
from rugtheory.theory.weights import row_parameters

__all__ = [
    "SERIES_FRACTION",
    "SERIES_ORDER",
    "SERIES_RADIUS",
    "SortedRows",
    "FullSortedRows",
    "TAIL_SLACK",
    "direct_log_mgf",
    "direct_remainder",
    "interference_log_mgf",
    "sparse_uniform_log_mgf_coefficients",
]

#: Radius of the Cauchy circle for the Taylor coefficients of log E e^{uX}; the nearest zero of
#: 1 - p + p(e^u - 1)/u has modulus >= 4.83 over p in (0, 1] (minimum near p = 0.44).
SERIES_RADIUS = 3.6
#: An entry goes through the Taylor series where |z W| <= SERIES_FRACTION * SERIES_RADIUS
#: (ratio 0.4 to the Cauchy circle).
SERIES_FRACTION = 0.4
#: Series order. The remainder is bounded per node by Cauchy's estimate with the actual power sum
#: sum |w|^{R+1} (it enters the error estimate); at most 0.4^25 = 1e-10 relative per entry, and far
#: less for the bulk of entries, which sit well inside the threshold except at the outermost nodes
#: where |Psi| is already negligible.
SERIES_ORDER = 24
#: :class:`SortedRows` keeps entries above TAIL_SLACK x (the smallest series threshold seen) sorted, so
#: that arguments up to 1/TAIL_SLACK times larger in modulus need no re-split of the row.
TAIL_SLACK = 0.7


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
        big_val = np.logaddexp(
            np.log(rest) if np.all(rest > 0) else np.where(rest > 0, np.log(np.where(rest > 0, rest, 1.0)), -np.inf),
            math.log(p) + ub - np.log(ub),
        )
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
    coef = np.fft.fft(logf)[: SERIES_ORDER + 2] / N / rho ** np.arange(SERIES_ORDER + 2)
    lam = coef.real.copy()
    return lam, float(np.max(np.abs(logf))), rho


def sparse_uniform_log_mgf_coefficients(p: float, order: int = SERIES_ORDER) -> np.ndarray:
    r"""Taylor coefficients :math:`\lambda_r` of :math:`\log E e^{uX} = \log(1-p+p(e^u-1)/u)`, X = BU.

    :math:`\lambda_r = \kappa_r(X)/r!` (cumulants; :math:`\lambda_1 = p/2`, :math:`\lambda_2 = v/2`).
    Computed as a Cauchy integral (512-point trapezoid) on :math:`|u| = 3.6`, inside the
    convergence disc (radius ≥ 4.83 for every p). Returns r = 0..order.
    """
    p = float(check_probability(p))
    order = check_int(order, "order", low=0, high=SERIES_ORDER + 1)
    return _log_mgf_coefficients(p)[0][: order + 1].copy()


# --------------------------------------------------------------------------------------------
# log Psi(z) per row: Taylor series for small |zW|, exact product for the rest


def _add_exact_part(logpsi: np.ndarray, e1sum: np.ndarray | None, z: np.ndarray, w: np.ndarray, cut: np.ndarray,
                    ne: np.ndarray, p: float, singles: bool) -> None:
    """Add to ``logpsi`` (and ``e1sum``) the entries of each row above its threshold, node by node, as a
    product of exact factors. ``w`` holds each row's entries sorted by magnitude with the largest last;
    entries ``cut[:, k]`` onwards (``ne[:, k]`` of them) are above the threshold at node k."""
    E = w.shape[1]
    pos = np.arange(E)
    real = not np.any(z.imag)
    zz = z.real if real else z
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for k in range(z.shape[1]):
            e = int(ne[:, k].max())
            if e == 0:
                continue
            sub = w[:, E - e :]
            mask = pos[E - e :][None, :] >= cut[:, k][:, None]
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


class SortedRows:
    r"""Off-diagonal rows split per row at a threshold ``t0``, for the series/exact split of log Psi.

    The *bulk* (``|W_ij| <= t0``, most entries) always goes through the Taylor series, so it enters only
    through its power sums :math:`\sum w^r` (r = 0..R, and :math:`\sum |w|^{R+1}`), computed in column
    blocks that stay in cache. The *tail* (``|W_ij| > t0``) is sorted by ``|W_ij|``, right-aligned in a
    (rows, E) array (zeros in front), with cumulative power sums, so that any cut between series and
    exact entries inside it costs a lookup. ``t0`` is set lazily from the first arguments, at
    :data:`TAIL_SLACK` times the smallest series threshold, and lowered (only for the rows that need it)
    when a later ``z`` would put a bulk entry on the exact side. Work per row: O(n R) multiply-adds plus
    a sort of the tail only, against a full sort and O(n R) stored cumulative sums before (:class:`FullSortedRows`).
    """

    def __init__(self, off: np.ndarray, p: float):
        self.off = off
        self.p = p
        self.rows, self.n1 = off.shape
        self.lam, self.M, self.rho = _log_mgf_coefficients(p)
        self.exact_count = 0
        self.rebuilds = 0
        self.t0 = np.full(self.rows, np.inf)
        self.bulk = np.zeros((SERIES_ORDER + 2, self.rows))  # power sums of the bulk, r = 0..R and |w|^(R+1)
        self.tail_count = np.full(self.rows, 0, dtype=np.int64)
        self.tw = np.zeros((self.rows, 0))  # tail entries, sorted by |w|, right-aligned
        self.tabs = np.zeros((self.rows, 0))
        self.Ct = np.zeros((SERIES_ORDER + 2, self.rows, 1))  # Ct[r, i, j] = sum of the first j tail slots^r
        self._built = False

    def _bulk_sums(self, w: np.ndarray) -> np.ndarray:
        """(R+2, rows) power sums of ``w`` (bulk entries; others zeroed), over column blocks that stay in cache."""
        out = np.zeros((SERIES_ORDER + 2, w.shape[0]))
        step = max(256, (1 << 17) // max(1, w.shape[0]))
        for c0 in range(0, w.shape[1], step):
            blk = w[:, c0:c0 + step]
            pw = blk.copy()
            for r in range(1, SERIES_ORDER + 1):
                if r > 1:
                    pw *= blk
                out[r] += pw.sum(axis=1)
            np.abs(pw, out=pw)
            pw *= np.abs(blk)
            out[SERIES_ORDER + 1] += pw.sum(axis=1)
        return out

    def _build(self, idx: np.ndarray, t0: np.ndarray) -> None:
        """(Re)split rows ``idx`` at thresholds ``t0``."""
        w = self.off[idx]
        absw = np.abs(w)
        is_tail = absw > t0[:, None]
        count = is_tail.sum(axis=1)
        bulk = self._bulk_sums(np.where(is_tail, 0.0, w))
        bulk[0] = self.n1 - count
        e_new = int(count.max()) if count.size else 0
        E = max(e_new, self.tw.shape[1])
        if E > self.tw.shape[1]:  # widen: zeros in front of every row (they add nothing to the sums)
            pad = E - self.tw.shape[1]
            self.tw = np.pad(self.tw, ((0, 0), (pad, 0)))
            self.tabs = np.pad(self.tabs, ((0, 0), (pad, 0)))
            self.Ct = np.pad(self.Ct, ((0, 0), (0, 0), (pad, 0)))
        tw = np.zeros((idx.size, E))
        if e_new:
            key = np.where(is_tail, absw, -1.0)
            top = np.argpartition(key, self.n1 - e_new, axis=1)[:, self.n1 - e_new:]
            ktop = np.take_along_axis(key, top, axis=1)
            order = np.argsort(ktop, axis=1)
            top = np.take_along_axis(top, order, axis=1)
            sel = np.take_along_axis(ktop, order, axis=1) >= 0.0
            tw[:, E - e_new:] = np.where(sel, np.take_along_axis(w, top, axis=1), 0.0)
        Ct = np.zeros((SERIES_ORDER + 2, idx.size, E + 1))
        pw = tw.copy()
        for r in range(1, SERIES_ORDER + 1):
            if r > 1:
                pw *= tw
            np.cumsum(pw, axis=1, out=Ct[r, :, 1:])
        np.cumsum(np.abs(pw * tw), axis=1, out=Ct[SERIES_ORDER + 1, :, 1:])
        self.tw[idx], self.tabs[idx], self.Ct[:, idx] = tw, np.abs(tw), Ct
        self.bulk[:, idx] = bulk
        self.tail_count[idx] = count
        self.t0[idx] = t0

    def _ensure(self, tau_min: np.ndarray) -> None:
        """Split so that every bulk entry is on the series side for thresholds >= ``tau_min`` (per row)."""
        need = (tau_min < self.t0) | (not self._built)
        if need.any():
            idx = np.flatnonzero(need)
            self._build(idx, np.where(np.isfinite(tau_min[idx]), TAIL_SLACK * tau_min[idx], np.inf))
            self.rebuilds += int(self._built)
            self._built = True

    def evaluate(self, z: np.ndarray, *, singles: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """log Psi (centred), sum_j E1(z W_j) (if singles) and a bound on the series remainder of log Psi.

        ``z`` has shape (rows, K), complex.
        """
        p, lam = self.p, self.lam
        zabs = np.abs(z)
        rows, K = z.shape
        if self.n1 == 0:
            zero = np.zeros(z.shape, dtype=np.complex128)
            return zero, (zero if singles else None), np.zeros(z.shape)
        # entries with |W| <= tau go through the series
        tau = np.where(zabs > 0, SERIES_FRACTION * self.rho / np.where(zabs > 0, zabs, 1.0), np.inf)
        self._ensure(tau.min(axis=1))
        E = self.tw.shape[1]
        cut = np.empty(zabs.shape, dtype=np.int64)  # series slots of the tail (the zeros in front included)
        for i in range(self.rows):
            cut[i] = np.searchsorted(self.tabs[i], tau[i], side="right")
        G = np.empty((SERIES_ORDER + 2, rows, K))
        G[0] = self.bulk[0][:, None] + cut - (E - self.tail_count)[:, None]
        for r in range(1, SERIES_ORDER + 2):
            G[r] = self.bulk[r][:, None] + np.take_along_axis(self.Ct[r], cut, axis=1)
        acc = np.zeros(z.shape, dtype=np.complex128)
        for r in range(SERIES_ORDER, 1, -1):
            acc = acc * z + lam[r] * G[r]
        logpsi = acc * z * z
        e1sum = None
        if singles:
            # E1 has Taylor coefficients 1/(r+1)!: remainder at |zw| <= 1.44 is < 1.44^37/37! per entry
            acc = np.zeros(z.shape, dtype=np.complex128)
            for r in range(SERIES_ORDER, -1, -1):
                acc = acc * z + G[r] / math.factorial(r + 1)
            e1sum = acc
        # Cauchy: |lambda_r| <= M/RHO^r; sum_{r>R} M (|z||w|/RHO)^r <= M/(1-Q) (|z|/RHO)^{R+1} sum |w|^{R+1}
        series_bound = self.M / (1.0 - SERIES_FRACTION) * (zabs / self.rho) ** (SERIES_ORDER + 1) * G[SERIES_ORDER + 1]
        ne = E - cut
        self.exact_count += int(ne.sum())
        _add_exact_part(logpsi, e1sum, z, self.tw, cut, ne, p, singles)
        return logpsi, e1sum, series_bound


class FullSortedRows:
    """The former layout of :class:`SortedRows`: every row fully sorted, with cumulative power sums of
    every entry (O(n R) memory per row). Same results within rounding; kept for the side-by-side benchmark
    (``legacy=True`` of :func:`rugtheory.theory.finite_n.exact_loss_from_weights`)."""

    def __init__(self, off: np.ndarray, p: float):
        order = np.argsort(np.abs(off), axis=1, kind="stable")
        self.w = np.take_along_axis(off, order, axis=1)
        self.absw = np.abs(self.w)
        self.p = p
        self.rows, self.n1 = off.shape
        self.lam, self.M, self.rho = _log_mgf_coefficients(p)
        self.exact_count = 0
        # C[r, i, j] = sum_{l < j} w_il^r for r = 0..R, and sum |w|^{R+1} in the last slot
        self.C = np.empty((SERIES_ORDER + 2, self.rows, self.n1 + 1))
        self.C[:, :, 0] = 0.0
        pw = np.ones_like(self.w)
        for r in range(0, SERIES_ORDER + 1):
            if r > 0:
                pw *= self.w
            np.cumsum(pw, axis=1, out=self.C[r, :, 1:])
        np.cumsum(np.abs(pw * self.w), axis=1, out=self.C[SERIES_ORDER + 1, :, 1:])

    def cuts(self, zabs: np.ndarray) -> np.ndarray:
        """Number of entries per row with |W| <= Q RHO/|z| (those go through the series)."""
        tau = np.where(zabs > 0, SERIES_FRACTION * self.rho / np.where(zabs > 0, zabs, 1.0), np.inf)
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
        G = np.stack(
            [np.take_along_axis(self.C[r], cut, axis=1) for r in range(SERIES_ORDER + 2)], axis=2
        )  # (rows, K, R+2)
        acc = np.zeros(z.shape, dtype=np.complex128)
        for r in range(SERIES_ORDER, 1, -1):
            acc = acc * z + lam[r] * G[:, :, r]
        logpsi = acc * z * z
        e1sum = None
        if singles:
            # E1 has Taylor coefficients 1/(r+1)!: remainder at |zw| <= 1.44 is < 1.44^37/37! per entry
            acc = np.zeros(z.shape, dtype=np.complex128)
            for r in range(SERIES_ORDER, -1, -1):
                acc = acc * z + G[:, :, r] / math.factorial(r + 1)
            e1sum = acc
        # Cauchy: |lambda_r| <= M/RHO^r; sum_{r>R} M (|z||w|/RHO)^r <= M/(1-Q) (|z|/RHO)^{R+1} sum |w|^{R+1}
        series_bound = (
            self.M / (1.0 - SERIES_FRACTION) * (zabs / self.rho) ** (SERIES_ORDER + 1) * G[:, :, SERIES_ORDER + 1]
        )
        self.exact_count += int((n1 - cut).sum())
        _add_exact_part(logpsi, e1sum, z, self.w, cut, n1 - cut, p, singles)
        return logpsi, e1sum, series_bound


def direct_log_mgf(off: np.ndarray, z: np.ndarray, p: float, singles: bool) -> tuple[np.ndarray, np.ndarray | None]:
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


def direct_remainder(off: np.ndarray, z: np.ndarray, p: float) -> np.ndarray:
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
            d1 = _series_or(
                x, 0.1, lambda t: sum((-1) ** (k + 1) * t**k / k for k in range(2, 18)), lambda t: np.log1p(t) - t
            )
            S = l1.sum(axis=2)
            e2 = _series_or(
                S, 0.1, lambda t: sum(t**k / math.factorial(k) for k in range(2, 16)), lambda t: np.expm1(t) - t
            )
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
    sr = SortedRows(off, p)
    return sr.evaluate(np.broadcast_to(z, (n, z.size)).copy(), singles=False)[0]
