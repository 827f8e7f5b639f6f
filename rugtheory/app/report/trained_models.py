"""Report section: the theory against real trained models (CPU-sized; ``rugtheory validate`` for more).

Trains a small grid with the reference recipe (docs/theory.md §9) through :mod:`rugtheory.validation.sweep` into
``<out>/validation_store`` (resumable: a rerun of the report reuses finished runs), then writes
the paper's loss figures, the (r, p) heatmaps and the predicted-vs-measured table
(:func:`rugtheory.validation.figures.write_section`). Quick mode: n ∈ {64, 128, 256}, r ∈ {0.25, 0.5},
p ∈ {0.03, 0.1}, at most ``QUICK_STEPS`` steps per model (about two CPU-minutes on an idle core): the small
reproducibility check. Then the atlas part (:mod:`rugtheory.app.report.atlas`: the committed atlas CSV
against L*, the expected structure and the atlas interpolation; no training, no torch needed).
"""

from __future__ import annotations

import importlib.util
import time

__all__ = ["section", "quick_spec", "QUICK_STEPS", "SMOKE_STEPS"]

#: Step cap of the quick grid; the convergence rule usually stops models earlier or reports
#: ``converged = no`` in the table (never hidden).
QUICK_STEPS = 2000
#: Step cap of the smoke grid (tests/test_report.py): far from converged, marked so in the table.
SMOKE_STEPS = 200

INTRO = """\
Real models of docs/theory.md §1 trained with the reference recipe (untied layers, PyTorch default init,
Adam lr 3e-3/√n, eps 1e-7, batch 1024, fresh samples each step), many at once as one batched
tensor program. *measured* is the loss on fresh held-out samples (± its standard error), never the
last minibatch. *exact finite-n* is the exact expected loss of the model's own weights (docs/theory.md §7,
no sampling, no Gaussian step): it must match *measured* within a few SE. *Gaussian from weights*
is the symmetric large-N loss evaluated with each row's own (a_i, b_i + μ_i, σ_i); *L\\** is the
optimum of docs/theory.md §4; *rug* is the Persian rug at the same
(n, m, p) with the theory scalars (Monte Carlo); *linear* is (1 − r) v. Relative errors are
(prediction − measured)/measured. At these small n the interference is a sum of few sparse terms
(p·n between {pn}), far from Gaussian, so trained models can sit well below L*. Two causes, both
reported as measured, not hidden: non-Gaussian interference at finite n (docs/theory.md §7/§9; the exact
column captures it) and structures better than the symmetric optimum, such as antipodal pairs at
r = 1/2 (docs/theory.md §10; see the phase-map section). Models that hit the step cap before the
convergence rule (rugtheory.validation.train) is met are marked `conv. = no`.
"""


def quick_spec(seed: int = 0, quick: bool = True, smoke: bool = False):  # noqa: ANN201 (SweepSpec; lazy import)
    from rugtheory.validation.sweep import SweepSpec

    if smoke:  # tests/test_report.py: two models, every column and figure of the section
        return SweepSpec(n=(32,), r=(0.25, 0.5), p=(0.1,), seeds=(seed,), name=f"report-smoke-{seed}",
                         train={"steps": SMOKE_STEPS, "eval_samples": 20_000}, rug_rel_se=0.05,
                         rug_max_seconds=1.0, exact_max_nodes=2048)
    if quick:
        return SweepSpec(n=(64, 128, 256), r=(0.25, 0.5), p=(0.03, 0.1), seeds=(seed,),
                         name=f"report-quick-{seed}", train={"steps": QUICK_STEPS, "eval_samples": 50_000},
                         rug_rel_se=0.02, rug_max_seconds=2.0, exact_max_nodes=4096)
    return SweepSpec(n=(64, 128, 256, 512), r=(0.05, 0.1, 0.25, 0.5, 0.75), p=(0.01, 0.02, 0.05, 0.1, 0.2),
                     seeds=(seed,), name=f"report-full-{seed}", train={"steps": 20_000}, rug_max_seconds=20.0)


def section(ctx) -> str:  # noqa: ANN001 (ReportContext)
    from rugtheory.app.report.atlas import atlas_part

    title = "Validation against trained models"
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("safetensors") is None:
        return (f"## {title}\n\nRetraining skipped: torch and safetensors are needed "
                f"(`pip install 'rugtheory[train]'`).\n\n{atlas_part(ctx.out_dir)}")
    import torch

    from rugtheory.validation.figures import write_section
    from rugtheory.validation.sweep import run_sweep

    spec = quick_spec(ctx.seed, ctx.quick, getattr(ctx, "smoke", False))
    # One torch thread: at n <= 256 the products are small, and a second OpenMP thread on a busy
    # 2-core machine makes every step wait for a descheduled thread (measured: 5x slower under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        store = run_sweep(spec, ctx.out_dir / "validation_store", progress=False)
    finally:
        torch.set_num_threads(threads)
    rows = store.rows(sweep=spec.name)
    elapsed = time.perf_counter() - start
    pn = sorted(n * p for n in spec.n for p in spec.p)
    intro = INTRO.replace(
        "(p·n between {pn})",
        f"(p·n between {pn[0]:.2g} and {pn[-1]:.2g})" if pn[0] != pn[-1] else f"(p·n = {pn[0]:.2g})",
    ) + (
        f"\nGrid: n ∈ {list(spec.n)}, r ∈ {list(spec.r)}, p ∈ {list(spec.p)}, seed {ctx.seed}; "
        f"{len(rows)} models, {elapsed:.0f} s with 1 torch thread "
        f"(runs already in the store are reused). `rugtheory validate --preset paper` runs the "
        f"paper's grid.\n"
    )
    return (write_section(rows, ctx.out_dir, title=title, intro=intro, prefix="validation").rstrip() + "\n\n"
            + atlas_part(ctx.out_dir))
