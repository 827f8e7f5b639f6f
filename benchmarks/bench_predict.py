"""``rugtheory predict`` with structures (issue 15): ``python -m benchmarks predict``.

Old and new path side by side IN THIS PROCESS, from cold caches, interleaved (old, new, old, new;
best of two): the old path calls the one-point ``expected_structure`` per grid point (what
``iter_records`` did before), the new one ``iter_records`` (one vectorised ``expected_structures`` per
chunk). Targets: the 400-point grid (20 x 20) in under 1 s; a 200 x 200 grid in under 10 s (new path
only, ``PREDICT_BENCH_BIG=1``; the old path is extrapolated from its per-point time). Also checks that
both paths give the same records (``expected_over_symmetric`` may differ in the last bits: the old
path divided by a one-point L*, whose BLAS reductions round differently from the chunk's).
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._common import load_line

__all__ = ["main"]


def _old_records(ps: list[float], rs: list[float]) -> list[dict]:
    from rugtheory.constructions.phase_map import expected_structure
    from rugtheory.theory.optimum import optimal_symmetric_loss

    p, r = np.asarray(ps), np.asarray(rs)
    idx = np.arange(p.size * r.size)
    records = optimal_symmetric_loss(p[idx // r.size], r[idx % r.size]).records()
    for rec in records:
        e = expected_structure(rec["p"], rec["r"])
        rec.update(expected_structure=e.winner, expected_loss=e.loss, expected_over_symmetric=e.ratio_to_symmetric,
                   components=[(c.name, c.ratio, c.fraction, c.loss, c.gain, c.bias) for c in e.components])
    return records


def _new_records(ps: list[float], rs: list[float]) -> list[dict]:
    from rugtheory.app.cli.predict import iter_records

    out = [rec for block in iter_records(ps, rs) for rec in block]
    for rec in out:
        rec["components"] = [tuple(c.values()) for c in rec["components"]]
    return out


def _timed(fn, *args):  # noqa: ANN001, ANN202
    from rugtheory.constructions.phase_map import clear_caches

    clear_caches()
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ps = [float(x) for x in np.geomspace(1e-3, 1.0, 20)]
    rs = [float(x) for x in np.linspace(0.05, 1.0, 20)]
    _timed(_new_records, ps[:1], rs[:2])  # lazy imports
    times: dict[str, list[float]] = {"old": [], "new": []}
    print(load_line())
    for _ in range(2):
        for name, fn in (("old", _old_records), ("new", _new_records)):
            sec, recs = _timed(fn, ps, rs)
            times[name].append(sec)
            if name == "old":
                old = recs
            else:
                new = recs
    print(load_line())
    same = all(o[k] == n[k] for o, n in zip(old, new) for k in o if k != "expected_over_symmetric")
    key = "expected_over_symmetric"
    ulps = max(abs(o[key] - n[key]) / np.spacing(o[key]) for o, n in zip(old, new))
    t_old, t_new = min(times["old"]), min(times["new"])
    print("| grid | old (per-point expected_structure) s | new (iter_records) s | speed-up |")
    print("|---|---|---|---|")
    print(f"| 20 x 20, cold caches | {t_old:.2f} | {t_new:.2f} | {t_old / t_new:.1f}x |")
    print(f"records identical except expected_over_symmetric: {same}; that one within {ulps:.0f} ulp")
    print(f"target: 400 points < 1 s -> {'PASS' if t_new < 1 else 'FAIL'} ({t_new:.2f} s)")
    if os.environ.get("PREDICT_BENCH_BIG"):
        big_p = [float(x) for x in np.geomspace(1e-3, 1.0, 200)]
        big_r = [float(x) for x in np.linspace(0.005, 1.0, 200)]
        sec, _ = _timed(_new_records, big_p, big_r)
        print(f"200 x 200: new {sec:.1f} s; old ≈ {t_old / 400 * 40000:.0f} s (extrapolated per point); "
              f"target < 10 s -> {'PASS' if sec < 10 else 'FAIL'}; {load_line()}")


if __name__ == "__main__":
    main()
