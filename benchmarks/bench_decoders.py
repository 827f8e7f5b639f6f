"""Decoder benchmarks (issue 4: optimality bounds and high-sparsity asymptotics).

1. The full decoder table (zero, linear, ReLU, JumpReLU gain and gain+shift = TopK at large n,
   MMSE) on the paper's 20×20 grid (r, p each ``linspace(0.002001, 0.8, 20)``): wall time, best
   and median of repeats, per decoder and in all. Target: under 5 s.
2. Accuracy against the mpmath oracle (30 digits) at grid points and at the extremes
   p = 1e−12 and r = 1e−6: worst relative error per decoder.
3. ReLU against the foundation's ``optimal_symmetric_loss`` on the grid (two different routes).
4. TopK simulated on a Persian rug (p = 0.05, r = 1/4) at growing n against its large-n threshold
   equivalent (JumpReLU with gain and shift).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks._common import load_line
from rugtheory.theory import decoders
from rugtheory.twins import decoders_oracle

GRID = np.linspace(0.002001, 0.8, 20)


def bench_table(repeats: int = 3) -> dict[str, float]:
    P, R = np.meshgrid(GRID, GRID, indexing="ij")
    parts = {
        "relu": lambda: decoders.relu_decoder_optimum(P, R),
        "jumprelu_gain": lambda: decoders.jumprelu_decoder_optimum(P, R),
        "jumprelu_shift": lambda: decoders.jumprelu_decoder_optimum(P, R, shift=True),
        "mmse": lambda: decoders.mmse_decoder_loss(P, R),
        "table (all)": lambda: decoders.decoder_table(P, R),
    }
    out = {}
    for name, fn in parts.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = (min(times), statistics.median(times))
    return out


def bench_oracle() -> dict[str, float]:
    rng = np.random.default_rng(0)
    points = [(float(rng.choice(GRID)), float(rng.choice(GRID))) for _ in range(3)] + [(1e-12, 0.3), (0.2, 1e-6)]
    worst: dict[str, float] = {}
    for p, r in points:
        for dec in ("relu", "jumprelu_gain", "jumprelu_shift"):
            opt = decoders.thresholded_decoder_optimum(dec, np.array(p), np.array(r))
            if not np.isfinite(opt.threshold):
                continue  # the unclipped limit: the affine/gain-only closed form
            ref = decoders_oracle.thresholded_loss_at(dec, float(opt.threshold), p, r, dps=30)
            worst[dec] = max(worst.get(dec, 0.0), abs(float(opt.loss) / float(ref) - 1))
        ref = decoders_oracle.mmse_loss(p, r, dps=30)
        worst["mmse"] = max(worst.get("mmse", 0.0), abs(float(decoders.mmse_decoder_loss(p, r)) / float(ref) - 1))
    return worst


def bench_foundation() -> float:
    from rugtheory import optimal_symmetric_loss

    P, R = np.meshgrid(GRID, GRID, indexing="ij")
    return float(np.max(np.abs(decoders.relu_decoder_optimum(P, R).loss / optimal_symmetric_loss(P, R).loss - 1)))


def bench_topk() -> list[tuple[int, float, float, float, int, float, float]]:
    from rugtheory.constructions.topk_simulation import topk_rug_loss

    out = []
    for n in (256, 1024, 4096):
        t0 = time.perf_counter()
        res = topk_rug_loss(0.05, n, n // 4, n_samples=4000, seed=1)
        out.append((n, res.loss, res.stderr, res.large_n_loss, res.k, res.large_n_k, time.perf_counter() - t0))
    return out


def main() -> None:
    print(load_line())
    print("\n1. full decoder table on the paper's 20x20 grid (seconds; target < 5 s for the table)")
    print(f"{'part':<16} {'best':>8} {'median':>8}")
    for name, (best, med) in bench_table().items():
        print(f"{name:<16} {best:8.2f} {med:8.2f}")
    print("\n2. worst relative error against the mpmath oracle (30 digits), 3 grid points + (1e-12, 0.3) + (0.2, 1e-6)")
    for name, err in bench_oracle().items():
        print(f"{name:<16} {err:.1e}")
    print(f"\n3. ReLU optimum vs foundation optimal_symmetric_loss on the grid: max rel diff {bench_foundation():.1e}")
    print("\n4. TopK on a random-row Hadamard rug, p = 0.05, m = n/4, 4000 samples (half to fit k, gain, shift)")
    print(
        f"{'n':>6} {'held-out loss':>14} {'SE':>9} {'large-n':>10} {'(loss/large-n - 1)':>19} {'k':>5} "
        f"{'n P(y>θ*)':>10} {'s':>6}"
    )
    for n, loss, se, big, k, kstar, sec in bench_topk():
        print(f"{n:>6} {loss:14.5e} {se:9.1e} {big:10.5e} {loss / big - 1:19.4f} {k:>5} {kstar:10.1f} {sec:6.1f}")


if __name__ == "__main__":
    main()
