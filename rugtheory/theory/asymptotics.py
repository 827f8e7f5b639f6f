"""Asymptotic series of the decoder losses on the channel y = x + sZ (docs/theory.md §5–§6).

The formulas are derived with sympy in ``derivations/asymptotics.py`` (steps 1–7 there);
this module evaluates them in numpy, and ``tests/test_asymptotics.py`` checks that both agree
and that each series' relative error goes to zero along its limit. Notation: ``ℓ = ln(1/p)``,
``s² = v(1/r − 1)``, ``Λ = 2 ln((1−p)/p) + ln(8/π)``, ``τ_B² = 2 ln((1−p)/(p s √(2π)))``.

p → 0 at fixed r
    ``L*_ReLU = p s² K(p) (1 + O(s ℓ^{3/2}))`` with the reduced one-dimensional problem
    ``K(p) = min_t [1 + t²/4 + 2(1−p)/p · I_2(−t)]`` and
    ``K = ℓ/2 − (3/4) ln Λ + 3/2 + (1/4) ln(8/π) + (9 ln Λ/4 − 3)/Λ + O(ln²Λ/Λ²)``.
    Leading term ``p²(1−r) ℓ/(6r)``; first correction ``p s² (3/2 + ¼ ln(8/π) − ¾ ln Λ)`` (the
    ln ln(1/p) term).
    ``MMSE = p s² (1 + s (τ_B³/3 − C_φ) + O(s/τ_B))``, ``C_φ = ∫ φ²/Φ = 0.9032``;
    ``JumpReLU = p s² (1 + s(τ_B³/3 + τ_B + 1/τ_B) + …)``.
    Hence ``ReLU / MMSE → K(p) ~ ½ ln(1/p)``: unbounded, logarithmically.
r → 0 at fixed p
    ``MMSE = (1−r) v − κ₃² r²/(2v²) + O(r³)``, ``κ₃ = p(1−p)²/4``; the affine optimum is
    ``(1−r) v`` exactly, and ReLU and JumpReLU-with-shift approach it (their gain over the
    affine map is exponentially small in 1/r: the kink sits ~ m/√(r v) standard deviations out).
r → 1 at fixed p
    ``s² = v h + v h² + …`` (``h = 1 − r``); ``L*_ReLU = p s² K(p) + O(s³)``,
    ``MMSE = p s² (1 + s τ_B³/3 + …)``: ReLU/MMSE → K(p).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rugtheory.theory.channel import channel_scale, repeated_normal_integral
from rugtheory.theory.checks import check_probability, check_ratio
from rugtheory.theory.display import with_compact_repr

__all__ = [
    "big_lambda",
    "bayes_threshold",
    "relu_sparse_constant",
    "ReluSparseConstant",
    "relu_constant_series",
    "relu_sparse_series",
    "mmse_sparse_series",
    "jumprelu_sparse_series",
    "mmse_small_r_series",
    "relu_near_one_series",
    "mmse_near_one_series",
    "third_cumulant",
    "C_PHI",
]

_LN_8_OVER_PI = float(np.log(8.0 / np.pi))


def big_lambda(p: float | np.ndarray) -> np.ndarray:
    """``Λ = 2 ln((1−p)/p) + ln(8/π)`` (the scale of ``t*²`` for the ReLU), p in (0, 1)."""
    p = check_probability(p)
    return 2.0 * (np.log1p(-p) - np.log(p)) + _LN_8_OVER_PI


def bayes_threshold(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """``τ_B = sqrt(2 ln((1−p)/(p s √(2π))))``: where the on and off posteriors weigh the same
    (in units of s); 0 where the argument of the root is negative."""
    p = check_probability(p)
    s = channel_scale(p, r)
    with np.errstate(divide="ignore"):
        arg = 2.0 * (np.log1p(-p) - np.log(p) - np.log(s * np.sqrt(2.0 * np.pi)))
    return np.sqrt(np.clip(np.nan_to_num(arg, posinf=0.0, neginf=0.0), 0.0, None))


@with_compact_repr
@dataclass(frozen=True)
class ReluSparseConstant:
    """Solution of the reduced ReLU problem ``K(p) = min_t k(t)``, ``k = 1 + t²/4 + 2(1−p)/p·I_2(−t)``."""

    K: np.ndarray
    t: np.ndarray


def relu_sparse_constant(p: float | np.ndarray) -> ReluSparseConstant:
    """``K(p)``: the s → 0 limit of ``L*_ReLU / (p s²)`` (derivations/asymptotics.py, step 2).

    Solved by scipy's bracketed root finder (``scipy.optimize.elementwise.find_root``) on the
    stationarity ``t p / 4 = (1−p) I_1(−t)`` (``k'(t) = 0``; ``k`` is
    convex for t > 0 because ``I_0(−t)`` decreases) to machine precision.
    """
    p = check_probability(p)
    if np.any(p >= 1):
        raise ValueError("p must be in (0, 1) for the sparse constant, got 1.0")
    from scipy.optimize import elementwise

    def g(t: np.ndarray, p: np.ndarray) -> np.ndarray:  # k'(t)/2: negative at t = 0, positive at t = 40
        return t * p / 4.0 - (1.0 - p) * repeated_normal_integral(1, -t)

    p = np.asarray(p, dtype=np.float64)
    res = elementwise.find_root(g, (np.zeros_like(p), np.full_like(p, 40.0)), args=(p,),
                                tolerances=dict(xatol=0.0, xrtol=4 * np.finfo(float).eps))
    t = res.x
    K = 1.0 + t * t / 4.0 + 2.0 * (1.0 - p) / p * repeated_normal_integral(2, -t)
    return ReluSparseConstant(K=K, t=t)


def relu_constant_series(p: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """Series of K(p) in ``ℓ = ln(1/p)``: 1 term ``ℓ/2``; 2 terms add ``−¾ ln Λ + 3/2 + ¼ ln(8/π)``;
    3 terms add ``(9 ln Λ/4 − 3)/Λ`` (with ``Λ = 2ℓ + ln(8/π)``)."""
    p = check_probability(p)
    ell = -np.log(p)
    lam = 2.0 * ell + _LN_8_OVER_PI
    out = ell / 2.0
    if terms >= 2:
        out = out - 0.75 * np.log(lam) + 1.5 + 0.25 * _LN_8_OVER_PI
    if terms >= 3:
        out = out + (2.25 * np.log(lam) - 3.0) / lam
    return out


def relu_sparse_series(p: float | np.ndarray, r: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """``L*_ReLU`` as p → 0 at fixed r. ``terms=1``: ``p²(1−r) ℓ/(6r)``; ``terms>=2``:
    ``p s² ×`` :func:`relu_constant_series` with that many terms."""
    p = check_probability(p)
    r = check_ratio(r)
    if terms == 1:
        return p * p * (1.0 - r) * (-np.log(p)) / (6.0 * r)
    s = channel_scale(p, r)
    return p * s * s * relu_constant_series(p, terms)


#: ``C_φ = ∫ φ(τ)²/Φ(τ) dτ`` (mpmath, 30 digits; derivations/asymptotics.py step 5).
C_PHI = 0.903197285568625353632532641536


def mmse_sparse_series(p: float | np.ndarray, r: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """MMSE as p → 0 (or s → 0): ``p s²`` (1 term), ``p s² (1 + s τ_B³/3)`` (2 terms) and
    ``p s² (1 + s (τ_B³/3 − C_φ))`` (3 terms; remainder O(p s³/τ_B))."""
    p = check_probability(p)
    s = channel_scale(p, r)
    if terms == 1:
        return p * s * s
    tb = bayes_threshold(p, r)
    corr = tb**3 / 3.0 - (C_PHI if terms >= 3 else 0.0)
    return p * s * s * (1.0 + s * corr)


def jumprelu_sparse_series(p: float | np.ndarray, r: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """JumpReLU (gain) as p → 0: ``p s²`` and ``p s² (1 + s (τ³/3 + τ + 1/τ))``, τ = τ_B."""
    p = check_probability(p)
    s = channel_scale(p, r)
    if terms == 1:
        return p * s * s
    tb = bayes_threshold(p, r)
    return p * s * s * (1.0 + s * (tb**3 / 3.0 + tb + 1.0 / tb))


def third_cumulant(p: float | np.ndarray) -> np.ndarray:
    """``κ₃ = E(x − p/2)³ = p/4 − p²/2 + p³/4 = p (1−p)²/4``."""
    p = check_probability(p)
    return p * (1.0 - p) ** 2 / 4.0


def mmse_small_r_series(p: float | np.ndarray, r: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """MMSE as r → 0: ``(1−r) v`` (1 term, the affine optimum) and ``− κ₃² r²/(2v²)`` (2 terms)."""
    p = check_probability(p)
    r = check_ratio(r)
    v = p / 3.0 - p * p / 4.0
    out = (1.0 - r) * v
    if terms >= 2:
        out = out - third_cumulant(p) ** 2 * r * r / (2.0 * v * v)
    return out


def relu_near_one_series(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """``L*_ReLU ≈ p s² K(p)`` as r → 1 at fixed p < 1."""
    p = check_probability(p)
    s = channel_scale(p, r)
    return p * s * s * relu_sparse_constant(p).K


def mmse_near_one_series(p: float | np.ndarray, r: float | np.ndarray, terms: int = 2) -> np.ndarray:
    """MMSE as r → 1 at fixed p: the same two terms as :func:`mmse_sparse_series` (s → 0)."""
    return mmse_sparse_series(p, r, terms)
