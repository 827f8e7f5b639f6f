r"""Prediction from a model's own weights (docs/theory.md §2).

For :math:`W = W_{out}W_{in}` and bias b, output i sees
:math:`y_i = \mathrm{ReLU}(W_{ii}x_i + b_i + \mu_i + \nu_i)` with
:math:`\mu_i = (p/2)\sum_{j\ne i}W_{ij}` and
:math:`\nu_i = \sum_{j\ne i}\varepsilon_{ij}\xi_j`, :math:`\varepsilon = W - \mathrm{diag}(W)`,
:math:`\xi_j = x_j - p/2` (mean 0, variance v). Its exact cumulants are
:math:`\kappa_k(\nu_i) = \kappa_k(x)\sum_j \varepsilon_{ij}^k`; the Gaussian (Lyapunov CLT) step
replaces :math:`\nu_i` by :math:`N(0, \sigma_i^2)`, :math:`\sigma_i^2 = v\sum_j\varepsilon_{ij}^2`, and
predicts the loss as the row mean of :math:`L(W_{ii}, b_i+\mu_i, \sigma_i; p)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rugtheory.theory.checks import check_finite, check_int, check_probability, check_seed
from rugtheory.theory.data import sample_sparse_uniform
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.symmetric import data_moments, symmetric_loss

__all__ = [
    "RowParameters",
    "WeightStatistics",
    "row_parameters",
    "effective_matrix",
    "weight_statistics",
    "predicted_loss_from_weights",
    "sample_interference",
]


def _check_square(W: np.ndarray, name: str = "W") -> np.ndarray:
    W = check_finite(W, name)
    if W.ndim != 2 or W.shape[0] != W.shape[1] or W.shape[0] < 2:
        raise ValueError(f"{name} must be a square n x n matrix with n >= 2, got shape {W.shape}")
    return W


def _check_bias(b: np.ndarray, n: int) -> np.ndarray:
    b = check_finite(b, "b")
    if b.shape != (n,):
        raise ValueError(f"b must have shape ({n},) to match W, got shape {b.shape}")
    return b


def effective_matrix(W_in: np.ndarray, W_out: np.ndarray) -> np.ndarray:
    """:math:`W = W_{out} W_{in}` with shape checks: ``W_in`` is m x n, ``W_out`` is n x m."""
    W_in = check_finite(W_in, "W_in")
    W_out = check_finite(W_out, "W_out")
    if W_in.ndim != 2 or W_out.ndim != 2:
        raise ValueError(f"W_in and W_out must be matrices, got shapes {W_in.shape} and {W_out.shape}")
    m, n = W_in.shape
    if W_out.shape != (n, m):
        raise ValueError(
            f"W_out must have shape ({n}, {m}) (n x m) to match W_in of shape ({m}, {n}), got {W_out.shape}"
        )
    return W_out @ W_in


@with_compact_repr
@dataclass(frozen=True)
class RowParameters:
    """The per-row inputs of the theory for an effective matrix W and bias b (docs/theory.md §2).

    ``a`` = W_ii; ``off`` the ``(n, n−1)`` off-diagonal entries of each row; ``mean_field``
    μ_i = (p/2) Σ_{j≠i} W_ij; ``effective_bias`` c_i = b_i + μ_i; ``sum_sq`` Σ_{j≠i} W_ij²;
    ``sigma`` σ_i = (v Σ_{j≠i} W_ij²)^½ with v = Var x = p/3 − p²/4.
    """

    a: np.ndarray
    off: np.ndarray
    mean_field: np.ndarray
    effective_bias: np.ndarray
    sum_sq: np.ndarray
    sigma: np.ndarray


def row_parameters(W: np.ndarray, b: np.ndarray, p: float) -> RowParameters:
    r"""Split each pre-activation as in docs/theory.md §2: :math:`h_i = a_i x_i + c_i + \nu_i`.

    Parameters
    ----------
    W : numpy.ndarray
        Effective ``n × n`` matrix ``W_out W_in``.
    b : numpy.ndarray
        Bias, shape ``(n,)``.
    p : float
        Feature probability in (0, 1].

    Returns
    -------
    RowParameters
        ``a_i = W_ii``, ``c_i = b_i + (p/2) Σ_{j≠i} W_ij``, the off-diagonal entries, and
        ``σ_i² = v Σ_{j≠i} W_ij²``. The one place in the package where these are computed.
    """
    W = _check_square(W)
    n = W.shape[0]
    b = _check_bias(b, n)
    p = float(check_probability(p))
    a = np.diag(W).copy()
    # the off-diagonal entries row by row (a strided copy: the same values as W[~eye], without the n x n mask)
    off = np.ascontiguousarray(W).reshape(-1)[1:].reshape(n - 1, n + 1)[:, :n].reshape(n, n - 1)  # n >= 2
    mu = 0.5 * p * off.sum(axis=1)
    s2 = np.sum(off * off, axis=1)
    v = float(data_moments(p).variance)
    return RowParameters(a=a, off=off, mean_field=mu, effective_bias=b + mu, sum_sq=s2, sigma=np.sqrt(v * s2))


def _third_abs_moment(p: float) -> float:
    r""":math:`E|x - p/2|^3 = (1-p)(p/2)^3 + p((p/2)^4 + (1-p/2)^4)/4`."""
    m = p / 2.0
    return (1.0 - p) * m**3 + p * (m**4 + (1.0 - m) ** 4) / 4.0


@with_compact_repr
@dataclass(frozen=True)
class WeightStatistics:
    """Per-row statistics of a model's weights and the symmetry diagnostics of docs/theory.md §2.

    Per row i (arrays of length n): ``a`` = W_ii, ``mean_field`` = μ_i, ``effective_bias`` = b_i + μ_i,
    ``sigma`` = σ_i, ``skewness`` and ``excess_kurtosis`` of ν_i (exact, from cumulants),
    ``lyapunov_ratio`` = Σ_j E|ε_ij ξ_j|³ / σ_i³ (→ 0 is the Lyapunov CLT condition),
    ``max_weight_ratio`` = max_j |ε_ij| / (Σ_j ε_ij²)^½, ``row_loss`` = L(a_i, b_i + μ_i, σ_i; p).
    Sampled rows (``sampled_rows``): ``ks_pvalue`` of ν_i against N(0, σ_i²), and the sample mean,
    skewness and excess kurtosis of ν_i. ``spread`` holds the standard deviation over rows of
    ``a``, ``effective_bias``, ``sigma_squared``, and of the sampled mean of ν.
    """

    p: float
    a: np.ndarray
    mean_field: np.ndarray
    effective_bias: np.ndarray
    sigma: np.ndarray
    skewness: np.ndarray
    excess_kurtosis: np.ndarray
    lyapunov_ratio: np.ndarray
    max_weight_ratio: np.ndarray
    row_loss: np.ndarray
    sampled_rows: np.ndarray
    ks_pvalue: np.ndarray
    sampled_mean: np.ndarray
    sampled_skewness: np.ndarray
    sampled_excess_kurtosis: np.ndarray
    n_samples: int
    spread: dict[str, float] = field(default_factory=dict)

    @property
    def predicted_loss(self) -> float:
        """Gaussian prediction: mean over rows of L(a_i, b_i + μ_i, σ_i; p)."""
        return float(np.mean(self.row_loss))

    def summary(self) -> dict[str, float]:
        """Scalars a table or database row wants (means and spreads over rows)."""
        out = {
            "predicted_loss": self.predicted_loss,
            "a_mean": float(np.mean(self.a)),
            "effective_bias_mean": float(np.mean(self.effective_bias)),
            "sigma_mean": float(np.mean(self.sigma)),
            "skewness_mean": float(np.mean(self.skewness)),
            "excess_kurtosis_mean": float(np.mean(self.excess_kurtosis)),
            "lyapunov_ratio_mean": float(np.mean(self.lyapunov_ratio)),
            "lyapunov_ratio_max": float(np.max(self.lyapunov_ratio)),
            "max_weight_ratio_mean": float(np.mean(self.max_weight_ratio)),
            "ks_pvalue_median": float(np.median(self.ks_pvalue)) if self.ks_pvalue.size else float("nan"),
            "ks_pvalue_min": float(np.min(self.ks_pvalue)) if self.ks_pvalue.size else float("nan"),
        }
        out.update({f"spread_{k}": v for k, v in self.spread.items()})
        return out


def sample_interference(
    W: np.ndarray, p: float, rows: Sequence[int], n_samples: int, *, seed: int, chunk: int = 2048
) -> np.ndarray:
    r"""Draw ``n_samples`` of :math:`\nu_i` for the given rows, shape (n_samples, len(rows)).

    Fresh data :math:`x = BU` each sample; :math:`\nu_i = \sum_{j\ne i}W_{ij}(x_j - p/2)`.
    """
    W = _check_square(W)
    p = float(check_probability(p))
    n = W.shape[0]
    seed = check_seed(seed)
    n_samples = check_int(n_samples, "n_samples", low=1)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"rows must be a non-empty list of indices in [0, {n - 1}]")
    eps = W[rows].copy()
    eps[np.arange(rows.size), rows] = 0.0
    rng = np.random.default_rng(seed)
    out = np.empty((n_samples, rows.size))
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        x = sample_sparse_uniform(rng, (k, n), p)
        out[start : start + k] = (x - p / 2.0) @ eps.T
    return out


def weight_statistics(
    W: np.ndarray,
    b: np.ndarray,
    p: float,
    *,
    sampled_rows: Sequence[int] | int = 8,
    n_samples: int = 4096,
    seed: int = 0,
) -> WeightStatistics:
    r"""Per-row theory inputs and symmetry diagnostics of a model with effective matrix W and bias b.

    Parameters
    ----------
    W : (n, n) array
        Effective matrix :math:`W_{out}W_{in}` (see :func:`effective_matrix`).
    b : (n,) array
        Output bias.
    p : float
        Feature probability in (0, 1].
    sampled_rows : int or sequence of int
        Rows whose :math:`\nu_i` is sampled for the KS test (an int k picks min(k, n) rows evenly spaced).
    n_samples : int
        Samples of ν per sampled row.
    seed : int
        Seed of the sampler (keyword-only).
    """
    W = _check_square(W)
    n = W.shape[0]
    b = _check_bias(b, n)
    p = float(check_probability(p))
    seed = check_seed(seed)
    from scipy import stats

    mom = data_moments(p)
    v, k3, k4 = float(mom.variance), float(mom.kappa3), float(mom.kappa4)
    rp = row_parameters(W, b, p)
    a, eps, mu, sigma, s2 = rp.a, rp.off, rp.mean_field, rp.sigma, rp.sum_sq
    e3 = (eps**3).sum(axis=1)
    e4 = (eps**4).sum(axis=1)
    abs3 = (np.abs(eps) ** 3).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(s2 > 0, k3 * e3 / (v * s2) ** 1.5, 0.0)
        kurt = np.where(s2 > 0, k4 * e4 / (v * s2) ** 2, 0.0)
        lyap = np.where(s2 > 0, _third_abs_moment(p) * abs3 / (v * s2) ** 1.5, 0.0)
        maxr = np.where(s2 > 0, np.abs(eps).max(axis=1) / np.sqrt(s2), 0.0)
    c = b + mu
    row_loss = symmetric_loss(a, c, sigma, p)
    if isinstance(sampled_rows, (int, np.integer)):
        k = min(check_int(int(sampled_rows), "sampled_rows", low=0), n)
        rows = np.unique(np.linspace(0, n - 1, k).round().astype(np.int64)) if k else np.zeros(0, np.int64)
    else:
        rows = np.asarray(sampled_rows, dtype=np.int64)
    if rows.size:
        nu = sample_interference(W, p, rows, n_samples, seed=seed)
        ks = np.array(
            [
                stats.kstest(nu[:, j], "norm", args=(0.0, sigma[r])).pvalue if sigma[r] > 0 else 0.0
                for j, r in enumerate(rows)
            ]
        )
        smean = nu.mean(axis=0)
        sd = nu.std(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (nu - smean) / np.where(sd > 0, sd, 1.0)
        sskew = (z**3).mean(axis=0)
        skurt = (z**4).mean(axis=0) - 3.0
    else:
        ks = smean = sskew = skurt = np.zeros(0)
    spread = {
        "a": float(np.std(a)),
        "effective_bias": float(np.std(c)),
        "sigma_squared": float(np.std(sigma**2)),
        "sampled_nu_mean": float(np.std(smean)) if rows.size else float("nan"),
    }
    return WeightStatistics(
        p=p, a=a, mean_field=mu, effective_bias=c, sigma=sigma, skewness=skew, excess_kurtosis=kurt,
        lyapunov_ratio=lyap, max_weight_ratio=maxr, row_loss=row_loss, sampled_rows=rows, ks_pvalue=ks,
        sampled_mean=smean, sampled_skewness=sskew, sampled_excess_kurtosis=skurt, n_samples=int(n_samples),
        spread=spread,
    )


def predicted_loss_from_weights(W: np.ndarray, b: np.ndarray, p: float) -> float:
    r"""Gaussian prediction of the per-feature loss from weights (docs/theory.md §2):
    :math:`\frac1n\sum_i L(W_{ii}, b_i+\mu_i, \sigma_i; p)`."""
    W = _check_square(W)
    b = _check_bias(b, W.shape[0])
    p = float(check_probability(p))
    rp = row_parameters(W, b, p)
    return float(np.mean(symmetric_loss(rp.a, rp.effective_bias, rp.sigma, p)))
