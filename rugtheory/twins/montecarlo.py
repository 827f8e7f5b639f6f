r"""Monte Carlo twins: simulate the model equation itself.

* :func:`symmetric_loss_mc`: draw :math:`x = BU`, :math:`Z \sim N(0,1)` and average
  :math:`(\mathrm{ReLU}(ax+b+\sigma Z)-x)^2`, the twin of the symmetric loss (docs/theory.md §3).
* :func:`model_loss_monte_carlo`: the one Monte Carlo of a whole model
  :math:`y = \mathrm{ReLU}(W_{out} W_{in} x + b)` (docs/theory.md §1), the twin of the exact
  finite-n loss (§7) and of every construction's loss (§8, §10).

Each returns the mean and its standard error; tests compare with the closed forms within k SE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import check_finite, check_int, check_nonnegative, check_probability, check_seed
from rugtheory.theory.data import sample_sparse_uniform
from rugtheory.theory.display import with_compact_repr

__all__ = ["MonteCarloEstimate", "ModelLossEstimate", "model_loss_monte_carlo", "symmetric_loss_mc"]


@with_compact_repr
@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo mean with its standard error and sample count."""

    mean: float
    se: float
    n_samples: int

    def z_score(self, exact: float) -> float:
        """(mean - exact) / se: how many standard errors the estimate is from ``exact``."""
        return (self.mean - exact) / self.se if self.se > 0 else (0.0 if self.mean == exact else np.inf)


def symmetric_loss_mc(
    a: float, b: float, sigma: float, p: float, *, n_samples: int, seed: int, chunk: int = 1_000_000
) -> MonteCarloEstimate:
    r"""Monte Carlo estimate of :math:`L(a,b,\sigma;p) = E(\mathrm{ReLU}(ax+b+\sigma Z)-x)^2`.

    The sample mean and its standard error :math:`\hat s/\sqrt{N}` (streamed in chunks, Welford-free
    two-moment accumulation in float64).
    """
    a = float(check_finite(a, "a"))
    b = float(check_finite(b, "b"))
    sigma = float(check_nonnegative(sigma, "sigma"))
    p = float(check_probability(p))
    n_samples = check_int(n_samples, "n_samples", low=2)
    rng = np.random.default_rng(check_seed(seed))
    total = total2 = 0.0
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        x = sample_sparse_uniform(rng, k, p)
        y = np.maximum(a * x + b + sigma * rng.standard_normal(k), 0.0)
        e = (y - x) ** 2
        total += float(e.sum())
        total2 += float((e * e).sum())
        done += k
    mean = total / n_samples
    var = max(total2 / n_samples - mean * mean, 0.0) * n_samples / (n_samples - 1)
    return MonteCarloEstimate(mean=mean, se=float(np.sqrt(var / n_samples)), n_samples=n_samples)


@with_compact_repr
@dataclass(frozen=True)
class ModelLossEstimate:
    """Monte Carlo loss of a whole model: per-row means and standard errors, and the total.

    ``mean`` is the loss per feature ``(1/n) E|y − x|²`` and ``se`` the standard error of the
    mean over independent samples of the per-sample loss (rows are correlated within a sample,
    so ``se`` is not computed from ``row_se``).
    """

    row_mean: np.ndarray
    row_se: np.ndarray
    mean: float
    se: float
    n_samples: int


def model_loss_monte_carlo(
    w_in: np.ndarray, w_out: np.ndarray | None, b: np.ndarray, p: float, *, n_samples: int, seed: int, chunk: int = 8192
) -> ModelLossEstimate:
    r"""Monte Carlo of :math:`\mathrm{ReLU}(W_{out} W_{in} x + b)` on the data of docs/theory.md §1.

    Parameters
    ----------
    w_in : numpy.ndarray
        ``(m, n)`` first layer, or the ``(n, n)`` effective matrix ``W = W_out W_in`` when
        ``w_out`` is None.
    w_out : numpy.ndarray or None
        ``(n, m)`` second layer (untied weights allowed), or None.
    b : numpy.ndarray
        ``(n,)`` output bias.
    p : float
        Feature probability in (0, 1].
    n_samples, seed : int
        Number of samples and the seed of ``numpy.random.default_rng`` (keyword-only).
    chunk : int
        Samples per streamed batch (memory ``~ 3 chunk n`` floats; the result does not depend on it).

    Returns
    -------
    ModelLossEstimate
    """
    w_in = np.asarray(check_finite(w_in, "w_in"), dtype=np.float64)
    if w_in.ndim != 2:
        raise ValueError(f"w_in must be a 2-d array, got shape {w_in.shape}")
    n = w_in.shape[1]
    if w_out is None:
        if w_in.shape != (n, n):
            raise ValueError(f"without w_out, w_in must be the square effective matrix, got shape {w_in.shape}")
    else:
        w_out = np.asarray(check_finite(w_out, "w_out"), dtype=np.float64)
        if w_out.shape != (n, w_in.shape[0]):
            raise ValueError(f"w_out must have shape {(n, w_in.shape[0])}, got {w_out.shape}")
    b = np.broadcast_to(np.asarray(check_finite(b, "b"), dtype=np.float64), (n,))
    p = float(check_probability(p))
    n_samples = check_int(n_samples, "n_samples", low=2)
    chunk = check_int(chunk, "chunk", low=1)
    rng = np.random.default_rng(check_seed(seed))
    s1 = np.zeros(n)
    s2 = np.zeros(n)
    t1 = t2 = 0.0
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        x = sample_sparse_uniform(rng, (k, n), p)
        z = x @ w_in.T if w_out is None else (x @ w_in.T) @ w_out.T
        e = (np.maximum(z + b, 0.0) - x) ** 2
        s1 += e.sum(axis=0)
        s2 += (e * e).sum(axis=0)
        per_sample = e.mean(axis=1)
        t1 += float(per_sample.sum())
        t2 += float((per_sample * per_sample).sum())
        done += k
    row_mean = s1 / n_samples
    row_var = np.maximum(s2 / n_samples - row_mean * row_mean, 0.0) * n_samples / (n_samples - 1)
    mean = t1 / n_samples
    var = max(t2 / n_samples - mean * mean, 0.0) * n_samples / (n_samples - 1)
    return ModelLossEstimate(row_mean=row_mean, row_se=np.sqrt(row_var / n_samples), mean=mean,
                             se=float(np.sqrt(var / n_samples)), n_samples=n_samples)
