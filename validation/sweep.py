"""Sweeps over (n, r, p, seed): spec, local and Ray backends, resumable results.

A spec is a TOML or JSON file (or the same fields on the command line)::

    name = "paper-small"
    n = [64, 128]
    r = [0.1, 0.25, 0.5]
    p = [0.01, 0.045, 0.1]
    seeds = [0]
    group_size = 32          # models per batched tensor program
    rug = "theory"           # rug loss at each (n, r, p): "theory" (theory scalars, Monte Carlo) or "none"
    exact = true             # exact finite-n loss of each model's own weights (docs/theory.md §7)
    [train]                  # any TrainConfig field except n, m, p, seed
    steps = 4000

``m = clip(round(r n), 1, n)``; configs that coincide after rounding are trained once.

The whole spec is checked before anything trains: a bad field raises a one-line ``ValueError``
naming the field, the file and the allowed values (booleans must be real TOML/JSON booleans,
numbers real numbers, ``train`` a table of TrainConfig fields of the right types); a file that
does not parse raises one naming the file and the line. ``name`` is a file-name-safe word
(letters, digits, ``.``, ``_``, ``-``): the report of sweep NAME is ``validation-NAME.md``
(:func:`rugtheory.validation.figures.write_sweep_report`), so sweeps sharing a store never
overwrite each other's report.

On resume every stored run of the spec is verified (:meth:`ResultStore.check_run`: size and
SHA-256 of its files); a damaged or missing one is re-trained, with a line on stderr
(``run <id>: weights.safetensors damaged (size X, expected Y); re-training``). A damaged
``results.sqlite`` raises :class:`rugtheory.validation.store.StoreDamagedError` (a ValueError)
and is left as it is.

Run it: ``python -m rugtheory.validation.sweep --spec spec.toml --out DIR`` (or ``rugtheory validate``).
Models of one ``n`` train together in chunks of ``group_size`` (one batched program each); each
model is evaluated (:mod:`rugtheory.validation.evaluate`) and stored (:mod:`rugtheory.validation.store`) the moment it
finishes, so ``kill -9`` loses at most the models still training, and running the same command
again skips every stored run.

Backends: ``"local"`` (default; this process, CUDA when available) and ``"ray"`` (``pip install
ray``; imported lazily). With Ray each chunk is one task (``num_gpus`` per task configurable); the
driver stores results as tasks finish, so resumption works the same way. ``ray_address=None``
starts or joins a local instance (``ray.init()``), else joins the given cluster address.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rugtheory.theory.checks import check_int, check_probability, check_ratio, check_seed, parse_list

__all__ = ["SweepSpec", "load_spec", "expand", "run_sweep", "main"]

_TRAIN_FIELDS_FIXED = ("n", "m", "p", "seed")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _real(v: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = True,
          high_open: bool = False) -> float:
    lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
    if not _is_real(v):
        raise ValueError(f"{name} must be a real number in {lo}, {hi}, got {v!r}")
    v = float(v)
    if math.isnan(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise ValueError(f"{name} must be a real number in {lo}, {hi}, got {v!r}")
    return v


def _check_train(train: Any) -> dict[str, Any]:
    """``train`` as a dict of TrainConfig fields of the right Python types (ranges: TrainConfig)."""
    from rugtheory.validation.train import TrainConfig

    if not isinstance(train, dict):
        raise ValueError(f"train must be a table of TrainConfig fields, got {train!r}")
    kinds = {f.name: str(f.type) for f in fields(TrainConfig) if f.name not in _TRAIN_FIELDS_FIXED}
    bad = sorted(set(train) - set(kinds))
    if bad:
        raise ValueError(f"train may set only {sorted(kinds)}, got {bad}")
    for key, value in train.items():
        kind = kinds[key]
        ok = {"int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
              "float": _is_real, "float | None": lambda v: v is None or _is_real(v),
              "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str)}.get(kind, lambda v: True)
        if not ok(value):
            what = {"int": "an integer", "float": "a real number", "float | None": "a real number",
                    "bool": "a boolean (true or false)", "str": "a string"}[kind]
            raise ValueError(f"train.{key} must be {what}, got {value!r}")
    try:
        TrainConfig(n=1, m=1, p=1.0, seed=0, **train)
    except ValueError as exc:
        raise ValueError(f"train.{exc}") from None
    return dict(train)


@dataclass(frozen=True)
class SweepSpec:
    """A grid of models to train and evaluate (see the module docstring)."""

    n: tuple[int, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)
    name: str = "sweep"
    train: dict[str, Any] = field(default_factory=dict)
    group_size: int = 32
    rug: str = "theory"
    rug_rel_se: float = 0.01
    rug_max_seconds: float = 20.0
    stats_seed: int = 0
    exact: bool = True
    exact_max_nodes: int = 1 << 15

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"name must be 1-100 letters, digits, '.', '_' or '-' (not first), got {self.name!r}")
        object.__setattr__(self, "n", tuple(check_int(v, "n", low=1) for v in _as_list(self.n)))
        object.__setattr__(self, "r", tuple(_real(v, "r", low=0, high=1) for v in _as_list(self.r)))
        object.__setattr__(self, "p", tuple(_real(v, "p", low=0, high=1) for v in _as_list(self.p)))
        object.__setattr__(self, "seeds", tuple(check_seed(v, "seeds") for v in _as_list(self.seeds)))
        for name in ("n", "r", "p", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must hold at least one value, got none")
        for v in self.r:
            check_ratio(v, "r")
        for v in self.p:
            check_probability(v, "p")
        object.__setattr__(self, "train", _check_train(self.train))
        check_int(self.group_size, "group_size", low=1)
        if self.rug not in ("theory", "none"):
            raise ValueError(f"rug must be one of 'theory', 'none', got {self.rug!r}")
        object.__setattr__(self, "rug_rel_se", _real(self.rug_rel_se, "rug_rel_se", low=0, high=math.inf,
                                                     high_open=True))
        object.__setattr__(self, "rug_max_seconds", _real(self.rug_max_seconds, "rug_max_seconds", low=0))
        check_seed(self.stats_seed, "stats_seed")
        if not isinstance(self.exact, bool):
            raise ValueError(f"exact must be a boolean (true or false), got {self.exact!r}")
        check_int(self.exact_max_nodes, "exact_max_nodes", low=16)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("n", "r", "p", "seeds"):
            d[k] = list(d[k])
        return d

    @property
    def evaluation(self) -> dict[str, Any]:
        return {"rug": self.rug, "rug_rel_se": self.rug_rel_se, "rug_max_seconds": self.rug_max_seconds,
                "stats_seed": self.stats_seed, "exact": self.exact, "exact_max_nodes": self.exact_max_nodes}


def _as_list(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _parse_spec_file(path: Path) -> dict[str, Any]:
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"spec must be a .toml or .json file, got {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the spec: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
            if m:
                raise ValueError(f"{path} line {m[1]}: {msg[: m.start()]} (column {m[2]})") from None
            if msg.endswith("(at end of document)"):
                last = max(1, len(text.splitlines()))
                raise ValueError(f"{path} line {last}: {msg.removesuffix(' (at end of document)')} "
                                 "(at the end of the file)") from None
            raise ValueError(f"{path}: {msg}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {exc.lineno}: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a spec must be a table/object of fields, got {type(data).__name__}")
    return data


def _spec_from_data(data: dict[str, Any], path: Path | None) -> SweepSpec:
    where = f"{path}: " if path is not None else ""
    known = {f.name for f in fields(SweepSpec)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}spec may hold only {sorted(known)}, got {sorted(unknown)}")
    for key in ("n", "r", "p"):
        if key not in data:
            raise ValueError(f"{where}{key} is required (set it in the spec file or give --{key})")
    try:
        return SweepSpec(**data)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read a spec from a ``.toml`` or ``.json`` file; any problem is a one-line ValueError naming the file."""
    path = Path(path)
    return _spec_from_data(_parse_spec_file(path), path)


def expand(spec: SweepSpec) -> list[Any]:
    """Every distinct TrainConfig of the grid, ordered by n, then seed, r, p."""
    from rugtheory.validation.train import TrainConfig

    out, seen = [], set()
    for n in spec.n:
        for seed in spec.seeds:
            for r in spec.r:
                m = min(n, max(1, int(round(r * n))))
                for p in spec.p:
                    cfg = TrainConfig(n=n, m=m, p=p, seed=seed, **spec.train)
                    if cfg not in seen:
                        seen.add(cfg)
                        out.append(cfg)
    return out


def _chunks(configs: list[Any], size: int) -> list[list[Any]]:
    by_n: dict[int, list[Any]] = {}
    for c in configs:
        by_n.setdefault(c.n, []).append(c)
    out = []
    for n in sorted(by_n):
        group = by_n[n]
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    return out


def _train_and_evaluate(
    configs: list[Any], evaluation: dict[str, Any], device: str | None, progress: bool,
    on_done: Callable[[Any, dict[str, Any]], None],
) -> None:
    from rugtheory.validation.evaluate import evaluate_model
    from rugtheory.validation.train import train_models

    def handle(_: int, model: Any) -> None:
        on_done(model, evaluate_model(model, **evaluation))

    train_models(configs, device=device, progress=progress, on_result=handle)


def _ray_task(config_dicts: list[dict[str, Any]], evaluation: dict[str, Any], device: str | None) -> list[Any]:
    """Body of one Ray task: train a chunk, evaluate, return plain data (numpy arrays and dicts)."""
    from rugtheory.validation.train import TrainConfig

    out: list[Any] = []
    _train_and_evaluate([TrainConfig(**d) for d in config_dicts], evaluation, device, False,
                        lambda model, metrics: out.append((model, metrics)))
    return out


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    backend: str = "local",
    device: str | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    ray_num_gpus: float = 0.0,
    verify: bool = True,
    reverse: bool = False,
) -> Any:
    """Train and evaluate every model of ``spec`` not yet in the store at ``out_dir``; return the store.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : path
        Store directory (created); see :class:`rugtheory.validation.store.ResultStore`.
    backend : {"local", "ray"}
    device : str, optional
        Torch device for training (default: CUDA when available, else CPU).
    progress : bool
        tqdm bars (chunks done; steps within a chunk for the local backend).
    ray_address, ray_num_gpus
        Ray cluster address (None: local instance) and GPUs per task.
    verify : bool
        Check the files of every stored run of the spec (size and SHA-256; reads every weight
        file once) and re-train the damaged ones; False checks only that each run has a row.
    reverse : bool
        Train the chunks last first. Two workers on one store (one plain, one ``reverse``) then split a
        sweep between them: before each chunk (local backend) the store is read again and models another
        worker stored meanwhile are skipped, so they meet in the middle with at most one chunk trained twice
        (the same config and seed give the same model; the later save replaces the earlier one).

    The returned store's ``last_sweep`` says what happened: ``{"runs", "stored", "damaged",
    "trained"}`` (``damaged``: the run ids re-trained because their files were damaged).
    """
    from rugtheory.validation.store import ResultStore, run_id

    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be one of 'local', 'ray', got {backend!r}")
    store = ResultStore(out_dir)
    configs = expand(spec)
    ids = [run_id(c.to_dict()) for c in configs]
    store.record_sweep(spec.name, spec.to_dict(), ids)
    done = store.done_ids()
    damaged = []
    if verify:
        for rid in ids:
            if rid in done and (why := store.check_run(rid)) is not None:
                print(f"run {rid}: {why}; re-training", file=sys.stderr, flush=True)
                damaged.append(rid)
                done.discard(rid)
    todo = [c for c, rid in zip(configs, ids) if rid not in done]
    store.last_sweep = {"runs": len(configs), "stored": len(configs) - len(todo), "damaged": damaged,
                        "trained": len(todo)}
    chunks = _chunks(todo, spec.group_size)
    if reverse:
        chunks = chunks[::-1]

    def save(model: Any, metrics: dict[str, Any]) -> None:
        store.save(model.config.to_dict(), model, metrics, sweep=spec.name)

    bar = None
    if progress and chunks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="model")
    if backend == "local":
        for chunk in chunks:
            if len(chunks) > 1:  # another worker may have stored some of these since the sweep started
                fresh = store.done_ids()
                left = [c for c in chunk if run_id(c.to_dict()) not in fresh]
                store.last_sweep["trained"] -= len(chunk) - len(left)
                store.last_sweep["stored"] += len(chunk) - len(left)
                chunk = left
                if not chunk:
                    continue

            def save_and_tick(model: Any, metrics: dict[str, Any]) -> None:
                save(model, metrics)
                if bar is not None:
                    bar.update(1)

            _train_and_evaluate(chunk, spec.evaluation, device, progress, save_and_tick)
    else:
        _run_ray(chunks, spec, device, ray_address, ray_num_gpus, save, bar)
    if bar is not None:
        bar.close()
    return store


def _run_ray(chunks, spec, device, address, num_gpus, save, bar) -> None:  # noqa: ANN001
    try:
        import ray
    except ImportError as exc:  # the optional extra
        raise ValueError("backend 'ray' needs the optional dependency ray (pip install 'rugtheory[ray]')") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_gpus=num_gpus)(_ray_task)
    pending = [task.remote([c.to_dict() for c in chunk], spec.evaluation, device) for chunk in chunks]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for model, metrics in ray.get(ready[0]):
            save(model, metrics)
            if bar is not None:
                bar.update(1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sweep options shared by ``python -m rugtheory.validation.sweep`` and ``rugtheory validate``."""
    parser.add_argument("--spec", help="TOML or JSON sweep spec (CLI grid flags override its fields)")
    parser.add_argument("--out", required=True, help="store directory (SQLite + safetensors + JSON)")
    parser.add_argument("--n", help="comma-separated n values")
    parser.add_argument("--r", help="comma-separated r values, or linspace:a:b:k")
    parser.add_argument("--p", help="comma-separated p values, or linspace:a:b:k")
    parser.add_argument("--seeds", help="comma-separated seeds")
    parser.add_argument("--steps", type=int, help="maximum steps per model")
    parser.add_argument("--name", help="sweep name")
    parser.add_argument("--group-size", type=int, help="models per batched program")
    parser.add_argument("--rug", choices=["theory", "none"], help="compute the rug loss at each (n, r, p)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The spec file's fields (if ``--spec``) overridden by the grid flags, checked as a whole."""
    data: dict[str, Any] = {}
    path = Path(args.spec) if args.spec else None
    if path is not None:
        data = _parse_spec_file(path)
    if args.n:
        data["n"] = parse_list(args.n, "--n", int)
    if args.r:
        data["r"] = parse_list(args.r, "--r", float, linspace=True)
    if args.p:
        data["p"] = parse_list(args.p, "--p", float, linspace=True)
    if args.seeds:
        data["seeds"] = parse_list(args.seeds, "--seeds", int)
    if args.name:
        data["name"] = args.name
    if args.group_size:
        data["group_size"] = args.group_size
    if args.rug:
        data["rug"] = args.rug
    if args.steps is not None:
        if not isinstance(data.get("train", {}), dict):
            return _spec_from_data(data, path)  # reports the bad train field
        data["train"] = dict(data.get("train", {}), steps=args.steps)
    return _spec_from_data(data, path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rugtheory.validation.sweep --spec FILE --out DIR``: run (or resume) a sweep."""
    parser = argparse.ArgumentParser(prog="python -m rugtheory.validation.sweep", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from rugtheory.validation.steps import check_device

    try:
        for flag in ("threads", "group_size"):
            if getattr(args, flag) is not None:
                check_int(getattr(args, flag), "--" + flag.replace("_", "-"), low=1)
        check_device(args.device, availability=args.backend != "ray")
        spec = spec_from_args(args)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        start = time.perf_counter()
        store = run_sweep(spec, args.out, backend=args.backend, device=args.device,
                          progress=not args.no_progress, ray_address=args.ray_address)
    except ValueError as exc:
        print(f"rugtheory.validation.sweep: error: {exc}", file=sys.stderr)
        return 2
    info = store.last_sweep
    print(f"sweep {spec.name}: {info['runs']} runs, {info['trained']} trained ({len(info['damaged'])} of them "
          f"re-trained after damage), {info['stored']} already stored; {len(store)} runs in {store.db_path} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
