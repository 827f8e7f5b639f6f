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


@pytest.mark.parametrize("p,r,match", [(0, 0.5, "p must"), (0.1, 1.5, "r must"), (np.nan, 0.5, "p must"), (0.1, -1, "r must")])
def test_bad_input(p, r, match):
    with pytest.raises(ValueError, match=match):
        optimal_symmetric_loss(p, r)
