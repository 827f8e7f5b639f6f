"""Report part: the committed atlas of trained models (validation/atlas/atlas.csv) against the predictions.

No training: everything comes from the CSV through :mod:`rugtheory.app.atlas_lookup`. Called by the
validation section (:mod:`rugtheory.app.report.trained_models`), which keeps its quick retraining as the
small reproducibility check.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["atlas_part", "FIGURE"]

FIGURE = "validation_atlas.png"


def _rel(pred: float, meas: float) -> float:
    return (pred - meas) / meas if math.isfinite(pred) and math.isfinite(meas) and meas > 0 else math.nan


def _f(x: float, spec: str = ".4g") -> str:
    return format(x, spec) if isinstance(x, float) and math.isfinite(x) else "–"


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "–"


def _figure(rows, path: Path) -> list[int]:
    """trained/L* (the lowest trained model per cell, any status; * = no converged model there) and the
    expected structure/L* over (r, p), one column of panels per n with trained models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ns = sorted({a.n for a in rows if a.trained and math.isfinite(a.heldout_loss)})
    if not ns:
        return []
    fig, axes = plt.subplots(2, len(ns), figsize=(4.2 * len(ns), 7), squeeze=False)
    for j, n in enumerate(ns):
        these = [a for a in rows if a.n == n]
        rs, ps = sorted({a.r for a in these}), sorted({a.p for a in these})
        grids = [np.full((len(rs), len(ps)), np.nan) for _ in range(2)]
        conv = np.zeros((len(rs), len(ps)), dtype=bool)
        for a in these:
            i, k = rs.index(a.r), ps.index(a.p)
            grids[1][i, k] = a.expected_loss / a.lstar
            if a.trained and math.isfinite(a.heldout_loss):
                grids[0][i, k] = np.fmin(grids[0][i, k], a.heldout_loss / a.lstar)
                conv[i, k] |= a.converged
        for row, (grid, name) in enumerate(zip(grids, ["trained / L* (lowest model)", "expected structure / L*"],
                                               strict=True)):
            ax = axes[row, j]
            im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto")
            for i in range(len(rs)):
                for k in range(len(ps)):
                    if math.isfinite(grid[i, k]):
                        star = "*" if row == 0 and not conv[i, k] else ""
                        ax.text(k, i, f"{grid[i, k]:.2f}{star}", ha="center", va="center", fontsize=8, color="w")
            ax.set_xticks(range(len(ps)), [f"{p:g}" for p in ps])
            ax.set_yticks(range(len(rs)), [f"{r:.3g}" for r in rs])
            ax.set_xlabel("p")
            ax.set_ylabel("r = m/n")
            ax.set_title(f"n = {n}: {name}", fontsize=9)
            fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return ns


def atlas_part(out_dir: Path, csv_path: str | Path | None = None) -> str:
    """Markdown for the atlas part of the validation section (and its figure in ``out_dir``)."""
    from rugtheory.app import atlas_lookup as al

    rows = al.read_atlas(csv_path)
    lines = ["### The atlas of trained models (committed CSV, no training here)\n"]
    cover = []
    for recipe in sorted({a.recipe for a in rows}):
        these = [a for a in rows if a.recipe == recipe]
        per_n = ", ".join(f"n = {n}: {sum(a.trained for a in these if a.n == n)} of {sum(a.n == n for a in these)}"
                          for n in sorted({a.n for a in these}))
        cover.append(f"recipe **{recipe}**: {sum(a.trained for a in these)} of {len(these)} listed models trained "
                     f"({per_n}), {sum(a.converged for a in these)} converged")
    trained = sum(a.trained for a in rows)
    lines.append(("The atlas is **partial**: " if trained < len(rows) else "The atlas is complete: ")
                 + "; ".join(cover) + ". Counts from `validation/atlas/atlas.csv` (columns: "
                 "`rugtheory.validation.atlas`); `rugtheory validate --preset atlas` keeps training it.\n")
    ns = _figure(rows, out_dir / FIGURE)
    if ns:
        lines.append(f"![atlas over (r, p)]({FIGURE})\n\nTop: held-out loss / L* of the lowest trained model per "
                     "cell (any status; `*` = no converged model there). Bottom: the expected structure's loss "
                     "(finite-n where the CSV has it) / L*.\n")
    conv = [a for a in rows if a.converged and math.isfinite(a.heldout_loss)]
    loo = {id(x.row): x for n in sorted({a.n for a in conv}) for x in al.leave_one_out(rows, n)}
    preds = {"L* (docs/theory.md §4)": lambda a: a.lstar,
             "expected structure, large n (§10.5)": lambda a: a.expected_large_n_loss,
             "expected structure, finite n (§7.5)": lambda a: a.expected_finite_n_loss,
             "atlas interpolation (leave-one-out)": lambda a: loo[id(a)].predicted}
    lines.append("Prediction errors over the **converged** models only (status `converged`; models with dead "
                 "features or not converged never count), relative error = (prediction − measured)/measured, "
                 "measured = held-out loss. The atlas interpolation is log(loss/L*) piecewise linear in "
                 "(r, log p) over the converged models at that n, each model predicted from the others "
                 "(at a cell with both seeds converged this is seed scatter, not interpolation); `–` where "
                 "the others do not cover it (`rugtheory.app.atlas_lookup`).\n")
    lines.extend(_error_table(conv, preds))
    live = [a for a in rows if a.status in ("converged", "not converged") and math.isfinite(a.heldout_loss)]
    if len(live) > len(conv):
        lines.append(f"\nThe same table over all {len(live)} trained models **without dead features**, converged "
                     "or not (a robustness check, not a result: a run the rule did not call converged may still be "
                     "falling; the fast recipe's cosine schedule ends before the plateau rule can fire, see the "
                     "recipe comparison below). The atlas interpolation is left out here: it is built from the "
                     "converged models only.\n")
        lines.extend(_error_table(live, {k: v for k, v in preds.items() if not k.startswith("atlas")}))
    if conv:
        lines.append("\nConverged models, predicted vs measured:\n")
        lines.append("| n | recipe | r | p | seed | measured | L* | structure large n | structure finite n | "
                     "atlas LOO | LOO outlier |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for a in conv:
            x = loo[id(a)]
            lines.append(f"| {a.n} | {a.recipe} | {a.r:.3g} | {a.p:g} | {a.seed} | {_f(a.heldout_loss)} ± "
                         f"{_f(a.heldout_se, '.2g')} | {_f(a.lstar)} ({_pct(_rel(a.lstar, a.heldout_loss))}) | "
                         f"{_f(a.expected_large_n_loss)} ({_pct(_rel(a.expected_large_n_loss, a.heldout_loss))}) | "
                         f"{_f(a.expected_finite_n_loss)} ({_pct(_rel(a.expected_finite_n_loss, a.heldout_loss))}) | "
                         f"{_f(x.predicted)} ({_pct(x.rel_error)}) | {'yes' if x.outlier else 'no'} |")
    lines.extend(_recipe_comparison(rows))
    return "\n".join(lines) + "\n"


def _error_table(models, preds) -> list[str]:
    """Median and worst |relative error| of each predictor over ``models`` (measured = held-out loss)."""
    import numpy as np

    out = ["| predictor | models | median abs. rel. error | worst abs. rel. error | worst at (n, r, p, seed) |",
           "|---|---|---|---|---|"]
    for name, pred in preds.items():
        errs = [(abs(_rel(pred(a), a.heldout_loss)), a) for a in models]
        errs = [(e, a) for e, a in errs if math.isfinite(e)]
        if errs:
            e_w, w = max(errs, key=lambda t: t[0])
            out.append(f"| {name} | {len(errs)} | {100 * float(np.median([e for e, _ in errs])):.2f}% | "
                       f"{100 * e_w:.2f}% | ({w.n}, {w.r:.3g}, {w.p:g}, {w.seed}) |")
        else:
            out.append(f"| {name} | 0 | – | – | – |")
    return out


def _recipe_comparison(rows) -> list[str]:
    """Both recipes at the same (n, r, p, seed): issue 13 item 4 keeps the reference recipe on a subset.

    Ratio = fast held-out loss / reference held-out loss, for the pairs where both trained to a finite loss
    (any status: the statuses are shown, and the summary line counts the pairs where both converged).
    """
    import numpy as np

    key = lambda a: (a.n, round(a.r, 4), a.p, a.seed)  # noqa: E731 (r is m/n to 6 digits in the CSV)
    by = {}
    for a in rows:
        if a.trained and math.isfinite(a.heldout_loss) and a.heldout_loss > 0:
            by.setdefault(key(a), {})[a.recipe] = a
    pairs = [(k, d["fast"], d["reference"]) for k, d in sorted(by.items()) if {"fast", "reference"} <= d.keys()]
    if not pairs:
        return []
    ratios = np.array([f.heldout_loss / r.heldout_loss for _, f, r in pairs])
    both = [f.heldout_loss / r.heldout_loss for _, f, r in pairs if f.converged and r.converged]
    steps = np.array([r.steps_run / f.steps_run for _, f, r in pairs if f.steps_run > 0 and r.steps_run > 0])
    out = ["\n### Fast recipe against the reference recipe (same cell, same seed)\n",
           f"{len(pairs)} pairs trained with both recipes; fast/reference held-out loss: median "
           f"{np.median(ratios):.3f}, range {ratios.min():.3f}–{ratios.max():.3f}"
           + (f"; both converged at {len(both)} pairs, median {np.median(both):.3f}" if both else
              "; no pair where both converged")
           + (f". The reference recipe ran a median {np.median(steps):.1f}× more steps." if steps.size else ".")
           + " A ratio below 1 means the fast recipe reached a lower loss (docs/theory.md §9).\n",
           "| n | r | p | seed | fast: loss (status, steps) | reference: loss (status, steps) | fast / reference |",
           "|---|---|---|---|---|---|---|"]
    for (n, _, p, seed), f, r in pairs:
        out.append(f"| {n} | {f.r:.3g} | {p:g} | {seed} | "
                   f"{_f(f.heldout_loss)} ({f.status}, {_f(f.steps_run, '.0f')}) | "
                   f"{_f(r.heldout_loss)} ({r.status}, {_f(r.steps_run, '.0f')}) | "
                   f"{f.heldout_loss / r.heldout_loss:.3f} |")
    return out
