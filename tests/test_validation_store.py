"""Results store damage detection, whole-spec validation before training, per-sweep reports."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

from rugtheory.validation.store import ResultStore, StoreDamagedError  # noqa: E402
from rugtheory.validation.sweep import SweepSpec, load_spec, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = {"steps": 100, "batch": 64, "eval_samples": 500, "check_every": 50, "window": 50, "min_steps": 50,
              "confirm_samples": 64}


def _spec(**kw) -> SweepSpec:
    base = dict(name="big", n=[16], r=[0.25], p=[0.1, 0.3], rug="none", exact=False, train=TINY_TRAIN, group_size=1)
    return SweepSpec(**(base | kw))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-run store, copied by each test that damages it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("store")
        run_sweep(_spec(), root, progress=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture
def store_copy(trained, tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dst = tmp_path / "store"
    shutil.copytree(trained, dst)
    yield dst
    torch.set_num_threads(threads)


def _rows(root: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in ResultStore(root).rows()}


# ----------------------------------------------------------------------------- damaged run files
@pytest.mark.training
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_folder", "delete_config"])
def test_damaged_run_is_retrained_and_said(store_copy, capsys, damage):
    before = _rows(store_copy)
    rid, other = sorted(before)
    weights = store_copy / "runs" / rid / "weights.safetensors"
    original = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(original[: len(original) // 2])
        expected = f"run {rid}: weights.safetensors damaged (size {len(original) // 2}, expected {len(original)}); " \
                   "re-training"
    elif damage == "flip":
        data = bytearray(original)
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))
        expected = f"run {rid}: weights.safetensors damaged (SHA-256 differs"
    elif damage == "delete_folder":
        shutil.rmtree(weights.parent)
        expected = f"run {rid}: weights.safetensors missing; re-training"
    else:
        (weights.parent / "config.json").unlink()
        expected = f"run {rid}: config.json missing; re-training"
    assert ResultStore(store_copy).check_run(other) is None
    store = run_sweep(_spec(), store_copy, progress=False, device="cpu")
    err = capsys.readouterr().err
    assert expected in err and err.count("re-training") == 1
    assert store.last_sweep["damaged"] == [rid] and store.last_sweep["trained"] == 1
    assert weights.read_bytes() == original  # deterministic re-training restores the same file
    assert store.check_run(rid) is None
    after = _rows(store_copy)
    assert after[other]["created"] == before[other]["created"]  # the intact run was not redone
    assert after[rid]["heldout_loss"] == before[rid]["heldout_loss"]
    # a second resume finds nothing wrong
    assert run_sweep(_spec(), store_copy, progress=False, device="cpu").last_sweep["trained"] == 0
    assert "re-training" not in capsys.readouterr().err


@pytest.mark.training
def test_old_store_without_checksums_is_migrated_and_checked_by_loading(store_copy, capsys):
    db = store_copy / "results.sqlite"
    con = sqlite3.connect(db)
    with con:  # the schema before the checksum columns and the sweep_runs table
        con.execute("DROP TABLE sweep_runs")
        for col in ("weights_bytes", "weights_sha256", "config_bytes", "config_sha256"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {col}")
    con.close()
    rid, other = sorted(_rows(store_copy))
    assert {r["n"] for r in ResultStore(store_copy).rows(sweep="big")} == {16}  # migrated; old-style sweep lookup
    weights = store_copy / "runs" / rid / "weights.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:100])
    store = ResultStore(store_copy)
    assert store.check_run(other) is None  # unverified but loads with the right shapes
    assert store.check_run(rid).startswith("weights.safetensors damaged (does not load")
    store = run_sweep(_spec(), store_copy, progress=False, device="cpu")
    assert f"run {rid}: weights.safetensors damaged (does not load" in capsys.readouterr().err
    assert store.last_sweep["damaged"] == [rid] and weights.read_bytes() == original
    assert store.check_run(rid) is None and _rows(store_copy)[rid]["weights_sha256"]  # re-written with checksums


# ----------------------------------------------------------------------------- damaged database
def _damage_db(db: Path, how: str) -> None:
    data = db.read_bytes()
    if how == "empty":
        db.write_bytes(b"")
    elif how == "truncated":
        db.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        db.write_bytes(bytes(range(256)) * 40)
    elif how == "foreign":  # a valid SQLite file that is not a results store
        db.unlink()
        con = sqlite3.connect(db)
        with con:
            con.execute("CREATE TABLE t (x)")
        con.close()


@pytest.mark.training
@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "foreign"])
def test_damaged_database_is_reported_and_not_touched(store_copy, how):
    db = store_copy / "results.sqlite"
    _damage_db(db, how)
    damaged = db.read_bytes()
    runs = sorted(p.name for p in (store_copy / "runs").iterdir())
    with pytest.raises(StoreDamagedError) as info:
        run_sweep(_spec(), store_copy, progress=False, device="cpu")
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    assert msg.startswith(f"{db}: damaged results database") and "not touched" in msg
    assert db.read_bytes() == damaged and sorted(p.name for p in (store_copy / "runs").iterdir()) == runs
    assert sorted(p.name for p in store_copy.iterdir()) == ["results.sqlite", "runs"]  # no journal, no temp file


def test_damaged_database_exits_2_from_the_sweep_command(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "rugtheory.validation.sweep", "--out", str(tmp_path), "--n", "16",
                           "--r", "0.5", "--p", "0.1", "--no-progress", "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "results.sqlite: damaged results database (empty file" in done.stderr
    assert (tmp_path / "results.sqlite").read_bytes() == b""


def test_new_store_database_is_complete_on_disk(tmp_path):
    store = ResultStore(tmp_path)
    assert store.db_path.stat().st_size > 0 and len(store) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite", "runs"]
    assert len(ResultStore(tmp_path)) == 0  # reopens cleanly


# ----------------------------------------------------------------------------- spec validation
GOOD = 'n = [16]\nr = [0.5]\np = [0.1]\n'

BAD_TOML = [
    ("rug_rel_se = -1", "rug_rel_se must be a real number in (0, inf), got -1.0"),
    ("rug_rel_se = \"0.1\"", "rug_rel_se must be a real number in (0, inf)"),
    ("rug_max_seconds = 0", "rug_max_seconds must be a real number in (0, inf]"),
    ('train = ""', "train must be a table of TrainConfig fields, got ''"),
    ("train = 5", "train must be a table of TrainConfig fields, got 5"),
    ('exact = "no"', "exact must be a boolean (true or false), got 'no'"),
    ("exact = 0", "exact must be a boolean (true or false), got 0"),
    ("exact_max_nodes = 4", "exact_max_nodes must be an integer in [16, inf], got 4"),
    ("group_size = 0", "group_size must be an integer in [1, inf], got 0"),
    ("group_size = 1.5", "group_size must be an integer, got 1.5"),
    ("group_size = true", "group_size must be an integer, got True"),
    ('rug = "maybe"', "rug must be one of 'theory', 'none', got 'maybe'"),
    ("stats_seed = -1", "stats_seed must be an integer in [0, inf], got -1"),
    ('name = "a/b"', "name must be 1-100 letters, digits"),
    ("seeds = [-1]", "seeds must be an integer in [0, inf], got -1"),
    ('seeds = ["0"]', "seeds must be an integer, got '0'"),
    ("[train]\nsteps = \"10\"", "train.steps must be an integer, got '10'"),
    ("[train]\nsteps = -1", "train.steps must be an integer in [0, inf], got -1"),
    ('[train]\nstop_on_convergence = "no"', "train.stop_on_convergence must be a boolean (true or false), got 'no'"),
    ('[train]\nlr = "fast"', "train.lr must be a real number, got 'fast'"),
    ('[train]\noptimizer = "sgd"', "train.optimizer must be one of 'adam', 'adamw', got 'sgd'"),
    ("[train]\ncheck_every = 100\nwindow = 150", "train.window must be a multiple of check_every=100, got 150"),
    ("[train]\nm = 3", "train may set only"),
    ("colour = 1", "spec may hold only"),
]


@pytest.mark.parametrize("extra, message", BAD_TOML, ids=[b[0].split("=")[0].strip() for b in BAD_TOML])
def test_bad_spec_field_is_one_line_naming_field_and_file(tmp_path, extra, message):
    path = tmp_path / "spec.toml"
    path.write_text(GOOD + extra + "\n")
    with pytest.raises(ValueError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and message in msg and "\n" not in msg, msg


@pytest.mark.parametrize("field, value, message", [
    ("n", [], "n must hold at least one value"),
    ("n", ["16"], "n must be an integer, got '16'"),
    ("n", [16.0], "n must be an integer, got 16.0"),
    ("r", [0], "r must be a real number in (0, 1], got 0.0"),
    ("p", [1.5], "p must be a real number in (0, 1], got 1.5"),
    ("p", [[0.1]], "p must be a real number in (0, 1], got [0.1]"),
    ("exact", "false", "exact must be a boolean"),
    ("train", [], "train must be a table"),
])
def test_bad_json_spec_field(tmp_path, field, value, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"n": [16], "r": [0.5], "p": [0.1], field: value}))
    with pytest.raises(ValueError, match="^" + str(path).replace("\\", "\\\\") + ": ") as info:
        load_spec(path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name, text, message", [
    ("spec.toml", 'n = [16]\nr = [0.5]\np = [0.1,\nseeds = [0]\n', "spec.toml line 4: "),
    ("spec.toml", 'n = [16]\nr = 0.5\nexact = no\n', "spec.toml line 3: "),
    ("spec.toml", 'n = [16]\nr = [0.5]\np = [0.1,\n', "spec.toml line 3: "),
    ("spec.json", '{"n": [16],\n "r": [0.5]\n "p": [0.1]}', "spec.json line 3: Expecting ',' delimiter"),
    ("spec.json", "[16]", "spec.json: a spec must be a table/object of fields, got list"),
    ("spec.json", '{"r": [0.5], "p": [0.1]}', "spec.json: n is required"),
    ("spec.toml", b"n = [16]\n\xff\n", "spec.toml: not UTF-8 text"),
])
def test_spec_parse_errors_name_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError) as info:
        load_spec(path)
    assert str(info.value).startswith(str(tmp_path / message.split(":")[0].split(" line")[0]))
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_bad_spec_exits_2_before_any_training(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD + "rug_rel_se = -1\n")
    out = tmp_path / "store"
    done = subprocess.run([sys.executable, "-m", "rugtheory.validation.sweep", "--spec", str(spec), "--out", str(out),
                           "--no-progress", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{spec}: rug_rel_se must be a real number in (0, inf), got -1.0" in done.stderr
    assert not out.exists()  # nothing was created, let alone trained


def test_cli_overrides_complete_a_partial_spec_file(tmp_path):
    from argparse import ArgumentParser

    from rugtheory.validation.sweep import add_arguments, spec_from_args

    path = tmp_path / "spec.toml"
    path.write_text('name = "part"\nr = [0.5]\np = [0.1]\n[train]\nsteps = 7\n')
    parser = ArgumentParser()
    add_arguments(parser)
    spec = spec_from_args(parser.parse_args(["--out", "x", "--spec", str(path), "--n", "16", "--steps", "9"]))
    assert spec.n == (16,) and spec.train == {"steps": 9}
    with pytest.raises(ValueError, match=r"spec\.toml: n is required"):
        spec_from_args(parser.parse_args(["--out", "x", "--spec", str(path)]))
    with pytest.raises(ValueError, match=r"^--n must be comma-separated integers, got '16x' in '16x'$"):
        spec_from_args(parser.parse_args(["--out", "x", "--n", "16x", "--r", "0.5", "--p", "0.1"]))
    with pytest.raises(
        ValueError, match=r"^--p must be comma-separated numbers or linspace:START:STOP:COUNT, got 'lin' in 'lin'$"
    ):
        spec_from_args(parser.parse_args(["--out", "x", "--n", "16", "--r", "0.5", "--p", "lin"]))


# ----------------------------------------------------------------------------- per-sweep report
@pytest.mark.training
def test_report_covers_exactly_its_own_spec(store_copy):
    from rugtheory.validation.figures import report_path, write_sweep_report

    store = ResultStore(store_copy)
    big = _spec()
    path_big, count_big = write_sweep_report(store, big)
    assert (path_big, count_big) == (report_path(store_copy, "big"), 2) and path_big.name == "validation-big.md"
    assert "Sweep `big`: 2 of its 2 models" in path_big.read_text()
    # a 1-model spec under another name, into the same store: nothing trains, the report counts 1
    small = _spec(name="small", p=[0.3])
    store = run_sweep(small, store_copy, progress=False, device="cpu")
    assert store.last_sweep["trained"] == 0 and len(store) == 2
    assert len(store.rows(sweep="small")) == 1 and len(store.rows(sweep="big")) == 2
    path_small, count_small = write_sweep_report(store, small)
    assert count_small == 1 and path_small.name == "validation-small.md"
    assert "Sweep `small`: 1 of its 1 models" in path_small.read_text()
    assert "Sweep `big`: 2 of its 2 models" in path_big.read_text()  # not overwritten
    assert (store_copy / "validation-small_loss_vs_r.png").stat().st_size > 1000
    # re-running sweep "big" with a 1-model spec: its rows are now that spec's one run
    store = run_sweep(_spec(p=[0.1]), store_copy, progress=False, device="cpu")
    assert store.last_sweep["trained"] == 0 and len(store.rows(sweep="big")) == 1
    assert write_sweep_report(store, _spec(p=[0.1]))[1] == 1
