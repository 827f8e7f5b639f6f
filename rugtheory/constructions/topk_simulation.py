"""TopK over features on Persian-rug weights, and its large-n threshold equivalent (docs/theory.md §5, §8).

TopK is a filtering operation, not an elementwise one: for each sample it keeps the k largest
pre-activations ``h_i = c (W x)_i + d`` and zeroes the rest. On a Persian rug (``W = P/r``,
``W_ii = 1``, ``Σ_{j≠i} W_ij² = 1/r − 1``) every ``(W x)_i = x_i + ν_i + μ`` sees the channel of
docs/theory.md §5 with ``s² = v(1/r − 1)`` and a constant shift μ. As n → ∞ the k-th largest value of a
sample converges to the ``1 − k/n`` quantile of that law, so TopK becomes the JumpReLU with gain
and shift at a fixed threshold (:func:`rugtheory.theory.decoders.topk_large_n_optimum`). This module
simulates the real n-dimensional model to measure how fast that limit is reached.

Method: draw ``x``, apply the rug by the fast transform, keep the top k of each sample
(``numpy.argpartition``), fit ``(c, d)`` by least squares on a training half and report the loss
on the held-out half with its standard error (per-sample losses are independent); k is chosen on
the training half from a grid around ``n · P(y > θ*)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.checks import check_int, check_probability, check_seed
from rugtheory.theory.display import with_compact_repr

__all__ = ["TopKSimulation", "topk_rug_loss"]


@with_compact_repr
@dataclass(frozen=True)
class TopKSimulation:
    """Held-out per-feature loss of TopK on a rug, with the large-n prediction.

    Attributes
    ----------
    loss, stderr : held-out mean per-feature loss and its standard error.
    k : the k chosen on the training half.
    gain, shift : fitted ``c, d``.
    large_n_loss : JumpReLU (gain + shift) optimum on the channel (n → ∞).
    large_n_k : ``n · P(y > θ*)`` at that optimum.
    n, m, p, n_samples : the setting.
    """

    loss: float
    stderr: float
    k: int
    gain: float
    shift: float
    large_n_loss: float
    large_n_k: float
    n: int
    m: int
    p: float
    n_samples: int


def _fit_and_loss(x: np.ndarray, h: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """LS fit of ``x ≈ (c h + d)`` on kept entries; returns (c, d, mean per-feature loss)."""
    hk = h[mask]
    xk = x[mask]
    A = np.stack([hk, np.ones_like(hk)], axis=1)
    coef, *_ = np.linalg.lstsq(A, xk, rcond=None)
    c, d = float(coef[0]), float(coef[1])
    n = x.shape[1]
    err = np.sum(x * x) - np.sum(xk * xk) + np.sum((xk - c * hk - d) ** 2)
    return c, d, float(err / (x.shape[0] * n))


def _topk_mask(h: np.ndarray, k: int) -> np.ndarray:
    idx = np.argpartition(h, h.shape[1] - k, axis=1)[:, h.shape[1] - k :]
    mask = np.zeros(h.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def topk_rug_loss(p: float, n: int, m: int, *, n_samples: int, seed: int, n_k: int = 9) -> TopKSimulation:
    """Simulate TopK on a random-row Hadamard Persian rug of size (n, m) at feature probability p.

    Parameters
    ----------
    p : float
        Feature probability in (0, 1].
    n, m : int
        Features (a power of two) and hidden units, ``1 <= m < n``.
    n_samples : int
        Samples; half train (k, c, d), half held out (loss).
    seed : int
        Seeds the rug's rows and the data.
    n_k : int
        Number of k values tried, spread over ``[0.5, 1.6] × n P(y > θ*)``.
    """
    from scipy import special

    from rugtheory.constructions.persian_rug import persian_rug
    from rugtheory.theory.decoders import topk_large_n_optimum

    p = float(check_probability(p))
    n = check_int(n, "n", low=2)
    m = check_int(m, "m", low=1, high=n - 1)
    n_samples = check_int(n_samples, "n_samples", low=4)
    seed = check_seed(seed)
    n_k = check_int(n_k, "n_k", low=1)
    r = m / n
    opt = topk_large_n_optimum(p, r)
    theta, s = float(opt.threshold), float(opt.s)
    # P(y > θ) on the channel: off part (1−p) Q(θ/s) plus on part p ∫ Q((θ−u)/s) du
    uu = (np.arange(2000) + 0.5) / 2000
    kept = (1 - p) * special.ndtr(-theta / s) + p * np.mean(special.ndtr((uu - theta) / s))
    k_star = n * kept
    rug = persian_rug(n, m, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = np.where(rng.random((n_samples, n)) < p, rng.random((n_samples, n)), 0.0)
    h = rug.apply(x)
    half = n_samples // 2
    ks = np.unique(np.clip(np.round(np.linspace(0.5, 1.6, n_k) * k_star).astype(int), 1, n))
    best = None
    for k in ks:
        c, d, train = _fit_and_loss(x[:half], h[:half], _topk_mask(h[:half], int(k)))
        if best is None or train < best[0]:
            best = (train, int(k), c, d)
    _, k, c, d = best
    xt, ht = x[half:], h[half:]
    out = np.where(_topk_mask(ht, k), c * ht + d, 0.0)
    per_sample = np.mean((xt - out) ** 2, axis=1)
    return TopKSimulation(
        loss=float(per_sample.mean()),
        stderr=float(per_sample.std(ddof=1) / np.sqrt(per_sample.size)),
        k=k,
        gain=c,
        shift=d,
        large_n_loss=float(opt.loss),
        large_n_k=float(k_star),
        n=n,
        m=m,
        p=p,
        n_samples=n_samples,
    )
