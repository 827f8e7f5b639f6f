"""The scalar channel ``y = x + sZ`` of docs/theory.md §5 and its data law.

After the rank-limited linear stage of a permutation-symmetric model, every output sees its own
feature through a Gaussian channel (docs/theory.md §4–§5):

    y = x + s Z,   x = B U,  B ~ Bernoulli(p),  U ~ Uniform[0, 1),  Z ~ N(0, 1),
    s² = v (1/r − 1),  v = p/3 − p²/4.

This module holds the law of ``y`` (density, posterior of ``x`` given ``y``, posterior mean in
closed form) and the Gaussian building blocks every decoder in :mod:`rugtheory.theory.decoders` is
made of: the repeated normal integrals

    I_n(x) = E[(x + Z)_+^n] / n!   (I_0 = Φ, I_n' = I_{n−1}),

computed without cancellation for very negative ``x`` (scaled form ``I_n(−a) = φ(a) R_n(a)``
with ``R_n(a) = ∫_0^∞ w^n e^{−aw − w²/2} dw / n!`` by Gauss–Laguerre quadrature), and the
moments of a normal law truncated to ``[α, β]``, stable in both tails and for narrow intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from rugtheory.theory.checks import check_finite, check_int, check_probability, check_ratio, check_seed
from rugtheory.theory.data import sample_sparse_uniform
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.normal import mills_ratio, norm_pdf

__all__ = [
    "channel_generator",
    "channel_scale",
    "repeated_normal_integral",
    "scaled_repeated_normal_integral",
    "scaled_repeated_normal_integrals",
    "truncated_normal_moments",
    "TruncatedNormalMoments",
    "channel_density",
    "posterior_on_probability",
    "posterior_mean",
    "posterior_variance",
    "sample_channel",
]

_SQRT2PI = np.sqrt(2.0 * np.pi)
_LOG_SQRT2PI = 0.5 * np.log(2.0 * np.pi)

# Gauss–Laguerre rule for R_n(a), a >= _LAGUERRE_FROM. With v = a w the integral is
# a^{-(n+1)} ∫_0^∞ v^n e^{-v} e^{-v²/(2a²)} dv / n!; the factor e^{-v²/(2a²)} is entire and, for
# a >= 2, smooth on the scale of the rule: 48 nodes (scipy's accurate nodes; numpy's laggauss
# loses 1e-13 at this degree) give ~1e-14 relative (checked against mpmath in tests/test_decoders.py).
_LAGUERRE_FROM = 2.0
_LAG_X, _LAG_W = special.roots_laguerre(48)
# Gauss–Legendre rule on [0, 1] for narrow truncated-normal intervals.
_GL_X, _GL_W = gauss_legendre_unit(24)
_FACT = (1.0, 1.0, 2.0, 6.0, 24.0, 120.0)


def channel_scale(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """Channel noise scale ``s = sqrt(v (1/r − 1))`` (docs/theory.md §4: the rank bound at a = 1).

    Parameters
    ----------
    p : array_like
        Feature probability in (0, 1].
    r : array_like
        Compression ratio m/n in (0, 1].

    Returns
    -------
    numpy.ndarray
        ``s``, broadcast over ``p`` and ``r``; exactly 0 at ``r = 1``.
    """
    p = check_probability(p)
    r = check_ratio(r)
    v = p / 3.0 - p * p / 4.0
    return np.sqrt(v * (1.0 - r) / r)




def scaled_repeated_normal_integral(n: int, a: np.ndarray, *, precise: bool = True) -> np.ndarray:
    """``R_n(a) = I_n(−a) / φ(a)`` for ``a >= 0``, without cancellation.

    ``R_n(a) = (1/n!) ∫_0^∞ w^n exp(−a w − w²/2) dw``; ``R_0`` is the Mills ratio. For
    ``a < 2`` the closed forms in Φ, φ are used (they lose at most a factor ``a^{2n} <= 64``);
    for ``a >= 2`` Gauss–Laguerre quadrature of the scaled integral is used. ``precise=False``
    uses the closed forms ``R_0 = M``, ``R_1 = 1 − aM``, ``R_2 = ((1+a²)M − a)/2`` with the erfcx
    Mills ratio M everywhere (relative error ~ a^{2n}·1e−16: 1e−13 at a = 6, 2e−10 at a = 38),
    for integrands whose left tail carries a weight that makes this invisible.
    """
    a = np.asarray(a, dtype=np.float64)
    if not precise and n <= 2:
        M = mills_ratio(a)
        if n == 0:
            return M
        if n == 1:
            return 1.0 - a * M
        return ((1.0 + a * a) * M - a) / 2.0
    out = np.empty_like(a)
    small = a < _LAGUERRE_FROM
    if small.any():
        x = -a[small]
        out[small] = _closed_form_I(n, x) / norm_pdf(x)
    big = ~small
    if big.any():
        ab = a[big][..., None]
        vals = np.sum(_LAG_W * _LAG_X**n * np.exp(-0.5 * (_LAG_X / ab) ** 2), axis=-1)
        out[big] = vals / (_FACT[n] * a[big] ** (n + 1))
    return out


def scaled_repeated_normal_integrals(orders: tuple[int, ...], a: np.ndarray) -> list[np.ndarray]:
    """``[R_n(a) for n in orders]`` of :func:`scaled_repeated_normal_integral` (``precise=True``), bit for bit.

    The orders share the costly parts: Φ and φ at ``a < 2``, and the Gauss–Laguerre factor
    ``exp(−(x_k/a)²/2)`` (48 exponentials per element) at ``a >= 2``; each order is then the same
    arithmetic as the one-order function, so the results are identical (tests/test_optimum.py).
    """
    for n in orders:
        check_int(n, "n", low=0, high=4)
    a = np.asarray(a, dtype=np.float64)
    outs = [np.empty_like(a) for _ in orders]
    small = a < _LAGUERRE_FROM
    if small.any():
        x = -a[small]
        cdf, pdf = special.ndtr(x), norm_pdf(x)
        for o, n in zip(outs, orders):
            o[small] = _closed_form_I(n, x, cdf, pdf) / pdf
    big = ~small
    if big.any():
        ab = a[big]
        factor = np.exp(-0.5 * (_LAG_X / ab[..., None]) ** 2)
        for o, n in zip(outs, orders):
            o[big] = np.sum(_LAG_W * _LAG_X**n * factor, axis=-1) / (_FACT[n] * ab ** (n + 1))
    return outs


def _closed_form_I(n: int, x: np.ndarray, Phi: np.ndarray | None = None, ph: np.ndarray | None = None) -> np.ndarray:
    """``I_n(x)`` from Φ(x) and φ(x) (computed here unless given)."""
    Phi = special.ndtr(x) if Phi is None else Phi
    ph = norm_pdf(x) if ph is None else ph
    if n == 0:
        return Phi
    if n == 1:
        return x * Phi + ph
    if n == 2:
        return ((x * x + 1.0) * Phi + x * ph) / 2.0
    if n == 3:
        return ((x**3 + 3.0 * x) * Phi + (x * x + 2.0) * ph) / 6.0
    if n == 4:
        return ((x**4 + 6.0 * x * x + 3.0) * Phi + (x**3 + 5.0 * x) * ph) / 24.0
    raise ValueError(f"n must be an integer in [0, 4], got {n}")


def repeated_normal_integral(n: int, x: float | np.ndarray) -> np.ndarray:
    """Repeated normal integral ``I_n(x) = E[(x + Z)_+^n] / n!``, ``n = 0..4``.

    ``I_0 = Φ``, ``I_1(x) = xΦ(x) + φ(x)``, ``I_2 = ((x²+1)Φ + xφ)/2``, ... ; ``I_n' = I_{n−1}``
    and ``I_n(x) = ∫_{−∞}^x (x − t)^{n−1}/(n−1)! Φ(t) dt``. For ``x < 0`` it is evaluated as
    ``φ(x) R_n(−x)`` (:func:`scaled_repeated_normal_integral`), so the left tail keeps full
    relative precision down to underflow (``x ≈ −38``).
    """
    n = check_int(n, "n", low=0, high=4)
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    if pos.any():
        out[pos] = _closed_form_I(n, x[pos])
    neg = ~pos
    if neg.any():
        a = -x[neg]
        out[neg] = norm_pdf(a) * scaled_repeated_normal_integral(n, a)
    return out


@with_compact_repr
@dataclass(frozen=True)
class TruncatedNormalMoments:
    """Standard normal truncated to ``[α, β]``.

    Attributes
    ----------
    log_mass : log(Φ(β) − Φ(α)).
    offset_lo : E[τ − α | α < τ < β]  (accurate even when tiny).
    offset_hi : E[β − τ | α < τ < β]  (accurate even when tiny).
    variance : Var[τ | α < τ < β].
    """

    log_mass: np.ndarray
    offset_lo: np.ndarray
    offset_hi: np.ndarray
    variance: np.ndarray


def _right_tail_moments(
    alpha: np.ndarray, length: np.ndarray, precise: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scaled moments ``M_k = ∫_α^{α+L} (τ−α)^k φ(τ) dτ / φ(α)``, k = 0, 1, 2, for α >= 0.

    Where the far end carries weight ``e^{−αL−L²/2} < 0.1``, ``M_k = k! R_k(α) − tail(β)``
    (at most one digit lost); otherwise Gauss–Legendre on [0, L] of ``ξ^k e^{−αξ−ξ²/2}``,
    whose exponent then varies by less than ln 10 over the interval (24 nodes: exact to
    rounding).
    """
    M = [np.empty_like(alpha) for _ in range(3)]
    expo = alpha * length + 0.5 * length * length
    far = expo > np.log(10.0)
    if far.any():
        a = alpha[far]
        L = length[far]
        beta = a + L
        fin = np.isfinite(beta)
        w = np.where(fin, np.exp(-expo[far]), 0.0)
        bsafe = np.where(fin, beta, 0.0)
        # the far end enters with weight w <= 0.1: 1e-10 relative accuracy there is plenty
        Rb = [scaled_repeated_normal_integral(j, bsafe, precise=False) for j in range(3)]
        Ra = [scaled_repeated_normal_integral(j, a, precise=precise) for j in range(3)]
        Lf = np.where(fin, L, 0.0)
        M[0][far] = Ra[0] - w * Rb[0]
        M[1][far] = Ra[1] - w * (Lf * Rb[0] + Rb[1])
        M[2][far] = 2.0 * Ra[2] - w * (Lf * Lf * Rb[0] + 2.0 * Lf * Rb[1] + 2.0 * Rb[2])
    near = ~far
    if near.any():
        a = alpha[near][..., None]
        L = length[near][..., None]
        xi = L * _GL_X
        f = np.exp(-a * xi - 0.5 * xi * xi) * (L * _GL_W)
        M[0][near] = f.sum(-1)
        M[1][near] = (f * xi).sum(-1)
        M[2][near] = (f * xi * xi).sum(-1)
    return M[0], M[1], M[2], far


def truncated_normal_moments(
    alpha: float | np.ndarray, beta: float | np.ndarray, *, precise: bool = True
) -> TruncatedNormalMoments:
    """Mass, offsets and variance of ``Z ~ N(0,1)`` conditioned on ``α < Z < β`` (α < β).

    Stable in every regime that the channel posterior visits: both endpoints deep in one tail
    (one-sided scaled moments), narrow intervals (Gauss–Legendre), and the mode inside a wide
    interval (classical formula, whose variance then exceeds 0.1 so that no digits are lost).
    ``β = +inf`` is allowed. ``precise=False`` trades the Gauss–Laguerre tails for closed forms
    (see :func:`scaled_repeated_normal_integral`), ~1e−13 relative up to α ≈ 6.
    """
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64))
    alpha = alpha.copy()
    beta = beta.copy()
    length = beta - alpha
    log_mass = np.empty_like(alpha)
    off_lo = np.empty_like(alpha)
    off_hi = np.empty_like(alpha)
    var = np.empty_like(alpha)
    # Case R: alpha >= 0 (interval in the right tail); case L: beta <= 0 (mirror image).
    # Case M: alpha < 0 < beta. Narrow intervals inside case M are done by quadrature too.
    right = alpha >= 0
    left = (beta <= 0) & ~right
    mid = ~(right | left)
    for mask, mirror in ((right, False), (left, True)):
        if not mask.any():
            continue
        a = -beta[mask] if mirror else alpha[mask]
        L = length[mask]
        M0, M1, M2, _ = _right_tail_moments(a, L, precise)
        m1 = M1 / M0
        v = M2 / M0 - m1 * m1
        log_mass[mask] = -0.5 * a * a - _LOG_SQRT2PI + np.log(M0)
        near_side = m1
        far_side = np.where(np.isfinite(L), L - m1, np.inf)
        if mirror:
            off_hi[mask], off_lo[mask] = near_side, far_side
        else:
            off_lo[mask], off_hi[mask] = near_side, far_side
        var[mask] = v
    if mid.any():
        a = alpha[mid]
        b = beta[mid]
        L = length[mid]
        narrow = L < 2.0
        # narrow: quadrature around the interval (exponent varies by < 2 over it).
        if narrow.any():
            an = a[narrow][..., None]
            Ln = L[narrow][..., None]
            tau = an + Ln * _GL_X
            f = np.exp(-0.5 * tau * tau) * (Ln * _GL_W) / _SQRT2PI
            M0 = f.sum(-1)
            d = (f * (tau - an)).sum(-1) / M0
            v = (f * (tau - an - d[..., None]) ** 2).sum(-1) / M0
            idx = np.flatnonzero(mid)[narrow]
            log_mass.flat[idx] = np.log(M0)
            off_lo.flat[idx] = d
            off_hi.flat[idx] = L[narrow] - d
            var.flat[idx] = v
        wide = ~narrow
        if wide.any():
            aw, bw = a[wide], b[wide]
            Z = special.ndtr(bw) - special.ndtr(aw)  # >= Φ(2)−Φ(0) ~ 0.48 when the mode is inside
            pa, pb = norm_pdf(aw), np.where(np.isfinite(bw), norm_pdf(np.where(np.isfinite(bw), bw, 0.0)), 0.0)
            bpb = np.where(np.isfinite(bw), bw * pb, 0.0)
            mean = (pa - pb) / Z
            v = 1.0 + (aw * pa - bpb) / Z - mean * mean
            idx = np.flatnonzero(mid)[wide]
            log_mass.flat[idx] = np.log(Z)
            off_lo.flat[idx] = mean - aw
            off_hi.flat[idx] = bw - mean
            var.flat[idx] = v
    return TruncatedNormalMoments(log_mass, off_lo, off_hi, var)


def _log_off_density(y: np.ndarray, p: np.ndarray, s: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log1p(-p) - 0.5 * (y / s) ** 2 - _LOG_SQRT2PI - np.log(s)


def channel_density(y: float | np.ndarray, p: float | np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """Density of ``y = x + sZ``: ``(1−p) φ(y/s)/s + p [Φ((1−y)/s) − Φ(−y/s)]`` (s > 0)."""
    y, p, s = np.broadcast_arrays(check_finite(y, "y"), check_probability(p), _check_scale(s))
    tn = truncated_normal_moments(-y / s, (1.0 - y) / s)
    with np.errstate(divide="ignore"):
        return np.exp(_log_off_density(y, p, s)) + p * np.exp(tn.log_mass)


def _check_scale(s: float | np.ndarray) -> np.ndarray:
    s = check_finite(s, "s")
    if np.any(s <= 0):
        raise ValueError(f"s must be in (0, inf), got {float(s[s <= 0].flat[0])!r}")
    return s


def _posterior_parts(
    y: np.ndarray, p: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, TruncatedNormalMoments]:
    """(w0, w1, truncated-normal moments): posterior off/on probabilities, each from its own
    logistic so that neither is computed as ``1 −`` the other (w1 ~ 1e−20 must survive)."""
    tn = truncated_normal_moments(-y / s, (1.0 - y) / s)
    log_on = np.log(p) + tn.log_mass
    log_off = _log_off_density(y, p, s)
    return special.expit(log_off - log_on), special.expit(log_on - log_off), tn


def posterior_on_probability(y: float | np.ndarray, p: float | np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """P(B = 1 | y): ``p Z(y) / f(y)``, ``Z(y) = Φ((1−y)/s) − Φ(−y/s)``, computed in log space."""
    y, p, s = np.broadcast_arrays(check_finite(y, "y"), check_probability(p), _check_scale(s))
    _, w1, _ = _posterior_parts(y, p, s)
    return w1


def posterior_mean(y: float | np.ndarray, p: float | np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """Bayes-optimal elementwise decoder ``E[x | y]`` (docs/theory.md §5), closed form in Φ, φ.

    ``E[x|y] = P(on|y) · E[x | on, y]`` where, given ``on``, ``x`` is ``N(y, s²)`` truncated to
    [0, 1]: ``E[x | on, y] = y + s (φ(α) − φ(β)) / (Φ(β) − Φ(α))``, ``α = −y/s``,
    ``β = (1−y)/s``. Written as ``s · E[τ − α | α<τ<β]`` so that it keeps its relative precision
    when it is tiny (y far below 0).
    """
    y, p, s = np.broadcast_arrays(check_finite(y, "y"), check_probability(p), _check_scale(s))
    _, w1, tn = _posterior_parts(y, p, s)
    return w1 * s * tn.offset_lo


def posterior_variance(y: float | np.ndarray, p: float | np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """``Var[x | y] = w1 V_TN + w0 w1 m_TN²`` (law of total variance over on/off), no cancellation."""
    y, p, s = np.broadcast_arrays(check_finite(y, "y"), check_probability(p), _check_scale(s))
    w0, w1, tn = _posterior_parts(y, p, s)
    m = s * tn.offset_lo
    return w1 * s * s * tn.variance + w0 * w1 * m * m


def channel_generator(p: float, r: float, *, seed: int) -> tuple[float, float, np.random.Generator]:
    """Checked ``(p, s, rng)`` for sampling the channel at ``(p, r)``: ``s = channel_scale(p, r)`` and
    ``numpy.random.default_rng(seed)``. Shared by every Monte Carlo route on the channel."""
    p = float(check_probability(p))
    s = float(channel_scale(p, float(check_ratio(r))))
    return p, s, np.random.default_rng(check_seed(seed))


def sample_channel(p: float, r: float, size: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``size`` pairs ``(x, y)`` from the channel (Monte Carlo twin of this module)."""
    size = check_int(size, "size", low=1)
    p, s, rng = channel_generator(p, r, seed=seed)
    x = sample_sparse_uniform(rng, size, p)
    y = x + s * rng.standard_normal(size)
    return x, y
