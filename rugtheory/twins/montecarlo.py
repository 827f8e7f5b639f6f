r"""Monte Carlo twins of the symmetric theory (docs/theory.md §3): simulate the model equation itself.

Draw :math:`x = BU`, :math:`Z \sim N(0,1)` and average :math:`(\mathrm{ReLU}(ax+b+\sigma Z)-x)^2`.
Returns the mean and its standard error; tests compare with the closed form within k SE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import check_finite, check_int, check_nonnegative, check_probability, check_seed

__all__ = ["MonteCarloEstimate", "symmetric_loss_mc"]


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
        x = (rng.random(k) < p) * rng.random(k)
        y = np.maximum(a * x + b + sigma * rng.standard_normal(k), 0.0)
        e = (y - x) ** 2
        total += float(e.sum())
        total2 += float((e * e).sum())
        done += k
    mean = total / n_samples
    var = max(total2 / n_samples - mean * mean, 0.0) * n_samples / (n_samples - 1)
    return MonteCarloEstimate(mean=mean, se=float(np.sqrt(var / n_samples)), n_samples=n_samples)
