"""The atlas builder (rugtheory.validation.atlas) on a tiny store: every column, every run, honest statuses.

A store at n = 16 with four atlas sweeps: one whose models run out of steps (not converged), one
whose loose rule fires at once (converged), one with an lr that overflows (non-finite), and one
recorded but never trained (pending). The CSV must hold exactly one row per grid model of those
sweeps, with every column of COLUMNS, and keep a run whose weights were damaged.
"""

from __future__ import annotations

import csv
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

from rugtheory.validation.atlas import COLUMNS, atlas_rows, atlas_specs, main, recipe_of  # noqa: E402
from rugtheory.validation.store import ResultStore, run_id  # noqa: E402
from rugtheory.validation.sweep import SweepSpec, expand, run_sweep  # noqa: E402

pytestmark = pytest.mark.training

_TRAIN = {"steps": 60, "batch": 64, "eval_samples": 2048, "confirm_samples": 256, "check_every": 10, "window": 10,
          "min_steps": 0, "rel_tol": 0.0, "dtype": "float64"}


def _spec(name: str, **train) -> SweepSpec:
    return SweepSpec(n=(16,), r=(0.25, 0.5), p=(0.05, 0.2), seeds=(0,), name=name, train=dict(_TRAIN, **train),
                     rug="none")


@pytest.fixture(autouse=True)
def _quick_finite_n(monkeypatch):
    """finite_n_predictions (tested in its own module) costs ~10 CPU s per point: a stand-in here,
    which fails at p = 0.2 to show that a failure is recorded in the row, not raised."""
    import types

    from rugtheory.constructions import finite_n_predictions as fnp
    from rugtheory.validation import atlas

    def fake(n, m, p, *, seed=0):
        if p == 0.2:
            raise RuntimeError("stand-in failure")
        return types.SimpleNamespace(expected=types.SimpleNamespace(loss=0.001 * m / n, error=1e-9,
                                                                    notes=("exact", "stand-in")))

    monkeypatch.setattr(fnp, "finite_n_predictions", fake)
    monkeypatch.setattr(atlas, "_EXPECTED_CACHE", {})
    monkeypatch.setattr(atlas, "_source_key", lambda: "test")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("atlas_store")
    run_sweep(_spec("atlas-slow"), out, progress=False)                       # rel_tol 0: never converges
    run_sweep(_spec("atlas-conv", rel_tol=10.0, min_steps=20, steps=50), out, progress=False)
    run_sweep(_spec("atlas-bad", lr=1e300, steps=30), out, progress=False)   # overflows: non-finite
    pending = _spec("atlas-todo", steps=70)
    store = ResultStore(out)
    store.record_sweep(pending.name, pending.to_dict(), [run_id(c.to_dict()) for c in expand(pending)])
    run_sweep(_spec("other", steps=40), out, progress=False)                  # not an atlas sweep
    return out


def test_every_run_is_a_row_with_every_column(store_dir):
    rows = atlas_rows(store_dir)
    ids = {run_id(c.to_dict()) for name in ("atlas-slow", "atlas-conv", "atlas-bad", "atlas-todo")
           for c in expand(_spec(name) if name == "atlas-slow" else
                           _spec(name, **{"atlas-conv": dict(rel_tol=10.0, min_steps=20, steps=50),
                                          "atlas-bad": dict(lr=1e300, steps=30), "atlas-todo": dict(steps=70)}[name]))}
    assert {r["run_id"] for r in rows} == ids and len(rows) == 16  # nothing dropped, nothing foreign
    status, verdict = {}, {}
    for r in rows:
        status.setdefault(r["sweep"], set()).add(r["status"])
        verdict.setdefault(r["sweep"], set()).add(r.get("rule_converged"))
    # 60 steps at n = 16 leave most features unlearned: "dead features" outranks the rule's verdict
    # in ``status``; the verdict itself is in ``rule_converged``.
    assert status["atlas-slow"] <= {"not converged", "dead features"} and verdict["atlas-slow"] == {False}
    assert status["atlas-conv"] <= {"converged", "dead features"} and verdict["atlas-conv"] == {True}
    assert status["atlas-bad"] == {"non-finite"} and verdict["atlas-bad"] == {False}
    assert status["atlas-todo"] == {"pending"}
    for r in rows:
        if r["status"] == "dead features":
            assert r["dead_fraction"] > r["expected_dropped_fraction"] + 0.02
        elif r["status"] in ("converged", "not converged"):
            assert r["dead_fraction"] <= r["expected_dropped_fraction"] + 0.02
    for r in rows:
        assert r["lstar"] > 0 and r["expected_large_n_loss"] > 0 and r["expected_structure"]
        if r["status"] in ("pending", "non-finite"):
            continue
        assert r["heldout_se"] > 0 and math.isfinite(r["exact_finite_n"]) and r["steps_run"] > 0
        assert math.isfinite(r["l_inf"]) or r["l_inf_note"].startswith("no fit")
        assert 0 <= r["dead_fraction"] <= 1 and r["built_structure"]
        # the exact finite-n loss of the weights agrees with the held-out loss (docs/theory.md §12, finding 4):
        # 5 SE of the 2048-sample held-out estimate plus the exact route's own error bound
        assert abs(r["exact_finite_n"] - r["heldout_loss"]) <= 5 * r["heldout_se"] + r["exact_finite_n_error"]
        assert r["rule_converged"] == (r["rule_step"] is not None)
    for r in rows:
        if r["status"] == "pending":
            assert math.isnan(r["expected_finite_n_loss"])
            assert "once the model is trained" in r["expected_finite_n_note"]
        elif r["p"] == 0.2:
            assert math.isnan(r["expected_finite_n_loss"]) and "stand-in failure" in r["expected_finite_n_note"]
        else:
            assert r["expected_finite_n_loss"] == 0.001 * r["m"] / r["n"] and r["expected_finite_n_note"] == "stand-in"
        if r["status"] == "non-finite":
            assert math.isnan(r["heldout_loss"]) and "non-finite" in r["status_note"]
    assert {r["recipe"] for r in rows} == {"custom"}


def test_csv_from_the_command_line_and_damaged_weights_kept(store_dir, tmp_path):
    rows = atlas_rows(store_dir)
    victim = next(r for r in rows if r["sweep"] == "atlas-slow")
    weights = store_dir / "runs" / victim["run_id"] / "weights.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-8])
        out = tmp_path / "atlas" / "atlas.csv"
        assert main(["--store", str(store_dir), "--out", str(out), "--grid", "none"]) == 0
        lines = out.read_text().splitlines()
        assert lines[0].startswith("# generated by python -m rugtheory.validation.atlas") and "do not edit" in lines[0]
        assert any("INCOMPLETE" in line for line in lines if line.startswith("#"))
        body = [line for line in lines if not line.startswith("#")]
        table = list(csv.DictReader(body))
        assert list(table[0]) == COLUMNS and len(table) == 16
        damaged = next(t for t in table if t["run_id"] == victim["run_id"])
        assert damaged["status"] == "weights unreadable" and "damaged" in damaged["status_note"]
        assert damaged["heldout_loss"] != "" and damaged["built_structure"] == ""
    finally:
        weights.write_bytes(original)
    assert main(["--store", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.csv")]) == 2
    # with the atlas grid (the default): its 96 untrained models are rows too, marked pending
    rows = atlas_rows(store_dir, grid=atlas_specs(recipe="fast", reference_subset=False))
    assert len(rows) == 16 + 96 and sum(r["status"] == "pending" for r in rows) == 4 + 96


def test_specs_and_recipe_names():
    specs = atlas_specs(recipe="fast")
    assert [s.name for s in specs] == ["atlas-fast-n256", "atlas-fast-n512", "atlas-fast-n1024", "atlas-reference-n256"]
    assert sum(len(expand(s)) for s in specs[:3]) == 96
    assert all(recipe_of(c.to_dict()) == "fast" for s in specs[:3] for c in expand(s))
    assert all(recipe_of(c.to_dict()) == "reference" for c in expand(specs[3]))
    assert atlas_specs(recipe="fast", gpu=True)[3].n == (8192,)
    assert [s.name for s in atlas_specs(recipe="reference")][0] == "atlas-reference-n256"


def test_validate_preset_atlas_trains_and_writes_the_csv(tmp_path, monkeypatch, capsys):
    """``rugtheory validate --preset atlas`` end to end, with the grid swapped for a tiny one."""
    from rugtheory.app.cli import main as cli
    from rugtheory.validation import atlas

    monkeypatch.setattr(atlas, "atlas_specs", lambda **kw: [_spec("atlas-cli", steps=20)])
    out = tmp_path / "store"
    assert cli(["validate", "--out", str(out), "--preset", "atlas", "--no-progress", "--threads", "1",
                "--group-size", "3"]) == 0
    text = (out / "atlas.csv").read_text()
    assert "atlas-cli" in text and "do not edit" in text.splitlines()[0]
    assert "4 of 4 trained" in capsys.readouterr().out
    from rugtheory.validation.store import ResultStore

    assert ResultStore(out).sweep_spec("atlas-cli")["group_size"] == 3  # --group-size reaches the preset's sweeps
