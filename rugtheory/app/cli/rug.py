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
from pathlib import Path
from typing import Any

from rugtheory.app.rug_figure import MAX_CROP, SAMPLE_BUDGET, draw_rug, max_samples

__all__ = ["MAX_CROP", "add_parser", "draw_rug", "max_samples", "rug_from_ratio", "run"]

#: Peak bytes per feature while drawing (kernel, row choice, one sample of x and W x, transforms),
#: measured ~56 at n = 2^22 ... 2^24; seconds per feature (one core, the 16 samples of a large n).
_BYTES_PER_FEATURE = 64
_SECONDS_PER_FEATURE = 4e-6


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


def _check_out(path: str) -> Path:
    from rugtheory.app.cli._args import check_output_file

    if path and Path(path).suffix.lower() != ".png" and not Path(path).is_dir():
        raise ValueError(f"--out must be a .png file, got {path!r}")
    return check_output_file(path, "--out")


def _check_size(n: int, samples: int) -> None:
    """Refuse a rug that cannot fit in memory; announce one that will take a while."""
    import sys

    from rugtheory.app.cli._args import check_fits_memory, fmt_bytes

    needed = _BYTES_PER_FEATURE * n + 24 * min(samples, SAMPLE_BUDGET) + (200 << 20)  # + matplotlib
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
