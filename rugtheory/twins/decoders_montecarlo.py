"""Monte Carlo twins of :mod:`rugtheory.theory.decoders` (docs/theory.md §5), stratified over on/off.

``E[(x − f(y))²] = (1 − p) E[f(sZ)²] + p E[(U − f(U + sZ))²]``: each component is sampled on
its own, so the standard error stays relative to the loss even at p = 1e−12 (plain sampling
would see no active feature at all). False positives of a sparse decoder are rare events
(``Z > θ/s ≈ 7``), so the off component is sampled by exponential tilting: ``Z' ~ N(μ, 1)``
with weight ``φ(Z')/φ(Z' − μ) = exp(−μ Z' + μ²/2)``, μ at the decoder's threshold (the Bayes
threshold for the MMSE). Seeds are explicit keyword-only arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.channel import channel_generator, posterior_mean
from rugtheory.theory.checks import check_int
from rugtheory.theory.display import with_compact_repr

__all__ = ["MonteCarloLoss", "decoder_loss_montecarlo", "decoder_output"]


@with_compact_repr
@dataclass(frozen=True)
class MonteCarloLoss:
    """Stratified Monte Carlo estimate: ``mean ± stderr`` (one standard error)."""

    mean: float
    stderr: float
    n_samples: int


def decoder_output(
    decoder: str,
    y: np.ndarray,
    *,
    gain: float = 1.0,
    shift: float = 0.0,
    threshold: float = 0.0,
    p: float | None = None,
    s: float | None = None,
) -> np.ndarray:
    """``f(y)`` of a decoder with explicit parameters.

    ``relu``: ``gain (y − threshold)_+``; ``jumprelu``: ``(gain y + shift) 1[y > threshold]``;
    ``linear``: ``gain y + shift``; ``zero``: 0; ``mmse``: ``E[x | y]`` (needs ``p`` and ``s``).
    """
    y = np.asarray(y, dtype=np.float64)
    if decoder == "relu":
        return gain * np.maximum(y - threshold, 0.0)
    if decoder == "jumprelu":
        return np.where(y > threshold, gain * y + shift, 0.0)
    if decoder == "linear":
        return gain * y + shift
    if decoder == "zero":
        return np.zeros_like(y)
    if decoder == "mmse":
        if p is None or s is None:
            raise ValueError("p and s are required for decoder 'mmse'")
        return posterior_mean(y, p, s)
    raise ValueError(f"decoder must be one of 'relu', 'jumprelu', 'linear', 'zero', 'mmse', got {decoder!r}")


def decoder_loss_montecarlo(
    decoder: str,
    p: float,
    r: float,
    *,
    n_samples: int,
    seed: int,
    gain: float = 1.0,
    shift: float = 0.0,
    threshold: float = 0.0,
    off_tilt: float | None = None,
) -> MonteCarloLoss:
    """Stratified Monte Carlo of ``E[(x − f(y))²]`` on the channel, ``n_samples`` per component.

    ``off_tilt`` is the mean μ of the proposal for the off component (default: ``θ/s`` for the
    thresholded decoders, the Bayes threshold for ``mmse``, 0 otherwise).
    """
    n_samples = check_int(n_samples, "n_samples", low=2)
    p, s, rng = channel_generator(p, r, seed=seed)
    kw = dict(gain=gain, shift=shift, threshold=threshold, p=p, s=s)
    if off_tilt is None:
        if decoder in ("relu", "jumprelu") and s > 0:
            off_tilt = max(0.0, threshold / s)
        elif decoder == "mmse":
            off_tilt = float(np.sqrt(max(0.0, 2.0 * np.log((1 - p) / (p * s * np.sqrt(2 * np.pi)))))) if p < 1 else 0.0
        else:
            off_tilt = 0.0
    mu = float(off_tilt)
    z_off = mu + rng.standard_normal(n_samples)
    off = decoder_output(decoder, s * z_off, **kw) ** 2 * np.exp(-mu * z_off + 0.5 * mu * mu)
    u = rng.random(n_samples)
    z_on = rng.standard_normal(n_samples)
    on = (u - decoder_output(decoder, u + s * z_on, **kw)) ** 2
    mean = (1.0 - p) * off.mean() + p * on.mean()
    var = (1.0 - p) ** 2 * off.var(ddof=1) / n_samples + p**2 * on.var(ddof=1) / n_samples
    return MonteCarloLoss(mean=float(mean), stderr=float(np.sqrt(var)), n_samples=n_samples)
