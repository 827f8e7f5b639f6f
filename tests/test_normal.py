"""Gaussian primitives against mpmath closed forms at 60 digits."""

import mpmath as mp
import numpy as np
import pytest

from rugtheory.theory.normal import CF_THRESHOLD, laplace_tails, mills_ratio, relu_gaussian_moments


def _exact_moment(t: float, k: int) -> mp.mpf:
    with mp.workdps(60):
        t = mp.mpf(t)
        P, f = mp.ncdf(t), mp.npdf(t)
        return [P, t * P + f, (t * t + 1) * P + t * f, (t**3 + 3 * t) * P + (t * t + 2) * f,
                (t**4 + 6 * t * t + 3) * P + (t**3 + 5 * t) * f][k]


# t in [-37, 37]: below about -37.5 the values are subnormal (< 1e-300) and lose relative digits by
# construction of IEEE doubles; they never matter next to normal-range terms.
GRID = list(np.linspace(-37.0, 37.0, 149)) + [-CF_THRESHOLD - 1e-9, -CF_THRESHOLD, -CF_THRESHOLD + 1e-9, 0.0]


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_relu_gaussian_moments_match_mpmath(k):
    got = relu_gaussian_moments(np.array(GRID), max(k, 3))[k]
    for t, g in zip(GRID, got):
        exact = _exact_moment(t, k)
        # Direct formulas just above the switch lose at most ~2.5 digits (m_3 at t = -3 cancels
        # between terms of size ~30 and a result of ~0.02; m_4 ~3.5 digits, 1.2e-12 measured);
        # 5e-12 leaves room for that.
        assert abs(float(mp.mpf(g) / exact - 1)) < 5e-12, (t, k, g, exact)


def test_moments_up_to_3_do_not_depend_on_n_max():
    t = np.array(GRID + [-np.inf, np.inf])
    four = relu_gaussian_moments(t, 4)
    for n_max in range(4):
        for a, b in zip(relu_gaussian_moments(t, n_max), four):
            np.testing.assert_array_equal(a, b)


def test_moments_at_infinities_are_limits():
    m = relu_gaussian_moments(np.array([-np.inf, np.inf, -1e300]), 3)
    assert [float(v[0]) for v in m] == [0.0, 0.0, 0.0, 0.0]
    assert float(m[0][1]) == 1.0 and all(np.isinf(v[1]) for v in m[1:])
    assert all(float(v[2]) == 0.0 for v in m)


def test_laplace_continued_fraction_matches_mills_ratio():
    c = np.array([3.0, 4.5, 10.0, 100.0, 1e6])
    r = laplace_tails(c, 0)[0]
    ref = mills_ratio(c)  # erfcx route
    np.testing.assert_allclose(r, ref, rtol=1e-14)  # two independent routes, both ~1 ulp
