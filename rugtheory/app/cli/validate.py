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

``--recipe reference|fast`` (docs/theory.md §9; default ``reference``, the TrainConfig defaults):
``fast`` is warm-up + cosine decay with a step budget that grows with n, so a grid of several n
then runs as one sweep per n (NAME-fast-nN, each with its own report).

The atlas (issue 13; :mod:`rugtheory.validation.atlas`): ``--preset atlas`` trains n ∈ {256, 512, 1024},
r ∈ {0.1, 0.25, 0.5, 0.75}, p ∈ {0.01, 0.02, 0.045, 0.1}, seeds {0, 1} with ``--recipe`` (default
``fast`` there), the reference recipe on the n = 256 subset for comparison, then writes the atlas
CSV (``--atlas-csv``, default ``DIR/atlas.csv``); ``--preset atlas-gpu`` adds n = 8192 and refuses to
run without CUDA. The grid flags (``--spec``, ``--n``, ``--r``, ``--p``, ``--seeds``, ``--steps``)
are refused with the atlas presets. Resumable like every sweep: run the same command again.

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
    # the atlas grids (rugtheory.validation.atlas.ATLAS_GRID; trained as one sweep per n, see the docstring)
    "atlas": {"n": [256, 512, 1024], "r": [0.1, 0.25, 0.5, 0.75], "p": [0.01, 0.02, 0.045, 0.1], "seeds": [0, 1]},
    "atlas-gpu": {"n": [256, 512, 1024, 8192], "r": [0.1, 0.25, 0.5, 0.75], "p": [0.01, 0.02, 0.045, 0.1],
                  "seeds": [0, 1]},
}
ATLAS_PRESETS = ("atlas", "atlas-gpu")


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
    parser.add_argument("--recipe", choices=["reference", "fast"], default=None,
                        help="training recipe (docs/theory.md §9): reference (default) or fast (warm-up + cosine; "
                             "the atlas presets' default)")
    parser.add_argument("--atlas-csv", default=None, help="atlas presets: the CSV to write (default DIR/atlas.csv)")


def _check_args(args: argparse.Namespace) -> None:
    """Check every flag before anything trains; the grid flags are rewritten as plain value lists."""
    from rugtheory.app.cli._args import check_output_dir
    from rugtheory.theory.checks import check_int, parse_list
    from rugtheory.validation.steps import check_device

    check_output_dir(args.out, "--out")
    for flag in ("threads", "group_size"):
        if getattr(args, flag) is not None:
            check_int(getattr(args, flag), "--" + flag.replace("_", "-"), low=1)
    for flag, kind, linspace in (("n", int, False), ("r", float, True), ("p", float, True), ("seeds", int, False)):
        text = getattr(args, flag)
        if text is not None:
            setattr(args, flag, ",".join(repr(v) for v in parse_list(text, f"--{flag}", kind, linspace=linspace)))
    check_device(args.device, availability=args.backend != "ray")
    if getattr(args, "preset", None) in ATLAS_PRESETS:
        given = [flag for flag in ("spec", "n", "r", "p", "seeds", "steps", "name", "rug")
                 if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--preset {args.preset} fixes the grid, the sweep names, the rug setting and the "
                             f"recipe's steps; drop --{given[0]}")
    if getattr(args, "preset", None) == "atlas-gpu":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--preset atlas-gpu needs CUDA (it trains n = 8192) and none is available here; "
                             "use --preset atlas")


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile

    _check_args(args)
    from rugtheory.validation.figures import write_sweep_report
    from rugtheory.validation.sweep import run_sweep, spec_from_args

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.preset in ATLAS_PRESETS:
        return _run_atlas(args)
    if args.preset and not args.spec:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(PRESETS[args.preset], fh)
        args.spec = fh.name
    spec = spec_from_args(args)
    specs = [spec]
    if args.recipe == "fast":
        from dataclasses import replace

        from rugtheory.validation.train import recipe_fields

        specs = [replace(spec, n=(n,), name=f"{spec.name}-fast-n{n}",
                         train=dict(spec.train, **recipe_fields("fast", n))) for n in spec.n]
    for one in specs:
        store = run_sweep(one, args.out, backend=args.backend, device=args.device, progress=not args.no_progress,
                          ray_address=args.ray_address)
        path, count = write_sweep_report(store, one, args.out, title=args.title)
        print(f"wrote {path} ({count} models)")
    return 0


def _run_atlas(args: argparse.Namespace) -> int:
    """Train the atlas sweeps (smallest n first; resumable), then write the atlas CSV."""
    from pathlib import Path

    from rugtheory.validation.atlas import atlas_specs, coverage, write_atlas_csv
    from rugtheory.validation.sweep import run_sweep

    specs = atlas_specs(recipe=args.recipe or "fast", gpu=args.preset == "atlas-gpu")
    if args.group_size:  # models per batched program (and per store write: a kill loses at most one chunk)
        from dataclasses import replace

        specs = [replace(spec, group_size=args.group_size) for spec in specs]
    csv_path = Path(args.atlas_csv) if args.atlas_csv else Path(args.out) / "atlas.csv"
    for spec in specs:
        store = run_sweep(spec, args.out, backend=args.backend, device=args.device, progress=not args.no_progress,
                          ray_address=args.ray_address)
        info = store.last_sweep
        print(f"sweep {spec.name}: {info['runs']} runs, {info['trained']} trained, {info['stored']} already stored",
              flush=True)
        path, rows = write_atlas_csv(args.out, csv_path, grid=specs)  # after every sweep: kept current
    print(f"wrote {path} ({len(rows)} rows)")
    for line in coverage(rows):
        print("  " + line)
    return 0
