"""Finite-n scaling study: trained models and Persian rugs against L*, with exact finite-n theory (THEORY §7).

For each (n, p, r): train a model with the reference recipe (:func:`validation.train.train_models`),
measure its held-out loss, and compare with three predictions from its own weights:
Gaussian (:func:`rugtheory.predicted_loss_from_weights`), Edgeworth
(:func:`rugtheory.edgeworth.edgeworth_loss_from_weights`) and exact
(:func:`rugtheory.finite_n.exact_loss_from_weights`). Also the best two-scalar Persian rug at that n
(``y = ReLU(alpha W x + beta)``, W = P/r from random Hadamard rows), whose exact loss is one row's
(all rows are permutations of each other, THEORY §8), optimised over (alpha, beta) on the exact loss.

Run::

    python -m validation.finite_n_study train --out DIR --n 128 256 512 --p 0.045 --r 0.25
    python -m validation.finite_n_study analyze --out DIR      # table + fits + figure

Trained weights are stored as safetensors + JSON under DIR (never pickles); ``train`` skips models
already stored, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rugtheory.edgeworth import edgeworth_loss_from_weights
from rugtheory.finite_n import exact_loss_from_weights
from rugtheory.optimum import optimal_symmetric_loss
from rugtheory.weights import predicted_loss_from_weights

__all__ = ["StudyRow", "model_tag", "train_and_store", "load_model", "analyze_model", "best_rug", "fit_gap", "main"]


def model_tag(n: int, m: int, p: float, seed: int) -> str:
    return f"n{n}_m{m}_p{p:g}_s{seed}"


def train_and_store(configs: list, out: Path, *, threads: int = 1) -> list[str]:
    """Train ``TrainConfig`` s not yet stored in ``out``; store W_in, W_out, b (safetensors) + metrics (JSON)."""
    import torch
    from safetensors.numpy import save_file

    from validation.train import train_models

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in configs if not (out / f"{model_tag(c.n, c.m, c.p, c.seed)}.json").exists()]

    def store(_: int, model) -> None:
        tag = model_tag(model.config.n, model.config.m, model.config.p, model.config.seed)
        save_file({"W_in": np.ascontiguousarray(model.W_in, dtype=np.float64),
                   "W_out": np.ascontiguousarray(model.W_out, dtype=np.float64),
                   "b": np.ascontiguousarray(model.b, dtype=np.float64)}, str(out / f"{tag}.safetensors"))
        meta = {"config": model.config.to_dict(), "heldout_loss": model.heldout_loss, "heldout_se": model.heldout_se,
                "converged": bool(model.converged), "steps_run": int(model.steps_run), "status": model.status,
                "train_seconds": float(model.train_seconds)}
        (out / f"{tag}.json").write_text(json.dumps(meta, indent=1))
        print(f"stored {tag}: loss {model.heldout_loss:.4e} converged={model.converged} steps={model.steps_run}", flush=True)

    for n in sorted({c.n for c in todo}):  # one batched program per n
        group = [c for c in todo if c.n == n]
        train_models(group, on_result=lambda i, model: store(i, model))
    return [model_tag(c.n, c.m, c.p, c.seed) for c in configs]


def load_model(out: Path, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    from safetensors.numpy import load_file

    t = load_file(str(out / f"{tag}.safetensors"))
    meta = json.loads((out / f"{tag}.json").read_text())
    return t["W_in"], t["W_out"], t["b"], meta


@dataclass(frozen=True)
class StudyRow:
    """One model: measured loss and the three predictions from its weights, plus L* and the rug."""

    kind: str  # "trained" or "rug"
    n: int
    m: int
    p: float
    r: float
    measured: float
    measured_se: float
    gaussian: float
    edgeworth: float
    exact: float
    exact_error: float
    l_star: float
    skewness: float
    excess_kurtosis: float
    converged: bool
    seconds_exact: float

    @property
    def gap(self) -> float:
        """(measured − L*)/L*: negative when the finite-n model beats the large-N optimum."""
        return (self.measured - self.l_star) / self.l_star

    def closed(self, prediction: float) -> float:
        """Fraction of the Gaussian prediction's error (vs measured) removed by ``prediction``."""
        g = self.gaussian - self.measured
        return float("nan") if g == 0 else 1.0 - (prediction - self.measured) / g


def analyze_model(W: np.ndarray, b: np.ndarray, p: float, *, measured: float, measured_se: float, m: int,
                  kind: str = "trained", converged: bool = True, tol: float = 1e-8) -> StudyRow:
    n = W.shape[0]
    t = time.perf_counter()
    ex = exact_loss_from_weights(W, b, p, tol=tol)
    sec = time.perf_counter() - t
    ed = edgeworth_loss_from_weights(W, b, p)
    return StudyRow(kind=kind, n=n, m=m, p=p, r=m / n, measured=measured, measured_se=measured_se,
                    gaussian=predicted_loss_from_weights(W, b, p), edgeworth=ed.edgeworth, exact=ex.loss,
                    exact_error=ex.error, l_star=float(optimal_symmetric_loss(p, m / n).loss),
                    skewness=float(ed.cumulants.skewness.mean()), excess_kurtosis=float(ed.cumulants.excess_kurtosis.mean()),
                    converged=converged, seconds_exact=sec)


def best_rug(n: int, m: int, p: float, *, seed: int) -> tuple[float, float, float]:
    """Best ``y = ReLU(alpha (P/r) x + beta)`` Persian rug at this n on the exact loss: (loss, alpha, beta).

    All rows of a Hadamard rug are permutations of each other, so the exact loss is one row's.
    Optimised by Nelder–Mead from the large-N optimum (a*, b*).
    """
    from scipy.optimize import minimize

    from rugtheory.persian_rug import persian_rug

    rug = persian_rug(n, m, seed=seed)
    w_row = np.asarray(rug.row(0), dtype=np.float64)  # W = P/r, W_00 = 1 at position 0
    opt = optimal_symmetric_loss(p, m / n)

    def loss(theta: np.ndarray) -> float:
        alpha, beta = theta
        return _row_loss(alpha * w_row, beta, p)

    res = minimize(loss, x0=np.array([float(opt.a), float(opt.b)]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 400})
    return float(res.fun), float(res.x[0]), float(res.x[1])


def _row_loss(w_row: np.ndarray, beta: float, p: float) -> float:
    """Exact loss of output 0 for pre-activation weights ``w_row`` (w_row[0] the diagonal) and bias beta."""
    from rugtheory.finite_n import _invert_block

    a = np.array([w_row[0]])
    off = w_row[None, 1:]
    c = np.array([beta + 0.5 * p * off.sum()])
    val, _, _ = _invert_block(off, a, c, p, 1e-10, off.shape[1] <= 48, 1 << 15)
    return float(val[0])


def fit_gap(rows: list[StudyRow]) -> dict[str, float]:
    """Least-squares fits of |gap| = A n^-k and of |gap| = B (p n)^-j over the trained rows (log-log)."""
    tr = [r for r in rows if r.kind == "trained" and r.gap != 0]
    if len(tr) < 2:
        return {}
    g = np.log(np.abs([r.gap for r in tr]))
    out = {}
    for name, x in (("n", np.log([r.n for r in tr])), ("pn", np.log([r.p * r.n for r in tr]))):
        A = np.vstack([np.ones_like(x), x]).T
        coef, *_ = np.linalg.lstsq(A, g, rcond=None)
        resid = g - A @ coef
        out[f"exponent_{name}"] = float(-coef[1])
        out[f"prefactor_{name}"] = float(math.exp(coef[0]))
        out[f"rms_log_resid_{name}"] = float(np.sqrt(np.mean(resid**2)))
    return out


def format_table(rows: list[StudyRow]) -> str:
    head = ("| kind | n | p | r | measured ± SE | Gaussian | Edgeworth | exact ± err | L* | gap vs L* | "
            "Edgeworth closes | exact closes | skew | ex. kurt |\n|" + "---|" * 14 + "\n")
    lines = []
    for r in rows:
        lines.append(
            f"| {r.kind}{'' if r.converged else ' (not conv.)'} | {r.n} | {r.p:g} | {r.r:g} | {r.measured:.4e} ± {r.measured_se:.1e} | "
            f"{r.gaussian:.4e} | {r.edgeworth:.4e} | {r.exact:.4e} ± {r.exact_error:.0e} | {r.l_star:.4e} | {100 * r.gap:+.1f}% | "
            f"{100 * r.closed(r.edgeworth):.0f}% | {100 * r.closed(r.exact):.0f}% | {r.skewness:+.2f} | {r.excess_kurtosis:+.2f} |"
        )
    return head + "\n".join(lines) + "\n"


def weight_structure_figure(W: np.ndarray, path: Path, *, title: str) -> dict[str, float]:
    """Histogram of off-diagonal entries and the sorted entries of a few rows; returns summary numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = W.shape[0]
    off = W[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    sd = off.std()
    big_neg = (off < -4 * sd).sum(axis=1)
    big_pos = (off > 4 * sd).sum(axis=1)
    share_neg = float(((off < -4 * sd) * off**2).sum() / (off**2).sum())
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].hist(off.ravel(), bins=200, log=True, color="tab:blue")
    ax[0].set_xlabel("off-diagonal W_ij")
    ax[0].set_ylabel("count (log)")
    ax[0].set_title(title)
    for i in range(min(5, n)):
        ax[1].plot(np.sort(off[i]), ".", ms=2)
    ax[1].set_xlabel("rank within row")
    ax[1].set_ylabel("sorted W_ij (5 rows)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"sd": float(sd), "big_neg_per_row": float(big_neg.mean()), "big_pos_per_row": float(big_pos.mean()),
            "share_of_sigma2_in_big_neg": share_neg, "min_entry_mean": float(off.min(axis=1).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.finite_n_study")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--n", type=int, nargs="+", required=True)
    tr.add_argument("--p", type=float, nargs="+", default=[0.045])
    tr.add_argument("--r", type=float, nargs="+", default=[0.25])
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--steps", type=int, default=10_000)
    tr.add_argument("--threads", type=int, default=1)
    an = sub.add_parser("analyze")
    an.add_argument("--out", type=Path, required=True)
    an.add_argument("--rug-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "train":
        from validation.train import TrainConfig

        configs = [TrainConfig(n=n, m=max(1, round(r * n)), p=p, seed=args.seed, steps=args.steps)
                   for n in args.n for p in args.p for r in args.r]
        train_and_store(configs, args.out, threads=args.threads)
        return 0
    rows = []
    for js in sorted(args.out.glob("*.json")):
        W_in, W_out, b, meta = load_model(args.out, js.stem)
        cfg = meta["config"]
        rows.append(analyze_model(W_out @ W_in, b, cfg["p"], measured=meta["heldout_loss"], measured_se=meta["heldout_se"],
                                  m=cfg["m"], converged=meta["converged"]))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    rows.sort(key=lambda r: (r.p, r.r, r.n))
    print(format_table(rows))
    print(json.dumps(fit_gap(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
