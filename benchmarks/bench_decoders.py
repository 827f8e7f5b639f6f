"""Decoder benchmarks (issue 4: optimality bounds and high-sparsity asymptotics).

1. The full decoder table (zero, linear, ReLU, JumpReLU gain and gain+shift = TopK at large n,
   MMSE) on the paper's 20×20 grid (r, p each ``linspace(0.002001, 0.8, 20)``): wall time, best
   and median of repeats, per decoder and in all. Target: under 5 s.
2. Accuracy against the mpmath oracle (30 digits) at grid points and at the extremes
   p = 1e−12 and r = 1e−6: worst relative error per decoder.
3. ReLU against the foundation's ``optimal_symmetric_loss`` on the grid (two different routes).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from rugtheory import decoders, decoders_oracle

GRID = np.linspace(0.002001, 0.8, 20)


def _load() -> str:
    try:
        return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 0)
    except OSError:
        return "load average unavailable"


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
            opt = decoders._optimise(dec, np.array(p), np.array(r))
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


def main() -> None:
    print(_load())
    print("\n1. full decoder table on the paper's 20x20 grid (seconds; target < 5 s for the table)")
    print(f"{'part':<16} {'best':>8} {'median':>8}")
    for name, (best, med) in bench_table().items():
        print(f"{name:<16} {best:8.2f} {med:8.2f}")
    print("\n2. worst relative error against the mpmath oracle (30 digits), 3 grid points + (1e-12, 0.3) + (0.2, 1e-6)")
    for name, err in bench_oracle().items():
        print(f"{name:<16} {err:.1e}")
    print(f"\n3. ReLU optimum vs foundation optimal_symmetric_loss on the grid: max rel diff {bench_foundation():.1e}")


if __name__ == "__main__":
    main()
