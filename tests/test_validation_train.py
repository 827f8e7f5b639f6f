"""Tests of rugtheory.validation.train: the batched trainer against independent routes.

Routes: ``nn.Linear`` init; autograd gradients; ``torch.optim.Adam``/``AdamW`` on an ``nn.Module``;
the same model trained alone (unpadded) vs inside a padded batch; a numpy Monte Carlo of the
held-out loss; the data moments of docs/theory.md §1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rugtheory.validation.steps import (  # noqa: E402
    batch_loss,
    loss_and_grads,
    sparse_loss_and_grads,
    stored_transposed,
)
from rugtheory.validation.streams import DataStream  # noqa: E402
from rugtheory.validation.train import (  # noqa: E402
    InstanceBatch,
    TrainConfig,
    adam_step,
    heldout_loss,
    init_weights,
    sample_data,
    stream_seed,
    train_models,
)

pytestmark = pytest.mark.training


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is shared; small problems gain nothing from threads
    yield
    torch.set_num_threads(old)


def _cfg(**kw):
    base = dict(n=24, m=6, p=0.2, seed=3, steps=60, batch=64, eval_samples=4096, check_every=20, window=20,
                min_steps=0, confirm_samples=512, dtype="float64")
    base.update(kw)
    return TrainConfig(**base)


def test_init_is_pytorch_default_nn_linear():
    n, m, seed = 37, 11, 5
    w_in, w_out, b = init_weights(n, m, seed)
    torch.manual_seed(stream_seed(seed, "init"))
    first = torch.nn.Linear(n, m, bias=False)
    second = torch.nn.Linear(m, n)
    # Exact equality: the same generator state and the same kaiming-uniform bounds.
    assert torch.equal(w_in, first.weight.detach())
    assert torch.equal(w_out, second.weight.detach())
    assert torch.equal(b, second.bias.detach())


@given(p=st.floats(min_value=1e-3, max_value=1.0), seed=st.integers(0, 2**31))
def test_sample_data_moments(p, seed):
    # x = Bernoulli(p)·U[0,1): E x = p/2, E x^2 = p/3 (docs/theory.md §1). 200k draws; 6 standard errors.
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(200_000, generator=g, dtype=torch.float64)
    x = sample_data(u, p).numpy()
    assert x.min() >= 0 and x.max() < 1
    for k, exact in ((1, p / 2), (2, p / 3)):
        sample = x**k
        se = sample.std() / math.sqrt(sample.size)
        assert abs(sample.mean() - exact) <= 6 * se + 1e-12


@given(p=st.floats(min_value=1e-3, max_value=1.0), seed=st.integers(0, 2**31))
def test_data_stream_law(p, seed):
    """Both samplers (geometric gaps for p <= SPARSE_P, one uniform per entry above) give the law of
    docs/theory.md §1: E x = p/2, E x^2 = p/3, active fraction p, and per-row counts with the binomial
    variance n p (1 - p) (independent entries). 6 standard errors each; the SE of the sample variance
    comes from the binomial fourth central moment."""
    rows, n = 4000, 64
    x = DataStream([seed], [p], "train", torch.device("cpu"), torch.float64).draw(rows, n)[0].numpy()
    assert x.min() >= 0 and x.max() < 1
    for k, exact in ((1, p / 2), (2, p / 3)):
        sample = x**k
        assert abs(sample.mean() - exact) <= 6 * sample.std() / math.sqrt(sample.size) + 1e-12
    active = (x > 0).sum(axis=1)
    assert abs(active.mean() - n * p) <= 6 * math.sqrt(n * p * (1 - p) / rows) + 1e-9
    if 0 < p < 1:
        var = n * p * (1 - p)
        mu4 = var * (1 + 3 * (n - 2) * p * (1 - p))  # binomial fourth central moment
        se_var = math.sqrt((mu4 - var**2 * (rows - 3) / (rows - 1)) / rows)  # SE of a sample variance
        assert abs(active.var(ddof=1) - var) <= 6 * se_var


def test_manual_gradients_match_autograd():
    gen = torch.Generator().manual_seed(0)
    inst, batch, n, m = 3, 17, 9, 4
    w_in = torch.randn(inst, m, n, generator=gen, dtype=torch.float64)
    w_out = torch.randn(inst, n, m, generator=gen, dtype=torch.float64)
    b = torch.randn(inst, n, generator=gen, dtype=torch.float64)
    x = sample_data(torch.rand(inst, batch, n, generator=gen, dtype=torch.float64), 0.4)
    loss, grads = loss_and_grads(w_in, w_out, b, x.clone())
    leaves = [t.clone().requires_grad_(True) for t in (w_in, w_out, b)]
    y = torch.relu(torch.einsum("ibm,inm->ibn", torch.einsum("ibn,imn->ibm", x, leaves[0]), leaves[1])
                   + leaves[2][:, None, :])
    ref = ((y - x) ** 2).mean(dim=(1, 2))
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=0)
    for g_hand, leaf in zip(grads, leaves):
        torch.testing.assert_close(g_hand, leaf.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("ps", [(0.05,), (0.1, 0.02, 0.003)])
def test_sparse_step_equals_dense_step(ps):
    """The CPU sparse step (embedding_bag on the active entries of x) against the dense bmm step
    and autograd on the same samples: float64, only summation order differs (1e-12 relative)."""
    gen = torch.Generator().manual_seed(1)
    inst, batch, n, m = len(ps), 40, 33, 5
    w_in = 0.3 * torch.randn(inst, m, n, generator=gen, dtype=torch.float64)
    w_out = 0.3 * torch.randn(inst, n, m, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(inst, n, generator=gen, dtype=torch.float64) - 0.02
    seeds = list(range(5, 5 + inst))
    x_sparse = DataStream(seeds, ps, "train", torch.device("cpu"), torch.float64).draw_sparse(batch, n)
    x = DataStream(seeds, ps, "train", torch.device("cpu"), torch.float64).draw(batch, n)
    assert torch.equal(x_sparse.dense(), x)  # the same random numbers give the same samples
    loss_s, grads_s = sparse_loss_and_grads(w_in, w_out, b, x_sparse)
    loss_d, grads_d = loss_and_grads(w_in, w_out, b, x.clone())
    leaves = [t.clone().requires_grad_(True) for t in (w_in, w_out, b)]
    y = torch.relu(torch.einsum("ibn,imn->ibm", x, leaves[0]) @ leaves[1].transpose(1, 2) + leaves[2][:, None, :])
    ((y - x) ** 2).mean(dim=(1, 2)).sum().backward()
    torch.testing.assert_close(loss_s, loss_d, rtol=1e-12, atol=0)
    for g_s, g_d, leaf in zip(grads_s, grads_d, leaves):
        assert g_s.shape == g_d.shape and g_s.is_contiguous()
        torch.testing.assert_close(g_s, g_d, rtol=1e-10, atol=1e-15)
        torch.testing.assert_close(g_s, leaf.grad, rtol=1e-10, atol=1e-15)


def test_sparse_heldout_loss_equals_dense():
    gen = torch.Generator().manual_seed(2)
    inst, n, m = 2, 40, 6
    w_in = 0.3 * torch.randn(inst, m, n, generator=gen, dtype=torch.float64)
    w_out = 0.3 * torch.randn(inst, n, m, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(inst, n, generator=gen, dtype=torch.float64)
    p = torch.tensor([0.05, 0.01], dtype=torch.float64).view(-1, 1, 1)
    sparse = batch_loss(w_in, w_out, b, p, [3, 4], "eval", 3000, 1024, sparse=True)
    dense = batch_loss(w_in, w_out, b, p, [3, 4], "eval", 3000, 1024, sparse=False)
    for a, c in zip(sparse, dense):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=0)


@pytest.mark.parametrize("optimizer,p", [("adam", 0.2), ("adamw", 0.2), ("adam", 0.05), ("adamw", 0.05)])
def test_training_matches_nn_module_with_torch_optim(optimizer, p):
    """The batched hand-written loop reproduces nn.Linear + autograd + torch.optim on the same stream
    (p = 0.2: dense step; p = 0.05 <= SPARSE_P: sparse step)."""
    cfg = _cfg(optimizer=optimizer, steps=40, check_every=40, window=40, p=p)
    (model,) = train_models([cfg], device="cpu")
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    first = torch.nn.Linear(cfg.n, cfg.m, bias=False).double()
    second = torch.nn.Linear(cfg.m, cfg.n).double()
    params = list(first.parameters()) + list(second.parameters())
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=3e-3 / math.sqrt(cfg.n), eps=1e-7)
    else:
        opt = torch.optim.AdamW(params, lr=1e-3)  # Anthropic: lr 1e-3, torch defaults otherwise
    stream = DataStream([cfg.seed], [cfg.p], "train", torch.device("cpu"), torch.float64)
    for _ in range(cfg.steps):
        x = stream.draw(cfg.batch, cfg.n)[0]
        loss = torch.nn.functional.mse_loss(torch.relu(second(first(x))), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # float64 throughout; the two loops differ only in summation order: 1e-9 relative is
    # generous for 40 steps yet far below any real disagreement (one step moves weights ~1e-3).
    np.testing.assert_allclose(model.W_in, first.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.W_out, second.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.b, second.bias.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_padded_batch_equals_models_trained_alone(dtype, tol):
    """Differing m in one batch: padded units get no gradient and change nothing.

    float64: agreement to 1e-10 (only summation order differs). float32: 300 steps of Adam amplify
    1-ulp differences of BLAS blocking (different M) to ~1e-7 (observed); 1e-5 absolute on weights
    of size ~0.3 leaves room for other BLAS builds yet rules out any leak from padded units, which
    would show at the 1e-2 level.
    """
    configs = [
        _cfg(m=3, seed=1, p=0.3, dtype=dtype, steps=300, check_every=100, window=100),
        _cfg(m=20, seed=2, p=0.05, dtype=dtype, steps=300, check_every=100, window=100),
        _cfg(m=9, seed=1, p=0.6, dtype=dtype, steps=300, check_every=100, window=100, lr=0.01),
    ]
    together = train_models(configs, device="cpu", max_padding=1.0)  # one bucket: m = 3 and 9 padded to 20
    bucketed = train_models(configs, device="cpu")  # default: width buckets
    for got, other in zip(together, bucketed):
        np.testing.assert_allclose(got.W_in, other.W_in, atol=tol, rtol=0)
    for cfg, got in zip(configs, together):
        (alone,) = train_models([cfg], device="cpu")
        assert got.W_in.shape == (cfg.m, cfg.n) and got.W_out.shape == (cfg.n, cfg.m)
        np.testing.assert_allclose(got.W_in, alone.W_in, atol=tol, rtol=0)
        np.testing.assert_allclose(got.W_out, alone.W_out, atol=tol, rtol=0)
        np.testing.assert_allclose(got.b, alone.b, atol=tol, rtol=0)
        assert abs(got.heldout_loss - alone.heldout_loss) <= tol
        assert got.steps_run == alone.steps_run


def test_padded_units_stay_exactly_zero():
    configs = [_cfg(m=2), _cfg(m=7, seed=4)]
    state = InstanceBatch(configs, [0, 1], torch.device("cpu"), torch.float64)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, 30):
        x = sample_data(torch.rand(2, 32, 24, generator=gen, dtype=torch.float64), state.p)
        _, grads = loss_and_grads(state.w_in, state.w_out, state.b, x)
        assert torch.count_nonzero(grads[0][0, 2:]) == 0 and torch.count_nonzero(grads[1][0, :, 2:]) == 0
        adam_step(state, grads, step, configs[0])
    assert torch.count_nonzero(state.w_in[0, 2:]) == 0
    assert torch.count_nonzero(state.w_out[0, :, 2:]) == 0
    assert torch.count_nonzero(state.w_in[0, :2]) == 2 * 24


def _stored_like(w_in, storage):
    """``w_in`` as the trainer holds it: plainly, or as the (I, M, n) view of a row-major W_in^T."""
    return w_in.clone() if storage == "plain" else w_in.transpose(1, 2).contiguous().transpose(1, 2)


@pytest.mark.parametrize("storage", ["plain", "transposed"])
def test_step_gradients_in_either_w_in_storage(storage):
    """Both step functions take W_in stored plainly or transposed and return dL/dW_in in the
    memory layout of W_in (what the fused Adam kernel needs), equal to autograd's. n = 33 and
    batch 40 make the factor 2/(B n) no power of two, so folding it into the GEMMs is tested
    for real. float64: only summation order differs, so 1e-10 relative (observed < 1e-13)."""
    gen = torch.Generator().manual_seed(4)
    ps = (0.07, 0.02)
    inst, batch, n, m = len(ps), 40, 33, 5
    w_in = _stored_like(0.3 * torch.randn(inst, m, n, generator=gen, dtype=torch.float64), storage)
    w_out = 0.3 * torch.randn(inst, n, m, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(inst, n, generator=gen, dtype=torch.float64) - 0.02
    assert stored_transposed(w_in) == (storage == "transposed")
    x_sparse = DataStream([1, 2], ps, "train", torch.device("cpu"), torch.float64).draw_sparse(batch, n)
    x = x_sparse.dense()
    leaves = [t.detach().clone().requires_grad_(True) for t in (w_in, w_out, b)]
    y = torch.relu(torch.einsum("ibn,imn->ibm", x, leaves[0]) @ leaves[1].transpose(1, 2) + leaves[2][:, None, :])
    ((y - x) ** 2).mean(dim=(1, 2)).sum().backward()
    for loss, grads in (sparse_loss_and_grads(w_in, w_out, b, x_sparse), loss_and_grads(w_in, w_out, b, x.clone())):
        torch.testing.assert_close(loss, ((y - x) ** 2).mean(dim=(1, 2)).detach(), rtol=1e-12, atol=0)
        for grad, param, leaf in zip(grads, (w_in, w_out, b), leaves):
            assert grad.shape == param.shape and grad.stride() == param.stride()
            torch.testing.assert_close(grad, leaf.grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_transposed_w_in_storage_trains_like_plain(dtype, tol):
    """The fast path (W_in stored transposed: no weight copies in the sparse step) against its slow
    twin (stored plainly), 300 steps from the same seeds, in three width buckets: a sparse one with
    padding and one lr (fused Adam on strided views), a sparse one with two lrs (the per-instance
    Adam formula) and a dense-step one (p = 0.3, stored transposed on request). n = 24, batch 64:
    2/(B n) is no power of two, so rounding may differ.

    float64: agreement to 1e-12 (only operand layout and the place of the scale differ). float32:
    300 Adam steps amplify 1-ulp differences to ~1e-7 at most (observed); 1e-5 absolute on weights
    of size ~0.3 allows other BLAS builds yet rules out a layout mix-up (a gradient applied in the
    wrong memory order moves weights by ~1e-2 within a few steps).
    """
    kw = dict(dtype=dtype, steps=300, check_every=100, window=100)
    configs = [
        _cfg(m=20, seed=1, p=0.05, **kw), _cfg(m=18, seed=2, p=0.08, **kw),  # one lr, padded: fused Adam
        _cfg(m=8, seed=4, p=0.05, lr=0.01, **kw), _cfg(m=7, seed=5, p=0.02, **kw),  # two lrs: Adam formula
        _cfg(m=5, seed=3, p=0.3, **kw),  # dense step
    ]
    fast = train_models(configs, device="cpu", w_in_storage="transposed")
    slow = train_models(configs, device="cpu", w_in_storage="plain")
    default = train_models(configs, device="cpu")  # sparse buckets transposed, the dense one plain
    for got, twin, dflt in zip(fast, slow, default):
        assert got.W_in.flags.c_contiguous and got.W_in.shape == twin.W_in.shape
        for name in ("W_in", "W_out", "b"):
            np.testing.assert_allclose(getattr(got, name), getattr(twin, name), atol=tol, rtol=0)
            np.testing.assert_allclose(getattr(dflt, name), getattr(twin, name), atol=tol, rtol=0)
        assert abs(got.heldout_loss - twin.heldout_loss) <= tol
        assert got.steps_run == twin.steps_run


def test_transposed_storage_survives_a_model_leaving_the_batch():
    """A model that blows up leaves a sparse bucket stored transposed (InstanceBatch.keep): the
    survivor keeps the transposed layout, moves on to the fused Adam kernel (one lr left) and ends
    where its slow twin (stored plainly) and the model trained alone end. float64, 100 steps: only
    operand layout differs, 1e-12 absolute (observed 0)."""
    good = _cfg(p=0.05, steps=100, check_every=20, window=20)
    bad = _cfg(seed=4, p=0.05, lr=1e300, steps=100, check_every=20, window=20)
    fast = train_models([bad, good], device="cpu", w_in_storage="transposed")
    slow = train_models([bad, good], device="cpu", w_in_storage="plain")
    (alone,) = train_models([good], device="cpu", w_in_storage="plain")
    assert fast[0].status == slow[0].status == "nonfinite" and fast[0].steps_run == 20
    assert fast[1].status == "ok" and fast[1].steps_run == 100
    for name in ("W_in", "W_out", "b"):
        np.testing.assert_allclose(getattr(fast[1], name), getattr(slow[1], name), atol=1e-12, rtol=0)
        np.testing.assert_allclose(getattr(fast[1], name), getattr(alone, name), atol=1e-12, rtol=0)
    state = InstanceBatch([bad, good], [0, 1], torch.device("cpu"), torch.float64, w_in_storage="transposed")
    state.keep([1])  # the layout survives the selection (else every later step would copy again)
    for t in (state.w_in, state.exp_avg[0], state.exp_avg_sq[0]):
        assert stored_transposed(t) and not t.is_contiguous()


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("storage", ["plain", "transposed"])
def test_fused_adam_per_lr_equals_the_formula(optimizer, storage):
    """adam_step's fast path (torch's fused kernel, once per distinct lr on the instances' slices)
    against its slow twin (the single-tensor formula, ``fused=False``): three models, two lrs, one
    padded, a warm-up schedule, 30 steps of the same random gradients. float64: the two differ in
    the order of a few operations per element only (observed < 1e-15 relative), so 1e-11."""
    kw = dict(optimizer=optimizer, schedule="warmup_cosine", warmup_steps=10, steps=40)
    configs = [_cfg(seed=1, lr=0.01, **kw), _cfg(seed=2, m=4, lr=0.02, **kw), _cfg(seed=3, lr=0.01, **kw)]
    states = [InstanceBatch(configs, [0, 1, 2], torch.device("cpu"), torch.float64, w_in_storage=storage)
              for _ in range(2)]
    gen = torch.Generator().manual_seed(5)
    for step in range(1, 31):
        grads = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in states[0].params]
        grads[0] = _stored_like(grads[0], storage)
        for state, fused in zip(states, (True, False)):
            adam_step(state, [g.clone() if k else _stored_like(g, storage) for k, g in enumerate(grads)], step,
                      configs[0], fused=fused)
    assert torch.count_nonzero(states[0].w_in[1, 4:]) == 0  # the padded units never moved
    for fast, slow in zip(states[0].params + states[0].exp_avg_sq, states[1].params + states[1].exp_avg_sq):
        torch.testing.assert_close(fast, slow, rtol=1e-11, atol=1e-14)


def test_adam_step_refuses_a_gradient_in_another_layout():
    cfg = _cfg()
    state = InstanceBatch([cfg], [0], torch.device("cpu"), torch.float64, w_in_storage="transposed")
    grads = [torch.ones(1, cfg.m, cfg.n, dtype=torch.float64), torch.zeros_like(state.w_out),
             torch.zeros_like(state.b)]  # grads[0] plain, W_in transposed
    with pytest.raises(ValueError, match=r"grads\[0\] must have the shape and memory layout"):
        adam_step(state, grads, 1, cfg)
    with pytest.raises(ValueError, match="w_in_storage must be"):
        InstanceBatch([cfg], [0], torch.device("cpu"), torch.float64, w_in_storage="columns")
    with pytest.raises(ValueError, match="w_in_storage must be"):
        train_models([cfg], w_in_storage="columns")


def test_deterministic_under_seed():
    configs = [_cfg(seed=7, dtype="float32"), _cfg(seed=8, m=10, dtype="float32")]
    first = train_models(configs, device="cpu")
    second = train_models(configs, device="cpu")
    for a, b in zip(first, second):
        assert np.array_equal(a.W_in, b.W_in) and np.array_equal(a.b, b.b)
        assert a.heldout_loss == b.heldout_loss and a.history == b.history
    other = train_models([_cfg(seed=9, dtype="float32")], device="cpu")
    assert not np.array_equal(first[0].W_in, other[0].W_in)


def test_nonfinite_model_stops_alone():
    good = _cfg(steps=100, check_every=20, window=20)
    bad = _cfg(seed=4, lr=1e300, steps=100, check_every=20, window=20)  # overflows within a few steps
    together = train_models([bad, good], device="cpu")
    (alone,) = train_models([good], device="cpu")
    assert together[0].status == "nonfinite"
    assert together[0].nonfinite_step is not None and together[0].nonfinite_step <= 20
    assert math.isnan(together[0].heldout_loss) and not together[0].converged
    assert together[0].steps_run == 20  # it left the batch at the first check after the failure
    assert together[1].status == "ok" and together[1].steps_run == 100
    np.testing.assert_allclose(together[1].W_in, alone.W_in, atol=1e-10, rtol=0)


def test_convergence_rule_as_documented():
    cfg = _cfg(n=32, m=8, p=0.1, steps=4000, batch=256, check_every=100, window=300, min_steps=300,
               rel_tol=5e-3, dtype="float32", lr=0.01)
    (model,) = train_models([cfg], device="cpu")
    assert model.converged and model.steps_run == model.converged_step < cfg.steps
    lag = cfg.window // cfg.check_every
    steps = [s for s, _ in model.history]
    assert steps == list(range(cfg.check_every, model.steps_run + 1, cfg.check_every))
    ema = [e for _, e in model.history]
    val = [v for _, v in model.confirm_history]
    # The rule holds at the stopping check and at no earlier check from min_steps on.
    for k, s in enumerate(steps):
        if k < lag or s < cfg.min_steps:
            continue
        met = ema[k - lag] - ema[k] < cfg.rel_tol * ema[k] and val[k - lag] - val[k] < cfg.rel_tol * val[k]
        assert met == (s == model.converged_step)
    # Without stopping, the same model trains all steps and reports the same convergence step.
    (full,) = train_models([cfg.__class__(**{**cfg.to_dict(), "stop_on_convergence": False})], device="cpu")
    assert full.steps_run == cfg.steps and full.converged_step == model.converged_step and full.converged


def test_heldout_loss_matches_numpy_monte_carlo():
    """The torch held-out estimate vs an independent numpy Monte Carlo on other samples."""
    rng = np.random.default_rng(11)
    n, m, p = 40, 10, 0.15
    w_in = rng.normal(0, 0.3, (m, n))
    w_out = rng.normal(0, 0.3, (n, m))
    b = rng.normal(-0.05, 0.05, n)
    mean, se = heldout_loss(w_in, w_out, b, p, seed=0, samples=200_000, device="cpu")
    x = (rng.random((200_000, n)) < p) * rng.random((200_000, n))
    per = ((np.maximum(x @ w_in.T @ w_out.T + b, 0) - x) ** 2).mean(axis=1)
    np_mean, np_se = per.mean(), per.std() / math.sqrt(per.size)
    # Two independent estimates: their difference has SE sqrt(se^2 + np_se^2); allow 5 of them.
    assert abs(mean - np_mean) <= 5 * math.hypot(se, np_se)
    assert 0.5 < se / np_se < 2


def test_config_validation_names_parameter():
    with pytest.raises(ValueError, match="m must be"):
        TrainConfig(n=8, m=9, p=0.1)
    with pytest.raises(ValueError, match="p must be"):
        TrainConfig(n=8, m=2, p=0.0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(n=8, m=2, p=0.1, optimizer="sgd")
    with pytest.raises(ValueError, match="share n"):
        train_models([TrainConfig(n=8, m=2, p=0.1), TrainConfig(n=9, m=2, p=0.1)])
    with pytest.raises(ValueError, match="sparse must be"):
        train_models([TrainConfig(n=8, m=2, p=0.1)], sparse="yes")


@pytest.mark.gpu
def test_cuda_training_padded_equals_alone_and_is_deterministic():
    """On CUDA (skipped without it): the same guarantees as on the CPU, with CUDA's own streams.

    float64 so that cuBLAS's order of summation cannot blur the comparison (1e-9 absolute)."""
    configs = [_cfg(m=3, seed=1, steps=200, check_every=100, window=100),
               _cfg(m=20, seed=2, p=0.05, steps=200, check_every=100, window=100)]
    together = train_models(configs, device="cuda", max_padding=1.0)
    again = train_models(configs, device="cuda", max_padding=1.0)
    for cfg, got, rep in zip(configs, together, again):
        (alone,) = train_models([cfg], device="cuda")
        np.testing.assert_allclose(got.W_in, alone.W_in, atol=1e-9, rtol=0)
        np.testing.assert_array_equal(got.W_in, rep.W_in)
        assert got.status == "ok" and math.isfinite(got.heldout_loss)
