"""The atlas reader and interpolant (rugtheory.app.atlas_lookup) on small synthetic CSVs with known values,
and the atlas columns of ``rugtheory predict --n``."""

from __future__ import annotations

import json
import math

import pytest

from rugtheory import optimal_symmetric_loss
from rugtheory.app import atlas_lookup as al
from rugtheory.app.cli import main
from rugtheory.app.cli.predict import ATLAS_FIELDS

HEADER = ("n,m,r,p,seed,recipe,status,heldout_loss,heldout_se,lstar,expected_large_n_loss,expected_finite_n_loss\n")
RS = [0.125, 0.25, 0.5]
PS = [0.01, 0.02, 0.05, 0.1]


def _law(r: float, p: float) -> float:
    """An exact power law in p times an exponential in r: log(loss/L*) is a plane in (r, log p)."""
    return 1.3 * p ** 0.2 * math.exp(0.4 * r)


def _lstar(r: float, p: float) -> float:
    return p * (1 - r) / 3  # any positive values: the interpolant works on loss / L*


def _write(path, *, perturb=None, extra=""):
    lines = ["# banner\n", HEADER]
    for r in RS:
        for p in PS:
            for seed in (0, 1):
                loss = _law(r, p) * _lstar(r, p)
                if perturb == (r, p, seed):
                    loss *= 1.5
                lines.append(f"64,{int(r * 64)},{r},{p},{seed},fast,converged,{loss!r},1e-6,{_lstar(r, p)!r},"
                             f"{loss!r},{loss!r}\n")
    lines.append(extra)
    path.write_text("".join(lines))
    return al.read_atlas(path)


def test_power_law_is_reproduced_and_loo_small(tmp_path):
    rows = _write(tmp_path / "a.csv")
    r, p = 0.3, 0.03  # between grid cells
    assert al.interpolate_ratio(rows, 64, r, p) == pytest.approx(_law(r, p), rel=1e-9)
    assert al.interpolate(rows, 64, r, p) == pytest.approx(_law(r, p) * optimal_symmetric_loss(p, r).loss, rel=1e-9)
    assert al.interpolate(rows, 64, 0.25, 0.02) == pytest.approx(_law(0.25, 0.02) * _lstar(0.25, 0.02), rel=1e-9)
    loo = al.leave_one_out(rows, 64)
    assert len(loo) == 24 and all(abs(x.rel_error) < 1e-9 for x in loo) and not any(x.outlier for x in loo)
    out = al.lookup(64, p, r, rows)
    assert out["atlas_loo_rel_error"] < 1e-9 and out["atlas_models"] == 8 and out["atlas_converged"] == 8
    assert out["atlas_flag"] == ""


def test_not_covered_outside_hull_and_other_n(tmp_path):
    rows = _write(tmp_path / "a.csv")
    assert math.isnan(al.interpolate(rows, 64, 0.75, 0.05))  # r beyond the covered cells
    assert math.isnan(al.interpolate(rows, 64, 0.25, 0.2))  # p beyond
    assert al.lookup(128, 0.05, 0.25, rows) == dict.fromkeys(al.ATLAS_FIELDS)


def test_perturbed_point_is_flagged(tmp_path):
    rows = _write(tmp_path / "a.csv", perturb=(0.25, 0.02, 1))
    loo = {(x.row.r, x.row.p, x.row.seed): x for x in al.leave_one_out(rows, 64)}
    assert loo[(0.25, 0.02, 1)].outlier and loo[(0.25, 0.02, 1)].rel_error == pytest.approx(1 / 1.5 * 1.0 - 1, rel=0.2)
    assert sum(x.outlier for x in loo.values()) <= 2  # the perturbed model and at most its seed twin
    out = al.lookup(64, 0.02, 0.25, rows)
    assert "LOO outlier" in out["atlas_flag"] and out["atlas_loo_rel_error"] > 0.05


def test_only_converged_rows_count_and_dead_features_flagged(tmp_path):
    extra = ("64,48,0.75,0.05,0,fast,dead features,1.0,1e-6,0.001,0.002,0.002\n"
             "64,48,0.75,0.05,1,fast,pending,,,0.001,0.002,0.002\n")
    rows = _write(tmp_path / "a.csv", extra=extra)
    assert math.isnan(al.interpolate(rows, 64, 0.75, 0.05))  # the dead model does not make the point covered
    out = al.lookup(64, 0.05, 0.75, rows)
    assert out["atlas_loss"] is None and out["atlas_models"] == 1 and out["atlas_converged"] == 0
    assert "1 dead features" in out["atlas_flag"] and "above expected structure" in out["atlas_flag"]


def test_committed_atlas_is_package_data():
    assert al.atlas_csv_path().is_file()
    rows = al.read_atlas()
    assert rows and {a.n for a in rows} >= {256}
    assert ATLAS_FIELDS is al.ATLAS_FIELDS  # predict re-exports the one list, no copy


def test_predict_atlas_columns(tmp_path, capsys, monkeypatch):
    rows = _write(tmp_path / "a.csv")
    monkeypatch.setattr(al, "read_atlas", lambda path=None: rows)
    assert main(["predict", "--n", "64", "--p", "0.03", "0.5", "--r", "0.25", "--no-structures", "--json",
                 "--csv", str(tmp_path / "out.csv")]) == 0
    covered, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert covered["atlas_loss"] == pytest.approx(_law(0.25, 0.03) * optimal_symmetric_loss(0.03, 0.25).loss,
                                                  rel=1e-6)
    assert covered["atlas_converged"] == 4 and covered["atlas_loo_rel_error"] < 1e-9
    assert all(outside[k] is None for k in ATLAS_FIELDS if k not in ("atlas_models", "atlas_converged", "atlas_flag"))
    lines = (tmp_path / "out.csv").read_text().splitlines()
    header = lines[0].split(",")
    last = dict(zip(header, lines[2].split(","), strict=True))
    assert last["atlas_loss"] == "" and float(dict(zip(header, lines[1].split(","), strict=True))["atlas_loss"]) > 0
    assert main(["predict", "--n", "64", "--p", "0.5", "--r", "0.25", "--no-structures"]) == 0
    assert "not covered" in capsys.readouterr().out


def test_report_recipe_comparison_and_robustness_table(tmp_path):
    """The report's atlas part pairs fast and reference models of the same cell and seed (ratio computed
    here by hand from the CSV values) and adds the no-dead-features table only when it has extra models."""
    from rugtheory.app.report.atlas import atlas_part

    header = HEADER.rstrip("\n") + ",steps_run\n"
    rows = ["# banner\n", header,
            "64,16,0.25,0.05,0,fast,not converged,0.0021,1e-6,0.003,0.002,0.002,1000\n",
            "64,16,0.25,0.05,0,reference,converged,0.0020,1e-6,0.003,0.002,0.002,4000\n",
            "64,16,0.25,0.1,0,fast,converged,0.0040,1e-6,0.005,0.004,0.004,1000\n"]
    path = tmp_path / "pairs.csv"
    path.write_text("".join(rows))
    text = atlas_part(tmp_path, path)
    section = text[text.index("### Fast recipe against the reference recipe"):]
    assert "1 pairs trained with both recipes" in section
    assert f"median {0.0021 / 0.0020:.3f}" in section  # 1.050
    assert "median 4.0× more steps" in section
    assert "| 64 | 0.25 | 0.05 | 0 |" in section and "(not converged, 1000)" in section
    # 2 converged models in the main table; the robustness table adds the not-converged fast model
    assert "over all 3 trained models **without dead features**" in text
