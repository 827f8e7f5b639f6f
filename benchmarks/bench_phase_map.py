"""Benchmark: the phase map of competing structures on a 40x40 (p, r) grid (target < 30 s), and one
cold ``expected_structure(p, r)`` (target < 0.25 s: the ``rugtheory predict`` path).

Prints the wall time of each stage from cold caches, and the accuracy of the envelope against a
4x finer grid of rug ratios.
"""

from __future__ import annotations

import os
import time

import numpy as np


def _clear_caches() -> None:
    import rugtheory.constructions.phase_map as pm
    pm.clear_caches()


def _single_point_seconds(p: float, r: float) -> tuple[float, float]:
    """Wall and CPU seconds of one cold ``expected_structure(p, r)`` (what ``rugtheory predict`` pays)."""
    from rugtheory.constructions.phase_map import expected_structure

    _clear_caches()
    t, c = time.perf_counter(), time.process_time()
    expected_structure(p, r)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    import rugtheory.constructions.phase_map as pm
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.polytopes import optimal_structure_loss, standard_constructions
    from rugtheory.theory.optimum import optimal_symmetric_loss

    p = np.geomspace(1e-4, 0.9, 40)
    r = np.linspace(0.025, 1.0, 40)
    _single_point_seconds(0.3, 0.7)  # first call pays lazy imports; not part of the timing
    single = [(pr, _single_point_seconds(*pr)) for pr in ((0.045, 0.25), (0.01, 0.5), (0.3, 0.7))]
    rows = []
    _clear_caches()
    t0 = time.perf_counter()
    for con in standard_constructions():
        t = time.perf_counter()
        optimal_structure_loss(con, p)
        rows.append((f"optimise g, b: {con.name} (40 p)", time.perf_counter() - t))
    t_struct = time.perf_counter() - t0
    t = time.perf_counter()
    optimal_symmetric_loss(p[:, None], pm.RUG_RATIO_GRID[None, :])
    rows.append((f"L* on 40 x {pm.RUG_RATIO_GRID.size} rug ratios", time.perf_counter() - t))
    t = time.perf_counter()
    optimal_paired_rug_loss(p[:, None], np.concatenate([pm.PAIRED_RUG_RATIO_GRID, r[r <= 0.5]])[None, :])
    rows.append(
        (f"paired rug on 40 x {pm.PAIRED_RUG_RATIO_GRID.size + int(np.sum(r <= 0.5))} ratios", time.perf_counter() - t)
    )

    from benchmarks.bench_predict import old_route

    _clear_caches()
    with old_route():  # the route before issue 15 (public switches), in this process
        t = time.perf_counter()
        m_old = pm.phase_map(p, r)
        rows.append(("phase_map 40 x 40, former route, cold caches", time.perf_counter() - t))
    _clear_caches()
    t = time.perf_counter()
    m = pm.phase_map(p, r)
    total = time.perf_counter() - t
    rows.append(("phase_map 40 x 40, cold caches (total)", total))
    same = bool(np.array_equal(m.winner_names(), m_old.winner_names()))
    change = float(np.max(np.abs(m.loss - m_old.loss) / np.where(m_old.loss > 0, m_old.loss, 1.0)))

    coarse_sub = m.loss[::8, ::8]
    fine_grid = np.unique(np.concatenate([pm.RUG_RATIO_GRID, np.linspace(1e-4, 1, 1000)]))
    saved = pm.RUG_RATIO_GRID
    pm.RUG_RATIO_GRID = fine_grid
    try:
        fine = pm.phase_map(p[::8], r[::8]).loss
    finally:
        pm.RUG_RATIO_GRID = saved
    err = float(np.max(np.abs(coarse_sub / fine - 1)))

    print(f"{'stage':<48} {'seconds':>8}")
    for name, sec in rows:
        print(f"{name:<48} {sec:8.2f}")
    print(f"{'(sum of structure optimisations)':<48} {t_struct:8.2f}")
    print(f"target: 40x40 map < 30 s -> {'PASS' if total < 30 else 'FAIL'} ({total:.1f} s)")
    print(f"former route vs new: same winners {same}, largest relative change of the loss {change:.1e}")
    worst = max(cpu for _, (_, cpu) in single)
    for (sp, sr), (wall, cpu) in single:
        print(f"expected_structure(p={sp}, r={sr}), cold caches: {wall:.3f} s wall, {cpu:.3f} s CPU")
    print(f"target: expected_structure < 0.25 s per point (CPU; wall ~ CPU on a quiet machine) -> "
          f"{'PASS' if worst < 0.25 else 'FAIL'} ({worst:.3f} s), load average {os.getloadavg()[0]:.1f}")
    print(f"envelope vs 4x finer rug grid, max relative difference on 5x5 subgrid: {err:.2e}")
    from rugtheory.constructions.polytopes import regular_polygon

    t = time.perf_counter()
    extra = pm.phase_map(p, r, constructions=standard_constructions() + [regular_polygon(7), regular_polygon(8)])
    changed = int(np.sum(extra.winner_names() != m.winner_names()))
    pos = m.loss > 0
    gain = float(np.max(1 - extra.loss[pos] / m.loss[pos]))
    print(f"with polygon7, polygon8 added ({time.perf_counter() - t:.1f} s): winner changes at {changed} of 1600 "
          f"points, best loss lower by at most {gain:.1e} relative")
    counts = {lab: int(np.sum(m.winner == i)) for i, lab in enumerate(m.labels)}
    print("winners (grid points):", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    print(f"min ratio best/L*: {float(m.ratio.min()):.3f}")


if __name__ == "__main__":
    main()
