"""Torch twin of the Persian rug (docs/theory.md §8): batched fast operators on CPU or CUDA, and a trainable
two-scalar rug model ``y = ReLU(α W x + β)``.

The operator is built from a :class:`rugtheory.constructions.persian_rug.PersianRug` (its row/frequency set), so
the numpy and torch routes share the construction and are compared entry by entry in the tests.

- Hadamard: ``W x = H · scatter_S((H x)[S]) / m`` with a batched fast Walsh–Hadamard transform
  (Kronecker factors of at most 2^7, one large matmul per factor, as in :func:`rugtheory.constructions.hadamard.fwht`).
- Fourier: ``W x = (n/m) · irfft(1_K · rfft(x))``.

:func:`train_rug_scalars` trains only ``(α, β)`` with Adam on fresh samples, the paper's recipe for
its rug models (lr ``3e-1/sqrt(n)``, batch 512; docs/theory.md §9), for comparison with the theory scalars
of :func:`rugtheory.constructions.persian_rug.theory_scalars`, which need no training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rugtheory.constructions.persian_rug import PersianRug
from rugtheory.theory.checks import check_int, check_probability, check_seed

__all__ = ["fwht_torch", "RugOperator", "RugModel", "RugTrainingResult", "train_rug_scalars"]

_BLOCK_BITS = 7


def _small_hadamard(bits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    h = torch.ones((1, 1), dtype=dtype, device=device)
    for _ in range(bits):
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)], dim=0)
    return h


def fwht_torch(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised Walsh–Hadamard transform ``x H`` along the last axis (natural/Sylvester order).

    Batched over leading axes, differentiable, on the tensor's device and dtype. ``n`` must be a
    power of two.
    """
    n = x.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"x.shape[-1] must be a power of two, got {n}")
    k = n.bit_length() - 1
    if k == 0:
        return x.clone()
    lead = x.shape[:-1]
    nb = int(math.prod(lead))
    q = -(-k // _BLOCK_BITS)
    bits = [k // q + (1 if i < k % q else 0) for i in range(q)]
    out = x.reshape(nb, *[1 << b for b in bits])
    for _ in range(q):
        shape = out.shape
        d = shape[-1]
        h = _small_hadamard(d.bit_length() - 1, x.dtype, x.device)
        out = (out.reshape(-1, d) @ h).reshape(shape)
        if q > 1:
            out = out.movedim(-1, 1).contiguous()
    return out.reshape(*lead, n)


class RugOperator:
    """``x -> W x`` (and ``W_in x``, ``W_out h``) for a rug, on a torch device; never forms ``n × n``."""

    def __init__(
        self, rug: PersianRug, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
    ) -> None:
        self.n, self.m, self.kind = rug.n, rug.m, rug.kind
        self.device = torch.device(device)
        self.dtype = dtype
        self.rows = torch.as_tensor(rug.rows.copy(), dtype=torch.long, device=self.device)
        if self.kind == "fourier":
            mask = torch.zeros(self.n // 2 + 1, dtype=dtype, device=self.device)
            mask[self.rows[self.rows <= self.n // 2]] = 1.0
            self._mask = mask

    def _check(self, x: torch.Tensor, length: int, name: str) -> None:
        if x.ndim == 0 or x.shape[-1] != length:
            raise ValueError(f"{name} must have last axis of length {length}, got shape {tuple(x.shape)}")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``W x`` along the last axis, batched, differentiable."""
        self._check(x, self.n, "x")
        if self.kind == "hadamard":
            spec = fwht_torch(x)
            masked = torch.zeros_like(spec)
            masked[..., self.rows] = spec[..., self.rows]
            return fwht_torch(masked) / self.m
        spec = torch.fft.rfft(x, dim=-1) * self._mask
        return torch.fft.irfft(spec, n=self.n, dim=-1) * (self.n / self.m)

    def apply_in(self, x: torch.Tensor) -> torch.Tensor:
        """``W_in x`` (Hadamard kind): shape (..., n) -> (..., m)."""
        self._check(x, self.n, "x")
        if self.kind != "hadamard":
            raise ValueError("kind must be 'hadamard' for apply_in on torch; use apply for the Fourier kind")
        return fwht_torch(x)[..., self.rows]

    def apply_out(self, h: torch.Tensor) -> torch.Tensor:
        """``W_out h = W_in^T h / m`` (Hadamard kind): shape (..., m) -> (..., n)."""
        self._check(h, self.m, "h")
        if self.kind != "hadamard":
            raise ValueError("kind must be 'hadamard' for apply_out on torch; use apply for the Fourier kind")
        full = torch.zeros(h.shape[:-1] + (self.n,), dtype=h.dtype, device=h.device)
        full[..., self.rows] = h
        return fwht_torch(full) / self.m


class RugModel(torch.nn.Module):
    """``y = ReLU(α W x + β)`` with trainable scalars ``α``, ``β`` and a fixed rug ``W``."""

    def __init__(self, rug: PersianRug, alpha: float, beta: float, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.op = RugOperator(rug, device=device, dtype=dtype)
        self.alpha = torch.nn.Parameter(torch.tensor(float(alpha), dtype=dtype, device=self.op.device))
        self.beta = torch.nn.Parameter(torch.tensor(float(beta), dtype=dtype, device=self.op.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.alpha * self.op.apply(x) + self.beta)


def _sample(
    gen: torch.Generator, batch: int, n: int, p: float, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    u = torch.rand((batch, n), generator=gen, dtype=dtype, device=device)
    return torch.where(u < p, u / p, torch.zeros((), dtype=dtype, device=device))


@dataclass(frozen=True)
class RugTrainingResult:
    """Trained scalars, their start, and the held-out loss (mean ± SE over samples)."""

    alpha: float
    beta: float
    alpha_start: float
    beta_start: float
    heldout_loss: float
    heldout_se: float
    steps: int


def train_rug_scalars(
    rug: PersianRug,
    p: float,
    *,
    seed: int,
    steps: int = 1000,
    batch: int = 512,
    lr: float | None = None,
    alpha_start: float = 1.0,
    beta_start: float = 0.0,
    eval_samples: int = 4096,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> RugTrainingResult:
    """Train ``(α, β)`` of the rug model with Adam on fresh samples (paper recipe, docs/theory.md §9).

    ``lr`` defaults to ``3e-1/sqrt(n)``. The held-out loss uses ``eval_samples`` fresh samples from
    a separate stream; its SE is over samples (each sample's feature mean is one draw).
    """
    p = float(check_probability(p))
    seed = check_seed(seed)
    steps = check_int(steps, "steps", low=0)
    batch = check_int(batch, "batch", low=1)
    eval_samples = check_int(eval_samples, "eval_samples", low=2)
    lr = 3e-1 / math.sqrt(rug.n) if lr is None else float(lr)
    model = RugModel(rug, alpha_start, beta_start, device=device, dtype=dtype)
    dev = model.op.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x = _sample(gen, batch, rug.n, p, dtype, dev)
        loss = torch.mean((model(x) - x) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    eval_gen = torch.Generator(device=dev).manual_seed(seed + 0x5EED)
    per_sample = []
    with torch.no_grad():
        chunk = max(1, (1 << 21) // rug.n)
        done = 0
        while done < eval_samples:
            b = min(chunk, eval_samples - done)
            x = _sample(eval_gen, b, rug.n, p, dtype, dev)
            per_sample.append(torch.mean((model(x) - x) ** 2, dim=1))
            done += b
    losses = torch.cat(per_sample).double().cpu()
    return RugTrainingResult(
        alpha=float(model.alpha.detach()),
        beta=float(model.beta.detach()),
        alpha_start=float(alpha_start),
        beta_start=float(beta_start),
        heldout_loss=float(losses.mean()),
        heldout_se=float(losses.std() / math.sqrt(losses.numel())),
        steps=steps,
    )
