"""Persian-rug benchmarks (issue 3): ``python -m benchmarks rug``.

1. Headline: the rug loss at n = 2^20, r = 0.25, p = 0.01 to 1e-3 relative SE (theory scalars),
   wall and CPU time, samples, and what the plain estimator would need for the same SE.
2. Operator cost vs n: the fast route (FWHT, ``PersianRug.apply``) against the dense route
   (``W @ x`` with a formed n×n matrix) up to the largest n whose W fits a 4 GiB budget (and a
   quarter of the available memory); fitted exponents of time vs n.
3. Convergence table n = 2^7 … 2^20 at (p, r) = (0.01, 0.25), rel. SE 1e-3: gap to L* against n and
   p·n, with the fitted power of the significant gaps in p·n.

Environment variables: ``RUG_BENCH_MAX_K`` (default 20) caps the table; ``RUG_BENCH_QUICK=1`` runs a
reduced version (n <= 2^16, rel. SE 3e-3).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from rugtheory import optimal_symmetric_loss
from rugtheory.constructions.persian_rug import persian_rug, theory_scalars
from rugtheory.constructions.rug_monte_carlo import (
    format_convergence_table,
    rug_convergence_table,
    rug_loss_monte_carlo,
)

__all__ = ["main", "headline", "operator_scaling", "convergence"]

DENSE_BUDGET_BYTES = 4 << 30


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return DENSE_BUDGET_BYTES


def headline(k: int = 20, p: float = 0.01, r: float = 0.25, rel_se: float = 1e-3, seed: int = 0) -> dict[str, float]:
    n = 1 << k
    rug = persian_rug(n, int(r * n), seed=seed)
    sc = theory_scalars(rug, p)
    est = rug_loss_monte_carlo(rug, p, alpha=sc.alpha, beta=sc.beta, seed=seed, rel_se=rel_se)
    lstar = float(optimal_symmetric_loss(p, rug.r).loss)
    # samples the plain estimator would need for the same SE, and the time at the same cost per sample
    n_plain = est.n_samples * (est.plain_se / est.se) ** 2
    out = {
        "n": n, "m": rug.m, "p": p, "loss": est.loss, "se": est.se, "rel_se": est.se / est.loss, "lstar": lstar,
        "gap": (est.loss - lstar) / lstar, "gap_se": est.se / lstar, "samples": est.n_samples,
        "wall_s": est.wall_seconds, "cpu_s": est.cpu_seconds, "plain_loss": est.plain_loss, "plain_se": est.plain_se,
        "plain_samples_needed": n_plain, "plain_wall_s_projected": est.wall_seconds * n_plain / est.n_samples,
        "reached": est.reached,
    }
    print(f"\n## Headline: rug loss at n = 2^{k}, r = {r}, p = {p}, target rel. SE {rel_se:g}")
    print("| quantity | value |\n|---|---|")
    print(
        f"| rug loss (conditional + control variates) | {est.loss:.6e} ± {est.se:.2e} (rel. SE "
        f"{est.se / est.loss:.2e}) |"
    )
    print(f"| L*(p, r) | {lstar:.6e} |")
    print(f"| gap (loss − L*)/L* | {out['gap']:+.2e} ± {out['gap_se']:.1e} ({out['gap'] / out['gap_se']:+.1f} SE) |")
    print(f"| plain estimator on the same samples | {est.plain_loss:.6e} ± {est.plain_se:.2e} |")
    print(f"| samples | {est.n_samples} (target reached: {est.reached}) |")
    print(f"| wall time | {est.wall_seconds:.1f} s |")
    print(f"| CPU time (process, all threads) | {est.cpu_seconds:.1f} s |")
    print(
        f"| plain estimator: samples / projected wall time for the same SE | {n_plain:.0f} / "
        f"{out['plain_wall_s_projected']:.0f} s |"
    )
    return out


def _time(f, repeat: int = 3) -> tuple[float, float]:
    best_wall, best_cpu = math.inf, math.inf
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        f()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def _exponent(ns: list[int], ts: list[float]) -> float:
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def operator_scaling(batch: int = 256, k_fast_max: int = 20, seed: int = 0) -> dict[str, float]:
    """Time per sample of ``W x`` by the fast and the dense route; exponents of time vs n."""
    budget = min(DENSE_BUDGET_BYTES, _mem_available() // 4)
    k_dense_max = int(math.floor(math.log2(math.sqrt(budget / 8))))
    print(
        f"\n## Operator cost per sample (batch min({batch}, 2^22/n)); dense W limited to {budget / 2**30:.1f} GiB -> "
        f"n <= 2^{k_dense_max}"
    )
    print(
        "| n | fast: wall ms/sample | fast: CPU ms/sample | dense: form W (s) | dense: wall ms/sample | dense: CPU "
        "ms/sample | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    fast_n, fast_t, dense_n, dense_t, fast_c, dense_c = [], [], [], [], [], []
    rng = np.random.default_rng(seed)
    for k in range(7, k_fast_max + 1):
        n = 1 << k
        rug = persian_rug(n, n // 4, seed=seed)
        b = max(1, min(batch, (1 << 22) // n))  # at most 32 MiB per batch array
        x = rng.random((b, n))
        fw, fc = _time(lambda rug=rug, x=x: rug.apply(x))
        fast_n.append(n)
        fast_t.append(fw / b)
        fast_c.append(fc / b)
        row = f"| 2^{k} | {1e3 * fw / b:.3f} | {1e3 * fc / b:.3f} |"
        if k <= k_dense_max:
            w0 = time.perf_counter()
            W = rug.dense(max_entries=n * n)
            form = time.perf_counter() - w0
            dw, dc = _time(lambda x=x, W=W: x @ W.T, repeat=2)
            diff = float(np.max(np.abs(x @ W.T - rug.apply(x))))
            dense_n.append(n)
            dense_t.append(dw / b)
            dense_c.append(dc / b)
            row += f" {form:.2f} | {1e3 * dw / b:.3f} | {1e3 * dc / b:.3f} | {diff:.1e} |"
            del W
        else:
            row += " – | – | – | – |"
        print(row, flush=True)
    # exponents over the upper half of each range (the small n are overhead-dominated); CPU time
    # is less sensitive than wall time to other jobs on a shared machine
    half_f, half_d = len(fast_n) // 2, len(dense_n) // 2
    fe, fce = _exponent(fast_n[half_f:], fast_t[half_f:]), _exponent(fast_n[half_f:], fast_c[half_f:])
    de = _exponent(dense_n[half_d:], dense_t[half_d:]) if len(dense_n) - half_d >= 2 else math.nan
    dce = _exponent(dense_n[half_d:], dense_c[half_d:]) if len(dense_n) - half_d >= 2 else math.nan
    k_dense = dense_n[-1].bit_length() - 1
    same = len(dense_n) - 1
    print(f"\nfitted exponent of time vs n (upper half of each range), wall / CPU: fast {fe:.2f} / {fce:.2f} "
          f"(n log n: about 1.05–1.1 in this range), dense {de:.2f} / {dce:.2f} (n²: 2)")
    print(
        f"dense at the largest n measured (2^{k_dense}): {1e3 * dense_t[-1]:.1f} ms/sample wall, "
        f"{1e3 * dense_c[-1]:.1f} ms CPU; fast at that n: {1e3 * fast_t[same]:.2f} ms wall, {1e3 * fast_c[same]:.2f} "
        "ms CPU; "
        f"a dense W at n = 2^20 would need {8 * 4**20 / 2**40:.0f} TiB"
    )
    return {"fast_exponent": fe, "fast_exponent_cpu": fce, "dense_exponent": de, "dense_exponent_cpu": dce,
            "dense_k_max": k_dense, "dense_ms_per_sample": 1e3 * dense_t[-1],
            "fast_ms_per_sample_same_n": 1e3 * fast_t[same], "fast_ms_per_sample_largest": 1e3 * fast_t[-1]}


def convergence(p: float = 0.01, r: float = 0.25, k_max: int = 20, rel_se: float = 1e-3, seed: int = 0) -> list:
    ns = [1 << k for k in range(7, k_max + 1)]
    rows = rug_convergence_table(p, r, ns, seed=seed, rel_se=rel_se)
    print(f"\n## Convergence to L*: p = {p}, r = {r}, rug seed {seed}, theory scalars, target rel. SE {rel_se:g}")
    print(format_convergence_table(rows))
    sig = [row for row in rows if row.gap > 3 * row.gap_se]
    if len(sig) >= 3:
        slope = float(np.polyfit(np.log([row.pn for row in sig]), np.log([row.gap for row in sig]), 1)[0])
        print(
            f"gap ∝ (p·n)^{slope:.2f} over the {len(sig)} rows where gap > 3 SE (p·n = {sig[0].pn:g} … {sig[-1].pn:g})"
        )
    big = [row for row in rows if row.pn >= 100]
    if big:
        last = big[-1]
        z = last.gap / last.gap_se
        verdict = "within" if abs(z) <= 3 else "NOT within"
        print(
            f"largest n with p·n >= 100: n = {last.n}, gap {last.gap:+.2e} ± {last.gap_se:.1e} = {z:+.1f} SE: "
            f"{verdict} 3 SE of zero"
        )
    return rows


def main() -> None:
    quick = os.environ.get("RUG_BENCH_QUICK", "") == "1"
    k_max = int(os.environ.get("RUG_BENCH_MAX_K", "16" if quick else "20"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machines: compare CPU time)")
    headline(k=min(20, k_max))
    operator_scaling(k_fast_max=min(20, k_max))
    convergence(k_max=k_max, rel_se=3e-3 if quick else 1e-3)


if __name__ == "__main__":
    main()
