"""rugtheory.testing: strategies give valid inputs, assertions pass on right losses and fail on wrong ones.

The "right" losses come from an independent route: a Monte Carlo of the model itself
(``model_loss_monte_carlo``), against the exact finite-n engine (docs/theory.md §7) inside the
assertion. A loss moved by 5 standard errors must fail (the assertion allows 4).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rugtheory as rt
from rugtheory import testing as T
from rugtheory.theory.finite_n import exact_loss_of_row
from rugtheory.twins.montecarlo import model_loss_monte_carlo

#: Monte Carlo samples per check: SE ~ 1-2% of the loss at n >= 32, a few hundred ms at n = 128.
SAMPLES = 6000


def _mc(w: T.ModelWeights, seed: int = 7) -> tuple[float, float]:
    est = model_loss_monte_carlo(w.W_in, w.W_out, w.b, w.p, n_samples=SAMPLES, seed=seed)
    return est.mean, est.se


# ------------------------------------------------------------------------------------------------
# import hygiene


def test_import_pulls_neither_torch_nor_hypothesis() -> None:
    code = ("import sys, rugtheory, rugtheory.testing; bad = [m for m in ('torch', 'hypothesis') if m in sys.modules]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------------------------------------
# strategies


@settings(max_examples=80)
@given(st.data())
def test_hyperparameters_are_valid(data: st.DataObject) -> None:
    n_lo = data.draw(st.sampled_from([2, 3, 16, 33]))
    n_hi = data.draw(st.sampled_from([64, 100, 1024]))
    p_lo = data.draw(st.sampled_from([1e-6, 1e-3, 0.05]))
    p_hi = data.draw(st.sampled_from([0.06, 0.5, 1.0]))
    r_lo = data.draw(st.sampled_from([0.05, 0.25, 0.5]))
    r_hi = data.draw(st.sampled_from([0.5, 0.75, 1.0]))
    h = data.draw(T.hyperparameters(n=(n_lo, n_hi), p=(p_lo, p_hi), r=(r_lo, r_hi)))
    assert isinstance(h.n, int) and h.n & (h.n - 1) == 0 and n_lo <= h.n <= n_hi
    assert isinstance(h.m, int) and 1 <= h.m <= h.n
    assert r_lo - 1e-12 <= h.r <= r_hi + 1e-12
    assert p_lo <= h.p <= p_hi


@settings(max_examples=40)
@given(T.hyperparameters(n=128, p=0.05, r=0.3))
def test_fixed_hyperparameters(h: T.Hyperparameters) -> None:
    assert h == (128, round(0.3 * 128), 0.05)


@settings(max_examples=40)
@given(T.hyperparameters(n=(16, 512), p=(1e-3, 0.2), r=(0.1, 1.0), min_pn=4.0))
def test_min_pn(h: T.Hyperparameters) -> None:
    assert h.p * h.n >= 4.0 * (1 - 1e-12) and 1e-3 <= h.p <= 0.2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": (100, 120)}, r"n range \(100, 120\) contains no power of two"),
    ({"n": 48}, r"n must be a power of two"),
    ({"n": (64, 32)}, r"n must be a power of two >= 2 or an integer range"),
    ({"n": (16.0, 64)}, r"n must be"),
    ({"p": (0.5, 0.1)}, r"p must be a number in \(0, 1\] or a \(lo, hi\) range"),
    ({"p": 0.0}, r"p must be"),
    ({"p": (0.1, 2.0)}, r"p must be"),
    ({"r": 1.5}, r"r must be"),
    ({"r": (0.1, 0.2, 0.3)}, r"r must be"),
    ({"n": 4, "r": (0.3, 0.4)}, r"leaves no size to draw"),
    ({"min_pn": -1.0}, r"min_pn must be"),
])
def test_hyperparameter_errors_name_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        T.hyperparameters(**kwargs)
    assert "\n" not in str(err.value)


def test_paired_rug_ratio_error() -> None:
    with pytest.raises(ValueError, match=r"r must allow r <= 1/2 for a paired rug"):
        T.paired_rug_weights(r=(0.6, 0.9))
    with pytest.raises(ValueError, match=r"r must be a number in \(0, 0.5\]"):
        T.paired_rug_weights(r=0.75)


@settings(max_examples=30)
@given(T.any_weights(n=(8, 128), p=(0.005, 0.5)))
def test_weight_strategies_give_valid_models(w: T.ModelWeights) -> None:
    W_in, W_out, b, p = w  # unpacks like a tuple
    assert W_in.shape == (w.m, w.n) and W_out.shape == (w.n, w.m) and b.shape == (w.n,)
    assert all(np.all(np.isfinite(x)) for x in (W_in, W_out, b))
    assert 0 < p <= 1 and 0 < w.r <= 1
    np.testing.assert_allclose(w.W, W_out @ W_in)
    if w.structure in ("antipodal pairs", "untied pairs"):
        assert w.r == 0.5
    if w.structure == "paired rug":
        assert w.r <= 0.5
    if w.large_n_loss is not None:
        assert 0 <= w.large_n_loss < p / 3  # below the zero-output baseline


@settings(max_examples=6)
@given(T.persian_rug_weights(n=(16, 64), p=(0.02, 0.3), r=(0.1, 0.6), min_pn=4.0))
def test_rug_strategy_is_the_rug(w: T.ModelWeights) -> None:
    """Every row of the strategy's rug has the loss of row 0 (§8): the dense engine equals one row."""
    W = w.W
    np.testing.assert_allclose(np.diag(W), np.diag(W)[0], rtol=1e-12)
    assert np.sum(W[0] ** 2) - W[0, 0] ** 2 == pytest.approx(W[0, 0] ** 2 * (1 / w.r - 1), rel=1e-9)  # rank bound
    one, _ = exact_loss_of_row(W[0], 0, w.b[0], w.p, tol=1e-8)
    assert T.exact_loss(w.W_in, w.W_out, w.b, w.p, tol=1e-8).loss == pytest.approx(one, rel=1e-6)


@settings(max_examples=6)
@given(st.one_of(T.antipodal_pair_weights(n=(4, 64), p=(1e-3, 0.9)), T.untied_pair_weights(n=(4, 64), p=(1e-3, 0.9))))
def test_pair_strategies_reach_their_exact_loss(w: T.ModelWeights) -> None:
    """Pairs do not interact: the enumeration route equals the box-spline loss of §10.1-§10.2 at any n."""
    res = T.exact_loss(*w)
    assert res.route.startswith("enumeration")
    assert res.loss == pytest.approx(w.large_n_loss, rel=1e-9, abs=1e-15)


# ------------------------------------------------------------------------------------------------
# assert_loss_matches_weights


#: Where the engine is quick and tight (p·n >= 6, r <= 3/4); at small p·n and r near 1 it needs up to
#: 2^15 inversion nodes per row (seconds to tens of seconds at n = 128) and bounds its error loosely.
REGIME = {"n": (64, 128), "p": (0.03, 0.3), "r": (0.1, 0.75), "min_pn": 6.0}


@settings(max_examples=10)
@given(T.any_weights(**REGIME))
def test_loss_matches_passes_on_the_models_own_monte_carlo(w: T.ModelWeights) -> None:
    mean, se = _mc(w)
    report = T.assert_loss_matches_weights(w.W_in, w.W_out, w.b, w.p, mean, se)
    assert report.passed and abs(report.values["z"]) <= 4.0
    assert report.values["engine_error"] <= se / 10  # the engine is not what makes it pass


@settings(max_examples=6)
@given(T.any_weights(**REGIME), st.sampled_from([-5.0, 5.0]))
def test_loss_matches_fails_five_se_off(w: T.ModelWeights, shift: float) -> None:
    mean, se = _mc(w)
    with pytest.raises(AssertionError) as err:
        T.assert_loss_matches_weights(w.W_in, w.W_out, w.b, w.p, mean + shift * se, se)
    msg = str(err.value)
    assert msg.startswith("assert_loss_matches_weights: FAILED")
    for needle in ("predicted:", "exact finite-n loss of these weights", "measured:", "combined SE",
                   "tolerance: k·sqrt(se² + engine_error²)", "why:", "likely causes"):
        assert needle in msg, needle


def test_loss_matches_accepts_effective_matrix_and_torch() -> None:
    torch = pytest.importorskip("torch")
    rug = rt.persian_rug(64, 16, seed=1)
    sc = rt.theory_scalars(rug, 0.1)
    W = sc.alpha * rug.dense()
    b = np.full(64, sc.beta)
    est = model_loss_monte_carlo(W, None, b, 0.1, n_samples=SAMPLES, seed=3)
    T.assert_loss_matches_weights(W, None, b, 0.1, est.mean, est.se)
    T.assert_loss_matches_weights(torch.tensor(W), None, torch.tensor(b), torch.tensor(0.1),
                                  torch.tensor(est.mean), torch.tensor(est.se))


def test_loss_matches_argument_errors() -> None:
    w = np.eye(4)
    with pytest.raises(ValueError, match="se must be >= 0"):
        T.assert_loss_matches_weights(w, None, np.zeros(4), 0.1, 0.0, -1.0)
    with pytest.raises(ValueError, match="k must be a positive number"):
        T.assert_loss_matches_weights(w, None, np.zeros(4), 0.1, 0.0, 1.0, k=0)
    with pytest.raises(ValueError, match=r"W_out must have shape \(4, 2\)"):
        T.assert_loss_matches_weights(np.ones((2, 4)), np.ones((2, 4)), np.zeros(4), 0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="p must be in"):
        T.assert_loss_matches_weights(w, None, np.zeros(4), 1.5, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# assert_near_prediction


def test_near_prediction_passes_on_the_rug_and_names_its_references() -> None:
    n, m, p = 128, 32, 0.05
    rug = rt.persian_rug(n, m, seed=0)
    sc = rt.theory_scalars(rug, p)
    exact, _ = exact_loss_of_row(sc.alpha * rug.row(0), 0, sc.beta, p)
    report = T.assert_near_prediction(exact, n, m, p, rtol=0.0)
    assert report.values["rug_finite_n"] == pytest.approx(exact, rel=1e-7)
    assert report.values["L_star"] == pytest.approx(float(rt.optimal_symmetric_loss(p, 0.25).loss))
    assert report.values["expected_structure"] == pytest.approx(float(rt.expected_structure(p, 0.25).loss))
    text = str(report)
    for needle in ("Persian rug at this n (exact finite-n loss", "§8", "L*(p, r)", "expected structure at large n",
                   "§10", "band:"):
        assert needle in text, needle


@pytest.mark.parametrize(("factor", "side"), [(3.0, "ABOVE the upper end"), (0.3, "BELOW the lower end")])
def test_near_prediction_says_which_side_failed(factor: float, side: str) -> None:
    n, m, p = 64, 16, 0.1
    ref = float(rt.optimal_symmetric_loss(p, 0.25).loss) if factor > 1 else float(rt.expected_structure(p, 0.25).loss)
    with pytest.raises(AssertionError) as err:
        T.assert_near_prediction(factor * ref, n, m, p, se=1e-6)
    msg = str(err.value)
    assert msg.startswith("assert_near_prediction: FAILED") and f"failed: {side}" in msg
    assert ("BELOW" in msg) == (factor < 1) and ("ABOVE" in msg) == (factor > 1)


def test_near_prediction_se_and_atol_widen_the_band() -> None:
    n, m, p = 64, 64, 0.1  # r = 1: every reference is 0
    with pytest.raises(AssertionError, match="the references are 0 here; set atol"):
        T.assert_near_prediction(1e-6, n, m, p)
    T.assert_near_prediction(1e-6, n, m, p, atol=1e-5)
    T.assert_near_prediction(1e-6, n, m, p, se=1e-6)  # 4 SE slack


def test_near_prediction_non_power_of_two_uses_the_fourier_rug() -> None:
    report = T.assert_near_prediction(float(rt.optimal_symmetric_loss(0.1, 0.25).loss), 96, 24, 0.1)
    assert "fourier rows" in str(report)


def test_near_prediction_atlas_hook() -> None:
    n, m, p = 64, 16, 0.1
    measured = float(rt.optimal_symmetric_loss(p, 0.25).loss)
    calls = []

    def atlas(n_: int, r_: float, p_: float) -> tuple[float, float] | None:
        calls.append((n_, r_, p_))
        return None

    report = T.assert_near_prediction(measured, n, m, p, atlas=atlas)
    assert calls == [(64, 0.25, 0.1)] and "atlas: no entry" in str(report)
    report = T.assert_near_prediction(measured, n, m, p, se=1e-5, atlas=lambda *_: (measured * 1.1, 1e-5))
    assert report.values["atlas"] == pytest.approx(measured * 1.1)
    with pytest.raises(AssertionError, match="failed: ABOVE the atlas") as err:
        T.assert_near_prediction(measured, n, m, p, se=1e-5, atlas=lambda *_: (measured / 2, 1e-5))
    assert "atlas of trained losses" in str(err.value)
    with pytest.raises(ValueError, match="atlas must be a callable"):
        T.assert_near_prediction(measured, n, m, p, atlas=3.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rtol": 1.0}, r"rtol must be in \[0, 1\)"), ({"atol": -1.0}, "atol must be >= 0"), ({"se": -1.0}, "se must be"),
    ({"m": 0}, r"m must be an integer in \[1, 64\]"), ({"p": 0.0}, "p must be in"),
])
def test_near_prediction_argument_errors(kwargs: dict, match: str) -> None:
    args = {"measured": 0.01, "n": 64, "m": 16, "p": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        T.assert_near_prediction(**args)


# ------------------------------------------------------------------------------------------------
# assert_symmetric_statistics


@settings(max_examples=6)
@given(T.persian_rug_weights(n=(256, 512), p=(0.05, 0.3), r=(0.1, 0.5)))
def test_symmetric_statistics_pass_on_rugs(w: T.ModelWeights) -> None:
    report = T.assert_symmetric_statistics(w.W, w.b, w.p)
    assert report.passed


def test_symmetric_statistics_fail_on_pairs_naming_the_statistic() -> None:
    from rugtheory.constructions.polytopes import antipodal_pairs
    from rugtheory.constructions.structure_weights import construction_weights

    w_in, w_out, b = construction_weights(antipodal_pairs(), 32)
    with pytest.raises(AssertionError) as err:
        T.assert_symmetric_statistics((w_in, w_out), b, 0.1)
    msg = str(err.value)
    assert msg.startswith("assert_symmetric_statistics: FAILED")
    assert "Lyapunov ratio Λ_i (max over rows): " in msg and "largest entry ratio" in msg and "FAILED;" in msg
    assert "spread of a_i" in msg.split("failed:")[0] and "spread of a_i" not in msg.split("failed:")[1]
    # skipping the two bounds that pairs break makes the rest pass
    T.assert_symmetric_statistics(w_out @ w_in, b, 0.1, max_lyapunov=None, max_weight_ratio=None)


def test_symmetric_statistics_catch_a_dead_feature() -> None:
    rug = rt.persian_rug(256, 64, seed=0)
    W = rug.dense()
    W[5, 5] = 0.0  # one dead feature
    W[7, 7] = 0.0
    with pytest.raises(AssertionError) as err:
        T.assert_symmetric_statistics(W, np.full(256, -0.3), 0.1)
    msg = str(err.value)
    assert "failed: smallest a_i / mean a" in msg and "row 5: 0" in msg and "row 7: 0" in msg
    assert "spread of a_i = W_ii (std / |mean|): 0.08" in msg  # two dead rows of 256 barely move the spread


def test_symmetric_statistics_accept_torch() -> None:
    torch = pytest.importorskip("torch")
    rug = rt.persian_rug(256, 64, seed=0)
    W = torch.tensor(rug.dense(), dtype=torch.float32, requires_grad=True)
    T.assert_symmetric_statistics(W, torch.zeros(256), 0.1)


# ------------------------------------------------------------------------------------------------
# held_out_loss and what it recognises


def _toy_weights() -> T.ModelWeights:
    rng = np.random.default_rng(0)
    w_in = rng.normal(size=(8, 32)) / 3
    return T.ModelWeights(w_in, w_in.T.copy(), np.full(32, -0.1), 0.1, "test")


def test_held_out_loss_routes_agree() -> None:
    w = _toy_weights()
    want = model_loss_monte_carlo(w.W_in, w.W_out, w.b, 0.1, n_samples=3000, seed=5)

    class Holder:
        W_in, W_out, b = w.W_in, w.W_out, w.b

    for obj in (w, (w.W_in, w.W_out, w.b), [w.W_in, w.W_out, w.b], Holder()):
        mean, se = T.held_out_loss(obj, 0.1, samples=3000, seed=5)
        assert (mean, se) == (want.mean, want.se)
    mean, se = T.held_out_loss((w.W, None, w.b), 0.1, samples=3000, seed=5)
    assert mean == pytest.approx(want.mean, rel=1e-12) and se == pytest.approx(want.se, rel=1e-9)


def test_held_out_loss_reads_torch_modules() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    w = _toy_weights()

    class Toy(nn.Module):
        def __init__(self, first_bias: bool = False, act: object = torch.relu) -> None:
            super().__init__()
            self.encode = nn.Linear(32, 8, bias=first_bias)
            self.decode = nn.Linear(8, 32)
            self.act = act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.decode(self.encode(x)))

    model = Toy().double()
    with torch.no_grad():
        model.encode.weight.copy_(torch.tensor(w.W_in))
        model.decode.weight.copy_(torch.tensor(w.W_out))
        model.decode.bias.copy_(torch.tensor(w.b))
    want = T.held_out_loss(w, 0.1, samples=2000, seed=1)
    assert T.held_out_loss(model, 0.1, samples=2000, seed=1) == want
    assert T.held_out_loss(nn.Sequential(model.encode, model.decode, nn.ReLU()), 0.1, samples=2000, seed=1) == want

    biased = Toy(first_bias=True)  # float32, a first-layer bias folded into b exactly
    w_in, w_out, b = T.model_weights(biased)
    np.testing.assert_allclose(b, biased.decode.bias.detach().double().numpy()
                               + w_out @ biased.encode.bias.detach().double().numpy(), rtol=1e-12)

    with pytest.raises(ValueError, match=r"forward is not ReLU\(second\(first\(x\)\)\)"):
        T.held_out_loss(Toy(act=torch.sigmoid), 0.1, samples=100, seed=0)
    T.model_weights(Toy(act=torch.sigmoid), verify_forward=False)  # the check can be switched off
    with pytest.raises(ValueError, match="exactly two nn.Linear layers .* found 3"):
        T.held_out_loss(nn.Sequential(nn.Linear(32, 8), nn.Linear(8, 8), nn.Linear(8, 32)), 0.1, samples=100, seed=0)


def test_held_out_loss_errors() -> None:
    w = _toy_weights()
    with pytest.raises(ValueError, match=r"samples must be an integer in \[2, inf\]"):
        T.held_out_loss(w, 0.1, samples=1, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        T.held_out_loss(w, 0.1, samples=10, seed=-1)
    with pytest.raises(ValueError, match="cannot read weights from a str"):
        T.held_out_loss("model", 0.1, samples=10, seed=0)
    with pytest.raises(ValueError, match=r"raw weights must be a tuple \(W_in, W_out, b\)"):
        T.held_out_loss((w.W_in, w.W_out), 0.1, samples=10, seed=0)
    with pytest.raises(ValueError, match="W_in must be finite"):
        T.held_out_loss((w.W_in * math.nan, w.W_out, w.b), 0.1, samples=10, seed=0)
