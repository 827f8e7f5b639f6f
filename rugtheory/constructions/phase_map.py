r"""Where the symmetric theory holds: a phase map of competing structures over (r, p) (docs/theory.md §10).

At each ``(p, r)`` the candidates are

* the symmetric optimum :math:`L^*(p, r)` (the Persian rug, docs/theory.md §4);
* every polytope of :func:`rugtheory.constructions.polytopes.standard_constructions` with its best gain and bias;
* dropped features (``r = 0``, loss ``v = p/3 - p^2/4``) and dedicated features (``r = 1``, loss 0);
* untied antipodal pairs (one hidden unit, ``W_in = [1, -t]``, t = 1/3 at small p: 25 p^2/162,
  7.4% below the tied pairs' p^2/6), see :func:`rugtheory.constructions.polytopes.untied_pair_loss`;
* a rug of antipodal pairs ("paired rug", r <= 1/2, large-n Gaussian interference
  :math:`\sigma^2 = a^2 v(1/r - 2)`), see :func:`rugtheory.constructions.paired_rug.paired_rug_loss`;
* **mixtures**: a fraction ``f`` of the features in structure A (ratio ``r_A``) and the rest in
  structure B (``r_B``), in orthogonal hidden subspaces, so that ``r = f r_A + (1-f) r_B`` and
  ``L = f L_A + (1-f) L_B``. A rug block at any ratio ``r'`` is an ingredient too.

The best mixture at ``r`` is therefore the **lower convex envelope in r** of all the points
``(r_A, L_A(p))`` (rug points sampled on a grid of ``r'``), and the phase map's loss is
``min(L*(p, r), envelope(r))``. The winner is ``"symmetric"`` where ``L*`` itself is lowest, otherwise
the two ingredients bracketing ``r`` on the envelope (``"pairs + dropped"``, ``"pairs + rug"``, ...;
``"rug mixture"`` when both are rug blocks, i.e. where ``L*`` is not convex in ``r``).
Every mixture is realisable exactly at finite ``n`` up to rounding of the group counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.constructions.paired_rug import PairedRug, optimal_paired_rug_loss
from rugtheory.constructions.polytopes import (
    Construction,
    dropped_loss,
    optimal_structure_loss,
    optimal_untied_pairs,
    prefetch_optima,
    regular_polygon,
    regular_simplex,
    standard_constructions,
)
from rugtheory.constructions.polytopes import clear_caches as polytope_clear_caches
from rugtheory.theory.checks import check_probability, check_ratio
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.optimum import SymmetricOptimum, optimal_symmetric_loss

__all__ = [
    "clear_caches",
    "prefetch_hulls",
    "HULL_BATCH_POINTS",
    "PRUNE_RUG_POINTS",
    "RUG_PRUNE_STRIDE",
    "Component",
    "ExpectedStructure",
    "PhaseMap",
    "phase_map",
    "expected_structure",
    "ExpectedStructures",
    "expected_structures",
    "construction_curve",
    "construction_for_ratio",
    "RUG_RATIO_GRID",
    "PAIRED_RUG_RATIO_GRID",
]

#: Ratios r' at which rug blocks enter the envelope: dense near 0 (where L* changes fastest in r)
#: and uniform elsewhere. The envelope between samples is a chord, so a rug+polytope mixture is
#: over-estimated by O(dr^2 L*''): below 1e-4 relative on this grid (checked in the tests against a
#: 4x finer grid).
RUG_RATIO_GRID = np.unique(np.concatenate([np.geomspace(1e-4, 0.05, 60), np.linspace(0.05, 1.0, 191)]))
#: Ratios at which rugs of antipodal pairs (:func:`rugtheory.constructions.paired_rug.paired_rug_loss`, r <= 1/2)
#: enter the envelope. Each costs a 1-d search; chords between these samples are themselves
#: realisable mixtures, so a coarse grid only over-estimates mixtures that involve a paired rug;
#: the paired rug alone is also evaluated exactly at every queried r <= 1/2.
PAIRED_RUG_RATIO_GRID = np.array([0.005, 0.02, 0.05, 0.09, 0.13, 0.17, 0.21, 0.25, 0.29, 0.33, 0.37, 0.41, 0.45, 0.48])
#: The paired rug at r itself wins only by more than this: at r = 1/2 it IS the pairs, and the
#: structure optimiser is accurate to ~1e-8 relative, so the simpler name is kept within 1e-7.
PAIRED_TIE = 1e-7
#: Points (distinct p x rug ratios) per L* call while building hulls: L* peaks at ~56 KB a point, so a
#: call holds ~56 MB however many p are prefetched at once.
HULL_BATCH_POINTS = 8192
#: Leave out the rug points that provably cannot touch the lower hull (:func:`_rug_points`; the results
#: are the same either way, False evaluates every one, as before issue 15).
PRUNE_RUG_POINTS = True
#: Every this-many-th rug ratio is evaluated first to decide which of the others are needed.
RUG_PRUNE_STRIDE = 8
#: L* wins ("symmetric") where it is within this relative margin of the envelope: ties are resolved
#: in favour of the symmetric theory, and 1e-9 is far above the rounding of either loss.
TIE_TOLERANCE = 1e-9


@with_compact_repr
@dataclass(frozen=True)
class Component:
    """One ingredient of a mixture: ``fraction`` of the features in ``name`` at hidden ratio ``ratio``.

    ``gain`` and ``bias`` are the structure's optimal ``g`` and ``b`` (for a rug block: ``a*`` and
    ``b*`` of :func:`rugtheory.optimal_symmetric_loss` at ``r' = ratio``; for dropped features the
    constant output ``p/2``).
    """

    name: str
    ratio: float
    fraction: float
    loss: float
    gain: float
    bias: float


@with_compact_repr
@dataclass(frozen=True)
class ExpectedStructure:
    """What a trained model at ``(p, r)`` should become if it found the best structure."""

    p: float
    r: float
    winner: str
    loss: float
    symmetric_loss: float
    components: tuple[Component, ...]

    @property
    def ratio_to_symmetric(self) -> float:
        """``loss / L*`` (1 where the symmetric optimum wins)."""
        return self.loss / self.symmetric_loss if self.symmetric_loss > 0 else 1.0


@with_compact_repr
@dataclass(frozen=True)
class PhaseMap:
    """Best loss and winner on a grid; arrays have shape ``(len(p), len(r))``."""

    p: np.ndarray
    r: np.ndarray
    loss: np.ndarray
    symmetric_loss: np.ndarray
    winner: np.ndarray  # integer codes into ``labels``
    labels: tuple[str, ...]

    @property
    def ratio(self) -> np.ndarray:
        """Best loss over L* (<= 1; 1 where the symmetric optimum wins or L* = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.symmetric_loss > 0, self.loss / self.symmetric_loss, 1.0)

    def winner_names(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)[self.winner]


@dataclass(frozen=True)
class _Vertex:
    name: str
    ratio: float
    loss: float
    gain: float
    bias: float


def _lower_hull(points: list[_Vertex]) -> list[_Vertex]:
    """Lower convex hull (Andrew's monotone chain) of points sorted by ratio, then loss."""
    pts = sorted(points, key=lambda q: (q.ratio, q.loss))
    hull: list[_Vertex] = []
    for q in pts:
        if hull and q.ratio == hull[-1].ratio:
            continue  # same ratio, higher loss
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (b.ratio - a.ratio) * (q.loss - a.loss) - (b.loss - a.loss) * (q.ratio - a.ratio)
            if cross <= 0:  # b lies on or above the chord a-q
                hull.pop()
            else:
                break
        hull.append(q)
    return hull


def _paired_rugs(p: np.ndarray, r_extra: np.ndarray) -> tuple[PairedRug, PairedRug]:
    """Paired rugs at the grid ratios and at ``r_extra`` in ONE vectorised search (rows are independent)."""
    both = optimal_paired_rug_loss(p[:, None], np.concatenate([PAIRED_RUG_RATIO_GRID, r_extra])[None, :])
    k = PAIRED_RUG_RATIO_GRID.size
    split = [PairedRug(both.p[:, s], both.r[:, s], both.loss[:, s], both.gain[:, s], both.bias[:, s])
             for s in (slice(None, k), slice(k, None))]
    return split[0], split[1]


def _symmetric_at(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L*, a*, b* at the 1-d pairs (p[k], r[k]), in calls of at most :data:`HULL_BATCH_POINTS` points.

    Each point's L* does not depend on the others in its call (elementwise searches), so the batching
    bounds memory without changing a value.
    """
    parts = [optimal_symmetric_loss(p[i:i + HULL_BATCH_POINTS], r[i:i + HULL_BATCH_POINTS])
             for i in range(0, p.size, HULL_BATCH_POINTS)]
    if not parts:
        return np.empty(0), np.empty(0), np.empty(0)
    return tuple(np.concatenate([np.ravel(getattr(o, k)) for o in parts]) for k in ("loss", "a", "b"))


def _rug_points(p: np.ndarray, base: list[list[_Vertex]]) -> tuple[np.ndarray, ...]:
    r"""L*, a*, b* at (p, RUG_RATIO_GRID < 1), shape (p, ratios), NaN where a rug point cannot touch the hull.

    ``base[i]``: the other ingredients at ``p[i]``. With :data:`PRUNE_RUG_POINTS`, L* is first
    evaluated at every :data:`RUG_PRUNE_STRIDE`-th ratio (and the last); let :math:`H_0` be the lower
    hull of the other ingredients and these samples. Between two samples :math:`r_a < r_b` every rug
    point has :math:`L^*(r') \ge L^*(r_b)` (L* decreases in r, docs/theory.md §4) and
    :math:`H_0(r') \le H_0(r_a)` (a convex hull ending at (1, 0) does not increase), so where
    :math:`L^*(r_b) > H_0(r_a)(1 + 10^{-9})` they all lie strictly above :math:`H_0`, hence above the
    hull of everything (which is below :math:`H_0`), and cannot be vertices of it: they are not
    evaluated. (1e-9 is far above the rounding of either side.) The hull, and so every result, is the
    same as with every rug point (tests/test_phase_map.py).
    """
    ratios = RUG_RATIO_GRID[RUG_RATIO_GRID < 1.0]  # r' = 1 is the dedicated point
    n_r = ratios.size
    out = [np.full((p.size, n_r), np.nan) for _ in range(3)]
    if not PRUNE_RUG_POINTS or n_r <= 2:
        need = np.ones((p.size, n_r), dtype=bool)
    else:
        coarse = np.unique(np.append(np.arange(0, n_r, RUG_PRUNE_STRIDE), n_r - 1))
        ii, jj = np.meshgrid(np.arange(p.size), coarse, indexing="ij")
        vals = _symmetric_at(p[ii.ravel()], ratios[jj.ravel()])
        for o, val in zip(out, vals):
            o[ii, jj] = val.reshape(ii.shape)
        hulls = [_lower_hull(base[i] + [_Vertex("rug", float(ratios[j]), float(out[0][i, j]), 0.0, 0.0)
                                        for j in coarse]) for i in range(p.size)]
        h0_left = np.array([_envelope(h, ratios[coarse[:-1]])[0] for h in hulls]).reshape(p.size, coarse.size - 1)
        gap_open = out[0][:, coarse[1:]] <= h0_left * (1.0 + 1e-9)  # (p, gaps): rug points may reach the hull
        need = np.zeros((p.size, n_r), dtype=bool)
        gap_of = np.searchsorted(coarse, np.arange(n_r), side="right") - 1  # gap index of each ratio
        inner = ~np.isin(np.arange(n_r), coarse)
        need[:, inner] = gap_open[:, gap_of[inner]]
    ii, jj = np.nonzero(need)
    vals = _symmetric_at(p[ii], ratios[jj])
    for o, val in zip(out, vals):
        o[ii, jj] = val
    return ratios, *out


def _vertices(p: np.ndarray, constructions: list[Construction], prug: PairedRug | None = None) -> list[list[_Vertex]]:
    """All envelope ingredients at each p (list over p); ``prug``: paired rugs at the grid ratios if known.

    Rug points that provably cannot touch the lower hull are left out (see :func:`_rug_points`).
    """
    v = dropped_loss(p)
    prefetch_optima(constructions, p)  # every polytope and the untied pairs in one batch
    opts = [optimal_structure_loss(c, p) for c in constructions]
    if prug is None:
        prug = _paired_rugs(p, np.empty(0))[0]
    untied = optimal_untied_pairs(p)
    out = []
    for i in range(p.size):
        pts = [_Vertex("dropped", 0.0, float(v[i]), 0.0, float(p[i] / 2)), _Vertex("dedicated", 1.0, 0.0, 1.0, 0.0)]
        pts += [
            _Vertex(o.construction.name, o.ratio, float(o.loss[i]), float(o.gain[i]), float(o.bias[i])) for o in opts
        ]
        # untied pairs: two gains/biases; the vertex records feature 1's (the full set is in UntiedPairs)
        pts.append(_Vertex("untied pairs", 0.5, float(untied.loss[i]), float(untied.gain1[i]), float(untied.bias1[i])))
        pts += [
            _Vertex("paired rug", float(rr), float(prug.loss[i, j]), float(prug.gain[i, j]), float(prug.bias[i, j]))
            for j, rr in enumerate(PAIRED_RUG_RATIO_GRID)
        ]
        out.append(pts)
    ratios, rug_loss, rug_a, rug_b = _rug_points(p, out)
    for i, pts in enumerate(out):
        pts += [_Vertex("rug", float(ratios[j]), float(rug_loss[i, j]), float(rug_a[i, j]), float(rug_b[i, j]))
                for j in np.flatnonzero(~np.isnan(rug_loss[i]))]
    return out


def _mixture_label(a: _Vertex, b: _Vertex, r: float) -> str:
    if abs(r - a.ratio) < 1e-12:
        return a.name
    if abs(r - b.ratio) < 1e-12:
        return b.name
    if a.name == "rug" and b.name == "rug":
        return "rug mixture"
    if a.name == "paired rug" and b.name == "paired rug":
        return "paired rug"
    return f"{a.name} + {b.name}"


def _envelope(hull: list[_Vertex], r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Envelope value at each r and the index of the hull segment holding it."""
    hr = np.array([h.ratio for h in hull])
    hl = np.array([h.loss for h in hull])
    seg = np.clip(np.searchsorted(hr, r, side="right") - 1, 0, len(hull) - 2)
    t = (r - hr[seg]) / (hr[seg + 1] - hr[seg])
    return hl[seg] + t * (hl[seg + 1] - hl[seg]), seg


#: (p, ratio grids) -> lower hull of the default ingredients, so that expected_structure at several r and one p
#: (``rugtheory predict``) builds the hull once. Bounded; the results do not depend on it.
_HULL_CACHE: dict[tuple[float, bytes, bytes], list[_Vertex]] = {}


def clear_caches() -> None:
    """Forget the cached lower hulls and every cached structure optimum (cold-cache timings)."""
    _HULL_CACHE.clear()
    polytope_clear_caches()


def _standard() -> list[Construction]:
    return standard_constructions()


def phase_map(p: np.ndarray, r: np.ndarray, *, constructions: list[Construction] | None = None) -> PhaseMap:
    """Best loss over the symmetric optimum, every construction and their mixtures on a grid.

    Parameters
    ----------
    p : array_like, 1-d
        Feature probabilities in (0, 1].
    r : array_like, 1-d
        Compression ratios in (0, 1].
    constructions : list of Construction, optional
        Polytopes to consider; default :func:`rugtheory.constructions.polytopes.standard_constructions`.

    Returns
    -------
    PhaseMap
        ``loss[i, j] = min(L*(p_i, r_j), paired_rug(p_i, r_j), envelope_i(r_j))`` and the winner's label.
    """
    p = np.atleast_1d(check_probability(p)).ravel()
    r = np.atleast_1d(check_ratio(r)).ravel()
    cons = _standard() if constructions is None else list(constructions)
    sym = optimal_symmetric_loss(p[:, None], r[None, :]).loss
    paired = np.full((p.size, r.size), np.inf)
    low = r <= 0.5
    prug_grid, prug_at_r = _paired_rugs(p, r[low])
    paired[:, low] = prug_at_r.loss
    loss = np.empty((p.size, r.size))
    winner = np.empty((p.size, r.size), dtype=int)
    labels: list[str] = ["symmetric"]
    for i, pts in enumerate(_vertices(p, cons, prug_grid)):
        hull = _lower_hull(pts)
        env, seg = _envelope(hull, r)
        for j in range(r.size):
            if paired[i, j] < min(env[j], sym[i, j]) * (1.0 - PAIRED_TIE):
                loss[i, j], name = paired[i, j], "paired rug"
            elif sym[i, j] <= env[j] * (1.0 + TIE_TOLERANCE):
                loss[i, j], name = sym[i, j], "symmetric"
            else:
                loss[i, j] = env[j]
                name = _mixture_label(hull[seg[j]], hull[seg[j] + 1], r[j])
            if name not in labels:
                labels.append(name)
            winner[i, j] = labels.index(name)
    return PhaseMap(p, r, loss, sym, winner, tuple(labels))


def prefetch_hulls(p: np.ndarray | float) -> None:
    """Build and cache the lower hulls of the default ingredients at the distinct values of ``p``, all at once.

    Purely a speed-up for callers that will ask :func:`expected_structures` about these p a chunk at a
    time (``rugtheory predict``): the polytope optima of every p come from ONE batched search and the
    paired rugs at the grid ratios from one vectorised search, instead of one of each per chunk. The
    results do not depend on it. At most 256 p are kept (the cache's bound), so prefetch in blocks.
    """
    pu = np.unique(np.atleast_1d(check_probability(p)).ravel().astype(np.float64))
    _hulls(pu, _standard(), True)


def _hulls(p: np.ndarray, cons: list[Construction], cached: bool) -> list[list[_Vertex]]:
    """Lower hull of the ingredients at each (distinct) p; the missing ones in ONE vectorised :func:`_vertices` call.

    With ``cached`` (the default constructions) hulls are kept in :data:`_HULL_CACHE`, keyed by p and the
    ratio grids (the grids may be swapped, e.g. by a benchmark). Each p's hull does not depend on the others.
    """
    grids = (RUG_RATIO_GRID.tobytes(), PAIRED_RUG_RATIO_GRID.tobytes())
    keys = [(float(q), *grids) for q in p]
    found = {k: _HULL_CACHE[k] for k in keys if cached and k in _HULL_CACHE}
    missing = [i for i, k in enumerate(keys) if k not in found]
    if missing:
        pm = p[missing]
        for i, pts in zip(missing, _vertices(pm, cons, _paired_rugs(pm, np.empty(0))[0])):
            found[keys[i]] = _lower_hull(pts)
        if cached:
            if len(_HULL_CACHE) + len(missing) > 256:
                _HULL_CACHE.clear()
            _HULL_CACHE.update((keys[i], found[keys[i]]) for i in missing[-256:])
    return [found[k] for k in keys]


@with_compact_repr
@dataclass(frozen=True)
class ExpectedStructures:
    """:func:`expected_structures` at many points: 1-d arrays over the points (``p``, ``r`` flattened).

    ``winner`` is an object array of names; ``components[k]`` the mixture of point ``k``;
    ``structures[k]`` (indexing) gives point ``k`` as an :class:`ExpectedStructure`.
    """

    p: np.ndarray
    r: np.ndarray
    winner: np.ndarray
    loss: np.ndarray
    symmetric_loss: np.ndarray
    components: tuple[tuple[Component, ...], ...]

    def __len__(self) -> int:
        return int(self.p.size)

    def __getitem__(self, k: int) -> ExpectedStructure:
        return ExpectedStructure(float(self.p[k]), float(self.r[k]), str(self.winner[k]), float(self.loss[k]),
                                 float(self.symmetric_loss[k]), self.components[k])

    @property
    def ratio_to_symmetric(self) -> np.ndarray:
        """``loss / L*`` (1 where the symmetric optimum wins or L* = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.symmetric_loss > 0, self.loss / self.symmetric_loss, 1.0)


def expected_structures(p: np.ndarray | float, r: np.ndarray | float, *,
                        constructions: list[Construction] | None = None,
                        symmetric: SymmetricOptimum | None = None) -> ExpectedStructures:
    """:func:`expected_structure` at the points ``(p[k], r[k])`` (broadcast, then flattened), vectorised.

    L* and the paired rug at the points are each ONE vectorised search, and the lower hull of the
    ingredients is built once per distinct p (cached for the default constructions). Every point's
    result is the same, bit for bit, as that of :func:`expected_structure` alone (the searches are
    elementwise). Unlike :func:`phase_map` the points are not a grid: ``p`` and ``r`` pair up.
    ``symmetric``: ``optimal_symmetric_loss(p, r)`` if the caller already has it (it is not recomputed).
    """
    p_arr, r_arr = np.broadcast_arrays(check_probability(p), check_ratio(r))
    pf, rf = p_arr.ravel().astype(np.float64), r_arr.ravel().astype(np.float64)
    cons = _standard() if constructions is None else list(constructions)
    sym = optimal_symmetric_loss(pf, rf) if symmetric is None else symmetric
    if np.size(sym.loss) != pf.size:
        raise ValueError(f"symmetric has {np.size(sym.loss)} points, p and r {pf.size}")
    sym_loss, sym_a, sym_b = (np.ravel(x) for x in (sym.loss, sym.a, sym.b))
    low = np.flatnonzero(rf <= 0.5)
    pr_loss = np.full(pf.size, np.inf)
    pr_gain, pr_bias = np.zeros(pf.size), np.zeros(pf.size)
    if low.size:
        pr = optimal_paired_rug_loss(pf[low], rf[low])
        pr_loss[low], pr_gain[low], pr_bias[low] = pr.loss, pr.gain, pr.bias
    up, inv = np.unique(pf, return_inverse=True)
    hulls = _hulls(up, cons, constructions is None)
    env = np.empty(pf.size)
    seg = np.empty(pf.size, dtype=int)
    for u, hull in enumerate(hulls):
        at = np.flatnonzero(inv == u)
        env[at], seg[at] = _envelope(hull, rf[at])
    paired = pr_loss < np.minimum(env, sym_loss) * (1.0 - PAIRED_TIE)
    symmetric = ~paired & (sym_loss <= env * (1.0 + TIE_TOLERANCE))
    loss = np.where(paired, pr_loss, np.where(symmetric, sym_loss, env))
    winner = np.empty(pf.size, dtype=object)
    comps: list[tuple[Component, ...]] = []
    for k in range(pf.size):
        rk = float(rf[k])
        if paired[k]:
            winner[k] = "paired rug"
            comps.append((Component("paired rug", rk, 1.0, float(pr_loss[k]), float(pr_gain[k]), float(pr_bias[k])),))
        elif symmetric[k]:
            winner[k] = "symmetric"
            comps.append((Component("rug", rk, 1.0, float(sym_loss[k]), float(sym_a[k]), float(sym_b[k])),))
        else:
            hull = hulls[inv[k]]
            a, b = hull[seg[k]], hull[seg[k] + 1]
            f_a = (b.ratio - rk) / (b.ratio - a.ratio)
            winner[k] = _mixture_label(a, b, rk)
            comps.append(tuple(Component(v.name, v.ratio, float(f), v.loss, v.gain, v.bias)
                               for v, f in ((a, f_a), (b, 1.0 - f_a)) if f > 1e-12))
    return ExpectedStructures(pf, rf, winner, loss, sym_loss.astype(np.float64), tuple(comps))


def expected_structure(p: float, r: float, *, constructions: list[Construction] | None = None) -> ExpectedStructure:
    """The structure expected to win at ``(p, r)``, its loss and L* beside it.

    Scalar version of :func:`phase_map` that also returns the mixture's composition: which
    fraction of the features sits in which structure, at which hidden ratio, with which gain/bias.
    One point of :func:`expected_structures` (the vectorised version, for many points).

    Examples
    --------
    >>> e = expected_structure(0.01, 0.5)
    >>> e.winner, round(e.loss / (25 * 0.01**2 / 162), 3), round(e.symmetric_loss / e.loss, 1)
    ('untied pairs', 1.0, 6.1)
    """
    p_arr = check_probability(p)
    r_arr = check_ratio(r)
    if p_arr.ndim or r_arr.ndim:
        raise ValueError("expected_structure takes scalar p and r; use expected_structures or phase_map for grids")
    return expected_structures(p_arr, r_arr, constructions=constructions)[0]


def construction_curve(construction: Construction, p: np.ndarray | float, r: np.ndarray | float) -> np.ndarray:
    """Loss of one construction brought to any ratio ``r`` with dropped or dedicated features.

    For ``r <= r_c`` a fraction ``r/r_c`` of the features sits in the polytope and the rest are
    dropped; for ``r > r_c`` a fraction ``(1-r)/(1-r_c)`` sits in the polytope and the rest have a
    hidden unit each:

    .. math:: L_c(r) = \\begin{cases} \\frac{r}{r_c}L_c + (1-\\frac{r}{r_c})\\,v & r\\le r_c \\\\
              \\frac{1-r}{1-r_c}L_c & r > r_c. \\end{cases}

    Arrays broadcast over ``p`` and ``r``.
    """
    p = check_probability(p)
    r = check_ratio(r)
    p, r = np.broadcast_arrays(p, r)
    pu, inv = np.unique(p, return_inverse=True)
    lc = optimal_structure_loss(construction, pu).loss[inv].reshape(p.shape)
    rc = construction.ratio
    v = dropped_loss(p)
    below = r / rc * lc + (1.0 - r / rc) * v
    above = (1.0 - r) / (1.0 - rc) * lc
    return np.where(r <= rc, below, above)


def construction_for_ratio(family: str, r: float) -> Construction:
    """The pure polytope of ``family`` (``"pairs"``, ``"simplex"``, ``"polygon"``) with ratio exactly ``r``.

    Raises ``ValueError`` naming the reachable ratios when no member has this ``r``.
    """
    rf = float(check_ratio(r))
    if family == "pairs":
        members = {0.5: lambda: regular_simplex(2)}
    elif family == "simplex":
        members = {(k - 1) / k: (lambda k=k: regular_simplex(k)) for k in range(2, 11)}
    elif family == "polygon":
        members = {2 / k: (lambda k=k: regular_polygon(k)) for k in range(3, 11)}
    else:
        raise ValueError(f"family must be one of 'pairs', 'simplex', 'polygon', got {family!r}")
    for ratio, make in members.items():
        if abs(ratio - rf) < 1e-9:
            return make()
    allowed = ", ".join(f"{x:.4g}" for x in sorted(members))
    raise ValueError(f"r must be one of the ratios the {family} family reaches ({allowed}), got {rf!r}")
