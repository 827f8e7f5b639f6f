"""Finite-n predictions of the constructions (issue 13.1): ``python -m benchmarks finite_n_predictions``.

Cost of :func:`rugtheory.constructions.finite_n_predictions.finite_n_predictions` at n = 1024 and 4096
(r = 1/4 and 0.6, p = 0.045, seed 0), cold (fresh structure caches) and warm, and of its parts: one
exact rug row (the unit of work, O(n)) and the rug's scalar search. Prints the predictions at
(n = 1024, m = 256, p = 0.045) beside L*, the paired rug's large-n loss and the converged trained
loss 3.73e-3 (docs/theory.md §12).

``FINITE_N_PREDICTIONS_BENCH_N`` (default ``1024,4096``) changes the sizes.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._common import load_line
from rugtheory.constructions.finite_n_predictions import best_row_scalars, finite_n_predictions
from rugtheory.constructions.persian_rug import persian_rug, theory_scalars
from rugtheory.constructions.phase_map import clear_caches
from rugtheory.theory.finite_n import exact_loss_of_row

__all__ = ["main", "TRAINED_LOSS"]

#: Converged trained loss at n = 1024, m = 256, p = 0.045 (the harness's recipe, long run).
TRAINED_LOSS = 3.73e-3


def _timed(fn, *args, **kwargs):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _rows(row: np.ndarray, beta: float, p: float, reps: int) -> None:
    for _ in range(reps):
        exact_loss_of_row(row, 0, beta, p, tol=1e-11)


def main() -> None:
    sizes = [int(x) for x in os.environ.get("FINITE_N_PREDICTIONS_BENCH_N", "1024,4096").split(",")]
    p = 0.045
    print(load_line())
    print("\n## Cost\n| n | m | cold s | warm s | one rug row s | rug scalar search s | lowest | its loss |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for r in (0.25, 0.6):
            m = round(r * n)
            clear_caches()
            _, cold = _timed(finite_n_predictions, n, m, p)
            res, warm = _timed(finite_n_predictions, n, m, p)
            rug = persian_rug(n, m, seed=0)
            sc = theory_scalars(rug, p)
            row = np.asarray(rug.row(0), dtype=np.float64)
            reps = 20
            _, t_row = _timed(_rows, sc.alpha * row, sc.beta, p, reps)
            _, t_search = _timed(best_row_scalars, row, p, sc.alpha, sc.beta)
            print(f"| {n} | {m} | {cold:.2f} | {warm:.2f} | {t_row / reps:.4f} | {t_search:.2f} | {res.lowest} | "
                  f"{res.best.loss:.4e} |")
    res = finite_n_predictions(1024, 256, p)
    print(f"\n## Predictions at n = 1024, m = 256, p = {p} (trained, converged: {TRAINED_LOSS:.3e})")
    print("| construction | m used | finite-n loss ± error | large-n loss | finite/large − 1 | trained/finite − 1 |")
    print("|---|---|---|---|---|---|")
    for q in res.predictions:
        print(f"| {q.name} | {q.m} | {q.loss:.4e} ± {q.error:.0e} | {q.large_n_loss:.4e} | "
              f"{100 * q.over_large_n:+.2f}% | {100 * (TRAINED_LOSS / q.loss - 1):+.1f}% |")


if __name__ == "__main__":
    main()
