"""Sympy derivation of the decoder asymptotics on the channel y = x + sZ (docs/theory.md §5, §6).

Run ``python -m rugtheory.derivations.asymptotics`` to print every derived expression. :func:`derive`
returns them as a dict of sympy expressions; ``rugtheory.theory.asymptotics`` evaluates the same
formulas in numpy, and ``tests/test_asymptotics.py`` checks that the two agree and that each
series' relative error goes to zero along its limit.

Notation: ``ℓ = ln(1/p)``, ``s² = v (1/r − 1)``, ``v = p/3 − p²/4``, ``t = θ/s``,
``I_n(x) = E[(x+Z)_+^n]/n!`` and, for a > 0, ``I_n(−a) = φ(a) R_n(a)``.

Steps
-----
1. Tail series (Watson's lemma): ``R_n(a) = (1/n!) ∫_0^∞ w^n e^{−aw} e^{−w²/2} dw
   ~ Σ_k (−1)^k (n+2k)! / (n! 2^k k! a^{n+2k+1})``.
2. ReLU, s → 0: an active feature ``u ≫ θ`` costs ``((1−c)u + cθ)² + c²s²``; minimising its
   u-average over the gain c gives ``s² + θ²/4 + O(θ³, θ s²)``; inactive features cost
   ``2 c² s² I_2(−t)`` each. Hence ``L*_ReLU = p s² K(p) (1 + O(s t³))`` with the reduced problem
   ``K(p) = min_t [1 + t²/4 + 2 (1−p)/p · I_2(−t)]``.
3. Its stationarity ``t/2 = 2 (1−p)/p · I_1(−t)`` with step 1 gives, for ``T = t²``,
   ``T = Λ − 3 ln T − 6/T + O(T⁻²)``, ``Λ = 2 ln((1−p)/p) + ln(8/π)``, and
   ``K = 3/2 + T/4 − 3/(2T) + O(T⁻²)``; inverted by iteration in ``ε = 1/Λ`` with ``λ = ln Λ``:
   ``K = Λ/4 − (3/4) λ + 3/2 + (9λ/4 − 3)/Λ + O(λ²/Λ²)``.
4. JumpReLU (gain), s → 0: ``L = p s² (1 + s t³/3) + (1−p) s² φ(t) (t + 1/t) + …``; stationarity
   ``(1−p) φ(t) = p s`` (the Bayes threshold τ_B: equal on/off posterior weight), so
   ``L = p s² [1 + s (τ³/3 + τ + 1/τ)]``, ``τ_B² = 2 ln((1−p)/(p s √(2π)))``.
5. MMSE, s → 0: an active feature costs ``s²`` (posterior ≈ N(y, s²)); features below the Bayes
   threshold are missed, ``p ∫_0^{s τ_B} u² du = p s³ τ_B³/3``: ``MMSE = p s² (1 + s τ_B³/3 + O(s))``.
   The O(s) term: writing ``f Var(x|y) = f_on V_TN + f_on w_0 E[x|on,y]²``, the truncation of the
   on-posterior at u = 0 and u = 1 lowers the first part by ``2 D p s³``,
   ``D = ∫ (1[τ>0] − Φ(τ) v(τ)) dτ`` (v the variance of N(τ, 1) truncated to [0, ∞)), and the
   second part is ``p s³ (∫_{−∞}^{τ_B} Φ (τ + φ/Φ)² dτ + …) = p s³ (τ_B³/3 + C_φ + O(1/τ_B))``,
   ``C_φ = ∫ φ²/Φ dτ``. Numerically (mpmath, 30 digits) ``D = C_φ = 0.90319728…``, so
   ``MMSE = p s² (1 + s (τ_B³/3 − C_φ) + O(s/τ_B))`` (the measured O(s/τ_B) coefficient tends to
   −1.645 ≈ −π²/6).
6. r → 0 (s → ∞): small-SNR expansion of ``E[Var(x|y)]`` by cumulants:
   ``MMSE = v − v²/s² + (v³ − κ₃²/2)/s⁴ + O(s⁻⁶)``, i.e.
   ``MMSE = (1−r) v − κ₃² r² / (2 v²) + O(r³)``, ``κ₃ = E(x − p/2)³ = p(1−p)²/4``.
7. r → 1 (s → 0 at fixed p): ``s² = v(1−r) + v(1−r)² + …``; ``L*_ReLU = p s² K(p) + O(s³)``,
   ``MMSE = p s² + p s³ τ_B³/3 + …``: ReLU/MMSE → K(p), a constant at each p.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["derive", "SYMBOLS"]

p, r, s, t, T, a, u, c, theta = sp.symbols("p r s t T a u c theta", positive=True)
ell, Lam, lam, eps = sp.symbols("ell Lambda lambda epsilon", positive=True)
v_sym, k3_sym = sp.symbols("v kappa3", positive=True)
SYMBOLS = {str(x): x for x in (p, r, s, t, T, a, u, c, theta, ell, Lam, lam, eps, v_sym, k3_sym)}


def _tail_series(n: int, order: int) -> sp.Expr:
    """Step 1: Watson's lemma for R_n(a), ``order`` terms."""
    w = sp.Symbol("w", positive=True)
    terms = []
    for k in range(order):
        coeff = (-1) ** k / (2**k * sp.factorial(k))
        terms.append(coeff * sp.integrate(w ** (n + 2 * k) * sp.exp(-a * w), (w, 0, sp.oo)) / sp.factorial(n))
    return sp.expand(sp.Add(*terms))


def _relu_active_cost() -> tuple[sp.Expr, sp.Expr]:
    """Step 2: min over c of ∫_0^1 ((1−c)u + cθ)² du + c² s², and its small-(θ, s) series."""
    q = sp.integrate(((1 - c) * u + c * theta) ** 2, (u, 0, 1)) + c**2 * s**2
    c_star = sp.solve(sp.diff(q, c), c)[0]
    q_star = sp.simplify(q.subs(c, c_star))
    e = sp.Symbol("e", positive=True)
    series = sp.series(q_star.subs({theta: e * theta, s: e * s}), e, 0, 3).removeO().subs(e, 1)
    return q_star, sp.expand(series)


def _relu_K_series(R1: sp.Expr, R2: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Step 3: the equation for T = t² and the series of K in Λ (ε = 1/Λ, λ = ln Λ)."""
    # stationarity: (2(1−p)/p) φ(t) = t / (2 R_1(t)); take logs with T = t²:
    #   ln(2(1−p)/p) − T/2 − ln √(2π) = ln t − ln 2 − ln R_1(t)
    R1T = sp.expand(R1.subs(a, sp.sqrt(T)) * T)  # = 1 − 3/T + 15/T² + ...
    R2T = sp.expand(R2.subs(a, sp.sqrt(T)) * T ** sp.Rational(3, 2))  # = 1 − 6/T + 45/T² + ...
    rhs_T = Lam - 3 * sp.log(T) + 2 * sp.log(R1T)  # T = Λ − 3 ln T + 2 ln(T R_1)
    x = sp.Symbol("x")
    t_equation = sp.series(rhs_T.subs(T, 1 / x), x, 0, 2).removeO().subs(x, 1 / T)  # Λ − 3 ln T − 6/T
    # K at the optimum: 1 + T/4 + t R_2/(2 R_1)
    K_of_T = 1 + T / 4 + sp.series((R2T / R1T / 2).subs(T, 1 / x), x, 0, 2).removeO().subs(x, 1 / T)
    # fixed-point iteration T = Λ − 3 ln T − 6/T, with T = Λ (1 + δ), ln T = λ + ln(1 + δ)
    delta = sp.Integer(0)
    for _ in range(3):
        new_T = 1 / eps - 3 * (lam + sp.log(1 + delta)) - 6 * eps / (1 + delta)
        delta = sp.expand(sp.series(new_T * eps - 1, eps, 0, 3).removeO())
    T_series = sp.expand((1 + delta) / eps)
    K_series = sp.expand(sp.series(K_of_T.subs(T, T_series), eps, 0, 2).removeO())
    return t_equation, K_of_T, K_series


def _mmse_small_snr(order: int = 6) -> sp.Expr:
    """Step 6: MMSE = v − E[(∂_η log h / ε)²] with h(η) = E exp(ηξε − ξ²ε²/2), ε = 1/s."""
    eta, xi = sp.symbols("eta xi", real=True)
    mu4, mu5, mu6 = sp.symbols("mu4 mu5 mu6")
    moments = {0: 1, 1: 0, 2: v_sym, 3: k3_sym, 4: mu4, 5: mu5, 6: mu6}
    ser = sp.expand(sp.series(sp.exp(eta * xi * eps - xi**2 * eps**2 / 2), eps, 0, order + 1).removeO())
    h = sp.expand(sum(ser.coeff(xi, k) * moments[k] for k in range(7)))
    logh = sp.series(sp.log(h), eps, 0, order + 1).removeO()
    g = sp.expand(sp.series((sp.diff(logh, eta) / eps) ** 2, eps, 0, order - 1).removeO())
    integrand = sp.series(sp.expand(g * h), eps, 0, order - 1).removeO()
    poly = sp.Poly(sp.expand(integrand), eta)
    gauss = lambda k: 0 if k % 2 else sp.factorial2(k - 1)  # noqa: E731
    expectation = sum(cf * gauss(m[0]) for m, cf in zip(poly.monoms(), poly.coeffs()))
    return sp.expand(sp.series(v_sym - expectation, eps, 0, 5).removeO())


def _c_phi(dps: int = 30) -> sp.Float:
    """Step 5's constant ``C_φ = ∫ φ(τ)²/Φ(τ) dτ`` by mpmath quadrature (no closed form)."""
    import mpmath as mp

    with mp.workdps(dps + 5):
        val = mp.quad(lambda x: mp.npdf(x) ** 2 / mp.ncdf(x), [-mp.inf, -10, 0, 10, mp.inf])
        return sp.Float(mp.nstr(val, dps), dps)


def derive() -> dict[str, sp.Expr]:
    """Every derived expression, keyed by name (see the module docstring for the steps)."""
    R0, R1, R2 = (_tail_series(n, 3) for n in range(3))
    q_star, q_series = _relu_active_cost()
    t_equation, K_of_T, K_series = _relu_K_series(R1, R2)
    v_expr = p / 3 - p**2 / 4
    s2 = v_expr * (1 / r - 1)
    kappa3 = sp.factor(sp.expand(p / 4 - 3 * (p / 2) * (p / 3) + 2 * (p / 2) ** 3))
    # K in terms of ℓ = ln(1/p) as p → 0: Λ = 2ℓ + ln(8/π)
    Lam_of_ell = 2 * ell + sp.log(8 / sp.pi)
    K_leading = sp.expand(K_series.coeff(eps, -1) / eps).subs(eps, 1 / Lam).subs(Lam, Lam_of_ell)
    K_leading = sp.expand(K_leading).coeff(ell, 1) * ell  # ℓ/2
    K_first = sp.expand(
        K_series.coeff(eps, 0).subs(lam, sp.log(Lam))
        + K_series.coeff(eps, -1) * Lam
        - K_leading.subs(ell, (Lam - sp.log(8 / sp.pi)) / 2)
    )
    K_second = sp.expand(K_series.coeff(eps, 1) / Lam).subs(lam, sp.log(Lam))
    tau2 = 2 * sp.log((1 - p) / (p * s * sp.sqrt(2 * sp.pi)))
    tau = sp.Symbol("tau_B", positive=True)
    mmse_small = _mmse_small_snr()
    mmse_small_r = sp.expand(
        sp.series(mmse_small.subs(eps, sp.sqrt(r / (v_sym * (1 - r)))), r, 0, 3).removeO()
    )
    return {
        "R0_tail": R0,
        "R1_tail": R1,
        "R2_tail": R2,
        "relu_active_cost_exact": q_star,
        "relu_active_cost_small": q_series,
        "relu_reduced_objective": 1 + t**2 / 4 + 2 * (1 - p) / p * sp.Function("I_2")(-t),
        "relu_T_equation": t_equation,
        "relu_K_at_optimum": K_of_T,
        "relu_K_series": K_series,
        "relu_K_leading": K_leading,
        "relu_K_first_correction": K_first,
        "relu_K_second_correction": K_second,
        "Lambda": 2 * sp.log((1 - p) / p) + sp.log(8 / sp.pi),
        "channel_s2": s2,
        "relu_sparse_leading": sp.expand(p * s2.subs(p, p).series(p, 0, 3).removeO().coeff(p, 1) * p * ell / 2),
        "relu_sparse_two_term": p * s2 * (K_leading + K_first),
        "bayes_threshold_tau2": tau2,
        "jumprelu_sparse_two_term": p * s**2 * (1 + s * (tau**3 / 3 + tau + 1 / tau)),
        "mmse_missed_features": p * sp.integrate(u**2, (u, 0, s * tau)),
        "mmse_sparse_two_term": p * s**2 * (1 + s * tau**3 / 3),
        "C_phi": _c_phi(),
        "mmse_sparse_three_term": p * s**2 * (1 + s * (tau**3 / 3 - sp.Symbol("C_phi", positive=True))),
        "kappa3": kappa3,
        "mmse_small_snr": mmse_small,
        "mmse_small_r": mmse_small_r,
        "linear_loss": (1 - r) * v_sym,
        "s2_near_r1": sp.expand(sp.series(s2.subs(r, 1 - sp.Symbol("h")), sp.Symbol("h"), 0, 3).removeO()),
        "relu_near_r1": p * s**2 * sp.Symbol("K_p"),
        "mmse_near_r1": p * s**2 * (1 + s * tau**3 / 3),
    }


if __name__ == "__main__":
    for name, expr in derive().items():
        print(f"{name}: {expr}")
