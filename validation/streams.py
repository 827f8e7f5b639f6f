"""Every random number a training config draws (docs/theory.md §1, §9): its streams, the initial
weights and the data.

Each config draws from its own generators, seeded from ``(seed, stream)`` only (never from its
place in a batch), so that a model trained alone or inside any batch sees the same
initialisation, training samples, confirmation set and held-out set (on one device type). Data is
exactly x = Bernoulli(p)·U[0, 1): for ``p <= SPARSE_P`` the active entries are placed by geometric
gaps and get fresh uniforms (about p·B·n random numbers, :func:`sparse_draw`); otherwise one
uniform ``u`` per entry gives ``x = 1[u < p] · u/p`` (:func:`sample_data`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "STREAMS",
    "SPARSE_P",
    "DataStream",
    "SparseBatch",
    "init_weights",
    "make_generator",
    "sample_data",
    "sparse_draw",
    "sparse_fill",
    "stream_seed",
]

#: Names of the random streams a config draws from (index into the stream seed).
STREAMS = {"init": 0, "train": 1, "confirm": 2, "eval": 3}


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit torch seed for one random stream of a config, from ``(seed, stream)`` only."""
    state = np.random.SeedSequence([int(seed), STREAMS[stream]]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def make_generator(seed: int, stream: str, device: torch.device | str) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


def init_weights(n: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's default ``nn.Linear`` init of the untied model, on the CPU in float32.

    Draws, in ``nn.Linear`` order, ``W_in`` (m×n, kaiming-uniform with a = sqrt(5), i.e.
    U(-1/sqrt(n), 1/sqrt(n))), ``W_out`` (n×m, U(-1/sqrt(m), 1/sqrt(m))) and ``b`` (n,
    U(-1/sqrt(m), 1/sqrt(m))) from the generator of stream ``"init"``.
    """
    g = make_generator(seed, "init", "cpu")
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


def sparse_draw(total: int, p: float, g: torch.Generator, device: torch.device,
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


def sparse_fill(out: torch.Tensor, p: float, g: torch.Generator) -> None:
    """Fill ``out`` with x = Bernoulli(p)·U[0,1) from :func:`sparse_draw` (same random numbers)."""
    flat = out.view(-1)
    flat.zero_()
    pos, vals = sparse_draw(flat.numel(), p, g, out.device, out.dtype)
    flat[pos] = vals


class SparseBatch:
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


class DataStream:
    """One generator per instance for one stream; :meth:`draw` returns x of shape (I, rows, n).

    Each instance consumes its own generator only, so its samples do not depend on the batch.
    """

    def __init__(self, seeds: Sequence[int], ps: Sequence[float], stream: str, device: torch.device,
                 dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.ps = [float(p) for p in ps]
        self.gens = [make_generator(s, stream, device) for s in seeds]

    def keep(self, positions: Sequence[int]) -> None:
        self.ps = [self.ps[k] for k in positions]
        self.gens = [self.gens[k] for k in positions]

    def draw(self, rows: int, n: int) -> torch.Tensor:
        x = torch.empty(len(self.gens), rows, n, device=self.device, dtype=self.dtype)
        for k, (p, g) in enumerate(zip(self.ps, self.gens)):
            if p <= SPARSE_P:
                sparse_fill(x[k], p, g)
            else:
                torch.rand(rows, n, generator=g, device=self.device, dtype=self.dtype, out=x[k])
                x[k] = sample_data(x[k], p)
        return x

    def draw_sparse(self, rows: int, n: int, *, transpose: bool = True) -> SparseBatch:
        """The same samples as :meth:`draw` (same random numbers), held by their active entries.

        ``transpose=False`` skips the (instance, feature) order, which only the backward pass needs.
        """
        if any(p > SPARSE_P for p in self.ps):
            raise ValueError(f"draw_sparse needs every p <= SPARSE_P={SPARSE_P}, got {max(self.ps)}")
        parts = [sparse_draw(rows * n, p, g, self.device, self.dtype) for p, g in zip(self.ps, self.gens)]
        return SparseBatch(parts, rows, n, self.device, transpose=transpose)
