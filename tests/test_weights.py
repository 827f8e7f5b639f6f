"""Prediction from weights: statistics against sampling, and the loss against a Monte Carlo of the model."""

import numpy as np
import pytest

from rugtheory import effective_matrix, predicted_loss_from_weights, sample_interference, weight_statistics
from rugtheory.twins.quadrature import symmetric_loss_quad


def _random_model(n=128, m=32, seed=0):
    rng = np.random.default_rng(seed)
    W_in = rng.normal(size=(m, n)) / np.sqrt(m)
    W_out = W_in.T.copy()
    b = rng.normal(scale=0.05, size=n) - 0.2
    return W_in, W_out, b


def test_statistics_match_sampled_interference():
    W_in, W_out, b = _random_model()
    W = effective_matrix(W_in, W_out)
    p = 0.1
    st = weight_statistics(W, b, p, sampled_rows=[0, 5, 77], n_samples=20_000, seed=3)
    nu = sample_interference(W, p, [0, 5, 77], 20_000, seed=4)
    for j, i in enumerate([0, 5, 77]):
        sd = nu[:, j].std()
        # mean of nu is 0 by construction; SE = sigma/sqrt(N): 5 SE.
        assert abs(nu[:, j].mean()) < 5 * st.sigma[i] / np.sqrt(20_000)
        # sample std within 3% (SE of a std with excess kurtosis < 1 is < 1% at N = 2e4).
        assert sd == pytest.approx(st.sigma[i], rel=0.03)
        z = (nu[:, j] - nu[:, j].mean()) / sd
        # exact skewness/kurtosis from cumulants vs sample: SE ~ sqrt(6/N) = 0.017 and sqrt(24/N) = 0.035.
        assert (z**3).mean() == pytest.approx(st.skewness[i], abs=5 * 0.017 * (1 + abs(st.excess_kurtosis[i])))
        assert (z**4).mean() - 3 == pytest.approx(st.excess_kurtosis[i], abs=0.3)
    mu = (p / 2) * (W.sum(axis=1) - np.diag(W))
    np.testing.assert_allclose(st.effective_bias, b + mu, rtol=1e-13)
    # the prediction by a second route: scipy quadrature of L(a_i, c_i, σ_i; p) at row moments computed here from
    # their definitions (a_i = W_ii, c_i = b_i + μ_i, σ_i² = v Σ_{j≠i} W_ij², v = p/3 − p²/4); quad runs at
    # epsrel 1e-11, 1e-9 as in tests/test_symmetric.py
    off = W - np.diag(np.diag(W))
    sigma = np.sqrt((p / 3 - p * p / 4) * (off**2).sum(axis=1))
    quad = np.array([symmetric_loss_quad(W[i, i], b[i] + mu[i], sigma[i], p) for i in range(W.shape[0])])
    np.testing.assert_allclose(st.row_loss, quad, rtol=1e-9)
    assert st.summary()["predicted_loss"] == pytest.approx(quad.mean(), rel=1e-9)


def test_diagonal_model_prediction_is_exact():
    # No interference (W diagonal): the "Gaussian" prediction is exact, and must equal an independent
    # quadrature per row and a Monte Carlo of the full n-dimensional model.
    n, p = 16, 0.3
    a = np.linspace(0.5, 1.5, n)
    b = np.linspace(-0.3, 0.1, n)
    W = np.diag(a)
    pred = predicted_loss_from_weights(W, b, p)
    quad = np.mean([symmetric_loss_quad(a[i], b[i], 0.0, p) for i in range(n)])
    assert pred == pytest.approx(quad, rel=1e-10)
    rng = np.random.default_rng(11)
    x = (rng.random((200_000, n)) < p) * rng.random((200_000, n))
    err = ((np.maximum(x @ W.T + b, 0) - x) ** 2).mean(axis=1)
    assert abs(err.mean() - pred) < 4 * err.std() / np.sqrt(err.size)  # 4 SE


def test_interference_gaussian_limit_large_n_dense():
    # Dense data (p = 0.5) and spread weights (n = 1024): nu is close to Gaussian, so the prediction
    # from weights approaches a Monte Carlo of the real model. Finite-n error is O(skewness), ~1e-2 here.
    rng = np.random.default_rng(5)
    n, m, p = 1024, 256, 0.5
    Q, _ = np.linalg.qr(rng.normal(size=(n, m)))
    W = Q @ Q.T / (m / n)  # P/r: diagonal ~1, rank-bound equality on average
    b = np.full(n, -0.1)
    st = weight_statistics(W, b, p, sampled_rows=4, n_samples=4000, seed=0)
    assert st.lyapunov_ratio.max() < 0.2
    x = (rng.random((4000, n)) < p) * rng.random((4000, n))
    err = ((np.maximum(x @ W.T + b, 0) - x) ** 2).mean(axis=1)
    assert st.predicted_loss == pytest.approx(err.mean(), rel=0.03)


def test_symmetric_rows_have_zero_spread():
    # A circulant W: every row alike up to permutation, so spreads vanish.
    n = 64
    c = np.cos(2 * np.pi * np.arange(n) * 3 / n) * 0.1
    W = np.array([np.roll(c, i) for i in range(n)]) + np.eye(n) * 0.9
    st = weight_statistics(W, np.zeros(n), 0.05, sampled_rows=0)
    assert st.spread["a"] < 1e-14 and st.spread["sigma_squared"] < 1e-14 and st.spread["effective_bias"] < 1e-14
    assert np.ptp(st.row_loss) <= 1e-14 * st.row_loss[0]
    # and that common loss by quadrature at the circulant's moments, written down from c (a = 0.9 + c_0, the
    # mean shift (p/2) Σ_{j≠0} c_j, σ² = v Σ_{j≠0} c_j²): quad at epsrel 1e-11, 1e-9 as in tests/test_symmetric.py
    p = 0.05
    quad = symmetric_loss_quad(0.9 + c[0], 0.5 * p * c[1:].sum(), np.sqrt((p / 3 - p * p / 4) * (c[1:] ** 2).sum()), p)
    assert st.row_loss[0] == pytest.approx(quad, rel=1e-9)


@pytest.mark.parametrize(
    "W_in,W_out,match",
    [
        (np.ones((3, 5)), np.ones((3, 5)), r"W_out must have shape \(5, 3\)"),
        (np.ones(5), np.ones((5, 1)), "matrices"),
        (np.full((3, 5), np.nan), np.ones((5, 3)), "W_in must be finite"),
    ],
)
def test_bad_factors(W_in, W_out, match):
    with pytest.raises(ValueError, match=match):
        effective_matrix(W_in, W_out)


def test_bad_square_and_bias():
    with pytest.raises(ValueError, match="square"):
        predicted_loss_from_weights(np.ones((3, 4)), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        predicted_loss_from_weights(np.eye(3), np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="W must be finite"):
        weight_statistics(np.full((3, 3), np.inf), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        weight_statistics(np.eye(3), np.zeros(3), 2.0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        weight_statistics(np.eye(3), np.zeros(3), 0.1, seed=1.5)
