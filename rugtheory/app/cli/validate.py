"""``rugtheory validate``: train a sweep of real models and test every prediction against them.

    rugtheory validate --out DIR [--spec sweep.toml] [--n 64,128] [--r 0.1,0.25] [--p 0.01,0.05]
                       [--seeds 0,1] [--steps 10000] [--preset quick|paper] [--backend local|ray]

Trains (or resumes: finished runs in DIR are kept) every model of the sweep with
:mod:`rugtheory.validation.sweep`, then writes ``DIR/validation-NAME.md`` (NAME: the sweep's name; another
sweep's report in the same folder is never overwritten) with the paper's figures (loss vs r and
vs p for the trained models of each n, the rug, L* and the linear baseline), heatmaps over (r, p)
of each symmetry statistic and of the prediction errors, and a predicted-vs-measured table.
Presets: ``quick`` (the main report's CPU-sized grid) and ``paper`` (n = 128 … 8192, r and p on
``linspace(0.002001, 0.8, 20)``: a GPU job). Torch is imported only inside :func:`run`.

Every flag is checked before anything trains, and a bad one exits with code 2 and one line
naming it: ``--out`` must be a directory (or creatable as one), ``--n``/``--seeds`` comma-separated
integers, ``--r``/``--p`` comma-separated numbers or ``linspace:START:STOP:COUNT`` (COUNT >= 2, or
1 with START = STOP), ``--threads`` and ``--group-size`` positive, ``--device`` a torch device that
exists here (``cpu``, ``cuda``, ``cuda:N``, ``mps``; availability is not checked with
``--backend ray``, whose workers may have GPUs the driver lacks).
"""

from __future__ import annotations

import argparse

__all__ = ["PRESETS", "add_parser", "run"]

#: Named sweep grids (any CLI flag overrides their fields).
PRESETS: dict[str, dict[str, object]] = {
    "quick": {"n": [64, 128, 256], "r": [0.1, 0.25, 0.5], "p": [0.02, 0.05, 0.1], "seeds": [0]},
    "paper": {
        "n": [128, 256, 512, 1024, 2048, 4096, 8192],
        "r": [0.002001 + (0.8 - 0.002001) * i / 19 for i in range(20)],
        "p": [0.002001 + (0.8 - 0.002001) * i / 19 for i in range(20)],
        "seeds": [0],
    },
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from rugtheory.validation.sweep import add_arguments

    parser = subparsers.add_parser("validate", help="train a sweep of real models and compare with the theory",
                                   description=__doc__.splitlines()[0],
                                   epilog="Every flag is checked before anything trains; a bad one exits with code 2 "
                                          "and one line naming it. Each option may be given once.")
    add_arguments(parser)
    for action in parser._actions:  # the shared sweep flags, with the ranges checked here
        extra = {"--threads": " (>= 1)", "--group-size": " (>= 1)", "--out": "; an existing directory or a new one",
                 "--r": " (k >= 2)", "--p": " (k >= 2)",
                 "--device": "; must exist here (cpu, cuda, cuda:N, mps)"}.get(action.option_strings[0] if
                                                                             action.option_strings else "")
        if extra and action.help:
            action.help += extra
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named grid (flags override its fields)")
    parser.add_argument("--title", default="Validation against trained models")


def _check_args(args: argparse.Namespace) -> None:
    """Check every flag before anything trains; the grid flags are rewritten as plain value lists."""
    from rugtheory.app.cli._args import check_output_dir
    from rugtheory.theory.checks import parse_list
    from rugtheory.validation.steps import check_device
    from rugtheory.theory.checks import check_int

    check_output_dir(args.out, "--out")
    for flag in ("threads", "group_size"):
        if getattr(args, flag) is not None:
            check_int(getattr(args, flag), "--" + flag.replace("_", "-"), low=1)
    for flag, kind, linspace in (("n", int, False), ("r", float, True), ("p", float, True), ("seeds", int, False)):
        text = getattr(args, flag)
        if text is not None:
            setattr(args, flag, ",".join(repr(v) for v in parse_list(text, f"--{flag}", kind, linspace=linspace)))
    check_device(args.device, availability=args.backend != "ray")


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    _check_args(args)
    from rugtheory.validation.figures import write_sweep_report
    from rugtheory.validation.sweep import run_sweep, spec_from_args

    if args.preset and not args.spec:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(PRESETS[args.preset], fh)
        args.spec = fh.name
    spec = spec_from_args(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    store = run_sweep(spec, args.out, backend=args.backend, device=args.device, progress=not args.no_progress,
                      ray_address=args.ray_address)
    path, count = write_sweep_report(store, spec, args.out, title=args.title)
    print(f"wrote {path} ({count} models)")
    return 0
