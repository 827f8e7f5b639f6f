"""Foundation benchmarks (issue: L* fast and exact).

1. L* on the paper's 20x20 grid (r, p each ``linspace(0.002001, 0.8, 20)``): wall time (best and
   median of repeats) and relative error against the mpmath oracle on a sample of grid points.
2. ``rugtheory predict`` for one point: wall time of the whole command (fresh interpreter).
3. Monte Carlo of the model equation to 1e-3 relative standard error at one grid point: the sample
   count it needs (from the measured per-sample variance), its time, and the ratio to the closed form.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks._common import load_line
from rugtheory import optimal_symmetric_loss, symmetric_loss
from rugtheory.twins import oracle
from rugtheory.twins.montecarlo import symmetric_loss_mc

GRID = np.linspace(0.002001, 0.8, 20)


def bench_grid(repeats: int = 15, n_oracle: int = 12) -> dict[str, float]:
    P, R = np.meshgrid(GRID, GRID, indexing="ij")
    optimal_symmetric_loss(P, R)  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt = optimal_symmetric_loss(P, R)
        times.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    idx = rng.choice(P.size, size=n_oracle, replace=False)
    worst = 0.0
    for k in idx:
        i, j = np.unravel_index(k, P.shape)
        ref = oracle.optimal_symmetric_loss(P[i, j], R[i, j], theta_start=float(opt.theta[i, j]), dps=30)
        worst = max(worst, abs(float(opt.loss[i, j]) / float(ref["loss"]) - 1))
    return {"best_s": min(times), "median_s": statistics.median(times), "worst_rel_err": worst, "n_oracle": n_oracle}


def bench_predict_cli(repeats: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rugtheory", "predict", "--p", "0.045", "--r", "0.25"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times)}


def bench_monte_carlo(p: float = 0.045, r: float = 0.25, target: float = 1e-3) -> dict[str, float]:
    opt = optimal_symmetric_loss(p, r)
    a, b, s = float(opt.a), float(opt.b), float(opt.sigma)
    pilot_n = 2_000_000
    t0 = time.perf_counter()
    pilot = symmetric_loss_mc(a, b, s, p, n_samples=pilot_n, seed=0)
    pilot_t = time.perf_counter() - t0
    rel_sd = pilot.se * np.sqrt(pilot_n) / pilot.mean
    needed = int(np.ceil((rel_sd / target) ** 2))
    t0 = time.perf_counter()
    est = symmetric_loss_mc(a, b, s, p, n_samples=needed, seed=1)
    mc_t = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(100):
        symmetric_loss(a, b, s, p)
    cf_t = (time.perf_counter() - t0) / 100
    return {
        "samples_needed": needed, "mc_s": mc_t, "achieved_rel_se": est.se / est.mean, "pilot_s": pilot_t,
        "closed_form_s": cf_t, "ratio": mc_t / cf_t, "z": est.z_score(float(opt.loss)),
    }


def main() -> None:
    print(load_line())
    g = bench_grid()
    print(f"L* on 20x20 grid: best {g['best_s'] * 1e3:.1f} ms, median {g['median_s'] * 1e3:.1f} ms; "
          f"worst rel. error vs mpmath oracle on {g['n_oracle']} grid points: {g['worst_rel_err']:.2e}")
    c = bench_predict_cli()
    print(f"rugtheory predict (one point, fresh interpreter): best {c['best_s']:.2f} s, median {c['median_s']:.2f} s")
    m = bench_monte_carlo()
    print(f"Monte Carlo at p=0.045, r=0.25 to 1e-3 rel. SE: {m['samples_needed']:.3g} samples, {m['mc_s']:.2f} s "
          f"(achieved {m['achieved_rel_se']:.2e}, z = {m['z']:+.2f}); closed form {m['closed_form_s'] * 1e6:.0f} us; "
          f"ratio {m['ratio']:.3g}x")
    print(load_line())
