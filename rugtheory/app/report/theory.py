"""Report section "Symmetric theory": the derived closed form, a table of L*(p, r) and its plot."""

from __future__ import annotations

import numpy as np

from rugtheory.app.report import ReportContext

__all__ = ["section", "TABLE_P", "TABLE_R"]

TABLE_P = (1e-4, 1e-3, 1e-2, 0.045, 0.1, 0.3)
TABLE_R = (0.05, 0.1, 0.25, 0.5, 0.75)


def _plot(ctx: ReportContext, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rugtheory.theory.optimum import optimal_symmetric_loss

    r = np.linspace(0.01, 1.0, 100)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p, color in zip((1e-3, 1e-2, 0.045, 0.1, 0.3), plt.cm.viridis(np.linspace(0, 0.9, 5))):
        opt = optimal_symmetric_loss(p, r)
        ax.plot(r, opt.loss / (p / 3), color=color, label=f"L*  p={p:g}")
        ax.plot(r, opt.linear_loss / (p / 3), color=color, ls="--", lw=1)
    ax.set_xlabel("r = m/n")
    ax.set_ylabel("loss / (p/3)   (zero output = 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.2)
    ax.set_title("Optimal symmetric loss L* (solid) and best linear map (dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.path(path), dpi=120)
    plt.close(fig)


def section(ctx: ReportContext) -> str:
    from rugtheory.derivations.symmetric_loss import derive, render_markdown
    from rugtheory.theory.optimum import optimal_symmetric_loss
    from rugtheory.twins.montecarlo import symmetric_loss_mc

    md = render_markdown(derive()).split("\n", 2)[2]  # drop the banner and the title
    P, R = np.meshgrid(TABLE_P, TABLE_R, indexing="ij")
    opt = optimal_symmetric_loss(P, R)
    lines = ["## Symmetric theory (docs/theory.md §3–4)", "", "### Derived closed form", "", md.strip(), ""]
    lines += ["### L*(p, r)", "", "Rows p, columns r; each cell L* / (linear baseline (1-r)v).", ""]
    lines.append("| p \\ r | " + " | ".join(f"{r:g}" for r in TABLE_R) + " |")
    lines.append("|---" * (len(TABLE_R) + 1) + "|")
    for i, p in enumerate(TABLE_P):
        cells = [f"{opt.loss[i, j]:.4e} ({opt.loss[i, j] / opt.linear_loss[i, j]:.3f})" for j in range(len(TABLE_R))]
        lines.append(f"| {p:g} | " + " | ".join(cells) + " |")
    n_mc = 200_000 if ctx.smoke else 2_000_000
    lines += ["", f"Optimiser at a few points, with a Monte Carlo of the model equation ({n_mc:,} samples):", ""]
    lines.append("| p | r | L* | a* | b* | σ* | θ* | MC ± SE | z |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for p, r in ((0.045, 0.25), (0.01, 0.5), (0.3, 0.05), (1e-3, 0.1)):
        o = optimal_symmetric_loss(p, r)
        mc = symmetric_loss_mc(float(o.a), float(o.b), float(o.sigma), p, n_samples=n_mc, seed=ctx.seed)
        lines.append(
            f"| {p:g} | {r:g} | {float(o.loss):.6e} | {float(o.a):.4f} | {float(o.b):.4f} | {float(o.sigma):.4f} | "
            f"{float(o.theta):.4f} | {mc.mean:.5e} ± {mc.se:.1e} | {mc.z_score(float(o.loss)):+.2f} |"
        )
    _plot(ctx, "theory_loss_vs_r.png")
    lines += ["", "![L* and linear baseline vs r](theory_loss_vs_r.png)", ""]
    return "\n".join(lines)
