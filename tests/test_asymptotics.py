"""Asymptotic series (derivations/asymptotics.py, rugtheory.theory.asymptotics) against the exact
decoder losses (rugtheory.theory.decoders, themselves checked against mpmath in test_decoders.py)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from rugtheory.theory import asymptotics as A
from rugtheory.theory import channel, decoders


@pytest.fixture(scope="module")
def derived() -> dict[str, sp.Expr]:
    from rugtheory.derivations.asymptotics import derive

    return derive()


P_SEQ = np.array([1e-4, 1e-6, 1e-8, 1e-10, 1e-12])


def _sym(name: str) -> sp.Symbol:
    from rugtheory.derivations.asymptotics import SYMBOLS

    return SYMBOLS[name]


def test_runtime_series_are_the_derived_expressions(derived: dict[str, sp.Expr]) -> None:
    """The numpy formulas evaluate exactly the sympy-derived expressions (to rounding: both are
    the same few floating-point operations, so rel=1e-13 is generous)."""
    ell, Lam, p, r, s, v, k3 = (_sym(n) for n in ("ell", "Lambda", "p", "r", "s", "v", "kappa3"))
    tau = sp.Symbol("tau_B", positive=True)
    for pv in [1e-12, 1e-6, 3e-3]:
        lv = -np.log(pv)
        Lv = 2 * lv + np.log(8 / np.pi)
        K2 = float((derived["relu_K_leading"] + derived["relu_K_first_correction"]).subs({ell: lv, Lam: Lv}))
        K3 = K2 + float(derived["relu_K_second_correction"].subs({Lam: Lv}))
        assert A.relu_constant_series(pv, 2) == pytest.approx(K2, rel=1e-13)
        assert A.relu_constant_series(pv, 3) == pytest.approx(K3, rel=1e-13)
        for rv in [0.1, 0.7]:
            sv = float(channel.channel_scale(pv, rv))
            tb = float(A.bayes_threshold(pv, rv))
            assert tb**2 == pytest.approx(float(derived["bayes_threshold_tau2"].subs({p: pv, s: sv})), rel=1e-13)
            sub = {p: pv, s: sv, tau: tb}
            assert A.mmse_sparse_series(pv, rv) == pytest.approx(
                float(derived["mmse_sparse_two_term"].subs(sub)), rel=1e-13
            )
            three = (
                derived["mmse_sparse_three_term"].subs(sub).subs(sp.Symbol("C_phi", positive=True), derived["C_phi"])
            )
            assert A.mmse_sparse_series(pv, rv, 3) == pytest.approx(float(three), rel=1e-13)
            assert A.jumprelu_sparse_series(pv, rv) == pytest.approx(
                float(derived["jumprelu_sparse_two_term"].subs(sub)), rel=1e-13
            )
            lead = float(derived["relu_sparse_leading"].subs({p: pv, r: rv, ell: lv}))
            assert A.relu_sparse_series(pv, rv, 1) == pytest.approx(lead, rel=1e-13)
    for pv in [0.05, 0.3]:
        vv = pv / 3 - pv**2 / 4
        kv = float(derived["kappa3"].subs(p, pv))
        assert A.third_cumulant(pv) == pytest.approx(kv, rel=1e-14)
        for rv in [1e-3, 0.05]:
            ref = float(derived["mmse_small_r"].subs({v: vv, k3: kv, r: rv}))
            assert A.mmse_small_r_series(pv, rv) == pytest.approx(ref, rel=1e-13)


def test_tail_series_of_repeated_integrals(derived: dict[str, sp.Expr]) -> None:
    """Watson's lemma (step 1) against the quadrature R_n: error of the 3-term series ~ a^{-(n+7)}."""
    a = _sym("a")
    for n in range(3):
        for av in [8.0, 16.0, 32.0]:
            series = float(derived[f"R{n}_tail"].subs(a, av))
            exact = float(channel.scaled_repeated_normal_integral(n, np.array([av]))[0])
            # next term of the series has size (n+6)!/(n! 48 a^{n+7}); relative to a^{-(n+1)}
            bound = 2 * float(sp.factorial(n + 6) / (sp.factorial(n) * 48)) / av**6
            assert abs(series / exact - 1) < bound, (n, av)


def test_reduced_relu_constant_is_the_minimum_of_its_objective() -> None:
    t = np.linspace(0.0, 12.0, 240001)
    for pv in [1e-2, 1e-6, 1e-12]:
        obj = 1 + t**2 / 4 + 2 * (1 - pv) / pv * channel.repeated_normal_integral(2, -t)
        res = A.relu_sparse_constant(pv)
        # grid spacing 5e-5 misses the minimum by ~1e-9 relative: the bisection must be below it
        assert float(res.K) <= obj.min() * (1 + 1e-14)
        assert float(res.K) >= obj.min() * (1 - 1e-8)


@pytest.fixture(scope="module")
def sparse_exact() -> dict[float, dict[str, np.ndarray]]:
    out = {}
    for r in (0.1, 0.5):
        tab = decoders.decoder_table(P_SEQ, np.full_like(P_SEQ, r))
        out[r] = {"relu": tab.relu, "mmse": tab.mmse, "jg": tab.jumprelu_gain, "s": tab.s}
    return out


def _decreasing(err: np.ndarray) -> bool:
    return bool(np.all(np.diff(np.abs(err)) < 0))


@pytest.mark.parametrize("r", [0.1, 0.5])
def test_relu_series_error_goes_to_zero_as_p_to_zero(r: float, sparse_exact) -> None:
    ex = sparse_exact[r]
    s = ex["s"]
    reduced = P_SEQ * s**2 * A.relu_sparse_constant(P_SEQ).K / ex["relu"] - 1
    two = A.relu_sparse_series(P_SEQ, r, 2) / ex["relu"] - 1
    three = A.relu_sparse_series(P_SEQ, r, 3) / ex["relu"] - 1
    assert _decreasing(reduced) and _decreasing(two) and _decreasing(three)
    # measured at p = 1e-12: 5.6e-6 / 8.8e-3 / 3.0e-4 (r = 0.1); bounds leave a factor ~2
    assert abs(reduced[-1]) < 1.2e-5
    assert abs(two[-1]) < 1.8e-2
    assert abs(three[-1]) < 6e-4
    # the reduced problem's error is O(s t³): it must shrink like sqrt(p) (factor 10 per 1e-2 in p)
    assert np.all(np.abs(reduced[1:] / reduced[:-1]) < 0.2)


@pytest.mark.parametrize("r", [0.1, 0.5])
def test_mmse_and_jumprelu_series_go_to_zero_as_p_to_zero(r: float, sparse_exact) -> None:
    ex = sparse_exact[r]
    s = ex["s"]
    one = A.mmse_sparse_series(P_SEQ, r, 1) / ex["mmse"] - 1
    two = A.mmse_sparse_series(P_SEQ, r, 2) / ex["mmse"] - 1
    jg = A.jumprelu_sparse_series(P_SEQ, r, 2) / ex["jg"] - 1
    assert _decreasing(one) and _decreasing(two) and _decreasing(jg)
    # the remainder after two terms is O(p s³): bounded in units of p s³ (measured -0.5 .. -0.72)
    rem = (ex["mmse"] / (P_SEQ * s**2) - 1 - s * A.bayes_threshold(P_SEQ, r) ** 3 / 3) / s
    assert np.all(np.abs(rem) < 1.0)


@pytest.mark.parametrize("r", [0.1, 0.5])
def test_relu_over_mmse_grows_like_half_log_inverse_p(r: float, sparse_exact) -> None:
    ex = sparse_exact[r]
    ratio = ex["relu"] / ex["mmse"]
    K = A.relu_sparse_constant(P_SEQ).K
    assert np.all(np.diff(ratio) > 0)  # no constant bound along p -> 0
    assert _decreasing(ratio / K - 1)
    # ratio/K − 1 is dominated by the MMSE's own first correction s τ_B³/3 (4.1e-4 at r = 0.1)
    assert abs(ratio[-1] / K[-1] - 1) < 1e-3
    assert ratio[-1] > 12.5  # ½ ln(1e12) = 13.8, minus the ln ln correction
    # JumpReLU (and TopK at large n, the same decoder) is within O(s τ) of the MMSE
    assert np.all(np.diff(ex["jg"] / ex["mmse"]) < 0)
    tb = A.bayes_threshold(P_SEQ[-1], r)
    assert 0 < ex["jg"][-1] / ex["mmse"][-1] - 1 < 2 * ex["s"][-1] * tb  # measured 1.1 s τ_B


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_small_r_series(p: float) -> None:
    r = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    tab = decoders.decoder_table(np.full_like(r, p), r)
    two = A.mmse_small_r_series(p, r, 2) / tab.mmse - 1
    assert _decreasing(two)
    # the remainder is O(r³): once r <= 1e-2 each decade of r gains 3 decades (measured
    # 1.04e-3 and 1.00e-3); 2e-3 rejects an O(r²) remainder (ratio 1e-2)
    assert np.all(np.abs(two[2:] / two[1:-1]) < 2e-3)
    # ReLU and JumpReLU(shift) reach the affine optimum faster than any power of r
    gap = tab.relu / tab.linear - 1
    assert abs(gap[-2]) < 1e-10 and abs(gap[-1]) < 1e-12


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_near_one_series(p: float) -> None:
    h = np.array([1e-1, 1e-2, 1e-3, 1e-4, 1e-6])
    r = 1 - h
    tab = decoders.decoder_table(np.full_like(r, p), r)
    relu = A.relu_near_one_series(p, r) / tab.relu - 1
    mmse = A.mmse_near_one_series(p, r) / tab.mmse - 1
    assert _decreasing(relu) and _decreasing(mmse)
    # O(s) = O(sqrt(h)) remainders: measured 2.2e-4 (relu) and 7e-5 (mmse) at h = 1e-6
    assert abs(relu[-1]) < 5e-4 and abs(mmse[-1]) < 2e-4
    K = A.relu_sparse_constant(p).K
    # ReLU/MMSE → K(p): the gap is the MMSE's first correction s τ_B³/3 (4e-3 at h = 1e-6)
    s, tb = tab.s[-1], A.bayes_threshold(p, r[-1])
    assert abs(tab.relu[-1] / tab.mmse[-1] / K - 1) < 1.5 * s * tb**3 / 3


def test_relu_over_mmse_rises_with_r_to_its_bound_K() -> None:
    """The numerical basis of the verdict's 'at fixed p the ratio is bounded uniformly in r by
    K(p)', and of 'K(p₀) bounds every p >= p₀': the ratio increases with r towards K(p), and K
    decreases in p."""
    r = np.array([1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9999])
    for p in (0.3, 1e-2, 1e-4, 1e-8):
        t = decoders.decoder_table(np.full_like(r, p), r)
        ratio = t.relu / t.mmse
        K = float(A.relu_sparse_constant(p).K)
        assert np.all(np.diff(ratio) > -1e-12), p
        assert np.all(ratio <= K * (1 + 1e-9)), p
    K = A.relu_sparse_constant(np.logspace(-12, np.log10(0.99), 60)).K
    assert np.all(np.diff(K) < 0)


def test_mmse_boundary_constant_identity_and_three_term_series(sparse_exact) -> None:
    """Step 5: the boundary loss D equals C_φ = ∫ φ²/Φ (30 digits), and with it the MMSE's
    three-term series has a remainder O(s/τ_B) (measured coefficient → −1.645)."""
    import mpmath as mp

    with mp.workdps(30):
        c_phi = mp.quad(lambda x: mp.npdf(x) ** 2 / mp.ncdf(x), [-mp.inf, -10, 0, 10, mp.inf])

        def v(t):
            lam = mp.npdf(t) / mp.ncdf(t)
            return 1 - t * lam - lam**2

        D = mp.quad(lambda t: (1 if t > 0 else 0) - mp.ncdf(t) * v(t), [-mp.inf, -10, 0, 10, mp.inf])
        assert abs(D - c_phi) < mp.mpf(10) ** -25
        assert abs(float(c_phi) - A.C_PHI) < 1e-15
    for r in (0.1, 0.5):
        ex = sparse_exact[r]
        three = A.mmse_sparse_series(P_SEQ, r, 3) / ex["mmse"] - 1
        two = A.mmse_sparse_series(P_SEQ, r, 2) / ex["mmse"] - 1
        assert _decreasing(three)
        assert np.all(np.abs(three) < np.abs(two))
        scaled = three * A.bayes_threshold(P_SEQ, r) / ex["s"]
        assert np.all(np.abs(scaled) < 2.0)
