"""The rugtheory command line: output, grid, JSON/CSV, and one-line errors with exit code 2."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from rugtheory import optimal_symmetric_loss
from rugtheory.app.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "rugtheory", *args], capture_output=True, text=True, timeout=120)


def test_predict_json_single_point(capsys):
    assert main(["predict", "--p", "0.045", "--r", "0.25", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert {"loss", "a", "b", "sigma", "theta", "s", "linear_loss", "zero_loss"} <= set(rec)
    assert rec["loss"] == pytest.approx(4.856e-3, abs=5e-7)  # docs/theory.md §4 worked example
    assert rec["zero_loss"] == pytest.approx(0.015)


def test_predict_grid_and_csv(tmp_path, capsys):
    out = tmp_path / "grid.csv"
    assert (
        main(["predict", "--p", "0.01", "0.02", "--r", "0.1", "0.2", "0.3", "--csv", str(out), "--no-structures"]) == 0
    )
    text = capsys.readouterr().out
    assert len(text.strip().splitlines()) == 1 + 6  # header + grid (no structure lines)
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
        "import sys; from rugtheory.app.cli import main; main(['predict','--p','0.1','--r','0.5','--json']);"
        "heavy = [m for m in ('sympy','matplotlib','torch') if m in sys.modules]; assert not heavy, heavy"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_predict_reports_expected_structure(capsys):
    # docs/theory.md §10: at r = 1/2, p = 0.01 antipodal pairs beat L* by ~5.6x; the phase map must say that
    # a pair structure wins (tied p^2/6 or the untied 25p^2/162) and report its loss beside L*.
    assert main(["predict", "--p", "0.01", "--r", "0.5", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert "pairs" in rec["expected_structure"]
    assert rec["expected_loss"] <= 0.01**2 / 6 * (1 + 1e-9)
    assert rec["expected_over_symmetric"] == pytest.approx(rec["expected_loss"] / rec["loss"], rel=1e-12)
    assert sum(c["fraction"] for c in rec["components"]) == pytest.approx(1.0)


def test_predict_without_structures(capsys):
    assert main(["predict", "--p", "0.01", "--r", "0.5", "--json", "--no-structures"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert "expected_structure" not in rec and rec["loss"] > 0


def test_predict_table_prints_each_value_to_ten_digits_right_aligned(capsys):
    # the table is printed with one format string a row ({:>w.10g}); the twin here formats cell by cell
    from rugtheory.app.cli.predict import FIELDS, compute

    assert main(["predict", "--p", "0.01", "0.3", "--r", "0.25", "1.0", "--no-structures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    widths = [max(len(k), 16) for k in FIELDS]
    expected = ["  ".join(f"{rec[k]:.10g}".rjust(w) for k, w in zip(FIELDS, widths))
                for rec in compute([0.01, 0.3], [0.25, 1.0], structures=False)]
    assert lines[1:5] == expected
    # the one format also covers the non-finite values the former per-cell route printed with str()
    for x in (float("inf"), -float("inf"), float("nan"), 5e-324, -0.0):
        assert f"{x:>16.10g}" == (f"{x:.10g}" if np.isfinite(x) else str(x)).rjust(16)
