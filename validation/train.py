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

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "train_models",
    "sample_data",
    "stream_seed",
    "init_weights",
    "heldout_loss",
    "default_device",
]

#: Names of the random streams a config draws from (index into the stream seed).
STREAMS = {"init": 0, "train": 1, "confirm": 2, "eval": 3}


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

    @property
    def r(self) -> float:
        return self.m / self.n

    @property
    def learning_rate(self) -> float:
        """The lr actually used (the recipe default when ``lr`` is None)."""
        if self.lr is not None:
            return float(self.lr)
        return 3e-3 / math.sqrt(self.n) if self.optimizer == "adam" else 1e-3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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


def default_device() -> str:
    """``"cuda"`` when available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit torch seed for one random stream of a config, from ``(seed, stream)`` only."""
    state = np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _generator(seed: int, stream: str, device: torch.device | str) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


def init_weights(n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's default ``nn.Linear`` init of the untied model, on the CPU in float32.

    Draws, in ``nn.Linear`` order, ``W_in`` (m×n, kaiming-uniform with a = sqrt(5), i.e.
    U(-1/sqrt(n), 1/sqrt(n))), ``W_out`` (n×m, U(-1/sqrt(m), 1/sqrt(m))) and ``b`` (n,
    U(-1/sqrt(m), 1/sqrt(m))) from the generator of stream ``"init"``.
    """
    g = _generator(seed, "init", "cpu")
    w_in = torch.empty(m, n)
    torch.nn.init.kaiming_uniform_(w_in, a=math.sqrt(5), generator=g)
    w_out = torch.empty(n, m)
    torch.nn.init.kaiming_uniform_(w_out, a=math.sqrt(5), generator=g)
    bound = 1 / math.sqrt(m)
    b = torch.empty(n)
    torch.nn.init.uniform_(b, -bound, bound, generator=g)
    return w_in, w_out, b


def sample_data(u: torch.Tensor, p: torch.Tensor | float) -> torch.Tensor:
    """``x = 1[u < p] · u/p`` from uniforms ``u``: Bernoulli(p)·Uniform[0,1) per entry.

    ``p`` broadcasts against ``u`` (shape (I, 1, 1) for a batch of instances).
    """
    # threshold(v, -1, 0) keeps v where v > -1, i.e. u/p < 1, and writes 0 elsewhere: one fused
    # pass (several times faster on the CPU than torch.where with a boolean temporary).
    neg = torch.nn.functional.threshold(u * (-1.0 / p), -1.0, 0.0)
    return neg.neg_()


#: At or below this p, samples are drawn sparsely (geometric gaps between active entries: O(p B n)
#: random numbers instead of B n); above it, one uniform per entry.
SPARSE_P = 0.1


def _sparse_draw(total: int, p: float, g: torch.Generator, device: torch.device,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Active positions (sorted, int64) and values of ``total`` i.i.d. Bernoulli(p)·U[0,1) entries.

    In the flattened array the active positions of i.i.d. Bernoulli(p) entries are the partial sums
    of i.i.d. Geometric(p) gaps, ``gap = 1 + floor(log(u) / log(1 − p))``; each active entry then
    gets a fresh Uniform[0, 1) value. Exactly the law of docs/theory.md §1, with about ``p·total`` draws.
    """
    log_q = math.log1p(-p)
    k = int(p * total + 6 * math.sqrt(p * (1 - p) * total) + 16)
    start = 0
    positions, values = [], []
    while True:
        u = torch.rand(k, generator=g, device=device, dtype=torch.float64).clamp_min_(1e-300)
        pos = torch.cumsum(torch.floor(torch.log(u) / log_q).to(torch.int64) + 1, 0).add_(start - 1)
        count = int(torch.searchsorted(pos, total))
        positions.append(pos[:count])
        values.append(torch.rand(count, generator=g, device=device, dtype=dtype))
        if count < k:
            break
        start = int(pos[-1]) + 1
    if len(positions) == 1:
        return positions[0], values[0]
    return torch.cat(positions), torch.cat(values)


def _sparse_fill(out: torch.Tensor, p: float, g: torch.Generator) -> None:
    """Fill ``out`` with x = Bernoulli(p)·U[0,1) from :func:`_sparse_draw` (same random numbers)."""
    flat = out.view(-1)
    flat.zero_()
    pos, vals = _sparse_draw(flat.numel(), p, g, out.device, out.dtype)
    flat[pos] = vals


class _SparseX:
    """A batch x of shape (I, B, n) held by its active entries, in the two orders the step needs.

    * ``flat``: index of each entry in the flattened (I, B, n) array (instance, then sample, then
      feature: "CSR" order), ``values`` its value, ``instance`` its instance;
    * ``rows_index``/``rows_offsets``: for ``h = x W_in^T`` as one ``embedding_bag`` over the
      stacked ``(I n, M)`` matrix of the W_in^T, one bag per (instance, sample);
    * ``cols_index``/``cols_offsets``/``cols_values``: the same entries sorted by (instance,
      feature) ("CSC" order), for ``dL/dW_in^T = x^T dh`` as one ``embedding_bag`` over the
      ``(I B, M)`` rows of dh, one bag per (instance, feature).

    The CSC order comes from a stable radix sort of 16-bit feature indices (numpy), per instance.
    """

    def __init__(self, parts: Sequence[tuple[torch.Tensor, torch.Tensor]], rows: int, n: int,
                 device: torch.device, *, transpose: bool = True) -> None:
        inst = len(parts)
        self.shape = (inst, rows, n)
        per = rows * n
        if inst == 1:
            self.flat, self.values = parts[0]
            self.instance = None  # every entry belongs to instance 0
        else:
            self.flat = torch.cat([pos + k * per for k, (pos, _) in enumerate(parts)])
            self.values = torch.cat([v for _, v in parts])
            counts = torch.tensor([len(v) for _, v in parts], device=device)
            self.instance = torch.repeat_interleave(torch.arange(inst, device=device), counts)
        sample = torch.div(self.flat, n, rounding_mode="floor")  # global row in (I B)
        self.rows_index = self.flat - sample * n  # feature j ...
        if inst > 1:
            self.rows_index += torch.div(sample, rows, rounding_mode="floor") * n  # ... + k n: row of (I n, M)
        self.rows_offsets = _offsets(sample, inst * rows)
        if not transpose:
            return
        # bags are counted in any order; the entries are then permuted into (instance, feature) order
        self.cols_offsets = _offsets(self.rows_index, inst * n)
        order = _stable_order(self.rows_index, [len(v) for _, v in parts], n)
        self.cols_index = sample.index_select(0, order)
        self.cols_values = self.values.index_select(0, order)

    def dense(self) -> torch.Tensor:
        x = torch.zeros(self.shape, dtype=self.values.dtype, device=self.values.device)
        x.view(-1)[self.flat] = self.values
        return x


def _offsets(keys: torch.Tensor, bags: int) -> torch.Tensor:
    """Start of each bag 0..bags-1 once ``keys`` are sorted (empty bags get the next bag's start)."""
    counts = torch.bincount(keys, minlength=bags)
    return torch.cumsum(counts, 0).sub_(counts)


def _stable_order(key: torch.Tensor, counts: Sequence[int], n: int) -> torch.Tensor:
    """Permutation that sorts ``key`` (= instance·n + feature, instances already in order) stably.

    Per instance, a stable sort of its features: numpy's radix sort of 16-bit keys, O(count).
    """
    if n <= 1 << 16 and key.device.type == "cpu":
        f = key.numpy()
        out = np.empty(len(f), dtype=np.int64)
        start = 0
        for k, c in enumerate(counts):
            out[start:start + c] = np.argsort((f[start:start + c] - k * n).astype(np.uint16), kind="stable")
            out[start:start + c] += start
            start += c
        return torch.from_numpy(out)
    return torch.argsort(key, stable=True)


class _DataStream:
    """One generator per instance for one stream; :meth:`draw` returns x of shape (I, rows, n).

    Each instance consumes its own generator only, so its samples do not depend on the batch.
    """

    def __init__(self, seeds: Sequence[int], ps: Sequence[float], stream: str, device: torch.device,
                 dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.ps = [float(p) for p in ps]
        self.gens = [_generator(s, stream, device) for s in seeds]

    def keep(self, positions: Sequence[int]) -> None:
        self.ps = [self.ps[k] for k in positions]
        self.gens = [self.gens[k] for k in positions]

    def draw(self, rows: int, n: int) -> torch.Tensor:
        x = torch.empty(len(self.gens), rows, n, device=self.device, dtype=self.dtype)
        for k, (p, g) in enumerate(zip(self.ps, self.gens)):
            if p <= SPARSE_P:
                _sparse_fill(x[k], p, g)
            else:
                torch.rand(rows, n, generator=g, device=self.device, dtype=self.dtype, out=x[k])
                x[k] = sample_data(x[k], p)
        return x

    def draw_sparse(self, rows: int, n: int, *, transpose: bool = True) -> _SparseX:
        """The same samples as :meth:`draw` (same random numbers), held by their active entries.

        ``transpose=False`` skips the (instance, feature) order, which only the backward pass needs.
        """
        if any(p > SPARSE_P for p in self.ps):
            raise ValueError(f"draw_sparse needs every p <= SPARSE_P={SPARSE_P}, got {max(self.ps)}")
        parts = [_sparse_draw(rows * n, p, g, self.device, self.dtype) for p, g in zip(self.ps, self.gens)]
        return _SparseX(parts, rows, n, self.device, transpose=transpose)


@torch.no_grad()
def _loss_on(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, p: torch.Tensor, seeds: Sequence[int],
    stream: str, samples: int, chunk: int, sparse: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of the per-sample loss over ``samples`` fresh samples, per instance.

    ``sparse`` (default: on the CPU when every p <= SPARSE_P) computes ``x W_in^T`` from the active
    entries of x only; the samples are the same either way.
    """
    n = w_in.shape[-1]
    data = _DataStream(seeds, p.view(-1).tolist(), stream, w_in.device, w_in.dtype)
    if sparse is None:
        sparse = _sparse_default(w_in.device, data.ps)  # as in training
    w_in_t = _stacked_rows(w_in) if sparse else None
    total = torch.zeros(len(seeds), dtype=torch.float64, device=w_in.device)
    total_sq = torch.zeros_like(total)
    done = 0
    while done < samples:
        rows = min(chunk, samples - done)
        if sparse:
            x = data.draw_sparse(rows, n, transpose=False)
            _, diff = _sparse_forward(w_in_t, w_out, b, x)  # y
            flat = diff.view(-1)
            flat.index_copy_(0, x.flat, flat.index_select(0, x.flat) - x.values)  # y - x at active entries
        else:
            x = data.draw(rows, n)
            diff = torch.relu(torch.baddbmm(b.unsqueeze(1), torch.bmm(x, w_in.transpose(1, 2)), w_out.transpose(1, 2)))
            diff -= x
        per_sample = diff.pow_(2).mean(dim=2).to(torch.float64)  # (I, rows)
        total += per_sample.sum(dim=1)
        total_sq += per_sample.pow(2).sum(dim=1)
        done += rows
    mean = total / samples
    var = (total_sq / samples - mean.pow(2)).clamp_min(0) * samples / (samples - 1)
    return mean, (var / samples).sqrt()


def heldout_loss(
    W_in: np.ndarray, W_out: np.ndarray, b: np.ndarray, p: float, *, seed: int, samples: int = 100_000,
    device: str | None = None,
) -> tuple[float, float]:
    """Held-out loss and its standard error of one model on ``samples`` fresh samples (stream ``eval``)."""
    dev = torch.device(device or default_device())
    w_in = torch.as_tensor(np.asarray(W_in), device=dev).unsqueeze(0)
    w_out = torch.as_tensor(np.asarray(W_out), device=dev, dtype=w_in.dtype).unsqueeze(0)
    bb = torch.as_tensor(np.asarray(b), device=dev, dtype=w_in.dtype).unsqueeze(0)
    pp = torch.tensor([[[float(check_probability(p))]]], device=dev, dtype=w_in.dtype)
    mean, se = _loss_on(w_in, w_out, bb, pp, [check_seed(seed)], "eval", samples, EVAL_ROWS)
    return float(mean[0]), float(se[0])


class _Batch:
    """Training state of the active instances, with everything indexed along axis 0."""

    def __init__(self, configs: Sequence[TrainConfig], idx: list[int], device: torch.device, dtype: torch.dtype):
        n = configs[idx[0]].n
        big_m = max(configs[i].m for i in idx)
        count = len(idx)
        self.idx = list(idx)
        self.seeds = [configs[i].seed for i in idx]
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
        self.w_in, self.w_out, self.b = (t.index_select(0, sel) for t in self.params)
        self.params = [self.w_in, self.w_out, self.b]
        self.exp_avg = [t.index_select(0, sel) for t in self.exp_avg]
        self.exp_avg_sq = [t.index_select(0, sel) for t in self.exp_avg_sq]
        self.mask, self.p, self.lr, self.ema, self.first_bad = (
            t.index_select(0, sel) for t in (self.mask, self.p, self.lr, self.ema, self.first_bad)
        )


def _loss_and_grads(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-instance minibatch loss (I,) and the gradients of their sum, by hand.

    h = x W_in^T, z = h W_out^T + b, y = ReLU(z), L = mean (y - x)^2 over batch and features;
    dL/dz = 2 (y - x) 1[z > 0] / (B n), dW_out = dz^T h, db = Σ_batch dz, dW_in = (dz W_out)^T x.
    tests/test_validation_train.py checks these against autograd.
    """
    inst, batch, n = x.shape
    scale = 2.0 / (batch * n)
    h = torch.bmm(x, w_in.transpose(1, 2))
    z = torch.baddbmm(b.unsqueeze(1), h, w_out.transpose(1, 2))
    diff = torch.relu(z).sub_(x)
    flat = diff.view(inst, 1, batch * n)
    loss = torch.bmm(flat, flat.transpose(1, 2)).view(inst) / (batch * n)  # one fused pass (BLAS dot)
    # dz = diff · 1[z > 0] (one fused pass: ReLU's backward kernel); the factor 2/(B n) is applied
    # to the small gradient tensors instead of the large dz.
    dz = torch.ops.aten.threshold_backward(diff, z, 0)
    g_out = torch.bmm(dz.transpose(1, 2), h).mul_(scale)
    g_b = dz.sum(dim=1).mul_(scale)
    g_in = torch.bmm(torch.bmm(dz, w_out).transpose(1, 2), x).mul_(scale)
    return loss, [g_in, g_out, g_b]


def _stacked_rows(w_in: torch.Tensor) -> torch.Tensor:
    """The W_in^T of every instance stacked as one row-major (I n, M) matrix (embedding_bag's fast path)."""
    inst, big_m, n = w_in.shape
    return w_in.transpose(1, 2).contiguous().view(inst * n, big_m)


def _sparse_forward(w_in_t: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor,
                    x: _SparseX) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = x W_in^T`` from the active entries of x (one ``embedding_bag`` over
    ``w_in_t = _stacked_rows(W_in)``) and ``y = ReLU(h W_out^T + b)``, in place; returns ``(h, y)``."""
    inst, batch, _ = x.shape
    h = torch.nn.functional.embedding_bag(x.rows_index, w_in_t, x.rows_offsets, mode="sum",
                                          per_sample_weights=x.values).view(inst, batch, -1)
    return h, torch.baddbmm(b.unsqueeze(1), h, w_out.transpose(1, 2)).clamp_min_(0)


def _sparse_default(device: torch.device, ps: Sequence[float]) -> bool:
    """The sparse step pays off on the CPU, where the products with x are a third of the work; on
    CUDA the dense batched products are cheaper. It needs every p <= SPARSE_P."""
    return device.type == "cpu" and all(p <= SPARSE_P for p in ps)


def _sparse_loss_and_grads(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, x: _SparseX
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`_loss_and_grads` for a sparse batch: the same loss and gradients, fewer operations.

    Both products with x use its p·B·n active entries only (``embedding_bag``): ``h = x W_in^T``
    over the (instance, sample) bags of the rows of W_in^T and ``dW_in^T = x^T dh`` over the
    (instance, feature) bags of the rows of dh. ReLU runs in place on z (``y > 0`` iff ``z > 0``),
    and ``dz = y − x`` where ``y > 0``, else 0, is written at the active entries only:

        loss = Σ (y − x)^2 = Σ dz^2 + Σ_{x_j > 0, y_j = 0} x_j^2.

    tests/test_validation_train.py checks it against the dense route and autograd.
    """
    inst, big_m, n = w_in.shape
    batch = x.shape[1]
    scale = 2.0 / (batch * n)
    h, dz = _sparse_forward(_stacked_rows(w_in), w_out, b, x)  # dz holds y = ReLU(z) until the active entries are fixed
    flat = dz.view(-1)
    y_active = flat.index_select(0, x.flat)
    on = y_active > 0
    flat.index_copy_(0, x.flat, torch.where(on, y_active - x.values, torch.zeros_like(y_active)))
    missed = torch.where(on, torch.zeros_like(y_active), x.values.square())
    dz_flat = dz.view(inst, 1, batch * n)
    loss = torch.bmm(dz_flat, dz_flat.transpose(1, 2)).view(inst)
    if x.instance is None:
        loss = loss.add_(missed.sum())
    else:
        loss = loss.index_add_(0, x.instance, missed)
    loss = loss / (batch * n)
    g_out = torch.bmm(dz.transpose(1, 2), h).mul_(scale)
    g_b = dz.sum(dim=1).mul_(scale)
    dh = torch.bmm(dz, w_out).view(inst * batch, big_m)
    g_in_t = torch.nn.functional.embedding_bag(x.cols_index, dh, x.cols_offsets, mode="sum",
                                               per_sample_weights=x.cols_values)
    g_in = g_in_t.view(inst, n, big_m).transpose(1, 2).contiguous().mul_(scale)
    return loss, [g_in, g_out, g_b]


def _adam_step(st: _Batch, grads: list[torch.Tensor], step: int, cfg: TrainConfig) -> None:
    """Adam / AdamW as ``torch.optim.Adam`` / ``AdamW``, with a per-instance lr.

    When every instance of the batch has the same lr (the recipe's 3e-3/sqrt(n) at one n), this is
    torch's fused CPU/CUDA kernel (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)``
    runs); otherwise the single-tensor formula written out with the lr broadcast per instance.
    tests/test_validation_train.py checks both against ``torch.optim`` on an ``nn.Module``.
    """
    beta1, beta2 = 0.9, 0.999
    adamw = cfg.optimizer == "adamw"
    eps = 1e-8 if adamw else 1e-7
    decay = 0.01 if adamw else 0.0
    if any(m < st.w_in.shape[1] for m in st.ms):  # padded units: their (zero) gradients stay zero
        grads[0].mul_(st.mask)
        grads[1].mul_(st.mask.transpose(1, 2))
    if len(set(st.lr_values)) == 1 and hasattr(torch, "_fused_adam_"):
        fused = torch._fused_adamw_ if adamw else torch._fused_adam_
        steps = [torch.tensor(float(step), dtype=torch.float32, device=st.w_in.device) for _ in st.params]
        fused(st.params, grads, st.exp_avg, st.exp_avg_sq, [], steps, lr=st.lr_values[0], beta1=beta1,
              beta2=beta2, weight_decay=decay, eps=eps, amsgrad=False, maximize=False)
        return
    bias1 = 1 - beta1**step
    bias2_sqrt = math.sqrt(1 - beta2**step)
    for param, grad, m1, m2 in zip(st.params, grads, st.exp_avg, st.exp_avg_sq):
        shape = (-1,) + (1,) * (param.dim() - 1)
        lr = st.lr.view(shape)
        if adamw:
            param.mul_(1 - lr * decay)
        m1.lerp_(grad, 1 - beta1)
        m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (m2.sqrt() / bias2_sqrt).add_(eps)
        param.sub_((lr / bias1) * m1 / denom)


def _group_key(c: TrainConfig) -> tuple[Any, ...]:
    """Fields that must agree for configs to share one batched program."""
    return (c.n, c.batch, c.optimizer, c.steps, c.check_every, c.window, c.min_steps, c.rel_tol, c.ema_beta,
            c.confirm_samples, c.stop_on_convergence, c.eval_samples, c.dtype)


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


#: Rows per evaluation chunk. Fixed, so that a config's held-out and confirmation samples are the
#: same whatever else is in the batch (the sparse sampler's draws depend on the chunk shape).
EVAL_ROWS = 1024


def _eval_chunk(instances: int, n: int) -> int:
    return EVAL_ROWS


def train_models(
    configs: Sequence[TrainConfig],
    *,
    device: str | None = None,
    progress: bool = False,
    on_result: Callable[[int, TrainedModel], None] | None = None,
    max_padding: float = 0.25,
    sparse: bool | None = None,
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
    """
    configs = list(configs)
    if not configs:
        return []
    for c in configs:
        if not isinstance(c, TrainConfig):
            raise ValueError(f"configs must hold TrainConfig objects, got {type(c).__name__}")
    keys = {_group_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError(
            "configs must share n and the training-loop fields (batch, optimizer, steps, eval_samples, dtype, "
            "convergence rule) to train as one batch; group them first (rugtheory.validation.sweep does)"
        )
    if not (0 <= max_padding <= 1):
        raise ValueError(f"max_padding must be in [0, 1], got {max_padding!r}")
    if sparse not in (None, True, False):
        raise ValueError(f"sparse must be None, True or False, got {sparse!r}")
    cfg = configs[0]
    dev = torch.device(device or default_device())
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    n = cfg.n
    states = [_Batch(configs, idx, dev, dtype) for idx in _buckets(configs, max_padding)]
    sparse_step = [
        _sparse_default(dev, ps) if sparse is None else sparse and all(p <= SPARSE_P for p in ps)
        for ps in ([configs[i].p for i in st.idx] for st in states)
    ]
    streams = [_DataStream(st.seeds, [configs[i].p for i in st.idx], "train", dev, dtype) for st in states]
    results: dict[int, TrainedModel] = {}
    history: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(configs))}
    confirm: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(configs))}
    conv_step: dict[int, int] = {}
    start_time = time.perf_counter()
    lag = cfg.window // cfg.check_every

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train n={n} ×{len(configs)}", unit="step", leave=False)

    def finish(st: _Batch, data: _DataStream, keep_positions: list[int], step: int, statuses: dict[int, str]) -> None:
        """Record every active instance of ``st`` not kept, then shrink the batch."""
        leaving = [k for k in range(len(st.idx)) if k not in keep_positions]
        if not leaving:
            return
        sel = torch.tensor(leaving, dtype=torch.long, device=dev)
        w_in, w_out, b = (t.index_select(0, sel) for t in st.params)
        p = st.p.index_select(0, sel)
        seeds = [st.seeds[k] for k in leaving]
        mean, se = _loss_on(w_in, w_out, b, p, seeds, "eval", cfg.eval_samples, _eval_chunk(len(leaving), n))
        first_bad = st.first_bad.index_select(0, sel).cpu().tolist()
        for j, k in enumerate(leaving):
            i = st.idx[k]
            c = configs[i]
            status = statuses.get(k, "ok")
            bad = first_bad[j] >= 0
            results[i] = TrainedModel(
                config=c,
                W_in=w_in[j, : c.m].cpu().numpy().copy(),
                W_out=w_out[j, :, : c.m].cpu().numpy().copy(),
                b=b[j].cpu().numpy().copy(),
                heldout_loss=float("nan") if bad else float(mean[j]),
                heldout_se=float("nan") if bad else float(se[j]),
                converged=(i in conv_step) and not bad,
                steps_run=step,
                history=history[i],
                status="nonfinite" if bad else status,
                converged_step=conv_step.get(i),
                nonfinite_step=int(first_bad[j]) if bad else None,
                confirm_history=confirm[i],
                train_seconds=time.perf_counter() - start_time,
            )
            if on_result is not None:
                on_result(i, results[i])
        st.keep(keep_positions)
        data.keep(keep_positions)

    def check(st: _Batch, data: _DataStream, step: int) -> None:
        """The convergence rule and the non-finite exit at a check step (module docstring)."""
        ema = (st.ema / (1 - beta**step)).cpu().tolist()
        bad = (st.first_bad >= 0).cpu().tolist()
        vmean, _ = _loss_on(st.w_in, st.w_out, st.b, st.p, st.seeds, "confirm", cfg.confirm_samples,
                            _eval_chunk(len(st.idx), n))
        vmean_list = vmean.cpu().tolist()
        keep, statuses = [], {}
        for k, i in enumerate(st.idx):
            history[i].append((step, float(ema[k])))
            confirm[i].append((step, float(vmean_list[k])))
            if bad[k]:
                statuses[k] = "nonfinite"
                continue
            if i not in conv_step and step >= cfg.min_steps and len(history[i]) > lag:
                e_old, e_new = history[i][-1 - lag][1], history[i][-1][1]
                v_old, v_new = confirm[i][-1 - lag][1], confirm[i][-1][1]
                if (e_old - e_new) < cfg.rel_tol * e_new and (v_old - v_new) < cfg.rel_tol * v_new:
                    conv_step[i] = step
            if i in conv_step and cfg.stop_on_convergence:
                continue
            keep.append(k)
        if step == cfg.steps:
            keep = []
        finish(st, data, keep, step, statuses)

    step = 0
    beta = cfg.ema_beta
    while any(st.idx for st in states) and step < cfg.steps:
        step += 1
        for st, data, use_sparse in zip(states, streams, sparse_step):
            if not st.idx:
                continue
            if use_sparse:
                loss, grads = _sparse_loss_and_grads(st.w_in, st.w_out, st.b, data.draw_sparse(cfg.batch, n))
            else:
                loss, grads = _loss_and_grads(st.w_in, st.w_out, st.b, data.draw(cfg.batch, n))
            loss64 = loss.detach().to(torch.float64)
            finite = torch.isfinite(loss64)
            st.first_bad = torch.where((st.first_bad < 0) & ~finite, torch.full_like(st.first_bad, step),
                                       st.first_bad)
            st.ema.mul_(beta).add_(torch.where(finite, loss64, torch.zeros_like(loss64)), alpha=1 - beta)
            _adam_step(st, grads, step, cfg)
        if bar is not None:
            bar.update(1)
        if step % cfg.check_every == 0 or step == cfg.steps:
            for st, data in zip(states, streams):
                if st.idx:
                    check(st, data, step)
            if bar is not None:
                bar.set_postfix(active=sum(len(st.idx) for st in states))
    for st, data in zip(states, streams):
        if st.idx:  # steps == 0
            finish(st, data, [], step, {})
    if bar is not None:
        bar.close()
    return [results[i] for i in range(len(configs))]
