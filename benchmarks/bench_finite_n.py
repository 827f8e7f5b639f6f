"""Exact finite-n loss (issue 6): ``python -m benchmarks finite_n``.

Target: the exact loss of an n = 4096 model, all rows, in under 30 s on this machine (2 shared CPU
cores). The model is trained-like: W = (a/r) P with P a random rank-1024 projection (rank bound
with equality, a = 1.3) plus about three large negative entries (−0.6) per row, p = 0.045, bias at
the large-N optimum. Compared with Monte Carlo of the same weights: the measured MC throughput,
the MC standard error reached in the same wall time, and the time MC would need to reach the exact
route's error estimate (SE ∝ 1/sqrt(samples), extrapolated from the measured throughput).

``FINITE_N_BENCH_N`` (default 4096) changes n; ``FINITE_N_BENCH_MODEL=random`` uses W = G/sqrt(n) with unit
diagonal and b = -0.1 instead (issue 15's profile matrix).

Issue 15: the series part's old layout (``legacy=True``: every row fully sorted, O(n R) cumulative
sums per row) and the new one (bulk power sums + sorted tail) are timed side by side in this process,
interleaved (old, new, old, new; best of two), with the largest row difference in units of row_error.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._common import load_line
from rugtheory.theory.finite_n import exact_loss_from_weights
from rugtheory.twins.montecarlo import model_loss_monte_carlo

__all__ = ["main", "random_model", "side_by_side", "trained_like_model"]


def trained_like_model(n: int, *, r: float = 0.25, a: float = 1.3, p: float = 0.045, seed: int = 0,
                       spike: float = 0.6, spikes_per_row: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = max(1, int(round(r * n)))
    q, _ = np.linalg.qr(rng.standard_normal((n, m)))
    W = a * (q @ q.T) / r
    mask = rng.random((n, n)) < spikes_per_row / n
    np.fill_diagonal(mask, False)
    W -= spike * mask
    b = -0.446 - 0.5 * p * (W.sum(axis=1) - np.diag(W))
    return W, b


def random_model(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """W = G/sqrt(n) with unit diagonal, b = -0.1 (issue 15's profile matrix)."""
    W = np.random.default_rng(seed).standard_normal((n, n)) / np.sqrt(n)
    np.fill_diagonal(W, 1.0)
    return W, np.full(n, -0.1)


def side_by_side(W: np.ndarray, b: np.ndarray, p: float, tol: float = 1e-11) -> None:
    """Old (legacy=True) and new series layout, interleaved in this process; rows compared."""
    times: dict[bool, list[float]] = {True: [], False: []}
    res = {}
    print(load_line())
    for legacy in (True, False, True, False):
        t = time.perf_counter()
        res[legacy] = exact_loss_from_weights(W, b, p, tol=tol, legacy=legacy)
        times[legacy].append(time.perf_counter() - t)
    print(load_line())
    old, new = res[True], res[False]
    d = np.abs(old.row_loss - new.row_loss)
    print("| series layout | wall s (best of 2) | loss | error estimate |")
    print("|---|---|---|---|")
    print(f"| old (legacy=True) | {min(times[True]):.1f} | {old.loss:.15e} | {old.error:.1e} |")
    print(f"| new | {min(times[False]):.1f} | {new.loss:.15e} | {new.error:.1e} |")
    print(f"speed-up {min(times[True]) / min(times[False]):.2f}x; rows: max |new - old| = {d.max():.1e} = "
          f"{np.max(d / old.row_error):.1e} x row_error, bitwise equal {np.mean(d == 0):.0%}\n")


def main() -> None:
    n = int(os.environ.get("FINITE_N_BENCH_N", "4096"))
    p = 0.045
    if os.environ.get("FINITE_N_BENCH_MODEL") == "random":
        W, b = random_model(n)
        print(f"model: n = {n}, p = {p}, W = G/sqrt(n) with unit diagonal, b = -0.1")
    else:
        W, b = trained_like_model(n, p=p)
        print(f"model: n = {n}, m = {n // 4}, p = {p}, trained-like (projection + ~3 negative spikes per row)")
    side_by_side(W, b, p)
    print("| method | tol / samples | wall s | loss | abs. error (estimate or SE) |")
    print("|---|---|---|---|---|")
    results = {}
    for tol in (1e-11, 1e-9):
        t = time.perf_counter()
        ex = exact_loss_from_weights(W, b, p, tol=tol)
        wall = time.perf_counter() - t
        results[tol] = (ex, wall)
        print(
            f"| exact (Bromwich) | tol {tol:.0e} | {wall:.1f} | {ex.loss:.10e} | {ex.error:.1e} (max node count "
            f"{ex.nodes.max()}) |"
        )
    ex, wall_exact = results[1e-11]
    samples = 20_000
    t = time.perf_counter()
    est = model_loss_monte_carlo(W, None, b, p, n_samples=samples, seed=0)
    mean, se = est.row_mean, est.se
    wall_mc = time.perf_counter() - t
    rate = samples / wall_mc
    print(f"| Monte Carlo | {samples} samples | {wall_mc:.1f} | {mean.mean():.6e} | SE {se:.1e} |")
    se_same_time = se * np.sqrt(samples / (rate * wall_exact))
    need = samples * (se / max(ex.error, 1e-300)) ** 2
    print(
        f"\nMC throughput {rate:.0f} samples/s; in the exact route's {wall_exact:.1f} s MC reaches SE ≈ "
        f"{se_same_time:.1e} "
        f"({se_same_time / ex.loss:.1e} relative)."
    )
    print(
        f"MC to the exact route's error estimate {ex.error:.1e}: ≈ {need:.1e} samples ≈ {need / rate / 3.15e7:.1e} "
        "CPU-years."
    )
    print(f"exact − MC = {ex.loss - mean.mean():+.2e} = {(ex.loss - mean.mean()) / se:+.2f} SE")


if __name__ == "__main__":
    main()
