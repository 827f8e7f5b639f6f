"""Batched training of the toy model of superposition (docs/theory.md §1, recipe of §9).

Many models at one ``n`` train as ONE tensor program along an instance axis ``I``:

    W_in : (I, M, n)     W_out : (I, n, M)     b : (I, n)      M = max m over the batch
    y    = ReLU(x W_in^T W_out^T + b)          loss_i = mean over batch and features of (y - x)^2

A model with ``m < M`` hidden units is padded with zero rows of ``W_in`` / zero columns of
``W_out``. Those padded weights get an exactly zero gradient (``dL/dW_in[k] ∝ W_out[:, k] = 0``
and ``dL/dW_out[:, k] ∝ h_k = W_in[k] x = 0``) and the gradients are multiplied by a 0/1 mask as
well, so a padded unit never moves and contributes nothing; the per-instance losses are summed,
so each instance's gradient is the one it would have alone (tests/test_validation_train.py
checks padded-and-batched against a model trained alone).

Reference recipe (docs/theory.md §9, the defaults): untied layers; PyTorch's default ``nn.Linear``
initialisation (kaiming-uniform, reproduced per instance with the instance's own generator, so
that ``torch.manual_seed(init_seed)`` then ``nn.Linear(n, m, bias=False); nn.Linear(m, n)`` gives
the same numbers); Adam with lr ``3e-3/sqrt(n)``, betas (0.9, 0.999), eps ``1e-7``; batch 1024;
fresh samples every step. ``optimizer="adamw"`` follows Anthropic's toy-model code instead:
AdamW, lr ``1e-3``, weight decay 0.01, eps 1e-8 (torch defaults).

Randomness. Every config draws from its own generators, seeded from ``(seed, stream)`` only (never
from its place in the batch), so a model trained alone or inside any batch sees the same
initialisation, the same training samples, the same confirmation set and the same held-out set
(on a given device type: CPU and CUDA generators differ). Data, exactly x = Bernoulli(p)·U[0,1)
(docs/theory.md §1): for ``p <= SPARSE_P`` the active entries are placed by geometric gaps and get fresh
uniforms (about p·B·n random numbers); otherwise one uniform ``u`` per entry gives
``x = 1[u < p] · u/p`` (given ``u < p``, ``u/p`` is Uniform[0, 1)).

Convergence rule (documented, per model). Every ``check_every`` steps, from ``min_steps`` on:

1. plateau of the training loss: with ``E_t`` the bias-corrected exponential moving average
   (factor ``ema_beta`` per step) of the minibatch loss,
   ``(E_{t-window} - E_t) / E_t < rel_tol``;
2. confirmed on held-out data: with ``V_t`` the loss on a fixed confirmation set of
   ``confirm_samples`` fresh samples (regenerated from its own stream at every check, so the
   difference ``V_{t-window} - V_t`` has common random numbers and little noise),
   ``(V_{t-window} - V_t) / V_t < rel_tol``.

When both hold the model stops (``converged=True``); a model that runs out of ``steps`` reports
``converged=False``. ``stop_on_convergence=False`` trains every model for all ``steps`` and still
reports whether and when the rule was met (``converged_step``).

Non-finite losses: the first step at which a model's minibatch loss is NaN/inf is recorded; at
the next check that model leaves the batch with ``status="nonfinite"`` (``heldout_loss`` NaN) and
the others go on untouched.

The final ``heldout_loss`` is measured on ``eval_samples`` fresh samples from the evaluation
stream (never the last minibatch), with its standard error over samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rugtheory.theory.checks import check_int, check_probability, check_seed
from rugtheory.validation.steps import (
    EVAL_ROWS,
    batch_loss,
    default_device,
    heldout_loss,
    loss_and_grads,
    sparse_default,
    sparse_loss_and_grads,
)
from rugtheory.validation.streams import SPARSE_P, DataStream, init_weights, sample_data, stream_seed

__all__ = [
    "RECIPES",
    "SCHEDULES",
    "SCHEDULE_DEFAULTS",
    "InstanceBatch",
    "TrainConfig",
    "TrainedModel",
    "W_IN_STORAGES",
    "adam_step",
    "fast_recipe_steps",
    "recipe_fields",
    "default_device",
    "heldout_loss",
    "init_weights",
    "sample_data",
    "stream_seed",
    "train_models",
]

#: The ``fast`` recipe (docs/theory.md §9; benchmarks/bench_convergence.py): warm-up + cosine decay.
FAST_LR_SCALE = 10.0
FAST_WARMUP = 200
FAST_STEPS_512 = 4000
FAST_BETA2 = 0.99

#: Learning-rate schedules of :class:`TrainConfig` (field ``schedule``).
SCHEDULES = ("constant", "warmup_cosine")

#: Fields added after the first stores were written, with their defaults: left out of
#: :meth:`TrainConfig.to_dict` while at these values, so the reference recipe's run ids are unchanged.
SCHEDULE_DEFAULTS: dict[str, Any] = {"schedule": "constant", "lr_scale": 1.0, "warmup_steps": 0,
                                     "min_lr_frac": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": None}


#: Named training recipes (docs/theory.md §9), their TrainConfig fields at each n: :func:`recipe_fields`.
RECIPES = ("reference", "fast")


def recipe_fields(name: str, n: int) -> dict[str, Any]:
    """TrainConfig fields of the named recipe at ``n`` (besides n, m, p, seed).

    ``"reference"``: none (the defaults are the reference recipe: Adam lr 3e-3/√n, constant).
    ``"fast"``: warm-up + cosine decay to 0 with Adam lr ``10 × 3e-3/√n``, betas (0.9, 0.99), eps 1e-7,
    200 warm-up steps and a budget of :func:`fast_recipe_steps` (4,000 at n = 512); the convergence
    rule is checked only at the end of the budget (``min_steps = steps``: a decaying lr would make
    it fire early on a plateau the decay is about to leave). At n = 512, m = 128, p = 0.045 it comes
    within 0.5% of the reference's converged loss in 2,500 steps instead of 14,750 and ends lower
    (docs/theory.md §9; ``python -m benchmarks convergence``). Tuned there only: at p = 0.01 it ends
    a few percent above the reference (docs/theory.md §9, the atlas).
    """
    if name == "reference":
        return {}
    if name == "fast":
        steps = fast_recipe_steps(n)
        return {"schedule": "warmup_cosine", "lr_scale": FAST_LR_SCALE, "warmup_steps": FAST_WARMUP,
                "beta2": FAST_BETA2, "steps": steps, "min_steps": steps}
    raise ValueError(f"recipe must be one of {', '.join(map(repr, RECIPES))}, got {name!r}")


def fast_recipe_steps(n: int) -> int:
    """Step budget (= cosine horizon) of the ``fast`` recipe at n: FAST_STEPS_512 at n = 512, scaled
    like the reference's convergence step (14,500 at n = 512, 23,750 at 1024: n^0.71), a multiple of 250."""
    return max(1000, int(round(FAST_STEPS_512 * (n / 512) ** 0.71 / 250)) * 250)


@dataclass(frozen=True)
class TrainConfig:
    """One model to train.

    Parameters
    ----------
    n, m : int
        Features and hidden units, ``1 <= m <= n`` (r = m/n).
    p : float
        Feature probability in (0, 1].
    seed : int
        Seeds every random stream of this model (init, training data, confirmation, held-out).
    steps : int
        Maximum number of optimiser steps.
    batch : int
        Fresh samples per step.
    lr : float or None
        Learning rate; ``None`` means ``3e-3/sqrt(n)`` for Adam (reference) and ``1e-3`` for AdamW
        (Anthropic).
    optimizer : {"adam", "adamw"}
    eval_samples : int
        Fresh held-out samples for the final loss.
    check_every, window, min_steps, rel_tol, ema_beta, confirm_samples, stop_on_convergence
        The convergence rule of the module docstring.
    dtype : {"float32", "float64"}
        Training precision.
    schedule : {"constant", "warmup_cosine"}
        Learning-rate schedule, as a factor on :attr:`learning_rate` at step t = 1, 2, ...
        (:meth:`lr_factor`): ``"constant"`` is 1 after an optional linear warm-up
        (``t / warmup_steps`` for t <= ``warmup_steps``); ``"warmup_cosine"`` warms up the same way,
        then decays as ``min_lr_frac + (1 - min_lr_frac)(1 + cos(pi u))/2`` with
        ``u = (t - warmup_steps)/(steps - warmup_steps)``, reaching ``min_lr_frac`` at ``steps``.
    lr_scale : float
        Multiplies the learning rate (``lr``, or the recipe default when ``lr`` is None).
    warmup_steps, min_lr_frac
        See ``schedule``.
    beta1, beta2 : float
        Adam's moment factors (the recipe's 0.9, 0.999).
    eps : float or None
        Adam's epsilon; ``None`` means the recipe's ``1e-7`` (Adam) or ``1e-8`` (AdamW).

    The schedule and Adam fields (``schedule`` ... ``eps``) are left out of :meth:`to_dict` while
    they hold their defaults, so a reference-recipe config keeps the run id it had before they
    existed (stores of earlier sweeps resume).
    """

    n: int
    m: int
    p: float
    seed: int = 0
    steps: int = 10_000
    batch: int = 1024
    lr: float | None = None
    optimizer: str = "adam"
    eval_samples: int = 100_000
    check_every: int = 250
    window: int = 1000
    min_steps: int = 1000
    rel_tol: float = 2e-3
    ema_beta: float = 0.99
    confirm_samples: int = 16_384
    stop_on_convergence: bool = True
    dtype: str = "float32"
    schedule: str = "constant"
    lr_scale: float = 1.0
    warmup_steps: int = 0
    min_lr_frac: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float | None = None

    def __post_init__(self) -> None:
        check_int(self.n, "n", low=1)
        check_int(self.m, "m", low=1, high=self.n)
        check_probability(self.p, "p")
        check_seed(self.seed)
        check_int(self.steps, "steps", low=0)
        check_int(self.batch, "batch", low=1)
        check_int(self.eval_samples, "eval_samples", low=2)
        check_int(self.check_every, "check_every", low=1)
        check_int(self.window, "window", low=self.check_every)
        if self.window % self.check_every:
            raise ValueError(f"window must be a multiple of check_every={self.check_every}, got {self.window}")
        check_int(self.min_steps, "min_steps", low=0)
        check_int(self.confirm_samples, "confirm_samples", low=2)
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be one of 'adam', 'adamw', got {self.optimizer!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be one of 'float32', 'float64', got {self.dtype!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be in (0, inf) or None, got {self.lr!r}")
        if not (math.isfinite(self.rel_tol) and self.rel_tol >= 0):
            raise ValueError(f"rel_tol must be in [0, inf), got {self.rel_tol!r}")
        if not (0 <= self.ema_beta < 1):
            raise ValueError(f"ema_beta must be in [0, 1), got {self.ema_beta!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        if not (math.isfinite(self.lr_scale) and self.lr_scale > 0):
            raise ValueError(f"lr_scale must be in (0, inf), got {self.lr_scale!r}")
        check_int(self.warmup_steps, "warmup_steps", low=0)
        if self.schedule == "warmup_cosine" and self.steps and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be < steps={self.steps} with schedule 'warmup_cosine', "
                             f"got {self.warmup_steps}")
        if not (0 <= self.min_lr_frac <= 1):
            raise ValueError(f"min_lr_frac must be in [0, 1], got {self.min_lr_frac!r}")
        for name in ("beta1", "beta2"):
            if not (0 <= getattr(self, name) < 1):
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be in (0, inf) or None, got {self.eps!r}")

    @property
    def r(self) -> float:
        return self.m / self.n

    @property
    def learning_rate(self) -> float:
        """The lr actually used (the recipe default when ``lr`` is None)."""
        base = float(self.lr) if self.lr is not None else (
            3e-3 / math.sqrt(self.n) if self.optimizer == "adam" else 1e-3)
        return base if self.lr_scale == 1.0 else base * self.lr_scale

    @property
    def adam_eps(self) -> float:
        """The epsilon actually used (the recipe default when ``eps`` is None)."""
        if self.eps is not None:
            return float(self.eps)
        return 1e-8 if self.optimizer == "adamw" else 1e-7

    def lr_factor(self, step: int) -> float:
        """The schedule's factor on :attr:`learning_rate` at optimiser step ``step`` (1-based)."""
        if self.warmup_steps and step <= self.warmup_steps:
            return step / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        u = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_lr_frac + (1 - self.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * u))

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (1-based): ``learning_rate * lr_factor(step)``."""
        factor = self.lr_factor(step)
        return self.learning_rate if factor == 1.0 else self.learning_rate * factor

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name, default in SCHEDULE_DEFAULTS.items():
            if d[name] == default and type(d[name]) is type(default):
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**d)


@dataclass
class TrainedModel:
    """A trained model and how it got there.

    ``history`` holds ``(step, ema_training_loss)`` at every check; ``confirm_history`` holds
    ``(step, confirmation_loss)``. ``status`` is ``"ok"`` or ``"nonfinite"`` (then
    ``nonfinite_step`` is the first step with a NaN/inf minibatch loss and ``heldout_loss`` is NaN).
    """

    config: TrainConfig
    W_in: np.ndarray
    W_out: np.ndarray
    b: np.ndarray
    heldout_loss: float
    heldout_se: float
    converged: bool
    steps_run: int
    history: list[tuple[int, float]]
    status: str
    converged_step: int | None = None
    nonfinite_step: int | None = None
    confirm_history: list[tuple[int, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def W(self) -> np.ndarray:
        """The n×n product ``W_out W_in`` (float64)."""
        return self.W_out.astype(np.float64) @ self.W_in.astype(np.float64)


#: How :class:`InstanceBatch` may hold W_in (:func:`rugtheory.validation.steps.stored_transposed`).
W_IN_STORAGES = ("plain", "transposed")


class InstanceBatch:
    """Training state of the active instances, with everything indexed along axis 0.

    ``w_in_storage``: ``"plain"`` holds each W_in as a row-major (M, n) array; ``"transposed"``
    holds the row-major (n, M) W_in^T and ``w_in`` is its (I, M, n) transposed view (as are the
    Adam moments of W_in), so that the sparse step reads and writes rows of W_in^T without a
    transposing copy. The numbers are the same either way; only the memory order differs.
    """

    def __init__(self, configs: Sequence[TrainConfig], idx: list[int], device: torch.device, dtype: torch.dtype,
                 *, w_in_storage: str = "plain"):
        if w_in_storage not in W_IN_STORAGES:
            raise ValueError(f"w_in_storage must be one of {', '.join(map(repr, W_IN_STORAGES))}, "
                             f"got {w_in_storage!r}")
        n = configs[idx[0]].n
        big_m = max(configs[i].m for i in idx)
        count = len(idx)
        self.idx = list(idx)
        self.seeds = [configs[i].seed for i in idx]
        self.w_in_storage = w_in_storage
        if w_in_storage == "transposed":
            self.w_in = torch.zeros(count, n, big_m, dtype=dtype).transpose(1, 2)
        else:
            self.w_in = torch.zeros(count, big_m, n, dtype=dtype)
        self.w_out = torch.zeros(count, n, big_m, dtype=dtype)
        self.b = torch.zeros(count, n, dtype=dtype)
        self.mask = torch.zeros(count, big_m, 1, dtype=dtype)
        for k, i in enumerate(idx):
            c = configs[i]
            w_in, w_out, b = init_weights(n, c.m, c.seed)
            self.w_in[k, : c.m] = w_in.to(dtype)
            self.w_out[k, :, : c.m] = w_out.to(dtype)
            self.b[k] = b.to(dtype)
            self.mask[k, : c.m] = 1
        self.w_in, self.w_out, self.b, self.mask = (t.to(device) for t in (self.w_in, self.w_out, self.b, self.mask))
        self.p = torch.tensor([configs[i].p for i in idx], dtype=dtype, device=device).view(-1, 1, 1)
        self.lr = torch.tensor([configs[i].learning_rate for i in idx], dtype=dtype, device=device)
        self.lr_values = [configs[i].learning_rate for i in idx]
        self.ms = [configs[i].m for i in idx]
        self.params = [self.w_in, self.w_out, self.b]
        self.exp_avg = [torch.zeros_like(t) for t in self.params]
        self.exp_avg_sq = [torch.zeros_like(t) for t in self.params]
        self.ema = torch.zeros(count, dtype=torch.float64, device=device)
        self.first_bad = torch.full((count,), -1, dtype=torch.int64, device=device)

    def keep(self, keep: list[int]) -> None:
        """Drop every instance not in ``keep`` (positions into the current batch)."""
        sel = torch.tensor(keep, dtype=torch.long, device=self.w_in.device)
        self.idx = [self.idx[k] for k in keep]
        self.seeds = [self.seeds[k] for k in keep]
        self.lr_values = [self.lr_values[k] for k in keep]
        self.ms = [self.ms[k] for k in keep]
        self.w_in, self.w_out, self.b = (_select(t, sel) for t in self.params)
        self.params = [self.w_in, self.w_out, self.b]
        self.exp_avg = [_select(t, sel) for t in self.exp_avg]
        self.exp_avg_sq = [_select(t, sel) for t in self.exp_avg_sq]
        self.mask, self.p, self.lr, self.ema, self.first_bad = (
            t.index_select(0, sel) for t in (self.mask, self.p, self.lr, self.ema, self.first_bad)
        )


def _select(t: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """``t.index_select(0, sel)`` in the memory layout of ``t`` (plain, or a transposed view)."""
    if t.dim() == 3 and not t.is_contiguous() and t.transpose(1, 2).is_contiguous():
        return t.transpose(1, 2).index_select(0, sel).transpose(1, 2)
    return t.index_select(0, sel)


def _memory_order(t: torch.Tensor) -> torch.Tensor:
    """A contiguous view of ``t`` (``t`` itself, or its (1, 2) transpose when W_in is stored transposed)."""
    if t.dim() == 3 and not t.is_contiguous() and t.transpose(1, 2).is_contiguous():
        return t.transpose(1, 2)
    return t


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and the same memory order (strides of size-1 axes do not matter)."""
    return a.shape == b.shape and all(sa == sb for sa, sb, size in zip(a.stride(), b.stride(), a.shape) if size > 1)


def adam_step(st: InstanceBatch, grads: list[torch.Tensor], step: int, cfg: TrainConfig, *,
              fused: bool | None = None) -> None:
    """Adam / AdamW as ``torch.optim.Adam`` / ``AdamW``, with a per-instance lr.

    ``fused`` (default: when torch has it) runs torch's fused CPU/CUDA kernel
    (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)`` runs): one pass that reads
    parameter, gradient and both moments and writes back three. With one lr in the batch (the
    recipe's 3e-3/sqrt(n) at one n) it runs once on the whole tensors; with several, once per
    distinct lr on the instances' slices. ``fused=False`` is the single-tensor formula written out
    with the lr broadcast per instance (about ten passes and weight-sized temporaries: at n = 8192
    ten times slower, ``python -m benchmarks trainer_roofline``); the tests compare the two.
    The fused kernel walks parameter, gradient and moments in memory order, so every gradient must
    have the layout of its parameter (the step functions return them so; checked here).
    tests/test_validation_train.py checks both against ``torch.optim`` on an ``nn.Module``.
    """
    beta1, beta2 = cfg.beta1, cfg.beta2
    adamw = cfg.optimizer == "adamw"
    eps = cfg.adam_eps
    decay = 0.01 if adamw else 0.0
    factor = cfg.lr_factor(step)  # the schedule (1.0 for the reference recipe: lr untouched)
    if fused is None:
        fused = hasattr(torch, "_fused_adam_")
    elif fused and not hasattr(torch, "_fused_adam_"):
        raise ValueError(f"fused=True needs torch._fused_adam_, which torch {torch.__version__} lacks; "
                         f"use fused=False or None")
    if any(m < st.w_in.shape[1] for m in st.ms):  # padded units: their (zero) gradients stay zero
        grads[0].mul_(st.mask)
        grads[1].mul_(st.mask.transpose(1, 2))
    for k, (param, grad) in enumerate(zip(st.params, grads)):
        if not _same_layout(param, grad):
            raise ValueError(f"grads[{k}] must have the shape and memory layout of its parameter: shape "
                             f"{tuple(grad.shape)}, strides {grad.stride()} vs {tuple(param.shape)}, {param.stride()}")
    if fused:
        kernel = torch._fused_adamw_ if adamw else torch._fused_adam_
        # The kernel copies a non-contiguous tensor to a contiguous one and back (four weight-sized
        # round trips for a transposed W_in); the update is elementwise, so it gets contiguous views.
        lists = [[_memory_order(t) for t in ts] for ts in (st.params, grads, st.exp_avg, st.exp_avg_sq)]
        groups: dict[float, list[int]] = {}
        for k, lr in enumerate(st.lr_values):
            groups.setdefault(lr, []).append(k)
        for lr, ks in groups.items():
            tensors = lists if len(groups) == 1 else [[t[k] for t in ts for k in ks] for ts in lists]
            steps = [torch.tensor(float(step), dtype=torch.float32, device=st.w_in.device) for _ in tensors[0]]
            kernel(*tensors, [], steps, lr=lr if factor == 1.0 else lr * factor, beta1=beta1, beta2=beta2,
                   weight_decay=decay, eps=eps, amsgrad=False, maximize=False)
        return
    bias1 = 1 - beta1**step
    bias2_sqrt = math.sqrt(1 - beta2**step)
    for param, grad, m1, m2 in zip(st.params, grads, st.exp_avg, st.exp_avg_sq):
        shape = (-1,) + (1,) * (param.dim() - 1)
        lr = st.lr.view(shape) if factor == 1.0 else st.lr.view(shape) * factor
        if adamw:
            param.mul_(1 - lr * decay)
        m1.lerp_(grad, 1 - beta1)
        m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (m2.sqrt() / bias2_sqrt).add_(eps)
        param.sub_((lr / bias1) * m1 / denom)


def _group_key(c: TrainConfig) -> tuple[Any, ...]:
    """Fields that must agree for configs to share one batched program."""
    return (c.n, c.batch, c.optimizer, c.steps, c.check_every, c.window, c.min_steps, c.rel_tol, c.ema_beta,
            c.confirm_samples, c.stop_on_convergence, c.eval_samples, c.dtype, c.schedule, c.warmup_steps,
            c.min_lr_frac, c.beta1, c.beta2, c.adam_eps)


def _buckets(configs: Sequence[TrainConfig], max_padding: float) -> list[list[int]]:
    """Group instances by sampler, then by hidden width.

    Models with ``p <= SPARSE_P`` (sparse step) and the others (dense step) never share a bucket.
    Within each, sorted by m (descending), a bucket takes models while its widest padding wastes at
    most ``max_padding`` of the bucket's width (widths <= 16 always share)."""
    order = sorted(range(len(configs)), key=lambda i: (configs[i].p > SPARSE_P, -configs[i].m, i))
    out: list[list[int]] = []
    for i in order:
        if out and (configs[out[-1][0]].p > SPARSE_P) == (configs[i].p > SPARSE_P):
            width = configs[out[-1][0]].m
            if width <= 16 or configs[i].m >= (1 - max_padding) * width:
                out[-1].append(i)
                continue
        out.append([i])
    return [sorted(b) for b in out]


def train_models(
    configs: Sequence[TrainConfig],
    *,
    device: str | None = None,
    progress: bool = False,
    on_result: Callable[[int, TrainedModel], None] | None = None,
    max_padding: float = 0.25,
    sparse: bool | None = None,
    w_in_storage: str | None = None,
) -> list[TrainedModel]:
    """Train every config as one batched tensor program; return the models in input order.

    All configs must share ``n`` and the training-loop fields (batch, optimizer, steps and the
    convergence rule); ``m``, ``p``, ``seed`` and ``lr`` may differ per model. See the module
    docstring for the recipe, the randomness, the convergence rule and non-finite handling.

    Parameters
    ----------
    configs : sequence of TrainConfig
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default CUDA when available, else CPU.
    progress : bool
        Show a tqdm progress bar over steps.
    on_result : callable, optional
        Called as ``on_result(index, model)`` the moment a model leaves the batch (converged,
        out of steps or non-finite), so that a sweep can store it before the others finish.
    max_padding : float
        Every step runs one batched product per *width bucket*: models sorted by ``m`` share a
        bucket while zero-padding wastes at most this fraction of the bucket's width (``1.0``: one
        bucket per sampler, everything padded to the largest m; models with ``p <= SPARSE_P`` and
        the others never share one). Results do not depend on it.
    sparse : bool, optional
        Which step the buckets of models with ``p <= SPARSE_P`` run: the sparse one
        (``embedding_bag`` on the ~p·B·n active entries of x) or the dense batched products.
        Default: sparse on the CPU, dense on CUDA. Both give the same model up to rounding
        (tests/test_validation_train.py); ``benchmarks/bench_training.py`` times them.
    w_in_storage : {"plain", "transposed"}, optional
        Memory layout of W_in (:class:`InstanceBatch`). Default: ``"transposed"`` for the buckets
        that run the sparse step (it then copies no weight matrix), ``"plain"`` for the others.
        Both give the same model up to rounding (tests/test_validation_train.py);
        ``python -m benchmarks trainer_roofline`` times them.
    """
    configs = list(configs)
    if not configs:
        return []
    _check_batch(configs, max_padding, sparse)
    if w_in_storage is not None and w_in_storage not in W_IN_STORAGES:
        raise ValueError(f"w_in_storage must be None or one of {', '.join(map(repr, W_IN_STORAGES))}, "
                         f"got {w_in_storage!r}")
    run = _Run(configs, torch.device(device or default_device()), max_padding, sparse, on_result, w_in_storage)
    cfg = configs[0]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train n={cfg.n} ×{len(configs)}", unit="step", leave=False)
    step = 0
    while run.active() and step < cfg.steps:
        step += 1
        run.step(step)
        if bar is not None:
            bar.update(1)
        if step % cfg.check_every == 0 or step == cfg.steps:
            run.check_all(step)
            if bar is not None:
                bar.set_postfix(active=run.active())
    run.finish_all(step)  # steps == 0: nothing was checked
    if bar is not None:
        bar.close()
    return [run.results[i] for i in range(len(configs))]


def _check_batch(configs: list[TrainConfig], max_padding: float, sparse: bool | None) -> None:
    """Refuse what cannot train as one batched program, naming the parameter."""
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise ValueError(f"configs must hold TrainConfig objects, got {type(c).__name__}")
    if len({_group_key(c) for c in configs}) != 1:
        raise ValueError(
            "configs must share n and the training-loop fields (batch, optimizer, steps, eval_samples, dtype, "
            "convergence rule, schedule and Adam settings) to train as one batch; group them first "
            "(rugtheory.validation.sweep does)"
        )
    if not (0 <= max_padding <= 1):
        raise ValueError(f"max_padding must be in [0, 1], got {max_padding!r}")
    if sparse not in (None, True, False):
        raise ValueError(f"sparse must be None, True or False, got {sparse!r}")


class _Run:
    """The state of one :func:`train_models` call: the width buckets, their data streams, and what
    has been recorded per config (loss histories, convergence steps, finished models)."""

    def __init__(self, configs: list[TrainConfig], dev: torch.device, max_padding: float, sparse: bool | None,
                 on_result: Callable[[int, TrainedModel], None] | None, w_in_storage: str | None = None) -> None:
        self.configs, self.dev, self.on_result = configs, dev, on_result
        self.cfg = cfg = configs[0]
        dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        buckets = _buckets(configs, max_padding)
        self.sparse_step = [
            sparse_default(dev, ps) if sparse is None else sparse and all(p <= SPARSE_P for p in ps)
            for ps in ([configs[i].p for i in idx] for idx in buckets)
        ]
        self.states = [
            InstanceBatch(configs, idx, dev, dtype, w_in_storage=w_in_storage or ("transposed" if use else "plain"))
            for idx, use in zip(buckets, self.sparse_step)
        ]
        self.streams = [DataStream(st.seeds, [configs[i].p for i in st.idx], "train", dev, dtype) for st in self.states]
        self.results: dict[int, TrainedModel] = {}
        self.history: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(configs))}
        self.confirm: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(configs))}
        self.conv_step: dict[int, int] = {}
        self.start_time = time.perf_counter()
        self.lag = cfg.window // cfg.check_every

    def active(self) -> int:
        return sum(len(st.idx) for st in self.states)

    def step(self, step: int) -> None:
        """One optimiser step of every bucket; records the EMA of the loss and the first non-finite step."""
        cfg, beta = self.cfg, self.cfg.ema_beta
        for st, data, use_sparse in zip(self.states, self.streams, self.sparse_step):
            if not st.idx:
                continue
            if use_sparse:
                loss, grads = sparse_loss_and_grads(st.w_in, st.w_out, st.b, data.draw_sparse(cfg.batch, cfg.n))
            else:
                loss, grads = loss_and_grads(st.w_in, st.w_out, st.b, data.draw(cfg.batch, cfg.n))
            loss64 = loss.detach().to(torch.float64)
            finite = torch.isfinite(loss64)
            st.first_bad = torch.where((st.first_bad < 0) & ~finite, torch.full_like(st.first_bad, step),
                                       st.first_bad)
            st.ema.mul_(beta).add_(torch.where(finite, loss64, torch.zeros_like(loss64)), alpha=1 - beta)
            adam_step(st, grads, step, cfg)

    def check_all(self, step: int) -> None:
        for st, data in zip(self.states, self.streams):
            if st.idx:
                self.check(st, data, step)

    def finish_all(self, step: int) -> None:
        for st, data in zip(self.states, self.streams):
            if st.idx:
                self.finish(st, data, [], step, {})

    def check(self, st: InstanceBatch, data: DataStream, step: int) -> None:
        """The convergence rule and the non-finite exit at a check step (module docstring)."""
        cfg, history, confirm, conv_step = self.cfg, self.history, self.confirm, self.conv_step
        ema = (st.ema / (1 - cfg.ema_beta**step)).cpu().tolist()
        bad = (st.first_bad >= 0).cpu().tolist()
        vmean, _ = batch_loss(st.w_in, st.w_out, st.b, st.p, st.seeds, "confirm", cfg.confirm_samples, EVAL_ROWS)
        vmean_list = vmean.cpu().tolist()
        keep, statuses = [], {}
        for k, i in enumerate(st.idx):
            history[i].append((step, float(ema[k])))
            confirm[i].append((step, float(vmean_list[k])))
            if bad[k]:
                statuses[k] = "nonfinite"
                continue
            if i not in conv_step and step >= cfg.min_steps and len(history[i]) > self.lag:
                e_old, e_new = history[i][-1 - self.lag][1], history[i][-1][1]
                v_old, v_new = confirm[i][-1 - self.lag][1], confirm[i][-1][1]
                if (e_old - e_new) < cfg.rel_tol * e_new and (v_old - v_new) < cfg.rel_tol * v_new:
                    conv_step[i] = step
            if i in conv_step and cfg.stop_on_convergence:
                continue
            keep.append(k)
        if step == cfg.steps:
            keep = []
        self.finish(st, data, keep, step, statuses)

    def finish(self, st: InstanceBatch, data: DataStream, keep_positions: list[int], step: int,
               statuses: dict[int, str]) -> None:
        """Record every active instance of ``st`` not kept (held-out loss on the eval stream), then shrink the batch."""
        leaving = [k for k in range(len(st.idx)) if k not in keep_positions]
        if not leaving:
            return
        sel = torch.tensor(leaving, dtype=torch.long, device=self.dev)
        w_in, w_out, b = (t.index_select(0, sel) for t in st.params)
        p = st.p.index_select(0, sel)
        seeds = [st.seeds[k] for k in leaving]
        mean, se = batch_loss(w_in, w_out, b, p, seeds, "eval", self.cfg.eval_samples, EVAL_ROWS)
        first_bad = st.first_bad.index_select(0, sel).cpu().tolist()
        for j, k in enumerate(leaving):
            i = st.idx[k]
            c = self.configs[i]
            bad = first_bad[j] >= 0
            self.results[i] = TrainedModel(
                config=c,
                W_in=w_in[j, : c.m].cpu().numpy().copy(),
                W_out=w_out[j, :, : c.m].cpu().numpy().copy(),
                b=b[j].cpu().numpy().copy(),
                heldout_loss=float("nan") if bad else float(mean[j]),
                heldout_se=float("nan") if bad else float(se[j]),
                converged=(i in self.conv_step) and not bad,
                steps_run=step,
                history=self.history[i],
                status="nonfinite" if bad else statuses.get(k, "ok"),
                converged_step=self.conv_step.get(i),
                nonfinite_step=int(first_bad[j]) if bad else None,
                confirm_history=self.confirm[i],
                train_seconds=time.perf_counter() - self.start_time,
            )
            if self.on_result is not None:
                self.on_result(i, self.results[i])
        st.keep(keep_positions)
        data.keep(keep_positions)
