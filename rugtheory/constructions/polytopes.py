r"""Competing structures, part 1: polytope solutions of the toy model with exact losses (docs/theory.md §10).

The rank bound (docs/theory.md §4) fixes only the *second* moment of the interference. ReLU clips
negative interference for free, so weights with a few large negative entries per row can beat
the symmetric Gaussian optimum :math:`L^*`. This module builds those structures and computes
their loss exactly (no sampling, no Gaussian assumption).

A *construction* is a group of ``k`` features embedded as the vertices ``v_1..v_k`` of a
polytope in ``dim`` hidden dimensions, ``|v_i| = 1``, with tied read-out and one gain ``g`` and
bias ``b`` shared by the group (every vertex is equivalent by symmetry):

.. math:: W_\mathrm{in} = [v_1 \dots v_k], \quad W_\mathrm{out} = g\,W_\mathrm{in}^T, \quad
          W = g\,G,\ G_{ij} = v_i\cdot v_j,\ G_{ii}=1,

so :math:`y_i = \mathrm{ReLU}(g(x_i + \sum_{j\ne i} G_{ij} x_j) + b)` and the group uses a
ratio ``r = dim/k`` of hidden units per feature. Groups live in orthogonal subspaces, so a model
made of ``n/k`` copies has the same per-feature loss as one group.

* antipodal pairs: ``k = 2``, ``dim = 1``, ``G_12 = -1``, ``r = 1/2``;
* regular simplex: ``k`` features in ``k-1`` dims, ``G_ij = -1/(k-1)``, ``r = (k-1)/k``;
* regular polygon: ``k`` features in 2 dims, ``G_ij = cos(2 pi (i-j)/k)``, ``r = 2/k``;
* dropped features (``r = 0``): ``y = ReLU(b)``, best ``b = p/2``, loss ``v = p/3 - p^2/4``;
* dedicated features (``r = 1``): ``y = x``, loss 0.

All of them meet the rank bound with equality: :math:`\sum_{j\ne i}G_{ij}^2 = 1/r - 1`.

Exact loss
----------
Write the row of feature ``i`` as :math:`w = b + g U_0 + g\sum_{l\in S} c_l U_l` where ``S`` is
the set of active partners (probability :math:`p^{|S|}(1-p)^{K-|S|}`) and ``U`` are independent
uniforms. Integrating one uniform at a time (:math:`\int_0^1 f(a + d u)\,du = [F(a+d)-F(a)]/d`)
gives the box-spline identity, exact for any signs of the nonzero ``d_l``:

.. math:: E\Big[\big(\beta + \textstyle\sum_{l=1}^N d_l U_l\big)_+^q\Big]
          = \frac{q!}{(q+N)!\,\prod_l d_l} \sum_{T\subseteq\{1..N\}} (-1)^{N-|T|}
            \big(\beta + \textstyle\sum_{l\in T} d_l\big)_+^{q+N}.

With :math:`M(\beta, q) = E[(\beta + g\sum_S c_l U_l)_+^q]` the per-feature loss is

.. math:: L = \sum_S p^{|S|}(1-p)^{K-|S|}\Big[(1-p)\,M(b,2) + p\,B_S\Big],\qquad
          B_S = \Big(\tfrac{1}{3g}+\tfrac{1}{3g^2}\Big)\big[M(b+g,3)-M(b,3)\big]
                 - \tfrac{1}{g}M(b+g,2) + \tfrac13,

where :math:`B_S = E[(\mathrm{ReLU}(w) - U_0)^2]` follows by integrating :math:`U_0` by parts.
For ``S = {}`` the three terms of ``B`` cancel at ``g = 1, b = 0`` (1/3 - 2/3 + 1/3); that term is
evaluated by the direct piecewise integral instead, so that losses of order ``p^2`` stay accurate
down to ``p = 1e-12``. Partners with equal coefficients are grouped (binomial counts), which keeps
the sum small: at most a few thousand terms for ``k <= 10``.

Antipodal pairs at ``g = 1, b = 0``: the only error is when both partners are on, giving
``p^2 E[min(U, U')^2] = p^2/6`` (docs/theory.md §10); :func:`structure_loss` reproduces it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

import numpy as np

from rugtheory.theory.checks import check_finite, check_int, check_probability
from rugtheory.theory.display import with_compact_repr

__all__ = [
    "clear_caches",
    "prefetch_optima",
    "Construction",
    "OptimizedStructure",
    "MAX_SIMPLEX_K",
    "MAX_POLYGON_K",
    "antipodal_pairs",
    "regular_simplex",
    "regular_polygon",
    "standard_constructions",
    "dropped_loss",
    "structure_loss",
    "optimal_structure_loss",
    "UntiedPairs",
    "untied_pair_loss",
    "optimal_untied_pairs",
    "UNTIED_PAIR_ASYMMETRIES",
    "PATTERN_EVALUATION",
]

#: Largest simplex size: the box-spline sum for ``k - 1`` equal partners is a finite difference of
#: order ``k - 1`` whose cancellation costs about ``log10(2^(k-1) (k-1)^(k-1) / (k-1)!)`` digits,
#: i.e. ~5 digits at k = 10; beyond that the answer would lose too much of float64.
MAX_SIMPLEX_K = 10
#: Largest polygon size: the number of terms grows like 6^(k/2) and the smallest coefficient
#: cos(2 pi floor(k/4)/k) shrinks; k = 10 keeps both harmless (~4000 terms).
MAX_POLYGON_K = 10


@with_compact_repr
@dataclass(frozen=True)
class Construction:
    """A group of ``k`` features as unit vectors in ``dim`` hidden dimensions.

    Attributes
    ----------
    name : str
        Short label, e.g. ``"pairs"``, ``"simplex4"``, ``"polygon5"``.
    k, dim : int
        Features per group and hidden dimensions per group.
    vertices : np.ndarray
        ``dim x k`` matrix of unit columns (``W_in`` of one group).
    """

    name: str
    k: int
    dim: int
    vertices: np.ndarray = field(repr=False, compare=False)

    @property
    def ratio(self) -> float:
        """Hidden units per feature, ``r = dim/k``."""
        return self.dim / self.k

    @property
    def gram(self) -> np.ndarray:
        """``G = V^T V`` (unit diagonal)."""
        return self.vertices.T @ self.vertices

    @property
    def partner_coefficients(self) -> np.ndarray:
        """Row 0 of ``G`` without the diagonal and without exact zeros (they never interfere)."""
        row = self.gram[0, 1:]
        return row[np.abs(row) > 1e-12]


def antipodal_pairs() -> Construction:
    """Two features on one hidden unit with opposite signs: ``W = g [[1, -1], [-1, 1]]``, r = 1/2."""
    return Construction("pairs", 2, 1, np.array([[1.0, -1.0]]))


def regular_simplex(k: int) -> Construction:
    """``k`` features at the vertices of a regular simplex in ``k - 1`` dims, r = (k-1)/k.

    ``G_ij = -1/(k-1)``; ``k = 2`` is the antipodal pair. ``k`` must lie in [2, MAX_SIMPLEX_K].
    """
    k = check_int(k, "k", low=2, high=MAX_SIMPLEX_K)
    centred = np.eye(k) - 1.0 / k  # columns e_i - centroid, spanning the sum-zero subspace
    q, _ = np.linalg.qr(centred[:, : k - 1])  # orthonormal basis of that subspace (k x k-1)
    v = q.T @ centred  # (k-1) x k coordinates
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    name = "pairs" if k == 2 else f"simplex{k}"
    return Construction(name, k, k - 1, v)


def regular_polygon(k: int) -> Construction:
    """``k`` features at the vertices of a regular ``k``-gon in 2 dims, r = 2/k.

    ``G_ij = cos(2 pi (i - j)/k)``. ``k = 3`` is the triangle (= simplex3), ``k = 4`` two antipodal
    pairs. ``k`` must lie in [3, MAX_POLYGON_K].
    """
    k = check_int(k, "k", low=3, high=MAX_POLYGON_K)
    angles = 2.0 * np.pi * np.arange(k) / k
    v = np.vstack([np.cos(angles), np.sin(angles)])
    return Construction(f"polygon{k}", k, 2, v)


def standard_constructions() -> list[Construction]:
    """The constructions the phase map compares: pairs, simplices 3..10, polygons 5 and 6.

    polygon3 is simplex3 and polygon4 is two pairs, so they are left out as duplicates. Polygons
    7..10 cost 5-100x more to optimise (hundreds to thousands of box-spline terms) and never win
    anywhere on the 40x40 map (checked by ``benchmarks/bench_phase_map.py``, which adds them back):
    their loss is O(p), like every polygon's with k >= 5, with a larger constant.
    """
    out = [antipodal_pairs()]
    out += [regular_simplex(k) for k in range(3, MAX_SIMPLEX_K + 1)]
    out += [regular_polygon(k) for k in range(5, 7)]
    return out


def dropped_loss(p: np.ndarray | float) -> np.ndarray:
    """Loss of an unlearned feature with its best constant output ``p/2``: ``v = p/3 - p^2/4``."""
    p = check_probability(p)
    return p / 3.0 - p * p / 4.0


# --------------------------------------------------------------------------------------------------
# exact loss


@dataclass(frozen=True)
class _Corners:
    """Flattened box-spline terms of one construction (see module docstring)."""

    count: np.ndarray  # N = |S| of the term's partner set
    coef: np.ndarray  # prod C(M_v, n_v) C(n_v, t_v) (-1)^(N - sum t) / prod c_v^n_v
    offset: np.ndarray  # sum_v t_v c_v
    n_partners: int  # K


def _group_coefficients(coeffs: np.ndarray) -> list[tuple[float, int]]:
    groups: list[tuple[float, int]] = []
    for c in np.sort(coeffs):
        if groups and abs(groups[-1][0] - c) < 1e-9:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((float(c), 1))
    return groups


@lru_cache(maxsize=64)
def _corners(coeff_key: tuple[float, ...]) -> _Corners:
    groups = _group_coefficients(np.asarray(coeff_key))
    count, coef, offset = [], [], []
    for ns in product(*[range(m + 1) for _, m in groups]):
        n_tot = sum(ns)
        base = 1.0
        for (c, m), n in zip(groups, ns):
            base *= math.comb(m, n) / c**n
        for ts in product(*[range(n + 1) for n in ns]):
            mult = base * (-1) ** (n_tot - sum(ts))
            for n, t in zip(ns, ts):
                mult *= math.comb(n, t)
            count.append(n_tot)
            coef.append(mult)
            offset.append(sum(t * c for (c, _), t in zip(groups, ts)))
    return _Corners(np.array(count), np.array(coef), np.array(offset), sum(m for _, m in groups))


def _box_moments(ge: np.ndarray, be: np.ndarray, n: np.ndarray, off: np.ndarray, f2: np.ndarray, f3: np.ndarray,
                 has_partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box-spline moments of one corner term (docs/theory.md §13.7): ``(m_b2, b_part)``, where ``f2``, ``f3``
    are ``2/(2+N)!``, ``6/(3+N)!``; ``b_part`` is 0 where the term has no partner (the S = {} term is added by
    the caller in stable form). Every loss route of this module calls this, so they agree bit for bit."""
    lo = np.maximum(be + ge * off, 0.0)
    hi = np.maximum(be + ge + ge * off, 0.0)
    m_b2 = f2 * lo ** (2 + n)
    m_hi2 = f2 * hi ** (2 + n)
    m_diff3 = f3 * (hi ** (3 + n) - lo ** (3 + n))
    b_part = (1.0 / (3.0 * ge) + 1.0 / (3.0 * ge**2)) * m_diff3 - m_hi2 / ge
    return m_b2, np.where(has_partner, b_part, 0.0)


def _alone_error(g: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Stable :math:`\int_0^1 (\mathrm{ReLU}(g u + b) - u)^2 du` for g > 0 (no partner active)."""
    a = np.clip(-b / g, 0.0, 1.0)  # the ReLU is off on [0, a]
    alpha = g - 1.0
    return a**3 / 3.0 + alpha**2 * (1.0 - a**3) / 3.0 + alpha * b * (1.0 - a**2) + b**2 * (1.0 - a)


def _loss_from_corners(cn: _Corners, g: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact loss for arrays g, b, p broadcast together (corner axis appended last)."""
    g, b, p = np.broadcast_arrays(np.asarray(g, float), np.asarray(b, float), np.asarray(p, float))
    ge, be, pe = g[..., None], b[..., None], p[..., None]
    n = cn.count
    k_tot = cn.n_partners
    fact2 = np.array([2.0 / math.factorial(2 + i) for i in range(k_tot + 1)])[n]
    fact3 = np.array([6.0 / math.factorial(3 + i) for i in range(k_tot + 1)])[n]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        weight = pe**n * (1.0 - pe) ** (k_tot - n) * cn.coef / ge**n
    m_b2, b_part = _box_moments(ge, be, n, cn.offset, fact2, fact3, n > 0)
    total = np.sum(weight * ((1.0 - pe) * m_b2 + pe * b_part), axis=-1)
    with np.errstate(divide="ignore"):
        log_p0 = k_tot * np.log1p(-p)  # P(no partner active) = (1-p)^K, and 1 - that via expm1
    return total - p / 3.0 * np.expm1(log_p0) + np.exp(log_p0) * p * _alone_error(g, b)


def structure_loss(construction: Construction, p: np.ndarray | float, gain: np.ndarray | float = 1.0,
                   bias: np.ndarray | float = 0.0) -> np.ndarray:
    r"""Exact per-feature loss of a construction at gain ``g`` and bias ``b`` (docs/theory.md §10).

    .. math:: L = E\big[(\mathrm{ReLU}(g(x_i + \textstyle\sum_{j\ne i} G_{ij}x_j) + b) - x_i)^2\big],

    evaluated in closed form by the box-spline identity of the module docstring. Arrays broadcast.

    Parameters
    ----------
    construction : Construction
    p : array_like
        Feature probability in (0, 1].
    gain : array_like
        ``g > 0``.
    bias : array_like
        Finite.
    """
    p = check_probability(p)
    gain = check_finite(gain, "gain")
    if np.any(gain <= 0):
        raise ValueError(f"gain must be in (0, inf), got {float(np.min(gain))!r}")
    bias = check_finite(bias, "bias")
    cn = _corners(tuple(np.round(construction.partner_coefficients, 15)))
    return _loss_from_corners(cn, gain, bias, p)


@with_compact_repr
@dataclass(frozen=True)
class OptimizedStructure:
    """A construction with its best gain and bias at each ``p`` (arrays over ``p``)."""

    construction: Construction
    p: np.ndarray
    loss: np.ndarray
    gain: np.ndarray
    bias: np.ndarray

    @property
    def ratio(self) -> float:
        return self.construction.ratio


# The optimum lies near g = 1, b = 0 at small p; at dense data the bias can be strongly negative
# (polygons) or positive (everything tends to b = 1/2 at p = 1). A coarse grid over this box picks
# the basin; a pattern search in (log g, b), vectorised over p, refines it.
_LOG_G_GRID = np.log(np.geomspace(0.4, 3.2, 12))
_B_GRID = np.linspace(-1.8, 0.6, 17)
#: The 8 neighbours of the 3x3 pattern (the centre's loss is the current best already: a move needs a
#: strictly lower neighbour, so leaving it out changes no step).
_STENCIL = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)], dtype=float)
_STENCIL_WITH_CENTRE = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)  # the former one
#: Stop when both steps are below this. The pattern search can stall on the curved valley of
#: (log g, b), so the loss it returns is within ~1e-8 relative of the optimum (measured against
#: Nelder-Mead from several starts in tests/test_structures.py, asserted at 1e-7).
_STEP_TOL = 1e-8
_MAX_ELEMENTS = 1_500_000  # corner-axis elements per evaluation chunk (memory ~ 12 MB per array)
#: How the pattern search evaluates its trials: ``"grouped"`` (rows with equal term counts broadcast
#: together, the start grid's p-independent terms once per construction, 8 neighbours a step) or
#: ``"flat"`` (every term of every trial gathered, the 3x3 pattern with its centre: the route before
#: issue 15, ~3x slower, kept for benchmarks and tests). Both give the same optima bit for bit.
PATTERN_EVALUATION = "grouped"


class _Batch:
    """Box-spline terms of several constructions at several p, flattened for one vectorised evaluation.

    A *row* is one (construction, p) pair (construction-major). The constant factors of every term,
    ``p^N (1-p)^(K-N) coef`` and the factorials, are computed once here; an evaluation only gathers
    them for the rows it needs, so one call serves every construction (the per-call overhead of
    numpy dominated when each small construction was optimised on its own).
    """

    def __init__(self, cns: list[_Corners], p: np.ndarray) -> None:
        n_p = p.size
        self.cns, self.n_p = cns, n_p
        self.p = np.tile(p, len(cns))
        self.k = np.repeat([float(cn.n_partners) for cn in cns], n_p)
        self.len = np.repeat([len(cn.coef) for cn in cns], n_p)
        self.start = np.cumsum(self.len) - self.len
        n = np.concatenate([np.tile(cn.count, n_p) for cn in cns])
        coef = np.concatenate([np.tile(cn.coef, n_p) for cn in cns])
        self.offset = np.concatenate([np.tile(cn.offset, n_p) for cn in cns])
        pe = np.repeat(self.p, self.len)
        ke = np.repeat(self.k, self.len)
        k_max = int(max(cn.n_partners for cn in cns))
        self.fact2 = np.array([2.0 / math.factorial(2 + i) for i in range(k_max + 1)])[n]
        self.fact3 = np.array([6.0 / math.factorial(3 + i) for i in range(k_max + 1)])[n]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            self.w0 = pe**n * (1.0 - pe) ** (ke - n) * coef
        self.n, self.pe, self.has_partner = n, pe, n > 0
        # Rows grouped by their number of terms L, for the broadcast evaluation of :meth:`loss`: per group,
        # the constructions' term tables as (constructions, L) arrays and each row's construction in it.
        self.row_con = np.repeat(np.arange(len(cns)), n_p)
        self.groups: dict[int, tuple[np.ndarray, ...]] = {}
        for length in sorted({len(cn.coef) for cn in cns}):
            members = [i for i, cn in enumerate(cns) if len(cn.coef) == length]
            count = np.stack([cns[i].count for i in members])
            self.groups[length] = (
                np.asarray(members), count, np.stack([cns[i].offset for i in members]),
                np.array([2.0 / math.factorial(2 + j) for j in range(k_max + 1)])[count],
                np.array([6.0 / math.factorial(3 + j) for j in range(k_max + 1)])[count],
            )
        self.local = np.zeros(len(cns), dtype=int)  # index of each construction inside its group
        for members, *_ in self.groups.values():
            self.local[members] = np.arange(members.size)

    def loss(self, rows: np.ndarray, log_g: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact loss at (A, S) arrays of (log g, b) for the rows ``rows`` (A,), chunked to bound memory.

        With :data:`PATTERN_EVALUATION` ``"grouped"`` (the default) rows with the same number of terms
        are evaluated as one (rows, S, terms) broadcast, bit for bit the flat route's values (same
        arithmetic in the same order, same sums) without its nine gathers per term.
        """
        if PATTERN_EVALUATION == "flat":
            return self.loss_flat(rows, log_g, b)
        out = np.empty(log_g.shape)
        length = self.len[rows]
        for group_len, (_, count, offset, fact2, fact3) in self.groups.items():
            at = np.flatnonzero(length == group_len)
            step = max(1, _MAX_ELEMENTS // (group_len * log_g.shape[1]))
            for s0 in range(0, at.size, step):
                sel = at[s0:s0 + step]
                rr = rows[sel]
                loc = self.local[self.row_con[rr]]
                w0 = self.w0[self.start[rr][:, None] + np.arange(group_len)][:, None, :]
                out[sel] = self._loss_broadcast(rr, log_g[sel], b[sel], w0, count[loc][:, None, :],
                                                offset[loc][:, None, :], fact2[loc][:, None, :],
                                                fact3[loc][:, None, :])
        return out

    def _loss_broadcast(self, rows: np.ndarray, log_g: np.ndarray, b: np.ndarray, w0: np.ndarray, n: np.ndarray,
                        off: np.ndarray, f2: np.ndarray, f3: np.ndarray) -> np.ndarray:
        """:meth:`_loss` for rows of one term count L: term arrays (A, 1, L), trials (A, S)."""
        g = np.exp(log_g)
        ge, be = g[..., None], b[..., None]
        pe = self.p[rows][:, None, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            weight = w0 / ge**n
        m_b2, b_part = _box_moments(ge, be, n, off, f2, f3, n > 0)
        terms = (weight * ((1.0 - pe) * m_b2 + pe * b_part)).ravel()
        total = np.add.reduceat(terms, np.arange(0, terms.size, n.shape[-1])).reshape(g.shape)
        p = self.p[rows][:, None]
        with np.errstate(divide="ignore"):
            log_p0 = self.k[rows][:, None] * np.log1p(-p)
        return total - p / 3.0 * np.expm1(log_p0) + np.exp(log_p0) * p * _alone_error(g, b)

    def loss_flat(self, rows: np.ndarray, log_g: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:meth:`loss` by the flat route (every term of every trial gathered): the former evaluation."""
        out = np.empty(log_g.shape)
        csum = np.cumsum(log_g.shape[1] * self.len[rows])
        s = 0
        while s < rows.size:
            done = int(csum[s - 1]) if s else 0
            e = max(s + 1, int(np.searchsorted(csum, done + _MAX_ELEMENTS, side="right")))
            out[s:e] = self._loss(rows[s:e], log_g[s:e], b[s:e])
            s = e
        return out

    def grid_loss(self, log_g: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact loss at the SAME trials (1-d ``log_g``, ``b``) for every row: (rows, trials).

        Bit for bit what :meth:`loss` gives for these trials broadcast to every row (the same arithmetic
        in the same order, and the same sums), but the terms that do not depend on p (the powers of
        ``lo`` and ``hi``, ``g^N``) are computed once per construction instead of once per p.
        """
        out = np.empty((self.p.size, log_g.size))
        g = np.exp(log_g)
        ge, be = g[:, None], b[:, None]
        for i, cn in enumerate(self.cns):
            n, off = cn.count, cn.offset
            k_max = cn.n_partners
            fact2 = np.array([2.0 / math.factorial(2 + j) for j in range(k_max + 1)])[n]
            fact3 = np.array([6.0 / math.factorial(3 + j) for j in range(k_max + 1)])[n]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
                g_n = ge**n
            m_b2, b_part = _box_moments(ge, be, n, off, fact2, fact3, n > 0)
            rows = np.arange(i * self.n_p, (i + 1) * self.n_p)
            length = len(cn.coef)
            step = max(1, _MAX_ELEMENTS // (length * g.size))
            for s0 in range(0, rows.size, step):
                rr = rows[s0:s0 + step]
                w0 = np.stack([self.w0[self.start[j]:self.start[j] + length] for j in rr])[:, None, :]
                pe = self.p[rr][:, None, None]
                with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
                    weight = w0 / g_n
                terms = (weight * ((1.0 - pe) * m_b2 + pe * b_part)).ravel()
                total = np.add.reduceat(terms, np.arange(0, terms.size, length)).reshape(rr.size, g.size)
                p = self.p[rr][:, None]
                with np.errstate(divide="ignore"):
                    log_p0 = self.k[rr][:, None] * np.log1p(-p)
                out[rr] = total - p / 3.0 * np.expm1(log_p0) + np.exp(log_p0) * p * _alone_error(g, b)
        return out

    def _loss(self, rows: np.ndarray, log_g: np.ndarray, b: np.ndarray) -> np.ndarray:
        n_s = log_g.shape[1]
        g, b = np.exp(log_g).ravel(), b.ravel()
        trial_len = np.repeat(self.len[rows], n_s)
        seg = np.cumsum(trial_len) - trial_len
        el_trial = np.repeat(np.arange(g.size), trial_len)
        el = np.repeat(np.repeat(self.start[rows], n_s) - seg, trial_len) + np.arange(el_trial.size)
        ge, be, n, pe = g[el_trial], b[el_trial], self.n[el], self.pe[el]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            weight = self.w0[el] / ge**n
        off = self.offset[el]
        m_b2, b_part = _box_moments(ge, be, n, off, self.fact2[el], self.fact3[el], self.has_partner[el])
        total = np.add.reduceat(weight * ((1.0 - pe) * m_b2 + pe * b_part), seg)
        p = np.repeat(self.p[rows], n_s)
        with np.errstate(divide="ignore"):
            log_p0 = np.repeat(self.k[rows], n_s) * np.log1p(-p)
        loss = total - p / 3.0 * np.expm1(log_p0) + np.exp(log_p0) * p * _alone_error(g, b)
        return loss.reshape(log_g.shape)


def _optimize_batch(cns: list[_Corners], p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid + pattern search of every construction at every p at once; arrays (len(cns), p.size)."""
    if PATTERN_EVALUATION not in ("grouped", "flat"):
        raise ValueError(f"PATTERN_EVALUATION must be 'grouped' or 'flat', got {PATTERN_EVALUATION!r}")
    bt = _Batch(cns, p)
    n_rows = bt.p.size
    lg, bb = np.meshgrid(_LOG_G_GRID, _B_GRID, indexing="ij")
    lg, bb = lg.ravel(), bb.ravel()
    all_rows = np.arange(n_rows)
    if PATTERN_EVALUATION == "flat":  # the former route: every row's grid through the flat evaluation
        grid = bt.loss(all_rows, np.broadcast_to(lg, (n_rows, lg.size)), np.broadcast_to(bb, (n_rows, bb.size)))
    else:  # the same values bit for bit, p-independent terms once per construction
        grid = bt.grid_loss(lg, bb)
    stencil = _STENCIL_WITH_CENTRE if PATTERN_EVALUATION == "flat" else _STENCIL
    best = np.argmin(grid, axis=1)
    x = np.stack([lg[best], bb[best]], axis=1)
    f = grid[all_rows, best]
    step = np.tile([_LOG_G_GRID[1] - _LOG_G_GRID[0], _B_GRID[1] - _B_GRID[0]], (n_rows, 1))
    for _ in range(400):
        active = np.max(step, axis=1) > _STEP_TOL
        if not active.any():
            break
        idx = np.flatnonzero(active)
        trial = x[idx, None, :] + stencil[None] * step[idx, None, :]
        vals = bt.loss(idx, trial[..., 0], trial[..., 1])
        j = np.argmin(vals, axis=1)
        improved = vals[np.arange(idx.size), j] < f[idx]
        x[idx[improved]] = trial[np.flatnonzero(improved), j[improved]]
        f[idx[improved]] = vals[np.flatnonzero(improved), j[improved]]
        step[idx[~improved]] *= 0.5
    shape = (len(cns), p.size)
    return f.reshape(shape), np.exp(x[:, 0]).reshape(shape), x[:, 1].reshape(shape)


#: (coefficient key, p values) -> (loss, gain, bias) of the optimiser; bounded by _CACHE_SIZE.
_OPT_CACHE: dict[tuple[tuple[float, ...], tuple[float, ...]], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_CACHE_SIZE = 2048


def clear_caches() -> None:
    """Forget every cached optimum and box-spline corner table (benchmarks and tests time cold caches)."""
    _OPT_CACHE.clear()
    _corners.cache_clear()


def _optimize_many(coeff_keys: list[tuple[float, ...]], p_key: tuple[float, ...],
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Optimum of each construction (by coefficient key) at the p values ``p_key``; the missing ones in one batch."""
    missing = [k for k in dict.fromkeys(coeff_keys) if (k, p_key) not in _OPT_CACHE]
    if missing:
        if len(_OPT_CACHE) + len(missing) > _CACHE_SIZE:
            _OPT_CACHE.clear()
        loss, gain, bias = _optimize_batch([_corners(k) for k in missing], np.asarray(p_key, dtype=float))
        for i, k in enumerate(missing):
            _OPT_CACHE[(k, p_key)] = (loss[i], gain[i], bias[i])
    return [_OPT_CACHE[(k, p_key)] for k in coeff_keys]


def _coefficient_key(construction: Construction) -> tuple[float, ...]:
    return tuple(np.round(construction.partner_coefficients, 15))


def _untied_keys(t: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (round(-t, 15),), (round(-1.0 / t, 15),)


def prefetch_optima(constructions: list[Construction], p: np.ndarray | float, *, untied: bool = True) -> None:
    """Optimise the constructions (and the untied pairs' single-partner problems) at ``p`` in one batch.

    Later calls of :func:`optimal_structure_loss` / :func:`optimal_untied_pairs` at the same ``p``
    values then read the cache. Purely a speed-up: results are those of the individual calls.
    """
    p_key = tuple(np.atleast_1d(check_probability(p)).ravel().tolist())
    keys = [_coefficient_key(c) for c in constructions]
    if untied:
        keys += [k for t in UNTIED_PAIR_ASYMMETRIES for k in _untied_keys(t)]
    _optimize_many(keys, p_key)


def optimal_structure_loss(construction: Construction, p: np.ndarray | float) -> OptimizedStructure:
    """Minimise :func:`structure_loss` over gain ``g > 0`` and bias ``b`` at each ``p``.

    A grid over ``g in [0.4, 3.2]``, ``b in [-1.8, 0.6]`` picks the basin, then a 3x3 pattern search
    in ``(log g, b)`` (step halved whenever no neighbour improves, down to 1e-8) refines it,
    vectorised over ``p``. Results are cached per ``(construction, p values)``.
    """
    p_arr = check_probability(p)
    (loss, gain, bias), = _optimize_many([_coefficient_key(construction)], tuple(p_arr.ravel().tolist()))
    shape = p_arr.shape
    return OptimizedStructure(construction, p_arr, loss.reshape(shape), gain.reshape(shape), bias.reshape(shape))


# --------------------------------------------------------------------------------------------------
# untied (asymmetric) antipodal pairs

#: Asymmetries t searched by :func:`optimal_untied_pairs` (t = 1 is the tied pair; the small-p
#: optimum is t = 1/3, and the loss is flat to ~1e-3 within +-0.05 of it).
UNTIED_PAIR_ASYMMETRIES = (1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.37, 1.0 / 3.0, 0.3, 0.27, 0.25, 0.2, 0.15)


def untied_pair_loss(p: np.ndarray | float, t: float, gain: tuple[float, float] = (1.0, 1.0),
                     bias: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    r"""Exact per-feature loss of an *untied* antipodal pair with asymmetry ``t`` (r = 1/2).

    One hidden unit, ``W_in = [1, -t]``, ``W_out = [g_1, -g_2/t]^T``:

    .. math:: W = \begin{pmatrix} g_1 & -g_1 t \\ -g_2/t & g_2 \end{pmatrix}\quad(\text{rank } 1),

    so feature 1 hears its partner at ``-t`` and feature 2 at ``-1/t``. Tied weights force
    ``t = 1``. At ``g = 1, b = 0`` the only error is when both are on:
    :math:`E\min(U, tV)^2 = t^2/3 - t^3/6` and :math:`E\min(V, U/t)^2 = 1/3 - t/6`, so the loss is
    :math:`p^2 (1/3 + t^2/3 - t^3/6 - t/6)/2`, minimised at ``t = 1/3``: ``25 p^2/162`` against
    ``p^2/6`` for the tied pair (7.4% lower). Returns the mean over the two features.
    """
    t = float(check_finite(t, "t"))
    if not 0 < t <= 1:
        raise ValueError(f"t must be in (0, 1], got {t!r}")
    p = check_probability(p)
    g1, g2 = check_finite(gain[0], "gain"), check_finite(gain[1], "gain")
    if min(float(np.min(g1)), float(np.min(g2))) <= 0:
        raise ValueError(f"gain must be in (0, inf), got {gain!r}")
    b1, b2 = check_finite(bias[0], "bias"), check_finite(bias[1], "bias")
    one = _loss_from_corners(_corners((round(-t, 15),)), g1, b1, p)
    two = _loss_from_corners(_corners((round(-1.0 / t, 15),)), g2, b2, p)
    return (one + two) / 2.0


@with_compact_repr
@dataclass(frozen=True)
class UntiedPairs:
    """Best untied pair at each p: asymmetry ``t`` and each feature's gain and bias (arrays over p)."""

    p: np.ndarray
    loss: np.ndarray
    t: np.ndarray
    gain1: np.ndarray
    bias1: np.ndarray
    gain2: np.ndarray
    bias2: np.ndarray


def optimal_untied_pairs(p: np.ndarray | float) -> UntiedPairs:
    """Minimise :func:`untied_pair_loss` over ``t`` in :data:`UNTIED_PAIR_ASYMMETRIES` and each feature's g, b.

    Given ``t`` the two features decouple (each has its own gain and bias), so each is the
    single-partner optimum of :func:`optimal_structure_loss` with coefficient ``-t`` or ``-1/t``.
    """
    p_arr = check_probability(p)
    key = tuple(np.atleast_1d(p_arr).ravel().tolist())
    optima = _optimize_many([k for t in UNTIED_PAIR_ASYMMETRIES for k in _untied_keys(t)], key)
    best = None
    for i, t in enumerate(UNTIED_PAIR_ASYMMETRIES):
        (l1, g1, b1), (l2, g2, b2) = optima[2 * i], optima[2 * i + 1]
        cand = ((l1 + l2) / 2.0, np.full(len(key), t), g1, b1, g2, b2)
        if best is None:
            best = cand
        else:
            better = cand[0] < best[0]
            best = tuple(np.where(better, c, b) for c, b in zip(cand, best))
    shape = p_arr.shape
    return UntiedPairs(p_arr, *(x.reshape(shape) for x in best))
