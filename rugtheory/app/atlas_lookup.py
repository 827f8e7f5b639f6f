"""Predictions against the atlas of trained models (issue 13, item 3), without torch.

Reads the committed atlas CSV (``validation/atlas/atlas.csv``, installed as package data of
``rugtheory.validation``; columns: :mod:`rugtheory.validation.atlas`) with the standard library and numpy
only, so ``rugtheory predict`` and the report can use it cheaply.

**The interpolant.** Only rows whose ``status`` is ``converged`` count (dead features, not converged,
non-finite, pending rows never enter it). At one n, each converged model gives
``y = log(heldout_loss / L*)`` at ``(r, log10 p)``; the seeds (and recipes) at one grid cell are
averaged in y. Between cells, y is piecewise linear: linear on the Delaunay triangles of the covered
cells in ``(r, log10 p)`` (scipy ``LinearNDInterpolator``), or linear along one line when the covered
cells all share r or all share p; at a covered cell it is that cell's mean. Outside the convex hull
of the covered cells (or at another n) the atlas does **not cover** the point: ``None``, never an
extrapolation. Interpolating the ratio to L* rather than the loss itself removes most of the
variation with p and r, so the remaining surface is smooth; an exact power law
``L = L* · C p^α e^{β r}`` is reproduced exactly.

**Uncertainty.** Leave-one-out over the converged models at that n: each model is dropped, the
interpolant rebuilt from the others and evaluated at its point (where the others cover it: the other
seed of the same cell when there is one, so LOO measures seed scatter there and interpolation error
elsewhere). :func:`lookup` reports the RMS of these relative errors as the interpolant's relative
uncertainty at that n. A model whose LOO error exceeds ``max(OUTLIER_FLOOR, OUTLIER_FACTOR × median)``
is an outlier.

**Flags near a point.** The trained rows (any status) at the grid cells bracketing (r, p) at that n are
"near" it; :func:`lookup` counts them and the converged ones, and flags dead features (status
``dead features``), a held-out loss more than ``FAR_ABOVE`` above the expected structure's loss (its
finite-n loss where the CSV has it, else its large-n loss), and LOO outliers among them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ATLAS_FIELDS", "FAR_ABOVE", "OUTLIER_FACTOR", "OUTLIER_FLOOR", "AtlasRow", "LooResult", "atlas_csv_path",
           "interpolate", "interpolate_ratio", "leave_one_out", "lookup", "read_atlas"]

#: Columns ``rugtheory predict --n`` adds (None = not covered / not available).
ATLAS_FIELDS = ["atlas_loss", "atlas_loss_error", "atlas_loo_rel_error", "atlas_models", "atlas_converged",
                "atlas_flag"]
#: A trained model sits "far above" the expected structure when its held-out loss exceeds it by this fraction.
FAR_ABOVE = 0.2
#: LOO outlier: |relative error| above max(OUTLIER_FLOOR, OUTLIER_FACTOR x the median |relative error| at that n).
OUTLIER_FLOOR = 0.05
OUTLIER_FACTOR = 3.0
#: Cells match when r agrees to this relative tolerance (the CSV keeps 6 significant digits of m/n) and p too.
_RTOL = 1e-4


@dataclass(frozen=True)
class AtlasRow:
    """The columns of one atlas CSV row that predictions need (NaN where the cell is empty)."""

    n: int
    r: float
    p: float
    seed: int
    recipe: str
    status: str
    heldout_loss: float
    heldout_se: float
    lstar: float
    expected_large_n_loss: float
    expected_finite_n_loss: float
    steps_run: float = math.nan
    train_seconds: float = math.nan

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    @property
    def trained(self) -> bool:
        return self.status != "pending"

    @property
    def expected_loss(self) -> float:
        """The expected structure's loss at this (n, m, p): finite-n where available, else large-n."""
        return self.expected_finite_n_loss if math.isfinite(self.expected_finite_n_loss) else self.expected_large_n_loss


def atlas_csv_path() -> Path:
    """The committed atlas CSV inside the installed ``rugtheory.validation`` package."""
    import importlib.util

    spec = importlib.util.find_spec("rugtheory.validation")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "atlas" / "atlas.csv"


def _float(text: str | None) -> float:
    return float(text) if text not in (None, "") else math.nan


_CACHE: dict[str, list[AtlasRow]] = {}


def read_atlas(path: str | Path | None = None) -> list[AtlasRow]:
    """The rows of an atlas CSV (default: the committed one; cached per path). ``#`` lines are the banner."""
    path = Path(path) if path is not None else atlas_csv_path()
    key = str(path.resolve())
    if key not in _CACHE:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(line for line in fh if not line.startswith("#"))
            _CACHE[key] = [AtlasRow(n=int(d["n"]), r=float(d["r"]), p=float(d["p"]), seed=int(d["seed"]),
                                    recipe=d["recipe"], status=d["status"], heldout_loss=_float(d["heldout_loss"]),
                                    heldout_se=_float(d["heldout_se"]), lstar=_float(d["lstar"]),
                                    expected_large_n_loss=_float(d["expected_large_n_loss"]),
                                    expected_finite_n_loss=_float(d["expected_finite_n_loss"]),
                                    steps_run=_float(d.get("steps_run")), train_seconds=_float(d.get("train_seconds")))
                           for d in reader]
    return _CACHE[key]


def _usable(rows: Sequence[AtlasRow], n: int) -> list[AtlasRow]:
    return [a for a in rows if a.n == n and a.converged and a.heldout_loss > 0 and a.lstar > 0]


def _same(x: float, y: float) -> bool:
    return abs(x - y) <= _RTOL * max(abs(x), abs(y))


def _cells(points: Sequence[AtlasRow]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (r, log10 p) cells and the mean of log(loss / L*) over the models at each."""
    keys: list[tuple[float, float]] = []
    vals: list[list[float]] = []
    for a in points:
        for k, (r, p) in enumerate(keys):
            if _same(r, a.r) and _same(p, a.p):
                vals[k].append(math.log(a.heldout_loss / a.lstar))
                break
        else:
            keys.append((a.r, a.p))
            vals.append([math.log(a.heldout_loss / a.lstar)])
    xy = np.array([[r, math.log10(p)] for r, p in keys]).reshape(-1, 2)
    return xy, np.array([float(np.mean(v)) for v in vals])


def _interp_log_ratio(points: Sequence[AtlasRow], r: float, p: float) -> float:
    """The interpolated log(loss / L*) at (r, p) from ``points`` (converged rows of one n); NaN if not covered."""
    if not points:
        return math.nan
    xy, y = _cells(points)
    q = np.array([r, math.log10(p)])
    for k in range(len(y)):
        if _same(xy[k, 0], r) and _same(10 ** xy[k, 1], p):
            return float(y[k])
    if len(y) < 2:
        return math.nan
    for axis in (0, 1):  # all cells on one line of the grid: 1-D linear interpolation along it
        if np.all(np.abs(xy[:, axis] - xy[0, axis]) <= _RTOL * max(abs(xy[0, axis]), 1e-12)):
            other = 1 - axis
            if not abs(q[axis] - xy[0, axis]) <= _RTOL * max(abs(xy[0, axis]), 1e-12):
                return math.nan
            lo, hi = xy[:, other].min(), xy[:, other].max()
            if not lo <= q[other] <= hi:
                return math.nan
            order = np.argsort(xy[:, other])
            return float(np.interp(q[other], xy[order, other], y[order]))
    centred = xy - xy.mean(axis=0)
    if np.linalg.matrix_rank(centred, tol=1e-9) < 2:  # collinear off the grid lines: exact cells only
        return math.nan
    from scipy.interpolate import LinearNDInterpolator

    return float(LinearNDInterpolator(xy, y)(q[None, :])[0])


def interpolate_ratio(rows: Sequence[AtlasRow], n: int, r: float, p: float) -> float:
    """The atlas interpolant of trained loss / L* at (n, r, p) (module docstring); NaN where not covered."""
    return math.exp(_interp_log_ratio(_usable(rows, n), r, p))


def interpolate(rows: Sequence[AtlasRow], n: int, r: float, p: float) -> float:
    """The atlas interpolant of the trained loss at (n, r, p): :func:`interpolate_ratio` times L* (the CSV's at a
    grid cell, else :func:`rugtheory.optimal_symmetric_loss`); NaN where not covered."""
    points = _usable(rows, n)
    ratio = interpolate_ratio(rows, n, r, p)
    return _lstar(points, r, p) * ratio if math.isfinite(ratio) else math.nan


def _lstar(points: Sequence[AtlasRow], r: float, p: float) -> float:
    for a in points:  # at a grid cell, the CSV's own L* (the model's r = m/n)
        if _same(a.r, r) and _same(a.p, p):
            return a.lstar
    from rugtheory.theory.optimum import optimal_symmetric_loss

    return float(optimal_symmetric_loss(p, r).loss)


@dataclass(frozen=True)
class LooResult:
    """Leave-one-out of one converged model: the interpolant of the others at its point (NaN if not covered)."""

    row: AtlasRow
    predicted: float
    rel_error: float  # (predicted - measured) / measured
    outlier: bool


def leave_one_out(rows: Sequence[AtlasRow], n: int) -> list[LooResult]:
    """LOO over the converged models at n (module docstring); outliers marked."""
    points = _usable(rows, n)
    raw = []
    for i, a in enumerate(points):
        others = points[:i] + points[i + 1:]
        pred = a.lstar * math.exp(_interp_log_ratio(others, a.r, a.p))
        raw.append((a, pred, pred / a.heldout_loss - 1.0))
    errs = [abs(e) for _, _, e in raw if math.isfinite(e)]
    limit = max(OUTLIER_FLOOR, OUTLIER_FACTOR * float(np.median(errs))) if errs else math.inf
    return [LooResult(a, pred, e, bool(math.isfinite(e) and abs(e) > limit)) for a, pred, e in raw]


def _bracket(values: Sequence[float], x: float) -> list[float]:
    vals = sorted(set(values))
    exact = [v for v in vals if _same(v, x)]
    if exact:
        return exact[:1]
    lo = [v for v in vals if v < x]
    hi = [v for v in vals if v > x]
    return [lo[-1], hi[0]] if lo and hi else []


def lookup(n: int, p: float, r: float, rows: Sequence[AtlasRow] | None = None) -> dict[str, Any]:
    """The :data:`ATLAS_FIELDS` at (n, p, r): interpolated trained loss and its LOO uncertainty, the trained
    and converged models at the bracketing grid cells, and flags; None where the atlas does not cover it."""
    rows = read_atlas() if rows is None else rows
    out: dict[str, Any] = dict.fromkeys(ATLAS_FIELDS)
    trained = [a for a in rows if a.n == n and a.trained]
    if not trained:
        return out
    rs = _bracket([a.r for a in trained], r)
    ps = _bracket([a.p for a in trained], p)
    near = [a for a in trained if any(_same(a.r, x) for x in rs) and any(_same(a.p, x) for x in ps)]
    if near:
        out["atlas_models"] = len(near)
        out["atlas_converged"] = sum(a.converged for a in near)
    loo = leave_one_out(rows, n)
    errs = [x.rel_error for x in loo if math.isfinite(x.rel_error)]
    flags = []
    dead = sum(a.status == "dead features" for a in near)
    if dead:
        flags.append(f"{dead} dead features")
    far = sum(a.heldout_loss > (1 + FAR_ABOVE) * a.expected_loss for a in near)
    if far:
        flags.append(f"{far} >{FAR_ABOVE:.0%} above expected structure")
    outliers = sum(x.outlier for x in loo if x.row in near)
    if outliers:
        flags.append(f"{outliers} LOO outlier")
    out["atlas_flag"] = "; ".join(flags) if near else None
    loss = interpolate(rows, n, r, p)
    if math.isfinite(loss):
        out["atlas_loss"] = loss
        if errs:
            rms = math.sqrt(float(np.mean(np.square(errs))))
            out["atlas_loo_rel_error"] = rms
            out["atlas_loss_error"] = loss * rms
    return out
