r"""The optimal symmetric loss :math:`L^*(p, r)` of docs/theory.md §4 and its baselines.

With the rank bound at equality, :math:`\sigma = a s`, :math:`s^2 = v(1/r - 1)`, and writing
:math:`y = a\,\mathrm{ReLU}(x - \theta + sZ)` (so :math:`b = -a\theta`), the optimum over the gain is
:math:`a^* = N/D` with :math:`N(\theta) = E[xR_\theta]`, :math:`D(\theta) = E[R_\theta^2]`,
:math:`R_\theta = \mathrm{ReLU}(x + sZ - \theta)`, and

.. math:: L^*(p, r) = \frac p3 - \max_\theta \frac{N(\theta)^2}{D(\theta)} .

That difference cancels catastrophically when :math:`L^* \ll p/3`, so it is used only to locate
:math:`\theta^*`; the reported loss is :func:`rugtheory.theory.symmetric.symmetric_loss` evaluated at
:math:`(a^*, -a^*\theta^*, a^* s)`, which has no cancellation. Since the loss is stationary in both
a and θ there, an error δ in θ* changes it only by O(δ²).

Search for θ* (the maximiser ranges from far below zero at dense p and small r to about
:math:`s\sqrt{2\ln(1/p)} \le 7.5 s` at high sparsity): a candidate grid in units of s (θ/s from -12
to 16 in steps of 1/2; below -12 s the ReLU clips with probability < 1e-32 and the best θ there is the
affine one), the data range [0, 1] in steps of 0.05, and the affine optimum
:math:`\theta_{\rm aff} = -p(1-r)/(2r)` with neighbours at ±s/2, ±s, ... . Ratios are used only where
both moments exceed 1e-280 (no underflow noise). The two best local maxima are refined by
scipy's vectorised bracketed root finder (``scipy.optimize.elementwise.find_root``) on the sign of
:math:`d(N^2/D)/d\theta \propto 2N'D - ND'` inside the grid bracket, so the result is never a
bracket edge, and the better is kept. Where
:math:`L^* < 10^{-6} p/3` the ratio cannot rank candidates (they agree to the last digits), so
those points are ranked by the stable loss instead.

Regimes (issue 11: correct for every accepted float, p in [2.2e-308, 1], r in [1e-300, 1]):
the search above (moments divided by p, so N²/D never underflows; θ/s grid extended to 44 for
p < 1e-30) runs for ``S_SMALL < s <= S_HUGE``. For s <= ``S_SMALL`` (high sparsity, r → 1) the
gain a ≈ 1 + O(s) is not resolvable in float64, so the optimum is found in the scaled variables
θ = sτ, a = 1 + sα of :func:`_small_s_objective`, whose L/(p s²) is exact and cancellation-free
and tends to the K(p) problem of docs/theory.md §6; L* = p s² Λ* is then correctly rounded
(it underflows to 0 for p ≲ 1e-155 at r = 1/4 while θ*, a*, s keep full precision). The affine
optimum (a = r, θ = -p(1-r)/(2r)) with the ReLU applied is always a candidate, so L* <= (1-r)v
holds; it is the answer for s > ``S_HUGE``. Checked against the mpmath oracle at
2 log10(1/s) + 30 digits (tests/test_optimum.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rugtheory.theory.channel import scaled_repeated_normal_integrals
from rugtheory.theory.checks import check_probability, check_ratio
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.normal import SQRT_2PI, norm_cdf, relu_gaussian_moments
from rugtheory.theory.symmetric import (
    interference_scale,
    relu_gaussian_mean,
    relu_gaussian_second_moment,
    symmetric_loss,
)

_GL_X, _GL_W = gauss_legendre_unit(24)  # docs/theory.md §3: exact to rounding where |a| <= sigma

__all__ = [
    "check_symmetric_domain",
    "SymmetricOptimum",
    "optimal_symmetric_loss",
    "zero_loss",
    "linear_loss",
    "linear_loss_no_bias",
    "affine_threshold",
]

#: Interference scale above which the x-integrals of N, D are done by Gauss–Legendre (the integrand
#: is then smooth on the data range and the closed-form differences over t1 - t0 = 1/s would cancel).
S_GL_SWITCH = 30.0
#: A moment below this is treated as underflow: the ratio N^2/D is not trusted there.
MOMENT_FLOOR = 1e-280
#: Rows whose best p/3 - N^2/D is below this fraction of p/3 are ranked by the stable loss.
FRAGILE_DEFICIT = 1e-6
#: Local maxima refined per point (the best two by grid score).
N_CANDIDATES = 2
#: Below this p the θ/s grid of the direct search is extended from 16 to 44.
TAU_WIDE_BELOW_P = 1e-30
#: At or below this interference scale the optimum is found in the scaled variables of
#: :func:`_small_s_objective` (θ = sτ, a = 1 + sα), which are exact and free of cancellation there.
S_SMALL = 1e-3
#: Above this interference scale the affine optimum is returned: the gain of any estimator over it
#: is at most about κ₃²r²/(2v²) (docs/theory.md §6, r → 0), below 1e-300 of (1-r)v here.
S_HUGE = 1e100
#: Points whose candidate grid is evaluated at a time in the search (~40 KB of temporaries a point, so
#: ~40 MB); the refinement then runs once over all points, so a call's memory beyond this is ~5 KB a point.
SEARCH_ROWS = 1024
#: Smallest accepted r: below it θ* = -p(1-r)/(2r) of the affine regime is not a finite float.
R_MIN = 1e-300
#: Smallest accepted p, the smallest normal float64: below it v = p/3 - p²/4 and s lose precision.
P_MIN = float(np.finfo(np.float64).tiny)


def zero_loss(p: np.ndarray | float) -> np.ndarray:
    """Loss of the zero output, :math:`E x^2 = p/3` (docs/theory.md §5)."""
    return check_probability(p) / 3.0


def linear_loss(p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    r"""Best rank-m affine map (PCA with bias), :math:`(1-r)\,v` per feature (docs/theory.md §5).

    The covariance of x is :math:`vI`, so any m principal directions keep :math:`mv` of the total
    :math:`nv`. On the symmetric channel the Wiener filter gives the same value.
    """
    p = check_probability(p)
    r = check_ratio(r)
    return (1.0 - r) * p * (1.0 / 3.0 - p / 4.0)


def linear_loss_no_bias(p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    r"""Best rank-m linear map without bias, also :math:`(1-r)\,v` for m >= 1 (docs/theory.md §5).

    The second-moment matrix :math:`vI + (p/2)^2 \mathbf 1\mathbf 1^T` has top eigenvalue
    :math:`v + n p^2/4` on the all-ones direction and v on the rest; keeping the top m discards
    :math:`(n-m)v`. (The reference code's :math:`(1-r)p/3` is slightly too high.)
    """
    return linear_loss(p, r)


def affine_threshold(p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    r"""θ of the affine (Wiener) optimum written as :math:`a(x + sZ - \theta)`: :math:`-p(1-r)/(2r)`."""
    p = check_probability(p)
    r = check_ratio(r)
    return -0.5 * p * (1.0 - r) / r


@with_compact_repr
@dataclass(frozen=True)
class SymmetricOptimum:
    """Optimum of the symmetric model at rank-bound equality (docs/theory.md §4); arrays broadcast over (p, r).

    Attributes
    ----------
    loss : L*(p, r) per feature.
    a, b, sigma : optimal gain a*, effective bias b* = -a* θ*, interference σ* = a* s.
    theta : optimal threshold θ* (in data units).
    s : interference scale at unit gain, sqrt(v (1/r - 1)).
    zero_loss, linear_loss, linear_loss_no_bias : baselines p/3, (1 - r) v, (1 - r) v.
    """

    p: np.ndarray
    r: np.ndarray
    loss: np.ndarray
    a: np.ndarray
    b: np.ndarray
    sigma: np.ndarray
    theta: np.ndarray
    s: np.ndarray
    zero_loss: np.ndarray
    linear_loss: np.ndarray
    linear_loss_no_bias: np.ndarray

    def records(self) -> list[dict[str, float]]:
        """One plain dict per (p, r) point, in C order."""
        flat = {k: np.ravel(v) for k, v in asdict(self).items()}
        n = flat["loss"].size
        return [{k: float(v[i]) for k, v in flat.items()} for i in range(n)]


def _moments_closed(theta: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    t0 = -theta / s
    t1 = (1.0 - theta) / s
    m0a, m1a, m2a, m3a = relu_gaussian_moments(t0, 3)
    m0b, m1b, m2b, m3b = relu_gaussian_moments(t1, 3)
    s2, s3 = s * s, s**3
    int_g2 = s3 * (m3b - m3a) / 3.0
    int_xg1 = s3 * ((m3b - m3a) / 3.0 - (m1b - m1a)) + theta * s2 * (m2b - m2a) / 2.0
    int_xphi = s * (theta * (m1b - m1a) + s * ((m2b - m2a) / 2.0 - (m0b - m0a)))
    int_g1 = s2 * (m2b - m2a) / 2.0
    return _assemble(p, theta, s, int_g2, int_xg1, int_xphi, int_g1)


def _moments_gl(theta: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    x = _GL_X
    mu = x - theta[..., None]
    ss = np.broadcast_to(s[..., None], mu.shape)
    g1 = relu_gaussian_mean(mu, ss)
    g2 = relu_gaussian_second_moment(mu, ss)
    cdf = norm_cdf(mu / ss)
    int_g2 = g2 @ _GL_W
    int_xg1 = (x * g1) @ _GL_W
    int_xphi = (x * cdf) @ _GL_W
    int_g1 = g1 @ _GL_W
    return _assemble(p, theta, s, int_g2, int_xg1, int_xphi, int_g1)


def _assemble(p, theta, s, int_g2, int_xg1, int_xphi, int_g1):
    """N/p, D/p, N'/p, D'/p: dividing by p keeps N^2/D representable down to p = 5e-324."""
    q_off_g2, q_off_g1 = _off_terms(theta, s, p)
    n = int_xg1
    d = q_off_g2 + int_g2
    dn = -int_xphi
    dd = -2.0 * (q_off_g1 + int_g1)
    return n, d, dn, dd


def _off_terms(theta: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\frac{1-p}{p}G_2(-\theta, s)` and :math:`\frac{1-p}{p}G_1(-\theta, s)` (the x = 0 atom over p).

    For :math:`\tau = \theta/s > 0` they are written :math:`s^k k!\,R_k(\tau)\,e^{-\tau^2/2 + \ln((1-p)/p)}/\sqrt{2\pi}`
    with the scaled repeated normal integral :math:`R_k` (no underflow of :math:`\varphi(\tau)` or
    overflow of 1/p where the product is representable); elsewhere directly. May be +inf (a
    hopeless candidate), never NaN for finite inputs.
    """
    tau = theta / s
    out2 = np.empty(tau.shape)
    out1 = np.empty(tau.shape)
    pos = tau > 0
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if pos.any():
            t, pp, ss = tau[pos], p[pos], s[pos]
            e = np.exp(-0.5 * t * t + np.log1p(-pp) - np.log(pp)) / SQRT_2PI
            r2, r1 = scaled_repeated_normal_integrals((2, 1), t)  # one set of Laguerre exponentials
            out2[pos] = ss * ss * (2.0 * r2 * e)
            out1[pos] = ss * (r1 * e)
        neg = ~pos
        if neg.any():
            t, pp, ss = tau[neg], p[neg], s[neg]
            _, m1, m2 = relu_gaussian_moments(-t, 2)
            q = (1.0 - pp) / pp
            out2[neg] = q * (ss * ss * m2)
            out1[neg] = q * (ss * m1)
    return np.where(np.isnan(out2), np.inf, out2), np.where(np.isnan(out1), np.inf, out1)


def _moments(theta: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """N, D, dN/dθ, dD/dθ elementwise (θ, s > 0, p broadcast to a common shape)."""
    theta, s, p = (np.array(v, dtype=np.float64) for v in np.broadcast_arrays(theta, s, p))
    out = [np.empty(theta.shape) for _ in range(4)]
    gl = s > S_GL_SWITCH
    for mask, fn in ((gl, _moments_gl), (~gl, _moments_closed)):
        if mask.any():
            for o, val in zip(out, fn(theta[mask], s[mask], p[mask])):
                o[mask] = val
    return tuple(out)


def _ratio_and_slope(theta, s, p):
    n, d, dn, dd = _moments(theta, s, p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = 2.0 * dn * d - n * dd
        ok = (n > MOMENT_FLOOR) & (d > MOMENT_FLOOR) & np.isfinite(d) & np.isfinite(slope)
        rho = np.where(ok, n * n / np.where(ok, d, 1.0), -np.inf)
    return rho, np.where(ok, slope, 0.0), ok


def _candidate_grid(p: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    k = np.linspace(-12.0, 16.0, 57)
    if np.any(p < TAU_WIDE_BELOW_P):  # theta*/s ~ sqrt(2 ln(1/p)) reaches 38.6 at p = 5e-324
        k = np.concatenate([k, np.linspace(16.5, 44.0, 56)])
    # Below -16 s the ReLU clips with probability < 1e-57: there the affine candidate of
    # optimal_symmetric_loss stands for these points (and their moments would overflow).
    t_aff = np.maximum(-0.5 * p * (1.0 - r) / r, -16.0 * s)
    parts = [
        s[:, None] * k[None, :],
        np.broadcast_to(np.linspace(0.0, 1.0, 21)[None, :], (s.size, 21)),
        t_aff[:, None] + s[:, None] * np.linspace(-2.0, 2.0, 9)[None, :],
    ]
    return np.sort(np.concatenate(parts, axis=1), axis=1)


def _stable_loss(theta: np.ndarray, s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Loss at threshold θ with the gain optimised, a = N/D, evaluated without cancellation."""
    n, d, _, _ = _moments(theta, s, p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = n / d
    a = np.where(np.isfinite(a), a, 0.0)
    return symmetric_loss(a, -a * theta, a * s, p)


def _search(p: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    """θ* for 1-d arrays with s > 0."""
    grid = _candidate_grid(p, r, s)
    P = np.broadcast_to(p[:, None], grid.shape)
    S = np.broadcast_to(s[:, None], grid.shape)
    # The candidates are evaluated SEARCH_ROWS points at a time (every value is elementwise, so this only
    # bounds the temporaries); the refinement below then runs once over all points.
    rho, slope = np.empty(grid.shape), np.empty(grid.shape)
    ok = np.empty(grid.shape, dtype=bool)
    for i in range(0, grid.shape[0], SEARCH_ROWS):
        rows_i = slice(i, i + SEARCH_ROWS)
        rho[rows_i], slope[rows_i], ok[rows_i] = _ratio_and_slope(grid[rows_i], S[rows_i], P[rows_i])
    # Where L* is far below p/3, rho = p/3 - L agrees between candidates to the last digits and
    # cannot rank them: rank those rows by the stable loss instead (score = -loss).
    score = rho.copy()
    fragile = (1.0 / 3.0 - rho.max(axis=1)) < FRAGILE_DEFICIT / 3.0
    for i in range(0, grid.shape[0], SEARCH_ROWS):
        f = np.flatnonzero(fragile[i:i + SEARCH_ROWS]) + i
        if f.size:
            score[f] = np.where(ok[f], -_stable_loss(grid[f], S[f], P[f]), -np.inf)
    # Local maxima of the score: slope changes from + to - between consecutive grid points.
    up = (slope[:, :-1] > 0) & (slope[:, 1:] <= 0) & ok[:, :-1] & ok[:, 1:]
    bracket_score = np.where(up, np.maximum(score[:, :-1], score[:, 1:]), -np.inf)
    rows = np.arange(grid.shape[0])
    best_theta = grid[rows, np.argmax(score, axis=1)]
    best_score = score.max(axis=1)
    order = np.argsort(-bracket_score, axis=1)[:, :N_CANDIDATES]
    # Refine all candidate brackets at once: scipy's vectorised bracketed root finder
    # (Chandrupatla) on the sign change of the slope, to full double precision.
    j = order.T.ravel()
    rr = np.tile(rows, N_CANDIDATES)
    valid = np.isfinite(bracket_score[rr, j])
    lo, hi = grid[rr, j], grid[rr, j + 1]
    pp, ss = p[rr], s[rr]
    theta_c = lo.copy()
    if valid.any():
        from scipy.optimize import elementwise

        def slope_at(x: np.ndarray, s_: np.ndarray, p_: np.ndarray) -> np.ndarray:
            return _ratio_and_slope(x, s_, p_)[1]

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            res = elementwise.find_root(slope_at, (lo[valid], hi[valid]), args=(ss[valid], pp[valid]),
                                        tolerances=dict(xatol=0.0, xrtol=4 * np.finfo(float).eps))
        theta_c[valid] = np.where(np.isfinite(res.x), res.x, lo[valid])
    rho_c, _, ok_c = _ratio_and_slope(theta_c, ss, pp)
    score_c = rho_c
    frag_c = fragile[rr]
    if frag_c.any():
        score_c = np.where(frag_c, -np.inf, score_c)
        score_c[frag_c & ok_c] = -_stable_loss(theta_c[frag_c & ok_c], ss[frag_c & ok_c], pp[frag_c & ok_c])
    for c in range(N_CANDIDATES):
        sl = slice(c * rows.size, (c + 1) * rows.size)
        better = valid[sl] & ok_c[sl] & (score_c[sl] >= best_score)
        best_theta = np.where(better, theta_c[sl], best_theta)
        best_score = np.where(better, score_c[sl], best_score)
    return best_theta


def _small_s_objective(tau: np.ndarray, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""min over the gain of :math:`L/(p s^2)` at θ = sτ, and the minimising α (a = 1 + sα).

    With u = x/s and :math:`M_k(t) = E[(t+Z)_+^k]`, the on-feature error integrates exactly to
    :math:`s^2[\alpha^2/3 - \alpha(1+s\alpha)\tau + (1+s\alpha)^2(1+\tau^2) - s M_3(\tau)(1+s\alpha)(2+s\alpha)/3]`
    (the data range u ≤ 1/s is taken as infinite in the two kink terms, an error below
    :math:`\varphi(1/s - \tau)`, i.e. nil for s ≤ ``S_SMALL``), and the x = 0 atom to
    :math:`(1-p)(1+s\alpha)^2 s^2 M_2(-\tau)`. So :math:`L/(ps^2) = A\alpha^2 + B\alpha + C` with
    :math:`Q = \frac{1-p}{p}M_2(-\tau)`,

    .. math::
        A = Qs^2 + \tfrac13 - s\tau + s^2(1+\tau^2) - s^3M_3/3,\quad
        B = 2sQ - \tau + 2s(1+\tau^2) - s^2M_3,\quad C = Q + 1 + \tau^2 - 2sM_3/3,

    minimised at :math:`\alpha = -B/(2A)`. As s → 0 this is the reduced problem
    :math:`K(p) = \min_\tau[1 + \tau^2/4 + Q(\tau)]` of docs/theory.md §6. Points with
    :math:`Qs^2 > 10^{-2}` (the x = 0 atom dominates, the optimum is elsewhere and C − B²/4A would
    cancel) are returned as +inf.
    """
    q2, _ = _off_terms(tau * s, s, p)  # = Q s^2
    m3 = relu_gaussian_moments(tau, 3)[3]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        q = q2 / (s * s)
        big = 1.0 + tau * tau
        A = q2 + 1.0 / 3.0 - s * tau + s * s * big - s**3 * m3 / 3.0
        B = 2.0 * s * q - tau + 2.0 * s * big - s * s * m3
        C = q + big - 2.0 * s * m3 / 3.0
        alpha = -B / (2.0 * A)
        g = C - B * B / (4.0 * A)
    good = np.isfinite(g) & np.isfinite(alpha) & (q2 <= 1e-2) & (A > 0)
    return np.where(good, g, np.inf), np.where(good, alpha, 0.0)


def _small_s_optimum(p: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """τ*, α*, Λ* = L*/(p s²) for 1-d arrays with 0 < s <= ``S_SMALL``.

    τ on a grid of step 1/8 over [-6, 44] (τ* ≈ sqrt(2 ln(1/p)) <= 38.6 for p >= 5e-324), then
    scipy's bracketed minimiser in the best cell's neighbours (τ to ~1e-13, Λ to rounding, since Λ
    is stationary in τ there).
    """
    grid = np.arange(-48, 353) / 8.0
    T = np.broadcast_to(grid[None, :], (p.size, grid.size))
    P = np.broadcast_to(p[:, None], T.shape)
    S = np.broadcast_to(s[:, None], T.shape)
    g, _ = _small_s_objective(T, S, P)
    j = np.argmin(g, axis=1)
    # refine inside (grid[j-1], grid[j], grid[j+1]) with scipy's vectorised bracketed minimiser;
    # a best point at the grid's end stays as it is
    tau = grid[j].astype(float)
    inner = np.flatnonzero((j > 0) & (j < grid.size - 1))
    if inner.size:
        from scipy.optimize import elementwise

        def objective(t: np.ndarray, s_: np.ndarray, p_: np.ndarray) -> np.ndarray:
            return _small_s_objective(t, s_, p_)[0]

        ji = j[inner]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            res = elementwise.find_minimum(objective, (grid[ji - 1], grid[ji], grid[ji + 1]), args=(s[inner], p[inner]),
                                           tolerances=dict(xatol=1e-13, xrtol=0.0), maxiter=200)
        tau[inner] = np.where(np.isfinite(res.x), res.x, grid[ji])
    lam, alpha = _small_s_objective(tau, s, p)
    best = g[np.arange(p.size), j]
    use_grid = ~(lam <= best)
    tau = np.where(use_grid, grid[j], tau)
    lam2, alpha2 = _small_s_objective(tau, s, p)
    return tau, np.where(use_grid, alpha2, alpha), np.where(use_grid, lam2, lam)


def check_symmetric_domain(p: float | np.ndarray, r: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check ``p`` and ``r`` against the verified domain of L*: ``p`` in [P_MIN, 1], ``r`` in [R_MIN, 1].

    Returns them as float64 arrays; outside the domain a one-line ``ValueError`` names the parameter
    and the range (docs/theory.md §13.3). The command line calls it before printing anything.
    """
    p = check_probability(p)
    r = check_ratio(r)
    tiny = p < P_MIN
    if tiny.any():
        raise ValueError(
            f"p must be in [{P_MIN!r}, 1] for L* (below it v = p/3 - p²/4 is subnormal), got {float(p[tiny].flat[0])!r}"
        )
    tiny = r < R_MIN
    if tiny.any():
        raise ValueError(
            f"r must be in [{R_MIN:g}, 1] for L* (below it θ* = -p(1-r)/(2r) overflows), got {float(r[tiny].flat[0])!r}"
        )
    return p, r


def optimal_symmetric_loss(p: np.ndarray | float, r: np.ndarray | float) -> SymmetricOptimum:
    r"""Optimal symmetric per-feature loss :math:`L^*(p, r)` and its optimiser (docs/theory.md §4).

    .. math::
        L^*(p,r) = \min_{a,\theta} L(a, -a\theta, a s; p)
                 = \frac p3 - \max_\theta \frac{E[xR_\theta]^2}{E[R_\theta^2]},\qquad
        s^2 = \Big(\frac p3 - \frac{p^2}4\Big)\Big(\frac1r - 1\Big).

    Parameters
    ----------
    p : array_like
        Feature probability in (0, 1].
    r : array_like
        Compression ratio m/n in (0, 1]; r = 1 gives L* = 0 (identity, a = 1, b = 0).

    Returns
    -------
    SymmetricOptimum
        Arrays broadcast over ``p`` and ``r``.

    Examples
    --------
    >>> opt = optimal_symmetric_loss(0.045, 0.25)
    >>> round(float(opt.loss), 6), round(float(opt.a), 3), round(float(opt.b), 3)
    (0.004856, 1.289, -0.446)
    """
    p, r = check_symmetric_domain(p, r)
    p, r = np.broadcast_arrays(p, r)
    shape = p.shape
    pf, rf = p.ravel().astype(np.float64), r.ravel().astype(np.float64)
    v = pf * (1.0 / 3.0 - pf / 4.0)
    s = interference_scale(pf, rf)
    theta = np.zeros_like(pf)
    a = np.ones_like(pf)
    loss = np.zeros_like(pf)
    small = (s > 0) & (s <= S_SMALL)
    mid = (s > S_SMALL) & (s <= S_HUGE)
    if small.any():
        ps, ss = pf[small], s[small]
        tau, alpha, lam = _small_s_optimum(ps, ss)
        theta[small] = ss * tau
        a[small] = 1.0 + ss * alpha
        loss[small] = (ps * lam) * (ss * ss)
    if mid.any():
        th = _search(pf[mid], rf[mid], s[mid])
        n, d, _, _ = _moments(th, s[mid], pf[mid])
        theta[mid] = th
        a[mid] = n / d
        loss[mid] = symmetric_loss(a[mid], -a[mid] * th, a[mid] * s[mid], pf[mid])
    # The affine optimum a = r, b = p(1-r)/2 (θ = -p(1-r)/(2r)) with the ReLU applied: the ReLU is
    # the projection onto [0, inf) and x >= 0, so its loss is <= (1-r)v; it is the answer where
    # the noise dominates (s > S_HUGE) and a floor everywhere else.
    live = s > 0
    lin = (1.0 - rf) * v
    b_aff = 0.5 * pf * (1.0 - rf)
    loss_aff = np.where(live, symmetric_loss(rf, b_aff, rf * s, pf), 0.0)
    use_aff = live & ((s > S_HUGE) | (loss_aff < loss))
    theta = np.where(use_aff, -b_aff / rf, theta)
    a = np.where(use_aff, rf, a)
    loss = np.where(use_aff, loss_aff, loss)
    loss = np.minimum(loss, lin)  # (1-r)v is an upper bound of L*; removes rounding excess only
    b = -a * theta
    sigma = a * s
    fields = dict(
        p=pf, r=rf, loss=loss, a=a, b=b, sigma=sigma, theta=theta, s=s,
        zero_loss=pf / 3.0, linear_loss=(1.0 - rf) * v, linear_loss_no_bias=(1.0 - rf) * v,
    )
    return SymmetricOptimum(**{k: val.reshape(shape) for k, val in fields.items()})
