"""Trained models (n = 64 and 128, reference recipe) against the theory.

Two comparisons of different strength:

1. Exact: the held-out loss of a trained model (torch, 100k fresh samples) against the exact
   finite-n expected loss of the *same weights* (rugtheory.theory.finite_n: numerical inversion of the
   characteristic function of docs/theory.md §7, no sampling, no Gaussian step). Independent routes that
   must agree within 4 standard errors of the held-out estimate.
2. Finite-n band: the trained loss against L*(p, r), the large-n symmetric optimum (docs/theory.md §4).
   Small trained models are not in the Gaussian regime that L* assumes: their interference has a
   Lyapunov ratio near 1 (docs/theory.md §2's CLT condition fails) and they exploit it, so they can sit
   well below L*. Measured in this harness after 4000 steps: 0.80–1.03 × L* at n = 64–128,
   r = 0.25, p ∈ {0.05, 0.1}; docs/theory.md §9 reports 3.79e-3 / 4.86e-3 = 0.78 × L* at n = 512. The band
   [0.6, 1.15] allows twice that largest observed finite-n gain below L* (−22% → −40%) and, above
   L*, the slack of models stopped by the convergence rule or the step cap (still improving by up to
   about 1–2% per 1000 steps at 4000 steps, so +15% is several times the remaining descent).
   Also, every model must beat the best linear map (1 − r) v (docs/theory.md §5), which L* undercuts by
   more than 25% in this regime: a model that fails that has not learned the ReLU solution.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")  # the [train] extra; the package's own modules are imported plainly

from rugtheory.theory import finite_n  # noqa: E402
from rugtheory.theory.optimum import optimal_symmetric_loss  # noqa: E402
from rugtheory.validation.train import TrainConfig, train_models  # noqa: E402

pytestmark = pytest.mark.training

CASES = [(n, p, seed) for n in (64, 128) for p in (0.05, 0.1) for seed in (0,)]


@pytest.fixture(scope="module")
def trained():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for n in (64, 128):
            configs = [TrainConfig(n=n, m=n // 4, p=p, seed=seed, steps=4000) for nn, p, seed in CASES if nn == n]
            for c, model in zip(configs, train_models(configs, device="cpu")):
                out[(c.n, c.p, c.seed)] = model
        return out
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("case", CASES)
def test_heldout_loss_equals_exact_finite_n_loss_of_own_weights(trained, case):
    model = trained[case]
    assert model.status == "ok"
    exact = finite_n.exact_loss_from_factors(model.W_in.astype(float), model.W_out.astype(float),
                                             model.b.astype(float), model.config.p, tol=1e-7, max_nodes=4096)
    # 4 SE of the held-out mean (100k samples, SE ~1e-5 here), plus the inversion's own error
    # bound (target 1e-7 per row; the node cap keeps it cheap and the bound says what it cost).
    assert exact.error < model.heldout_se
    assert abs(model.heldout_loss - exact.loss) <= 4 * model.heldout_se + exact.error


@pytest.mark.parametrize("case", CASES)
def test_trained_loss_within_finite_n_band_of_lstar(trained, case):
    model = trained[case]
    opt = optimal_symmetric_loss(model.config.p, model.config.r)
    ratio = model.heldout_loss / float(opt.loss)
    assert 0.6 <= ratio <= 1.15, f"measured/L* = {ratio:.3f} outside the finite-n band (module docstring)"
    assert model.heldout_loss < float(opt.linear_loss)
    assert float(opt.loss) < 0.75 * float(opt.linear_loss)  # the regime premise stated above
    assert math.isfinite(model.heldout_se) and model.heldout_se < 0.02 * model.heldout_loss
