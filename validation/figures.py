"""Figures and tables of a validation sweep (the paper's loss plots, symmetry heatmaps, a table).

Everything here reads the flat rows of :meth:`rugtheory.validation.store.ResultStore.rows` and writes PNG
files (matplotlib, Agg backend) plus Markdown. :func:`write_section` is the body shared by
``rugtheory validate`` and the main report's CPU-sized section; :func:`write_sweep_report` writes
the report of one sweep, ``validation-NAME.md`` with figures ``validation-NAME_*.png``, covering
exactly the runs of that sweep's spec (so sweeps sharing a store never overwrite or count each
other's runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "loss_vs_r_figure",
    "loss_vs_p_figure",
    "heatmap_figure",
    "predicted_vs_measured_figure",
    "predicted_vs_measured_table",
    "summary_table",
    "write_section",
    "write_sweep_report",
    "report_path",
    "HEATMAP_KEYS",
]

#: Heatmap quantities: row key -> title (``sym_*``: rugtheory.theory.weights.WeightStatistics.summary()).
HEATMAP_KEYS: dict[str, str] = {
    "rel_err_predicted": "(from weights − measured) / measured",
    "rel_err_exact_finite_n": "(exact finite-n − measured) / measured",
    "rel_err_lstar": "(L* − measured) / measured",
    "rel_err_rug": "(rug − measured) / measured",
    "diag_mean": "mean of diag(W) = mean a_i",
    "sym_spread_a": "spread of diag(W) (std over rows)",
    "sym_spread_effective_bias": "spread of b_i + μ_i",
    "sym_spread_sigma_squared": "spread of σ_i²",
    "sym_spread_sampled_nu_mean": "spread of sampled mean of ν_i",
    "sym_ks_pvalue_median": "median KS p-value of ν_i vs normal",
    "sym_lyapunov_ratio_mean": "mean Lyapunov ratio",
    "sym_excess_kurtosis_mean": "mean excess kurtosis of ν_i",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _ok(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "ok" and math.isfinite(r.get("heldout_loss", math.nan))]


def _mean_over_seeds(rows: Sequence[dict[str, Any]], key: str) -> dict[tuple[int, float, float], tuple[float, float]]:
    """(n, r, p) -> (mean over seeds, SE: the per-seed spread, or the single run's own SE)."""
    groups: dict[tuple[int, float, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["r"], r["p"]), []).append(r)
    out = {}
    se_key = {"heldout_loss": "heldout_se", "rug_loss": "rug_se"}.get(key)
    for k, g in groups.items():
        vals = np.array([x.get(key, math.nan) for x in g], dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        if vals.size > 1:
            se = float(vals.std(ddof=1) / math.sqrt(vals.size))
        else:
            se = float(g[0].get(se_key, 0.0)) if se_key else 0.0
        out[k] = (float(vals.mean()), se)
    return out


def _theory_curve(p: float | np.ndarray, r: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from rugtheory.theory.optimum import optimal_symmetric_loss

    opt = optimal_symmetric_loss(p, r)
    return np.asarray(opt.loss, dtype=float), np.asarray(opt.linear_loss, dtype=float)


def _pick(values: Sequence[float], k: int) -> list[float]:
    vals = sorted(set(values))
    if len(vals) <= k:
        return vals
    idx = np.unique(np.round(np.linspace(0, len(vals) - 1, k)).astype(int))
    return [vals[i] for i in idx]


def _loss_panels(rows, out: Path, vary: str, fixed: str, name: str, max_panels: int = 4) -> Path:
    plt = _plt()
    ok = _ok(rows)
    fixed_vals = _pick([r[fixed] for r in ok], max_panels)
    ns = sorted({r["n"] for r in ok})
    measured = _mean_over_seeds(ok, "heldout_loss")
    rug = _mean_over_seeds(ok, "rug_loss")
    fig, axes = plt.subplots(1, max(1, len(fixed_vals)), figsize=(4.2 * max(1, len(fixed_vals)), 3.6), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(1, len(ns))))
    for ax, fv in zip(axes[0], fixed_vals):
        lo = min(r[vary] for r in ok)
        hi = max(r[vary] for r in ok)
        grid = np.geomspace(lo, hi, 80) if vary == "p" else np.linspace(lo, hi, 80)
        lstar, lin = _theory_curve(grid if vary == "p" else fv, fv if vary == "p" else grid)
        ax.plot(grid, lstar, "k-", lw=1.5, label="L* (symmetric theory)")
        ax.plot(grid, lin, "k--", lw=1, label="linear (1 − r) v")
        for color, n in zip(colors, ns):
            pts = sorted((k[1] if vary == "r" else k[2], v) for k, v in measured.items()
                         if k[0] == n and math.isclose(k[2] if vary == "r" else k[1], fv))
            if pts:
                xs, ms = zip(*pts)
                ax.errorbar(xs, [m[0] for m in ms], yerr=[m[1] for m in ms], fmt="o", ms=4, color=color,
                            label=f"trained n={n}")
            rpts = sorted((k[1] if vary == "r" else k[2], v) for k, v in rug.items()
                          if k[0] == n and math.isclose(k[2] if vary == "r" else k[1], fv))
            if rpts:
                xs, ms = zip(*rpts)
                ax.plot(xs, [m[0] for m in ms], "x", ms=6, color=color, label=f"rug n={n}")
        ax.set_yscale("log")
        if vary == "p":
            ax.set_xscale("log")
        ax.set_xlabel(vary)
        ax.set_ylabel("loss per feature")
        ax.set_title(f"{fixed} = {fv:.3g}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_vs_r_figure(
    rows: Sequence[dict[str, Any]], out_dir: str | Path, name: str = "validation_loss_vs_r.png"
) -> Path:
    """Loss vs r, one panel per p: trained models of each n (mean ± SE), rug, L*, linear baseline."""
    return _loss_panels(rows, Path(out_dir), "r", "p", name)


def loss_vs_p_figure(
    rows: Sequence[dict[str, Any]], out_dir: str | Path, name: str = "validation_loss_vs_p.png"
) -> Path:
    """Loss vs p, one panel per r (same curves as :func:`loss_vs_r_figure`)."""
    return _loss_panels(rows, Path(out_dir), "p", "r", name)


def heatmap_keys(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The heatmap quantities present in ``rows`` (finite somewhere)."""
    keys = dict(HEATMAP_KEYS)
    return {k: t for k, t in keys.items() if any(math.isfinite(float(r.get(k, math.nan))) for r in _ok(rows))}


def heatmap_figure(rows: Sequence[dict[str, Any]], out_dir: str | Path, n: int, name: str | None = None) -> Path:
    """One heatmap over (r, p) per quantity of :func:`heatmap_keys`, for the models of one ``n``."""
    plt = _plt()
    ok = [r for r in _ok(rows) if r["n"] == n]
    keys = heatmap_keys(ok)
    rs = sorted({r["r"] for r in ok})
    ps = sorted({r["p"] for r in ok})
    cols = min(4, max(1, len(keys)))
    nrows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, (key, title) in zip(axes.ravel(), keys.items()):
        ax.set_visible(True)
        grid = np.full((len(ps), len(rs)), np.nan)
        for (_n, rr, pp), (v, _) in _mean_over_seeds(ok, key).items():
            grid[ps.index(pp), rs.index(rr)] = v
        diverging = key.startswith("rel_err")
        vmax = np.nanmax(np.abs(grid)) if diverging and np.isfinite(grid).any() else None
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdBu_r" if diverging else "viridis",
                       vmin=-vmax if vmax else None, vmax=vmax)
        ax.set_xticks(range(len(rs)), [f"{v:.2g}" for v in rs], fontsize=7, rotation=45)
        ax.set_yticks(range(len(ps)), [f"{v:.2g}" for v in ps], fontsize=7)
        ax.set_xlabel("r")
        ax.set_ylabel("p")
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax)
    fig.suptitle(f"n = {n}")
    fig.tight_layout()
    path = Path(out_dir) / (name or f"validation_heatmaps_n{n}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predicted_vs_measured_figure(rows: Sequence[dict[str, Any]], out_dir: str | Path,
                                 name: str = "validation_predicted_vs_measured.png") -> Path:
    """Scatter of each prediction against the measured held-out loss (log-log, y = x line)."""
    plt = _plt()
    ok = _ok(rows)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    meas = np.array([r["heldout_loss"] for r in ok])
    for key, marker, label in (("exact_finite_n", "D", "exact finite-n, own weights"),
                               ("predicted", "o", "Gaussian, own weights"), ("lstar", "s", "L*(p, r)"),
                               ("rug_loss", "x", "rug")):
        vals = np.array([float(r.get(key, math.nan)) for r in ok])
        good = np.isfinite(vals)
        if good.any():
            ax.loglog(meas[good], vals[good], marker, ms=4, ls="none", label=label, alpha=0.8)
    if meas.size:
        lo, hi = meas.min() / 2, meas.max() * 2
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("measured held-out loss")
    ax.set_ylabel("predicted loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: Any, spec: str = ".3e") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "—" if not math.isfinite(f) else format(f, spec)


def predicted_vs_measured_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table: every run with measured ± SE, each prediction and its relative error."""
    head = (
        "| n | m | r | p | seed | steps | conv. | measured ± SE | exact finite-n (rel.) | Gaussian from weights (rel.) "
        "| L* (rel.) | rug ± SE (rel.) | linear |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda x: (x["n"], x["r"], x["p"], x["seed"])):
        if r.get("status") != "ok":
            lines.append(f"| {r['n']} | {r['m']} | {r['r']:.3g} | {r['p']:.3g} | {r['seed']} | {r['steps_run']} | "
                         f"— | {r['status']} | | | | | |")
            continue
        lines.append(
            f"| {r['n']} | {r['m']} | {r['r']:.3g} | {r['p']:.3g} | {r['seed']} | {r['steps_run']} | "
            f"{'yes' if r['converged'] else 'no'} | {_fmt(r['heldout_loss'])} ± {_fmt(r['heldout_se'], '.1e')} | "
            f"{_fmt(r.get('exact_finite_n'))} ({_fmt(r.get('rel_err_exact_finite_n'), '+.2%')}) | "
            f"{_fmt(r.get('predicted'))} ({_fmt(r.get('rel_err_predicted'), '+.1%')}) | "
            f"{_fmt(r.get('lstar'))} ({_fmt(r.get('rel_err_lstar'), '+.1%')}) | "
            f"{_fmt(r.get('rug_loss'))} ± {_fmt(r.get('rug_se'), '.1e')} ({_fmt(r.get('rel_err_rug'), '+.1%')}) | "
            f"{_fmt(r.get('linear_loss'))} |"
        )
    return head + "\n".join(lines) + "\n"


def summary_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per n: models, converged, non-finite, and the median |relative error| of each prediction."""
    head = (
        "| n | models | converged | non-finite | median rel. err. exact finite-n | median rel. err. Gaussian from "
        "weights | median rel. err. L* | median rel. err. rug | measured < L* "
        "|\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for n in sorted({r["n"] for r in rows}):
        g = [r for r in rows if r["n"] == n]
        ok = _ok(g)

        def med(key: str, ok: list = ok) -> str:
            vals = np.array([abs(float(r.get(key, math.nan))) for r in ok])
            vals = vals[np.isfinite(vals)]
            return f"{np.median(vals):.1%}" if vals.size else "not computed"

        below = sum(1 for r in ok if r["heldout_loss"] < r.get("lstar", math.nan))
        lines.append(f"| {n} | {len(g)} | {sum(1 for r in g if r.get('converged'))} | "
                     f"{sum(1 for r in g if r.get('status') == 'nonfinite')} | {med('rel_err_exact_finite_n')} | "
                     f"{med('rel_err_predicted')} | "
                     f"{med('rel_err_lstar')} | {med('rel_err_rug')} | {below}/{len(ok)} |")
    return head + "\n".join(lines) + "\n"


def write_section(rows: Sequence[dict[str, Any]], out_dir: str | Path, *, title: str, intro: str = "",
                  prefix: str = "validation") -> str:
    """Figures + tables as one Markdown section (figures written into ``out_dir``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"## {title}\n", intro.strip() + "\n" if intro else ""]
    if not rows:
        return "".join(parts) + "\nNo finished runs.\n"
    notes = {
        r.get(k) for r in rows if r.get("status") == "ok" for k in ("weights_status", "exact_status", "rug_status")
    }
    missing = sorted(s for s in notes if isinstance(s, str) and s.startswith("not computed"))
    if missing:
        parts.append("\nColumns not computed: " + "; ".join(s.removeprefix("not computed: ") for s in missing) + ".\n")
    parts.append("\n" + summary_table(rows))
    figs = [
        loss_vs_r_figure(rows, out, f"{prefix}_loss_vs_r.png"),
        loss_vs_p_figure(rows, out, f"{prefix}_loss_vs_p.png"),
        predicted_vs_measured_figure(rows, out, f"{prefix}_predicted_vs_measured.png"),
    ]
    for n in sorted({r["n"] for r in _ok(rows)}):
        figs.append(heatmap_figure(rows, out, n, f"{prefix}_heatmaps_n{n}.png"))
    parts.append("\n" + "\n".join(f"![{p.stem}]({p.name})" for p in figs) + "\n")
    parts.append("\n### Predicted vs measured\n\n" + predicted_vs_measured_table(rows))
    return "".join(parts)


def report_path(out_dir: str | Path, sweep_name: str) -> Path:
    """Where the report of sweep ``sweep_name`` goes: ``out_dir/validation-<sweep_name>.md``."""
    return Path(out_dir) / f"validation-{sweep_name}.md"


def write_sweep_report(store: Any, spec: Any, out_dir: str | Path | None = None, *,
                       title: str = "Validation against trained models") -> tuple[Path, int]:
    """Write the report of ``spec``'s runs in ``store``; return (its path, how many models it covers).

    ``store`` is a :class:`rugtheory.validation.store.ResultStore` on which the sweep ran (which
    records the spec's run ids), ``spec`` a :class:`rugtheory.validation.sweep.SweepSpec`; the report
    and its figures go to ``out_dir`` (default: the store's directory) as ``validation-NAME.md`` and
    ``validation-NAME_*.png``.
    """
    import json

    from rugtheory.validation.store import run_id
    from rugtheory.validation.sweep import expand

    out = Path(store.root if out_dir is None else out_dir)
    ids = {run_id(c.to_dict()) for c in expand(spec)}
    rows = [r for r in store.rows(sweep=spec.name) if r["run_id"] in ids]
    intro = (f"Sweep `{spec.name}`: {len(rows)} of its {len(ids)} models finished; "
             f"spec `{json.dumps(spec.to_dict(), sort_keys=True)}`.")
    text = write_section(rows, out, title=title, intro=intro, prefix=f"validation-{spec.name}")
    path = report_path(out, spec.name)
    path.write_text(text)
    return path, len(rows)
