"""Trained models against the phase map: which structure does training pick? (docs/theory.md §10, issue 7)

For each (r, p) of a small grid this trains toy models (``rugtheory.validation.train.train_models``), then
reads the structure off the weights (:func:`rugtheory.constructions.weight_geometry.structure_measures`:
feature dimensionality D_i of W = W_out W_in, negative-partner clusters) and sets it beside the
phase map's prediction (:func:`rugtheory.constructions.phase_map.expected_structure`): winner, composition, loss,
and the symmetric optimum L*. A trained loss is counted only if the training run met the
harness's convergence rule (plateau of the training loss confirmed on held-out data); unconverged
models are reported, flagged, and kept out of the comparison.

Run: ``python -m rugtheory.validation.structure_study --out DIR [--n 256] [--steps 20000] [--lr 1e-3]``.
Writes ``DIR/structure_study.json`` (results), ``DIR/structure_study.md`` (table) and the weights as
``DIR/model_<i>.safetensors`` (+ the JSON config inside the results file).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StudyPoint", "DEFAULT_GRID", "study_configs", "analyse_model", "run_study", "reanalyse", "markdown_table",
           "main"]

#: (p, r) points chosen so that the phase map predicts different winners (see the report).
DEFAULT_GRID: tuple[tuple[float, float], ...] = (
    (0.02, 0.25), (0.02, 0.5), (0.02, 0.75),
    (0.1, 0.25), (0.1, 0.5), (0.1, 0.75),
)


@dataclass(frozen=True)
class StudyPoint:
    p: float
    r: float
    n: int


def study_configs(grid: tuple[tuple[float, float], ...] = DEFAULT_GRID, *, n: int = 256, steps: int = 20_000,
                  lr: float | None = 1e-3, batch: int = 512, seed: int = 0) -> list[Any]:
    """TrainConfigs for the grid (``m = round(r n)``); ``lr=None`` is the reference 3e-3/sqrt(n)."""
    from rugtheory.validation.train import TrainConfig

    return [
        TrainConfig(n=n, m=max(1, round(r * n)), p=p, seed=seed, steps=steps, lr=lr, batch=batch,
                    eval_samples=100_000)
        for p, r in grid
    ]


def analyse_model(model: Any) -> dict[str, Any]:
    """Structure measures, prediction and loss comparison for one trained model."""
    from rugtheory.constructions.phase_map import expected_structure
    from rugtheory.constructions.weight_geometry import structure_measures

    cfg = model.config
    r = cfg.m / cfg.n
    meas = structure_measures(model.W_in, model.W_out)
    full = np.isfinite(meas.partner_strengths).all(axis=1)  # learned features with >= 3 learned partners
    exp = expected_structure(cfg.p, r)
    hist = np.asarray(model.history, dtype=float)
    w = model.W_out @ model.W_in
    diag = np.diag(w)
    return {
        "n": cfg.n, "m": cfg.m, "p": cfg.p, "r": r, "lr": cfg.learning_rate, "batch": cfg.batch, "seed": cfg.seed,
        "steps_run": model.steps_run, "converged": bool(model.converged), "converged_step": model.converged_step,
        "status": model.status, "train_seconds": model.train_seconds,
        "heldout_loss": model.heldout_loss, "heldout_se": model.heldout_se,
        "loss_history_tail": hist[-5:].tolist() if hist.size else [],
        "predicted_winner": exp.winner,
        "predicted_components": [(c.name, c.ratio, c.fraction) for c in exp.components],
        "predicted_loss": exp.loss, "symmetric_loss": exp.symmetric_loss,
        "trained_over_predicted": model.heldout_loss / exp.loss,
        "trained_over_symmetric": model.heldout_loss / exp.symmetric_loss,
        "fractions": meas.fractions,
        "cluster_histogram": meas.cluster_histogram(),
        "mean_d_row": float(np.mean(meas.d_row)), "sum_d_row_over_m": meas.sum_d_row / cfg.m,
        "d_row_quantiles": np.quantile(meas.d_row, [0.1, 0.5, 0.9]).tolist(),
        "mean_d_col": float(np.mean(meas.d_col)),
        "strongest_partner_median": (float(np.median(meas.strongest_partner[np.isfinite(meas.strongest_partner)]))
                                     if np.isfinite(meas.strongest_partner).any() else None),
        "partner_strength_medians": (np.median(meas.partner_strengths[full], axis=0).tolist() if full.any() else None),
        "diag_mean": float(diag.mean()), "diag_std": float(diag.std()),
    }


def run_study(out: str | Path, configs: list[Any], *, save_weights: bool = True) -> list[dict[str, Any]]:
    """Train ``configs`` as one batch, analyse each model, write JSON/Markdown (and weights) to ``out``."""
    import torch

    from rugtheory.validation.train import train_models

    torch.set_num_threads(1)  # the machine is shared; one batched program per core
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models = train_models(configs)
    rows = []
    for i, model in enumerate(models):
        row = analyse_model(model)
        row["config"] = model.config.to_dict()
        rows.append(row)
        if save_weights:
            from safetensors.numpy import save_file

            save_file({"W_in": np.ascontiguousarray(model.W_in, dtype=np.float32),
                       "W_out": np.ascontiguousarray(model.W_out, dtype=np.float32),
                       "b": np.ascontiguousarray(model.b, dtype=np.float32)}, str(out / f"model_{i}.safetensors"))
    meta = {"wall_seconds": time.perf_counter() - t0, "models": rows}
    (out / "structure_study.json").write_text(json.dumps(meta, indent=1, default=float))
    (out / "structure_study.md").write_text(markdown_table(rows))
    return rows


def reanalyse(out: str | Path) -> list[dict[str, Any]]:
    """Re-read a study's saved weights and results and analyse them again (no training).

    Use after the measures or the phase map change; rewrites ``structure_study.json``/``.md``.
    """
    from types import SimpleNamespace

    from safetensors.numpy import load_file

    from rugtheory.validation.train import TrainConfig

    out = Path(out)
    meta = json.loads((out / "structure_study.json").read_text())
    rows = []
    for i, old in enumerate(meta["models"]):
        w = load_file(str(out / f"model_{i}.safetensors"))
        model = SimpleNamespace(
            config=TrainConfig.from_dict(old["config"]), W_in=w["W_in"].astype(np.float64),
            W_out=w["W_out"].astype(np.float64), b=w["b"].astype(np.float64), heldout_loss=old["heldout_loss"],
            heldout_se=old["heldout_se"], converged=old["converged"], converged_step=old["converged_step"],
            steps_run=old["steps_run"], status=old["status"], train_seconds=old["train_seconds"],
            history=[tuple(h) for h in old["loss_history_tail"]],
        )
        row = analyse_model(model)
        row["config"] = old["config"]
        row["loss_history_tail"] = old["loss_history_tail"]
        rows.append(row)
    meta["models"] = rows
    (out / "structure_study.json").write_text(json.dumps(meta, indent=1, default=float))
    (out / "structure_study.md").write_text(markdown_table(rows))
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per model: prediction, measured structure, losses, convergence."""
    lines = [
        "| n | p | r | predicted winner | measured: unlearned / dedicated / pairs / clusters / diffuse | mean D_row | "
        "top-3 partner κ (medians) | trained loss ± SE | converged (step) | predicted | L* | trained/predicted | "
        "trained/L* |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        f = x["fractions"]
        meas = " / ".join(f"{f[k]:.2f}" for k in ("unlearned", "dedicated", "pairs", "other clusters", "diffuse"))
        conv = f"yes ({x['converged_step']})" if x["converged"] else f"NO ({x['steps_run']} steps)"
        ratio = f"{x['trained_over_predicted']:.3f}" if x["converged"] else "(not counted)"
        ratio_sym = f"{x['trained_over_symmetric']:.3f}" if x["converged"] else "(not counted)"
        kap = x.get("partner_strength_medians")
        kap_s = " / ".join(f"{k:.2f}" for k in kap) if kap else "-"
        lines.append(
            f"| {x['n']} | {x['p']:g} | {x['r']:.3g} | {x['predicted_winner']} | {meas} | {x['mean_d_row']:.3f} | "
            f"{kap_s} | {x['heldout_loss']:.4e} ± {x['heldout_se']:.1e} | {conv} | {x['predicted_loss']:.4e} | "
            f"{x['symmetric_loss']:.4e} | {ratio} | {ratio_sym} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate; 0 means the reference 3e-3/sqrt(n)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfgs = study_configs(n=args.n, steps=args.steps, lr=None if args.lr == 0 else args.lr, batch=args.batch,
                         seed=args.seed)
    rows = run_study(args.out, cfgs)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
