"""``rugtheory predict``: L*(p, r) with its optimiser and the baselines (docs/theory.md §3–5), and the
structure expected to win at (p, r) among the competing constructions of docs/theory.md §10.

Several values per flag evaluate the whole (p, r) grid; a repeated flag adds its values
(``--r 0.5 --r 0.25`` is ``--r 0.5 0.25``). ``--json`` prints one JSON object per point (JSON
Lines: a single point gives exactly one object); ``--csv FILE`` writes the grid.
``--no-structures`` skips the phase-map comparison (L* only, fastest).

The grid is computed and printed in chunks of :data:`CHUNK` points (4 times as many with
``--no-structures``; p varies slowest), so output
appears as it is computed and memory stays bounded on any grid size; the ``--csv`` file is
checked and opened (its header written) before anything is computed. On a terminal, a grid of
more than one chunk shows a progress bar on stderr (tqdm, when installed); otherwise a grid
expected to take more than a minute says so on stderr once before it starts.
Only numpy/scipy are imported on this path (no sympy, matplotlib or torch).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import Any

__all__ = ["CHUNK", "FIELDS", "add_parser", "compute", "iter_records", "run"]

#: Output columns, in order.
FIELDS = ["p", "r", "loss", "a", "b", "sigma", "theta", "s", "zero_loss", "linear_loss", "linear_loss_no_bias"]
#: Extra columns from :func:`rugtheory.constructions.phase_map.expected_structure` (absent with --no-structures).
STRUCTURE_FIELDS = ["expected_structure", "expected_loss", "expected_over_symmetric"]
#: Grid points computed (and printed) at a time with structures; L* alone (--no-structures) takes
#: 4 chunks at a time (its per-call overhead dominates small chunks). L* peaks at ~45 KB a point
#: while computing, so a chunk holds at most ~50 MB whatever the grid size.
CHUNK = 256
#: Rough seconds per grid point (one core), with and without the structure comparison.
_SECONDS_PER_POINT = {True: 5e-3, False: 2e-4}


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
    ps.add_argument("--p", type=_number, nargs="+", action="extend", required=True, metavar="P",
                    help="feature probability, in (0, 1]; several values (or a repeated --p) make a grid")
    ps.add_argument("--r", type=_number, nargs="+", action="extend", required=True, metavar="R",
                    help="compression ratio m/n, in (0, 1]; several values (or a repeated --r) make a grid")
    ps.add_argument("--json", action="store_true", help="print one JSON object per (p, r) point")
    ps.add_argument("--csv", metavar="FILE",
                    help="also write the grid as CSV to FILE (its folder must exist; checked before computing)")
    ps.add_argument(
        "--no-structures",
        action="store_true",
        help="skip the comparison with competing structures (pairs, polytopes, mixtures; docs/theory.md §10)",
    )


#: The smallest normal float64: an L* below it has lost relative precision (underflow).
_TINY = 2.2250738585072014e-308


def _check_grid(ps: list[float], rs: list[float]) -> tuple[Any, Any]:
    import numpy as np

    from rugtheory.theory.optimum import check_symmetric_domain

    return check_symmetric_domain(np.asarray(ps, dtype=float), np.asarray(rs, dtype=float))


def iter_records(ps: list[float], rs: list[float], *, structures: bool = True, chunk: int | None = None):
    """Records for the grid ``ps x rs`` (p varies slowest), yielded as lists of ``chunk`` points.

    Memory is bounded by the chunk, whatever the grid size; the values do not depend on ``chunk``.
    """
    import numpy as np

    from rugtheory.theory.optimum import optimal_symmetric_loss

    p, r = _check_grid(ps, rs)
    if chunk is None:
        chunk = CHUNK if structures else 4 * CHUNK
    if structures:
        from rugtheory.constructions.phase_map import expected_structure
    total = p.size * r.size
    for lo in range(0, total, chunk):
        idx = np.arange(lo, min(lo + chunk, total))
        records: list[dict[str, Any]] = optimal_symmetric_loss(p[idx // r.size], r[idx % r.size]).records()
        if structures:
            for rec in records:
                e = expected_structure(rec["p"], rec["r"])
                rec["expected_structure"] = e.winner
                rec["expected_loss"] = e.loss
                rec["expected_over_symmetric"] = e.ratio_to_symmetric
                rec["components"] = [
                    {"name": c.name, "ratio": c.ratio, "fraction": c.fraction, "loss": c.loss, "gain": c.gain,
                     "bias": c.bias}
                    for c in e.components
                ]
        yield records


def compute(ps: list[float], rs: list[float], *, structures: bool = True) -> list[dict[str, Any]]:
    """Records for the grid ``ps x rs`` (p varies slowest)."""
    return [rec for block in iter_records(ps, rs, structures=structures) for rec in block]


def _fmt(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else str(x)


class _CsvOut:
    """The ``--csv`` file, opened (header written and flushed) before computing; write errors name --csv."""

    def __init__(self, path: str, fields: list[str]):
        from rugtheory.app.cli._args import check_output_file

        self.path = path
        self.fields = fields
        check_output_file(path, "--csv")
        try:
            self.fh = open(path, "w", newline="")  # noqa: SIM115
        except OSError as exc:
            raise ValueError(f"--csv {path!r}: cannot open: {exc.strerror or exc}") from None
        self.writer = csv.DictWriter(self.fh, fieldnames=fields, extrasaction="ignore")
        try:
            self._guard(self.writer.writeheader)  # e.g. /dev/full fails here, before any computing
        except ValueError:
            self.discard()
            raise

    def discard(self) -> None:
        """Close after a failure (the file descriptor is released even if the last flush fails)."""
        try:
            self.fh.close()
        except OSError:
            pass

    def _guard(self, write: Any, *a: Any) -> None:
        try:
            write(*a)
            self.fh.flush()
        except OSError as exc:
            raise ValueError(f"--csv {self.path!r}: cannot write: {exc.strerror or exc}") from None

    def rows(self, records: list[dict[str, Any]]) -> None:
        f = self.fields
        self._guard(self.writer.writerows, [{k: rec[k] if isinstance(rec[k], str) else repr(rec[k]) for k in f}
                                            for rec in records])

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as exc:
            raise ValueError(f"--csv {self.path!r}: cannot write: {exc.strerror or exc}") from None


def _progress(total: int, structures: bool) -> Any:
    """A tqdm bar on a terminal for grids of more than one chunk; else a one-line notice for long grids."""
    seconds = total * _SECONDS_PER_POINT[structures]
    if total > CHUNK * (1 if structures else 4) and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            return tqdm(total=total, unit="pt", desc="predict", file=sys.stderr, leave=False)
    if seconds > 60:
        print(f"rugtheory predict: {total} grid points{' with structures' if structures else ''}, "
              f"roughly {seconds / 60:.0f} min; output streams as it is computed", file=sys.stderr, flush=True)
    return None


def run(args: argparse.Namespace) -> int:
    import tempfile

    structures = not args.no_structures
    fields = FIELDS + (STRUCTURE_FIELDS if structures else [])
    p, r = _check_grid(args.p, args.r)  # bad values fail before the CSV is touched
    csv_out = _CsvOut(args.csv, fields) if args.csv is not None else None
    out = sys.stdout
    widths = {k: max(len(k), 16) for k in FIELDS}
    keys = fields + (["components"] if structures else [])
    # text mode prints the structure lines after the table: they wait in a spooled file (bounded memory)
    later = tempfile.SpooledTemporaryFile(max_size=1 << 22, mode="w+") if structures and not args.json else None  # noqa: SIM115 -- closed in finally
    if not args.json:
        out.write("  ".join(k.rjust(widths[k]) for k in FIELDS) + "\n")
    bar = _progress(p.size * r.size, structures)
    underflow = 0
    try:
        for records in iter_records(p, r, structures=structures):
            if csv_out is not None:
                csv_out.rows(records)
            if args.json:
                out.write("".join(json.dumps({k: rec[k] for k in keys}) + "\n" for rec in records))
            else:
                out.write("".join("  ".join(_fmt(rec[k]).rjust(widths[k]) for k in FIELDS) + "\n" for rec in records))
            if later is not None:
                for rec in records:
                    parts = ", ".join(f"{c['fraction']:.3g} of features in {c['name']} at r'={c['ratio']:.3g}"
                                      for c in rec["components"])
                    ratio = (f"{rec['expected_over_symmetric']:.4g} x L*" if rec["loss"] >= _TINY or rec["r"] == 1
                             else "n/a x L* (both below the float64 range)")
                    later.write(
                        f"  p={_fmt(rec['p'])} r={_fmt(rec['r'])}: {rec['expected_structure']}, "
                        f"loss {_fmt(rec['expected_loss'])} = {ratio}  ({parts})\n"
                    )
            underflow += sum(1 for rec in records if rec["loss"] < _TINY and rec["r"] < 1)
            out.flush()
            if bar is not None:
                bar.update(len(records))
        if csv_out is not None:
            csv_out.close()
            csv_out = None
        if underflow and not args.json:
            out.write(f"\nnote: at {underflow} point(s) L* is below the smallest normal float64 ({_TINY:.3g}); its loss "
                      "column is the correctly rounded value (0 or subnormal), while a, b, sigma, theta and s keep full "
                      "precision (docs/theory.md §13.3)\n")
        if later is not None:
            out.write("\nExpected structure (lowest large-n loss among L* and the constructions of docs/theory.md §10):\n")
            later.seek(0)
            for line in later:
                out.write(line)
    finally:
        if bar is not None:
            bar.close()
        if later is not None:
            later.close()
        if csv_out is not None:
            csv_out.discard()
    return 0
