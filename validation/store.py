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

Damage detection. Each row records the size and SHA-256 of its ``weights.safetensors`` and
``config.json`` (columns ``weights_bytes``, ``weights_sha256``, ``config_bytes``, ``config_sha256``;
stores written before these columns existed are migrated with ``ALTER TABLE`` and their old rows
are *unverified*: :meth:`ResultStore.check_run` then only checks that the files load and have the
shapes of the row's ``n`` and ``m``). :meth:`ResultStore.check_run` says what is wrong with a
finished run's files (missing, wrong size, wrong checksum); the sweep re-trains such a run and
says so on stderr. The database itself is created under a temporary name and moved into place,
so an existing ``results.sqlite`` is never legitimately empty: an empty, truncated or foreign
file raises :class:`StoreDamagedError` (a ``ValueError``; one line naming the file) and is never
written to.

Sweep membership: table ``sweep_runs`` (``sweep``, ``run_id``) lists the runs of the spec last
recorded under each sweep name, so :meth:`ResultStore.rows` with ``sweep=NAME`` returns exactly
that spec's finished runs, wherever (under whichever sweep name) they were trained first.
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

__all__ = ["ResultStore", "StoreDamagedError", "run_id", "COLUMNS", "file_digest"]

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
    "weights_bytes": "INTEGER",
    "weights_sha256": "TEXT",
    "config_bytes": "INTEGER",
    "config_sha256": "TEXT",
}

#: Files of a run whose size and checksum the row records: file name -> column prefix.
_CHECKED_FILES = {"weights.safetensors": "weights", "config.json": "config"}

#: Test hook: ``"K:files"`` or ``"K:row"`` makes the K-th :meth:`ResultStore.save` of this process
#: SIGKILL the process right after the run's files are in place (before its row is committed), or
#: right after its row is committed. Used by the kill -9 resume tests; never set it otherwise.
KILL_ENV = "RUGTHEORY_TEST_SIGKILL_AT_SAVE"


class StoreDamagedError(ValueError):
    """The store's ``results.sqlite`` is empty, truncated or not a SQLite database."""


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


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            size += len(chunk)
            h.update(chunk)
    return size, h.hexdigest()


_SAVES = 0


def _maybe_kill(point: str) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    k, _, where = spec.partition(":")
    if where == point and int(k) == _SAVES:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


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
        #: What the last :func:`rugtheory.validation.sweep.run_sweep` on this store did (set by it).
        self.last_sweep: dict[str, Any] | None = None
        if not self.db_path.exists():
            self._create()
        self._check_database()
        with self._connect() as con:
            self._create_tables(con)
            have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            for name, kind in COLUMNS.items():  # migration: columns added since the store was written
                if name not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind.replace(' PRIMARY KEY', '')}")

    @staticmethod
    def _create_tables(con: sqlite3.Connection) -> None:
        cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
        con.execute("CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, spec TEXT, created REAL)")
        con.execute("CREATE TABLE IF NOT EXISTS sweep_runs (sweep TEXT, run_id TEXT, PRIMARY KEY (sweep, run_id))")

    def _create(self) -> None:
        """A new database, built under a temporary name and moved into place (never seen half-made)."""
        tmp = self.db_path.with_name(self.db_path.name + f".tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(tmp)
        try:
            with con:
                self._create_tables(con)
        finally:
            con.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.db_path)

    def _damaged(self, why: str) -> StoreDamagedError:
        size = self.db_path.stat().st_size if self.db_path.exists() else 0
        return StoreDamagedError(
            f"{self.db_path}: damaged results database ({why}; {size} bytes); not touched: "
            "restore it from a backup or move it away to start a new store")

    def _check_database(self) -> None:
        if self.db_path.stat().st_size == 0:
            raise self._damaged("empty file")
        try:
            con = sqlite3.connect(self.db_path, timeout=60)
            try:
                result = con.execute("PRAGMA quick_check").fetchall()
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise self._damaged(str(exc)) from None
        if result != [("ok",)]:
            raise self._damaged("integrity check: " + "; ".join(str(r[0]) for r in result[:3]))
        if not {"runs", "sweeps"} <= tables:
            raise self._damaged(f"not a results store: tables {sorted(tables)}")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=60)
        con.execute("PRAGMA synchronous=FULL")
        return con

    # ------------------------------------------------------------------ sweeps
    def record_sweep(self, name: str, spec: dict[str, Any], run_ids: Iterable[str] | None = None) -> None:
        """Record the spec of sweep ``name`` and (when given) the ids of its runs, replacing earlier ones."""
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO sweeps VALUES (?, ?, ?)", (name, _canonical(spec), time.time()))
            if run_ids is not None:
                con.execute("DELETE FROM sweep_runs WHERE sweep = ?", (name,))
                con.executemany("INSERT OR IGNORE INTO sweep_runs VALUES (?, ?)", [(name, r) for r in run_ids])

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

    def check_run(self, rid: str) -> str | None:
        """What is wrong with finished run ``rid``'s files (one phrase), or None when they are intact.

        Rows with recorded sizes and SHA-256 sums are checked against them; older rows without them
        (unverified) are checked by loading the weights and config and comparing the shapes with the
        row's ``n`` and ``m``.
        """
        with self._connect() as con:
            row = con.execute("SELECT n, m, weights_bytes, weights_sha256, config_bytes, config_sha256 FROM runs "
                              "WHERE run_id = ?", (rid,)).fetchone()
        if row is None:
            return "no row"
        n, m, *recorded = row
        folder = self.run_dir(rid)
        for (fname, _), (size, digest) in zip(_CHECKED_FILES.items(), (recorded[0:2], recorded[2:4])):
            path = folder / fname
            if not path.is_file():
                return f"{fname} missing"
            if size is None:
                continue
            actual = path.stat().st_size
            if actual != size:
                return f"{fname} damaged (size {actual}, expected {size})"
            if _hash_file(path)[1] != digest:
                return f"{fname} damaged (SHA-256 differs from the recorded one, size {actual})"
        if recorded[0] is None:  # an unverified row: check what can be checked
            try:
                w = self.load_weights(rid)
                shapes = {k: tuple(w[k].shape) for k in ("W_in", "W_out", "b")}
            except Exception as exc:  # noqa: BLE001 (any failure to load is damage)
                return f"weights.safetensors damaged (does not load: {type(exc).__name__}: {exc})"
            want = {"W_in": (m, n), "W_out": (n, m), "b": (n,)}
            if shapes != want:
                return f"weights.safetensors damaged (shapes {shapes}, expected {want})"
        if recorded[2] is None:
            try:
                self.load_config(rid)
            except (ValueError, UnicodeDecodeError) as exc:
                return f"config.json damaged (does not parse: {exc})"
        return None

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
        weights = st_save(tensors, metadata={"run_id": rid})
        config_json = (json.dumps(_json_safe(config), indent=2, sort_keys=True) + "\n").encode()
        _atomic_write(folder / "weights.safetensors", weights)
        _atomic_write(folder / "config.json", config_json)
        global _SAVES
        _SAVES += 1
        _maybe_kill("files")
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
            "weights_bytes": len(weights),
            "weights_sha256": file_digest(weights),
            "config_bytes": len(config_json),
            "config_sha256": file_digest(config_json),
        }
        with self._connect() as con:
            con.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        _maybe_kill("row")
        return rid

    def rows(self, *, sweep: str | None = None) -> list[dict[str, Any]]:
        """Every finished run as a flat dict: the columns, with ``metrics`` merged in (nulls as NaN).

        ``sweep=NAME``: the finished runs of the spec last recorded under that name (table
        ``sweep_runs``), whichever sweep trained them; for a name recorded without run ids (stores
        written before that table existed), the runs trained under that name.
        """
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            if sweep is None:
                raw = con.execute("SELECT * FROM runs ORDER BY n, r, p, seed").fetchall()
            elif con.execute("SELECT 1 FROM sweep_runs WHERE sweep = ? LIMIT 1", (sweep,)).fetchone():
                raw = con.execute("SELECT * FROM runs WHERE run_id IN (SELECT run_id FROM sweep_runs WHERE sweep = ?) "
                                  "ORDER BY n, r, p, seed", (sweep,)).fetchall()
            else:
                raw = con.execute("SELECT * FROM runs WHERE sweep = ? ORDER BY n, r, p, seed", (sweep,)).fetchall()
        out = []
        for r in raw:
            d = dict(r)
            metrics = json.loads(d.pop("metrics") or "{}")
            d["config"] = json.loads(d["config"])
            d["history"] = json.loads(d["history"])
            for k, v in metrics.items():
                d.setdefault(k, v)
            for k, v in list(d.items()):
                if v is None and k not in ("sweep", "weights_sha256", "config_sha256"):
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
