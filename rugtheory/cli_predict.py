"""``rugtheory predict``: L*(p, r) with its optimiser and the baselines (THEORY §3–5).

Several values per flag evaluate the whole (p, r) grid. ``--json`` prints one JSON object per
point (JSON Lines: a single point gives exactly one object); ``--csv FILE`` writes the grid.
Only numpy/scipy are imported on this path (no sympy, matplotlib or torch).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import Any

__all__ = ["add_parser", "run", "FIELDS"]

#: Output columns, in order.
FIELDS = ["p", "r", "loss", "a", "b", "sigma", "theta", "s", "zero_loss", "linear_loss", "linear_loss_no_bias"]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def add_parser(sub: Any) -> None:
    ps = sub.add_parser(
        "predict",
        help="predicted optimal loss L*(p, r) of the symmetric model, with a*, b*, sigma*, theta*, s and baselines",
        description="Predicted optimal per-feature loss L*(p, r) (THEORY §4) and the baselines of THEORY §5.",
    )
    ps.add_argument("--p", type=_number, nargs="+", required=True, metavar="P", help="feature probability, in (0, 1]")
    ps.add_argument("--r", type=_number, nargs="+", required=True, metavar="R", help="compression ratio m/n, in (0, 1]")
    ps.add_argument("--json", action="store_true", help="print one JSON object per (p, r) point")
    ps.add_argument("--csv", metavar="FILE", help="also write the grid as CSV to FILE")


def compute(ps: list[float], rs: list[float]) -> list[dict[str, float]]:
    """Records for the grid ``ps x rs`` (p varies slowest)."""
    import numpy as np

    from rugtheory._validate import check_probability, check_ratio
    from rugtheory.optimum import optimal_symmetric_loss

    p = check_probability(np.asarray(ps, dtype=float), "p")
    r = check_ratio(np.asarray(rs, dtype=float), "r")
    P, R = np.meshgrid(p, r, indexing="ij")
    return optimal_symmetric_loss(P, R).records()


def _fmt(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else str(x)


def run(args: argparse.Namespace) -> int:
    records = compute(args.p, args.r)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
            w.writeheader()
            for rec in records:
                w.writerow({k: repr(rec[k]) for k in FIELDS})
    out = sys.stdout
    if args.json:
        for rec in records:
            out.write(json.dumps({k: rec[k] for k in FIELDS}) + "\n")
        return 0
    widths = {k: max(len(k), 16) for k in FIELDS}
    out.write("  ".join(k.rjust(widths[k]) for k in FIELDS) + "\n")
    for rec in records:
        out.write("  ".join(_fmt(rec[k]).rjust(widths[k]) for k in FIELDS) + "\n")
    return 0
