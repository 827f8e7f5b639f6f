"""Learning-rate schedules and Adam settings of rugtheory.validation.train (issue 13, item 4).

Routes: the schedule's lr per step against numbers written down by hand; the trainer with a
schedule against ``nn.Linear`` + autograd + ``torch.optim.Adam`` whose lr is set before every step
from an independent formula; the default config against the reference recipe (lr 3e-3/√n at every
step, the same ``to_dict`` as before the schedule fields existed, so the same run ids).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rugtheory.validation.streams import DataStream, stream_seed  # noqa: E402
from rugtheory.validation.train import RECIPES, SCHEDULE_DEFAULTS, TrainConfig, recipe_fields, train_models  # noqa: E402

pytestmark = pytest.mark.training

#: The TrainConfig fields that existed before the schedule (their to_dict is the run id's input).
_OLD_FIELDS = {"n", "m", "p", "seed", "steps", "batch", "lr", "optimizer", "eval_samples", "check_every", "window",
               "min_steps", "rel_tol", "ema_beta", "confirm_samples", "stop_on_convergence", "dtype"}


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_default_is_the_reference_recipe_unchanged():
    cfg = TrainConfig(n=512, m=128, p=0.045)
    assert cfg.schedule == "constant" and cfg.lr_scale == 1.0 and cfg.warmup_steps == 0
    assert (cfg.beta1, cfg.beta2, cfg.adam_eps) == (0.9, 0.999, 1e-7)
    assert TrainConfig(n=4, m=1, p=0.5, optimizer="adamw").adam_eps == 1e-8
    ref = 3e-3 / math.sqrt(512)
    assert cfg.learning_rate == ref
    assert all(cfg.lr_at(t) == ref and cfg.lr_factor(t) == 1.0 for t in (1, 2, 999, 10_000, 10**6))
    assert set(cfg.to_dict()) == _OLD_FIELDS  # same canonical JSON, hence the same run ids as before
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    other = TrainConfig(n=512, m=128, p=0.045, schedule="warmup_cosine", warmup_steps=10, beta2=0.99)
    assert {"schedule", "warmup_steps", "beta2"} <= set(other.to_dict()) and "lr_scale" not in other.to_dict()
    assert TrainConfig.from_dict(other.to_dict()) == other
    assert set(SCHEDULE_DEFAULTS) == {f for f in TrainConfig.__dataclass_fields__} - _OLD_FIELDS


def test_schedule_lr_per_step_is_what_it_says():
    # warmup_cosine, base lr 0.01 × 2 = 0.02, 10 warm-up steps, horizon 110, floor 10%:
    cfg = TrainConfig(n=16, m=4, p=0.1, lr=0.01, lr_scale=2.0, schedule="warmup_cosine", warmup_steps=10,
                      steps=110, min_lr_frac=0.1)
    expected = {1: 0.002, 5: 0.01, 10: 0.02,           # linear warm-up t/10 × 0.02
                60: 0.02 * (0.1 + 0.9 * 0.5),            # half-way: cos(π/2) = 0
                35: 0.02 * (0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2),
                110: 0.002, 500: 0.002}                  # the floor at and after the horizon
    for t, lr in expected.items():
        assert cfg.lr_at(t) == pytest.approx(lr, rel=1e-14, abs=0), t
    const = TrainConfig(n=16, m=4, p=0.1, lr=0.01, warmup_steps=4, steps=100)
    assert [const.lr_at(t) for t in (1, 3, 4, 5, 100)] == pytest.approx([0.0025, 0.0075, 0.01, 0.01, 0.01], rel=1e-14)
    scaled = TrainConfig(n=64, m=4, p=0.1, lr_scale=10.0)
    assert scaled.lr_at(7) == pytest.approx(10 * 3e-3 / 8, rel=1e-15)


def _independent_lr(t: int, base: float, warm: int, horizon: int, floor: float) -> float:
    if t <= warm:
        return base * t / warm
    u = min(1.0, (t - warm) / (horizon - warm))
    return base * (floor + (1 - floor) * (1 + math.cos(math.pi * u)) / 2)


@pytest.mark.parametrize("p", [0.2, 0.05])
def test_trainer_applies_the_schedule_like_torch_optim(p):
    """Alone (torch's fused kernel) and beside a model with another lr_scale (per-instance lr):
    the same weights as nn.Linear + torch.optim.Adam with the lr set before every step."""
    common = dict(n=24, m=6, p=p, steps=40, batch=64, eval_samples=4096, check_every=40, window=40, min_steps=0,
                  confirm_samples=512, dtype="float64", schedule="warmup_cosine", warmup_steps=5,
                  min_lr_frac=0.2, beta2=0.99, eps=1e-6)
    cfg = TrainConfig(seed=3, lr_scale=4.0, **common)
    (alone,) = train_models([cfg], device="cpu")
    together = train_models([cfg, TrainConfig(seed=5, lr_scale=1.5, **common)], device="cpu")
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    first = torch.nn.Linear(cfg.n, cfg.m, bias=False).double()
    second = torch.nn.Linear(cfg.m, cfg.n).double()
    opt = torch.optim.Adam(list(first.parameters()) + list(second.parameters()), lr=1.0, betas=(0.9, 0.99), eps=1e-6)
    stream = DataStream([cfg.seed], [cfg.p], "train", torch.device("cpu"), torch.float64)
    base = 4.0 * 3e-3 / math.sqrt(cfg.n)
    for t in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = _independent_lr(t, base, 5, cfg.steps, 0.2)
        x = stream.draw(cfg.batch, cfg.n)[0]
        loss = torch.nn.functional.mse_loss(torch.relu(second(first(x))), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # float64; only summation order differs (see test_training_matches_nn_module_with_torch_optim).
    for model in (alone, together[0]):
        np.testing.assert_allclose(model.W_in, first.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.W_out, second.weight.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.b, second.bias.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_recipes_and_bad_fields_name_the_parameter():
    assert recipe_fields("reference", 512) == {}
    fast = recipe_fields("fast", 512)
    assert fast["schedule"] == "warmup_cosine" and fast["steps"] >= 1000 and fast["lr_scale"] > 1
    assert recipe_fields("fast", 1024)["steps"] > fast["steps"] > recipe_fields("fast", 256)["steps"]
    TrainConfig(n=512, m=128, p=0.045, **fast)  # a valid config
    assert set(RECIPES) == {"reference", "fast"}
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipe_fields("slow", 512)
    for kw, name in ((dict(schedule="linear"), "schedule"), (dict(lr_scale=0.0), "lr_scale"),
                     (dict(warmup_steps=-1), "warmup_steps"), (dict(min_lr_frac=1.5), "min_lr_frac"),
                     (dict(beta1=1.0), "beta1"), (dict(beta2=-0.1), "beta2"), (dict(eps=0.0), "eps"),
                     (dict(schedule="warmup_cosine", warmup_steps=100, steps=100), "warmup_steps")):
        with pytest.raises(ValueError, match=f"^{name} must"):
            TrainConfig(n=4, m=2, p=0.5, **kw)
