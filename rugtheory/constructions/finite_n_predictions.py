r"""Finite-n predictions of the constructions without training (docs/theory.md §7.5).

For a user's ``(n, m, p)`` (``r = m/n``) every construction of docs/theory.md §8 and §10 is built at
that n, its two scalars (gain and bias) are optimised **at that n** on the exact finite-n loss, and
that loss is returned with its error estimate:

* ``"rug"``: the Persian rug of L* (Hadamard, ``n`` a power of two, seeded row set) in the model
  ``y = ReLU(α W x + β)``. All rows are permutations of each other, so the loss is one row's exact
  loss (:func:`rugtheory.theory.finite_n.exact_loss_of_row`, O(n) per evaluation), minimised over
  ``(α, β)`` from the large-n scalars (:func:`best_row_scalars`: exact in the gain, Brent in the threshold).
* ``"paired rug"`` (``m <= n/2``): a Persian rug on the ``n/2`` pair directions in ``m`` dims, each
  direction carrying two antipodal features, ``W = g [[R, −R], [−R, R]]``; every row is a
  permutation of ``g [R_0, −R_0]``, so again one row.
* ``"untied pairs + dedicated"`` (``r >= 1/2``) or ``"untied pairs + dropped"`` (``r < 1/2``), and
  each polytope of :func:`rugtheory.constructions.polytopes.standard_constructions` brought to ``r``
  the same way (docs/theory.md §10.3): groups live in orthogonal subspaces, so their per-feature loss
  is the exact closed form at **any** n that holds whole groups (no n-dependence at all), with the
  optimal gain and bias of the closed form.
* ``"expected: <winner>"``: the composition of :func:`rugtheory.constructions.phase_map.expected_structure`
  (fractions of the features in each structure, each at its hidden ratio).

**What "m" each construction uses.** A mixture puts ``n_c`` features and ``m_c`` hidden units in
component c. Group sizes are whole (a simplex k needs ``n_c`` divisible by k and takes
``(k − 1) n_c/k`` hidden units; dropped features take none, dedicated ones one each), so a composition
is realised by the integer split that keeps the total hidden count closest to the requested ``m``,
then the features closest to the asked fractions (:func:`realise_composition`). Each
:class:`FiniteNPrediction` reports the ``m`` it actually uses, its parts with their own ``n`` and ``m``,
and says in ``notes`` where the composition cannot be realised exactly (it is never silently changed).
A prediction whose realisation needs more hidden units than ``m`` is not eligible as the lowest.

Rug blocks inside a mixture whose size is not a power of two use the Fourier (circulant) kind of
docs/theory.md §8.1, which exists at any size; one row is again the whole loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rugtheory.constructions.hadamard import is_power_of_two
from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
from rugtheory.constructions.phase_map import expected_structure
from rugtheory.constructions.polytopes import (
    Construction,
    dropped_loss,
    optimal_structure_loss,
    optimal_untied_pairs,
    prefetch_optima,
    standard_constructions,
    structure_loss,
    untied_pair_loss,
)
from rugtheory.theory.checks import check_int, check_probability, check_seed
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.finite_n import exact_loss_of_row
from rugtheory.theory.optimum import optimal_symmetric_loss

__all__ = [
    "MIN_N",
    "MAX_N",
    "FiniteNPrediction",
    "FiniteNPredictions",
    "Part",
    "best_row_scalars",
    "best_rug",
    "check_prediction_size",
    "finite_n_predictions",
    "prediction_weights",
    "realise_composition",
]

#: Smallest n accepted: below 8 a rug of m < n/2 and a paired rug hardly exist.
MIN_N = 8
#: Largest n accepted: one exact row costs O(n) per evaluation and the scalar search takes ~50 of them
#: per rug block (about a second per rug at 2^16 on one core).
MAX_N = 1 << 16
#: Target absolute error per exact row evaluation while optimising, relative to p (losses are O(p)):
#: the loss is stationary at the optimum, so scalars good to ~1e-4 give the loss to ~1e-8 relative;
#: a tighter target costs 10-100x more nodes where p·n is small. The reported loss and error are
#: evaluated once more at :data:`_FINAL_TOL`.
_OPT_REL_TOL = 1e-7
_FINAL_TOL = 1e-11
#: Closed forms (polytopes, untied pairs, dropped, dedicated) are exact up to float64 rounding:
#: their ``error`` is reported as 0.
_CLOSED = "closed form (docs/theory.md §10.3), exact at any n holding whole groups"
_EXACT = "one-row exact loss (docs/theory.md §7), all rows equivalent"


@with_compact_repr
@dataclass(frozen=True)
class FiniteNPrediction:
    """Exact finite-n loss of one construction at scalars optimised at that n.

    Attributes
    ----------
    name : str
        ``"rug"``, ``"paired rug"``, ``"untied pairs + dedicated"``, ``"simplex4 + dropped"``,
        ``"expected: <winner>"``, ... (a part: ``"rug"``, ``"paired rug"``, a polytope name,
        ``"untied pairs"``, ``"dropped"``, ``"dedicated"``).
    n, m : int
        Features and hidden units this realisation actually uses (``m`` may differ from the
        requested one for a mixture; ``notes`` then says so).
    p : float
    loss, error : float
        Per-feature exact finite-n loss and its absolute error estimate (0 for closed forms).
    gain, bias : float
        The optimised scalars (rug: ``α``, ``β`` of ``y = ReLU(α W x + β)``; untied pairs: feature
        1's, the rest in ``details``); NaN for a mixture (see ``parts``).
    large_n_loss : float
        The large-n loss of the same construction/composition at the requested ``r``.
    notes : tuple of str
        How it was computed and everything that differs from the request.
    parts : tuple of FiniteNPrediction
        The components of a mixture (empty for a single structure).
    kind : str
        ``"hadamard"``/``"fourier"`` for rugs, ``"closed form"`` or ``"mixture"``.
    seed : int
        Seed of the rug's row set (unused by closed forms).
    details : dict
        Extra scalars (untied pairs: ``t``, ``gain2``, ``bias2``; rugs: loss at the large-n scalars).
    """

    name: str
    n: int
    m: int
    p: float
    loss: float
    error: float
    gain: float
    bias: float
    large_n_loss: float
    notes: tuple[str, ...] = ()
    parts: tuple[FiniteNPrediction, ...] = ()
    kind: str = "closed form"
    seed: int = 0
    details: dict = field(default_factory=dict)

    @property
    def over_large_n(self) -> float:
        """``loss / large_n_loss − 1`` (NaN where the large-n loss is 0)."""
        return self.loss / self.large_n_loss - 1.0 if self.large_n_loss > 0 else float("nan")


@with_compact_repr
@dataclass(frozen=True)
class FiniteNPredictions:
    """All constructions at one ``(n, m, p)``; ``lowest`` names the lowest eligible finite-n loss."""

    n: int
    m: int
    p: float
    predictions: tuple[FiniteNPrediction, ...]
    lowest: str
    skipped: tuple[tuple[str, str], ...]

    @property
    def r(self) -> float:
        return self.m / self.n

    def by_name(self, name: str) -> FiniteNPrediction:
        """The prediction called ``name`` (``"rug"``, ``"paired rug"``, ...); names that start with
        ``"expected"`` match the expected structure."""
        for pr in self.predictions:
            if pr.name == name or (name == "expected" and pr.name.startswith("expected")):
                return pr
        raise KeyError(f"no prediction named {name!r}; have {[q.name for q in self.predictions]}")

    @property
    def expected(self) -> FiniteNPrediction:
        return self.by_name("expected")

    @property
    def best(self) -> FiniteNPrediction:
        return self.by_name(self.lowest)


# --------------------------------------------------------------------------------------------------
# input checks


def check_prediction_size(n: object, m: object, name_n: str = "n", name_m: str = "m") -> tuple[int, int]:
    """``n`` a power of two in [MIN_N, MAX_N] (the Hadamard rug needs it), ``1 <= m <= n``; one-line errors."""
    try:
        nf = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name_n} must be a power of two in [{MIN_N}, {MAX_N}], got {n!r}") from None
    if not (math.isfinite(nf) and nf == int(nf) and MIN_N <= nf <= MAX_N and is_power_of_two(int(nf))):
        shown = int(nf) if math.isfinite(nf) and nf == int(nf) else n
        raise ValueError(f"{name_n} must be a power of two in [{MIN_N}, {MAX_N}] (the Hadamard rug), got {shown!r}")
    n_int = int(nf)
    m_int = check_int(m, name_m, low=1, high=n_int)
    return n_int, m_int


# --------------------------------------------------------------------------------------------------
# optimising the two scalars of a row-symmetric matrix on its exact loss


def best_row_scalars(row: np.ndarray, p: float, gain0: float, bias0: float, *, maxfev: int = 40,
                     ) -> tuple[float, float, float, float, bool]:
    """Minimise the exact loss of ``ReLU(gain · row · x + bias)`` (``row[0]`` the diagonal) over (gain, bias).

    For matrices whose rows are permutations of each other this is the whole model's loss. As for
    L* (docs/theory.md §4.2) the output is ``g ReLU(row · x − θ)`` with ``θ = −bias/gain``, so at fixed θ
    the loss is exactly quadratic in g, ``g² D − 2gN + p/3``: two exact evaluations (g = 1, 2) give
    ``g* = N/D``, and only θ is searched (bounded Brent around ``θ0 = −bias0/gain0``, to 1e-6; each
    evaluation to 1e-7 p absolute). The loss and its error estimate are then evaluated directly at
    ``(g*, −g*θ*)`` with tolerance 1e-11 (never as ``p/3 − N²/D``). Returns
    ``(loss, error, gain, bias, converged)``; ``loss`` is never above the loss at ``(gain0, bias0)``.
    """
    from scipy.optimize import minimize_scalar

    row = np.asarray(row, dtype=np.float64)
    tol = max(1e-13, _OPT_REL_TOL * p)

    def quad(theta: float) -> tuple[float, float]:
        l1 = exact_loss_of_row(row, 0, -theta, p, tol=tol)[0]
        l2 = exact_loss_of_row(2.0 * row, 0, -2.0 * theta, p, tol=tol)[0]
        d = (l2 - 2.0 * l1 + p / 3.0) / 2.0
        return d, (d + p / 3.0 - l1) / 2.0

    def profile(theta: float) -> float:
        d, nn = quad(theta)
        return -(nn * nn) / d if d > 0 and nn > 0 else 0.0

    theta0 = -float(bias0) / float(gain0)
    half = 0.5 * abs(theta0) + 0.1
    res = minimize_scalar(profile, bounds=(theta0 - half, theta0 + half), method="bounded",
                          options={"xatol": 1e-6, "maxiter": maxfev})
    theta = float(res.x)
    d, nn = quad(theta)
    g = nn / d if d > 0 and nn > 0 else float(gain0)
    b = -g * theta
    val, err = exact_loss_of_row(g * row, 0, b, p, tol=_FINAL_TOL)
    val0, err0 = exact_loss_of_row(float(gain0) * row, 0, float(bias0), p, tol=_FINAL_TOL)
    ok = bool(res.success) and min(abs(theta - theta0 + half), abs(theta0 + half - theta)) > 1e-4
    if val0 < val:  # the start was already optimal to the evaluation accuracy
        return float(val0), float(err0), float(gain0), float(bias0), ok
    return float(val), float(err), float(g), float(b), ok


def best_rug(n: int, m: int, p: float, *, seed: int) -> tuple[float, float, float]:
    """Best ``y = ReLU(α (P/r) x + β)`` Hadamard Persian rug at this n on the exact loss: ``(loss, α, β)``.

    All rows are permutations of each other, so the exact loss is one row's
    (:func:`best_row_scalars`, started from the theory scalars ``α = a*``, ``β = b* − a* μ``).
    """
    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars

    p = float(check_probability(p))
    rug = persian_rug(n, m, seed=seed)
    sc = theory_scalars(rug, p)
    val, _, alpha, beta, _ = best_row_scalars(np.asarray(rug.row(0), dtype=np.float64), p, sc.alpha, sc.beta)
    return val, alpha, beta


# --------------------------------------------------------------------------------------------------
# compositions at finite n


@dataclass(frozen=True)
class Part:
    """One component of a composition to realise: ``fraction`` of the features in ``name`` at ``ratio``.

    ``group`` features per group; ``dim`` hidden units per group (None: any count up to
    ``max_ratio · n_c``, a rug block).
    """

    name: str
    fraction: float
    ratio: float
    group: int
    dim: int | None
    max_ratio: float = 1.0


def _constructions() -> dict[str, Construction]:
    return {c.name: c for c in standard_constructions()}


def _part(name: str, fraction: float, ratio: float) -> Part:
    if name == "dropped":
        return Part(name, fraction, 0.0, 1, 0)
    if name == "dedicated":
        return Part(name, fraction, 1.0, 1, 1)
    if name == "untied pairs":
        return Part(name, fraction, 0.5, 2, 1)
    if name == "rug":
        return Part(name, fraction, ratio, 1, None, 1.0)
    if name == "paired rug":
        return Part(name, fraction, ratio, 2, None, 0.5)
    cons = _constructions()
    if name not in cons:
        raise ValueError(f"unknown component {name!r}; known: dropped, dedicated, untied pairs, rug, paired rug, "
                         + ", ".join(cons))
    c = cons[name]
    return Part(name, fraction, c.ratio, c.k, c.dim)


def _hidden(part: Part, n_c: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Hidden units of ``part`` with ``n_c`` features: fixed for whole groups, else ``want`` clipped."""
    if part.dim is not None:
        return part.dim * n_c // part.group
    hi = np.floor(part.max_ratio * n_c + 1e-9).astype(np.int64)
    lo = np.where(n_c > 0, 1, 0)
    return np.clip(want, lo, hi)


def realise_composition(parts: list[Part], n: int, m: int) -> tuple[list[tuple[Part, int, int]], int]:
    """Integer features and hidden units per part: ``([(part, n_c, m_c), ...], m_used)``.

    One or two parts (a single part is padded with an empty ``dropped`` and ``dedicated`` filler,
    whichever realises better, so that a group size that does not divide n leaves a few features
    over). Among all splits into whole groups, one that needs at most ``m`` hidden units if any does
    (a model with ``m`` units can leave some unused), then the one whose total hidden count is
    closest to ``m``, then whose feature split is closest to the fractions asked.
    """
    n, m = int(n), int(m)
    if len(parts) == 1:
        tries = [realise_composition([parts[0], _part(f, 0.0, 0.0)], n, m) for f in ("dropped", "dedicated")]
        if tries[1][1] == m and tries[0][1] != m:
            return tries[1]
        return tries[0] if abs(tries[0][1] - m) <= abs(tries[1][1] - m) else tries[1]
    if len(parts) != 2:
        raise ValueError(f"parts must hold one or two components, got {len(parts)}")
    a, b = parts
    n_a = np.arange(0, n + 1, a.group, dtype=np.int64)
    n_b = n - n_a
    ok = n_b % b.group == 0
    n_a, n_b = n_a[ok], n_b[ok]
    if n_a.size == 0:
        raise ValueError(f"n = {n} cannot be split into groups of {a.group} ({a.name}) and {b.group} ({b.name})")
    zero = np.zeros_like(n_a)
    if a.dim is not None:  # whole groups fix a's hidden count; b (if a rug block) takes the rest
        m_a = _hidden(a, n_a, zero)
        m_b = _hidden(b, n_b, m - m_a)
    elif b.dim is not None:
        m_b = _hidden(b, n_b, zero)
        m_a = _hidden(a, n_a, m - m_b)
    else:  # two rug blocks: hidden units in proportion to r_c n_c
        weight = a.ratio * n_a + b.ratio * n_b
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(weight > 0, a.ratio * n_a / np.where(weight > 0, weight, 1.0), 0.5)
        m_a = _hidden(a, n_a, np.rint(m * share).astype(np.int64))
        m_b = _hidden(b, n_b, m - m_a)
    over = (m_a + m_b > m).astype(np.int64)  # fewer hidden units than m is realisable (some unused), more is not
    miss = np.abs(m_a + m_b - m)
    off = np.abs(n_a - a.fraction * n)
    k = int(np.lexsort((off, miss, over))[0])
    out = [(a, int(n_a[k]), int(m_a[k])), (b, int(n_b[k]), int(m_b[k]))]
    return out, int(m_a[k] + m_b[k])


# --------------------------------------------------------------------------------------------------
# one component at finite n


def _rug_at(n_c: int, seed: int):  # noqa: ANN202 -- a PersianRug factory per kind
    from rugtheory.constructions.persian_rug import persian_rug

    kind = "hadamard" if is_power_of_two(n_c) else "fourier"
    return kind, (lambda mm: persian_rug(n_c, mm, seed=seed, kind=kind))


def _leaf(part: Part, n_c: int, m_c: int, p: float, *, seed: int) -> FiniteNPrediction:
    """The finite-n prediction of one component with ``n_c`` features and ``m_c`` hidden units."""
    if part.name == "dropped":
        v = float(dropped_loss(p))
        return FiniteNPrediction("dropped", n_c, 0, p, v, 0.0, 0.0, p / 2.0, v, (_CLOSED,))
    if part.name == "dedicated":
        return FiniteNPrediction("dedicated", n_c, n_c, p, 0.0, 0.0, 1.0, 0.0, 0.0, (_CLOSED,))
    if part.name == "untied pairs":
        u = optimal_untied_pairs(p)
        t, g1, b1, g2, b2 = (float(np.ravel(x)[0]) for x in (u.t, u.gain1, u.bias1, u.gain2, u.bias2))
        loss = float(untied_pair_loss(p, t, (g1, g2), (b1, b2)))
        return FiniteNPrediction("untied pairs", n_c, n_c // 2, p, loss, 0.0, g1, b1, float(np.ravel(u.loss)[0]),
                                 (_CLOSED,), details={"t": t, "gain2": g2, "bias2": b2})
    if part.name in ("rug", "paired rug"):
        paired = part.name == "paired rug"
        dirs = n_c // 2 if paired else n_c
        kind, make = _rug_at(dirs, seed)
        rug = make(m_c)
        r_c = m_c / n_c
        if paired:
            base = np.asarray(rug.row(0), dtype=np.float64)
            row = np.concatenate([base, -base])
            lp = optimal_paired_rug_loss(p, min(r_c, 0.5))
            g0, b0, large = float(lp.gain), float(lp.bias), float(lp.loss)
        else:
            row = np.asarray(rug.row(0), dtype=np.float64)
            opt = optimal_symmetric_loss(p, r_c)
            g0 = float(opt.a)
            b0 = float(opt.b) - g0 * rug.mean_shift(p)
            large = float(opt.loss)
        at_large, _ = exact_loss_of_row(g0 * row, 0, b0, p, tol=_FINAL_TOL)
        loss, err, g, b, ok = best_row_scalars(row, p, g0, b0)
        notes = [_EXACT + f" ({kind} rug on {dirs} {'pair directions' if paired else 'features'}, seed {seed})",
                 f"at the large-n scalars ({g0:.6g}, {b0:.6g}): {at_large:.6e}"]
        if not ok:
            notes.append("the threshold search did not converge inside its bracket (maxfev or bracket edge)")
        if not paired and 0 in set(rug.rows.tolist()):
            notes.append("the all-ones row/frequency 0 is drawn: mean field (p/2)((n/m) - 1) absorbed by the bias")
        return FiniteNPrediction(part.name, n_c, m_c, p, loss, err, g, b, large, tuple(notes), kind=kind, seed=seed,
                                 details={"loss_at_large_n_scalars": float(at_large), "large_n_gain": g0,
                                          "large_n_bias": b0})
    c = _constructions()[part.name]
    o = optimal_structure_loss(c, p)
    g, b = float(np.ravel(o.gain)[0]), float(np.ravel(o.bias)[0])
    loss = float(structure_loss(c, p, g, b))
    large = float(np.ravel(o.loss)[0])
    return FiniteNPrediction(c.name, n_c, c.dim * n_c // c.k, p, loss, 0.0, g, b, large, (_CLOSED,))


def _mixture(name: str, parts: list[Part], n: int, m: int, p: float, large: float, *, seed: int,
             cache: dict | None = None) -> FiniteNPrediction:
    realised, m_used = realise_composition(parts, n, m)
    cache = {} if cache is None else cache
    leaves = []
    for pt, n_c, m_c in realised:
        if n_c > 0:
            key = (pt.name, n_c, m_c)
            if key not in cache:
                cache[key] = _leaf(pt, n_c, m_c, p, seed=seed)
            leaves.append(cache[key])
    loss = sum(q.n * q.loss for q in leaves) / n
    err = sum(q.n * q.error for q in leaves) / n
    notes = []
    if m_used != m:
        notes.append(f"cannot be realised with m = {m} at n = {n}: "
                     f"the nearest whole-group realisation uses m = {m_used}"
                     + (" (more hidden units than asked: not eligible as lowest)" if m_used > m else ""))
    asked = [(pt.name, pt.fraction) for pt in parts if pt.fraction > 0]
    got = ", ".join(f"{n_c} features in {pt.name} (m = {m_c})" for pt, n_c, m_c in realised if n_c > 0)
    if len(leaves) > 1 or len(asked) > 1:
        notes.append(f"realised: {got}; asked: " + ", ".join(f"{f:.4g} of features in {nm}" for nm, f in asked))
    for pt, n_c, _ in realised:
        if pt.fraction > 0 and n_c == 0:
            notes.append(f"{pt.name} (fraction {pt.fraction:.3g}) gets no features at n = {n}")
    if len(leaves) == 1 and leaves[0].n == n:
        q = leaves[0]
        return FiniteNPrediction(name, n, q.m, p, q.loss, q.error, q.gain, q.bias, large, q.notes + tuple(notes),
                                 kind=q.kind, seed=seed, details=q.details)
    return FiniteNPrediction(name, n, m_used, p, loss, err, float("nan"), float("nan"), large, tuple(notes),
                             tuple(leaves), kind="mixture", seed=seed)


# --------------------------------------------------------------------------------------------------
# the public entry point


def finite_n_predictions(n: int, m: int, p: float, *, seed: int = 0) -> FiniteNPredictions:
    """Exact finite-n losses of L*'s rug, the expected structure and each competing construction at ``(n, m, p)``.

    Parameters
    ----------
    n : int
        Features; a power of two in [MIN_N, MAX_N] (the Hadamard rug).
    m : int
        Hidden units, ``1 <= m <= n``.
    p : float
        Feature probability in (0, 1].
    seed : int, keyword-only
        Seed of every rug's row (frequency) set.

    Returns
    -------
    FiniteNPredictions
        ``predictions`` in the order rug, paired rug (``m <= n/2``), expected structure, untied pairs
        and polytopes brought to ``r``; ``skipped`` lists constructions that do not exist here and why.
    """
    n, m = check_prediction_size(n, m)
    pa = check_probability(p)
    if pa.ndim:
        raise ValueError(f"p must be a scalar in (0, 1], got an array of shape {pa.shape}")
    p = float(pa)
    seed = check_seed(seed)
    r = m / n
    cache: dict = {}  # leaves shared between entries (the expected structure is often the rug or paired rug)
    out: list[FiniteNPrediction] = []
    skipped: list[tuple[str, str]] = []
    l_star = float(optimal_symmetric_loss(p, r).loss)
    out.append(_mixture("rug", [_part("rug", 1.0, r)], n, m, p, l_star, seed=seed, cache=cache))
    if 2 * m <= n:
        large = float(optimal_paired_rug_loss(p, r).loss)
        out.append(_mixture("paired rug", [_part("paired rug", 1.0, r)], n, m, p, large, seed=seed, cache=cache))
    else:
        skipped.append(("paired rug", f"needs m <= n/2 (r <= 1/2), got m = {m}, n = {n}"))
    es = expected_structure(p, r)
    comps = [_part(c.name, c.fraction, c.ratio) for c in es.components]
    out.append(_mixture(f"expected: {es.winner}", comps, n, m, p, float(es.loss), seed=seed, cache=cache))
    cons = standard_constructions()
    prefetch_optima(cons, p)
    v = float(dropped_loss(p))
    families = [("untied pairs", 0.5, float(np.ravel(optimal_untied_pairs(p).loss)[0]))]
    families += [(c.name, c.ratio, float(np.ravel(optimal_structure_loss(c, p).loss)[0])) for c in cons]
    for name, rc, lc in families:
        if abs(r - rc) < 1e-12:
            parts, label, large = [_part(name, 1.0, rc)], name, lc
        elif r < rc:
            f = r / rc
            parts, label = [_part(name, f, rc), _part("dropped", 1.0 - f, 0.0)], f"{name} + dropped"
            large = f * lc + (1 - f) * v
        else:
            f = (1.0 - r) / (1.0 - rc)
            parts, label = [_part(name, f, rc), _part("dedicated", 1.0 - f, 1.0)], f"{name} + dedicated"
            large = f * lc
        group = parts[0].group
        if n < group:
            skipped.append((label, f"needs n >= {group} (one group), got n = {n}"))
            continue
        out.append(_mixture(label, parts, n, m, p, large, seed=seed, cache=cache))
    eligible = [q for q in out if q.m <= m and math.isfinite(q.loss)]
    lowest = min(eligible, key=lambda q: q.loss).name
    return FiniteNPredictions(n, m, p, tuple(out), lowest, tuple(skipped))


# --------------------------------------------------------------------------------------------------
# explicit weights (for Monte Carlo and comparison with trained models)


def prediction_weights(pred: FiniteNPrediction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-model ``(W_in, W_out, b)`` of a prediction at its own ``n`` and ``m`` (block diagonal for a mixture).

    Dense: meant for small n (a rug's ``W_in`` has ``m · n`` entries, guarded by
    :data:`rugtheory.constructions.persian_rug.DENSE_MAX_ENTRIES`).
    """
    from rugtheory.constructions.structure_weights import (
        block_diagonal_weights,
        construction_weights,
        mixture_weights,
        untied_pair_weights,
    )

    if pred.parts:
        return block_diagonal_weights([prediction_weights(q) for q in pred.parts])
    base = pred.name
    if pred.kind in ("hadamard", "fourier"):
        from rugtheory.constructions.persian_rug import persian_rug

        paired = base == "paired rug" or base.endswith(": paired rug")
        dirs = pred.n // 2 if paired else pred.n
        rug = persian_rug(dirs, pred.m, seed=pred.seed, kind=pred.kind)
        w_in, w_out = rug.W_in, rug.W_out
        if paired:
            w_in, w_out = np.hstack([w_in, -w_in]), np.vstack([w_out, -w_out])
        return w_in, pred.gain * w_out, np.full(pred.n, pred.bias)
    if base in ("dropped", "dedicated"):
        return mixture_weights([(base, pred.n, pred.gain, pred.bias)])
    if base.endswith("untied pairs"):
        d = pred.details
        return untied_pair_weights(pred.n // 2, d["t"], (pred.gain, d["gain2"]), (pred.bias, d["bias2"]))
    cons = _constructions()
    key = base.split(": ")[-1]
    if key not in cons:
        raise ValueError(f"no weights for prediction {pred.name!r}")
    c = cons[key]
    return construction_weights(c, pred.n // c.k, pred.gain, pred.bias)
