"""``rugtheory report --out DIR``: the main job (Markdown report, tables and PNG plots)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    ps = sub.add_parser("report", help="write the Markdown report (theory, rug, trainings, tables, plots) to DIR")
    ps.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created if missing; an existing file is refused)"
    )
    ps.add_argument("--seed", type=int, default=0, help="seed for every random step (default 0)")
    size = ps.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="larger sizes than the CPU-sized default")
    size.add_argument("--smoke", action="store_true",
                      help="smallest sizes that still run every step of every section (~30 s; what the tests run)")
    ps.add_argument(
        "--only", nargs="+", metavar="SECTION", help="run only sections whose module name contains one of these"
    )


def run(args: argparse.Namespace) -> int:
    from rugtheory.app.cli._args import check_output_dir
    from rugtheory.theory.checks import check_seed

    check_output_dir(args.out, "--out")
    seed = check_seed(args.seed, "--seed")
    from rugtheory.app.report import SECTIONS, write_report

    sections = SECTIONS
    if args.only:
        sections = [s for s in SECTIONS if any(k in s for k in args.only)]
        if not sections:
            raise ValueError(f"--only matched no section; sections are {', '.join(SECTIONS)}")
    path = write_report(args.out, seed=seed, quick=not args.full, smoke=args.smoke, sections=sections)
    print(path)
    return 0
