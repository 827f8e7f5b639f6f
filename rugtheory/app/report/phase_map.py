"""Report section "Phase map": where the symmetric theory holds, and which structure wins elsewhere.

Figures: ``phase_map.png`` (winner over (r, p) with contours of best/L*) and
``phase_map_curves.png`` (loss vs r of every construction at several p). CPU-sized: the 40x40 map
takes about 10 s on one core.
"""

from __future__ import annotations

import numpy as np

from rugtheory.app.report import ReportContext

__all__ = ["section", "plot_phase_map", "plot_loss_curves", "MAP_P", "MAP_R", "CURVE_P", "TABLE_POINTS"]

MAP_P = np.geomspace(1e-4, 0.9, 40)
MAP_R = np.linspace(0.025, 1.0, 40)
CURVE_P = (1e-3, 1e-2, 0.05, 0.2)
TABLE_POINTS = (
    (1e-3, 0.1),
    (1e-3, 0.4),
    (0.01, 0.5),
    (0.01, 0.75),
    (0.045, 0.25),
    (0.05, 0.03),
    (0.2, 0.3),
    (0.5, 0.3),
)


def plot_phase_map(m, path) -> None:  # noqa: ANN001 - PhaseMap, path-like
    """Winner regions over (r, log p) with labels, and contours of best loss / L*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    used = [i for i in range(len(m.labels)) if np.any(m.winner == i)]
    remap = {old: new for new, old in enumerate(used)}
    codes = np.vectorize(remap.get)(m.winner)
    cmap = ListedColormap(plt.cm.tab20(np.linspace(0, 1, 20))[: max(len(used), 1)] if len(used) <= 20
                          else plt.cm.gist_ncar(np.linspace(0.05, 0.95, len(used))))
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.pcolormesh(m.r, m.p, codes, cmap=cmap, vmin=-0.5, vmax=len(used) - 0.5, shading="nearest")
    ax.set_yscale("log")
    cs = ax.contour(m.r, m.p, m.ratio, levels=[0.2, 0.5, 0.9, 0.999], colors="k", linewidths=0.8)
    ax.clabel(cs, fmt=lambda v: f"best/L*={v:.3g}", fontsize=7)
    rr, pp = np.meshgrid(m.r, np.log10(m.p))
    handles = []
    for new, old in enumerate(used):
        mask = codes == new
        handles.append(plt.Rectangle((0, 0), 1, 1, color=cmap(new), label=m.labels[old]))
        if mask.sum() >= 6:  # label regions big enough to hold text
            ax.text(float(np.median(rr[mask])), 10 ** float(np.median(pp[mask])), m.labels[old],
                    fontsize=7, ha="center", va="center", bbox=dict(fc="white", alpha=0.7, lw=0))
    ax.legend(handles=handles, fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("r = m/n")
    ax.set_ylabel("p (feature probability)")
    ax.set_title("Lowest loss: symmetric L* vs polytopes and their mixtures")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_loss_curves(path, ps=CURVE_P, n_r: int = 100) -> None:  # noqa: ANN001
    """Loss / (p/3) vs r for L*, the best envelope and every construction (mixed with dropped/dedicated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.phase_map import construction_curve, phase_map
    from rugtheory.constructions.polytopes import (
        antipodal_pairs,
        optimal_untied_pairs,
        regular_polygon,
        regular_simplex,
    )
    from rugtheory.theory.optimum import linear_loss, optimal_symmetric_loss

    r = np.linspace(0.01, 1.0, n_r)
    cons = [antipodal_pairs(), regular_simplex(3), regular_simplex(4), regular_simplex(8), regular_polygon(5),
            regular_polygon(6)]
    best = phase_map(np.asarray(ps), r)
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 4.2), sharey=False)
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for ax, p, i in zip(np.atleast_1d(axes), ps, range(len(ps))):
        z = p / 3
        ax.plot(r, optimal_symmetric_loss(p, r).loss / z, "k", lw=2, label="L* (symmetric)")
        ax.plot(r, linear_loss(p, r) / z, color="0.6", ls=":", label="(1-r)v linear / dedicated+dropped")
        for c, col in zip(cons, colors):
            ax.plot(r, construction_curve(c, p, r) / z, color=col, lw=1, label=c.name)
        low = r <= 0.5
        ax.plot(r[low], optimal_paired_rug_loss(p, r[low]).loss / z, color="m", lw=1.5, label="paired rug")
        ut = float(optimal_untied_pairs(p).loss)
        v = p / 3 - p * p / 4
        ax.plot(r, np.where(r <= 0.5, 2 * r * ut + (1 - 2 * r) * v, 2 * (1 - r) * ut) / z, color="c", lw=1,
                ls="-.", label="untied pairs")
        ax.plot(r, best.loss[i] / z, "r--", lw=1.5, label="best (envelope)")
        ax.set_yscale("log")
        ax.set_ylim(max(float(np.min(best.loss[i][best.loss[i] > 0]) / z) / 3, 1e-6), 1.2)
        ax.set_title(f"p = {p:g}")
        ax.set_xlabel("r = m/n")
    np.atleast_1d(axes)[0].set_ylabel("loss / (p/3)")
    np.atleast_1d(axes)[-1].legend(fontsize=6.5, loc="lower left")
    fig.suptitle("Each construction brought to any r by dropped (r < r_c) or dedicated (r > r_c) features")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(ctx: ReportContext) -> str:
    from rugtheory.constructions.phase_map import expected_structure, phase_map
    from rugtheory.constructions.polytopes import optimal_structure_loss, standard_constructions
    from rugtheory.constructions.structure_weights import construction_weights
    from rugtheory.theory.optimum import optimal_symmetric_loss
    from rugtheory.twins.montecarlo import model_loss_monte_carlo

    smoke = getattr(ctx, "smoke", False)  # tests/test_report.py: a 10x10 map, 20 points per curve, 2,000 MC samples
    map_p = np.geomspace(MAP_P[0], MAP_P[-1], 10) if smoke else MAP_P
    map_r = np.linspace(MAP_R[0], MAP_R[-1], 10) if smoke else MAP_R
    n_mc, n_features = (2_000, 120) if smoke else (20_000, 120)
    m = phase_map(map_p, map_r)
    plot_phase_map(m, ctx.path("phase_map.png"))
    plot_loss_curves(ctx.path("phase_map_curves.png"), n_r=20 if smoke else 100)
    cons = standard_constructions()  # the candidate list, named from the code (not restated by hand)
    simplices = [c.k for c in cons if c.name.startswith("simplex")]
    polygons = [c.k for c in cons if c.name.startswith("polygon")]
    lines = ["## Phase map: where the symmetric theory holds (docs/theory.md §10)", ""]
    lines += [
        "Candidates at each (p, r): the symmetric optimum L*; antipodal pairs (tied, and untied with "
        f"W_in = [1, -t]), regular simplices ({min(simplices)}–{max(simplices)}) and regular polygons "
        f"({', '.join(map(str, polygons))}), each with its best gain and "
        "bias and an exact loss (box-spline closed form); a rug of antipodal pairs (r ≤ 1/2, large-n "
        "Gaussian interference σ² = a²v(1/r − 2)); dropped (loss v) and dedicated (loss 0) features; and "
        "every mixture of two of them in orthogonal subspaces (the lower convex envelope in r, rug blocks "
        "at any r' included).",
        "",
        f"Symmetric L* wins at {np.mean(m.winner == 0):.0%} of the {m.p.size}×{m.r.size} grid "
        f"(p in [{map_p[0]:g}, {map_p[-1]:g}], r in [{map_r[0]:g}, {map_r[-1]:g}]); the best structure reaches "
        f"{m.ratio.min():.3f}·L* at the lowest point.",
        "",
        "![phase map](phase_map.png)",
        "",
        "![loss vs r per construction](phase_map_curves.png)",
        "",
        "### Expected structure at a few points",
        "",
        "| p | r | winner | composition (fraction of features @ hidden ratio) | loss | L* | loss/L* |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, r in TABLE_POINTS:
        e = expected_structure(p, r)
        comp = ", ".join(f"{c.fraction:.2f} {c.name}@{c.ratio:.3g}" for c in e.components)
        lines.append(f"| {p:g} | {r:g} | {e.winner} | {comp} | {e.loss:.4e} | {e.symmetric_loss:.4e} | "
                     f"{e.ratio_to_symmetric:.3f} |")
    lines += [
        "",
        "### Pure structures: optimal gain, bias and loss, against L* at the same r",
        "",
        f"Monte Carlo: full model from explicit weights (≈{n_features} features, {n_mc:,} samples), "
        "z = (MC − exact)/SE.",
        "",
        "| structure | r | p | g* | b* | loss | L*(p, r) | loss/L* | MC z |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for con in cons:
        for p in (1e-3, 0.05):
            o = optimal_structure_loss(con, p)
            lstar = float(optimal_symmetric_loss(p, con.ratio).loss)
            z = ""
            if p == 0.05:
                w = construction_weights(con, max(1, n_features // con.k), float(o.gain), float(o.bias))
                est = model_loss_monte_carlo(*w, p, n_samples=n_mc, seed=ctx.seed)
                mean, se = est.mean, est.se
                z = f"{(mean - float(o.loss)) / se:+.2f}"
            lines.append(f"| {con.name} | {con.ratio:.3g} | {p:g} | {float(o.gain):.4f} | {float(o.bias):+.4f} | "
                         f"{float(o.loss):.4e} | {lstar:.4e} | {float(o.loss) / lstar:.3f} | {z} |")
    from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
    from rugtheory.constructions.polytopes import optimal_untied_pairs

    lines += ["", "Untied pairs (exact; t = 1/3 gives 25p²/162 at g = 1, b = 0) and the rug of pairs (large-n):", "",
              "| structure | r | p | loss | L*(p, r) | loss/L* | t or (a*, b*) |", "|---|---|---|---|---|---|---|"]
    for p in (1e-3, 0.05):
        u = optimal_untied_pairs(p)
        lstar = float(optimal_symmetric_loss(p, 0.5).loss)
        lines.append(
            f"| untied pairs | 0.5 | {p:g} | {float(u.loss):.4e} | {lstar:.4e} | {float(u.loss) / lstar:.3f} | "
            f"t = {float(u.t):.3f} |"
        )
        for r in (0.1, 0.25, 0.4):
            o = optimal_paired_rug_loss(p, r)
            lstar = float(optimal_symmetric_loss(p, r).loss)
            lines.append(f"| paired rug | {r:g} | {p:g} | {float(o.loss):.4e} | {lstar:.4e} | "
                         f"{float(o.loss) / lstar:.3f} | ({float(o.gain):.3f}, {float(o.bias):+.3f}) |")
    lines += [
        "",
        "Trained models against this map: `python -m rugtheory.validation.structure_study --out DIR` (not run by the "
        "report: it trains for ~10 CPU-minutes).",
        "",
    ]
    return "\n".join(lines)
