"""The ``rugtheory`` command line.

Each subcommand lives in its own module ``rugtheory.cli_<name>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``. Those modules import nothing
heavy at module level (no sympy, matplotlib or torch), so ``rugtheory predict``
stays fast; heavy imports happen inside ``run``.

Errors: a ``ValueError`` raised for bad input becomes a one-line message on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: Subcommand name -> module implementing it.
SUBCOMMANDS: dict[str, str] = {
    "predict": "rugtheory.app.cli.predict",
    "report": "rugtheory.app.cli.report",
    "validate": "rugtheory.app.cli.validate",
    "rug": "rugtheory.app.cli.rug",
    "tables": "rugtheory.app.cli.tables",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` set, just that subcommand's module is imported (fast start)."""
    parser = _Parser(prog="rugtheory", description="Theory engine for the Persian-rug toy model of superposition.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module_name in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else None
    parser = build_parser(first if first in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command])
    try:
        return int(module.run(args) or 0)
    except ValueError as exc:
        print(f"rugtheory {args.command}: error: {exc}", file=sys.stderr)
        return 2
