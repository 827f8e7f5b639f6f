"""mpmath oracle for the decoders of :mod:`rugtheory.theory.decoders` (docs/theory.md §5), at explicit precision.

Independent of the double-precision code: it uses the *raw* moments of the channel law over
``{y > θ}`` (``E[y^k 1]``, ``E[x y^k 1]``, in the textbook Gaussian closed forms, integrated
over the feature value u by ``mpmath.quad``) and minimises the quadratic form directly. At
``dps`` digits the cancellation ``E x² − bᵀA⁻¹b`` (up to ~25 digits at p = 1e−12) is harmless,
so no Stein forms or baselines are needed. The MMSE is ``∫ f(y) (E[x²|y] − E[x|y]²) dy`` by
``mpmath.quad`` with the posterior moments in closed form.

Slow (tens of milliseconds to seconds per value): for tests and spot checks only.
"""

from __future__ import annotations

import mpmath as mp

from rugtheory.theory.checks import check_probability, check_ratio

__all__ = ["raw_region_moments", "thresholded_loss_at", "optimal_thresholded_loss", "mmse_loss", "channel_scale"]


def channel_scale(p: float, r: float, *, dps: int = 50) -> mp.mpf:
    """``s = sqrt((p/3 − p²/4)(1/r − 1))`` at ``dps`` digits."""
    p = float(check_probability(p))
    r = float(check_ratio(r))
    with mp.workdps(dps):
        P, R = mp.mpf(p), mp.mpf(r)
        return +mp.sqrt((P / 3 - P**2 / 4) * (1 / R - 1))


def _breaks(theta, s, lo=0, hi=1):
    pts = {mp.mpf(lo), mp.mpf(hi)}
    for k in (-12, -6, -3, -1, 0, 1, 3, 6, 12):
        q = theta + k * s
        if lo < q < hi:
            pts.add(q)
    return sorted(pts)


def raw_region_moments(theta: float, p: float, r: float, *, dps: int = 50) -> dict[str, mp.mpf]:
    """Raw moments over ``{y > θ}``: ``E[1], E[y], E[y²], E[x], E[xy]`` and ``E[x²]`` (all of y).

    Off component (x = 0, y = sZ): ``Q(t)``, ``s φ(t)``, ``s² (Q(t) + t φ(t))`` with t = θ/s.
    On component (x = u): with ``a = (θ − u)/s``, ``E[1[y>θ]] = Q(a)``,
    ``E[y 1] = u Q(a) + s φ(a)``, ``E[y² 1] = u² Q(a) + 2 u s φ(a) + s² (Q(a) + a φ(a))``,
    integrated over u in [0, 1].
    """
    with mp.workdps(dps):
        P = mp.mpf(float(check_probability(p)))
        s = channel_scale(p, r, dps=dps)
        th = mp.mpf(theta)
        if s == 0:
            raise ValueError("r must be in (0, 1) for the oracle (s = 0 at r = 1)")
        t = th / s
        Q = lambda z: mp.ncdf(-z)  # noqa: E731
        off = {
            "E1": Q(t),
            "Ey": s * mp.npdf(t),
            "Ey2": s**2 * (Q(t) + t * mp.npdf(t)),
        }

        def inner(u, k, xw):
            a = (th - u) / s
            qa, fa = Q(a), mp.npdf(a)
            if k == 0:
                val = qa
            elif k == 1:
                val = u * qa + s * fa
            else:
                val = u**2 * qa + 2 * u * s * fa + s**2 * (qa + a * fa)
            return val * u**xw

        pts = _breaks(th, s)
        on = {
            "E1": mp.quad(lambda u: inner(u, 0, 0), pts),
            "Ey": mp.quad(lambda u: inner(u, 1, 0), pts),
            "Ey2": mp.quad(lambda u: inner(u, 2, 0), pts),
            "Ex": mp.quad(lambda u: inner(u, 0, 1), pts),
            "Exy": mp.quad(lambda u: inner(u, 1, 1), pts),
        }
        out = {k: (1 - P) * off[k] + P * on[k] for k in off}
        out["Ex"] = P * on["Ex"]
        out["Exy"] = P * on["Exy"]
        out["Ex2"] = P / 3
        return out


def thresholded_loss_at(decoder: str, theta: float, p: float, r: float, *, dps: int = 50) -> mp.mpf:
    """Loss of ``relu`` / ``jumprelu_gain`` / ``jumprelu_shift`` at threshold θ, optimal linear part.

    ``relu``: ``g = (y − θ) 1``, loss ``E x² − E[x g]² / E[g²]``. ``jumprelu_gain``: ``g = y 1``.
    ``jumprelu_shift``: the 2×2 normal equations in the basis ``{y 1, 1}``.
    """
    if decoder not in ("relu", "jumprelu_gain", "jumprelu_shift"):
        raise ValueError(f"decoder must be one of 'relu', 'jumprelu_gain', 'jumprelu_shift', got {decoder!r}")
    with mp.workdps(dps):
        M = raw_region_moments(theta, p, r, dps=dps)
        th = mp.mpf(theta)
        if decoder == "relu":
            xg = M["Exy"] - th * M["Ex"]
            gg = M["Ey2"] - 2 * th * M["Ey"] + th**2 * M["E1"]
            return M["Ex2"] - xg**2 / gg
        if decoder == "jumprelu_gain":
            return M["Ex2"] - M["Exy"] ** 2 / M["Ey2"]
        A = mp.matrix([[M["Ey2"], M["Ey"]], [M["Ey"], M["E1"]]])
        b = mp.matrix([M["Exy"], M["Ex"]])
        sol = mp.lu_solve(A, b)
        return M["Ex2"] - (b[0] * sol[0] + b[1] * sol[1])


def optimal_thresholded_loss(
    decoder: str, p: float, r: float, *, theta_start: float, dps: int = 40
) -> tuple[mp.mpf, mp.mpf]:
    """Minimise :func:`thresholded_loss_at` over θ from ``theta_start`` (a root of dL/dθ by
    ``mpmath.findroot`` on a numerical derivative). Returns ``(loss, theta)``."""
    with mp.workdps(dps):
        s = channel_scale(p, r, dps=dps)
        f = lambda th: thresholded_loss_at(decoder, th, p, r, dps=dps)  # noqa: E731
        h = s * mp.mpf(10) ** (-(dps // 4))
        df = lambda th: (f(th + h) - f(th - h)) / (2 * h)  # noqa: E731
        th = mp.findroot(
            df,
            (mp.mpf(theta_start) - s / 20, mp.mpf(theta_start) + s / 20),
            solver="secant",
            tol=mp.mpf(10) ** (-(dps // 2)),
        )
        return f(th), th


def mmse_loss(p: float, r: float, *, dps: int = 40) -> mp.mpf:
    """``E[(x − E[x|y])²]`` by ``mpmath.quad`` of ``f(y) Var(x|y)`` over y.

    With ``α = −y/s``, ``β = (1−y)/s``, ``Z = Φ(β) − Φ(α)``: ``f = (1−p) φ(y/s)/s + p Z``,
    ``f E[x|y] = p (y Z + s (φ(α) − φ(β)))``,
    ``f E[x²|y] = p (y² Z + 2 y s (φ(α) − φ(β)) + s² (Z + α φ(α) − β φ(β)))``.
    """
    with mp.workdps(dps):
        P = mp.mpf(float(check_probability(p)))
        s = channel_scale(p, r, dps=dps)

        def integrand(y):
            al, be = -y / s, (1 - y) / s
            Z = mp.ncdf(be) - mp.ncdf(al) if al < 0 else mp.ncdf(-al) - mp.ncdf(-be)
            fa, fb = mp.npdf(al), mp.npdf(be)
            f = (1 - P) * mp.npdf(y / s) / s + P * Z
            m1 = P * (y * Z + s * (fa - fb))
            m2 = P * (y**2 * Z + 2 * y * s * (fa - fb) + s**2 * (Z + al * fa - be * fb))
            return m2 - m1**2 / f

        tb = mp.sqrt(max(mp.mpf(0), 2 * mp.log((1 - P) / (P * s * mp.sqrt(2 * mp.pi)))))
        pts = {mp.mpf(k) * s for k in (-40, -12, -6, -3, -1, 0, 1, 3, 6, 12, 40)}
        pts |= {1 + mp.mpf(k) * s for k in (-40, -12, -6, -3, -1, 0, 1, 3, 6, 12, 40)}
        w = 1 / max(tb, mp.mpf(1))
        pts |= {(tb + k * w) * s for k in (-8, -4, -2, -1, 0, 1, 2, 4, 8)}
        return mp.quad(integrand, sorted(pts))
