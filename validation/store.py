"""Results store of a sweep: SQLite (stdlib ``sqlite3``) plus safetensors weights and JSON configs.

Layout under the store's directory::

    results.sqlite                      one row per finished run (table ``runs``), the sweep spec (``sweeps``)
    runs/<run_id>/config.json           the TrainConfig (and the evaluation settings), as JSON
    runs/<run_id>/weights.safetensors   W_in (m×n), W_out (n×m), b (n,) as trained; never pickles

``run_id`` is a hash of the config's canonical JSON, so the same config always maps to the same
run and a resumed sweep recognises what is done.

Crash safety (kill -9 at any instant): files are written to a temporary name, flushed, fsynced
and moved into place with ``os.replace``; only then is the row inserted in one SQLite
transaction (``synchronous=FULL``). A run counts as done exactly when its row exists, so a killed
sweep never loses a finished run and never records a half-written one; a leftover file without a
row is simply rewritten on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultStore", "run_id", "COLUMNS"]

#: Scalar columns of table ``runs`` (everything else lives in the JSON column ``metrics``).
COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY",
    "sweep": "TEXT",
    "n": "INTEGER",
    "m": "INTEGER",
    "r": "REAL",
    "p": "REAL",
    "seed": "INTEGER",
    "status": "TEXT",
    "converged": "INTEGER",
    "steps_run": "INTEGER",
    "heldout_loss": "REAL",
    "heldout_se": "REAL",
    "train_seconds": "REAL",
    "metrics": "TEXT",
    "config": "TEXT",
    "history": "TEXT",
    "created": "REAL",
}


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def run_id(config: dict[str, Any]) -> str:
    """Stable id of a run: the first 16 hex digits of the SHA-256 of its canonical JSON config."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null (read back as NaN by :meth:`ResultStore.rows`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ResultStore:
    """SQLite + safetensors store of finished runs (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "runs").mkdir(exist_ok=True)
        self.db_path = self.root / "results.sqlite"
        with self._connect() as con:
            cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
            con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
            con.execute("CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, spec TEXT, created REAL)")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=60)
        con.execute("PRAGMA synchronous=FULL")
        return con

    # ------------------------------------------------------------------ sweeps
    def record_sweep(self, name: str, spec: dict[str, Any]) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO sweeps VALUES (?, ?, ?)", (name, _canonical(spec), time.time()))

    def sweep_spec(self, name: str) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT spec FROM sweeps WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ------------------------------------------------------------------ runs
    def done_ids(self) -> set[str]:
        with self._connect() as con:
            return {r[0] for r in con.execute("SELECT run_id FROM runs")}

    def run_dir(self, rid: str) -> Path:
        return self.root / "runs" / rid

    def save(self, config: dict[str, Any], model: Any, metrics: dict[str, Any], *, sweep: str = "") -> str:
        """Write the weights, the config JSON, then the row (in that order; see the module docstring).

        ``model`` is a :class:`rugtheory.validation.train.TrainedModel`; ``config`` is the dict the run id is
        computed from (the TrainConfig fields plus evaluation settings).
        """
        from safetensors.numpy import save as st_save

        rid = run_id(config)
        folder = self.run_dir(rid)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "W_in": np.ascontiguousarray(model.W_in),
            "W_out": np.ascontiguousarray(model.W_out),
            "b": np.ascontiguousarray(model.b),
        }
        _atomic_write(folder / "weights.safetensors", st_save(tensors, metadata={"run_id": rid}))
        _atomic_write(folder / "config.json", (json.dumps(_json_safe(config), indent=2, sort_keys=True) + "\n").encode())
        row = {
            "run_id": rid,
            "sweep": sweep,
            "n": model.config.n,
            "m": model.config.m,
            "r": model.config.m / model.config.n,
            "p": model.config.p,
            "seed": model.config.seed,
            "status": model.status,
            "converged": int(bool(model.converged)),
            "steps_run": int(model.steps_run),
            "heldout_loss": model.heldout_loss if math.isfinite(model.heldout_loss) else None,
            "heldout_se": model.heldout_se if math.isfinite(model.heldout_se) else None,
            "train_seconds": float(model.train_seconds),
            "metrics": json.dumps(_json_safe(metrics), sort_keys=True),
            "config": _canonical(_json_safe(config)),
            "history": json.dumps(_json_safe({
                "train_ema": model.history,
                "confirm": model.confirm_history,
                "converged_step": model.converged_step,
                "nonfinite_step": model.nonfinite_step,
            })),
            "created": time.time(),
        }
        with self._connect() as con:
            con.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        return rid

    def rows(self, *, sweep: str | None = None) -> list[dict[str, Any]]:
        """Every finished run as a flat dict: the columns, with ``metrics`` merged in (nulls as NaN)."""
        query = "SELECT * FROM runs" + (" WHERE sweep = ?" if sweep is not None else "") + " ORDER BY n, r, p, seed"
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            raw = con.execute(query, (sweep,) if sweep is not None else ()).fetchall()
        out = []
        for r in raw:
            d = dict(r)
            metrics = json.loads(d.pop("metrics") or "{}")
            d["config"] = json.loads(d["config"])
            d["history"] = json.loads(d["history"])
            for k, v in metrics.items():
                d.setdefault(k, v)
            for k, v in list(d.items()):
                if v is None and k not in ("sweep",):
                    d[k] = math.nan
            out.append(d)
        return out

    def load_weights(self, rid: str) -> dict[str, np.ndarray]:
        """``{"W_in", "W_out", "b"}`` of a finished run."""
        from safetensors.numpy import load_file

        return load_file(str(self.run_dir(rid) / "weights.safetensors"))

    def load_config(self, rid: str) -> dict[str, Any]:
        return json.loads((self.run_dir(rid) / "config.json").read_text())

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def ids(self, configs: Iterable[dict[str, Any]]) -> list[str]:
        return [run_id(c) for c in configs]
