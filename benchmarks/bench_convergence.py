"""Faster convergence (issue 13, item 4): ``python -m benchmarks convergence``.

One model, n = 512 (``CONVERGENCE_BENCH_N`` changes it), m = n/4, p = 0.045, seed 0, trained with the
reference recipe of docs/theory.md §9 (Adam lr 3e-3/√n, betas (0.9, 0.999), eps 1e-7, batch 1024,
constant lr) and with candidate schedules (:class:`rugtheory.validation.train.TrainConfig` fields
``schedule``, ``lr_scale``, ``warmup_steps``, ``min_lr_frac``, ``beta1``, ``beta2``, ``eps``).

Every recipe trains for its whole step budget (``stop_on_convergence=False``; the convergence rule's
step is still reported). All share the seed, so they see the same initialisation, the same
training samples and the same fixed confirmation set: their confirmation curves (checked every
250 steps) differ only by the recipe. The target is the reference's *converged* loss: its
confirmation loss at the end of its budget (well past the step where the rule fired). "steps to
0.5%" is the first check at which a recipe's confirmation loss is within 0.5% of that target
(``V_t <= 1.005 · V_ref(end)``); its wall time is that many steps at the recipe's measured seconds
per step (checks included). The final held-out loss (100k fresh samples, ± SE) is reported too.

Results go to ``benchmarks/results/convergence_n<N>.csv`` and ``.json`` (with the machine load).

``CONVERGENCE_BENCH_CONFIRM=1`` (with ``CONVERGENCE_BENCH_N``, default 1024 then) trains only the
``fast`` recipe (:func:`rugtheory.validation.train.recipe_fields`) and, at n = 1024, compares its held-out
loss with the reference recipe's documented converged one (docs/theory.md §12: n = 1024, seed 0,
3.7352e-3 at 23,750 steps; at other n the curve is recorded without that comparison); steps to within
0.5% are read off its confirmation curve moved onto the held-out
scale (``V_t · heldout/V_end``). Results: ``convergence_n<N>_fast.json``.
``RUGTHEORY_BENCH_QUICK=1``: a smoke run (n = 64, a few hundred steps), results not written.
Run single-threaded on a shared machine: ``RUGTHEORY_BENCH_THREADS=1`` (the default here).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

__all__ = ["RECIPES", "REFERENCE_1024", "confirm", "main", "steps_to_target"]

#: name -> (TrainConfig fields, step budget at n = 512); budgets scale with n like the reference's
#: convergence (14,500 steps at n = 512, 23,750 at n = 1024: about sqrt(n)^0.7, see ``_budget``).
RECIPES: dict[str, tuple[dict, int]] = {
    "reference (constant, lr 3e-3/√n)": ({}, 18_000),
    "constant ×3": ({"lr_scale": 3.0}, 8_000),
    "warmup+cosine ×3, 6k": ({"schedule": "warmup_cosine", "lr_scale": 3.0, "warmup_steps": 300}, 6_000),
    "warmup+cosine ×10, 6k": ({"schedule": "warmup_cosine", "lr_scale": 10.0, "warmup_steps": 300}, 6_000),
    "warmup+cosine ×10, 4k": ({"schedule": "warmup_cosine", "lr_scale": 10.0, "warmup_steps": 200}, 4_000),
    "warmup+cosine ×30, 4k": ({"schedule": "warmup_cosine", "lr_scale": 30.0, "warmup_steps": 200}, 4_000),
    "warmup+cosine ×10, 4k, beta2 0.99": ({"schedule": "warmup_cosine", "lr_scale": 10.0, "warmup_steps": 200,
                                          "beta2": 0.99}, 4_000),
}

TOLERANCE = 0.005


def steps_to_target(history: list[tuple[int, float]], target: float, tol: float = TOLERANCE) -> int | None:
    """First step of ``history`` ((step, loss) pairs) with loss <= (1 + tol) · target, or None."""
    return next((s for s, v in history if v <= (1 + tol) * target), None)


def _budget(steps_512: int, n: int) -> int:
    """The step budget at n, scaled from n = 512 like the reference's convergence step (rounded to 250)."""
    scale = (n / 512) ** 0.71  # 14,500 -> 23,750 steps from n = 512 to 1024 (docs/theory.md §12)
    return max(250, int(round(steps_512 * scale / 250)) * 250)


#: The reference recipe at n = 1024, m = 256, p = 0.045, seed 0 (docs/theory.md §12): held-out loss, rule step.
REFERENCE_1024 = (3.7352e-3, 23_750)


def confirm(n: int) -> None:
    """The ``fast`` recipe alone at n against the documented reference (see the module docstring)."""
    import torch

    from rugtheory.validation.train import TrainConfig, recipe_fields, train_models

    # the reference recipe's converged loss is documented at n = 1024 only; elsewhere the curve and the final
    # loss are recorded without the comparison (reference fields null)
    ref_loss, ref_steps = REFERENCE_1024 if n == 1024 else (None, None)
    fields = recipe_fields("fast", n)
    cfg = TrainConfig(n=n, m=n // 4, p=0.045, seed=0, **dict(fields, stop_on_convergence=False))
    t0, c0 = time.perf_counter(), time.process_time()
    (model,) = train_models([cfg], device="cpu")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scale = model.heldout_loss / model.confirm_history[-1][1]
    s = None if ref_loss is None else steps_to_target([(t, v * scale) for t, v in model.confirm_history], ref_loss)
    row = {"recipe": "fast", "n": n, "m": cfg.m, "p": cfg.p, "seed": cfg.seed, "config": fields, "steps": cfg.steps,
           "heldout_loss": model.heldout_loss,
           "heldout_se": model.heldout_se, "reference_heldout": ref_loss, "reference_steps": ref_steps,
           "steps_to_within_0.5%": s, "speedup_steps": None if s is None else ref_steps / s,
           "wall_seconds": wall, "cpu_seconds": cpu, "threads": torch.get_num_threads(),
           "load_after": os.getloadavg()[0], "history": model.confirm_history}
    print(f"fast recipe at n = {n}: {cfg.steps} steps in {wall:.0f} s wall ({cpu:.0f} CPU s); held-out "
          f"{model.heldout_loss:.5e} ± {model.heldout_se:.1e}"
          + ("" if ref_loss is None else f" against the reference's {ref_loss:.4e} at {ref_steps} steps; within "
                                         f"0.5% of it from step {s}"))
    out = Path(__file__).resolve().parent / "results" / f"convergence_n{n}_fast.json"
    out.write_text(json.dumps({"generated_by": f"CONVERGENCE_BENCH_CONFIRM=1 CONVERGENCE_BENCH_N={n} "
                                               "python -m benchmarks convergence",
                               **row}, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    import torch

    from rugtheory.validation.train import TrainConfig, train_models

    quick = os.environ.get("RUGTHEORY_BENCH_QUICK") == "1"
    torch.set_num_threads(int(os.environ.get("RUGTHEORY_BENCH_THREADS", "1")))
    if os.environ.get("CONVERGENCE_BENCH_CONFIRM") == "1" and not quick:
        confirm(int(os.environ.get("CONVERGENCE_BENCH_N", "1024")))
        return
    n = 64 if quick else int(os.environ.get("CONVERGENCE_BENCH_N", "512"))
    only = [s for s in os.environ.get("CONVERGENCE_BENCH_ONLY", "").split(";") if s]
    m, p = max(1, n // 4), 0.045
    print(f"n = {n}, m = {m}, p = {p}, seed 0; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"load {os.getloadavg()[0]:.1f}" + (" [QUICK smoke run]" if quick else ""), flush=True)
    rows = []
    for name, (fields, steps_512) in RECIPES.items():
        if only and name not in only and not name.startswith("reference"):
            continue
        steps = 300 if quick else _budget(steps_512, n)
        warm = fields.get("warmup_steps", 0)
        fields = dict(fields, warmup_steps=min(warm, steps // 10)) if warm else fields
        cfg = TrainConfig(n=n, m=m, p=p, seed=0, steps=steps, stop_on_convergence=False,
                          **({"check_every": 50, "window": 100, "min_steps": 100} if quick else {}), **fields)
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        (model,) = train_models([cfg], device="cpu")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"recipe": name, "config": {k: v for k, v in cfg.to_dict().items() if k in fields},
                     "steps_budget": steps, "rule_converged_step": model.converged_step,
                     "heldout_loss": model.heldout_loss, "heldout_se": model.heldout_se,
                     "final_confirm": model.confirm_history[-1][1], "history": model.confirm_history,
                     "seconds_per_step": wall / steps, "cpu_seconds_per_step": cpu / steps,
                     "load": f"{load0:.1f}->{os.getloadavg()[0]:.1f}"})
        print(f"  {name}: {steps} steps, {wall:.0f} s wall, held-out {model.heldout_loss:.5e} ± "
              f"{model.heldout_se:.1e}, rule fired at {model.converged_step}", flush=True)
    ref = rows[0]
    target = ref["final_confirm"]
    ref_steps = steps_to_target(ref["history"], target)
    print(f"\ntarget: the reference's confirmation loss after {ref['steps_budget']} steps, {target:.5e}; "
          f"within {TOLERANCE:.1%}: <= {(1 + TOLERANCE) * target:.5e}\n")
    print("| recipe | steps to within 0.5% | wall s to there | speed-up (steps) | rule fired at | final held-out "
          "loss ± SE | final confirmation loss | ms/step |\n|---|---|---|---|---|---|---|---|")
    for row in rows:
        s = steps_to_target(row["history"], target)
        row["steps_to_target"] = s
        row["wall_to_target"] = None if s is None else s * row["seconds_per_step"]
        row["speedup_steps"] = None if s is None or ref_steps is None else ref_steps / s
        row["target"] = target
        wall_txt = "" if s is None else f"{row['wall_to_target']:.0f}"
        speed_txt = "" if row["speedup_steps"] is None else f"{row['speedup_steps']:.2f}x"
        print(f"| {row['recipe']} | {s if s is not None else 'not reached'} | {wall_txt} | {speed_txt} | "
              f"{row['rule_converged_step']} | {row['heldout_loss']:.5e} ± {row['heldout_se']:.1e} | "
              f"{row['final_confirm']:.5e} | {1e3 * row['seconds_per_step']:.1f} |")
    if quick:
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    stem = out / f"convergence_n{n}"
    keys = ["recipe", "steps_to_target", "wall_to_target", "speedup_steps", "rule_converged_step", "steps_budget",
            "heldout_loss", "heldout_se", "final_confirm", "target", "seconds_per_step", "cpu_seconds_per_step",
            "load", "config"]
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        fh.write(f"# generated by python -m benchmarks convergence (n = {n}, m = {m}, p = {p}, seed 0, "
                 f"{torch.get_num_threads()} thread(s)); do not edit\n")
        w = csv.writer(fh)
        w.writerow(keys)
        for row in rows:
            w.writerow([json.dumps(row[k], sort_keys=True) if k == "config" else
                        ("" if row[k] is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]))
                        for k in keys])
    meta = {"generated_by": "python -m benchmarks convergence", "n": n, "m": m, "p": p, "seed": 0,
            "tolerance": TOLERANCE, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "rows": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                              for k, v in row.items()} for row in rows]}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"\nwrote {stem}.csv and .json")


if __name__ == "__main__":
    main()
