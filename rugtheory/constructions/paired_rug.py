r"""Competing structures, part 2: a Persian rug of antipodal pairs (docs/theory.md §10).

For ``r <= 1/2`` the ``n/2`` pair directions form a Persian rug at ratio ``2r``: each feature keeps
its antipodal partner (clipped for free by the ReLU) and hears Gaussian interference from the other
pairs with :math:`\sigma^2 = a^2 v (1/r - 2)` instead of :math:`a^2 v (1/r - 1)`. The large-n loss
is the closed-form L of docs/theory.md §3 averaged over the partner by Gauss–Legendre; the optimum
is a 1-d search over the threshold with the gain solved in closed form, as for L*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import check_finite, check_probability
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre_unit
from rugtheory.theory.normal import relu_gaussian_moments

__all__ = [
    "PairedRug",
    "paired_rug_loss",
    "paired_rug_moments",
    "optimal_paired_rug_loss",
    "optimal_paired_rug_loss_reference",
    "CLOSED_FORM_MAX_S",
    "CLOSED_FORM_MIN_P",
    "SEARCH",
]

# --------------------------------------------------------------------------------------------------
# a rug of antipodal pairs


_GL12_X, _GL12_W = gauss_legendre_unit(12)


def _check_paired_ratio(r: np.ndarray | float) -> np.ndarray:
    r = np.asarray(r, dtype=float) if not isinstance(r, np.ndarray) else r
    from rugtheory.theory.checks import check_ratio

    r = check_ratio(r)
    bad = r > 0.5
    if bad.any():
        raise ValueError(f"r must be in (0, 0.5] for a rug of antipodal pairs, got {float(r[bad].flat[0])!r}")
    return r


def paired_rug_loss(p: np.ndarray | float, r: np.ndarray | float, gain: np.ndarray | float,
                    bias: np.ndarray | float) -> np.ndarray:
    r"""Large-n loss of a *rug of antipodal pairs* at gain ``a`` and bias ``b`` (``0 < r <= 1/2``).

    Features come in antipodal pairs ``(i, i')`` sharing one direction ``f_i`` with opposite signs;
    the ``n/2`` directions form a Persian rug (docs/theory.md §8) in ``m`` dims, i.e. at ratio ``2r``. The
    pre-activation of feature ``i`` is ``a(x_i - x_{i'}) + b + \nu_i`` where ``\nu_i`` sums the other
    pairs' signals ``x_j - x_{j'}`` (mean 0, variance ``2v``) through the rug, so in the large-n limit
    ``\nu_i ~ N(0, \sigma^2)`` with

    .. math:: \sigma^2 = a^2 \cdot 2v\,(1/(2r) - 1) = a^2 v\,(1/r - 2)

    (against :math:`a^2 v(1/r - 1)` for the plain rug: the pairs halve the directions to pack). With
    L the symmetric loss of docs/theory.md §3,

    .. math:: L_\mathrm{pr} = (1-p)\,L(a, b, \sigma; p) + p\int_0^1 L(a, b - a u, \sigma; p)\,du,

    the integral by 12-point Gauss-Legendre on each piece of [0, 1] split where the shifted threshold
    crosses the data edges (``u = -θ`` and ``u = 1 - θ``, ``θ = -b/a``): relative error below 1e-6
    against 200 nodes over p in [1e-4, 0.3] (tests). At ``r = 1/2`` this is the exact pair loss.
    """
    p = check_probability(p)
    r = _check_paired_ratio(r)
    a = check_finite(gain, "gain")
    if np.any(a <= 0):
        raise ValueError(f"gain must be in (0, inf), got {float(np.min(a))!r}")
    b = check_finite(bias, "bias")
    return _paired_rug_unchecked(p, r, a, b)


def _paired_rug_unchecked(p: np.ndarray, r: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`paired_rug_loss` for validated arrays, with ONE call of ``symmetric_loss``.

    The plain term and the 3 x 12 Gauss-Legendre nodes of the pieces are stacked on a last axis of
    37, so the per-call overhead of ``symmetric_loss`` is paid once (it dominated for small arrays).
    """
    a, b, p, r = np.broadcast_arrays(a, b, p, r)
    if a.size <= _PAIRED_CHUNK:
        return _paired_rug_chunk(p, r, a, b)
    flat = [np.ravel(x) for x in (p, r, a, b)]
    out = np.concatenate([_paired_rug_chunk(*(x[s:s + _PAIRED_CHUNK] for x in flat))
                          for s in range(0, a.size, _PAIRED_CHUNK)])
    return out.reshape(a.shape)


#: Points per symmetric_loss call (x 37 nodes): large enough to amortise the call overhead, small
#: enough that the temporaries stay in cache (one call on the whole 40 x 34 x 25 grid was 1.5x slower).
_PAIRED_CHUNK = 1024


def _paired_rug_chunk(p: np.ndarray, r: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from rugtheory.theory.symmetric import symmetric_loss

    v = p / 3.0 - p * p / 4.0
    sig = a * np.sqrt(v * np.maximum(1.0 / r - 2.0, 0.0))
    th = -b / a
    e1 = np.clip(-th, 0.0, 1.0)
    e2 = np.maximum(e1, np.clip(1.0 - th, 0.0, 1.0))
    lo = np.stack([np.zeros_like(th), e1, e2], axis=-1)  # (..., 3) pieces of [0, 1]
    width = np.stack([e1, e2, np.ones_like(th)], axis=-1) - lo
    u = (lo[..., None] + width[..., None] * _GL12_X).reshape(th.shape + (36,))
    ae = a[..., None]
    shifted = np.concatenate([b[..., None], b[..., None] - ae * u], axis=-1)
    vals = symmetric_loss(ae, shifted, sig[..., None], p[..., None])
    piece = np.sum(_GL12_W * vals[..., 1:].reshape(th.shape + (3, 12)), axis=-1)
    on = width[..., 0] * piece[..., 0] + width[..., 1] * piece[..., 1] + width[..., 2] * piece[..., 2]
    return (1.0 - p) * vals[..., 0] + p * on


@with_compact_repr
@dataclass(frozen=True)
class PairedRug:
    """Optimum of :func:`paired_rug_loss` over gain and bias; arrays broadcast over (p, r)."""

    p: np.ndarray
    r: np.ndarray
    loss: np.ndarray
    gain: np.ndarray
    bias: np.ndarray


#: scipy's bracketed minimiser (``scipy.optimize.elementwise.find_minimum``, parabolic steps with a
#: golden-section fallback, vectorised over grid points) stops when the bracket around the best θ is
#: below ~1.5e-8 |θ| + _THETA_ATOL: θ to ~1e-8 (the limit set by float64 rounding of a loss that is
#: stationary in θ), the loss to ~1e-15.
_THETA_ATOL = 1e-9


def _losses_at_gains_1_2(theta: np.ndarray, p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired-rug loss at ``(a, b) = (1, -θ)`` and ``(2, -2θ)`` in one stacked evaluation."""
    theta, p, r = np.broadcast_arrays(theta, p, r)
    gains = np.array([1.0, 2.0]).reshape((2,) + (1,) * theta.ndim)
    both = _paired_rug_unchecked(p[None], r[None], gains, -gains * theta[None])
    return both[0], both[1]


def _profile(theta: np.ndarray, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """-N^2/D at threshold θ, from the loss at a = 1 and a = 2 (the loss is a^2 D - 2aN + p/3)."""
    l1, l2 = _losses_at_gains_1_2(theta, p, r)
    d = (l2 - 2.0 * l1 + p / 3.0) / 2.0
    n = (d + p / 3.0 - l1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((d > 0) & (n > 0), -(n * n) / d, 0.0)


#: The closed-form profile (:func:`paired_rug_moments`) is used where s <= this: its second
#: differences of G_4 over a data width 1 cancel about s^2 of the digits (two at s = 10), which only
#: moves the searched θ (the reported loss is always :func:`paired_rug_loss` itself).
CLOSED_FORM_MAX_S = 10.0
#: ... and where p >= this: below it the x = 0 atom's G_2(-θ) underflows before (1-p)/p G_2 does
#: (θ/s > 38), so those points keep the quadrature profile of :func:`optimal_paired_rug_loss_reference`.
CLOSED_FORM_MIN_P = 1e-6
#: How :func:`optimal_paired_rug_loss` ranks thresholds: ``"closed"`` (:func:`paired_rug_moments` where
#: it applies) or ``"quadrature"`` (everywhere the Gauss-Legendre loss, i.e.
#: :func:`optimal_paired_rug_loss_reference`; benchmarks time the former route with it).
SEARCH = "closed"
#: Beyond this c/s, Φ(c/s) = 1 and φ(c/s) = 0 in float64 and G_k is the polynomial of the full normal law.
_T_FULL = 38.0


def _gaussian_powers(c: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`G_k(c) = E[(c + sZ)_+^k]` for k = 2, 3, 4 (s >= 0; s = 0 gives :math:`c_+^k`).

    ``s^k m_k(c/s)`` (:func:`rugtheory.theory.normal.relu_gaussian_moments`, stable in the lower tail);
    for ``c/s > 38`` the moments of the whole normal law, :math:`c^2 + s^2`, :math:`c^3 + 3cs^2`,
    :math:`c^4 + 6c^2s^2 + 3s^4` (no overflow of (c/s)^4 when s is tiny).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s > 0, c / np.where(s > 0, s, 1.0), np.where(c > 0, np.inf, -np.inf))
    full = t > _T_FULL
    _, _, m2, m3, m4 = relu_gaussian_moments(np.where(full, 0.0, t), 4)
    c2, s2 = c * c, s * s
    g2 = np.where(full, c2 + s2, s2 * m2)
    g3 = np.where(full, c * (c2 + 3.0 * s2), s2 * s * m3)
    g4 = np.where(full, c2 * c2 + 6.0 * c2 * s2 + 3.0 * s2 * s2, s2 * s2 * m4)
    return g2, g3, g4


def paired_rug_moments(theta: np.ndarray | float, p: np.ndarray | float,
                       r: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    r"""``N/p`` and ``D/p`` of the rug of antipodal pairs at threshold θ, in closed form (no quadrature).

    At gain ``a`` and bias ``-aθ`` the loss of :func:`paired_rug_loss` is :math:`a^2 D - 2aN + p/3`.
    With :math:`G_k(c) = E[(c + sZ)_+^k]`, :math:`s^2 = v(1/r - 2)` and :math:`dG_{k+1}/dc = (k+1)G_k`,
    the symmetric loss's :math:`D(θ) = (1-p)G_2(-θ) + rac p3[G_3(1-θ) - G_3(-θ)]` and
    :math:`N(θ) = p[rac12 G_2(1-θ) - rac16(G_3(1-θ) - G_3(-θ))]` integrate over the partner's
    offset u in [0, 1] exactly:

    .. math::
        \int_0^1 D(θ+u)\,du = 	frac{1-p}3[G_3(-θ) - G_3(-θ-1)] + 	frac p{12}\Delta^2G_4,\qquad
        \int_0^1 N(θ+u)\,du = p\,[	frac16(G_3(1-θ) - G_3(-θ)) - 	frac1{24}\Delta^2G_4],

    :math:`\Delta^2G_4 = G_4(1-θ) - 2G_4(-θ) + G_4(-θ-1)`, and :math:`D_{pr} = (1-p)D(θ) + p\int D`,
    :math:`N_{pr} = (1-p)N(θ) + p\int N` (docs/theory.md §10). Exact where :func:`paired_rug_loss`'s
    12-point Gauss-Legendre is accurate to ~1e-6; both are divided by p (no underflow of N^2/D).
    Arrays broadcast.
    """
    theta, p, r = (np.asarray(x, dtype=np.float64) for x in np.broadcast_arrays(theta, p, r))
    s = np.sqrt((p / 3.0 - p * p / 4.0) * np.maximum(1.0 / r - 2.0, 0.0))
    g2, g3, g4 = _gaussian_powers(np.stack([1.0 - theta, -theta, -theta - 1.0]), np.broadcast_to(s, (3,) + s.shape))
    d3 = g3[0] - g3[1]  # G_3(1-θ) - G_3(-θ)
    d2g4 = (g4[0] - g4[1]) - (g4[1] - g4[2])
    q = 1.0 - p
    with np.errstate(over="ignore", invalid="ignore"):
        d_sym = q / p * g2[1] + d3 / 3.0  # D(θ)/p
        n_sym = g2[0] / 2.0 - d3 / 6.0  # N(θ)/p
        d_int = q * (g3[1] - g3[2]) / 3.0 / p + d2g4 / 12.0  # ∫D/p
        n_int = d3 / 6.0 - d2g4 / 24.0  # ∫N/p
        return q * n_sym + p * n_int, q * d_sym + p * d_int


def _profile_closed(theta: np.ndarray, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """-(N/p)^2/(D/p) = -N^2/(pD) from :func:`paired_rug_moments`: the profile over p, ranked like :func:`_profile`."""
    n, d = paired_rug_moments(theta, p, r)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where((d > 0) & (n > 0) & np.isfinite(d), -(n * n) / d, 0.0)


#: Points whose 25 grid thresholds are evaluated at a time (the quadrature profile holds 25 x 74
#: symmetric losses a point, ~0.2 MB of temporaries; the closed form ~25 KB); the minimiser then runs
#: once over all points.
_GRID_ROWS = 512


def _search_theta(pf: np.ndarray, rf: np.ndarray, s: np.ndarray, profile) -> np.ndarray:  # noqa: ANN001
    """θ* for 1-d arrays: grid of 25 thresholds, then scipy's bracketed minimiser of ``profile``."""
    grid = np.concatenate([np.broadcast_to(np.linspace(-1.0, 1.2, 12), (pf.size, 12)),
                           s[:, None] * np.linspace(0.25, 7.0, 13)[None, :]], axis=1)
    grid = np.sort(grid, axis=1)
    vals = np.empty(grid.shape)
    for i in range(0, pf.size, _GRID_ROWS):  # bounded temporaries; every value is elementwise
        rows_i = slice(i, i + _GRID_ROWS)
        vals[rows_i] = profile(grid[rows_i], pf[rows_i, None], rf[rows_i, None])
    k = np.argmin(vals, axis=1)
    rows = np.arange(pf.size)
    lo = grid[rows, np.maximum(k - 1, 0)]
    hi = grid[rows, np.minimum(k + 1, grid.shape[1] - 1)]
    # The best grid point is a grid end (θ = -1: the affine regime at dense data) and the profile
    # rises just inside it: the optimum is that end (Brent would creep towards it by golden steps).
    last = grid.shape[1] - 1
    at_end = (k == 0) | (k == last)
    edge = np.where(k == 0, grid[:, 0], grid[:, last])
    inward = np.where(k == 0, 1.0, -1.0) * 1e-8 * np.maximum(1.0, np.abs(edge))
    theta, f_theta = edge.copy(), vals[rows, k]
    if at_end.any():
        e = np.flatnonzero(at_end)
        at_end[e] = profile(edge[e] + inward[e], pf[e], rf[e]) >= f_theta[e]
    inner = np.flatnonzero(~at_end)
    if inner.size:
        from scipy.optimize import elementwise

        # scipy's Chandrupatla step divides 0/0 where the profile is flat to rounding; it then takes
        # a golden step instead, so the warning carries no information
        with np.errstate(invalid="ignore", divide="ignore"):
            res = elementwise.find_minimum(
                profile,
                (lo[inner], grid[inner, k[inner]], hi[inner]),
                args=(pf[inner], rf[inner]),
                tolerances=dict(xatol=_THETA_ATOL, xrtol=1.5e-8),
            )
        theta[inner], f_theta[inner] = res.x, res.f_x
    # The minimiser only approaches the bracket's ends to ~1e-8; where the best θ is a grid end (e.g. θ = -1,
    # the affine regime at dense data) take that end itself, already evaluated on the grid.
    f_lo = vals[rows, np.maximum(k - 1, 0)]
    f_hi = vals[rows, np.minimum(k + 1, grid.shape[1] - 1)]
    theta = np.where(f_lo < f_theta, lo, theta)
    f_theta = np.minimum(f_lo, f_theta)
    return np.where(f_hi < f_theta, hi, theta)


def _optimum(p: np.ndarray | float, r: np.ndarray | float, closed_form: bool) -> PairedRug:
    p = check_probability(p)
    r = _check_paired_ratio(r)
    p, r = np.broadcast_arrays(p, r)
    shape = p.shape
    pf, rf = p.ravel().astype(np.float64), r.ravel().astype(np.float64)
    s = np.sqrt((pf / 3.0 - pf * pf / 4.0) * np.maximum(1.0 / rf - 2.0, 0.0))
    closed = (s <= CLOSED_FORM_MAX_S) & (pf >= CLOSED_FORM_MIN_P) if closed_form else np.zeros(pf.size, dtype=bool)
    theta = np.empty(pf.size)
    for mask, profile in ((closed, _profile_closed), (~closed, _profile)):
        if mask.any():
            theta[mask] = _search_theta(pf[mask], rf[mask], s[mask], profile)
    l1, l2 = _losses_at_gains_1_2(theta, pf, rf)
    d = (l2 - 2.0 * l1 + pf / 3.0) / 2.0
    n = (d + pf / 3.0 - l1) / 2.0
    a = np.where(d > 0, n / np.where(d > 0, d, 1.0), 1.0)
    a = np.where(a > 0, a, 1.0)
    b = -a * theta
    loss = _paired_rug_unchecked(pf, rf, a, b)
    return PairedRug(p, r, loss.reshape(shape), a.reshape(shape), b.reshape(shape))


def optimal_paired_rug_loss(p: np.ndarray | float, r: np.ndarray | float) -> PairedRug:
    """Best gain and bias of the rug of antipodal pairs (see :func:`paired_rug_loss`).

    As for L* (docs/theory.md §4) the output is ``a ReLU(w - θ)`` with σ proportional to ``a``, so the loss is
    quadratic in ``a`` at fixed θ: ``a* = N/D``. θ is searched on a grid (data range and multiples of
    the noise scale), refined by Brent's method (parabolic steps, golden-section fallback; θ to
    ~1e-8) inside the best grid bracket, and the loss
    is then evaluated directly at ``(a*, -a*θ*)`` (no cancellation in ``p/3 - N^2/D``).

    The search ranks θ by the exact profile ``-N^2/D`` of :func:`paired_rug_moments` (three Gaussian
    moment sets per θ instead of 74 symmetric losses: ~20x cheaper) where ``s <=`` :data:`CLOSED_FORM_MAX_S`
    and ``p >=`` :data:`CLOSED_FORM_MIN_P`, elsewhere by the quadrature loss as
    :func:`optimal_paired_rug_loss_reference` does everywhere. ``a*`` and the loss are always those of
    :func:`paired_rug_loss` (12-point Gauss-Legendre), so the two differ only through θ*: the loss by
    at most 1e-9 relative, gain and bias by at most 1e-5 (the quadrature's error moves its minimiser;
    tests/test_structures.py).
    """
    if SEARCH not in ("closed", "quadrature"):
        raise ValueError(f"SEARCH must be 'closed' or 'quadrature', got {SEARCH!r}")
    return _optimum(p, r, closed_form=SEARCH == "closed")


def optimal_paired_rug_loss_reference(p: np.ndarray | float, r: np.ndarray | float) -> PairedRug:
    """:func:`optimal_paired_rug_loss` with θ ranked by the Gauss-Legendre loss itself (at gains 1 and 2).

    The search as it was before the closed-form profile (issue 15): ~20x slower, kept as the twin the
    tests compare the fast search with.
    """
    return _optimum(p, r, closed_form=False)
