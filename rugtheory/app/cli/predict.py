"""``rugtheory predict``: L*(p, r) with its optimiser and the baselines (docs/theory.md §3–5), and the
structure expected to win at (p, r) among the competing constructions of docs/theory.md §10.

Several values per flag evaluate the whole (p, r) grid; a repeated flag adds its values
(``--r 0.5 --r 0.25`` is ``--r 0.5 0.25``). ``--json`` prints one JSON object per point (JSON
Lines: a single point gives exactly one object); ``--csv FILE`` writes the grid.
``--no-structures`` skips the phase-map comparison (L* only, fastest).
``--n N`` adds exact finite-n predictions at n = N, m = round(r N) (docs/theory.md §7.5): L*'s Persian
rug, the paired rug and the expected structure, each with its scalars re-optimised at that n and the
§7 error estimate, and the lowest construction at that n (about 0.5 s a point at n = 1024; without
``--n`` nothing of this is imported). With ``--n`` the point is also looked up in the committed atlas of
trained models (:mod:`rugtheory.app.atlas_lookup`, no torch): columns :data:`ATLAS_FIELDS` (the
interpolated trained loss of the converged models, its leave-one-out uncertainty, the models trained
near the point, flags); "not covered" (empty in CSV, null in JSON) where the atlas does not cover it.

The grid is computed in blocks of :data:`BLOCK` points (p varies slowest; every search vectorised
over the block, the structures' hulls prefetched :data:`P_BLOCK` values of p at a time) and printed in
chunks of :data:`CHUNK` points (256 with ``--n``), so output
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

# Extra columns with --n from the atlas of trained models (rugtheory.app.atlas_lookup.lookup, at r = m/n):
# the interpolated trained loss (converged models only), its absolute and relative LOO uncertainty, the
# trained and converged models at the grid cells around the point, and flags (dead features, loss far
# above the expected structure, LOO outliers); None where not covered. That module imports only the
# standard library and numpy, so predict stays light.
from rugtheory.app.atlas_lookup import ATLAS_FIELDS

__all__ = ["ATLAS_FIELDS", "BLOCK", "CHUNK", "P_BLOCK", "FIELDS", "FINITE_N_FIELDS", "STRUCTURE_FIELDS", "add_parser",
           "check_n", "compute", "finite_n_columns", "iter_records", "run"]

#: Output columns, in order.
FIELDS = ["p", "r", "loss", "a", "b", "sigma", "theta", "s", "zero_loss", "linear_loss", "linear_loss_no_bias"]
#: Extra columns from :func:`rugtheory.constructions.phase_map.expected_structures` (absent with --no-structures).
STRUCTURE_FIELDS = ["expected_structure", "expected_loss", "expected_over_symmetric"]
#: Extra columns with ``--n`` (:func:`rugtheory.constructions.finite_n_predictions.finite_n_predictions`):
#: ``m`` is round(r n); ``structure_finite_n_m`` the hidden units the realised expected structure uses
#: (whole groups); ``paired_rug_*`` are NaN (JSON null) where m > n/2.
FINITE_N_FIELDS = ["n", "m", "rug_finite_n", "rug_finite_n_error", "paired_rug_finite_n", "paired_rug_finite_n_error",
                   "structure_finite_n", "structure_finite_n_error", "structure_finite_n_m", "lowest_finite_n",
                   "lowest_finite_n_loss"]
#: Records yielded (and printed) at a time; 256 with ``--n`` (~0.5 s a point), so that output streams.
CHUNK = 1024
#: Grid points whose searches run together (L*, the paired rug and the mixtures, each vectorised over
#: the block): the searches evaluate their start grids in bounded pieces (optimum.SEARCH_ROWS), so a
#: block costs ~10 KB a point beyond a fixed ~60 MB (112 MiB peak measured on 200 x 200 with
#: structures), and a larger block pays scipy's per-call overhead less often (1024 was 10% slower).
BLOCK = 4096
#: With structures, the hulls of the competing structures (which depend on p only) are prefetched for
#: this many distinct p at a time (:func:`rugtheory.constructions.phase_map.prefetch_hulls`): one
#: polytope search for all of them instead of one per chunk; the hull cache keeps 256.
P_BLOCK = 64
#: Rough seconds per grid point (one core), with and without the structure comparison (200 x 200:
#: ~6 s with structures on a quiet core).
_SECONDS_PER_POINT = {True: 2e-4, False: 1e-4}
#: Rough extra seconds per grid point with ``--n`` (n = 1024, p·n >= 10; more where p·n is small).
_SECONDS_PER_FINITE_N_POINT = 0.6


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
        description="Predicted optimal per-feature loss L*(p, r) (docs/theory.md §4) and the baselines of "
        "docs/theory.md §5.",
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
    ps.add_argument(
        "--n", type=_number, default=None, metavar="N",
        help="also predict at finite n = N (a power of two in [8, 65536]; m = round(r N)): exact finite-n losses "
             "(docs/theory.md §7.5) of L*'s Persian rug, the paired rug and the expected structure, scalars "
             "re-optimised at N, with error estimates: columns " + ", ".join(FINITE_N_FIELDS)
             + " (~0.5 s a point at N = 1024), and the committed atlas of trained models at (N, m/N, P): "
             + ", ".join(ATLAS_FIELDS) + " ('not covered' where it has no converged models around the point)",
    )


#: The smallest normal float64: an L* below it has lost relative precision (underflow).
_TINY = 2.2250738585072014e-308


def _check_grid(ps: list[float], rs: list[float]) -> tuple[Any, Any]:
    import numpy as np

    from rugtheory.theory.optimum import check_symmetric_domain

    return check_symmetric_domain(np.asarray(ps, dtype=float), np.asarray(rs, dtype=float))


def check_n(n: float | None) -> int | None:
    """``--n``: None, or a power of two in [8, 65536] (one-line ``ValueError`` naming --n otherwise)."""
    if n is None:
        return None
    from rugtheory.constructions.finite_n_predictions import check_prediction_size

    return check_prediction_size(n, 1, "--n")[0]


def finite_n_columns(n: int, p: float, r: float) -> dict[str, Any]:
    """The ``--n`` columns at one point, plus ``finite_n``: every construction's prediction (for JSON)."""
    from rugtheory.app.atlas_lookup import lookup
    from rugtheory.constructions.finite_n_predictions import finite_n_predictions

    m = min(n, max(1, round(r * n)))
    res = finite_n_predictions(n, m, p)
    names = [q.name for q in res.predictions]
    nan = float("nan")
    pr = res.by_name("paired rug") if "paired rug" in names else None
    rug, es, best = res.by_name("rug"), res.expected, res.best
    atlas = lookup(n, p, m / n)
    return {
        **{k: atlas[k] for k in ATLAS_FIELDS},
        "n": n, "m": m, "rug_finite_n": rug.loss, "rug_finite_n_error": rug.error,
        "paired_rug_finite_n": pr.loss if pr else nan, "paired_rug_finite_n_error": pr.error if pr else nan,
        "structure_finite_n": es.loss, "structure_finite_n_error": es.error, "structure_finite_n_m": es.m,
        "lowest_finite_n": best.name, "lowest_finite_n_loss": best.loss,
        "finite_n": [{"name": q.name, "n": q.n, "m": q.m, "loss": q.loss, "error": q.error, "gain": q.gain,
                      "bias": q.bias, "large_n_loss": q.large_n_loss, "notes": list(q.notes),
                      "parts": [{"name": c.name, "n": c.n, "m": c.m, "loss": c.loss, "gain": c.gain, "bias": c.bias}
                                for c in q.parts]}
                     for q in res.predictions],
    }


def iter_records(ps: list[float], rs: list[float], *, structures: bool = True, chunk: int | None = None,
                 n: int | None = None):
    """Records for the grid ``ps x rs`` (p varies slowest), yielded as lists of ``chunk`` points.

    The points are computed :data:`BLOCK` at a time (with structures at most ``4 P_BLOCK`` values of p
    a block), so memory is bounded whatever the grid size; the values do not depend on ``chunk`` (each
    point's searches are elementwise).
    With ``n``, each record also has the finite-n columns :data:`FINITE_N_FIELDS` (and ``finite_n``).
    """
    import numpy as np

    from rugtheory.theory.optimum import optimal_symmetric_loss

    p, r = _check_grid(ps, rs)
    if chunk is None:
        chunk = CHUNK if n is None else 256
    if structures:
        from rugtheory.constructions.phase_map import expected_structures, prefetch_hulls
    total = p.size * r.size
    # a block spans at most 4 P_BLOCK distinct p, so that its hulls fit the hull cache (256) together
    block = min(BLOCK, 4 * P_BLOCK * r.size) if structures else BLOCK
    fetched = 0  # p[:fetched] have their hulls prefetched
    pending: list[dict[str, Any]] = []
    for b0 in range(0, total, block):
        idx = np.arange(b0, min(b0 + block, total))
        pb, rb = p[idx // r.size], r[idx % r.size]
        if structures and idx[-1] // r.size >= fetched:
            first = idx[0] // r.size
            fetched = max(idx[-1] // r.size + 1, first + P_BLOCK)
            prefetch_hulls(p[first:fetched])
        sym = optimal_symmetric_loss(pb, rb)
        records: list[dict[str, Any]] = sym.records()
        if structures:
            es = expected_structures(pb, rb, symmetric=sym)  # the whole block in one vectorised search
            ratio = es.ratio_to_symmetric
            for k, rec in enumerate(records):
                rec["expected_structure"] = str(es.winner[k])
                rec["expected_loss"] = float(es.loss[k])
                rec["expected_over_symmetric"] = float(ratio[k])
                rec["components"] = [
                    {"name": c.name, "ratio": c.ratio, "fraction": c.fraction, "loss": c.loss, "gain": c.gain,
                     "bias": c.bias}
                    for c in es.components[k]
                ]
        pending += records
        while len(pending) >= chunk or (pending and b0 + block >= total):
            part, pending = pending[:chunk], pending[chunk:]
            if n is not None:
                for rec in part:
                    rec.update(finite_n_columns(n, rec["p"], rec["r"]))
            yield part


def compute(ps: list[float], rs: list[float], *, structures: bool = True) -> list[dict[str, Any]]:
    """Records for the grid ``ps x rs`` (p varies slowest)."""
    return [rec for block in iter_records(ps, rs, structures=structures) for rec in block]


def _fmt(x: float) -> str:
    return f"{x:.10g}" if math.isfinite(x) else str(x)


def _cell(x: Any) -> str:
    if x is None:
        return "not covered"
    return x if isinstance(x, str) else str(x) if isinstance(x, int) else _fmt(x)


def _table_rows(records: list[dict[str, Any]], shown: list[str], widths: dict[str, int]) -> str:
    """The text table's lines: each cell ``_cell(value).rjust(width)``.

    Where every shown value is a float (no ``--n``) one format string does it: ``{:>w.10g}`` is
    ``_fmt(x).rjust(w)`` for every float, inf and nan included (3x faster on a 200 x 200 grid).
    """
    if all(isinstance(records[0][k], float) for k in shown) and all(type(rec[k]) is float for rec in records
                                                                   for k in shown):
        line = "  ".join(f"{{{k}:>{widths[k]}.10g}}" for k in shown) + "\n"
        return "".join(line.format_map(rec) for rec in records)
    return "".join("  ".join(_cell(rec[k]).rjust(widths[k]) for k in shown) + "\n" for rec in records)


def _json_value(x: Any) -> Any:
    """NaN (a construction or scalar that does not exist here) as JSON null, also inside lists and dicts."""
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_value(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


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
        self.writer = csv.writer(self.fh)  # rows as lists in ``fields`` order (what DictWriter writes)
        try:
            self._guard(self.writer.writerow, fields)  # e.g. /dev/full fails here, before any computing
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
        self._guard(self.writer.writerows, [[v if isinstance(v, str) else "" if v is None else repr(v)
                                             for v in map(rec.__getitem__, f)]
                                            for rec in records])

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as exc:
            raise ValueError(f"--csv {self.path!r}: cannot write: {exc.strerror or exc}") from None


def _progress(total: int, structures: bool, finite_n: bool = False) -> Any:
    """A tqdm bar on a terminal for grids of more than one chunk; else a one-line notice for long grids."""
    seconds = total * (_SECONDS_PER_POINT[structures] + (_SECONDS_PER_FINITE_N_POINT if finite_n else 0.0))
    if total > CHUNK and sys.stderr.isatty():
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
    n = check_n(args.n)
    extra = FINITE_N_FIELDS + ATLAS_FIELDS if n is not None else []
    fields = FIELDS + (STRUCTURE_FIELDS if structures else []) + extra
    p, r = _check_grid(args.p, args.r)  # bad values fail before the CSV is touched
    csv_out = _CsvOut(args.csv, fields) if args.csv is not None else None
    out = sys.stdout
    shown = FIELDS + extra
    widths = {k: max(len(k), 16) for k in shown}
    keys = fields + (["components"] if structures else []) + (["finite_n"] if n is not None else [])
    # text mode prints the structure lines after the table: they wait in a spooled file (bounded memory)
    later = tempfile.SpooledTemporaryFile(max_size=1 << 22, mode="w+") if structures and not args.json else None  # noqa: SIM115 -- closed in finally
    if not args.json:
        out.write("  ".join(k.rjust(widths[k]) for k in shown) + "\n")
    bar = _progress(p.size * r.size, structures, n is not None)
    underflow = 0
    try:
        for records in iter_records(p, r, structures=structures, n=n):
            if csv_out is not None:
                csv_out.rows(records)
            if args.json:
                out.write("".join(json.dumps({k: _json_value(rec[k]) for k in keys}) + "\n" for rec in records))
            else:
                out.write(_table_rows(records, shown, widths))
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
            out.write(
                f"\nnote: at {underflow} point(s) L* is below the smallest normal float64 ({_TINY:.3g}); its loss "
                "column is the correctly rounded value (0 or subnormal), while a, b, sigma, theta and s keep full "
                "precision (docs/theory.md §13.3)\n"
            )
        if n is not None and not args.json:
            out.write(
                "\natlas_*: the committed atlas of trained models at n = N, r = m/N (rugtheory.app.atlas_lookup): "
                "atlas_loss interpolates the held-out loss of the converged models only (log(loss/L*) piecewise "
                "linear in r, log p), atlas_loo_rel_error is its leave-one-out RMS relative error at that n; "
                "atlas_models/atlas_converged count the trained models at the grid cells around the point\n"
            )
        if later is not None:
            out.write(
                "\nExpected structure (lowest large-n loss among L* and the constructions of docs/theory.md §10):\n"
            )
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
