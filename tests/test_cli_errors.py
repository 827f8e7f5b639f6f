"""Every user mistake on the command line: exit code 2 and one stderr line naming the parameter.

Each case runs ``rugtheory.app.cli.main`` in-process; two run as subprocesses (a closed stdout
pipe, and the installed ``rugtheory`` entry point). Nothing here trains a model: the validate
checks run before any training (``run_sweep`` is replaced by a function that fails the test).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rugtheory.app.cli import main


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        return exc.code


def _fails(capsys, argv, needle):
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    from rugtheory.validation import sweep

    def refuse(*a, **k):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(sweep, "run_sweep", refuse)


# ------------------------------------------------------------------ predict

PREDICT = ["predict", "--p", "0.1", "--r", "0.2", "--no-structures"]


def test_predict_csv_directory(tmp_path, capsys):
    _fails(capsys, [*PREDICT, "--csv", str(tmp_path)], "--csv")


def test_predict_csv_missing_parent(tmp_path, capsys):
    _fails(capsys, [*PREDICT, "--csv", str(tmp_path / "missing" / "g.csv")], "--csv")
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_predict_csv_device_full(capsys):
    _fails(capsys, [*PREDICT, "--csv", "/dev/full"], "--csv")


def test_predict_csv_empty(capsys):
    _fails(capsys, [*PREDICT, "--csv", ""], "--csv")


def test_predict_bad_value_leaves_csv_alone(tmp_path, capsys):
    out = tmp_path / "g.csv"
    out.write_text("keep")
    _fails(capsys, ["predict", "--p", "1.5", "--r", "0.2", "--csv", str(out)], "p must be in (0, 1]")
    assert out.read_text() == "keep"


def test_predict_repeated_option_refused(tmp_path, capsys):
    _fails(capsys, [*PREDICT, "--csv", str(tmp_path / "a.csv"), "--csv", str(tmp_path / "b.csv")], "--csv")


def test_predict_repeated_p_r_accumulate(capsys):
    assert main(["predict", "--p", "0.1", "--r", "0.5", "--r", "0.25", "--json", "--no-structures"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(rec["p"], rec["r"]) for rec in recs] == [(0.1, 0.5), (0.1, 0.25)]


def test_predict_chunks_do_not_change_values():
    from rugtheory.app.cli.predict import iter_records

    ps, rs = [0.01, 0.1, 0.5], [0.1, 0.3, 0.7, 1.0]
    whole = [rec for block in iter_records(ps, rs, structures=False, chunk=1000) for rec in block]
    blocks = list(iter_records(ps, rs, structures=False, chunk=5))
    assert [len(b) for b in blocks] == [5, 5, 2]
    assert [rec for b in blocks for rec in b] == whole
    assert [(rec["p"], rec["r"]) for rec in whole] == [(p, r) for p in ps for r in rs]


def test_predict_csv_written_as_before(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert main(["predict", "--p", "0.1", "0.2", "--r", "0.3", "--no-structures", "--csv", str(out)]) == 0
    capsys.readouterr()
    lines = out.read_text().splitlines()
    assert lines[0].startswith("p,r,loss") and len(lines) == 3


# ------------------------------------------------------------------ validate (no training)

VALIDATE = ["--n", "16", "--r", "0.5", "--p", "0.1", "--no-progress"]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--n", "16,abc", "--r", "0.5", "--p", "0.1"], "--n"),
        (["--n", "16", "--r", "linspace:0.1:0.2", "--p", "0.1"], "--r"),
        (["--n", "16", "--r", "linspace:0.1:0.2:0", "--p", "0.1"], "--r"),
        (["--n", "16", "--r", "0.5", "--p", "linspace:a:0.2:3"], "--p"),
        (["--n", "16", "--r", "0.5", "--r", "0.25", "--p", "0.1"], "--r"),
        ([*VALIDATE, "--threads", "-1"], "--threads"),
        ([*VALIDATE, "--threads", "0"], "--threads"),
        ([*VALIDATE, "--group-size", "0"], "--group-size"),
        ([*VALIDATE, "--device", "foo"], "--device"),
        ([*VALIDATE, "--device", "cuda:x"], "--device"),
        (["--preset", "atlas", "--n", "16", "--no-progress"], "--n"),
        (["--preset", "atlas", "--steps", "100", "--no-progress"], "--steps"),
        ([*VALIDATE, "--recipe", "slow"], "--recipe"),
    ],
)
def test_validate_bad_flags(tmp_path, capsys, no_training, extra, needle):
    _fails(capsys, ["validate", "--out", str(tmp_path / "v"), *extra], needle)
    assert not (tmp_path / "v").exists()


def test_validate_cuda_missing(tmp_path, capsys, no_training):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        _fails(capsys, ["validate", "--out", str(tmp_path), *VALIDATE, "--device", "cuda:99"], "--device")
    else:
        _fails(capsys, ["validate", "--out", str(tmp_path), *VALIDATE, "--device", "cuda"], "--device")


@pytest.mark.parametrize("flag", [["--name", "x"], ["--rug", "none"], ["--steps", "5"]])
def test_validate_atlas_refuses_flags_it_would_ignore(tmp_path, capsys, no_training, flag):
    line = _fails(capsys, ["validate", "--out", str(tmp_path / "a"), "--preset", "atlas", "--no-progress", *flag],
                  flag[0])
    assert "drop " + flag[0] in line and not (tmp_path / "a").exists()


def test_validate_atlas_gpu_refused_without_cuda(tmp_path, capsys, no_training):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the atlas-gpu preset would train")
    line = _fails(capsys, ["validate", "--out", str(tmp_path / "a"), "--preset", "atlas-gpu", "--no-progress"],
                  "--preset atlas-gpu")
    assert "CUDA" in line and not (tmp_path / "a").exists()


def test_linspace_values():
    from rugtheory.theory.checks import parse_list

    assert parse_list("linspace:0.1:0.2:3", "--r", float, linspace=True) == [0.1, 0.1 + 0.1 * 1 / 2, 0.2]
    assert parse_list("linspace:0.3:0.3:1", "--r", float, linspace=True) == [0.3]
    assert parse_list("16, 32", "--n", int) == [16, 32]


# ------------------------------------------------------------------ --out that is a file

@pytest.mark.parametrize("command", ["validate", "tables", "report"])
def test_out_is_a_file(tmp_path, capsys, no_training, command):
    f = tmp_path / "file"
    f.write_text("x")
    extra = VALIDATE if command == "validate" else []
    _fails(capsys, [command, "--out", str(f), *extra], "--out")
    assert f.read_text() == "x"


# ------------------------------------------------------------------ rug

RUG = ["rug", "--n", "64", "--r", "0.25", "--seed", "0"]


def test_rug_out_missing_parent_not_created(tmp_path, capsys):
    _fails(capsys, [*RUG, "--out", str(tmp_path / "missing" / "a.png")], "--out")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("name", ["dir", "", "a.pdf"])
def test_rug_out_refused(tmp_path, capsys, name):
    (tmp_path / "dir").mkdir()
    out = str(tmp_path / name) if name else ""
    _fails(capsys, [*RUG, "--out", out], "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["rug", "--n", str(2**62), "--m", "1", "--seed", "0"], "--n"),
        (["rug", "--n", str(2**40), "--r", "0.25", "--seed", "0"], "--n"),
        ([*RUG, "--samples", str(10**12)], "--samples"),
        ([*RUG, "--crop", "100000"], "--crop"),
        (["rug", "--n", "64", "--r", "0.5", "--r", "0.25", "--seed", "0"], "--r"),
        (["rug", "--n", "0", "--m", "1", "--seed", "0"], "--n"),
    ],
)
def test_rug_size_guards(tmp_path, capsys, argv, needle):
    line = _fails(capsys, [*argv, "--out", str(tmp_path / "a.png")], needle)
    assert not (tmp_path / "a.png").exists()
    if needle == "--samples":
        assert "8388608" in line  # names the cap


def test_rug_samples_cap():
    from rugtheory.app.cli.rug import max_samples

    assert max_samples(64) == max_samples(2**20) == 2**23
    assert max_samples(100) == (2**23 // 100) * 100


def test_rug_writes_exactly_the_path(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "rug.png"
    assert main([*RUG, "--out", str(out), "--samples", "1000", "--crop", "32"]) == 0
    assert f"wrote {out}:" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rug.png"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ library: complex input

def test_complex_weights_refused():
    from rugtheory import effective_matrix, exact_loss_from_weights, weight_statistics

    W = np.eye(8) * (1 + 0j)
    for call, name in [
        (lambda: effective_matrix(W, W), "W_in"),
        (lambda: weight_statistics(W, np.zeros(8), 0.1), "W"),
        (lambda: exact_loss_from_weights(W, np.zeros(8), 0.1), "W"),
    ]:
        with pytest.raises(ValueError, match=f"^{name} must be real"):
            call()


# ------------------------------------------------------------------ subprocesses


def test_closed_stdout_pipe_is_quiet():
    # ~3000 lines (> the 64 KB pipe buffer): the writer meets the closed pipe while streaming
    ps = [str(0.001 + 0.5 * i / 59) for i in range(60)]
    rs = [str(0.01 + 0.9 * i / 49) for i in range(50)]
    proc = subprocess.Popen([sys.executable, "-m", "rugtheory", "predict", "--p", *ps, "--r", *rs, "--no-structures"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().split()[:2] == [b"p", b"r"]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=60)
    proc.stderr.close()
    assert rc in (0, 141), err
    assert err == ""


def test_entry_point_malformed_argument(tmp_path):
    exe = shutil.which("rugtheory")
    if exe is None:
        pytest.skip("the rugtheory entry point is not on PATH")
    res = subprocess.run([exe, "rug", "--n", "64", "--r", "0.25", "--seed", "0", "--out", str(tmp_path / "a.png"),
                          "--samples", "1e12"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "--samples" in lines[0]
