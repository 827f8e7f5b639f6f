"""Phase map of competing structures (rugtheory.constructions.phase_map) against independent routes.

Routes: the symmetric optimum L* (rugtheory.theory.optimum), each construction's own exact loss, a
brute-force minimum over explicit two-ingredient mixtures, the Monte Carlo loss of the winning
mixture built as explicit n-dimensional weights, and a 4x finer rug grid.
"""

from __future__ import annotations

import numpy as np
import pytest

import rugtheory.constructions.phase_map as pm
from rugtheory import linear_loss, optimal_symmetric_loss
from rugtheory.constructions.paired_rug import optimal_paired_rug_loss
from rugtheory.constructions.polytopes import (
    antipodal_pairs,
    dropped_loss,
    optimal_structure_loss,
    optimal_untied_pairs,
    regular_polygon,
    regular_simplex,
    standard_constructions,
)
from rugtheory.constructions.structure_weights import mixture_weights
from rugtheory.twins.montecarlo import model_loss_monte_carlo

K_SE = 4.0  # Monte Carlo agreement in standard errors (see tests/test_structures.py)
P = np.geomspace(1e-4, 0.8, 6)
R = np.linspace(0.05, 1.0, 12)


@pytest.fixture(scope="module")
def small_map() -> pm.PhaseMap:
    return pm.phase_map(P, R)


def test_map_never_above_any_candidate(small_map: pm.PhaseMap) -> None:
    lstar = optimal_symmetric_loss(P[:, None], R[None, :]).loss
    # the map is a minimum over a set containing L*, each construction curve and the linear baseline
    slack = 1 + 1e-9
    assert np.all(small_map.loss <= lstar * slack)
    assert np.all(small_map.loss <= linear_loss(P[:, None], R[None, :]) * slack + 1e-300)
    for con in standard_constructions():
        assert np.all(small_map.loss <= pm.construction_curve(con, P[:, None], R[None, :]) * slack)
    low = R <= 0.5
    assert np.all(small_map.loss[:, low] <= optimal_paired_rug_loss(P[:, None], R[None, low]).loss * slack)
    assert np.all(small_map.ratio <= 1 + 1e-9)
    sym = small_map.winner_names() == "symmetric"
    np.testing.assert_allclose(small_map.ratio[sym], 1.0)


def test_envelope_equals_brute_force_over_pairs_of_ingredients() -> None:
    # Brute force: every pair (A, B) of ingredients with r_A <= r <= r_B, mixed linearly.
    p = 0.03
    rug_r = pm.RUG_RATIO_GRID[pm.RUG_RATIO_GRID < 1]
    pts = [(0.0, float(dropped_loss(p))), (1.0, 0.0)]
    pts += [(c.ratio, float(optimal_structure_loss(c, p).loss)) for c in standard_constructions()]
    pts.append((0.5, float(optimal_untied_pairs(p).loss)))
    pts += list(zip(rug_r, optimal_symmetric_loss(p, rug_r).loss))
    pts += list(zip(pm.PAIRED_RUG_RATIO_GRID, optimal_paired_rug_loss(p, pm.PAIRED_RUG_RATIO_GRID).loss))
    rr = np.array([q[0] for q in pts])
    ll = np.array([q[1] for q in pts])
    for r in (0.07, 0.45, 0.5, 0.61):
        lo, hi = rr <= r, rr >= r
        ra, la = rr[lo][:, None], ll[lo][:, None]
        rb, lb = rr[hi][None, :], ll[hi][None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(rb > ra, (rb - r) / (rb - ra), 1.0)
        brute = min(np.min(f * la + (1 - f) * lb), float(optimal_symmetric_loss(p, r).loss))
        if r <= 0.5:
            brute = min(brute, float(optimal_paired_rug_loss(p, r).loss))
        assert pm.expected_structure(p, r).loss == pytest.approx(brute, rel=1e-12)


def test_composition_is_consistent_and_matches_monte_carlo() -> None:
    # Dense data: 1/4 of the features dropped, 3/4 in pentagons (see the phase map).
    p, r = 0.2, 0.3
    e = pm.expected_structure(p, r)
    assert e.winner == "dropped + polygon5"
    fr = np.array([c.fraction for c in e.components])
    assert fr.sum() == pytest.approx(1.0, abs=1e-12)
    assert sum(c.fraction * c.ratio for c in e.components) == pytest.approx(r, abs=1e-12)
    assert sum(c.fraction * c.loss for c in e.components) == pytest.approx(e.loss, rel=1e-12)
    assert e.ratio_to_symmetric < 0.8
    drop, pent = e.components
    # n = 200: 50 dropped + 30 pentagons (150 features in 60 hidden units), m/n = 60/200 = 0.3
    w = mixture_weights([("dropped", 50, 0.0, drop.bias), (regular_polygon(5), 30, pent.gain, pent.bias)])
    assert w[0].shape == (60, 200)
    est = model_loss_monte_carlo(*w, p, n_samples=4000, seed=7)
    mean, se = est.mean, est.se
    assert abs(mean - e.loss) < K_SE * se


def test_theory_section10_example() -> None:
    e = pm.expected_structure(0.01, 0.5)
    # THEORY's tied pairs (p^2/6, 5.6x below L*) lose to untied pairs with t = 1/3: 25 p^2/162
    # (closed form, tests/test_structures.py); optimising g, b gains 2e-4 relative at p = 0.01.
    assert e.winner == "untied pairs"
    assert e.loss == pytest.approx(25 * 0.01**2 / 162, rel=1e-3)
    assert round(e.symmetric_loss / e.loss, 1) == 6.1
    # docs/theory.md §9: n = 512, m = 128, p = 0.045, reference recipe ~3.8e-3 against L* ~ 4.86e-3: the rug of
    # pairs predicts 3.58e-3 in the large-n limit.
    e = pm.expected_structure(0.045, 0.25)
    assert e.winner == "paired rug" and e.loss == pytest.approx(3.584e-3, rel=1e-3)
    assert pm.expected_structure(0.9, 0.8).winner == "symmetric"  # L* survives only at dense data, large r


def test_rug_grid_is_fine_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    coarse = pm.phase_map(P[[1, 3]], np.array([0.02, 0.37, 0.45, 0.7]))
    fine_grid = np.unique(np.concatenate([pm.RUG_RATIO_GRID, np.linspace(1e-4, 1, 1000)]))
    monkeypatch.setattr(pm, "RUG_RATIO_GRID", fine_grid)
    fine = pm.phase_map(P[[1, 3]], np.array([0.02, 0.37, 0.45, 0.7]))
    # the chord between rug samples over-estimates by O(dr^2): 1e-4 relative is the documented bound
    np.testing.assert_allclose(coarse.loss, fine.loss, rtol=1e-4)
    assert np.all(coarse.loss >= fine.loss * (1 - 1e-12))


def test_construction_curve_hits_pure_point_and_baselines() -> None:
    p = np.array([1e-3, 0.1])
    for con in (antipodal_pairs(), regular_simplex(4), regular_polygon(6)):
        pure = optimal_structure_loss(con, p).loss
        np.testing.assert_allclose(pm.construction_curve(con, p, con.ratio), pure, rtol=1e-14)
        np.testing.assert_allclose(pm.construction_curve(con, p, 1.0), 0.0, atol=1e-18)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"r must be in \(0, 1\]"):
        pm.phase_map([0.1], [0.0])
    with pytest.raises(ValueError, match=r"r must be in \(0, 1\]"):
        pm.expected_structure(0.1, 1.5)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        pm.expected_structure(-0.1, 0.5)
    with pytest.raises(ValueError, match="scalar"):
        pm.expected_structure([0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match=r"r must be one of the ratios the simplex family reaches \(0.5, 0.6667"):
        pm.construction_for_ratio("simplex", 0.7)
    with pytest.raises(ValueError, match="family must be one of"):
        pm.construction_for_ratio("cube", 0.5)
    assert pm.construction_for_ratio("polygon", 0.4).name == "polygon5"


# ---------------------------------------------------------------------------------------------
# fast paths (issue 15) against their slow twins


def test_pruned_rug_points_leave_every_result_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rug points that provably lie above the hull of the other ingredients are not evaluated; the
    # hulls, hence the map, must be exactly those with every rug point.
    p = np.concatenate([np.geomspace(1e-6, 1.0, 9), [0.045, 0.9]])
    r = np.array([0.01, 0.2, 0.45, 0.5, 0.61, 0.9, 0.97])
    out = {}
    for prune in (False, True):
        monkeypatch.setattr(pm, "PRUNE_RUG_POINTS", prune)
        pm.clear_caches()
        out[prune] = pm.phase_map(p, r), [pm.expected_structure(float(q), 0.93) for q in p]
    (full, full_es), (pruned, pruned_es) = out[False], out[True]
    for name in ("loss", "symmetric_loss", "winner"):
        np.testing.assert_array_equal(getattr(full, name), getattr(pruned, name))
    assert full.labels == pruned.labels
    assert full_es == pruned_es  # winners, losses and every component's gain and bias, exactly
    assert {e.winner for e in full_es} & {"rug + dedicated", "symmetric"}  # the rug points matter somewhere
    pm.clear_caches()


def test_expected_structures_is_expected_structure_point_by_point() -> None:
    p = np.repeat([1e-3, 0.03, 0.3, 1.0], 4)
    r = np.tile([0.05, 0.3, 0.5, 0.95], 4)
    pm.clear_caches()
    pm.prefetch_hulls(p)  # hulls of all p in one batch, as rugtheory predict does
    many = pm.expected_structures(p, r)
    pm.clear_caches()
    for k in range(p.size):
        assert many[k] == pm.expected_structure(p[k], r[k])  # cold caches, one point: bit for bit
    pm.clear_caches()


def test_predict_records_match_the_former_route_one_point_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import rugtheory.constructions.paired_rug as pr
    import rugtheory.constructions.polytopes as pt
    from rugtheory.app.cli.predict import iter_records

    ps, rs = [1e-3, 0.045, 0.3, 0.9], [0.1, 0.25, 0.5, 0.8, 0.97]
    pm.clear_caches()
    fast = [rec for block in iter_records(ps, rs, chunk=4) for rec in block]
    assert [rec["p"] for rec in fast] == [q for q in ps for _ in rs]
    # the slow twin: every switch on the former route, one expected_structure per point
    monkeypatch.setattr(pm, "PRUNE_RUG_POINTS", False)
    monkeypatch.setattr(pt, "PATTERN_EVALUATION", "flat")
    monkeypatch.setattr(pr, "SEARCH", "quadrature")
    pm.clear_caches()
    winners = set()
    for rec in fast:
        e = pm.expected_structure(rec["p"], rec["r"])
        winners.add(e.winner)
        assert rec["expected_structure"] == e.winner
        assert [c["name"] for c in rec["components"]] == [c.name for c in e.components]
        if all(c.name != "paired rug" for c in e.components):
            assert rec["expected_loss"] == e.loss
            assert [tuple(c.values())[1:] for c in rec["components"]] == [
                (c.ratio, c.fraction, c.loss, c.gain, c.bias) for c in e.components]
        else:  # the paired rug's θ is ranked by its exact profile: see test_structures.py for these bounds
            assert rec["expected_loss"] == pytest.approx(e.loss, rel=1e-9)
            for c, d in zip(rec["components"], e.components):
                assert (c["ratio"], c["fraction"]) == (d.ratio, d.fraction)
                assert c["loss"] == pytest.approx(d.loss, rel=1e-9)
                assert c["gain"] == pytest.approx(d.gain, rel=1e-4) and abs(c["bias"] - d.bias) <= 1e-4 * d.gain
        assert rec["loss"] == e.symmetric_loss
    assert {"paired rug", "untied pairs", "symmetric"} <= winners
    pm.clear_caches()


def test_predict_blocks_and_chunks_do_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import rugtheory.app.cli.predict as cp

    ps, rs = [1e-3, 0.01, 0.03, 0.1, 0.2, 0.5], [0.2, 0.6]
    whole = [rec for block in cp.iter_records(ps, rs, chunk=1000) for rec in block]
    # blocks of 4 points spanning 2 p each, prefetching 1 p at a time, yielded 5 at a time
    monkeypatch.setattr(cp, "P_BLOCK", 1)
    monkeypatch.setattr(cp, "BLOCK", 4)
    pm.clear_caches()
    parts = list(cp.iter_records(ps, rs, chunk=5))
    assert [len(b) for b in parts] == [5, 5, 2]
    assert [rec for b in parts for rec in b] == whole
