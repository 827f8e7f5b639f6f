"""Finite-n predictions of the constructions (rugtheory.constructions.finite_n_predictions, docs/theory.md §7.5).

Every finite-n loss is checked against independent routes: a Monte Carlo of the explicit weights of
the whole model (rugtheory.twins.montecarlo.model_loss_monte_carlo, k = 4 standard errors plus the
engine's own error estimate), the large-n limit (the rug and paired rug approach their large-n
losses as n grows, within the known ~2/(p n) relative gap), the closed forms of the polytopes
(n-independent, to 1e-12) and, for a polytope, the §7 engine on its explicit weights.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rugtheory.constructions.finite_n_predictions import (
    MAX_N,
    best_rug,
    finite_n_predictions,
    prediction_weights,
    realise_composition,
)
from rugtheory.constructions.phase_map import expected_structure
from rugtheory.constructions.polytopes import optimal_structure_loss, optimal_untied_pairs, standard_constructions
from rugtheory.theory.finite_n import exact_loss_from_weights
from rugtheory.theory.optimum import optimal_symmetric_loss
from rugtheory.twins.montecarlo import model_loss_monte_carlo

#: Monte Carlo agreement in standard errors.
K_SE = 4.0


@pytest.fixture(scope="module")
def small_points():
    """Three small cases covering every kind of part: Hadamard rug and paired rug, a Fourier paired
    rug inside a mixture (p = 0.1, r = 1/4), untied pairs + dedicated (r = 0.6), and a Fourier rug
    block beside dropped features (p = 0.9, r = 1/4: 'dropped + rug')."""
    return [finite_n_predictions(128, 32, 0.1, seed=0), finite_n_predictions(128, 77, 0.045, seed=1),
            finite_n_predictions(128, 32, 0.9, seed=2)]


def test_kinds_covered(small_points):
    leaves = [(q.name, q.kind) for res in small_points for pr in res.predictions for q in (pr.parts or (pr,))]
    kinds = {k for _, k in leaves}
    assert {"hadamard", "fourier", "closed form"} <= kinds
    names = {n for n, _ in leaves}
    assert {"rug", "paired rug", "untied pairs", "dropped", "dedicated"} <= names
    assert small_points[2].expected.name == "expected: dropped + rug"
    assert any(q.name == "rug" and q.kind == "fourier" for q in small_points[2].expected.parts)


@pytest.mark.parametrize("case", [0, 1, 2])
def test_every_prediction_matches_monte_carlo_of_its_weights(small_points, case):
    """The explicit weights at the same n, gains and biases, sampled: agreement within 4 SE + error."""
    res = small_points[case]
    seen = set()
    for k, pred in enumerate(res.predictions):
        key = (pred.n, pred.m, round(pred.loss, 15))
        if key in seen:  # the expected structure often repeats another entry
            continue
        seen.add(key)
        w_in, w_out, b = prediction_weights(pred)
        assert w_in.shape == (pred.m, pred.n) and w_out.shape == (pred.n, pred.m) and b.shape == (pred.n,)
        mc = model_loss_monte_carlo(w_in, w_out, b, res.p, n_samples=60_000, seed=100 + k)
        tol = K_SE * mc.se + pred.error + 1e-12
        assert abs(mc.mean - pred.loss) <= tol, (pred.name, pred.loss, mc.mean, mc.se)


def test_polytope_finite_n_equals_its_closed_form():
    """Whole groups in orthogonal subspaces: the finite-n loss is the large-n closed form (to 1e-12)."""
    res = finite_n_predictions(1024, 256, 0.045)
    exact = {q.name: q for q in res.predictions if q.m == 256}
    # polygon6 (r = 1/3): 768 features in 128 hexagons + 256 dropped realise r = 1/4 exactly
    for name in ("polygon6 + dropped", "polygon5 + dropped", "pairs + dropped", "untied pairs + dropped"):
        q = exact[name]
        assert q.kind == "mixture" and q.error == 0.0
        assert abs(q.loss - q.large_n_loss) <= 1e-12 * q.large_n_loss, name
    # in general (whole groups, any split): the feature-weighted mean of the parts' closed forms
    closed = {c.name: float(optimal_structure_loss(c, 0.045).loss) for c in standard_constructions()}
    closed["untied pairs"] = float(optimal_untied_pairs(0.045).loss)
    closed["dropped"] = 0.045 / 3 - 0.045**2 / 4
    for q in res.predictions:
        if q.parts and all(c.kind == "closed form" for c in q.parts):
            want = sum(c.n * closed[c.name] for c in q.parts) / q.n
            assert abs(q.loss - want) <= 1e-12 * want, q.name


def test_polytope_closed_form_against_the_exact_engine():
    """The box-spline closed form against the §7 inversion of the explicit block-diagonal weights."""
    res = finite_n_predictions(64, 21, 0.1)
    for name in ("simplex4 + dropped", "untied pairs + dropped"):
        q = res.by_name(name)
        w_in, w_out, b = prediction_weights(q)
        # rows with one or three partners: ν has atoms, so the engine's (conservative) estimate stays above
        # 1e-11; the agreement is ~2e-11 (measured), asserted at the estimate and at 1e-9
        ex = exact_loss_from_weights(w_out @ w_in, b, 0.1, tol=1e-11, on_inaccurate="ignore")
        assert abs(ex.loss - q.loss) <= min(ex.error + 1e-12, 1e-9), (name, ex.loss, q.loss, ex.error)


def test_rugs_approach_the_large_n_loss():
    """|finite-n − large-n| / large-n shrinks with n and stays within 2/(p n) (docs/theory.md §8.2)."""
    p, r = 0.045, 0.25
    gaps = {"rug": [], "paired rug": []}
    for n in (1024, 4096, 16384):
        res = finite_n_predictions(n, int(r * n), p)
        for name in gaps:
            q = res.by_name(name)
            gap = q.loss / q.large_n_loss - 1.0
            assert abs(gap) <= 2.0 / (p * n), (name, n, gap)
            gaps[name].append(abs(gap))
        assert res.by_name("rug").large_n_loss == pytest.approx(float(optimal_symmetric_loss(p, r).loss), rel=1e-14)
    for name, g in gaps.items():
        assert g[0] > g[1] > g[2], (name, g)


def test_scalars_are_optimised_at_n():
    """The re-optimised scalars never lose to the large-n ones, and best_rug (finite_n_study) is the same code."""
    res = finite_n_predictions(256, 64, 0.045)
    for name in ("rug", "paired rug"):
        q = res.by_name(name)
        assert q.loss <= q.details["loss_at_large_n_scalars"] + 1e-15
    loss, alpha, beta = best_rug(256, 64, 0.045, seed=0)
    q = res.by_name("rug")
    assert (loss, alpha, beta) == (q.loss, q.gain, q.bias)
    from rugtheory.validation.finite_n_study import best_rug as study_best_rug

    assert study_best_rug is best_rug


def test_expected_structure_composition_and_honest_m():
    res = finite_n_predictions(1024, 256, 0.045)
    assert res.lowest == "paired rug"
    es = expected_structure(0.045, 0.25)
    assert res.expected.name == f"expected: {es.winner}"
    assert res.expected.large_n_loss == es.loss
    # m that whole groups cannot reach is reported, never silently used: simplex4 takes 3 units per 4 features
    q = res.by_name("simplex4 + dropped")
    assert q.m == 255 and any("cannot be realised with m = 256" in s for s in q.notes)
    # a realisation never needs more hidden units than asked when a smaller one exists
    assert all(q.m <= 256 for q in res.predictions)
    assert res.best.loss == min(q.loss for q in res.predictions)


def test_realise_composition_whole_groups():
    from rugtheory.constructions.finite_n_predictions import Part

    parts = [Part("simplex10", 0.5, 0.9, 10, 9), Part("dedicated", 0.5, 1.0, 1, 1)]
    got, m_used = realise_composition(parts, 1024, 973)
    (_, n_a, m_a), (_, n_b, m_b) = got
    assert n_a % 10 == 0 and n_a + n_b == 1024 and m_a == 9 * n_a // 10 and m_b == n_b
    assert m_used == m_a + m_b == 973


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1000, 250, 0.05), "n must be a power of two in [8, 65536]"),
        ((4, 1, 0.05), "n must be a power of two in [8, 65536]"),
        ((2 * MAX_N, 1, 0.05), "n must be a power of two in [8, 65536]"),
        ((64.5, 1, 0.05), "n must be a power of two"),
        ((64, 0, 0.05), "m must be"),
        ((64, 65, 0.05), "m must be"),
        ((64, 16, 0.0), "p must be in (0, 1]"),
        ((64, 16, 1.5), "p must be in (0, 1]"),
    ],
)
def test_input_errors_are_one_line(args, message):
    with pytest.raises(ValueError) as err:
        finite_n_predictions(*args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_columns(tmp_path, capsys):
    from rugtheory.app.cli import main
    from rugtheory.app.cli.predict import FINITE_N_FIELDS

    out = tmp_path / "grid.csv"
    assert main(["predict", "--p", "0.045", "--r", "0.25", "0.75", "--n", "1024", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert all(f in header for f in FINITE_N_FIELDS)
    rows = out.read_text().splitlines()
    assert all(f in rows[0].split(",") for f in FINITE_N_FIELDS) and len(rows) == 3
    assert main(["predict", "--p", "0.045", "--r", "0.75", "--n", "1024", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["n"] == 1024 and rec["m"] == 768 and rec["paired_rug_finite_n"] is None  # m > n/2: no paired rug
    assert rec["rug_finite_n"] > 0 and rec["structure_finite_n_m"] <= 768
    assert {q["name"] for q in rec["finite_n"]} >= {"rug", rec["lowest_finite_n"]}
    # without --n nothing changes
    assert main(["predict", "--p", "0.045", "--r", "0.25", "--json", "--no-structures"]) == 0
    assert "rug_finite_n" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("bad", ["1000", "4", "131072", "2.5", "nan"])
def test_cli_refuses_unsupported_n(capsys, bad):
    from rugtheory.app.cli import main

    assert main(["predict", "--p", "0.045", "--r", "0.25", "--n", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert "--n must be a power of two in [8, 65536]" in err and "\n" not in err


def test_finite_n_path_is_not_imported_without_n():
    import subprocess
    import sys

    code = ("import sys; from rugtheory.app.cli import main; main(['predict','--p','0.1','--r','0.5','--json']);"
            "print('rugtheory.constructions.finite_n_predictions' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_weights_reproduce_the_row_symmetry(small_points):
    """The rug's and paired rug's explicit W have every row a permutation of row 0 (so one row is the loss)."""
    res = small_points[0]
    for name in ("rug", "paired rug"):
        q = res.by_name(name)
        w_in, w_out, b = prediction_weights(q)
        W = w_out @ w_in
        ref = np.sort(W[0])
        assert np.allclose(np.sort(W, axis=1), ref[None, :], atol=1e-12)
        assert np.allclose(np.diag(W), q.gain, atol=1e-12) and np.all(b == q.bias)
