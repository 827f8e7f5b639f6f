"""The Persian-rug figure (docs/theory.md §8): the heatmap of ``W`` and its interference law.

Shared by ``rugtheory rug`` (:mod:`rugtheory.app.cli.rug`) and the report's rug section
(:mod:`rugtheory.app.report.rug`), so that neither imports the other. matplotlib is imported inside
:func:`draw_rug`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["MAX_CROP", "SAMPLE_BUDGET", "draw_rug", "max_samples"]

#: Largest ``--crop``: the heatmap is ~600 pixels wide, so a larger block only costs memory.
MAX_CROP = 4096
#: Sampled entries of ``W x`` per figure (at most): the sampling cost and the cap on ``--samples``.
SAMPLE_BUDGET = 1 << 23
def max_samples(n: int) -> int:
    """The most interference values :func:`draw_rug` draws for ``n`` features (``2^23`` for n = 2^k)."""
    return min(SAMPLE_BUDGET, max(16, SAMPLE_BUDGET // n) * n)


def draw_rug(
    rug: Any, p: float, *, seed: int, path: str | Path, crop: int = 256, samples: int = 200_000
) -> dict[str, float]:
    """Write the two-panel figure to ``path``; return the numbers shown (KS p-value, moments, sizes).

    The KS test uses up to 20,000 of the sampled values, at most 64 per sample (values within one
    sample share that sample's number of active features).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy import stats

    from rugtheory.constructions.rug_monte_carlo import interference_law
    from rugtheory.theory.checks import check_int, check_probability, check_seed
    from rugtheory.theory.data import sample_sparse_uniform

    p = float(check_probability(p))
    seed = check_seed(seed)
    crop = check_int(crop, "crop", low=1, high=MAX_CROP)
    n = rug.n
    samples = check_int(samples, "samples", low=100, high=max_samples(n))
    c = min(crop, n)
    i = np.arange(c)
    idx = (i[:, None] ^ i[None, :]) if rug.kind == "hadamard" else (i[:, None] - i[None, :]) % n
    block = np.asarray(rug.kernel)[idx]
    law = interference_law(rug, p)
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, 0x706C6F74]))
    # cost at most ~2^23 sampled entries (and at least 16 samples); KS on up to 64 values per
    # sample, so that the common fluctuation of one sample (its number of active features) is
    # averaged over many samples; n_draw * per >= samples (samples <= max_samples(n))
    n_draw = max(16, min(-(-samples // min(n, 64)), SAMPLE_BUDGET // n))
    per = min(n, -(-samples // n_draw))
    mu = rug.mean_shift(p)
    nus = []
    chunk = max(1, (1 << 20) // n)
    for lo in range(0, n_draw, chunk):
        b = min(chunk, n_draw - lo)
        x = sample_sparse_uniform(rng, (b, n), p)
        nu_all = rug.apply(x) - x - mu
        cols = rng.integers(0, n, size=(b, per))
        nus.append(np.take_along_axis(nu_all, cols, axis=1))
    table = np.concatenate(nus, axis=0)
    nu = table.ravel()[:samples]
    ks_values = table[:, : min(per, 64)].ravel()[:20_000]
    ks_p = float(stats.kstest(ks_values / law.sigma, "norm").pvalue) if law.sigma > 0 else math.nan

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 5.4))
    vmax = float(np.max(np.abs(block - np.diag(np.diag(block))))) or 1.0
    im = ax0.imshow(block, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax0, fraction=0.046, pad=0.04, label="W_ij (diagonal = 1, off the scale)")
    crop_note = "" if c == n else f", top-left {c}×{c}"
    ax0.set_title(f"W: {rug.kind}, {rug.row_choice} rows, n={n}, m={rug.m}{crop_note}", fontsize=10)
    ax0.set_xlabel("j")
    ax0.set_ylabel("i")
    if law.sigma > 0:
        lo_, hi_ = np.quantile(nu, [0.0005, 0.9995])
        bins = np.linspace(min(lo_, -4 * law.sigma), max(hi_, 4 * law.sigma), 121)
        ax1.hist(nu, bins=bins, density=True, color="0.6", label=f"sampled ν ({nu.size} values)")
        grid = np.linspace(bins[0], bins[-1], 400)
        ax1.plot(grid, stats.norm.pdf(grid, scale=law.sigma), "C3", lw=2, label=f"N(0, σ²), σ = {law.sigma:.4g}")
        ax1.set_yscale("log")
        ax1.set_ylim(bottom=max(1e-4 / law.sigma, 0.5 / (nu.size * (bins[1] - bins[0]))))
    ax1.set_title(f"interference at p={p:g}, pn={p * n:.3g}: KS p={ks_p:.2g}\n"
                  f"skew {law.skewness:+.3f}, excess kurtosis {law.excess_kurtosis:+.3f} (exact), "
                  f"Lyapunov {law.lyapunov_ratio:.3g}")
    ax1.set_xlabel("ν")
    ax1.set_ylabel("density (log)")
    ax1.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")  # exactly ``path``: no suffix added, no folder created
    plt.close(fig)
    return {"n": n, "m": rug.m, "p": p, "sigma": law.sigma, "ks_pvalue": ks_p, "skewness": law.skewness,
            "excess_kurtosis": law.excess_kurtosis, "lyapunov_ratio": law.lyapunov_ratio, "crop": c}
