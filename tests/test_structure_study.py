"""rugtheory.validation.structure_study end to end on a tiny model (trains with torch on the CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import requires_torch

pytestmark = [pytest.mark.training, requires_torch]


def test_tiny_study_writes_results_and_counts_only_converged(tmp_path) -> None:
    from safetensors.numpy import load_file

    from rugtheory.constructions.weight_geometry import structure_measures
    from rugtheory.validation.structure_study import markdown_table, run_study, study_configs

    # 300 steps never meet the convergence rule (min_steps = 1000 by default): the loss must be
    # reported but not counted.
    cfgs = study_configs(((0.1, 0.5), (0.05, 0.25)), n=32, steps=300, batch=128)
    rows = run_study(tmp_path, cfgs)
    assert [r["m"] for r in rows] == [16, 8]
    for i, row in enumerate(rows):
        assert row["converged"] is False and row["steps_run"] == 300
        assert np.isfinite(row["heldout_loss"]) and row["heldout_se"] > 0
        assert row["predicted_loss"] <= row["symmetric_loss"] * (1 + 1e-9)
        assert sum(row["fractions"].values()) == pytest.approx(1.0)
        w = load_file(str(tmp_path / f"model_{i}.safetensors"))
        meas = structure_measures(w["W_in"].astype(float), w["W_out"].astype(float))
        assert meas.fractions == pytest.approx(row["fractions"])  # saved weights are the analysed ones
        assert meas.sum_d_row <= row["m"] + 1e-6
    table = markdown_table(rows)
    assert table.count("(not counted)") == 4  # two ratio columns per model
    saved = json.loads((tmp_path / "structure_study.json").read_text())
    assert len(saved["models"]) == 2


def test_reanalyse_reproduces_the_analysis(tmp_path) -> None:
    from rugtheory.validation.structure_study import reanalyse, run_study, study_configs

    rows = run_study(tmp_path, study_configs(((0.1, 0.5),), n=16, steps=50, batch=64))
    again = reanalyse(tmp_path)
    for key in ("fractions", "mean_d_row", "predicted_winner", "heldout_loss", "converged"):
        assert again[0][key] == pytest.approx(rows[0][key])
