"""Finite-n scaling study: trained models and Persian rugs against L*, with exact finite-n theory (docs/theory.md §7).

For each (n, p, r): train a model with the reference recipe (:func:`rugtheory.validation.train.train_models`),
measure its held-out loss, and compare with three predictions from its own weights:
Gaussian (:func:`rugtheory.predicted_loss_from_weights`), Edgeworth
(:func:`rugtheory.theory.edgeworth.edgeworth_loss_from_weights`) and exact
(:func:`rugtheory.theory.finite_n.exact_loss_from_weights`). Also the best two-scalar Persian rug at that n
(``y = ReLU(alpha W x + beta)``, W = P/r from random Hadamard rows), whose exact loss is one row's
(all rows are permutations of each other, docs/theory.md §8), optimised over (alpha, beta) on the exact loss.

Run::

    python -m rugtheory.validation.finite_n_study train --out DIR --n 128 256 512 --p 0.045 --r 0.25
    python -m rugtheory.validation.finite_n_study analyze --out DIR      # table + fits + figure

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

from rugtheory.constructions.finite_n_predictions import best_rug  # one optimiser of the rug's scalars at finite n
from rugtheory.theory.edgeworth import edgeworth_loss_from_weights
from rugtheory.theory.finite_n import exact_loss_from_weights
from rugtheory.theory.optimum import optimal_symmetric_loss
from rugtheory.theory.weights import predicted_loss_from_weights

__all__ = [
    "StudyRow",
    "CurveFit",
    "extrapolate_curve",
    "format_curve_table",
    "model_tag",
    "train_and_store",
    "load_model",
    "analyze_model",
    "best_rug",
    "rug_scan",
    "format_rug_table",
    "fit_gap",
    "fit_rug_gap",
    "format_table",
    "weight_structure_stats",
    "weight_structure_figure",
    "training_curves_figure",
    "main",
]


def model_tag(n: int, m: int, p: float, seed: int) -> str:
    return f"n{n}_m{m}_p{p:g}_s{seed}"


def train_and_store(configs: list, out: Path, *, threads: int = 1) -> list[str]:
    """Train ``TrainConfig`` s not yet stored in ``out``; store W_in, W_out, b (safetensors) + metrics (JSON)."""
    import torch
    from safetensors.numpy import save_file

    from rugtheory.validation.train import train_models

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
                "train_seconds": float(model.train_seconds),
                "confirm_history": [[int(s), float(v)] for s, v in model.confirm_history]}
        (out / f"{tag}.json").write_text(json.dumps(meta, indent=1))
        print(
            f"stored {tag}: loss {model.heldout_loss:.4e} converged={model.converged} steps={model.steps_run}",
            flush=True,
        )

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
    first_order: float
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
    return StudyRow(
        kind=kind,
        n=n,
        m=m,
        p=p,
        r=m / n,
        measured=measured,
        measured_se=measured_se,
        gaussian=predicted_loss_from_weights(W, b, p),
        first_order=ed.first_order,
        edgeworth=ed.edgeworth,
        exact=ex.loss,
        exact_error=ex.error,
        l_star=float(optimal_symmetric_loss(p, m / n).loss),
        skewness=float(ed.cumulants.skewness.mean()),
        excess_kurtosis=float(ed.cumulants.excess_kurtosis.mean()),
        converged=converged,
        seconds_exact=sec,
    )


def _row_loss(w_row: np.ndarray, beta: float, p: float, *, tol: float = 1e-9) -> float:
    """Exact loss of output 0 for pre-activation weights ``w_row`` (w_row[0] the diagonal) and bias beta."""
    from rugtheory.theory.finite_n import exact_loss_of_row

    return exact_loss_of_row(w_row, 0, beta, p, tol=tol)[0]


def rug_scan(ns: list[int], ps: list[float], r: float, *, seed: int) -> list[dict[str, float]]:
    """Exact rug loss at the theory scalars and at re-optimised scalars, gap to L*, for each (n, p)."""
    from rugtheory.constructions.persian_rug import persian_rug, theory_scalars

    out = []
    for p in ps:
        l_star = float(optimal_symmetric_loss(p, r).loss)
        for n in ns:
            m = max(1, round(r * n))
            rug = persian_rug(n, m, seed=seed)
            sc = theory_scalars(rug, p)
            w = np.asarray(rug.row(0), dtype=np.float64)
            t0 = time.perf_counter()
            lt = _row_loss(sc.alpha * w, sc.beta, p)
            best, alpha, beta = best_rug(n, m, p, seed=seed)
            out.append({"n": n, "p": p, "r": m / n, "pn": p * n, "theory_scalars": lt, "best": best, "alpha": alpha,
                        "beta": beta, "l_star": l_star, "gap_theory": (lt - l_star) / l_star,
                        "gap_best": (best - l_star) / l_star, "seconds": time.perf_counter() - t0})
            print(f"rug n={n} p={p:g}: {lt:.6e} (theory scalars), {best:.6e} (best), L* {l_star:.6e}", flush=True)
    return out


def format_rug_table(rows: list[dict[str, float]]) -> str:
    head = (
        "| p | n | p·n | exact, theory scalars | gap | exact, best (α, β) | gap | α | β |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {r['p']:g} | {r['n']} | {r['pn']:.1f} | {r['theory_scalars']:.5e} | {100 * r['gap_theory']:+.2f}% | "
        f"{r['best']:.5e} | {100 * r['gap_best']:+.2f}% | {r['alpha']:.4f} | {r['beta']:.4f} |" for r in rows) + "\n"


def _loglog(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    A = np.vstack([np.ones_like(x), np.log(x)]).T
    coef, *_ = np.linalg.lstsq(A, np.log(y), rcond=None)
    resid = np.log(y) - A @ coef
    return float(math.exp(coef[0])), float(coef[1]), float(np.sqrt(np.mean(resid**2)))


def fit_gap(rows: list[StudyRow]) -> dict[str, float]:
    """Log-log fits of |gap| (gap = (measured − L*)/L*) against n for each p, and against p·n pooled.

    Keys ``exponent_n_p<p>`` (|gap| ∝ n^exponent at that p, >= 2 sizes), ``exponent_pn`` and
    ``prefactor_pn`` (pooled over all trained rows), and the rms residuals in log space.
    """
    tr = [r for r in rows if r.kind == "trained" and r.gap != 0]
    out: dict[str, float] = {}
    for p in sorted({r.p for r in tr}):
        sub = [r for r in tr if r.p == p]
        if len({r.n for r in sub}) >= 2:
            pre, k, res = _loglog(np.array([r.n for r in sub], float), np.abs([r.gap for r in sub]))
            out[f"exponent_n_p{p:g}"] = k
            out[f"rms_log_resid_n_p{p:g}"] = res
    if len(tr) >= 2:
        pre, k, res = _loglog(np.array([r.p * r.n for r in tr]), np.abs([r.gap for r in tr]))
        out.update(exponent_pn=k, prefactor_pn=pre, rms_log_resid_pn=res)
    return out


@dataclass(frozen=True)
class CurveFit:
    """Fit of a training curve ``V(t) = L_inf + A t^(-alpha)`` over its tail (see :func:`extrapolate_curve`)."""

    l_inf: float
    l_inf_se: float
    amplitude: float
    alpha: float
    t_min: int
    points: int
    rms_resid: float


def extrapolate_curve(history: list[tuple[int, float]], *, t_min: int = 2000) -> CurveFit:
    """Extrapolate a training curve to infinitely many steps: ``V(t) = L_inf + A t^(-alpha)``.

    Least squares over the checks with ``t >= t_min`` (``alpha`` in [0.05, 4], ``L_inf >= 0``).
    ``l_inf_se`` is the fit's standard error from the Jacobian: it shows how well the tail pins
    ``L_inf`` down, not how right the power law is. The confirmation set is fixed, so successive
    points share their sampling noise and the curve is smooth; add ``heldout − V(t_last)`` to move
    ``L_inf`` onto the held-out scale.

    Raises
    ------
    ValueError
        Fewer than 4 points with ``t >= t_min``, or non-finite values.
    """
    from scipy.optimize import least_squares

    pts = np.array([(t, v) for t, v in history if t >= t_min], dtype=np.float64).reshape(-1, 2)
    if len(pts) < 4:
        raise ValueError(f"history needs at least 4 checks at t >= t_min={t_min}, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("history must be finite")
    t, v = pts[:, 0], pts[:, 1]
    scale = float(v[-1])
    ts = t / t[-1]

    def resid(q: np.ndarray) -> np.ndarray:
        return (q[0] + q[1] * ts ** (-q[2]) - v / scale)

    x0 = np.array([0.9, 0.1, 1.0])
    fit = least_squares(resid, x0, bounds=([0.0, -np.inf, 0.05], [np.inf, np.inf, 4.0]))
    dof = max(1, len(v) - 3)
    s2 = float(fit.fun @ fit.fun) / dof
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * s2
        se = float(np.sqrt(max(cov[0, 0], 0.0))) * scale
    except np.linalg.LinAlgError:
        se = float("inf")
    return CurveFit(l_inf=float(fit.x[0]) * scale, l_inf_se=se, amplitude=float(fit.x[1] * scale * t[-1] ** fit.x[2]),
                    alpha=float(fit.x[2]), t_min=int(t_min), points=len(v), rms_resid=float(np.sqrt(s2)) * scale)


def fit_rug_gap(rug_rows: list[dict[str, float]], *, min_pn: float = 10.0) -> dict[str, float]:
    """Log-log fit of the rug gap (theory scalars) against p·n over rows with p·n >= min_pn and gap > 0."""
    sel = [r for r in rug_rows if r["pn"] >= min_pn and r["gap_theory"] > 0]
    if len(sel) < 2:
        return {}
    pre, k, res = _loglog(np.array([r["pn"] for r in sel]), np.array([r["gap_theory"] for r in sel]))
    return {"prefactor_pn": pre, "exponent_pn": k, "rms_log_resid": res, "points": float(len(sel))}


def format_table(rows: list[StudyRow]) -> str:
    head = ("| kind | n | p | r | measured ± SE | Gaussian | Edgeworth | exact ± err | L* | gap vs L* | "
            "κ3-only closes | Edgeworth closes | exact closes | skew | ex. kurt |\n|" + "---|" * 15 + "\n")
    lines = []
    for r in rows:
        lines.append(
            f"| {r.kind}{'' if r.converged else ' (not conv.)'} | {r.n} | {r.p:g} | {r.r:g} | {r.measured:.4e} ± "
            f"{r.measured_se:.1e} | "
            f"{r.gaussian:.4e} | {r.edgeworth:.4e} | {r.exact:.4e} ± {r.exact_error:.0e} | {r.l_star:.4e} | "
            f"{100 * r.gap:+.1f}% | "
            f"{100 * r.closed(r.first_order):.0f}% | {100 * r.closed(r.edgeworth):.0f}% | "
            f"{100 * r.closed(r.exact):.0f}% | {r.skewness:+.2f} | {r.excess_kurtosis:+.2f} |"
        )
    return head + "\n".join(lines) + "\n"


#: Step at which every model's training curve is compared (the largest models run 5000 steps).
EQUAL_STEPS = 5000


def format_curve_table(curves: list[tuple]) -> str:
    """Rows ``(n, p, steps, heldout, CurveFit, l_inf_heldout, l_star, loss_at_EQUAL_STEPS)`` as markdown.

    Losses from the confirmation curve are moved onto the held-out scale by the constant
    ``heldout − V(last step)`` (the confirmation set is fixed, so that offset is the same at every step).
    """
    head = (f"| n | p | steps | measured | gap vs L* | gap at step {EQUAL_STEPS} | extrapolated L∞ ± fit SE | α | "
            "gap of L∞ vs L* | rms resid |\n|---|---|---|---|---|---|---|---|---|---|\n")
    def extrapolated(f: CurveFit, li: float, ls: float) -> str:
        if f.alpha < MIN_ALPHA:  # a tail that flat does not pin L_inf down (fits then run to L_inf ~ 0)
            return f"not extrapolable (α = {f.alpha:.2f} < {MIN_ALPHA}) | {f.alpha:.2f} | — "
        return f"{li:.4e} ± {f.l_inf_se:.0e} | {f.alpha:.2f} | {100 * (li - ls) / ls:+.1f}%"

    return head + "\n".join(
        f"| {n} | {p:g} | {steps} | {h:.4e} | {100 * (h - ls) / ls:+.1f}% | {100 * (at - ls) / ls:+.1f}% | "
        f"{extrapolated(f, li, ls)} | {f.rms_resid:.0e} |"
        for n, p, steps, h, f, li, ls, at in curves) + "\n"


#: Below this power-law exponent the tail of a training curve is too flat to extrapolate.
MIN_ALPHA = 0.5


def training_curves_figure(curves: dict[int, tuple[list[tuple[int, float]], float]], path: Path, *, p: float, r: float,
                           reference: dict[str, float] | None = None) -> None:
    """Loss against optimiser step for each n (one model per n at one (p, r)), with horizontal lines.

    ``curves`` maps n to ``(confirm_history, shift)``; each curve is drawn on the held-out scale
    (``V(t) + shift``). ``reference`` maps labels (e.g. "L*") to losses drawn as horizontal lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cmap = plt.get_cmap("viridis")
    ns = sorted(curves)
    for k, n in enumerate(ns):
        hist, shift = curves[n]
        t = np.array([s for s, _ in hist], dtype=float)
        v = np.array([x for _, x in hist], dtype=float) + shift
        ax.plot(t, v, "-", color=cmap(k / max(1, len(ns) - 1)), lw=1.4, label=f"n = {n}")
    for (label, val), style in zip((reference or {}).items(), ("k--", "k:", "k-.")):
        ax.axhline(val, color="k", ls=style[1:], lw=1, label=f"{label} = {val:.3e}")
    ax.set_xlabel("optimiser step (batch 1024, Adam lr 3e-3/√n)")
    ax.set_ylabel("loss (confirmation curve on the held-out scale)")
    ax.set_title(f"trained models, p = {p:g}, r = {r:g}")
    lo = min(min(x for _, x in h) + s for h, s in curves.values())
    ax.set_ylim(0.95 * min([lo] + list((reference or {}).values())), 1.6 * lo)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def weight_structure_stats(W: np.ndarray) -> dict[str, float]:
    """How concentrated each row's interference weights are (the off-diagonal W_ij of each row i).

    ``sd``: standard deviation of all off-diagonal entries; ``big_neg_per_row``: entries below
    −4 sd per row; ``share_of_sigma2_negative``: fraction of Σ_j W_ij² (the interference variance)
    carried by negative entries; ``k_half``: mean number of a row's largest |W_ij| that carry half of
    its Σ_j W_ij² (n/2 for a flat row; bounded if a few partners dominate, which keeps ν_i
    non-Gaussian at any n); ``min_entry_mean`` / ``max_entry_mean``: mean over rows of the most
    negative / most positive entry.
    """
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[0]
    off = W[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    sd = off.std()
    sq = off**2
    tot = sq.sum(axis=1, keepdims=True)
    srt = -np.sort(-sq, axis=1)
    k_half = (np.cumsum(srt, axis=1) < 0.5 * tot).sum(axis=1) + 1
    return {"sd": float(sd), "big_neg_per_row": float((off < -4 * sd).sum(axis=1).mean()),
            "share_of_sigma2_negative": float((sq * (off < 0)).sum() / sq.sum()),
            "k_half": float(k_half.mean()), "min_entry_mean": float(off.min(axis=1).mean()),
            "max_entry_mean": float(off.max(axis=1).mean())}


def weight_structure_figure(W: np.ndarray, path: Path, *, title: str, reference_row: np.ndarray | None = None,
                            reference_label: str = "Persian rug row") -> dict[str, float]:
    """Histogram of off-diagonal entries and sorted entries of a few rows; returns summary numbers.

    Summary: ``sd`` of off-diagonal entries; ``share_of_sigma2_negative``: fraction of
    :math:`\\sum_j W_{ij}^2` (the interference variance) carried by negative entries;
    ``k_half``: mean number of entries per row (largest |W_ij| first) that carry half of it;
    ``big_neg_per_row``: entries below −4 sd; ``min_entry_mean``: mean of each row's most negative entry.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = W.shape[0]
    off = W[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    info = weight_structure_stats(W)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].hist(off.ravel(), bins=200, log=True, color="tab:blue")
    ax[0].set_xlabel("off-diagonal W_ij")
    ax[0].set_ylabel("count (log)")
    ax[0].set_title(title)
    for i in range(min(5, n)):
        ax[1].plot(np.sort(off[i]), ".", ms=2, label="trained rows" if i == 0 else None)
    if reference_row is not None:
        ref = np.sort(np.asarray(reference_row, dtype=np.float64))
        ax[1].plot(np.linspace(0, n - 2, ref.size), ref, "k-", lw=1, label=reference_label)
        ref_sq = ref**2
        info["reference_k_half"] = float((np.cumsum(np.sort(ref_sq)[::-1]) < 0.5 * ref_sq.sum()).sum() + 1)
        info["reference_share_negative"] = float((ref_sq * (ref < 0)).sum() / ref_sq.sum())
    ax[1].set_xlabel("rank within row")
    ax[1].set_ylabel("sorted off-diagonal W_ij")
    ax[1].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return info


def _curve_figures(out: Path) -> None:
    """One training-curve figure per (p, r) in ``out``: ``curves_p<p>_r<r>.png``."""
    from rugtheory.constructions.phase_map import expected_structure

    groups: dict[tuple[float, float], dict[int, tuple[list[tuple[int, float]], float]]] = {}
    for js in sorted(out.glob("n*_m*_p*_s*.json")):
        meta = json.loads(js.read_text())
        hist = meta.get("confirm_history")
        if not hist:
            continue
        c = meta["config"]
        key = (c["p"], round(c["m"] / c["n"], 6))
        groups.setdefault(key, {})[c["n"]] = ([(int(t), float(v)) for t, v in hist], meta["heldout_loss"] - hist[-1][1])
    for (p, r), curves in groups.items():
        ref = {"L*": float(optimal_symmetric_loss(p, r).loss)}
        es = expected_structure(p, r)
        if es.loss < ref["L*"]:
            ref[f"{es.winner} (large n)"] = float(es.loss)
        path = out / f"curves_p{p:g}_r{r:g}.png"
        training_curves_figure(curves, path, p=p, r=r, reference=ref)
        print(f"training curves: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rugtheory.validation.finite_n_study")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--n", type=int, nargs="+", required=True)
    tr.add_argument("--p", type=float, nargs="+", default=[0.045])
    tr.add_argument("--r", type=float, nargs="+", default=[0.25])
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--steps", type=int, default=10_000)
    tr.add_argument("--threads", type=int, default=1)
    rg = sub.add_parser("rugs", help="exact loss of Persian rugs (theory scalars and re-optimised scalars) vs n")
    rg.add_argument("--n", type=int, nargs="+", default=[2**k for k in range(7, 16)])
    rg.add_argument("--p", type=float, nargs="+", default=[0.02, 0.045, 0.1])
    rg.add_argument("--r", type=float, default=0.25)
    rg.add_argument("--seed", type=int, default=0)
    rg.add_argument("--out", type=Path, default=None, help="also write rugs.json here")
    an = sub.add_parser("analyze")
    an.add_argument("--out", type=Path, required=True)
    an.add_argument("--rug-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "train":
        from rugtheory.validation.train import TrainConfig

        configs = [TrainConfig(n=n, m=max(1, round(r * n)), p=p, seed=args.seed, steps=args.steps)
                   for n in args.n for p in args.p for r in args.r]
        train_and_store(configs, args.out, threads=args.threads)
        return 0
    if args.cmd == "rugs":
        rug_rows = rug_scan(args.n, args.p, args.r, seed=args.seed)
        print(format_rug_table(rug_rows))
        print(json.dumps(fit_rug_gap(rug_rows), indent=1))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "rugs.json").write_text(json.dumps(rug_rows, indent=1))
        return 0
    rows = []
    structure = []
    for js in sorted(j for j in args.out.glob("n*_m*_p*_s*.json")):
        W_in, W_out, b, meta = load_model(args.out, js.stem)
        cfg = meta["config"]
        W = W_out @ W_in
        rows.append(analyze_model(W, b, cfg["p"], measured=meta["heldout_loss"], measured_se=meta["heldout_se"],
                                  m=cfg["m"], converged=meta["converged"]))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        structure.append((cfg["n"], cfg["p"], rows[-1].skewness, rows[-1].excess_kurtosis, weight_structure_stats(W)))
        del W_in, W_out, W
    rows.sort(key=lambda r: (r.p, r.r, r.n))
    print(format_table(rows))
    curves = []
    for js in sorted(args.out.glob("n*_m*_p*_s*.json")):
        meta = json.loads(js.read_text())
        hist = meta.get("confirm_history")
        if hist and len([t for t, _ in hist if t >= 2000]) >= 4:
            c = meta["config"]
            fit = extrapolate_curve([(int(t), float(v)) for t, v in hist])
            shift = meta["heldout_loss"] - hist[-1][1]  # confirmation set -> held-out scale
            l_star = float(optimal_symmetric_loss(c["p"], c["m"] / c["n"]).loss)
            at = dict((int(t), float(v)) for t, v in hist).get(EQUAL_STEPS, float("nan")) + shift
            curves.append((c["n"], c["p"], meta["steps_run"], meta["heldout_loss"], fit, fit.l_inf + shift, l_star, at))
    if curves:
        print(format_curve_table(sorted(curves, key=lambda x: (x[1], x[0]))))
        _curve_figures(args.out)
    print(
        "| n | p | skewness | excess kurtosis | k_half (of n−1) | entries < −4 sd per row | share of Σ W² negative |\n"
        "|---|---|---|---|---|---|---|"
    )
    for n, p, sk, ku, s in sorted(structure, key=lambda x: (x[1], x[0])):
        print(f"| {n} | {p:g} | {sk:+.2f} | {ku:+.2f} | {s['k_half']:.1f} | {s['big_neg_per_row']:.1f} | "
              f"{100 * s['share_of_sigma2_negative']:.0f}% |")
    print(json.dumps(fit_gap(rows), indent=1))
    if (args.out / "rugs.json").exists():
        print("rug fit (p·n >= 10):", json.dumps(fit_rug_gap(json.loads((args.out / "rugs.json").read_text()))))
    tr = [r for r in rows if r.kind == "trained"]
    if tr:
        from rugtheory.constructions.persian_rug import persian_rug, theory_scalars

        big = max(tr, key=lambda r: (r.n, r.p == 0.045))
        W_in, W_out, _, _ = load_model(args.out, model_tag(big.n, big.m, big.p, 0))
        rug = persian_rug(big.n, big.m, seed=args.rug_seed)
        ref = theory_scalars(rug, big.p).alpha * np.asarray(rug.row(0), dtype=np.float64)[1:]
        info = weight_structure_figure(
            W_out @ W_in,
            args.out / "weights.png",
            title=f"trained n={big.n}, p={big.p:g}, r={big.r:g}",
            reference_row=ref,
        )
        print("weight structure:", json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
