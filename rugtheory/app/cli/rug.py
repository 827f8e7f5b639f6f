"""``rugtheory rug``: draw a Persian rug and its interference law (docs/theory.md §8).

    rugtheory rug --n 1024 --r 0.25 --seed 0 --out rug.png [--p 0.05] [--crop 256]
                  [--kind hadamard|fourier] [--rows random|first]

Left panel: the heatmap of ``W`` (its top-left ``crop × crop`` block, built from the kernel, so no
``n × n`` matrix is formed): ``W_ij = g(i XOR j)`` draws the rug. Right panel: the histogram of
sampled interference ``ν_i = (W x)_i − x_i − μ`` over all rows of fresh samples, against its
Gaussian law ``N(0, v (1/r − 1))``, with the KS p-value and the exact skewness and excess kurtosis.
A one-line summary goes to stdout. Only numpy/scipy are imported before ``run``; matplotlib inside.

``--out`` is written exactly as given, as PNG: it must end in ``.png``, its folder must exist
(nothing is created) and it must not be a directory; the summary line names that path.
Before drawing, the memory the run needs (about 64 bytes per feature plus the samples) is
compared with the available memory and a run that cannot fit is refused, naming ``--n``; a run
expected to take more than half a minute says so on stderr first. ``--samples`` is at most
:func:`max_samples` (``2^23`` for a power-of-two ``n``) and ``--crop`` at most :data:`MAX_CROP`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = ["MAX_CROP", "add_parser", "draw_rug", "max_samples", "rug_from_ratio", "run"]

#: Largest ``--crop``: the heatmap is ~600 pixels wide, so a larger block only costs memory.
MAX_CROP = 4096
#: Sampled entries of ``W x`` per figure (at most): the sampling cost and the cap on ``--samples``.
_SAMPLE_BUDGET = 1 << 23
#: Peak bytes per feature while drawing (kernel, row choice, one sample of x and W x, transforms),
#: measured ~56 at n = 2^22 ... 2^24; seconds per feature (one core, the 16 samples of a large n).
_BYTES_PER_FEATURE = 64
_SECONDS_PER_FEATURE = 4e-6


def max_samples(n: int) -> int:
    """The most interference values :func:`draw_rug` draws for ``n`` features (``2^23`` for n = 2^k)."""
    return min(_SAMPLE_BUDGET, max(16, _SAMPLE_BUDGET // n) * n)


def add_parser(sub: Any) -> None:
    ps = sub.add_parser(
        "rug",
        help="draw a Persian rug W (heatmap, crop for large n) and its interference histogram vs the Gaussian law",
        description="Draw the Persian-rug weight matrix of docs/theory.md §8 and its interference law.",
    )
    ps.add_argument("--n", type=int, required=True, help="features (a power of two for --kind hadamard)")
    size = ps.add_mutually_exclusive_group(required=True)
    size.add_argument("--r", type=float, help="compression ratio m/n in (0, 1]; r·n must be an integer")
    size.add_argument("--m", type=int, help="hidden units, 1 <= m <= n")
    ps.add_argument("--seed", type=int, required=True, help="seed of the row choice and of the samples (>= 0)")
    ps.add_argument("--out", required=True, metavar="FILE.png",
                    help="output PNG, written exactly there (must end in .png; its folder must exist)")
    ps.add_argument(
        "--p", type=float, default=0.05, help="feature probability for the interference panel (default 0.05)"
    )
    ps.add_argument("--crop", type=int, default=256,
                    help=f"draw the top-left crop×crop block of W (default 256, at most {MAX_CROP})")
    ps.add_argument("--kind", choices=["hadamard", "fourier"], default="hadamard")
    ps.add_argument("--rows", choices=["random", "first"], default="random")
    ps.add_argument("--samples", type=int, default=200_000,
                    help="interference values in the histogram (default 200000; 100 to 2^23 = 8388608)")


def rug_from_ratio(n: int, r: float | None, m: int | None, *, seed: int, kind: str, rows: str):
    """A rug from ``(n, r)`` or ``(n, m)``; ``r·n`` must be an integer (within 1e-9)."""
    from rugtheory.constructions.persian_rug import persian_rug
    from rugtheory.theory.checks import check_int, check_ratio

    if m is None:
        r = float(check_ratio(r, "r"))
        n_int = check_int(n, "n", low=1)
        m_float = r * n_int
        if abs(m_float - round(m_float)) > 1e-9 * max(1.0, m_float) or round(m_float) < 1:
            raise ValueError(f"r must make m = r·n a positive integer, got r={r!r} with n={n_int} (use --m)")
        m = round(m_float)
    return persian_rug(n, m, seed=seed, rows=rows, kind=kind)


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
    n_draw = max(16, min(-(-samples // min(n, 64)), _SAMPLE_BUDGET // n))
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


def _check_out(path: str) -> Path:
    from rugtheory.app.cli._args import check_output_file

    if path and Path(path).suffix.lower() != ".png" and not Path(path).is_dir():
        raise ValueError(f"--out must be a .png file, got {path!r}")
    return check_output_file(path, "--out")


def _check_size(n: int, samples: int) -> None:
    """Refuse a rug that cannot fit in memory; announce one that will take a while."""
    import sys

    from rugtheory.app.cli._args import check_fits_memory, fmt_bytes

    needed = _BYTES_PER_FEATURE * n + 24 * min(samples, _SAMPLE_BUDGET) + (200 << 20)  # + matplotlib
    check_fits_memory(needed, "--n", f"n = {n}")
    seconds = _SECONDS_PER_FEATURE * n
    if seconds > 30:
        print(f"rugtheory rug: n = {n} needs about {fmt_bytes(needed)} and roughly {seconds / 60:.0f} min",
              file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from rugtheory.theory.checks import check_int, check_seed

    out = _check_out(args.out)
    seed = check_seed(args.seed)
    n = check_int(args.n, "--n", low=1)
    check_int(args.crop, "--crop", low=1, high=MAX_CROP)
    if args.samples > max_samples(n):
        raise ValueError(f"--samples must be at most {max_samples(n)} for n = {n} (the sampler's cap), "
                         f"got {args.samples}")
    _check_size(n, args.samples)
    rug = rug_from_ratio(n, args.r, args.m, seed=seed, kind=args.kind, rows=args.rows)
    info = draw_rug(rug, args.p, seed=seed, path=out, crop=args.crop, samples=args.samples)
    print(
        f"wrote {args.out}: {rug!r}, r={rug.r:g}, p={info['p']:g}, sigma={info['sigma']:.6g}, "
        f"KS p={info['ks_pvalue']:.3g}, skew={info['skewness']:+.4f}, excess kurtosis={info['excess_kurtosis']:+.4f}, "
        f"Lyapunov={info['lyapunov_ratio']:.4g}"
    )
    return 0
