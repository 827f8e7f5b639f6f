"""The rugtheory command line: output, grid, JSON/CSV, and one-line errors with exit code 2."""

import csv
import json
import subprocess
import sys

import pytest

from rugtheory import optimal_symmetric_loss
from rugtheory.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "rugtheory", *args], capture_output=True, text=True, timeout=120)


def test_predict_json_single_point(capsys):
    assert main(["predict", "--p", "0.045", "--r", "0.25", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert {"loss", "a", "b", "sigma", "theta", "s", "linear_loss", "zero_loss"} <= set(rec)
    assert rec["loss"] == pytest.approx(4.856e-3, abs=5e-7)  # THEORY §4 worked example
    assert rec["zero_loss"] == pytest.approx(0.015)


def test_predict_grid_and_csv(tmp_path, capsys):
    out = tmp_path / "grid.csv"
    assert main(["predict", "--p", "0.01", "0.02", "--r", "0.1", "0.2", "0.3", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert len(text.strip().splitlines()) == 1 + 6  # header + grid
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    for row in rows:
        ref = optimal_symmetric_loss(float(row["p"]), float(row["r"]))
        assert float(row["loss"]) == float(ref.loss)  # CSV keeps full precision (repr)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["predict", "--p", "1.5", "--r", "0.2"], "p must be in (0, 1]"),
        (["predict", "--p", "0", "--r", "0.2"], "p must be in (0, 1]"),
        (["predict", "--p", "0.1", "--r", "0"], "r must be in (0, 1]"),
        (["predict", "--p", "nan", "--r", "0.2"], "p must be in (0, 1]"),
        (["predict", "--p", "inf", "--r", "0.2"], "p must be in (0, 1]"),
        (["predict", "--p", "abc", "--r", "0.2"], "not a number"),
        (["predict", "--p", "0.1"], "required"),
    ],
)
def test_bad_input_exit_2_one_line(args, needle):
    res = _run(*args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2 and "Traceback" not in res.stderr


def test_predict_path_stays_light():
    code = (
        "import sys; from rugtheory.cli import main; main(['predict','--p','0.1','--r','0.5','--json']);"
        "heavy = [m for m in ('sympy','matplotlib','torch') if m in sys.modules]; assert not heavy, heavy"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
