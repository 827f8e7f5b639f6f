"""The trainer's step against the machine's limit (issue 15, items 3 and 4):
``python -m benchmarks trainer_roofline``.

1. Peaks of this machine, measured here: the float32 matmul rate (``torch.mm`` at the three GEMM
   shapes of the step at every n, and one 2048^3 product; best of several) and the memory
   bandwidth (a 256 MB ``copy_`` and a 256 MB ``add``, far above the L3 cache; best of several),
   counted as STREAM does (2 and 3 times 256 MB). Ordinary stores also read each written line
   first (write-allocate), so these kernels really move 3 and 4 times 256 MB; a kernel that writes
   only lines it has just read (the in-place Adam update) can therefore show more than 100%.
2. The training step of the CPU harness at n = 512, 2048, 8192 (m = n/4, p = 0.045, batch 1024: the
   sparse route, one model), timed as the median of interleaved repetitions after warm-up, in
   three variants run side by side in this process (never against a stored constant):

   * ``before``: the step as it was before issue 15 (``_sparse_loss_and_grads_before``, a verbatim
     copy of the former ``sparse_loss_and_grads``; W_in stored plainly, so every step copied W_in
     into W_in^T for ``embedding_bag`` and dL/dW_in^T back, and scaled two weight-sized gradients
     in passes of their own);
   * ``plain``: today's step function with W_in stored plainly (the two transposing copies stay;
     the scale 2/(B n) is folded into the GEMMs);
   * ``new``: today's harness default (``InstanceBatch(w_in_storage="transposed")``): no weight
     matrix is copied.

   All three start from the same initialisation and draw the same samples, so after the same steps
   their weights must agree to float32 rounding; the largest difference is printed.
3. The count of each step (:func:`step_passes`): flops and bytes of every pass. Flops: each GEMM
   2·(product of its sizes); each gather (``embedding_bag``) 2·nnz·M; elementwise passes one flop per
   element; Adam 12 flops per parameter. Bytes (the stated model, compulsory traffic): every pass
   reads each of its input tensors once and writes each output once (float32: 4 bytes, int64
   indices: 8 bytes); a gather reads its table once (at p·B = 46 active samples per feature every
   row is touched) plus its indices and weights; the fused Adam kernel reads parameter, gradient
   and both moments and writes back three (28 bytes per parameter); the sampler and its index
   bookkeeping are about 24 passes over nnz 8-byte entries (an estimate). nnz = p·B·n is the
   expected number of active entries. A gather really reads nnz rows of M floats (p·B = 46 times
   its table); those come from the caches while the table fits (W_in^T up to n = 4096 in the
   32 MB L3 here, dh always), so the compulsory count is the lower bound the limit needs; the
   gathered bytes are written to the JSON too (``gathered_bytes``).
4. The limit: the roofline bound ``max(F/peak, bytes/bandwidth)`` of the whole step, and the
   per-pass bound ``Σ_pass max(f/peak, b/bandwidth)`` (separate kernels do not overlap, so this is
   the limit of any schedule of these passes); "fraction of the limit" is that bound over the
   measured time. Achieved GFLOP/s and GB/s are printed as fractions of the measured peaks.
5. The memory-bound Adam update alone, at every n: ``torch._fused_adam_`` (the harness),
   ``torch.optim.Adam(foreach=True)`` and the single-tensor loop (``foreach=False``), in GB/s;
   and the harness's ``adam_step`` on two models with two lrs: one fused call per lr (today)
   against the written-out formula it ran before issue 15 (``fused=False``);
   with ``RUGTHEORY_BENCH_COMPILE=1`` also the Adam formula under ``torch.compile`` (its compile
   time is printed: it is not used by the harness, see the printed verdict).

Results: ``benchmarks/results/trainer_roofline_t<threads>.json`` (``..._n<n1>-<n2>.json`` for other
n; small, committed; with the load averages before and after and ``RUGTHEORY_BENCH_NOTE``, e.g.
whether other jobs were paused).
Environment: ``RUGTHEORY_BENCH_THREADS=k`` sets torch's threads (default: torch's own);
``RUGTHEORY_BENCH_NS=512,8192`` chooses the n (default 512, 2048, 8192; any multiple of 4 >= 4);
``RUGTHEORY_BENCH_QUICK=1`` is a smoke run (n = 512 and 1024, few repetitions, nothing written).
On a shared, loaded machine use one thread: OpenMP threads that wait for each other behind other
processes make two-thread timings meaningless (on the 2-core machine of issue 15 a single other
busy process slowed small two-thread GEMMs tenfold).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import load_line

__all__ = ["NS", "P", "BATCH", "VARIANTS", "main", "step_passes"]

#: Feature counts of the issue; m = n/4, p = 0.045 (the paper's point), batch 1024 (the recipe's).
NS = (512, 2048, 8192)
P = 0.045
BATCH = 1024
#: The step variants timed side by side (module docstring).
VARIANTS = ("before", "plain", "new")
#: Timed repetitions per variant (after two warm-up steps each), per n.
REPS = {512: 41, 1024: 21, 2048: 15, 8192: 7}
F32, I64 = 4, 8
#: Fused Adam per parameter: reads p, g, m, v and writes p, m, v (7 float32); about 12 flops.
ADAM_BYTES, ADAM_FLOPS = 7 * F32, 12
#: Sampler + SparseBatch bookkeeping, bytes per active entry: ~24 passes over 8-byte arrays (estimate).
SAMPLER_BYTES_PER_NNZ = 24 * 8


def step_passes(n: int, m: int, batch: int, p: float, variant: str = "new") -> list[tuple[str, float, float]]:
    """``(pass, flops, bytes)`` of one sparse training step of one model (module docstring, item 3).

    Parameters
    ----------
    n, m, batch : int
        Features, hidden units and samples per step.
    p : float
        Feature probability; ``nnz = p·batch·n`` active entries are expected.
    variant : {"before", "plain", "new"}
        ``"before"`` adds the two transposing copies and the two scaling passes over weight-sized
        gradients; ``"plain"`` the two copies only; ``"new"`` neither.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}")
    for name, value in (("n", n), ("m", m), ("batch", batch)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    b, nm, bn, bm = batch, n * m, batch * n, batch * m
    nnz = p * batch * n
    params = 2 * nm + n
    out = [("sampler + index bookkeeping", 0.0, SAMPLER_BYTES_PER_NNZ * nnz)]
    if variant != "new":
        out.append(("copy W_in -> W_in^T (stacked_rows)", 0.0, 2 * F32 * nm))
    out += [
        ("h = x W_in^T (gather)", 2 * nnz * m, F32 * nm + (I64 + F32) * nnz + I64 * b + F32 * bm),
        ("z = h W_out^T + b (GEMM)", 2 * b * m * n + bn, F32 * (bm + nm + n + 2 * bn)),
        ("ReLU in place", bn, 2 * F32 * bn),
        ("dz at active entries", 4 * nnz, (2 * I64 + 6 * F32) * nnz),
        ("loss = dz . dz", 2 * bn, F32 * bn),
        ("dW_out = dz^T h (GEMM)", 2 * b * n * m, F32 * (bn + bm + nm)),
        ("db = sum dz", bn, F32 * (bn + n)),
        ("dh = dz W_out (GEMM)", 2 * b * n * m, F32 * (bn + nm + bm)),
        ("dW_in^T = x^T dh (gather)", 2 * nnz * m, F32 * bm + (I64 + F32) * nnz + I64 * n + F32 * nm),
    ]
    if variant != "new":
        out.append(("copy dW_in^T -> dW_in", 0.0, 2 * F32 * nm))
    if variant == "before":
        out += [("scale dW_out", nm, 2 * F32 * nm), ("scale dW_in", nm, 2 * F32 * nm)]
    out.append(("Adam (fused)", ADAM_FLOPS * params, ADAM_BYTES * params))
    return out


def _sparse_loss_and_grads_before(w_in, w_out, b, x):  # noqa: ANN001, ANN202
    """Verbatim copy of ``rugtheory.validation.steps.sparse_loss_and_grads`` before issue 15 (commit
    dcde1c8): the slow twin that the ``before`` variant times."""
    import torch

    from rugtheory.validation.steps import sparse_forward, stacked_rows

    inst, big_m, n = w_in.shape
    batch = x.shape[1]
    scale = 2.0 / (batch * n)
    h, dz = sparse_forward(stacked_rows(w_in), w_out, b, x)
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


class _Trainer:
    """One model at (n, m = n/4, p = P) trained by the harness's step (``_Run.step``) in one variant."""

    def __init__(self, n: int, variant: str) -> None:
        import torch

        from rugtheory.validation.steps import sparse_loss_and_grads
        from rugtheory.validation.streams import DataStream
        from rugtheory.validation.train import InstanceBatch, TrainConfig

        self.cfg = TrainConfig(n=n, m=n // 4, p=P, batch=BATCH)
        storage = "transposed" if variant == "new" else "plain"
        self.state = InstanceBatch([self.cfg], [0], torch.device("cpu"), torch.float32, w_in_storage=storage)
        self.data = DataStream([self.cfg.seed], [P], "train", torch.device("cpu"), torch.float32)
        self.fn = _sparse_loss_and_grads_before if variant == "before" else sparse_loss_and_grads
        self.steps = 0

    def step(self) -> None:
        import torch

        from rugtheory.validation.train import adam_step

        self.steps += 1
        st, cfg = self.state, self.cfg
        loss, grads = self.fn(st.w_in, st.w_out, st.b, self.data.draw_sparse(cfg.batch, cfg.n))
        loss64 = loss.detach().to(torch.float64)  # the bookkeeping of _Run.step
        finite = torch.isfinite(loss64)
        st.first_bad = torch.where((st.first_bad < 0) & ~finite, torch.full_like(st.first_bad, self.steps),
                                   st.first_bad)
        st.ema.mul_(cfg.ema_beta).add_(torch.where(finite, loss64, torch.zeros_like(loss64)), alpha=1 - cfg.ema_beta)
        adam_step(st, grads, self.steps, cfg)


def _best_seconds(fn: Callable[[], Any], reps: int) -> float:
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _matmul_rates(ns: tuple[int, ...]) -> dict[str, float]:
    """GFLOP/s of float32 ``torch.mm`` at the step's three GEMM shapes at each n, and at 2048^3."""
    import torch

    rates: dict[str, float] = {}
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    rates["2048x2048x2048"] = 2 * 2048**3 / _best_seconds(lambda: torch.mm(a, b), 5) / 1e9
    for n in ns:
        m = n // 4
        h, w_out, dz = torch.randn(BATCH, m), torch.randn(n, m), torch.randn(BATCH, n)
        reps = 9 if n <= 2048 else 3
        flops = 2 * BATCH * n * m
        for name, left, right in (("z = h W_out^T", h, w_out.t()), ("dW_out = dz^T h", dz.t(), h),
                                  ("dh = dz W_out", dz, w_out)):
            sec = _best_seconds(lambda left=left, right=right: torch.mm(left, right), reps)
            rates[f"n={n} {name}"] = flops / sec / 1e9
    return rates


def _bandwidth() -> dict[str, float]:
    """GB/s of a 256 MB float32 copy (2 x 256 MB moved) and add (3 x 256 MB), best of 5."""
    import torch

    count = 64 * 2**20
    x, y, z = torch.rand(count), torch.rand(count), torch.empty(count)
    size = F32 * count
    return {"copy 256 MB": 2 * size / _best_seconds(lambda: z.copy_(x), 5) / 1e9,
            "add 256 MB": 3 * size / _best_seconds(lambda: torch.add(x, y, out=z), 5) / 1e9}


def _time_variants(n: int, reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, float]]:
    """Wall and CPU seconds per step of every variant, interleaved (the order rotates each round),
    after two warm-up steps each; and the largest weight difference of each variant from ``new``
    at the end (all saw the same initialisation and samples)."""
    import torch

    trainers = {v: _Trainer(n, v) for v in VARIANTS}
    for t in trainers.values():
        t.step()
        t.step()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(reps):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]
        for v in order:
            t0, c0 = time.perf_counter(), time.process_time()
            trainers[v].step()
            times[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    new = trainers["new"].state
    diff = {}
    for v in VARIANTS:
        st = trainers[v].state
        diff[v] = max(float((a - c).abs().max()) for a, c in zip(st.params, new.params))
        if not all(torch.isfinite(t).all() for t in st.params):
            diff[v] = math.inf
    return times, cpu, diff


#: torch.profiler op names -> category of the step.
_CATEGORIES = {"aten::baddbmm": "GEMM", "aten::bmm": "GEMM", "aten::mm": "GEMM", "aten::addmm": "GEMM",
               "aten::_embedding_bag_forward_only": "gather", "aten::_embedding_bag": "gather",
               "aten::_fused_adam_": "Adam"}


def _profile(n: int, steps: int) -> dict[str, float]:
    """Seconds per step of the ``new`` step by category (GEMM, gather, Adam, everything else) from
    torch.profiler's self times of the ops (on the calling thread, so wall time of each op)."""
    from torch.profiler import ProfilerActivity, profile

    trainer = _Trainer(n, "new")
    trainer.step()
    trainer.step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.step()
    wall = (time.perf_counter() - t0) / steps
    out = {"GEMM": 0.0, "gather": 0.0, "Adam": 0.0, "other ops": 0.0}
    for ev in prof.key_averages():
        out[_CATEGORIES.get(ev.key, "other ops")] += ev.self_cpu_time_total / 1e6 / steps
    out["outside ops (Python, profiler)"] = max(0.0, wall - sum(out.values()))
    return out


def _adam_options(n: int, reps: int, compile_too: bool) -> dict[str, dict[str, float]]:
    """Seconds and GB/s (28 bytes per parameter) of one Adam update of W_in, W_out, b at (n, n/4)."""
    import torch

    m = n // 4
    out: dict[str, dict[str, float]] = {}
    count = 2 * n * m + n
    for name, kw in (("fused (harness)", {"fused": True}), ("foreach", {"foreach": True}),
                     ("single-tensor", {"foreach": False})):
        params = [torch.zeros(n, m, requires_grad=True), torch.zeros(n, m, requires_grad=True),
                  torch.zeros(n, requires_grad=True)]
        for q in params:
            q.grad = torch.randn_like(q)
        opt = torch.optim.Adam(params, lr=1e-4, eps=1e-7, **kw)
        sec = _best_seconds(opt.step, reps)
        out[name] = {"seconds": sec, "GB/s": ADAM_BYTES * count / sec / 1e9}
    # The harness's adam_step on a batch of two models with two lrs (W_in stored transposed):
    # one fused call per lr (the default) against the written-out formula (fused=False).
    from rugtheory.validation.train import InstanceBatch, TrainConfig, adam_step

    configs = [TrainConfig(n=n, m=m, p=P, seed=k, lr=lr) for k, lr in enumerate((1e-4, 2e-4))]
    for name, flag in (("harness, 2 models, 2 lrs: fused per lr", True),
                       ("harness, 2 models, 2 lrs: formula (before)", False)):
        st = InstanceBatch(configs, [0, 1], torch.device("cpu"), torch.float32, w_in_storage="transposed")
        grads = [torch.randn_like(t) for t in st.params]
        sec = _best_seconds(lambda st=st, grads=grads, flag=flag: adam_step(st, grads, 1, configs[0], fused=flag),
                            reps)
        out[name] = {"seconds": sec, "GB/s": ADAM_BYTES * 2 * count / sec / 1e9}
    if compile_too:
        tensors = [torch.zeros(count) for _ in range(4)]
        tensors[1].normal_()

        def formula(param, grad, m1, m2, lr, bias1, bias2_sqrt):  # noqa: ANN001, ANN202
            m1.lerp_(grad, 0.1)
            m2.mul_(0.999).addcmul_(grad, grad, value=0.001)
            param.sub_((lr / bias1) * m1 / ((m2.sqrt() / bias2_sqrt).add_(1e-7)))

        lr, bias1, bias2 = (torch.tensor(v) for v in (1e-4, 0.1, 0.03))  # tensors: no recompiles
        compiled = torch.compile(formula)
        t0 = time.perf_counter()
        compiled(*tensors, lr, bias1, bias2)
        compile_s = time.perf_counter() - t0
        for name, fn in (("formula, eager", formula), ("formula, torch.compile", compiled)):
            sec = _best_seconds(lambda fn=fn: fn(*tensors, lr, bias1, bias2), reps)
            out[name] = {"seconds": sec, "GB/s": ADAM_BYTES * count / sec / 1e9}
        out["formula, torch.compile"]["compile_seconds"] = compile_s
    return out


def _ns(text: str | None) -> tuple[int, ...]:
    """The n of ``RUGTHEORY_BENCH_NS`` (comma-separated multiples of 4), default :data:`NS`."""
    if not text:
        return NS
    try:
        ns = tuple(int(v) for v in text.split(","))
    except ValueError:
        ns = ()
    if not ns or any(n < 4 or n % 4 for n in ns):
        raise ValueError(f"RUGTHEORY_BENCH_NS must be comma-separated multiples of 4 (>= 4), got {text!r}")
    return ns


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    import torch

    quick = os.environ.get("RUGTHEORY_BENCH_QUICK") == "1"
    compile_too = os.environ.get("RUGTHEORY_BENCH_COMPILE") == "1"
    if os.environ.get("RUGTHEORY_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["RUGTHEORY_BENCH_THREADS"]))
    threads = torch.get_num_threads()
    ns = (512, 1024) if quick else _ns(os.environ.get("RUGTHEORY_BENCH_NS"))
    load_before = load_line()
    print(f"torch {torch.__version__}, {threads} thread(s); {load_before}"
          + (" [QUICK smoke run: nothing written]" if quick else ""))

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]):  # the profiler's one-time start-up, not timed below
        pass
    mm = _matmul_rates(ns)
    bw = _bandwidth()
    peak, bandwidth = max(mm.values()), max(bw.values())
    print("\n| peak | measured |\n|---|---|")
    for k, v in mm.items():
        print(f"| matmul {k} | {v:.1f} GFLOP/s |")
    for k, v in bw.items():
        print(f"| bandwidth {k} | {v:.1f} GB/s |")
    print(f"peak used below: {peak:.1f} GFLOP/s (best of the matmuls), {bandwidth:.1f} GB/s (best of the two)")

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    print("\n| n | m | step ms before | plain | new | speed-up new/before | GFLOP/step | MB/step | GFLOP/s "
          "(of peak) | GB/s (of bw) | roofline max ms | per-pass bound ms | fraction of limit | "
          "max weight diff before/plain vs new |\n|" + "---|" * 14)
    for n in ns:
        m = n // 4
        reps = 5 if quick else REPS.get(n, 7)
        times, cpu, diff = _time_variants(n, reps)
        med = {v: _median(times[v]) for v in VARIANTS}
        breakdown = _profile(n, 3 if (quick or n >= 8192) else 10)
        passes = {v: step_passes(n, m, BATCH, P, v) for v in VARIANTS}
        new_passes = passes["new"]
        flops = sum(f for _, f, _ in new_passes)
        nbytes = sum(b for _, _, b in new_passes)
        roof = max(flops / (peak * 1e9), nbytes / (bandwidth * 1e9))
        per_pass = {v: sum(max(f / (peak * 1e9), b / (bandwidth * 1e9)) for _, f, b in passes[v]) for v in VARIANTS}
        t_new = med["new"]
        row = {
            "n": n, "m": m, "p": P, "batch": BATCH, "reps": reps,
            "median_seconds": med,
            "quartiles_seconds": {v: statistics.quantiles(times[v], n=4) for v in VARIANTS},
            "median_cpu_seconds": {v: _median(cpu[v]) for v in VARIANTS},
            "profile_new_seconds": breakdown,
            "speedup_new_over_before": med["before"] / t_new,
            "speedup_new_over_plain": med["plain"] / t_new,
            "flops_per_step": flops, "bytes_per_step": nbytes,
            "passes_new": [{"pass": k, "flops": f, "bytes": b} for k, f, b in new_passes],
            "bytes_per_step_by_variant": {v: sum(b for _, _, b in passes[v]) for v in VARIANTS},
            "gathered_bytes": 2 * F32 * P * BATCH * n * m,
            "achieved_gflops": flops / t_new / 1e9, "fraction_of_matmul_peak": flops / t_new / 1e9 / peak,
            "achieved_gbytes_per_s": nbytes / t_new / 1e9, "fraction_of_bandwidth": nbytes / t_new / 1e9 / bandwidth,
            "roofline_seconds": roof, "per_pass_bound_seconds": per_pass,
            "fraction_of_limit": per_pass["new"] / t_new,
            "fraction_of_limit_before": per_pass["before"] / med["before"],
            "max_weight_diff_vs_new": {v: diff[v] for v in ("before", "plain")},
        }
        rows.append(row)
        print(f"| {n} | {m} | {1e3 * med['before']:.2f} | {1e3 * med['plain']:.2f} | {1e3 * t_new:.2f} | "
              f"{row['speedup_new_over_before']:.2f}x | {flops / 1e9:.3g} | {nbytes / 1e6:.4g} | "
              f"{row['achieved_gflops']:.1f} ({row['fraction_of_matmul_peak']:.0%}) | "
              f"{row['achieved_gbytes_per_s']:.1f} ({row['fraction_of_bandwidth']:.0%}) | {1e3 * roof:.2f} | "
              f"{1e3 * per_pass['new']:.2f} | {row['fraction_of_limit']:.0%} | "
              f"{diff['before']:.1e} / {diff['plain']:.1e} |", flush=True)
        notes.append(f"n = {n}: CPU s per step (median) before {1e3 * row['median_cpu_seconds']['before']:.2f} ms, "
                     f"new {1e3 * row['median_cpu_seconds']['new']:.2f} ms; new step by category (profiler, ms): "
                     + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in breakdown.items()))

    print("\n" + "\n".join(notes))
    print("\nAdam update alone (W_in, W_out, b at m = n/4; 28 bytes per parameter):")
    print("| n | option | ms | GB/s (of bw) |\n|---|---|---|---|")
    adam = {}
    for n in ns:
        adam[n] = _adam_options(n, 3 if quick else (9 if n <= 2048 else 5), compile_too)
        for name, r in adam[n].items():
            extra = f"; compile {r['compile_seconds']:.1f} s" if "compile_seconds" in r else ""
            print(f"| {n} | {name} | {1e3 * r['seconds']:.3f} | {r['GB/s']:.1f} ({r['GB/s'] / bandwidth:.0%}){extra} |")
    load_after = load_line()
    print(f"\n{load_after}")
    if quick:
        return
    suffix = "" if ns == NS else "_n" + "-".join(map(str, ns))
    out = Path(__file__).resolve().parent / "results" / f"trainer_roofline_t{threads}{suffix}.json"
    command = "python -m benchmarks trainer_roofline"
    if ns != NS:
        command = f"RUGTHEORY_BENCH_NS={','.join(map(str, ns))} {command}"
    if os.environ.get("RUGTHEORY_BENCH_THREADS"):
        command = f"RUGTHEORY_BENCH_THREADS={threads} {command}"
    if compile_too:
        command = f"RUGTHEORY_BENCH_COMPILE=1 {command}"
    out.write_text(json.dumps({
        "generated_by": command, "torch": torch.__version__, "threads": threads, "cpus": os.cpu_count(),
        "load_before": load_before, "load_after": load_after, "note": os.environ.get("RUGTHEORY_BENCH_NOTE", ""),
        "matmul_gflops": mm, "bandwidth_gbytes_per_s": bw, "peak_gflops": peak, "peak_gbytes_per_s": bandwidth,
        "steps": rows, "adam": {str(n): v for n, v in adam.items()},
    }, indent=1) + "\n")
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
