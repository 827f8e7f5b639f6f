"""Optimal per-feature loss of each decoder on the channel ``y = x + sZ`` (docs/theory.md §5).

Every output of a permutation-symmetric model with Gaussian interference at the rank bound sees
``y = x + sZ``, ``s² = v (1/r − 1)`` (:mod:`rugtheory.theory.channel`). This module computes, for each
decoder family, the smallest per-feature loss ``E[(x − f(y))²]`` over the family's parameters:

========================  ============================================  =========================
decoder                   family ``f(y)``                               parameters optimised
========================  ============================================  =========================
zero                      0                                             —
linear                    c y + d (rank-m PCA / Wiener filter)          c, d
linear, no bias           c y (gain only, on the channel)               c
ReLU (= L* of §4)         c (y − θ)_+                                   c, θ
JumpReLU, gain            c y 1[y > θ]                                  c, θ
JumpReLU, gain + shift    (c y + d) 1[y > θ]                            c, d, θ
TopK, large n             keep the k largest of (c y_i + d); = JumpReLU   c, d, k/n
                          with gain and shift at the quantile threshold
MMSE                      E[x | y] (posterior mean, closed form)        — (lower bound)
========================  ============================================  =========================

Numerics. For a fixed threshold θ each thresholded family is linear in its remaining
parameters, so its loss is a quadratic form minimised in closed form. The form's coefficients
are Gaussian moments over the region ``y > θ``: for the off component (x = 0) they are repeated
normal integrals in closed form; for the on component (x = u ~ U[0,1)) they are integrated over
u by composite Gauss–Legendre panels placed at θ + s·{0, ±1, ±3, ±6, ±10, ±16}, which resolves
the boundary layer of width s at any s. The quadratic form is written around the cheaper of two
baselines, the identity ``f = y`` (residual ``−sZ``, Stein's lemma gives its moments) or the zero
decoder, so that the minimum never comes out of a cancellation between numbers much larger than
itself: this keeps full relative precision down to p = 1e−12, where L ~ 1e−24. θ is scanned on a
grid in t = θ/s ∈ [−40, 16] and refined by golden section; the limit θ → −∞ (no clipping: the
affine or gain-only linear map) is compared explicitly. The MMSE is ∫ f(y) Var(x|y) dy with the
stable posterior variance of :mod:`rugtheory.theory.channel`, by Gauss–Legendre panels in y/s placed
around 0, 1 and the Bayes threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import special

from rugtheory.theory.channel import (
    channel_scale,
    repeated_normal_integral,
    truncated_normal_moments,
)
from rugtheory.theory.checks import check_probability, check_ratio
from rugtheory.theory.display import with_compact_repr
from rugtheory.theory.gauss_legendre import gauss_legendre
from rugtheory.theory.normal import norm_pdf

__all__ = [
    "DECODER_P_MIN",
    "DECODER_R_MIN",
    "check_decoder_domain",
    "thresholded_decoder_optimum",
    "DECODERS",
    "DecoderOptimum",
    "DecoderTable",
    "zero_decoder_loss",
    "linear_decoder_loss",
    "linear_gain_only_loss",
    "thresholded_loss_at",
    "relu_decoder_optimum",
    "jumprelu_decoder_optimum",
    "topk_large_n_optimum",
    "mmse_decoder_loss",
    "decoder_table",
]

#: Decoder names in table order.
DECODERS: tuple[str, ...] = (
    "zero",
    "linear",
    "linear_gain_only",
    "relu",
    "jumprelu_gain",
    "jumprelu_shift",
    "topk_large_n",
    "mmse",
)

_SQRT2PI = np.sqrt(2.0 * np.pi)
_GL16_X, _GL16_W = gauss_legendre(16)
_PANEL_OFFSETS = np.array([-16.0, -10.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 10.0, 16.0])
_T_LO, _T_HI = -40.0, 16.0  # threshold scan in t = θ/s; beyond -40 nothing is clipped (Φ(-40) = 0)
_GOLDEN_ITERS = 36  # bracket 2 * 0.618^36 ~ 6e-8 in t: loss error ~ (Δt)² ~ 1e-15 relative



#: Verified domain of the decoder optima (docs/theory.md §5, §13.4): every loss agrees with its mpmath
#: oracle there (tests/test_decoders.py). Beyond it the threshold scan, the MMSE panels or the channel
#: scale leave their tested ranges (at p < 1e-37 the threshold reaches the scan's edge t = 16; at
#: r = 1e-100 the MMSE panels overflow), so inputs outside are refused instead of answered wrongly.
DECODER_P_MIN = 1e-12
DECODER_R_MIN = 1e-6


def check_decoder_domain(p: float | np.ndarray, r: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p`` in [DECODER_P_MIN, 1] and ``r`` in [DECODER_R_MIN, 1], broadcast together; else a one-line ValueError."""
    p = check_probability(p)
    r = check_ratio(r)
    if np.any(p < DECODER_P_MIN):
        raise ValueError(f"p must be in [{DECODER_P_MIN:g}, 1] for the decoders (their verified range), "
                         f"got {float(np.min(p))!r}")
    if np.any(r < DECODER_R_MIN):
        raise ValueError(f"r must be in [{DECODER_R_MIN:g}, 1] for the decoders (their verified range), "
                         f"got {float(np.min(r))!r}")
    return np.broadcast_arrays(p, r)


def zero_decoder_loss(p: float | np.ndarray) -> np.ndarray:
    """Loss of the zero output, ``E x² = p/3`` (docs/theory.md §5)."""
    return check_probability(p) / 3.0


def linear_decoder_loss(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """Best affine decoder on the channel = best rank-m linear map with bias: ``(1 − r) v``.

    Wiener filter ``v s²/(v + s²)`` with ``s² = v(1/r − 1)``. In the n-dimensional model the
    bias is not needed: the all-ones direction carries the mean and the rank-m optimum without a
    bias is the same ``(n − m) v / n`` (docs/theory.md §5); see :func:`linear_gain_only_loss` for the
    channel decoder that has no constant term at all.
    """
    p, r = check_decoder_domain(p, r)
    return (1.0 - r) * (p / 3.0 - p * p / 4.0)


def linear_gain_only_loss(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """Best gain-only decoder ``c y`` on the channel: ``p/3 − (p/3)² / (p/3 + s²)``.

    This is the channel without any constant term (neither bias nor mean interference). It is
    *not* the no-bias linear model of docs/theory.md §5, which reaches ``(1 − r) v`` through the mean
    direction; it is the θ → −∞ limit of the JumpReLU with gain only.
    """
    p, r = check_decoder_domain(p, r)
    s = channel_scale(p, r)
    e2 = p / 3.0
    return e2 * s * s / (e2 + s * s)


@with_compact_repr
@dataclass(frozen=True)
class DecoderOptimum:
    """Optimal loss of one thresholded decoder and its parameters, arrays broadcast over (p, r).

    ``f(y) = (gain · y + shift) · 1[y > threshold]``; for the ReLU ``shift = −gain·threshold``.
    ``threshold = −inf`` means the optimum is the unclipped limit. ``t = threshold / s``.
    """

    loss: np.ndarray
    threshold: np.ndarray
    gain: np.ndarray
    shift: np.ndarray
    t: np.ndarray
    s: np.ndarray


# ----------------------------------------------------------------------------------------------
# Gaussian moments over the region y > θ, per value u of the feature (u = 0: the off component)
# ----------------------------------------------------------------------------------------------


def _moments(u: np.ndarray, theta: np.ndarray, s: np.ndarray, *, precise: bool, relu: bool) -> dict[str, np.ndarray]:
    """Moments of y = u + sZ over {y > θ}; w = y − θ. All in cancellation-free forms.

    ``precise`` uses the scaled repeated integrals in the left tail (needed for the off
    component, whose tail *is* the false-positive cost). On-component nodes deep in the tail
    (τ < −2) contribute at most ~φ(2) of a panel of width O(s) and are weighted by tiny values
    of their own, so there the plain closed forms with the erfcx Mills ratio suffice (their
    relative error there, <= τ⁴·1e−16, is invisible in the sum). ``relu=False`` skips the
    repeated integrals, which only the ReLU needs.
    """
    a = (theta - u) / s  # y > θ  <=>  Z > a
    c = u / s
    Qa = special.ndtr(-a)
    ph = norm_pdf(a)
    s2 = s * s
    out = {
        "G0": Qa,  # P(y > θ)
        "S0": s * ph,  # E[sZ 1]  (Stein: s² × density of y at θ)
        "S1y": s2 * Qa + s * theta * ph,  # E[sZ y 1]
        "S2": s2 * (Qa + a * ph),  # E[s²Z² 1]
        "EY1": s * (c * Qa + ph),  # E[y 1]
        "EY2": s2 * ((c * c + 1.0) * Qa + (2.0 * c + a) * ph),  # E[y² 1]
        "X": u * u * special.ndtr(a),  # E[x² 1[y <= θ]]
    }
    if not relu:
        return out
    tau = -a
    if precise:
        I1 = repeated_normal_integral(1, tau)
        I2 = repeated_normal_integral(2, tau)
    else:
        neg = tau < 0.0
        aa = np.abs(tau)
        mills = np.sqrt(np.pi / 2.0) * special.erfcx(aa / np.sqrt(2.0))
        # tau < 0: I1 = φ (1 − |τ| M), I2 = φ ((1+τ²) M − |τ|)/2 with M the Mills ratio
        I1 = np.where(neg, ph * (1.0 - aa * mills), tau * Qa + ph)
        I2 = np.where(neg, ph * ((1.0 + tau * tau) * mills - aa) / 2.0, ((tau * tau + 1.0) * Qa + tau * ph) / 2.0)
    G1 = s * I1  # E[w 1]
    G2 = 2.0 * s2 * I2  # E[w² 1]
    left = a >= 0.0  # u <= θ
    S0, S2 = out["S0"], out["S2"]
    out["G1"] = G1
    out["G2"] = G2
    out["CR"] = np.where(
        left, G2 - 2.0 * u * G1 + u * u * Qa, S2 - 2.0 * theta * S0 + theta * theta * Qa
    )  # E[(sZ−θ)² 1]
    out["BR"] = np.where(left, G2 - u * G1, s2 * Qa - theta * G1)  # E[(sZ−θ) w 1]
    return out


def _panel_nodes(theta: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes/weights on [0, 1] with panel edges at θ + s·offsets (clipped)."""
    edges = theta[..., None] + s[..., None] * _PANEL_OFFSETS
    edges = np.clip(edges, 0.0, 1.0)
    zeros = np.zeros(edges.shape[:-1] + (1,))
    edges = np.concatenate([zeros, edges, zeros + 1.0], axis=-1)
    lo = edges[..., :-1, None]
    hi = edges[..., 1:, None]
    half = 0.5 * (hi - lo)
    nodes = (lo + half * (1.0 + _GL16_X)).reshape(edges.shape[:-1] + (-1,))
    weights = (half * _GL16_W).reshape(edges.shape[:-1] + (-1,))
    return nodes, weights


def _region_moments(theta: np.ndarray, p: np.ndarray, s: np.ndarray, *, relu: bool) -> dict[str, np.ndarray]:
    """Moments of the full channel law over {y > θ} (plus X over {y <= θ}) and x-weighted ones."""
    off = _moments(np.zeros_like(theta), theta, s, precise=True, relu=relu)
    u, w = _panel_nodes(theta, s)
    on = _moments(u, theta[..., None], s[..., None], precise=False, relu=relu)
    q = 1.0 - p
    out = {k: q * off[k] + p * np.einsum("...j,...j->...", w, on[k]) for k in off}
    # x-weighted moments (on component only): E[x w 1], E[x 1], E[x y 1]
    wu = w * u
    if relu:
        out["XG1"] = p * np.einsum("...j,...j->...", wu, on["G1"])
    out["XG0"] = p * np.einsum("...j,...j->...", wu, on["G0"])
    out["XY1"] = p * np.einsum("...j,...j->...", wu, on["EY1"])
    return out


def _solve2(
    b1: np.ndarray, b0: np.ndarray, A11: np.ndarray, A10: np.ndarray, A00: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise −2 bᵀv + vᵀAv over v = (v1, v0): value −bᵀA⁻¹b, by the Schur complement."""
    tiny = np.finfo(float).tiny
    A00s = np.maximum(A00, tiny)
    schur = np.maximum(A11 - A10 * A10 / A00s, tiny)
    r1 = b1 - b0 * A10 / A00s
    v1 = r1 / schur
    v0 = (b0 - A10 * v1) / A00s
    return b0 * b0 / A00s + r1 * r1 / schur, v1, v0


def thresholded_loss_at(
    decoder: str, theta: float | np.ndarray, p: float | np.ndarray, r: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss of a thresholded decoder at fixed threshold θ, minimised over its linear parameters.

    Parameters
    ----------
    decoder : {"relu", "jumprelu_gain", "jumprelu_shift"}
    theta : array_like
        Threshold (finite).
    p, r : array_like
        Feature probability and compression ratio, both in (0, 1].

    Returns
    -------
    (loss, gain, shift) : tuple of numpy.ndarray
        ``f(y) = (gain·y + shift) 1[y > θ]``.
    """
    if decoder not in ("relu", "jumprelu_gain", "jumprelu_shift"):
        raise ValueError(f"decoder must be one of 'relu', 'jumprelu_gain', 'jumprelu_shift', got {decoder!r}")
    p, r = check_decoder_domain(p, r)
    s = channel_scale(p, r)
    theta = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta must be finite")
    theta, p, s = np.broadcast_arrays(theta, p, s)
    loss = np.zeros(theta.shape)
    gain = np.ones(theta.shape)
    shift = np.zeros(theta.shape)
    pos = s > 0
    if np.any(~pos):  # r = 1: y = x exactly; raw moments over {x > θ} are polynomials in θ
        lo, g, sh = _noiseless(decoder, theta[~pos], p[~pos])
        loss[~pos], gain[~pos], shift[~pos] = lo, g, sh
    if np.any(pos):
        lo, g, sh = _thresholded(decoder, theta[pos], p[pos], s[pos])
        loss[pos], gain[pos], shift[pos] = lo, g, sh
    return loss, gain, shift


def _noiseless(decoder: str, theta: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholded decoders at s = 0 (r = 1, y = x), from the raw moments over {x > θ}:
    ``E1 = (1−p)[θ<0] + p(1−c)``, ``E[x 1] = E[y 1] = p(1−c²)/2``, ``E[x y 1] = E[y² 1] = p(1−c³)/3``,
    c = clip(θ, 0, 1). No cancellation matters here: every loss is O(p) or exactly 0."""
    c = np.clip(theta, 0.0, 1.0)
    E1 = (1.0 - p) * (theta < 0) + p * (1.0 - c)
    Ey = p * (1.0 - c * c) / 2.0
    Ey2 = p * (1.0 - c**3) / 3.0
    e2 = p / 3.0
    tiny = np.finfo(float).tiny
    if decoder == "relu":
        xg = Ey2 - theta * Ey
        gg = np.maximum(Ey2 - 2.0 * theta * Ey + theta * theta * E1, tiny)
        gain = xg / gg
        return np.maximum(e2 - xg * xg / gg, 0.0), gain, -gain * theta
    if decoder == "jumprelu_gain":
        A = np.maximum(Ey2, tiny)
        return np.maximum(e2 - Ey2 * Ey2 / A, 0.0), np.where(Ey2 > 0, Ey2 / A, 1.0), np.zeros_like(theta)
    red, gain, shift = _solve2(Ey2, Ey, Ey2, Ey, E1)
    return np.maximum(e2 - red, 0.0), gain, shift


def _one_gain_fit(e2: np.ndarray, base: np.ndarray, cross: np.ndarray, xcross: np.ndarray,
                  A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best gain of a one-parameter decoder ``f = c w`` (w the kept, thresholded feature), written
    around whichever reference loses fewer digits: identity-centred (``c = 1 − cross/A``, loss
    ``base − cross²/A``, with ``base`` the loss of c = 1) where ``base <= E x²``, else zero-centred
    (``c = xcross/A``, loss ``E x² − xcross²/A``). Both are the same least-squares optimum.
    """
    use_id = base <= e2
    loss = np.where(use_id, base - cross**2 / A, e2 - xcross**2 / A)
    gain = np.where(use_id, 1.0 - cross / A, xcross / A)
    return loss, gain


def _thresholded(
    decoder: str, theta: np.ndarray, p: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    M = _region_moments(theta, p, s, relu=decoder == "relu")
    tiny = np.finfo(float).tiny
    e2 = p / 3.0
    if decoder == "relu":
        # identity-centred: f = (1+δ) w, residual −(sZ − θ + δ w); zero-centred: f = α w
        loss, gain = _one_gain_fit(e2, M["X"] + M["CR"], M["BR"], M["XG1"], np.maximum(M["G2"], tiny))
        return np.maximum(loss, 0.0), gain, -gain * theta
    if decoder == "jumprelu_gain":
        # identity-centred: f = (1+δ) y 1[y > θ]; zero-centred: f = α y 1[y > θ]
        loss, gain = _one_gain_fit(e2, M["X"] + M["S2"], M["S1y"], M["XY1"], np.maximum(M["EY2"], tiny))
        return np.maximum(loss, 0.0), gain, np.zeros_like(gain)
    # jumprelu_shift: basis {y, 1} on y > θ
    # identity-centred: f = y + δ y + γ, residual −(sZ + δ y + γ)
    red_id, d_id, g_id = _solve2(M["S1y"], M["S0"], M["EY2"], M["EY1"], M["G0"])
    id_loss = M["X"] + M["S2"] - red_id
    red_z, a_z, b_z = _solve2(M["XY1"], M["XG0"], M["EY2"], M["EY1"], M["G0"])
    zero_loss = e2 - red_z
    use_id = (M["X"] + M["S2"]) <= e2
    loss = np.where(use_id, id_loss, zero_loss)
    gain = np.where(use_id, 1.0 - d_id, a_z)
    shift = np.where(use_id, -g_id, b_z)
    return np.maximum(loss, 0.0), gain, shift


def thresholded_decoder_optimum(decoder: str, p: float | np.ndarray, r: float | np.ndarray) -> DecoderOptimum:
    """Optimal threshold and linear parameters of a thresholded decoder on the channel (docs/theory.md §5).

    ``decoder`` is "relu", "jumprelu_gain" or "jumprelu_shift". The threshold t = θ/s is found by a
    coarse scan in t, golden-section refinement and a parabolic polish (reproducible to ~1e-12,
    docs/theory.md §13); the unclipped limit θ → −∞ is compared too.
    """
    if decoder not in ("relu", "jumprelu_gain", "jumprelu_shift"):
        raise ValueError(f"decoder must be one of 'relu', 'jumprelu_gain', 'jumprelu_shift', got {decoder!r}")
    p, r = check_decoder_domain(p, r)
    s = channel_scale(p, r)
    shape = p.shape
    pf, rf, sf = p.ravel(), r.ravel(), s.ravel()
    loss = np.zeros(pf.shape)
    theta = np.zeros(pf.shape)
    gain = np.ones(pf.shape)
    shift = np.zeros(pf.shape)
    pos = sf > 0
    if np.any(pos):
        pp, ss = pf[pos], sf[pos]
        # coarse scan: fine spacing where optima live (t in [-10, 16]), coarse below
        grid = np.concatenate([np.linspace(_T_LO, -10.0, 7)[:-1], np.arange(-10.0, _T_HI + 1e-9, 1.0)])
        T = grid[None, :] * ss[:, None]
        vals, _, _ = _thresholded(decoder, T.ravel(), np.repeat(pp, grid.size), np.repeat(ss, grid.size))
        vals = vals.reshape(T.shape)
        k = np.argmin(vals, axis=1)
        kl = np.clip(k - 1, 0, grid.size - 1)
        kh = np.clip(k + 1, 0, grid.size - 1)
        lo, hi = grid[kl], grid[kh]
        g = (np.sqrt(5.0) - 1.0) / 2.0
        c = hi - g * (hi - lo)
        d = lo + g * (hi - lo)
        fc = _thresholded(decoder, c * ss, pp, ss)[0]
        fd = _thresholded(decoder, d * ss, pp, ss)[0]
        for _ in range(_GOLDEN_ITERS):
            left = fc < fd
            hi = np.where(left, d, hi)
            lo = np.where(left, lo, c)
            d_new = np.where(left, c, lo + g * (hi - lo))
            c_new = np.where(left, hi - g * (hi - lo), d)
            c, d = c_new, d_new
            fc_new = np.where(left, np.nan, fd)
            fd_new = np.where(left, fc, np.nan)
            need_c = left
            need_d = ~left
            if need_c.any():
                fc_new[need_c] = _thresholded(decoder, c[need_c] * ss[need_c], pp[need_c], ss[need_c])[0]
            if need_d.any():
                fd_new[need_d] = _thresholded(decoder, d[need_d] * ss[need_d], pp[need_d], ss[need_d])[0]
            fc, fd = fc_new, fd_new
        t_best = 0.5 * (lo + hi)
        L, G, B = _thresholded(decoder, t_best * ss, pp, ss)
        # also keep the best coarse point (the golden refinement only ever improves on it)
        coarse = vals[np.arange(vals.shape[0]), k]
        better = coarse < L
        if better.any():
            Lc, Gc, Bc = _thresholded(decoder, grid[k[better]] * ss[better], pp[better], ss[better])
            L[better], G[better], B[better], t_best[better] = Lc, Gc, Bc, grid[k[better]]
        t_best, L, G, B = _polish(decoder, t_best, L, G, B, pp, ss)
        th = t_best * ss
        # the unclipped limit θ → −∞
        if decoder in ("relu", "jumprelu_shift"):
            lim = (1.0 - rf[pos]) * (pp / 3.0 - pp * pp / 4.0)
            v = pp / 3.0 - pp * pp / 4.0
            lim_gain = v / (v + ss * ss)
            lim_shift = (pp / 2.0) * (1.0 - lim_gain)
        else:
            e2 = pp / 3.0
            lim = e2 * ss * ss / (e2 + ss * ss)
            lim_gain = e2 / (e2 + ss * ss)
            lim_shift = np.zeros_like(pp)
        use_lim = lim < L
        L = np.where(use_lim, lim, L)
        th = np.where(use_lim, -np.inf, th)
        G = np.where(use_lim, lim_gain, G)
        B = np.where(use_lim, lim_shift, B)
        loss[pos], theta[pos], gain[pos], shift[pos] = L, th, G, B
    # r = 1 (s = 0): y = x, the identity (θ = 0, gain 1) is exact
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sf > 0, theta / np.where(sf > 0, sf, 1.0), 0.0)
    return DecoderOptimum(
        loss=loss.reshape(shape),
        threshold=theta.reshape(shape),
        gain=gain.reshape(shape),
        shift=shift.reshape(shape),
        t=t.reshape(shape),
        s=s,
    )


def _polish(decoder: str, t: np.ndarray, L: np.ndarray, G: np.ndarray, B: np.ndarray, p: np.ndarray, s: np.ndarray):
    """Make the optimal threshold reproducible to ~1e-12 instead of the golden bracket's ~1e-8.

    A golden-section search on a flat minimum stops wherever ulp-level differences in the loss
    (another CPU's exp/log, another SIMD path) steer it, anywhere within ~sqrt(eps) of the true
    argmin. Two deterministic steps remove that noise (docs/theory.md §13.4):

    * the vertex of the parabola through ``t − h, t, t + h`` (h = 1e-4) is taken whenever the
      curvature is positive and the vertex lies inside ``[t − h, t + h]``; its noise is
      ~eps/(h² L'') ≈ 1e-12, its bias O(h²) ≈ 1e-8 is the same on every machine;
    * for the gain-only JumpReLU, θ = 0 is always a stationary point (the indifference condition
      ``c²θ² = 2cθ E[x | y = θ]`` holds at θ = 0), so where the loss at exactly θ = 0 is within
      1e-12 relative of the polished minimum, the optimum is reported as exactly θ = 0.
    """
    h = 1e-4
    fm = _thresholded(decoder, (t - h) * s, p, s)[0]
    fp = _thresholded(decoder, (t + h) * s, p, s)[0]
    curv = fp - 2.0 * L + fm
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(curv > 0, 0.5 * h * (fm - fp) / np.where(curv > 0, curv, 1.0), 0.0)
    ok = (curv > 0) & (np.abs(step) <= h)
    if ok.any():
        t = t.copy()
        t[ok] = t[ok] + step[ok]
        Lv, Gv, Bv = _thresholded(decoder, t[ok] * s[ok], p[ok], s[ok])
        L, G, B = L.copy(), G.copy(), B.copy()
        L[ok], G[ok], B[ok] = Lv, Gv, Bv
    if decoder == "jumprelu_gain":
        L0, G0, B0 = _thresholded(decoder, np.zeros_like(t), p, s)
        zero = L0 <= L * (1.0 + 1e-12)
        t = np.where(zero, 0.0, t)
        L, G, B = np.where(zero, L0, L), np.where(zero, G0, G), np.where(zero, B0, B)
    return t, L, G, B


def relu_decoder_optimum(p: float | np.ndarray, r: float | np.ndarray) -> DecoderOptimum:
    """ReLU with gain and shift, ``f = c (y − θ)_+``, optimised over (c, θ): this is L*(p, r) of §4.

    Same value as :func:`rugtheory.optimal_symmetric_loss` (``gain = a*``, ``shift = b*``),
    computed by a different route (Stein-form moments in y instead of G1/G2 integrals in x). The
    package computes L* by :func:`rugtheory.optimal_symmetric_loss` only (one route: the decoder
    table's ReLU column, the report, predict); this function is its independent twin in the tests.
    """
    return thresholded_decoder_optimum("relu", p, r)


def jumprelu_decoder_optimum(p: float | np.ndarray, r: float | np.ndarray, *, shift: bool = False) -> DecoderOptimum:
    """JumpReLU ``c y 1[y > θ]`` (``shift=False``) or ``(c y + d) 1[y > θ]`` (``shift=True``)."""
    return thresholded_decoder_optimum("jumprelu_shift" if shift else "jumprelu_gain", p, r)


def topk_large_n_optimum(p: float | np.ndarray, r: float | np.ndarray) -> DecoderOptimum:
    """TopK over n features as n → ∞: the k-th largest pre-activation converges to the
    ``1 − k/n`` quantile of y, so TopK(c y + d) becomes ``(c y + d) 1[y > θ]`` with θ that
    quantile: the JumpReLU with gain and shift, optimised over k/n. Same numbers as
    ``jumprelu_decoder_optimum(p, r, shift=True)``; the kept fraction is ``P(y > θ)``.
    """
    return jumprelu_decoder_optimum(p, r, shift=True)


# ----------------------------------------------------------------------------------------------
# MMSE
# ----------------------------------------------------------------------------------------------

_BASE_OFFSETS = np.array(
    [-40.0, -14.0, -9.0, -6.0, -4.0, -2.5, -1.2, 0.0, 1.2, 2.5, 4.0, 6.0, 8.0, 10.5, 14.0, 20.0, 40.0]
)
_BAYES_OFFSETS = np.array([-12.0, -6.0, -3.0, -1.5, -0.5, 0.5, 1.5, 3.0, 6.0, 12.0])


def _bayes_threshold(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """τ_B = y/s where the on and off posterior weights are equal (φ(τ)/s ≈ p/(1−p)), or 0."""
    with np.errstate(divide="ignore"):
        arg = 2.0 * (np.log1p(-p) - np.log(p) - np.log(s * _SQRT2PI))
    return np.sqrt(np.clip(np.nan_to_num(arg, neginf=0.0, posinf=0.0), 0.0, 1600.0))


def _mmse_integrand(y: np.ndarray, p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """f(y) Var(x | y) = f_on V_TN + f_on w0 m_TN² (no cancellation; see channel.posterior_variance)."""
    # precise=False: the left tail (y < −2s) carries weight < Q(2) of the on-part and its
    # relative error there (< 1e−13 up to y = −6s, < 2e−10 at −38s) is invisible in the sum.
    tn = truncated_normal_moments(-y / s, (1.0 - y) / s, precise=False)
    log_on = np.log(p) + tn.log_mass
    with np.errstate(divide="ignore"):
        log_off = np.log1p(-p) - 0.5 * (y / s) ** 2 - np.log(s * _SQRT2PI)
    w0 = special.expit(log_off - log_on)
    f_on = np.exp(log_on)
    m = s * tn.offset_lo
    return f_on * (s * s * tn.variance + w0 * m * m)


def mmse_decoder_loss(p: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """Bayes-optimal elementwise loss ``E[(x − E[x|y])²] = ∫ f(y) Var(x|y) dy`` (docs/theory.md §5).

    A lower bound on the loss of every elementwise decoder after the same linear stage.
    Composite Gauss–Legendre in y/s with panels around 0, around 1 and around the Bayes
    threshold ``τ_B = sqrt(2 ln((1−p)/(p s √(2π))))`` (where the posterior switches from off to
    on, over a width ~ 1/τ_B); the integrand is positive, so the sum loses no digits.
    """
    p, r = check_decoder_domain(p, r)
    s = channel_scale(p, r)
    shape = p.shape
    pf, sf = p.ravel(), s.ravel()
    out = np.zeros(pf.shape)
    pos = sf > 0
    if np.any(pos):
        pp, ss = pf[pos], sf[pos]
        tb = _bayes_threshold(pp, ss)
        width = 1.0 / np.maximum(tb, 1.0)
        upper = 1.0 / ss
        edges = np.concatenate(
            [
                np.broadcast_to(_BASE_OFFSETS, (pp.size, _BASE_OFFSETS.size)),
                tb[:, None] + width[:, None] * _BAYES_OFFSETS,
                upper[:, None] + _BASE_OFFSETS[None, :],
            ],
            axis=1,
        )
        edges = np.sort(edges, axis=1)
        lo = edges[:, :-1, None]
        hi = edges[:, 1:, None]
        half = 0.5 * (hi - lo)
        tau = (lo + half * (1.0 + _GL16_X)).reshape(pp.size, -1)
        wts = (half * _GL16_W).reshape(pp.size, -1)
        y = tau * ss[:, None]
        vals = _mmse_integrand(y, pp[:, None], ss[:, None])
        out[pos] = np.sum(wts * vals, axis=1) * ss
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------
# The whole table
# ----------------------------------------------------------------------------------------------


@with_compact_repr
@dataclass(frozen=True)
class DecoderTable:
    """Optimal per-feature loss of every decoder (docs/theory.md §5), arrays broadcast over (p, r)."""

    p: np.ndarray
    r: np.ndarray
    s: np.ndarray
    zero: np.ndarray
    linear: np.ndarray
    linear_gain_only: np.ndarray
    relu: np.ndarray
    jumprelu_gain: np.ndarray
    jumprelu_shift: np.ndarray
    topk_large_n: np.ndarray
    mmse: np.ndarray
    relu_t: np.ndarray
    jumprelu_gain_t: np.ndarray
    jumprelu_shift_t: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def decoder_table(p: float | np.ndarray, r: float | np.ndarray) -> DecoderTable:
    """Every decoder's optimal loss on the channel at (p, r), broadcast together.

    ``relu`` is :func:`rugtheory.optimal_symmetric_loss` (L*, docs/theory.md §4); ``topk_large_n`` equals
    ``jumprelu_shift`` (see :func:`topk_large_n_optimum`); the ``*_t`` fields are θ*/s.

    Examples
    --------
    >>> import numpy as np
    >>> tab = decoder_table(np.array([1e-3]), np.array([0.25]))
    >>> bool(tab.mmse[0] <= tab.jumprelu_shift[0] <= tab.jumprelu_gain[0])
    True
    """
    from rugtheory.theory.optimum import optimal_symmetric_loss  # the foundation's L* (docs/theory.md §4)

    p, r = check_decoder_domain(p, r)
    # The ReLU column is the foundation's L*; relu_decoder_optimum computes the same number by an
    # independent route (tests/test_decoders.py holds them to 1e-11; measured 6e-15).
    relu = optimal_symmetric_loss(p, r)
    s = channel_scale(p, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        relu_t = np.where(s > 0, relu.theta / np.where(s > 0, s, 1.0), 0.0)
    jg = jumprelu_decoder_optimum(p, r, shift=False)
    js = jumprelu_decoder_optimum(p, r, shift=True)
    return DecoderTable(
        p=p,
        r=r,
        s=s,
        zero=zero_decoder_loss(p),
        linear=linear_decoder_loss(p, r),
        linear_gain_only=linear_gain_only_loss(p, r),
        relu=relu.loss,
        jumprelu_gain=jg.loss,
        jumprelu_shift=js.loss,
        topk_large_n=js.loss,
        mmse=mmse_decoder_loss(p, r),
        relu_t=relu_t,
        jumprelu_gain_t=jg.t,
        jumprelu_shift_t=js.t,
    )
