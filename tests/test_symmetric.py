"""Closed-form symmetric loss L(a, b, sigma; p) against mpmath, scipy quadrature and Monte Carlo."""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rugtheory import relu_gaussian_mean, relu_gaussian_second_moment, symmetric_loss
from rugtheory.theory.symmetric import GL_SWITCH, data_moments, interference_scale
from rugtheory.twins import oracle
from rugtheory.twins.montecarlo import symmetric_loss_mc
from rugtheory.twins.quadrature import symmetric_loss_quad

# Requirement: relative error <= 1e-9 against the oracle. The closed form is built from terms that do
# not cancel (module docstring), so it reaches ~1e-13; 1e-10 is asserted to leave margin for the
# ~2 digits the direct Mills-ratio forms lose near t = -3.
ORACLE_RTOL = 1e-10

CASES = [
    (1.0, 0.0, 1e-12, 0.01),  # deterministic limit, tiny sigma
    (1.0, 0.0, 0.1, 0.01),
    (1.289, -0.446, 0.2688, 0.045),  # near the worked optimum of docs/theory.md §4
    (0.5, 0.1, 1e-6, 1e-12),  # smallest p
    (1e-8, 0.3, 0.2, 0.5),  # a -> 0 (quadrature branch)
    (0.0, 0.0, 0.3, 0.2),
    (0.0, 0.0, 0.0, 0.2),
    (2.0, -1.0, 0.0, 0.3),  # sigma = 0 with a kink inside [0, 1]
    (1.0, -0.5, 1e-12, 1e-12),
    (-1.0, 0.5, 0.3, 1.0),  # negative gain, p = 1
    (3.0, -2.9, 0.01, 0.1),
    (1.0, -40.0, 1.0, 0.5),  # far lower tail (t = -40)
    (0.7, 2.0, 3.0, 0.9),
]


@pytest.mark.parametrize("a,b,sigma,p", CASES)
def test_closed_form_matches_mpmath_oracle(a, b, sigma, p):
    got = float(symmetric_loss(a, b, sigma, p))
    exact = oracle.symmetric_loss(a, b, sigma, p, dps=60)
    assert abs(got / float(exact) - 1) < ORACLE_RTOL


@settings(max_examples=40)
@given(
    a=st.floats(-3, 3),
    b=st.floats(-3, 3),
    log_sigma=st.floats(-12, 1),
    log_p=st.floats(-12, 0),
)
def test_closed_form_matches_oracle_over_domain(a, b, log_sigma, log_p):
    sigma, p = 10.0**log_sigma, 10.0**log_p
    got = float(symmetric_loss(a, b, sigma, p))
    exact = float(oracle.symmetric_loss(a, b, sigma, p, dps=60))
    assert np.isfinite(got)
    assert abs(got / exact - 1) < ORACLE_RTOL


@settings(max_examples=30)
@given(a=st.floats(-2, 3), b=st.floats(-1, 1), sigma=st.floats(1e-3, 2), p=st.floats(1e-4, 1))
def test_closed_form_matches_scipy_quadrature(a, b, sigma, p):
    # quad runs at epsrel 1e-11 on a smooth integrand with break points at the kink; 1e-9 covers
    # its achieved accuracy in this moderate domain (sigma >= 1e-3).
    assert float(symmetric_loss(a, b, sigma, p)) == pytest.approx(symmetric_loss_quad(a, b, sigma, p), rel=1e-9)


@pytest.mark.parametrize(
    "a,b,sigma,p", [(1.289, -0.446, 0.2688, 0.045), (0.8, 0.05, 0.5, 0.3), (1.5, -0.9, 0.05, 0.02)]
)
def test_closed_form_matches_monte_carlo(a, b, sigma, p):
    est = symmetric_loss_mc(a, b, sigma, p, n_samples=400_000, seed=1234)
    # 4 standard errors: a correct closed form fails this with probability ~6e-5.
    assert abs(est.z_score(float(symmetric_loss(a, b, sigma, p)))) < 4.0


def test_branches_agree_at_switch():
    # |a| = GL_SWITCH * sigma separates Gauss–Legendre from the antiderivative route; both sides agree.
    sigma = 0.37
    a_lo, a_hi = GL_SWITCH * sigma * (1 - 1e-12), GL_SWITCH * sigma * (1 + 1e-12)
    lo, hi = symmetric_loss([a_lo, a_hi], 0.05, sigma, 0.2)
    assert lo == pytest.approx(hi, rel=1e-12)


def test_sigma_zero_is_deterministic_relu():
    # sigma = 0: L = (1-p) ReLU(b)^2 + p * int (ReLU(ax+b) - x)^2 dx, here with a kink at x = 0.4.
    a, b, p = 2.0, -0.8, 0.3
    # inactive on [0, 0.4]: x^2; active on [0.4, 1]: (2x - 0.8 - x)^2 = (x - 0.8)^2
    exact = p * (0.4**3 / 3 + ((1 - 0.8) ** 3 - (0.4 - 0.8) ** 3) / 3)
    assert float(symmetric_loss(a, b, 0.0, p)) == pytest.approx(exact, rel=1e-14)


def test_relu_gaussian_moments_against_mpmath_and_limits():
    mu = np.array([-5.0, -0.3, 0.0, 0.7, 2.0])
    s = 0.4
    for m, g1, g2 in zip(mu, relu_gaussian_mean(mu, s), relu_gaussian_second_moment(mu, s)):
        with mp.workdps(40):
            t = mp.mpf(m) / s
            e1 = m * mp.ncdf(t) + s * mp.npdf(t)
            e2 = (m * m + s * s) * mp.ncdf(t) + m * s * mp.npdf(t)
        assert g1 == pytest.approx(float(e1), rel=1e-13)
        assert g2 == pytest.approx(float(e2), rel=1e-12)
    assert np.array_equal(relu_gaussian_mean(mu, 0.0), np.maximum(mu, 0))
    assert np.array_equal(relu_gaussian_second_moment(mu, 0.0), np.maximum(mu, 0) ** 2)


def test_data_moments_against_sampling():
    rng = np.random.default_rng(7)
    p = 0.3
    x = (rng.random(2_000_000) < p) * rng.random(2_000_000)
    m = data_moments(p)
    xc = x - x.mean()
    for exact, sample in ((m.mean, x.mean()), (m.variance, xc.var()), (m.kappa3, (xc**3).mean())):
        # 2e6 samples: standard errors of these moments are below 3e-4; 2e-3 absolute is > 6 SE.
        assert abs(float(exact) - sample) < 2e-3
    assert float(m.kappa4) == pytest.approx((xc**4).mean() - 3 * xc.var() ** 2, abs=2e-3)


def test_vectorised_broadcasting():
    out = symmetric_loss(np.array([[1.0], [1.2]]), -0.2, 0.1, np.array([0.01, 0.1, 0.5]))
    assert out.shape == (2, 3)
    for i, a in enumerate((1.0, 1.2)):
        for j, p in enumerate((0.01, 0.1, 0.5)):
            assert out[i, j] == float(symmetric_loss(a, -0.2, 0.1, p))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(a=1, b=0, sigma=0.1, p=0.0), r"p must be in \(0, 1\]"),
        (dict(a=1, b=0, sigma=0.1, p=1.5), r"p must be in \(0, 1\]"),
        (dict(a=1, b=0, sigma=-0.1, p=0.1), r"sigma must be in \[0, inf\)"),
        (dict(a=np.nan, b=0, sigma=0.1, p=0.1), "a must be finite"),
        (dict(a=1, b=np.inf, sigma=0.1, p=0.1), "b must be finite"),
        (dict(a="x", b=0, sigma=0.1, p=0.1), "a must be a real number"),
    ],
)
def test_bad_input_names_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        symmetric_loss(**kwargs)


def test_interference_scale_rank_bound():
    p, r = 0.045, 0.25
    v = p / 3 - p * p / 4
    assert float(interference_scale(p, r)) == pytest.approx(np.sqrt(v * (1 / r - 1)), rel=1e-15)
    assert float(interference_scale(p, 1.0)) == 0.0
    with pytest.raises(ValueError, match=r"r must be in \(0, 1\]"):
        interference_scale(p, 0.0)
