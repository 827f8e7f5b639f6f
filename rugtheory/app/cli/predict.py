"""``rugtheory predict``: L*(p, r) with its optimiser and the baselines (docs/theory.md §3–5), and the
structure expected to win at (p, r) among the competing constructions of docs/theory.md §10.

Several values per flag evaluate the whole (p, r) grid. ``--json`` prints one JSON object per
point (JSON Lines: a single point gives exactly one object); ``--csv FILE`` writes the grid.
``--no-structures`` skips the phase-map comparison (L* only, fastest).
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
#: Extra columns from :func:`rugtheory.constructions.phase_map.expected_structure` (absent with --no-structures).
STRUCTURE_FIELDS = ["expected_structure", "expected_loss", "expected_over_symmetric"]


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
        description="Predicted optimal per-feature loss L*(p, r) (docs/theory.md §4) and the baselines of docs/theory.md §5.",
    )
    ps.add_argument("--p", type=_number, nargs="+", required=True, metavar="P", help="feature probability, in (0, 1]")
    ps.add_argument("--r", type=_number, nargs="+", required=True, metavar="R", help="compression ratio m/n, in (0, 1]")
    ps.add_argument("--json", action="store_true", help="print one JSON object per (p, r) point")
    ps.add_argument("--csv", metavar="FILE", help="also write the grid as CSV to FILE")
    ps.add_argument(
        "--no-structures",
        action="store_true",
        help="skip the comparison with competing structures (pairs, polytopes, mixtures; docs/theory.md §10)",
    )


def compute(ps: list[float], rs: list[float], *, structures: bool = True) -> list[dict[str, Any]]:
    """Records for the grid ``ps x rs`` (p varies slowest)."""
    import numpy as np

    from rugtheory.theory.checks import check_probability, check_ratio
    from rugtheory.theory.optimum import optimal_symmetric_loss

    p = check_probability(np.asarray(ps, dtype=float), "p")
    r = check_ratio(np.asarray(rs, dtype=float), "r")
    P, R = np.meshgrid(p, r, indexing="ij")
    records: list[dict[str, Any]] = optimal_symmetric_loss(P, R).records()
    if structures:
        from rugtheory.constructions.phase_map import expected_structure

        for rec in records:
            e = expected_structure(rec["p"], rec["r"])
            rec["expected_structure"] = e.winner
            rec["expected_loss"] = e.loss
            rec["expected_over_symmetric"] = e.ratio_to_symmetric
            rec["components"] = [
                {"name": c.name, "ratio": c.ratio, "fraction": c.fraction, "loss": c.loss, "gain": c.gain, "bias": c.bias}
                for c in e.components
            ]
    return records


def _fmt(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else str(x)


def run(args: argparse.Namespace) -> int:
    structures = not args.no_structures
    records = compute(args.p, args.r, structures=structures)
    fields = FIELDS + (STRUCTURE_FIELDS if structures else [])
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for rec in records:
                w.writerow({k: rec[k] if isinstance(rec[k], str) else repr(rec[k]) for k in fields})
    out = sys.stdout
    if args.json:
        keys = fields + (["components"] if structures else [])
        for rec in records:
            out.write(json.dumps({k: rec[k] for k in keys}) + "\n")
        return 0
    widths = {k: max(len(k), 16) for k in FIELDS}
    out.write("  ".join(k.rjust(widths[k]) for k in FIELDS) + "\n")
    for rec in records:
        out.write("  ".join(_fmt(rec[k]).rjust(widths[k]) for k in FIELDS) + "\n")
    if structures:
        out.write("\nExpected structure (lowest large-n loss among L* and the constructions of docs/theory.md §10):\n")
        for rec in records:
            parts = ", ".join(f"{c['fraction']:.3g} of features in {c['name']} at r'={c['ratio']:.3g}" for c in rec["components"])
            out.write(
                f"  p={_fmt(rec['p'])} r={_fmt(rec['r'])}: {rec['expected_structure']}, loss {_fmt(rec['expected_loss'])}"
                f" = {rec['expected_over_symmetric']:.4g} x L*  ({parts})\n"
            )
    return 0
