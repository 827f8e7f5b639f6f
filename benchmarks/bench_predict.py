"""``rugtheory predict`` with structures (issue 15): ``python -m benchmarks predict``.

Old and new paths side by side IN THIS PROCESS, from cold caches, interleaved (old, new, old, new; best
of two; wall and CPU seconds, with the load average before and after):

* **old**: the route before issue 15 item 1 was finished (commit dcde1c8), rebuilt from public switches:
  ``paired_rug.SEARCH = "quadrature"`` (θ ranked by the Gauss-Legendre loss), ``polytopes.PATTERN_EVALUATION
  = "flat"``, ``phase_map.PRUNE_RUG_POINTS = False`` (L* at every rug ratio), unbounded
  ``optimum.SEARCH_ROWS`` and ``phase_map.HULL_BATCH_POINTS``, and the former
  ``iter_records`` loop (chunks of 256 points, one ``expected_structures`` per chunk, the hulls of each
  chunk's p built by that chunk). Only L*'s shared Laguerre exponentials (bit for bit, a few per cent of
  L*) cannot be switched off.
* **new**: ``iter_records`` (blocks of ``BLOCK`` points, hulls prefetched ``P_BLOCK`` p at a time).

Each kernel is also timed old against new (paired rug, polytope optima), and the records of the two
paths are compared field by field (largest relative difference; L*'s columns must be identical).
Targets: 20 x 20 in under 1 s, 200 x 200 in under 10 s. The 200 x 200 grid runs the new path (with its
tracemalloc peak); ``PREDICT_BENCH_BIG=1`` also runs the old path on it (about a minute on a quiet core).
"""

from __future__ import annotations

import contextlib
import os
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np

from benchmarks._common import load_line

__all__ = ["main", "old_route"]


@contextlib.contextmanager
def old_route() -> Iterator[None]:
    """The public switches set to the former route (restored on exit)."""
    import rugtheory.constructions.paired_rug as pr
    import rugtheory.constructions.phase_map as pm
    import rugtheory.constructions.polytopes as pt
    import rugtheory.theory.optimum as om

    saved = pr.SEARCH, pt.PATTERN_EVALUATION, om.SEARCH_ROWS, pm.HULL_BATCH_POINTS, pm.PRUNE_RUG_POINTS
    pr.SEARCH, pt.PATTERN_EVALUATION, om.SEARCH_ROWS = "quadrature", "flat", 10**12
    pm.HULL_BATCH_POINTS, pm.PRUNE_RUG_POINTS = 10**12, False
    try:
        yield
    finally:
        pr.SEARCH, pt.PATTERN_EVALUATION, om.SEARCH_ROWS, pm.HULL_BATCH_POINTS, pm.PRUNE_RUG_POINTS = saved


def _records(blocks) -> list[dict]:  # noqa: ANN001
    out = [rec for block in blocks for rec in block]
    for rec in out:
        rec["components"] = [tuple(c.values()) for c in rec["components"]]
    return out


def _old_iter_records(ps: list[float], rs: list[float]) -> Iterator[list[dict]]:
    """``iter_records`` as it was: 256 points a chunk, each chunk's hulls built when it needs them."""
    from rugtheory.constructions.phase_map import expected_structures
    from rugtheory.theory.optimum import optimal_symmetric_loss

    p, r = np.asarray(ps), np.asarray(rs)
    total = p.size * r.size
    for lo in range(0, total, 256):
        idx = np.arange(lo, min(lo + 256, total))
        pc, rc = p[idx // r.size], r[idx % r.size]
        sym = optimal_symmetric_loss(pc, rc)
        records = sym.records()
        es = expected_structures(pc, rc, symmetric=sym)
        for k, rec in enumerate(records):
            e = es[k]
            rec.update(expected_structure=e.winner, expected_loss=e.loss, expected_over_symmetric=e.ratio_to_symmetric,
                       components=[{"name": c.name, "ratio": c.ratio, "fraction": c.fraction, "loss": c.loss,
                                    "gain": c.gain, "bias": c.bias} for c in e.components])
        yield records


def _old(ps: list[float], rs: list[float]) -> list[dict]:
    with old_route():
        return _records(_old_iter_records(ps, rs))


def _new(ps: list[float], rs: list[float]) -> list[dict]:
    from rugtheory.app.cli.predict import iter_records

    return _records(iter_records(ps, rs))


def _timed(fn, *args):  # noqa: ANN001, ANN202
    from rugtheory.constructions.phase_map import clear_caches

    clear_caches()
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - t, time.process_time() - c, out


def _side_by_side(label: str, old_fn, new_fn, *args, repeats: int = 2):  # noqa: ANN001, ANN202
    """Best (wall, cpu) of ``repeats`` interleaved runs of each, and the last outputs."""
    best = {"old": (np.inf, np.inf), "new": (np.inf, np.inf)}
    outs = {}
    for _ in range(repeats):
        for name, fn in (("old", old_fn), ("new", new_fn)):
            wall, cpu, outs[name] = _timed(fn, *args)
            best[name] = min(best[name], (wall, cpu))
    (wo, co), (wn, cn) = best["old"], best["new"]
    print(f"| {label} | {wo:.2f} ({co:.2f}) | {wn:.2f} ({cn:.2f}) | {wo / wn:.1f}x ({co / cn:.1f}x) |", flush=True)
    return best, outs


def _compare(old: list[dict], new: list[dict]) -> str:
    """Largest relative difference per column (L*'s columns must be identical) and winner changes."""
    worst: dict[str, float] = {}
    winners = 0
    for o, n in zip(old, new, strict=True):
        winners += o["expected_structure"] != n["expected_structure"]
        for k, v in o.items():
            if isinstance(v, float) and v != n[k]:
                worst[k] = max(worst.get(k, 0.0), abs(v - n[k]) / abs(v))
        for co, cn in zip(o["components"], n["components"]):
            for f, a, b in zip(("name", "ratio", "fraction", "loss", "gain", "bias"), co, cn):
                if isinstance(a, float) and a != b:
                    key = f"{co[0]} {f}"
                    worst[key] = max(worst.get(key, 0.0), abs(a - b) / abs(a))
    listed = ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items())) or "none"
    return f"winner changes: {winners}; largest relative differences: {listed}"


def _kernels() -> None:
    import rugtheory.constructions.paired_rug as pr
    import rugtheory.constructions.polytopes as pt

    p = np.geomspace(1e-3, 1.0, 50)[:, None]
    r = np.linspace(0.005, 0.5, 50)[None, :]
    _side_by_side("paired rug, 50 x 50 points", lambda: pr.optimal_paired_rug_loss_reference(p, r),
                  lambda: pr.optimal_paired_rug_loss(p, r), repeats=1)

    def optima(mode: str) -> None:
        saved = pt.PATTERN_EVALUATION
        pt.PATTERN_EVALUATION = mode
        try:
            pt.clear_caches()
            pt.prefetch_optima(pt.standard_constructions(), np.geomspace(1e-3, 1.0, 20))
        finally:
            pt.PATTERN_EVALUATION = saved

    _side_by_side("polytope + untied-pair optima, 20 p", lambda: optima("flat"), lambda: optima("grouped"))


def main() -> None:
    print(load_line())
    _timed(_new, [0.1], [0.3, 0.6])  # lazy imports
    _timed(_old, [0.1], [0.3, 0.6])
    print("| what | old s wall (cpu) | new s wall (cpu) | speed-up wall (cpu) |")
    print("|---|---|---|---|")
    _kernels()
    grids = {"20 x 20": (np.geomspace(1e-3, 1.0, 20), np.linspace(0.05, 1.0, 20)),
             "50 x 50": (np.geomspace(1e-3, 1.0, 50), np.linspace(0.005, 1.0, 50))}
    notes = []
    for label, (pg, rg) in grids.items():
        ps, rs = [float(x) for x in pg], [float(x) for x in rg]
        best, outs = _side_by_side(f"predict {label}, cold caches", _old, _new, ps, rs)
        notes.append(f"{label}: {_compare(outs['old'], outs['new'])}")
        if label == "20 x 20":
            t_new = best["new"][0]
            notes.append(f"target: 400 points < 1 s -> {'PASS' if t_new < 1 else 'FAIL'} ({t_new:.2f} s wall)")
    big_p = [float(x) for x in np.geomspace(1e-3, 1.0, 200)]
    big_r = [float(x) for x in np.linspace(0.005, 1.0, 200)]
    if os.environ.get("PREDICT_BENCH_BIG"):
        _, outs = _side_by_side("predict 200 x 200, cold caches", _old, _new, big_p, big_r, repeats=1)
        notes.append(f"200 x 200: {_compare(outs['old'], outs['new'])}")
    tracemalloc.start()
    wall, cpu, _ = _timed(_new, big_p, big_r)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    notes.append(f"200 x 200 new path under tracemalloc: {wall:.1f} s wall ({cpu:.1f} s cpu; tracemalloc slows it), "
                 f"peak {peak / 2**20:.0f} MiB; target < 10 s -> see the row above or time it without tracemalloc")
    if not os.environ.get("PREDICT_BENCH_BIG"):
        wall, cpu, _ = _timed(_new, big_p, big_r)
        notes.append(f"200 x 200 new path: {wall:.1f} s wall ({cpu:.1f} s cpu) -> {'PASS' if wall < 10 else 'FAIL'}")
    print("\n".join(notes))
    print(load_line())


if __name__ == "__main__":
    main()
