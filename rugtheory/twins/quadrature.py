r"""Adaptive-quadrature twins (scipy) of the symmetric theory (docs/theory.md §3–4).

Independent of the closed form's antiderivatives: the x-integral of docs/theory.md §3 is done by
``scipy.integrate.quad`` with break points at the kink, and L* by a bounded scalar minimisation
of :math:`p/3 - N(\theta)^2/D(\theta)` with N, D by quadrature. Float64, moderate regimes only
(the tests say which): use :mod:`rugtheory.twins.oracle` for extreme parameters.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize, special

__all__ = ["symmetric_loss_quad", "optimal_symmetric_loss_quad"]

_QUAD = dict(epsabs=0.0, epsrel=1e-11, limit=200)


def _pdf(t):
    return np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)


def _err(x: float, a: float, b: float, s: float) -> float:
    """E[(ReLU(u + sZ) - x)^2], u = ax + b, in the form with non-cancelling leading terms."""
    u = a * x + b
    if s == 0:
        return (u - x) ** 2 if u > 0 else x * x
    t = u / s
    return ((u - x) ** 2 + s * s) * special.ndtr(t) + s * (u - 2 * x) * _pdf(t) + x * x * special.ndtr(-t)


def _g1(mu, s):
    t = mu / s
    return mu * special.ndtr(t) + s * _pdf(t)


def _g2(mu, s):
    t = mu / s
    return (mu * mu + s * s) * special.ndtr(t) + mu * s * _pdf(t)


def _points(center: float, width: float) -> list[float]:
    return sorted({min(max(center + k * width, 0.0), 1.0) for k in (-10, -3, 0, 3, 10)} - {0.0, 1.0})


def symmetric_loss_quad(a: float, b: float, sigma: float, p: float) -> float:
    """:math:`L(a, b, \\sigma; p)` by adaptive quadrature (scipy ``quad``)."""
    pts = _points(-b / a, sigma / abs(a)) if a != 0 else []
    on = integrate.quad(_err, 0.0, 1.0, args=(a, b, sigma), points=pts or None, **_QUAD)[0]
    off = _g2(b, sigma) if sigma > 0 else max(b, 0.0) ** 2
    return (1 - p) * off + p * on


def _nd(theta: float, s: float, p: float) -> tuple[float, float]:
    pts = _points(theta, s) or None
    n = p * integrate.quad(lambda x: x * _g1(x - theta, s), 0, 1, points=pts, **_QUAD)[0]
    d = (1 - p) * _g2(-theta, s) + p * integrate.quad(lambda x: _g2(x - theta, s), 0, 1, points=pts, **_QUAD)[0]
    return n, d


def optimal_symmetric_loss_quad(p: float, r: float, *, n_scan: int = 200) -> dict[str, float]:
    """L*(p, r) by a scan of θ/s in [-12, 16] then bounded Brent minimisation (xatol 1e-12 s)."""
    v = p / 3 - p * p / 4
    s = float(np.sqrt(v * (1 - r) / r))

    def neg_ratio(theta: float) -> float:
        n, d = _nd(theta, s, p)
        return -n * n / d

    grid = s * np.linspace(-12, 16, n_scan)
    vals = [neg_ratio(t) for t in grid]
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, n_scan - 1)]
    res = optimize.minimize_scalar(neg_ratio, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * s})
    n, d = _nd(res.x, s, p)
    return {"loss": p / 3 - n * n / d, "theta": float(res.x), "a": n / d, "s": s}
