r"""mpmath oracle at explicit precision for the symmetric theory (docs/theory.md §3–4).

Independent of the runtime closed form: the x-integral is done by tanh-sinh quadrature of the
naive integrand :math:`x^2 - 2xG_1 + G_2` (docs/theory.md §3) at ``dps`` decimal digits, with break points
around the kink, so its cancellation is absorbed by the working precision (choose ``dps`` at least
the target digits plus :math:`\log_{10}` of the cancellation, e.g. 60 for σ = 1e-12).

The optimum is found by ``mpmath.findroot`` on :math:`2N'D - ND' = 0` from a starting θ, then
:math:`L^* = p/3 - N^2/D` at full precision (no cancellation problem at 40+ digits).
"""

from __future__ import annotations

import mpmath as mp

__all__ = ["symmetric_loss", "ratio_moments", "optimal_symmetric_loss"]


def _g1(mu, s):
    if s == 0:
        return max(mu, mp.mpf(0))
    t = mu / s
    return mu * mp.ncdf(t) + s * mp.npdf(t)


def _g2(mu, s):
    if s == 0:
        return max(mu, mp.mpf(0)) ** 2
    t = mu / s
    return (mu * mu + s * s) * mp.ncdf(t) + mu * s * mp.npdf(t)


def _breaks(center, width) -> list:
    pts = {mp.mpf(0), mp.mpf(1)}
    if width == 0:
        if 0 < center < 1:
            pts.add(center)
    else:
        for k in (-40, -8, -2, 0, 2, 8, 40):
            x = center + k * width
            if 0 < x < 1:
                pts.add(x)
    return sorted(pts)


def symmetric_loss(a: float, b: float, sigma: float, p: float, *, dps: int = 60) -> mp.mpf:
    """:math:`L(a, b, \\sigma; p)` by mpmath quadrature at ``dps`` digits."""
    with mp.workdps(dps):
        a, b, s, p = (mp.mpf(x) for x in (a, b, sigma, p))
        f = lambda x: x * x - 2 * x * _g1(a * x + b, s) + _g2(a * x + b, s)  # noqa: E731
        pts = _breaks(-b / a, s / abs(a)) if a != 0 else [mp.mpf(0), mp.mpf(1)]
        return (1 - p) * _g2(b, s) + p * mp.quad(f, pts)


def ratio_moments(theta, s, p, *, dps: int = 40) -> tuple:
    """N, D, N', D' of docs/theory.md §4 at threshold θ (mpmath quadrature)."""
    with mp.workdps(dps):
        theta, s, p = (mp.mpf(x) for x in (theta, s, p))
        pts = _breaks(theta, s)
        n = p * mp.quad(lambda x: x * _g1(x - theta, s), pts)
        d = (1 - p) * _g2(-theta, s) + p * mp.quad(lambda x: _g2(x - theta, s), pts)
        dn = -p * mp.quad(lambda x: x * mp.ncdf((x - theta) / s), pts)
        dd = -2 * ((1 - p) * _g1(-theta, s) + p * mp.quad(lambda x: _g1(x - theta, s), pts))
        return n, d, dn, dd


def optimal_symmetric_loss(p: float, r: float, *, theta_start: float, dps: int = 40) -> dict:
    """L*(p, r), θ*, a* by root finding on the stationarity condition from ``theta_start``."""
    with mp.workdps(dps):
        p, r = mp.mpf(p), mp.mpf(r)
        v = p / 3 - p * p / 4
        s = mp.sqrt(v * (1 - r) / r)

        def slope(th):
            n, d, dn, dd = ratio_moments(th, s, p, dps=dps)
            return (2 * dn * d - n * dd) / (d * d)

        theta = mp.findroot(slope, mp.mpf(theta_start), tol=mp.mpf(10) ** (-2 * dps // 3))
        n, d, _, _ = ratio_moments(theta, s, p, dps=dps)
        return {"loss": p / 3 - n * n / d, "theta": theta, "a": n / d, "s": s}
