"""One training step and the loss on fresh samples, for a batch of instances (docs/theory.md §1).

The model ``y = ReLU(x W_in^T W_out^T + b)`` of every instance runs as one batched tensor program
along axis 0. :func:`loss_and_grads` is the dense step, :func:`sparse_loss_and_grads` the same
loss and gradients from the ~p·B·n active entries of x (``embedding_bag``), and :func:`batch_loss`
measures the per-sample loss ± SE on fresh samples of a given stream (held-out and confirmation
losses). tests/test_validation_train.py checks every route against autograd and against each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rugtheory.theory.checks import check_probability, check_seed
from rugtheory.validation.streams import SPARSE_P, DataStream, SparseBatch

__all__ = [
    "check_device",
    "EVAL_ROWS",
    "batch_loss",
    "default_device",
    "heldout_loss",
    "loss_and_grads",
    "sparse_default",
    "sparse_forward",
    "sparse_loss_and_grads",
    "stacked_rows",
    "stored_transposed",
]

#: Rows per evaluation chunk. Fixed, so that a config's held-out and confirmation samples are the
#: same whatever else is in the batch (the sparse sampler's draws depend on the chunk shape).
EVAL_ROWS = 1024


def default_device() -> str:
    """``"cuda"`` when available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def batch_loss(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, p: torch.Tensor, seeds: Sequence[int],
    stream: str, samples: int, chunk: int, sparse: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of the per-sample loss over ``samples`` fresh samples, per instance.

    ``sparse`` (default: on the CPU when every p <= SPARSE_P) computes ``x W_in^T`` from the active
    entries of x only; the samples are the same either way.
    """
    n = w_in.shape[-1]
    data = DataStream(seeds, p.view(-1).tolist(), stream, w_in.device, w_in.dtype)
    if sparse is None:
        sparse = sparse_default(w_in.device, data.ps)  # as in training
    w_in_t = stacked_rows(w_in) if sparse else None
    total = torch.zeros(len(seeds), dtype=torch.float64, device=w_in.device)
    total_sq = torch.zeros_like(total)
    done = 0
    while done < samples:
        rows = min(chunk, samples - done)
        if sparse:
            x = data.draw_sparse(rows, n, transpose=False)
            _, diff = sparse_forward(w_in_t, w_out, b, x)  # y
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
    mean, se = batch_loss(w_in, w_out, bb, pp, [check_seed(seed)], "eval", samples, EVAL_ROWS)
    return float(mean[0]), float(se[0])


def loss_and_grads(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-instance minibatch loss (I,) and the gradients of their sum, by hand.

    h = x W_in^T, z = h W_out^T + b, y = ReLU(z), L = mean (y - x)^2 over batch and features;
    dL/dz = 2 (y - x) 1[z > 0] / (B n), dW_out = dz^T h, db = Σ_batch dz, dW_in = (dz W_out)^T x.
    The factor 2/(B n) is applied inside the GEMMs (``alpha``), never in a pass of its own. Each
    gradient has the memory layout of its parameter (:func:`stored_transposed`), as the fused Adam
    kernel needs. tests/test_validation_train.py checks these against autograd, in both layouts.
    """
    inst, batch, n = x.shape
    scale = 2.0 / (batch * n)
    h = torch.bmm(x, w_in.transpose(1, 2))
    z = torch.baddbmm(b.unsqueeze(1), h, w_out.transpose(1, 2))
    diff = torch.relu(z).sub_(x)
    flat = diff.view(inst, 1, batch * n)
    loss = torch.bmm(flat, flat.transpose(1, 2)).view(inst) / (batch * n)  # one fused pass (BLAS dot)
    # dz = diff · 1[z > 0] (one fused pass: ReLU's backward kernel).
    dz = torch.ops.aten.threshold_backward(diff, z, 0)
    zero = dz.new_zeros(())  # baddbmm's ignored input: with beta=0 the product is scaled inside the GEMM
    g_out = torch.baddbmm(zero, dz.transpose(1, 2), h, beta=0, alpha=scale)
    g_b = dz.sum(dim=1).mul_(scale)
    dh = torch.baddbmm(zero, dz, w_out, beta=0, alpha=scale)  # dL/dh = scale · dz W_out, (I, B, M)
    if stored_transposed(w_in):  # dW_in^T = x^T dh, written where W_in^T lives
        g_in = torch.bmm(x.transpose(1, 2), dh).transpose(1, 2)
    else:
        g_in = torch.bmm(dh.transpose(1, 2), x)
    return loss, [g_in, g_out, g_b]


def stacked_rows(w_in: torch.Tensor) -> torch.Tensor:
    """The W_in^T of every instance stacked as one row-major (I n, M) matrix (embedding_bag's fast path).

    A view when W_in is stored transposed (:func:`stored_transposed`); otherwise a transposing copy,
    one pass over the n·M weights per call (at n = 8192 a fifth of the step before the trainer
    stored W_in transposed: ``python -m benchmarks trainer_roofline``).
    """
    inst, big_m, n = w_in.shape
    return w_in.transpose(1, 2).contiguous().view(inst * n, big_m)


def stored_transposed(w_in: torch.Tensor) -> bool:
    """Whether the (I, M, n) ``w_in`` is a view of a row-major (I, n, M) array of the W_in^T.

    The CPU trainer stores W_in so (``InstanceBatch(w_in_storage="transposed")``): the sparse
    step's ``embedding_bag`` reads the rows of W_in^T and writes the rows of dL/dW_in^T, so neither
    needs a transposing copy. The step functions return dL/dW_in in the layout of ``w_in``.
    """
    return w_in.transpose(1, 2).is_contiguous()


def sparse_forward(w_in_t: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor,
                    x: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``h = x W_in^T`` from the active entries of x (one ``embedding_bag`` over
    ``w_in_t = stacked_rows(W_in)``) and ``y = ReLU(h W_out^T + b)``, in place; returns ``(h, y)``."""
    inst, batch, _ = x.shape
    h = torch.nn.functional.embedding_bag(x.rows_index, w_in_t, x.rows_offsets, mode="sum",
                                          per_sample_weights=x.values).view(inst, batch, -1)
    return h, torch.baddbmm(b.unsqueeze(1), h, w_out.transpose(1, 2)).clamp_min_(0)


def sparse_default(device: torch.device, ps: Sequence[float]) -> bool:
    """The sparse step pays off on the CPU, where the products with x are a third of the work; on
    CUDA the dense batched products are cheaper. It needs every p <= SPARSE_P."""
    return device.type == "cpu" and all(p <= SPARSE_P for p in ps)


def sparse_loss_and_grads(
    w_in: torch.Tensor, w_out: torch.Tensor, b: torch.Tensor, x: SparseBatch
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`loss_and_grads` for a sparse batch: the same loss and gradients, fewer operations.

    Both products with x use its p·B·n active entries only (``embedding_bag``): ``h = x W_in^T``
    over the (instance, sample) bags of the rows of W_in^T and ``dW_in^T = x^T dh`` over the
    (instance, feature) bags of the rows of dh. ReLU runs in place on z (``y > 0`` iff ``z > 0``),
    and ``dz = y − x`` where ``y > 0``, else 0, is written at the active entries only:

        loss = Σ (y − x)^2 = Σ dz^2 + Σ_{x_j > 0, y_j = 0} x_j^2.

    With W_in stored transposed (:func:`stored_transposed`) neither product with x copies a weight
    matrix: ``h`` gathers rows of the stored W_in^T and dL/dW_in is returned as a view of the
    row-major dL/dW_in^T that ``embedding_bag`` writes. The factor 2/(B n) is applied inside the
    GEMMs (``alpha``), never in a pass over a weight-sized tensor.

    tests/test_validation_train.py checks it against the dense route and autograd.
    """
    inst, big_m, n = w_in.shape
    batch = x.shape[1]
    scale = 2.0 / (batch * n)
    h, dz = sparse_forward(stacked_rows(w_in), w_out, b, x)  # dz holds y = ReLU(z) until the active entries are fixed
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
    zero = dz.new_zeros(())  # baddbmm's ignored input: with beta=0 the product is scaled inside the GEMM
    g_out = torch.baddbmm(zero, dz.transpose(1, 2), h, beta=0, alpha=scale)
    g_b = dz.sum(dim=1).mul_(scale)
    dh = torch.baddbmm(zero, dz, w_out, beta=0, alpha=scale).view(inst * batch, big_m)  # scale · dL/dh
    g_in_t = torch.nn.functional.embedding_bag(x.cols_index, dh, x.cols_offsets, mode="sum",
                                               per_sample_weights=x.cols_values).view(inst, n, big_m)
    g_in = g_in_t.transpose(1, 2)
    if not stored_transposed(w_in):
        g_in = g_in.contiguous()  # a transposing copy: the layout of a plainly stored W_in
    return loss, [g_in, g_out, g_b]


def check_device(device: str | None, *, availability: bool = True) -> None:
    """``device`` is a torch device (``cpu``, ``cuda``, ``cuda:N``, ``mps``) that this machine has.

    With ``availability=False`` only the spelling is checked (ray workers may have GPUs the driver
    lacks). Errors name ``--device``, the flag of both command lines that take it.
    """
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device must be a torch device such as cpu, cuda or cuda:1, got {device!r}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or mps, got {device!r}")
    if not availability:
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r}: CUDA is not available here (torch {torch.__version__}); "
                             f"use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"--device {device!r}: only {count} CUDA device(s) here (cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device!r}: MPS is not available here; use --device cpu")
