r"""hypothesis strategies of :mod:`rugtheory.testing`: hyperparameters in the regimes the theory covers
and the weights of each construction. hypothesis is imported inside the functions (a test dependency)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rugtheory.constructions.hadamard import is_power_of_two
from rugtheory.testing.models import Hyperparameters, ModelWeights

__all__ = ["antipodal_pair_weights", "any_weights", "gaussian_weights", "hyperparameters", "paired_rug_weights",
           "persian_rug_weights", "untied_pair_weights"]

# --------------------------------------------------------------------------------------------
# hypothesis strategies (hypothesis imported inside each function: a test dependency)

_Range = Any  # a number or a (lo, hi) pair


def _range(value: _Range, name: str, *, low: float, high: float, low_open: bool) -> tuple[float, float]:
    """``value`` or ``(lo, hi)`` as a closed interval inside (low, high] or [low, high]; one-line ValueError."""
    opening = "(" if low_open else "["
    allowed = f"a number in {opening}{low:g}, {high:g}] or a (lo, hi) range inside it with lo <= hi"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
        lo, hi = value
    else:
        lo = hi = value
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    inside = (lambda x: low < x <= high) if low_open else (lambda x: low <= x <= high)
    if not (np.isfinite(lo) and np.isfinite(hi) and inside(lo) and inside(hi) and lo <= hi):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return lo, hi


def _n_choices(n: _Range) -> list[int]:
    if isinstance(n, (tuple, list)):
        ints = len(n) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in n)
        if not ints or n[0] > n[1]:
            raise ValueError(f"n must be a power of two >= 2 or an integer range (lo, hi) with lo <= hi, got {n!r}")
        lo, hi = int(n[0]), int(n[1])
    else:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not is_power_of_two(int(n)) or n < 2:
            raise ValueError(f"n must be a power of two >= 2 or an integer range (lo, hi) with lo <= hi, got {n!r}")
        lo = hi = int(n)
    choices = [2**j for j in range(1, 31) if lo <= 2**j <= hi]
    if not choices:
        raise ValueError(f"n range {n!r} contains no power of two >= 2")
    return choices


def _m_range(nn: int, r_lo: float, r_hi: float, fixed: bool) -> tuple[int, int] | None:
    if fixed:
        m = max(1, min(nn, round(r_lo * nn)))
        return m, m
    m_lo = max(1, math.ceil(r_lo * nn - 1e-9))
    m_hi = min(nn, math.floor(r_hi * nn + 1e-9))
    return (m_lo, m_hi) if m_lo <= m_hi else None


def hyperparameters(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                    min_pn: float = 0.0) -> Any:
    """A hypothesis strategy of :class:`Hyperparameters` ``(n, m, p)`` in the regimes the theory covers.

    - ``n``: a power of two, or a range ``(lo, hi)``: a power of two in it (default 64…512).
    - ``r``: a number in (0, 1] (``m = round(r·n)``, at least 1) or a range: ``m`` an integer with
      ``lo ≤ m/n ≤ hi`` (sizes n without such an m are not drawn). Default (0.1, 1].
    - ``p``: a number in (0, 1] or a range, drawn log-uniformly (default 0.01…0.3).
    - ``min_pn``: draw only ``p·n ≥ min_pn`` (the Gaussian step of §2 needs p·n ≫ 1; the exact
      finite-n loss of §7 needs nothing). Sizes that cannot reach it are not drawn.

    Raises ``ValueError`` (one line, naming the parameter) for an impossible range.
    """
    from hypothesis import strategies as st

    n_opts = _n_choices(n)
    p_lo, p_hi = _range(p, "p", low=0.0, high=1.0, low_open=True)
    r_lo, r_hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
    r_fixed = not isinstance(r, (tuple, list))
    min_pn = float(min_pn)
    if not (np.isfinite(min_pn) and min_pn >= 0):
        raise ValueError(f"min_pn must be a number >= 0, got {min_pn!r}")
    sizes = [(nn, mr) for nn in n_opts
             if (mr := _m_range(nn, r_lo, r_hi, r_fixed)) is not None and nn * p_hi >= min_pn]
    if not sizes:
        raise ValueError(f"r range ({r_lo:g}, {r_hi:g}) with n in {n_opts} and min_pn = {min_pn:g} "
                         "leaves no size to draw")

    @st.composite
    def draw(data: Any) -> Hyperparameters:
        nn, (m_lo, m_hi) = data(st.sampled_from(sizes))
        mm = data(st.integers(m_lo, m_hi))
        lo = max(p_lo, min_pn / nn)
        if lo >= p_hi:
            pp = p_hi
        else:
            u = data(st.floats(math.log(lo), math.log(p_hi)))
            pp = min(max(math.exp(u), lo), p_hi)
        return Hyperparameters(nn, mm, pp)

    return draw()


def _with_seed(hp: Any, build: Callable[[Hyperparameters, int], ModelWeights]) -> Any:
    from hypothesis import strategies as st

    return st.tuples(hp, st.integers(0, 2**16)).map(lambda t: build(*t))


def _build_rug(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars

    rug = persian_rug(h.n, h.m, seed=seed)
    sc = theory_scalars(rug, h.p)
    return ModelWeights(rug.W_in, sc.alpha * rug.W_out, np.full(h.n, sc.beta), h.p, "persian rug", sc.predicted_loss)


def persian_rug_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                        min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of the Persian rug (docs/theory.md §8) at its theory scalars.

    Random Hadamard rows (the seed is drawn too), ``W_out = α W_inᵀ/m``, ``b = β`` with
    ``α = a*``, ``β = b* − a*μ`` (:func:`rugtheory.theory_scalars`); ``large_n_loss = L*(p, r)``.
    Arguments as in :func:`hyperparameters`.
    """
    return _with_seed(hyperparameters(n=n, p=p, r=r, min_pn=min_pn), _build_rug)


def _half_ratio(r: _Range) -> _Range:
    if isinstance(r, (tuple, list)) and len(r) == 2:
        lo, hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
        if lo > 0.5:
            raise ValueError(f"r must allow r <= 1/2 for a paired rug (one hidden direction per pair), got {r!r}")
        return (lo, min(hi, 0.5))
    lo, _ = _range(r, "r", low=0.0, high=0.5, low_open=True)
    return lo


def _build_paired_rug(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.structure_weights import paired_rug_weights as build

    opt = optimal_paired_rug_loss(h.p, h.r)
    w_in, w_out, b = build(h.n // 2, h.m, float(opt.gain), float(opt.bias), seed=seed)
    return ModelWeights(w_in, w_out, b, h.p, "paired rug", float(opt.loss))


def paired_rug_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 0.5),
                       min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of a rug of antipodal pairs (docs/theory.md §10.4), r ≤ 1/2.

    Features j and j + n/2 are antipodal partners; the n/2 pair directions form a Persian rug in m
    dimensions. Gain and bias are the large-n optimum (``optimal_paired_rug_loss``), whose loss is
    ``large_n_loss``. ``r`` ranges are clipped to 1/2.
    """
    return _with_seed(hyperparameters(n=n, p=p, r=_half_ratio(r), min_pn=min_pn), _build_paired_rug)


def antipodal_pair_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of n/2 tied antipodal pairs (docs/theory.md §10.1), r = 1/2.

    ``W = g [[1, −1], [−1, 1]]`` per pair with the optimal gain g and bias of
    ``optimal_structure_loss`` (``large_n_loss``, exact at any n: the pairs do not interact).
    """
    def build(h: Hyperparameters) -> ModelWeights:
        from rugtheory.constructions.polytopes import (
            antipodal_pairs,
            optimal_structure_loss,
        )
        from rugtheory.constructions.structure_weights import construction_weights

        opt = optimal_structure_loss(antipodal_pairs(), h.p)
        w_in, w_out, b = construction_weights(antipodal_pairs(), h.n // 2, float(opt.gain), float(opt.bias))
        return ModelWeights(w_in, w_out, b, h.p, "antipodal pairs", float(opt.loss))

    return hyperparameters(n=n, p=p, r=0.5, min_pn=min_pn).map(build)


def untied_pair_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` of n/2 optimal untied pairs (docs/theory.md §10.2), r = 1/2.

    ``W_in = [1, −t]``, ``W_out = [g₁, −g₂/t]ᵀ`` per pair with the optimum of
    ``optimal_untied_pairs`` (``large_n_loss``; exact at any n).
    """

    def build(h: Hyperparameters) -> ModelWeights:
        from rugtheory.constructions.polytopes import optimal_untied_pairs
        from rugtheory.constructions.structure_weights import (
            untied_pair_weights as build_pairs,
        )

        o = optimal_untied_pairs(h.p)
        w_in, w_out, b = build_pairs(h.n // 2, float(o.t), (float(o.gain1), float(o.gain2)),
                                     (float(o.bias1), float(o.bias2)))
        return ModelWeights(w_in, w_out, b, h.p, "untied pairs", float(o.loss))

    return hyperparameters(n=n, p=p, r=0.5, min_pn=min_pn).map(build)


def _build_gaussian(h: Hyperparameters, seed: int) -> ModelWeights:
    from rugtheory.theory.optimum import optimal_symmetric_loss

    rng = np.random.default_rng(seed)
    v = rng.standard_normal((h.m, h.n))
    v /= np.linalg.norm(v, axis=0, keepdims=True)
    opt = optimal_symmetric_loss(h.p, h.r)
    a, b0 = float(opt.a), float(opt.b)
    w = v.T @ v
    mu = 0.5 * h.p * (w.sum(axis=1) - 1.0)  # (p/2) Σ_{j≠i} W_ij with unit diagonal
    return ModelWeights(v, a * v.T, b0 - a * mu, h.p, "gaussian directions", None)


def gaussian_weights(*, n: _Range = (64, 512), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0),
                     min_pn: float = 0.0) -> Any:
    """Strategy of :class:`ModelWeights` with random Gaussian directions, tied, at the symmetric optimum's scalars.

    ``W_in`` has i.i.d. N(0, 1) entries with columns normalised to 1 (random unit directions in
    R^m), ``W_out = a* W_inᵀ``, ``b_i = b* − a*μ_i`` (effective bias b*, §2). Permutation symmetric
    in law but not exactly: Σ_{j≠i} W_ij² ≈ (n − 1)/m exceeds the rank bound 1/r − 1 (§4.1), so no
    large-n loss is attached (``large_n_loss = None``).
    """
    return _with_seed(hyperparameters(n=n, p=p, r=r, min_pn=min_pn), _build_gaussian)


def any_weights(*, n: _Range = (64, 256), p: _Range = (0.01, 0.3), r: _Range = (0.1, 1.0), min_pn: float = 0.0) -> Any:
    """Strategy drawing from every construction above.

    ``r`` and ``min_pn`` go to the Persian rug and the Gaussian directions (and, clipped to 1/2, to
    the paired rug when the range reaches below 1/2); the pairs (r = 1/2) join when ``r`` allows it.
    """
    from hypothesis import strategies as st

    r_lo, r_hi = _range(r, "r", low=0.0, high=1.0, low_open=True)
    parts = [persian_rug_weights(n=n, p=p, r=r, min_pn=min_pn), gaussian_weights(n=n, p=p, r=r, min_pn=min_pn)]
    if r_lo <= 0.5:
        parts.append(paired_rug_weights(n=n, p=p, r=r if isinstance(r, (tuple, list)) else r_lo, min_pn=min_pn))
    if r_lo <= 0.5 <= r_hi:
        parts += [antipodal_pair_weights(n=n, p=p, min_pn=min_pn), untied_pair_weights(n=n, p=p, min_pn=min_pn)]
    return st.one_of(*parts)
