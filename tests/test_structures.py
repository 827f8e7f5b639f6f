"""Exact polytope losses (rugtheory.constructions.polytopes, paired_rug, structure_weights) against independent routes.

Routes: the closed form p^2/6 of docs/theory.md §10 (antipodal pairs), scipy 2-d quadrature of the
two-active-feature error (leading p^2 term), Monte Carlo on the full n-dimensional model built from
explicit W_in, W_out, b, and scipy Nelder-Mead for the optimiser.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from rugtheory import optimal_symmetric_loss, symmetric_loss
from rugtheory.constructions.polytopes import (
    MAX_POLYGON_K,
    MAX_SIMPLEX_K,
    antipodal_pairs,
    dropped_loss,
    optimal_structure_loss,
    regular_polygon,
    regular_simplex,
    standard_constructions,
    structure_loss,
)
from rugtheory.constructions.structure_weights import construction_weights, mixture_weights
from rugtheory.twins.montecarlo import model_loss_monte_carlo

#: Monte Carlo agreement in standard errors: 4 SE fails by chance with probability 6e-5 per check
#: under a normal law; the per-sample loss is a mean over >= 100 features, close enough to normal.
K_SE = 4.0

ALL = standard_constructions() + [regular_polygon(9), regular_polygon(10)]


def test_pairs_closed_form_p2_over_6_over_whole_p_range() -> None:
    # docs/theory.md §10: g = 1, b = 0 -> error only when both partners are on: p^2 E[min(U,U')^2] = p^2/6,
    # exactly, for every p. 1e-13 relative: a few float64 roundings of O(1) terms.
    p = np.array([1e-12, 1e-9, 1e-6, 1e-3, 0.01, 0.3, 0.9, 1.0])
    np.testing.assert_allclose(structure_loss(antipodal_pairs(), p), p**2 / 6, rtol=1e-13)


def test_theory_section10_pairs_beat_symmetric_by_5_6_at_p_001() -> None:
    p = 0.01
    pairs = float(optimal_structure_loss(antipodal_pairs(), p).loss)
    lstar = float(optimal_symmetric_loss(p, 0.5).loss)
    # THEORY quotes L* ~ 9.4e-5, pairs 1.7e-5, ratio 5.6 (two significant digits each).
    assert round(lstar, 6) == pytest.approx(9.4e-5)
    assert pairs <= p**2 / 6  # optimising g, b can only help
    assert pairs == pytest.approx(p**2 / 6, rel=1e-3)  # ... and barely does at p = 0.01
    assert round(lstar / pairs, 1) == 5.6


@pytest.mark.parametrize("con", ALL, ids=lambda c: c.name)
def test_rank_bound_equality_and_unit_vertices(con) -> None:
    v = con.vertices
    assert v.shape == (con.dim, con.k)
    np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, atol=1e-12)
    g = con.gram
    off = (g**2).sum(axis=1) - 1.0
    np.testing.assert_allclose(off, 1.0 / con.ratio - 1.0, atol=1e-12)  # docs/theory.md §4 with equality
    assert np.linalg.matrix_rank(g) == con.dim


def _pair_error(c: float) -> float:
    """E[(U - ReLU(U + c U'))^2] by scipy dblquad (the error when feature i and one partner are on)."""
    def inner(up: float) -> float:
        kink = min(max(-c * up, 0.0), 1.0)  # ReLU switches off at u = -c u'
        f = lambda u: (u - max(u + c * up, 0.0)) ** 2  # noqa: E731
        return sum(integrate.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-12)[0] for lo, hi in ((0.0, kink), (kink, 1.0)))

    return integrate.quad(inner, 0.0, 1.0, epsabs=1e-14, epsrel=1e-12)[0]


@pytest.mark.parametrize("con", [regular_simplex(3), regular_simplex(7), regular_polygon(5)], ids=lambda c: c.name)
def test_leading_p_terms_against_quadrature(con) -> None:
    # At g = 1, b = 0: L = p * sum_{j: c_j > 0} c_j^2/3 + p^2 * [sum_j E(U - ReLU(U + c_j U'))^2 - ...]
    # Check the O(p) coefficient (positive partners leak when i is off) and, for simplices (no
    # positive partner), the O(p^2) coefficient against dblquad.
    c = con.partner_coefficients
    p = 1e-7
    lin = float(np.sum(np.clip(c, 0, None) ** 2) / 3.0)
    loss = float(structure_loss(con, p))
    if lin > 0:
        # relative O(p) corrections: 1e-5 is far above p = 1e-7 times the O(1) ratio of coefficients
        assert loss / p == pytest.approx(lin, rel=1e-5)
    else:
        quad = sum(_pair_error(float(cj)) for cj in c)
        assert loss / p**2 == pytest.approx(quad, rel=1e-5)


@pytest.mark.parametrize("con", ALL, ids=lambda c: c.name)
def test_exact_loss_matches_monte_carlo_twin(con) -> None:
    # Off-optimum gain/bias (positive and negative bias branches) and two densities.
    n_groups = max(1, 120 // con.k)
    cases = [(0.07, 1.15, -0.04), (0.35, 0.85, 0.06)]
    for i, (p, g, b) in enumerate(cases):
        w = construction_weights(con, n_groups, g, b)
        est = model_loss_monte_carlo(*w, p, n_samples=6000, seed=11 + i)
        mean, se = est.mean, est.se
        exact = float(structure_loss(con, p, g, b))
        assert abs(mean - exact) < K_SE * se, (con.name, p, mean, exact, se)


def test_optimised_loss_matches_monte_carlo_and_beats_nelder_mead() -> None:
    ps = np.array([1e-3, 0.05, 0.4])
    for con in [antipodal_pairs(), regular_simplex(4), regular_polygon(6)]:
        opt = optimal_structure_loss(con, ps)
        for j, p in enumerate(ps):
            # independent optimiser from three starts; ours must be as good to 1e-7 relative
            best = math.inf
            for x0 in ([0.0, 0.0], [0.5, -0.5], [-0.3, 0.3]):
                res = optimize.minimize(
                    lambda x, con=con, p=p, ref=opt.loss[j]: float(structure_loss(con, p, np.exp(x[0]), x[1]) / ref),
                    x0,
                    method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000},
                )
                best = min(best, res.fun)
            assert 1.0 <= best * (1.0 + 1e-7), (con.name, p, best)
        w = construction_weights(con, max(1, 150 // con.k), float(opt.gain[2]), float(opt.bias[2]))
        est = model_loss_monte_carlo(*w, 0.4, n_samples=4000, seed=3)
        mean, se = est.mean, est.se
        assert abs(mean - opt.loss[2]) < K_SE * se


def test_dropped_and_dedicated_features() -> None:
    p = 0.2
    w = mixture_weights([("dropped", 50, 0.0, p / 2), ("dedicated", 50, 1.0, 0.0)])
    assert w[0].shape == (50, 100)
    est = model_loss_monte_carlo(*w, p, n_samples=6000, seed=5)
    mean, se = est.mean, est.se
    assert abs(mean - 0.5 * float(dropped_loss(p))) < K_SE * se
    assert float(dropped_loss(p)) == pytest.approx(p / 3 - p * p / 4, rel=1e-15)


def test_whole_p_range_is_finite_and_positive() -> None:
    p = np.geomspace(1e-12, 1.0, 25)
    for con in standard_constructions():
        opt = optimal_structure_loss(con, p)
        assert np.all(np.isfinite(opt.loss)) and np.all(opt.loss > 0)
        # never worse than dropping every feature (v), the trivial solution at the same weights
        assert np.all(opt.loss <= dropped_loss(p) * (1 + 1e-12))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=rf"k must be an integer in \[2, {MAX_SIMPLEX_K}\]"):
        regular_simplex(MAX_SIMPLEX_K + 1)
    with pytest.raises(ValueError, match=rf"k must be an integer in \[3, {MAX_POLYGON_K}\]"):
        regular_polygon(2)
    with pytest.raises(ValueError, match="k must be an integer"):
        regular_polygon(5.0)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        structure_loss(antipodal_pairs(), 0.0)
    with pytest.raises(ValueError, match=r"gain must be in \(0, inf\)"):
        structure_loss(antipodal_pairs(), 0.1, gain=-1.0)
    with pytest.raises(ValueError, match="bias must be finite"):
        structure_loss(antipodal_pairs(), 0.1, bias=np.nan)
    with pytest.raises(ValueError, match="n_groups"):
        construction_weights(antipodal_pairs(), 0)


# ---------------------------------------------------------------------------------------------
# rug of antipodal pairs


def test_paired_rug_at_half_is_the_pairs_and_quadrature_converged() -> None:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss, paired_rug_loss

    p = np.array([1e-4, 0.01, 0.3])
    pr = optimal_paired_rug_loss(p, 0.5)
    pairs = optimal_structure_loss(antipodal_pairs(), p)
    # sigma = 0 at r = 1/2: the Gaussian route must reduce to the exact box-spline pairs optimum.
    # 1e-6: the paired-rug search ranks thresholds by p/3 - N^2/D, which at p = 1e-4 cancels to
    # L/(p/3) ~ 5e-5 (4-5 digits lost); the loss is stationary there, so it is off by ~2e-7.
    np.testing.assert_allclose(pr.loss, pairs.loss, rtol=1e-6)
    np.testing.assert_allclose(paired_rug_loss(p, 0.5, 1.0, 0.0), p**2 / 6, rtol=1e-12)


def test_paired_rug_at_half_is_the_pairs_down_to_tiny_p() -> None:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss

    # At tiny p the best threshold is θ ~ 1e-9 or smaller: a search with an absolute θ tolerance
    # (the former 32 golden steps, ~4e-8) was off by 2.5e-3 at p = 1e-6 and by 2.5e9 at p = 1e-12.
    # 1e-7: the box-spline pairs optimum (2-d pattern search) is itself accurate to ~1e-8 relative.
    p = np.array([1e-12, 1e-9, 1e-6, 1e-3, 1.0])
    pr = optimal_paired_rug_loss(p, 0.5)
    pairs = optimal_structure_loss(antipodal_pairs(), p)
    np.testing.assert_allclose(pr.loss, pairs.loss, rtol=1e-7)


def test_batched_optimisation_is_the_one_at_a_time_optimisation() -> None:
    from rugtheory.constructions import polytopes as structures
    # The phase map optimises every construction in one batch; each row of the batch must be
    # exactly what optimising that construction alone gives (same arithmetic, row by row).
    p = np.array([1e-5, 0.02, 0.4])
    cons = [antipodal_pairs(), regular_simplex(5), regular_polygon(6)]
    structures.clear_caches()
    alone = [optimal_structure_loss(c, p) for c in cons]
    structures.clear_caches()
    structures.prefetch_optima(cons, p)
    for c, a in zip(cons, alone):
        b = optimal_structure_loss(c, p)
        for x, y in ((a.loss, b.loss), (a.gain, b.gain), (a.bias, b.bias)):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("p, r", [(0.045, 0.25), (0.3, 0.2)])
def test_paired_rug_optimum_against_nelder_mead(p: float, r: float) -> None:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss, paired_rug_loss

    o = optimal_paired_rug_loss(p, r)
    best = math.inf
    for x0 in ([0.0, -0.05], [-0.2, 0.05]):
        res = optimize.minimize(lambda x: float(paired_rug_loss(p, r, np.exp(x[0]), x[1]) / o.loss), x0,
                                method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
        best = min(best, res.fun)
    assert 1.0 <= best * (1.0 + 1e-9)
    assert float(o.loss) < float(optimal_symmetric_loss(p, r).loss)  # the pairs halve the directions to pack


def test_paired_rug_matches_monte_carlo_of_explicit_weights() -> None:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.structure_weights import paired_rug_weights

    p, r, n_pairs = 0.045, 0.25, 1024
    o = optimal_paired_rug_loss(p, r)
    w = paired_rug_weights(n_pairs, int(2 * n_pairs * r), float(o.gain), float(o.bias), seed=0)
    assert w[0].shape == (512, 2048)
    est = model_loss_monte_carlo(*w, p, n_samples=3000, seed=2, chunk=1000)
    mean, se = est.mean, est.se
    # Large-n theory vs n = 2048: K_SE standard errors plus a 1.5% finite-n allowance (the rug's
    # interference is a sum of 2047 sparse terms, not a Gaussian; measured +0.75% at n = 2048 and +3%
    # at n = 512 with 6000 samples, i.e. shrinking like 1/n).
    assert abs(mean - float(o.loss)) < K_SE * se + 0.015 * float(o.loss)


def test_paired_rug_bad_ratio() -> None:
    from rugtheory.constructions.paired_rug import paired_rug_loss

    with pytest.raises(ValueError, match=r"r must be in \(0, 0.5\] for a rug of antipodal pairs"):
        paired_rug_loss(0.1, 0.6, 1.0, 0.0)


# ---------------------------------------------------------------------------------------------
# untied (asymmetric) pairs


def test_untied_pairs_closed_form_and_optimum() -> None:
    from rugtheory.constructions.polytopes import optimal_untied_pairs, untied_pair_loss

    p = np.array([1e-12, 1e-4, 0.01, 0.3, 1.0])
    # independent derivation: E min(U, tV)^2 = t^2/3 - t^3/6, E min(V, U/t)^2 = 1/3 - t/6 (t <= 1)
    for t in (1.0, 0.5, 1 / 3, 0.2):
        want = p**2 * (1 / 3 + t**2 / 3 - t**3 / 6 - t / 6) / 2
        np.testing.assert_allclose(untied_pair_loss(p, t), want, rtol=1e-12)
    np.testing.assert_allclose(untied_pair_loss(p, 1 / 3), 25 * p**2 / 162, rtol=1e-12)
    o = optimal_untied_pairs(p)
    tied = optimal_structure_loss(antipodal_pairs(), p).loss
    assert np.all(o.loss <= tied * (1 + 1e-12))
    assert o.t[1] == pytest.approx(1 / 3)  # small p: the analytic optimum
    assert o.loss[1] / tied[1] == pytest.approx(25 / 27, rel=1e-5)


def test_untied_pairs_monte_carlo_twin() -> None:
    from rugtheory.constructions.polytopes import optimal_untied_pairs, untied_pair_loss
    from rugtheory.constructions.structure_weights import untied_pair_weights

    p = 0.1
    o = optimal_untied_pairs(p)
    gains, biases = (float(o.gain1), float(o.gain2)), (float(o.bias1), float(o.bias2))
    w = untied_pair_weights(100, float(o.t), gains, biases)
    assert np.linalg.matrix_rank(w[1] @ w[0]) == 100
    est = model_loss_monte_carlo(*w, p, n_samples=8000, seed=4)
    mean, se = est.mean, est.se
    assert abs(mean - float(o.loss)) < K_SE * se
    assert float(untied_pair_loss(p, float(o.t), gains, biases)) == pytest.approx(float(o.loss), rel=1e-12)
    with pytest.raises(ValueError, match=r"t must be in \(0, 1\]"):
        untied_pair_loss(p, 1.5)


# ---------------------------------------------------------------------------------------------
# fast paths (issue 15) against their former routes


def _paired_by_quad(p: float, r: float, a: float, theta: float) -> float:
    """Paired-rug loss at (a, -aθ) by adaptive quadrature over the partner (breaks at the data edges)."""
    s = math.sqrt((p / 3 - p * p / 4) * (1 / r - 2))

    def f(u: float) -> float:
        return float(symmetric_loss(a, -a * (theta + u), a * s, p))

    kinks = [u for u in (-theta, 1 - theta) if 0 < u < 1]
    inner, _ = integrate.quad(f, 0.0, 1.0, points=kinks or None, epsabs=0.0, epsrel=1e-13, limit=200)
    return (1 - p) * f(0.0) + p * inner


@pytest.mark.parametrize("p, r", [(1e-3, 0.25), (0.045, 0.25), (0.3, 0.1), (1.0, 0.005), (0.2, 0.49)])
def test_paired_rug_moments_against_adaptive_quadrature(p: float, r: float) -> None:
    from rugtheory.constructions.paired_rug import paired_rug_moments

    s = math.sqrt((p / 3 - p * p / 4) * (1 / r - 2))
    for theta in (-0.5, 0.0, 0.7 * s, 2.5 * s, 1.1):
        n, d = (float(x) for x in paired_rug_moments(theta, p, r))
        # The loss is a^2 D - 2aN + p/3: gains 1 and 2 by quadrature give D and N. Their cancellation
        # costs up to log10((p/3)/D) digits on top of quad's 1e-13, so 1e-9 relative of p/3.
        l1, l2 = _paired_by_quad(p, r, 1.0, theta), _paired_by_quad(p, r, 2.0, theta)
        d_q = (l2 - 2 * l1 + p / 3) / 2
        n_q = (d_q + p / 3 - l1) / 2
        assert abs(d * p - d_q) < 1e-9 * p / 3, (theta, d * p, d_q)
        assert abs(n * p - n_q) < 1e-9 * p / 3, (theta, n * p, n_q)


def test_paired_rug_closed_form_search_matches_quadrature_search() -> None:
    from rugtheory.constructions.paired_rug import (
        CLOSED_FORM_MAX_S,
        CLOSED_FORM_MIN_P,
        optimal_paired_rug_loss,
        optimal_paired_rug_loss_reference,
    )

    # Both report paired_rug_loss at their (a*, θ*); only the profile that ranks θ differs (exact vs the
    # 12-point Gauss-Legendre one, accurate to ~1e-6). The loss is stationary in θ and a, so it moves by
    # ~(quadrature error)^2: measured <= 1.6e-10 relative (p in [1e-6, 1]; 3e-12 for p >= 1e-4), asserted
    # 1e-9. The gain and θ move by first order in that error: measured 3e-5 relative and 5e-5 absolute
    # at p ~ 1e-5 (where the quadrature itself is coarse), ~1e-6 for p >= 1e-4; asserted 1e-4.
    p = np.concatenate([np.geomspace(1e-6, 1.0, 13), [2e-9]])[:, None]  # 2e-9: below CLOSED_FORM_MIN_P
    r = np.concatenate([[1e-5, 1e-3], np.linspace(0.005, 0.5, 12)])[None, :]  # 1e-5: s > CLOSED_FORM_MAX_S
    fast, ref = optimal_paired_rug_loss(p, r), optimal_paired_rug_loss_reference(p, r)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-9)
    np.testing.assert_allclose(fast.gain, ref.gain, rtol=1e-4)
    np.testing.assert_allclose(fast.bias / fast.gain, ref.bias / ref.gain, rtol=0, atol=1e-4)
    # outside the closed form's range the two are the same search
    s = np.sqrt((p / 3 - p * p / 4) * (1 / r - 2))
    outside = (s > CLOSED_FORM_MAX_S) | (p < CLOSED_FORM_MIN_P)
    assert outside.sum() >= 20 and (~outside).sum() >= 100
    for x, y in ((fast.loss, ref.loss), (fast.gain, ref.gain), (fast.bias, ref.bias)):
        np.testing.assert_array_equal(x[outside], y[outside])


def test_grouped_pattern_search_is_the_flat_one_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    from rugtheory.constructions import polytopes

    p = np.array([1e-9, 1e-3, 0.05, 0.4, 1.0])
    cons = standard_constructions()
    out = {}
    for mode in ("flat", "grouped"):
        monkeypatch.setattr(polytopes, "PATTERN_EVALUATION", mode)
        polytopes.clear_caches()
        polytopes.prefetch_optima(cons, p)
        out[mode] = [optimal_structure_loss(c, p) for c in cons] + [polytopes.optimal_untied_pairs(p)]
    for a, b in zip(out["flat"], out["grouped"]):
        for name in ("loss", "gain", "bias") if hasattr(a, "gain") else ("loss", "t", "gain1", "bias1"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # and the optimiser's loss is the closed form structure_loss at its own gain and bias: the same terms
    # summed in another order, and the alternating box-spline sum cancels up to ~5 digits at p = 1 for the
    # largest simplices (MAX_SIMPLEX_K); 1.9e-11 measured (simplex10), so 1e-10
    for o in out["grouped"][:-1]:
        np.testing.assert_allclose(o.loss, structure_loss(o.construction, p, o.gain, o.bias), rtol=1e-10)
    monkeypatch.setattr(polytopes, "PATTERN_EVALUATION", "fast")
    polytopes.clear_caches()
    with pytest.raises(ValueError, match="PATTERN_EVALUATION must be"):
        polytopes.prefetch_optima(cons, p)
    polytopes.clear_caches()
