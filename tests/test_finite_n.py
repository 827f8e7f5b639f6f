"""Finite-n theory (docs/theory.md §7): exact loss of given weights, Edgeworth step, against independent routes.

Routes compared:
- Bromwich inversion of the exact MGF (rugtheory.theory.finite_n.exact_loss_from_weights)
- enumeration of active-feature sets with exact repeated integration (enumeration_loss_from_weights)
- Monte Carlo of the model itself (rugtheory.twins.montecarlo.model_loss_monte_carlo)
- the direct product of the MGF factors (no series) for interference_log_mgf
- closed-form cumulants / finite differences of the foundation's symmetric_loss for the Edgeworth step
- scipy quadrature for the error profile
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from rugtheory import data_moments, symmetric_loss
from rugtheory.theory.edgeworth import edgeworth_loss_from_weights, gaussian_loss_c_derivative, interference_cumulants
from rugtheory.theory.finite_n import (
    exact_loss_from_factors,
    exact_loss_from_weights,
    exact_loss_of_row,
    interference_error_profile,
    invert_rows,
)
from rugtheory.theory.interference_mgf import direct_log_mgf, interference_log_mgf, sparse_uniform_log_mgf_coefficients
from rugtheory.theory.weights import row_parameters
from rugtheory.twins.enumeration import enumeration_loss_from_weights
from rugtheory.twins.montecarlo import model_loss_monte_carlo
from rugtheory.twins.quadrature import symmetric_loss_quad


def _tiny_model(n: int, *, seed: int, scale: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, n)) * scale
    # keep |W_ij| >= 0.05 so the enumeration's alternating sums do not lose digits
    W = np.sign(W) * np.maximum(np.abs(W), 0.05)
    np.fill_diagonal(W, 0.8 + 0.5 * rng.random(n))
    b = -0.3 + 0.2 * rng.normal(size=n)
    return W, b


def _projection_model(
    n: int, r: float, a: float, *, seed: int, p: float, spikes: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """W = (a/r) P (P a random rank-rn projection), optionally plus a few large negative entries per row."""
    rng = np.random.default_rng(seed)
    m = max(1, int(round(r * n)))
    q, _ = np.linalg.qr(rng.normal(size=(n, m)))
    W = a * (q @ q.T) / r
    if spikes:
        mask = rng.random((n, n)) < 3.0 / n
        np.fill_diagonal(mask, False)
        W = W - spikes * mask
    b = -0.45 - 0.5 * p * (W.sum(axis=1) - np.diag(W))
    return W, b


# --- error profile --------------------------------------------------------------------------


@pytest.mark.parametrize("a,c", [(1.3, -0.45), (-0.7, 0.2), (0.0, 0.3), (1e-9, -0.1), (2.0, 1.0)])
def test_error_profile_matches_quadrature(a: float, c: float) -> None:
    p = 0.2
    for x in (-2.0, -0.6, -0.1, 0.0, 0.25, 1.5):
        w = c + x
        on, _ = integrate.quad(
            lambda u, w=w: (max(a * u + w, 0.0) - u) ** 2,
            0.0,
            1.0,
            points=[min(max(-w / a, 0), 1)] if a else None,
            epsabs=1e-14,
            epsrel=1e-13,
        )
        want = (1 - p) * max(w, 0.0) ** 2 + p * on
        # 2-point Gauss-Legendre on quadratic pieces is exact: only rounding (1e-13 relative) separates them
        assert interference_error_profile(x, a, c, p) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_error_profile_at_zero_interference_is_the_deterministic_loss() -> None:
    # sigma = 0 in the closed-form symmetric loss is the same quantity
    for a, c, p in [(1.3, -0.45, 0.045), (0.5, 0.1, 0.9), (-1.0, 0.3, 1.0)]:
        assert interference_error_profile(0.0, a, c, p) == pytest.approx(float(symmetric_loss(a, c, 0.0, p)), rel=1e-12)


# --- log-MGF machinery ----------------------------------------------------------------------


@pytest.mark.parametrize("p", [1e-9, 0.01, 0.045, 0.44, 0.9, 1.0])
def test_log_mgf_coefficients_are_the_cumulants(p: float) -> None:
    lam = sparse_uniform_log_mgf_coefficients(p, 4)
    dm = data_moments(p)
    # Cauchy integral with 512 nodes inside the convergence disc: exact to rounding (~1e-15 absolute)
    assert lam[0] == pytest.approx(0.0, abs=1e-14)
    assert lam[1] == pytest.approx(p / 2, rel=1e-12)
    assert lam[2] == pytest.approx(float(dm.variance) / 2, rel=1e-11)
    assert lam[3] == pytest.approx(float(dm.kappa3) / 6, rel=1e-9, abs=1e-16)
    assert lam[4] == pytest.approx(float(dm.kappa4) / 24, rel=1e-8, abs=1e-16)


def test_series_log_mgf_equals_direct_product() -> None:
    # n = 200 rows with small, medium and a few large entries: the series/exact split against the
    # plain product over all entries, at points inside and far outside every entry's series disc
    p = 0.045
    W, b = _projection_model(200, 0.25, 1.3, seed=3, p=p, spikes=0.6)
    z = np.array([0.5 + 3j, 2 + 20j, 5 + 60j, -1 + 0.1j, 7.0 + 0j])
    got = interference_log_mgf(W, p, z)
    rp = row_parameters(W, b, p)
    _, _, off = rp.a, rp.effective_bias, rp.off
    want, _ = direct_log_mgf(off, np.broadcast_to(z, (200, z.size)).copy(), p, False)
    # compare Psi itself (log is defined mod 2 pi i); the series remainder is < 1e-10 relative
    np.testing.assert_allclose(np.exp(got), np.exp(want), rtol=1e-9, atol=0)


# --- exact loss against enumeration (n <= 10) -----------------------------------------------


@pytest.mark.parametrize("n,p", [(3, 0.5), (6, 0.3), (8, 0.045), (10, 0.9)])
def test_exact_equals_enumeration(n: int, p: float) -> None:
    W, b = _tiny_model(n, seed=n)
    ex = exact_loss_from_weights(W, b, p)
    en, en_err = enumeration_loss_from_weights(W, b, p, return_error=True)
    # enumeration is exact up to rounding in its 3^(n-1) alternating terms (its own bound en_err,
    # up to 1e-11 at n = 10, p = 0.9); the inversion claims row_error; the two bounds must cover the gap
    assert np.all(np.abs(ex.row_loss - en) <= ex.row_error + en_err)
    assert ex.error < 1e-10


@pytest.mark.parametrize("p", [1e-12, 1e-6, 1e-3])
def test_exact_equals_enumeration_at_high_sparsity(p: float) -> None:
    # p n << 1: the loss is dominated by the exactly-subtracted atom and single-feature parts; the
    # small-n remainder is formed without cancellation. Claimed bounds must cover the gap, and the
    # value must be right to 1e-3 relative (observed: 1e-9 at p = 1e-12, 2e-4 at 1e-6, 1e-13 at 1e-3)
    W, b = _tiny_model(6, seed=0)
    # the error estimate exceeds tol = 1e-11 here (AccuracyWarning); this test checks that estimate
    ex = exact_loss_from_weights(W, b, p, on_inaccurate="ignore")
    en, en_err = enumeration_loss_from_weights(W, b, p, return_error=True)
    assert np.all(np.abs(ex.row_loss - en) <= ex.row_error + en_err)
    np.testing.assert_allclose(ex.row_loss, en, rtol=1e-3)


def test_enumeration_single_feature_by_quadrature() -> None:
    # n = 2: nu = W_01 (x_1 - p/2); the enumeration against a direct scipy integral over x_1
    p = 0.3
    W = np.array([[1.1, -0.7], [0.4, 0.9]])
    b = np.array([-0.2, 0.1])
    en = enumeration_loss_from_weights(W, b, p)
    rp = row_parameters(W, b, p)
    a, c, off = rp.a, rp.effective_bias, rp.off
    for i in range(2):
        def profile(t: float, i: int = i) -> float:
            return interference_error_profile(off[i, 0] * (t - p / 2), a[i], c[i], p)

        cont, _ = integrate.quad(profile, 0, 1, epsabs=1e-14, epsrel=1e-13, limit=200)
        want = (1 - p) * interference_error_profile(-off[i, 0] * p / 2, a[i], c[i], p) + p * cont
        assert en[i] == pytest.approx(want, rel=1e-11)


# --- exact loss against Monte Carlo ----------------------------------------------------------


@pytest.mark.parametrize("n,p,spikes", [(24, 0.2, 0.0), (64, 0.045, 0.7)])
def test_exact_matches_monte_carlo(n: int, p: float, spikes: float) -> None:
    W, b = _projection_model(n, 0.25, 1.3, seed=11, p=p, spikes=spikes)
    ex = exact_loss_from_weights(W, b, p, tol=1e-9)  # 1e-9 << MC SE (~1e-5)
    est = model_loss_monte_carlo(W, None, b, p, n_samples=200_000, seed=5)
    mean, se, loss_se = est.row_mean, est.row_se, est.se
    # 3 standard errors on the total; per row, 4 SE (n rows tested at once: 4 SE keeps the family-wise
    # false-alarm rate below 1e-3 for n <= 64)
    assert abs(mean.mean() - ex.loss) <= 3.0 * loss_se
    assert np.all(np.abs(mean - ex.row_loss) <= 4.0 * se)


def test_hybrid_equals_direct_inversion() -> None:
    # n = 120 > 48 uses the series/exact split; the direct product route must give the same rows
    p = 0.045
    W, b = _projection_model(120, 0.25, 1.3, seed=2, p=p, spikes=0.6)
    ex = exact_loss_from_weights(W, b, p, tol=1e-9)
    rp = row_parameters(W, b, p)
    a, c, off = rp.a, rp.effective_bias, rp.off
    rows = slice(0, 12)
    direct = invert_rows(off[rows], a[rows], c[rows], p, 1e-9, True, 1 << 15)
    assert np.all(np.abs(direct[0] - ex.row_loss[rows]) <= ex.row_error[rows] + direct[1])


def test_zero_interference_rows_and_factors() -> None:
    # a diagonal W: nu = 0 exactly, the loss is the deterministic profile at 0
    p = 0.3
    W = np.diag([1.0, 0.5, 2.0])
    b = np.array([0.0, -0.1, 0.2])
    ex = exact_loss_from_weights(W, b, p)
    want = [float(symmetric_loss(W[i, i], b[i], 0.0, p)) for i in range(3)]
    np.testing.assert_allclose(ex.row_loss, want, rtol=1e-12)
    rng = np.random.default_rng(0)
    W_in, W_out = rng.normal(size=(3, 7)), rng.normal(size=(7, 3)) * 0.3
    b7 = rng.normal(size=7) * 0.1
    # factors: the exact loss of y = ReLU(W_out (W_in x) + b) against a Monte Carlo of the two-layer model
    # itself (which never forms W_out @ W_in, so a transposed or swapped product would show): 4 standard errors
    ex7 = exact_loss_from_factors(W_in, W_out, b7, p)
    mc = model_loss_monte_carlo(W_in, W_out, b7, p, n_samples=200_000, seed=1)
    assert abs(mc.mean - ex7.loss) <= 4 * mc.se, (mc.mean, mc.se, ex7.loss)


def test_single_row_equals_matrix_rows() -> None:
    p = 0.1
    W, b = _tiny_model(7, seed=3)
    ex = exact_loss_from_weights(W, b, p)
    for i in (0, 4):
        val, err = exact_loss_of_row(W[i], i, b[i], p)
        assert abs(val - ex.row_loss[i]) <= err + ex.row_error[i]


# --- Edgeworth --------------------------------------------------------------------------------


def test_gaussian_step_matches_quadrature_at_row_moments() -> None:
    """The Gaussian term of the Edgeworth expansion: the mean over rows of L(a_i, c_i, σ_i; p), with the
    row moments computed here from their definitions (a_i = W_ii, c_i = b_i + (p/2) Σ_{j≠i} W_ij,
    σ_i² = v Σ_{j≠i} W_ij², v = p/3 − p²/4) and L by scipy quadrature, not the closed form."""
    p = 0.045
    W, b = _projection_model(96, 0.25, 1.3, seed=4, p=p, spikes=0.5)
    ed = edgeworth_loss_from_weights(W, b, p)
    off = W - np.diag(np.diag(W))
    a, c = np.diag(W), b + 0.5 * p * off.sum(axis=1)
    sigma = np.sqrt((p / 3 - p * p / 4) * (off**2).sum(axis=1))
    rows = np.array([symmetric_loss_quad(a[i], c[i], sigma[i], p) for i in range(W.shape[0])])
    # quad runs at epsrel 1e-11 on a smooth integrand; 1e-9 as in tests/test_symmetric.py
    np.testing.assert_allclose(ed.row_gaussian, rows, rtol=1e-9)
    assert ed.gaussian == pytest.approx(rows.mean(), rel=1e-9)


def test_cumulants_against_sampling() -> None:
    p = 0.2
    W, _ = _tiny_model(5, seed=1)
    cum = interference_cumulants(W, p)
    rng = np.random.default_rng(7)
    N = 400_000
    x = (rng.random((N, 5)) < p) * rng.random((N, 5))
    off = W - np.diag(np.diag(W))
    nu = (x - p / 2) @ off.T
    # k-statistics' standard errors at N = 4e5: var ~ 1e-3 relative, kappa3 ~ 1e-2, kappa4 ~ 3e-2; 5 SE-ish bounds
    np.testing.assert_allclose(nu.var(axis=0), cum.variance, rtol=1e-2)
    k3 = ((nu - nu.mean(0)) ** 3).mean(0)
    np.testing.assert_allclose(k3, cum.kappa3, rtol=0.08, atol=2e-4)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_c_derivatives_against_finite_differences(k: int) -> None:
    a, c, s, p = 1.3, -0.45, 0.27, 0.045
    h = 0.02
    xs = np.linspace(-6, 6, 25) * h
    coef = np.polyfit(xs, symmetric_loss(a, c + xs, s, p), 12)
    fd = coef[::-1][k] * math.factorial(k)
    # degree-12 fit over +-0.12 (sigma = 0.27): truncation ~ (0.12/0.27)^(13-k) relative; 1e-4 is safe
    assert gaussian_loss_c_derivative(k, a, c, s, p) == pytest.approx(fd, rel=1e-4)
    # the small-a expansion joins the closed form at |a| = 1e-2 sigma: across the switch the value
    # moves by the true change over da = 2e-4 sigma (~1e-4 relative) plus the two routes' errors
    lo = gaussian_loss_c_derivative(k, 0.998e-2 * s, c, s, p)  # expansion
    mid = gaussian_loss_c_derivative(k, 0.999e-2 * s, c, s, p)  # expansion
    hi = gaussian_loss_c_derivative(k, 1.000e-2 * s, c, s, p)  # closed form
    assert hi - mid == pytest.approx(mid - lo, rel=1e-2)


def test_edgeworth_approaches_gaussian_and_exact_as_n_grows() -> None:
    # random projections at fixed (p, r): corrections shrink like 1/n (kurtosis ~ 1/n), and the
    # Edgeworth step removes most of the Gaussian error against the exact loss
    p = 0.045
    rel_corr, gain = [], []
    for n in (128, 512):
        W, b = _projection_model(n, 0.25, 1.3, seed=n, p=p)
        ed = edgeworth_loss_from_weights(W, b, p)
        ex = exact_loss_from_weights(W, b, p, tol=1e-9)
        rel_corr.append(abs(ed.edgeworth - ed.gaussian) / ed.gaussian)
        gain.append(abs(ed.edgeworth - ex.loss) / abs(ed.gaussian - ex.loss))
    assert rel_corr[1] < 0.5 * rel_corr[0]  # 1/n scaling would give 0.25
    assert max(gain) < 0.2  # Edgeworth closes > 80% of the Gaussian error on these weights


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "W,b,p,match",
    [
        (np.ones((3, 2)), np.zeros(3), 0.1, "square"),
        (np.ones((3, 3)), np.zeros(2), 0.1, "b must have shape"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.zeros(2), 0.1, "W must be finite"),
        (np.eye(2), np.array([0.0, np.inf]), 0.1, "b must be finite"),
        (np.eye(2), np.zeros(2), 0.0, r"p must be in \(0, 1\]"),
        (np.eye(2), np.zeros(2), 1.5, r"p must be in \(0, 1\]"),
    ],
)
def test_bad_input(W: np.ndarray, b: np.ndarray, p: float, match: str) -> None:
    for fn in (exact_loss_from_weights, edgeworth_loss_from_weights, enumeration_loss_from_weights):
        with pytest.raises(ValueError, match=match):
            fn(W, b, p)
    with pytest.raises(ValueError, match="tol"):
        exact_loss_from_weights(np.eye(2), np.zeros(2), 0.1, tol=-1.0)
    with pytest.raises(ValueError, match="transposed"):
        exact_loss_from_factors(np.ones((2, 3)), np.ones((2, 3)), np.zeros(3), 0.1)


# ---- issue 11 item 2: a result whose error estimate exceeds the requested tol says so ----------
def _gauss(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)


@pytest.mark.parametrize(
    "scale,p", [(100.0, 0.045), (1.0, 1e-4)], ids=["W_x100", "p_1e-4"]
)
def test_inaccurate_result_warns_with_estimate_and_tol(scale, p):
    # Reproductions of issue 11: W x 100 (error estimate ~1e6) and p = 1e-4 (~1e-3) at tol 1e-11.
    import rugtheory
    from rugtheory import AccuracyWarning

    assert "AccuracyWarning" in rugtheory.__all__
    n = 16
    with pytest.warns(AccuracyWarning, match=r"estimated error \S+ exceeds the requested tol 1e-11"):
        res = exact_loss_from_weights(scale * _gauss(n), np.zeros(n), p, max_nodes=4096)
    assert res.error > 1e-11
    with pytest.raises(ValueError, match="exceeds the requested tol"):
        exact_loss_from_weights(scale * _gauss(n), np.zeros(n), p, max_nodes=4096, on_inaccurate="raise")
    quiet = exact_loss_from_weights(scale * _gauss(n), np.zeros(n), p, max_nodes=4096, on_inaccurate="ignore")
    assert quiet.loss == res.loss  # the same value either way; only the report differs


def test_accurate_result_does_not_warn():
    import warnings

    from rugtheory import AccuracyWarning

    n = 16
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)
        res = exact_loss_from_weights(_gauss(n), np.zeros(n), 0.045, max_nodes=4096)
    assert res.error <= 1e-11


@pytest.mark.parametrize("bad", ["loud", None, 1, "WARN"])
def test_on_inaccurate_is_validated(bad):
    with pytest.raises(ValueError, match=r"^on_inaccurate must be one of 'warn', 'raise', 'ignore', got "):
        exact_loss_from_weights(np.eye(4), np.zeros(4), 0.1, on_inaccurate=bad)
