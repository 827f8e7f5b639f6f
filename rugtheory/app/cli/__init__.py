"""The ``rugtheory`` command line.

Each subcommand lives in its own module ``rugtheory.cli_<name>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``. Those modules import nothing
heavy at module level (no sympy, matplotlib or torch), so ``rugtheory predict``
stays fast; heavy imports happen inside ``run``.

Errors: a ``ValueError`` raised for bad input becomes a one-line message on stderr
and exit code 2, never a traceback; so does an ``OSError`` or ``MemoryError`` that escapes a
subcommand. An option that takes a value may be given once only (``--r 0.5 --r 0.25`` is
refused), except where a subcommand documents that repeated values accumulate (``predict
--p/--r``). A closed stdout (``rugtheory predict ... | head -1``) ends the command quietly with
exit code 141 (128 + SIGPIPE, as a shell reports a tool killed by SIGPIPE); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: Subcommand name -> module implementing it.
SUBCOMMANDS: dict[str, str] = {
    "predict": "rugtheory.app.cli.predict",
    "report": "rugtheory.app.cli.report",
    "validate": "rugtheory.app.cli.validate",
    "rug": "rugtheory.app.cli.rug",
    "tables": "rugtheory.app.cli.tables",
    "claims": "rugtheory.app.cli.claims",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


_SEEN = "_rugtheory_options_given"


class _StoreOnce(argparse._StoreAction):
    """``store`` that refuses a second occurrence of its option (argparse keeps the last silently)."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault(_SEEN, set())
        if self.dest in seen:
            raise argparse.ArgumentError(self, "given more than once; give each option once")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


def _store_once(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if type(action) is argparse._StoreAction and action.option_strings:
            action.__class__ = _StoreOnce


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` set, just that subcommand's module is imported (fast start)."""
    parser = _Parser(prog="rugtheory", description="Theory engine for the Persian-rug toy model of superposition.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module_name in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module_name).add_parser(sub)
    for subparser in sub.choices.values():
        _store_once(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else None
    parser = build_parser(first if first in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    vars(args).pop(_SEEN, None)
    module = importlib.import_module(SUBCOMMANDS[args.command])

    def fail(message: str, code: int = 2) -> int:
        print(f"rugtheory {args.command}: error: {_one_line(message)}", file=sys.stderr)
        return code

    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except ValueError as exc:
        return fail(str(exc))
    except MemoryError:
        return fail("out of memory; try a smaller problem")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of a closed pipe stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured stdout)
        pass
