"""``rugtheory validate``: train a sweep of real models and test every prediction against them.

    rugtheory validate --out DIR [--spec sweep.toml] [--n 64,128] [--r 0.1,0.25] [--p 0.01,0.05]
                       [--seeds 0,1] [--steps 10000] [--preset quick|paper] [--backend local|ray]

Trains (or resumes: finished runs in DIR are kept) every model of the sweep with
:mod:`rugtheory.validation.sweep`, then writes ``DIR/validation.md`` with the paper's figures (loss vs r and
vs p for the trained models of each n, the rug, L* and the linear baseline), heatmaps over (r, p)
of each symmetry statistic and of the prediction errors, and a predicted-vs-measured table.
Presets: ``quick`` (the main report's CPU-sized grid) and ``paper`` (n = 128 … 8192, r and p on
``linspace(0.002001, 0.8, 20)``: a GPU job). Torch is imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run", "PRESETS"]

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
                                   description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named grid (flags override its fields)")
    parser.add_argument("--title", default="Validation against trained models")


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    from rugtheory.validation.figures import write_section
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
    rows = store.rows(sweep=spec.name)
    text = write_section(rows, Path(args.out), title=args.title,
                         intro=f"Sweep `{spec.name}`: {len(rows)} models; spec `{json.dumps(spec.to_dict())}`.")
    path = Path(args.out) / "validation.md"
    path.write_text(text)
    print(f"wrote {path} ({len(rows)} models)")
    return 0
