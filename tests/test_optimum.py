"""L*(p, r): worked example, mpmath oracle, independent scipy optimum, Monte Carlo, invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rugtheory import linear_loss, linear_loss_no_bias, optimal_symmetric_loss, symmetric_loss, zero_loss
from rugtheory.twins import oracle
from rugtheory.twins.montecarlo import symmetric_loss_mc
from rugtheory.twins.quadrature import optimal_symmetric_loss_quad


def test_worked_example_of_theory():
    # docs/theory.md §4: p = 0.045, r = 0.25 gives L* ~ 4.856e-3, a* ~ 1.289, b* ~ -0.446 (quoted to 4 / 3 digits).
    opt = optimal_symmetric_loss(0.045, 0.25)
    assert float(opt.loss) == pytest.approx(4.856e-3, abs=0.5e-6)
    assert float(opt.a) == pytest.approx(1.289, abs=0.5e-3)
    assert float(opt.b) == pytest.approx(-0.446, abs=0.5e-3)
    assert float(opt.sigma) == pytest.approx(float(opt.a * opt.s), rel=1e-15)


def test_dense_small_r_threshold_far_below_zero():
    # docs/theory.md §4: p = 0.3, r = 0.05 has theta* near -2.8 and L* just below the affine optimum.
    opt = optimal_symmetric_loss(0.3, 0.05)
    assert -3.0 < float(opt.theta) < -2.6
    assert 0.999 * float(opt.linear_loss) < float(opt.loss) < float(opt.linear_loss)


# Regimes: extreme sparsity, r near 0 and near 1, dense data, the affine (never-clipping) corner.
ORACLE_POINTS = [
    (1e-12, 1e-6), (1e-12, 0.25), (1e-12, 0.999999), (1e-6, 0.5), (1e-3, 1e-3),
    (0.045, 0.25), (0.3, 0.05), (1.0, 1e-6), (1.0, 0.999999),
]


@pytest.mark.slow
@pytest.mark.parametrize("p,r", ORACLE_POINTS)
def test_optimum_matches_mpmath_oracle(p, r):
    opt = optimal_symmetric_loss(p, r)
    # The oracle runs findroot on the stationarity condition at 30 digits, started from our theta*;
    # it recomputes N, D by tanh-sinh quadrature and L* = p/3 - N^2/D without cancellation at that
    # precision. Requirement: 1e-9 relative (observed ~1e-14).
    ref = oracle.optimal_symmetric_loss(p, r, theta_start=float(opt.theta), dps=30)
    assert float(opt.loss) == pytest.approx(float(ref["loss"]), rel=1e-9)
    assert float(opt.a) == pytest.approx(float(ref["a"]), rel=1e-6)  # a*, theta* are flat directions of L
    assert float(opt.theta) == pytest.approx(float(ref["theta"]), rel=1e-5, abs=1e-6 * float(ref["s"]))


@pytest.mark.parametrize("p,r", [(0.045, 0.25), (0.01, 0.5), (0.2, 0.1), (0.5, 0.8), (1e-3, 0.3)])
def test_optimum_matches_independent_scipy_search(p, r):
    # Independent route: grid scan + bounded Brent on p/3 - N^2/D with N, D by scipy quad. Its loss
    # is a cancelling difference accurate to ~1e-11 * p/3 (quad epsrel 1e-11) and L* >= 0.03 p/3 at
    # these points, so 1e-8 relative is safe.
    ref = optimal_symmetric_loss_quad(p, r)
    assert float(optimal_symmetric_loss(p, r).loss) == pytest.approx(ref["loss"], rel=1e-8)


@pytest.mark.parametrize("p,r", [(0.045, 0.25), (0.01, 0.5), (0.3, 0.05)])
def test_optimum_matches_monte_carlo_of_model(p, r):
    opt = optimal_symmetric_loss(p, r)
    est = symmetric_loss_mc(float(opt.a), float(opt.b), float(opt.sigma), p, n_samples=400_000, seed=99)
    assert abs(est.z_score(float(opt.loss))) < 4.0  # 4 SE


@settings(max_examples=50)
@given(log_p=st.floats(-12, 0), log_r=st.floats(-6, 0), d=st.floats(-0.05, 0.05), rel=st.floats(-0.05, 0.05))
def test_optimum_is_a_local_minimum(log_p, log_r, d, rel):
    # Perturbing (a, theta) off the optimum never lowers the stable loss: theta* is not a bracket edge.
    p, r = 10.0**log_p, min(10.0**log_r, 1 - 1e-9)
    opt = optimal_symmetric_loss(p, r)
    a = float(opt.a) * (1 + rel)
    theta = float(opt.theta) + d * float(opt.s)
    perturbed = float(symmetric_loss(a, -a * theta, a * float(opt.s), p))
    # Rounding of the stable loss is ~1e-13 relative; allow 1e-11 before calling it a descent.
    assert perturbed >= float(opt.loss) * (1 - 1e-11)


@settings(max_examples=80)
@given(log_p=st.floats(-12, 0), log_r=st.floats(-6, 0))
def test_ordering_zero_linear_optimum(log_p, log_r):
    p, r = 10.0**log_p, 10.0**log_r
    opt = optimal_symmetric_loss(p, r)
    vals = [float(opt.zero_loss), float(opt.linear_loss), float(opt.loss)]
    assert all(np.isfinite(vals))
    assert vals[0] >= vals[1] >= 0
    # Where the ReLU never clips (dense p, tiny r) L* equals the affine optimum up to rounding:
    # allow 1e-12 relative above it. Everywhere else L* is strictly lower.
    assert vals[2] <= vals[1] * (1 + 1e-12)
    assert vals[2] >= 0


@settings(max_examples=60)
@given(log_p=st.floats(-12, 0), log_r=st.floats(-6, -1e-3), step=st.floats(1e-3, 0.5))
def test_strictly_decreasing_in_r(log_p, log_r, step):
    p, r1 = 10.0**log_p, 10.0**log_r
    r2 = min(r1 * (1 + step), 1.0)
    l1, l2 = optimal_symmetric_loss(p, [r1, r2]).loss
    assert l1 > l2


def test_whole_domain_corners_finite():
    p = np.array([1e-12, 1e-9, 1e-6, 1e-3, 0.1, 0.5, 1.0])
    r = np.array([1e-6, 1e-4, 1e-2, 0.3, 0.9, 1 - 1e-9, 1.0])
    opt = optimal_symmetric_loss(p[:, None], r[None, :])
    for field in ("loss", "a", "b", "sigma", "theta", "s"):
        assert np.all(np.isfinite(getattr(opt, field))), field
    assert np.all(opt.loss[:, -1] == 0.0)  # r = 1: identity map
    assert np.all(opt.loss[:, :-1] > 0)


def test_linear_without_bias_by_eigendecomposition():
    # Independent route: best rank-m linear map without bias = discard the n - m smallest eigenvalues
    # of the second-moment matrix E[x x^T] = v I + (p/2)^2 11^T (exact for any n), per feature.
    n, m, p = 40, 10, 0.2
    v = p / 3 - p * p / 4
    M = v * np.eye(n) + (p / 2) ** 2 * np.ones((n, n))
    eig = np.sort(np.linalg.eigvalsh(M))
    per_feature = eig[: n - m].sum() / n
    assert float(linear_loss_no_bias(p, m / n)) == pytest.approx(per_feature, rel=1e-12)
    assert float(linear_loss(p, m / n)) == pytest.approx(per_feature, rel=1e-12)
    assert float(zero_loss(p)) == pytest.approx(np.trace(M) / n, rel=1e-12)


def test_records_and_shapes():
    opt = optimal_symmetric_loss([0.01, 0.1], [[0.2], [0.5], [0.9]])
    assert opt.loss.shape == (3, 2)
    recs = opt.records()
    assert len(recs) == 6 and set(recs[0]) >= {"loss", "a", "b", "sigma", "theta", "s", "linear_loss", "zero_loss"}


@pytest.mark.parametrize(
    "p,r,match", [(0, 0.5, "p must"), (0.1, 1.5, "r must"), (np.nan, 0.5, "p must"), (0.1, -1, "r must")]
)
def test_bad_input(p, r, match):
    with pytest.raises(ValueError, match=match):
        optimal_symmetric_loss(p, r)


# ---- issue 11 item 2: no silent wrong answer anywhere in the accepted domain -------------------
# Accepted: p in [2.2e-308 (smallest normal float), 1], r in [1e-300, 1]. The oracle needs
# dps >= 2 log10(1/s) + 20 digits: p/3 - N^2/D cancels by (L*/(p/3)) ~ s^2. Tolerance 1e-13
# relative: the runtime's L* is correctly rounded up to a few ulps (stationary in θ, exact scaled
# objective below S_SMALL); 1e-13 leaves room for the oracle's findroot tolerance.
EXTREME_POINTS = [
    (1e-50, 0.25), (1e-40, 1e-36), (1e-200, 1e-196), (0.5, 1 - 1e-8),
    (1e-300, 1e-300), (0.1, 1e-12), (1e-12, 1e-12), (2.3e-308, 1e-300),
]


def _oracle_dps(s: float) -> int:
    return int(2 * max(0.0, -np.log10(s)) + 30)


@pytest.mark.slow
@pytest.mark.parametrize("p,r", EXTREME_POINTS)
def test_extreme_optimum_matches_mpmath_oracle(p, r):
    opt = optimal_symmetric_loss(p, r)
    ref = oracle.optimal_symmetric_loss(p, r, theta_start=float(opt.theta), dps=_oracle_dps(float(opt.s)))
    assert float(opt.loss) == pytest.approx(float(ref["loss"]), rel=1e-13)
    assert float(opt.loss) <= float(opt.linear_loss)


@pytest.mark.slow
@pytest.mark.parametrize("p", [1e-100, 1e-300])
def test_extreme_sparsity_scaled_loss_matches_oracle_at_theta_star(p):
    # L* ~ p s^2 K underflows float64 below p ~ 1e-155, so compare the scaled L*/(p s^2) of the
    # small-s route with the oracle's p/3 - N^2/D at our θ* (one evaluation: findroot at 330 digits
    # takes minutes). The oracle value at any θ bounds L* from above, and the scaled objective is
    # stationary at θ*, so agreement to 1e-13 checks both the value and the optimiser.
    import mpmath as mp

    from rugtheory.theory.optimum import _small_s_optimum

    r = 0.25
    opt = optimal_symmetric_loss(p, r)
    _, _, lam = _small_s_optimum(np.array([p]), np.array([float(opt.s)]))
    dps = _oracle_dps(float(opt.s))
    n, d, _, _ = oracle.ratio_moments(float(opt.theta), float(opt.s), p, dps=dps)
    with mp.workdps(dps):
        pm = mp.mpf(p)
        s2 = (pm / 3 - pm * pm / 4) * (1 - mp.mpf(r)) / r
        ref = (pm / 3 - n * n / d) / (pm * s2)
    assert float(lam[0]) == pytest.approx(float(ref), rel=1e-13)
    if p == 1e-100:
        assert float(opt.loss) == pytest.approx(float(ref * pm * s2), rel=1e-13)
    else:
        assert float(opt.loss) == 0.0  # 3.4e-598 rounds to zero; θ*, a*, s keep full precision
        assert float(opt.theta / opt.s) == pytest.approx(36.889481, abs=1e-5)


@settings(max_examples=120)
@given(log_p=st.floats(np.log10(2.2250738585072014e-308), 0), log_r=st.floats(-300, 0))
def test_bounds_and_finiteness_on_whole_accepted_domain(log_p, log_r):
    p, r = max(10.0**log_p, 2.2250738585072014e-308), max(10.0**log_r, 1e-300)
    opt = optimal_symmetric_loss(p, r)
    for name in ("loss", "a", "b", "sigma", "theta", "s"):
        assert np.isfinite(getattr(opt, name)), name
    assert 0.0 <= float(opt.loss) <= float(linear_loss(p, r))
    assert float(opt.loss) <= p / 3.0


@pytest.mark.parametrize("p", [1e-30, 1e-50, 1e-100, 1e-150])
def test_matches_high_sparsity_constant(p):
    # Second route (docs/theory.md §6): L* = p s^2 K(p) (1 + O(s ln(1/p)^{3/2})) with K(p) from the
    # reduced problem solved by bisection in rugtheory.theory.asymptotics. At r = 1/4, s = sqrt(p)
    # so the relative remainder is below 1e-13 for p <= 1e-30.
    from rugtheory.theory.asymptotics import relu_sparse_constant, relu_sparse_series

    r = 0.25
    opt = optimal_symmetric_loss(p, r)
    s = float(opt.s)
    K = float(relu_sparse_constant(p).K)
    assert float(opt.loss) == pytest.approx(p * s * s * K, rel=max(1e-12, 10 * s * np.log(1 / p) ** 1.5))
    assert float(opt.theta) / s == pytest.approx(float(relu_sparse_constant(p).t), abs=1e-6)
    # the two-term ln(1/p) series of K is only good to O(ln^2 Λ / Λ^2)
    assert float(opt.loss) == pytest.approx(float(relu_sparse_series(p, r, terms=3)), rel=0.05)


@pytest.mark.parametrize(
    "p,r,match",
    [
        (5e-324, 0.25, r"^p must be in \[2.2250738585072014e-308, 1\] for L\* .* got 5e-324$"),
        (0.1, 1e-310, r"^r must be in \[1e-300, 1\] for L\* .* got 1e-310$"),
    ],
)
def test_refused_outside_verified_range_with_one_line_message(p, r, match):
    with pytest.raises(ValueError, match=match) as info:
        optimal_symmetric_loss(p, r)
    assert "\n" not in str(info.value)


def test_shared_laguerre_orders_are_the_one_order_function_bit_for_bit():
    # L*'s off terms take R_1 and R_2 from one call (one set of Laguerre exponentials); each must be
    # exactly the one-order function's value, so that L* is unchanged to the last bit.
    from rugtheory.theory.channel import scaled_repeated_normal_integral, scaled_repeated_normal_integrals

    a = np.concatenate([np.linspace(0.0, 3.0, 61), np.geomspace(2.0, 1e6, 200), [1.9999999999, 2.0, np.inf]])
    orders = (2, 1, 0, 3, 4)
    for n, got in zip(orders, scaled_repeated_normal_integrals(orders, a)):
        np.testing.assert_array_equal(got, scaled_repeated_normal_integral(n, a))
    with pytest.raises(ValueError, match="n must be"):
        scaled_repeated_normal_integrals((5,), a)


def test_search_in_pieces_is_the_search_at_once(monkeypatch):
    # the candidate grid is evaluated SEARCH_ROWS points at a time; every value is elementwise, so the
    # pieces must not change a bit
    import rugtheory.theory.optimum as om

    p = np.geomspace(1e-6, 1.0, 13)[:, None]
    r = np.linspace(0.01, 0.99, 11)[None, :]
    whole = optimal_symmetric_loss(p, r)
    monkeypatch.setattr(om, "SEARCH_ROWS", 7)
    pieces = optimal_symmetric_loss(p, r)
    for name in ("loss", "a", "b", "theta"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))
