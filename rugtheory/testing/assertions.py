r"""The assertions of :mod:`rugtheory.testing`: a measured loss against the exact finite-n loss of the
weights (docs/theory.md §7), against the band the theory predicts at (n, m, p) (§8, §10), and the row
statistics of §2. Each raises ``AssertionError`` with a readable report, or returns its :class:`CheckReport`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rugtheory.constructions.hadamard import is_power_of_two
from rugtheory.testing.models import as_numpy, as_scalar, check_factors
from rugtheory.theory.checks import (
    check_int,
    check_probability,
    check_seed,
)

__all__ = ["Atlas", "CheckReport", "DEFAULT_ENGINE_TOL", "ENUMERATION_MAX_PARTNERS", "ExactLoss", "NEGLIGIBLE_ENTRY",
           "assert_loss_matches_weights", "assert_near_prediction", "assert_symmetric_statistics", "exact_loss"]

#: Target error per row of the exact finite-n engine (docs/theory.md §7, §13.6) where no standard
#: error sets the scale (the Persian rug of :func:`assert_near_prediction`, or ``se = 0``). With a
#: measured ``se`` the assertions ask for ``max(DEFAULT_ENGINE_TOL, se/20)``: the engine's error
#: then widens the tolerance by at most 0.13% and the inversion needs far fewer nodes (small p·n
#: needs many; the engine's default 1e-11 costs 10-50x more at n <= 128).
DEFAULT_ENGINE_TOL = 1e-8

#: Rows with at most this many non-zero off-diagonal entries (pairs, untied pairs, polytopes,
#: dropped or dedicated features) are summed exactly by enumerating which partners are on
#: (``enumeration_loss_from_weights``, 3^k terms): their interference has atoms, where the
#: characteristic-function inversion converges slowly and bounds its error loosely.
ENUMERATION_MAX_PARTNERS = 8
#: Off-diagonal entries below this fraction of max|W| (floating-point cancellation in W_out W_in of
#: an exact construction) do not count as partners for the enumeration route; their effect is bounded.
NEGLIGIBLE_ENTRY = 1e-12

#: An atlas of measured trained losses: ``atlas(n, r, p) -> (loss, se)`` or ``None`` where it has
#: no entry. See :func:`assert_near_prediction`.
Atlas = Callable[[int, float, float], "tuple[float, float] | None"]


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one assertion: what was compared, with which tolerance, and why.

    ``str(report)`` is the multi-line message; ``values`` holds the numbers by name.
    """

    title: str
    passed: bool
    lines: tuple[str, ...]
    values: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        head = f"{self.title}: {'passed' if self.passed else 'FAILED'}"
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


def _finish(report: CheckReport) -> CheckReport:
    if not report.passed:
        raise AssertionError(str(report))
    return report


# --------------------------------------------------------------------------------------------
# assertions


class ExactLoss(NamedTuple):
    """Exact finite-n loss of given weights, its error estimate, and the route that computed it."""

    loss: float
    error: float
    route: str


def exact_loss(W_in: Any, W_out: Any, b: Any, p: float, *, tol: float = DEFAULT_ENGINE_TOL,
               max_nodes: int = 1 << 15) -> ExactLoss:
    """Exact expected loss of ``ReLU(W_out W_in x + b)`` at finite n (docs/theory.md §7), never sampled.

    If every row has at most :data:`ENUMERATION_MAX_PARTNERS` non-zero off-diagonal entries (and a
    non-zero diagonal), each row is summed exactly over which partners are on
    (``rugtheory.twins.enumeration.enumeration_loss_from_weights`` on the row's partners; error =
    its rounding bound). Otherwise the exact characteristic function is inverted
    (:func:`rugtheory.exact_loss_from_factors` with ``tol`` and ``max_nodes``); its error
    estimate is returned and its ``AccuracyWarning`` is not raised (the estimate is the answer).
    ``W_out = None``: ``W_in`` is the effective n×n matrix.
    """
    import warnings

    from rugtheory.theory.finite_n import exact_loss_from_weights
    from rugtheory.twins.enumeration import enumeration_loss_from_weights

    p = float(check_probability(as_scalar(p, "p")))
    w_in = as_numpy(W_in, "W_in")
    w_out = None if W_out is None else as_numpy(W_out, "W_out")
    w_in, w_out, b = check_factors(w_in, w_out, as_numpy(b, "b"))
    w = w_out @ w_in
    n = w.shape[0]
    off = w.copy()
    np.fill_diagonal(off, 0.0)
    # entries at rounding level (a product W_out W_in that cancels to ~1e-17 instead of 0) are
    # partners of no consequence: dropped, with a Lipschitz bound on their effect added to the error
    negligible = np.abs(off) <= NEGLIGIBLE_ENTRY * max(1.0, float(np.abs(w).max()))
    partners = [np.flatnonzero(~row) for row in negligible]
    a = np.diag(w)
    if n >= 2 and all(s.size <= ENUMERATION_MAX_PARTNERS for s in partners) and np.all(a != 0):
        loss, err = np.empty(n), np.empty(n)
        for i, s in enumerate(partners):
            small = np.eye(s.size + 1)
            small[0, 0], small[0, 1:] = a[i], off[i, s]
            bias = np.zeros(s.size + 1)
            # the dropped entries' mean field (p/2)Σ ε stays in the bias; their fluctuation (|ξ| <= 1) moves
            # τ = c + ν by at most Σ|ε|, and |dℓ/dτ| <= 2(|a| + 2|τ| + 1) (docs/theory.md §7.2)
            dropped = np.where(negligible[i], off[i], 0.0)
            bias[0] = b[i] + 0.5 * p * dropped.sum()
            val, e = enumeration_loss_from_weights(small, bias, p, return_error=True)
            tau = abs(b[i]) + 0.5 * p * abs(off[i].sum()) + np.abs(off[i]).sum()
            loss[i] = val[0]
            err[i] = e[0] + 2.0 * (abs(a[i]) + 2.0 * tau + 1.0) * np.abs(dropped).sum()
        return ExactLoss(float(loss.mean()), float(err.mean()), "enumeration of active partners")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*exceeds the requested tol")
        res = exact_loss_from_weights(w, b, p, tol=max(float(tol), 1e-13), max_nodes=max_nodes)
    return ExactLoss(res.loss, res.error, "characteristic-function inversion, §7.3")


def _check_k(k: float, name: str = "k") -> float:
    k = float(k)
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"{name} must be a positive number of standard errors, got {k!r}")
    return k


def _check_se(se: Any) -> float:
    se = as_scalar(se, "se")
    if se < 0:
        raise ValueError(f"se must be >= 0, got {se!r}")
    return se


def assert_loss_matches_weights(
    W_in: Any, W_out: Any, b: Any, p: float, measured: float, se: float, *, k: float = 4.0,
    engine_tol: float | None = None, engine_max_nodes: int = 1 << 15,
) -> CheckReport:
    r"""Assert that ``measured ± se`` is the exact finite-n loss of these weights (docs/theory.md §7).

    The prediction is :func:`exact_loss` (``W_out = None``: ``W_in`` is the effective matrix): the
    expected loss of exactly these weights, from the exact characteristic function of the
    interference (:func:`rugtheory.exact_loss_from_factors`), or by exact enumeration where every
    row has only a few partners. No sampling, no Gaussian step, no large-n limit; it comes with an
    error estimate ``engine_error`` (the engine targets ``engine_tol``, by default
    ``max(DEFAULT_ENGINE_TOL, se/20)``, with at most ``engine_max_nodes`` inversion nodes per row).

    Tolerance: ``k·sqrt(se² + engine_error²)``. ``measured`` is a sample mean, so if it is the loss
    of these weights its distance to the exact value is one draw from (nearly) ``N(0, se²)``; the
    engine adds its own independent error. ``k = 4`` standard errors: a correct measurement fails
    about 6e-5 of the time (Gaussian tail), while a wrong loss unit, a training minibatch instead of
    fresh data, or another data distribution is usually off by many SE. ``se = 0`` tests an exact
    value (then the engine error alone sets the tolerance).
    """
    p = float(check_probability(as_scalar(p, "p")))
    measured = as_scalar(measured, "measured")
    se = _check_se(se)
    k = _check_k(k)
    w_in = as_numpy(W_in, "W_in")
    w_out = None if W_out is None else as_numpy(W_out, "W_out")
    w_in, w_out, b = check_factors(w_in, w_out, as_numpy(b, "b"))
    tol = max(DEFAULT_ENGINE_TOL, se / 20.0) if engine_tol is None else float(engine_tol)
    exact = exact_loss(w_in, w_out, b, p, tol=tol, max_nodes=engine_max_nodes)
    diff = measured - exact.loss
    combined = math.hypot(se, exact.error)
    tol = k * combined
    passed = abs(diff) <= tol
    z = diff / combined if combined > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    n, m = w_in.shape[1], w_in.shape[0]
    lines = [
        f"model: n = {n}, m = {m}, p = {p:.6g}",
        (f"predicted: {exact.loss:.6e} ± {exact.error:.1e} (exact finite-n loss of these weights, docs/theory.md §7, "
         f"by {exact.route}; ± is its error estimate)"),
        f"measured:  {measured:.6e} ± {se:.1e} (SE)",
        f"difference: {diff:+.3e} = {z:+.2f} combined SE ({100 * diff / exact.loss if exact.loss > 0 else 0.0:+.2f}%)",
        f"tolerance: k·sqrt(se² + engine_error²) = {k:g} × {combined:.2e} = {tol:.2e}",
        ("why: a held-out mean of the loss of these weights differs from the exact value by ~N(0, se²), "
        f"plus the engine's error; {k:g} SE leave a false alarm rate of ~{math.erfc(k / math.sqrt(2)):.0e}"),
    ]
    if not passed:
        lines += [
            ("likely causes: the loss is not the per-feature mean of (y − x)² (divide a sum over features by n, §1); "
            "it was taken on a training minibatch, not fresh samples; the data are not Bernoulli(p)·Uniform[0, 1); "
            "the weights passed are not the ones measured; or se is underestimated"),
        ]
    values = {"predicted": exact.loss, "engine_error": exact.error, "measured": measured, "se": se,
              "difference": diff, "z": z, "tolerance": tol}
    return _finish(CheckReport("assert_loss_matches_weights", passed, tuple(lines), values))


def _rug_finite_n_loss(n: int, m: int, p: float, seed: int, tol: float) -> tuple[float, float, str]:
    """Exact loss of the Persian rug at (n, m) with the theory scalars; Fourier kind when n is not 2^k."""
    import warnings

    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars
    from rugtheory.theory.finite_n import exact_loss_of_row

    kind = "hadamard" if is_power_of_two(n) else "fourier"
    rug = persian_rug(n, m, seed=seed, kind=kind)
    sc = theory_scalars(rug, p)
    with warnings.catch_warnings():  # the error estimate is returned and reported
        warnings.filterwarnings("ignore", message=r".*exceeds the requested tol")
        loss, err = exact_loss_of_row(sc.alpha * rug.row(0), 0, sc.beta, p, tol=tol)
    return loss, err, kind


def assert_near_prediction(
    measured: float, n: int, m: int, p: float, *, se: float = 0.0, rtol: float = 0.25, atol: float = 0.0,
    k: float = 4.0, atlas: Atlas | None = None, rug_seed: int = 0, engine_tol: float = DEFAULT_ENGINE_TOL,
) -> CheckReport:
    r"""Assert that a measured loss lies in the band the theory predicts at ``(n, m, p)``.

    The band has two ends, both stated in the report:

    - **upper reference**: ``max(L_rug(n), L*)`` where ``L_rug(n)`` is the *exact finite-n loss* of
      the forward-engineered Persian rug at this n (docs/theory.md §8; Hadamard rows drawn with
      ``rug_seed``, Fourier kind when n is not a power of two; the theory scalars α = a*,
      β = b* − a*μ; inverted exactly as in §7) and ``L*(p, m/n)`` the symmetric large-n optimum (§4).
      A trained model of this shape can reach the rug's loss with two scalars, so a model above it
      is worse than a construction that needs no training.
    - **lower reference**: the large-n loss of the structure expected to win at ``(p, r)``
      (:func:`rugtheory.expected_structure`, docs/theory.md §10: paired rugs, untied pairs,
      polytopes and their mixtures, or L* where it wins). It is the lowest loss the project knows
      how to build; a model below it is either mis-measured or a finding.

    Passes when ``lower·(1 − rtol) − slack ≤ measured ≤ upper·(1 + rtol) + slack`` with
    ``slack = atol + k·se``. ``rtol`` (default 0.25) allows finite-n effects on the lower end
    (a paired rug at n ≤ 512 is a few % above its large-n loss, §10.4) and incomplete training on
    the upper end; ``atol`` helps where both references are ~0 (r → 1).

    ``atlas``: an optional callable ``atlas(n, r, p) -> (loss, se)`` or ``None`` (no entry), e.g. a
    measured atlas of trained losses. If given and it has an entry, the check also requires
    ``|measured − loss| ≤ rtol·loss + atol + k·sqrt(se² + atlas_se²)``; the report says when it
    had none.
    """
    from rugtheory.constructions.phase_map import expected_structure
    from rugtheory.theory.optimum import optimal_symmetric_loss

    measured = as_scalar(measured, "measured")
    se = _check_se(se)
    n = check_int(n, "n", low=2)
    m = check_int(m, "m", low=1, high=n)
    p = float(check_probability(as_scalar(p, "p")))
    rtol = float(rtol)
    if not (np.isfinite(rtol) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be in [0, 1), got {rtol!r}")
    atol = float(atol)
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be >= 0, got {atol!r}")
    k = _check_k(k)
    r = m / n
    l_star = float(optimal_symmetric_loss(p, r).loss)
    rug_loss, rug_err, kind = _rug_finite_n_loss(n, m, p, check_seed(rug_seed, "rug_seed"), engine_tol)
    expected = expected_structure(p, r)
    upper_ref = max(rug_loss, l_star)
    lower_ref = float(expected.loss)
    slack = atol + k * se
    hi = upper_ref * (1.0 + rtol) + slack
    lo = lower_ref * (1.0 - rtol) - slack
    lines = [
        f"model: n = {n}, m = {m} (r = {r:.4g}), p = {p:.6g}",
        f"measured: {measured:.6e} ± {se:.1e} (SE)",
        f"Persian rug at this n (exact finite-n loss, {kind} rows, seed {rug_seed}, theory scalars; "
        f"docs/theory.md §8, §7): {rug_loss:.6e}" + (f" ({rug_loss / l_star:.3f} L*)" if l_star > 0 else ""),
        f"L*(p, r) (symmetric large-n optimum, docs/theory.md §4): {l_star:.6e}",
        f"expected structure at large n (docs/theory.md §10): {expected.winner!r}, {lower_ref:.6e}",
        (f"band: [{lo:.6e}, {hi:.6e}] = [expected·(1 − {rtol:g}) − slack, max(rug, L*)·(1 + {rtol:g}) + slack], "
        f"slack = atol + k·se = {atol:g} + {k:g}×{se:.1e}"),
    ]
    failures = []
    if measured > hi:
        failures.append(
            f"ABOVE the upper end by {measured - hi:.3e} ({measured / upper_ref:.3f}× the upper reference): worse "
            "than the forward-engineered rug at this n; likely undertrained, dead features, a too-large learning "
            "rate, or a loss summed over features instead of averaged (§1)" if upper_ref > 0 else
            f"ABOVE the upper end by {measured - hi:.3e}: the references are 0 here; set atol")
    if measured < lo:
        failures.append(
            f"BELOW the lower end by {lo - measured:.3e} ({measured / lower_ref:.3f}× the expected structure): better "
            "than the best structure the theory knows at large n; check the loss unit (per-feature mean, §1), the data "
            "distribution and that the loss is held out; if all hold, this is a finding worth reporting"
            if lower_ref > 0 else f"BELOW the lower end by {lo - measured:.3e}")
    values = {"measured": measured, "se": se, "rug_finite_n": rug_loss, "rug_engine_error": rug_err, "L_star": l_star,
              "expected_structure": lower_ref, "low": lo, "high": hi}
    if atlas is not None:
        if not callable(atlas):
            raise ValueError(f"atlas must be a callable (n, r, p) -> (loss, se) or None, got {type(atlas).__name__}")
        entry = atlas(n, r, p)
        if entry is None:
            lines.append(f"atlas: no entry at (n = {n}, r = {r:.4g}, p = {p:.6g}); not compared")
        else:
            a_loss, a_se = (float(v) for v in entry)
            a_tol = rtol * a_loss + atol + k * math.hypot(se, a_se)
            lines.append(f"atlas of trained losses: {a_loss:.6e} ± {a_se:.1e}; tolerance rtol·loss + atol + "
                         f"k·sqrt(se² + atlas_se²) = {a_tol:.2e}")
            values.update({"atlas": a_loss, "atlas_se": a_se, "atlas_tolerance": a_tol})
            if abs(measured - a_loss) > a_tol:
                side = "above" if measured > a_loss else "below"
                ratio = measured / a_loss if a_loss > 0 else math.inf
                failures.append(f"{side.upper()} the atlas by {abs(measured - a_loss):.3e} "
                                f"({ratio:.3f}× the trained models measured there)")
    lines += [f"failed: {f}" for f in failures]
    return _finish(CheckReport("assert_near_prediction", not failures, tuple(lines), values))


def assert_symmetric_statistics(
    W: Any, b: Any, p: float, *, max_a_spread: float | None = 0.1, min_relative_a: float | None = 0.5,
    max_bias_spread: float | None = 0.25, max_sigma2_spread: float | None = 0.25, max_lyapunov: float | None = 1.0,
    max_weight_ratio: float | None = 0.5,
) -> CheckReport:
    r"""Assert that the row statistics of ``W = W_out W_in`` are those of the symmetric regime (docs/theory.md §2).

    Computed by :func:`rugtheory.weight_statistics` (no sampling). Each bound is checked over
    rows; ``None`` skips it. Defaults and why:

    - ``max_a_spread = 0.1``: std over rows of the diagonal a_i = W_ii, relative to |mean a|. The
      theory gives every feature the same gain.
    - ``min_relative_a = 0.5``: the smallest a_i / mean a. A few dead features (a_i ≈ 0, common in
      trained models at small p, §12) barely move the spread but fail this.
    - ``max_bias_spread = 0.25``: std of the effective bias c_i = b_i + μ_i, in units of the mean
      σ_i (the loss depends on c/σ, §3), so a quarter of the noise scale.
    - ``max_sigma2_spread = 0.25``: std of σ_i² = v Σ_j ε_ij² relative to its mean (the rank bound
      of §4.1 fixes the mean of σ², the symmetric regime its spread).
    - ``max_lyapunov = 1.0``: the largest Lyapunov ratio Λ_i; the Kolmogorov distance of ν_i/σ_i to
      N(0, 1) is below 0.6·Λ_i (Berry–Esseen). A flat row has Λ ≈ 1.3/√(pn), so 1.0 needs p·n ≳ 2;
      antipodal pairs (one partner) have Λ ≈ 1.3/√p and fail it, as they should. The Persian rug at
      n = 512, r = 1/4, p = 0.045 has 0.41.
    - ``max_weight_ratio = 0.5``: max_j |ε_ij| / ‖ε_i‖, "no dominant entry" (§2); a paired rug at
      r = 1/4 has 0.58 (its partner), a Persian rug well below 0.5.

    ``W`` may also be given as a pair ``(W_in, W_out)``.
    """
    from rugtheory.theory.weights import weight_statistics

    if isinstance(W, (tuple, list)) and len(W) == 2:
        w_in = as_numpy(W[0], "W_in")
        w_in, w_out, _ = check_factors(w_in, as_numpy(W[1], "W_out"), np.zeros(w_in.shape[-1]))
        w = w_out @ w_in
    else:
        w = as_numpy(W, "W")
    p = float(check_probability(as_scalar(p, "p")))
    stats = weight_statistics(w, as_numpy(b, "b"), p, sampled_rows=0, seed=0)
    a, c, s2 = stats.a, stats.effective_bias, stats.sigma**2
    sigma_mean = float(np.mean(stats.sigma))
    rows = np.arange(a.size)

    def rel(x: np.ndarray, scale: float) -> float:
        return float(np.std(x) / scale) if scale > 0 else (0.0 if np.std(x) == 0 else math.inf)

    def worst(x: np.ndarray, centre: float) -> str:
        idx = rows[np.argsort(-np.abs(x - centre))[:3]]
        return ", ".join(f"row {i}: {x[i]:.4g}" for i in idx)

    a_mean = float(np.mean(a))
    min_ratio = float(np.min(a) / a_mean) if a_mean > 0 else -math.inf
    checks = [
        ("spread of a_i = W_ii (std / |mean|)", rel(a, abs(float(np.mean(a)))), max_a_spread,
         f"mean {np.mean(a):.4g}; furthest rows {worst(a, float(np.mean(a)))}"),
        ("smallest a_i / mean a (dead or weak features)", min_ratio, min_relative_a,
         f"weakest rows {', '.join(f'row {i}: {a[i]:.4g}' for i in rows[np.argsort(a)[:3]])}"),
        ("spread of the effective bias c_i = b_i + μ_i (std / mean σ_i)", rel(c, sigma_mean), max_bias_spread,
         f"mean {np.mean(c):.4g}, mean σ {sigma_mean:.4g}; furthest rows {worst(c, float(np.mean(c)))}"),
        ("spread of σ_i² (std / mean)", rel(s2, float(np.mean(s2))), max_sigma2_spread,
         f"mean {np.mean(s2):.4g}; furthest rows {worst(s2, float(np.mean(s2)))}"),
        ("Lyapunov ratio Λ_i (max over rows)", float(np.max(stats.lyapunov_ratio)), max_lyapunov,
         f"median {np.median(stats.lyapunov_ratio):.4g}; flat-row value 1.3/√(pn) = {1.3 / math.sqrt(p * a.size):.3g}"),
        ("largest entry ratio max_j|ε_ij|/‖ε_i‖ (max over rows)", float(np.max(stats.max_weight_ratio)),
         max_weight_ratio,
         f"median {np.median(stats.max_weight_ratio):.4g}"),
    ]
    lines = [f"weights: n = {a.size}, p = {p:.6g} (statistics of docs/theory.md §2)"]
    failed = []
    values: dict[str, float] = {}
    for name, value, bound, detail in checks:
        values[name] = value
        if bound is None:
            lines.append(f"{name}: {value:.4g} (not checked)")
            continue
        lower_bound = name.startswith("smallest")  # the one bound from below
        ok = value >= float(bound) if lower_bound else value <= float(bound)
        op = (">=" if ok else "<") if lower_bound else ("<=" if ok else ">")
        lines.append(f"{name}: {value:.4g} {op} {float(bound):g} {'ok' if ok else 'FAILED'}; {detail}")
        if not ok:
            failed.append(name)
    if failed:
        lines.append("failed: " + "; ".join(failed) + " — the weights are not in the symmetric regime, so the Gaussian "
                     "theory of §3–§4 does not describe them (the exact finite-n loss of §7 still does)")
    return _finish(CheckReport("assert_symmetric_statistics", not failed, tuple(lines), values))
