"""Structure read-out from weights (rugtheory.constructions.weight_geometry) on weights of known structure."""

from __future__ import annotations

import numpy as np
import pytest

from rugtheory.constructions.persian_rug import persian_rug
from rugtheory.constructions.polytopes import antipodal_pairs, regular_polygon, regular_simplex
from rugtheory.constructions.structure_weights import construction_weights, mixture_weights
from rugtheory.constructions.weight_geometry import feature_dimensionality, structure_measures


@pytest.mark.parametrize("con", [antipodal_pairs(), regular_simplex(3), regular_simplex(6), regular_polygon(5),
                                 regular_polygon(8)], ids=lambda c: c.name)
def test_dimensionality_of_polytopes_equals_their_ratio(con) -> None:
    # D_i = W_ii^2 / sum_j W_ij^2 = 1 / (1 + (1/r - 1)) = r at rank-bound equality (docs/theory.md §4),
    # for any gain (D is scale free); 1e-12: rounding of sums of O(1) terms.
    w_in, w_out, _ = construction_weights(con, 7, gain=1.7)
    d_row, d_col = feature_dimensionality(w_in, w_out)
    np.testing.assert_allclose(d_row, con.ratio, rtol=1e-12)
    np.testing.assert_allclose(d_col, con.ratio, rtol=1e-12)


def test_tied_weights_reduce_to_toy_model_paper_definition() -> None:
    # Elhage et al.: D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 with W_i the i-th column of W (m x n),
    # computed here with an explicit loop as the independent route.
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(5, 12))
    d_row, d_col = feature_dimensionality(emb, emb.T)
    paper = np.empty(12)
    for i in range(12):
        wi = emb[:, i]
        hat = wi / np.linalg.norm(wi)
        paper[i] = wi @ wi / sum((hat @ emb[:, j]) ** 2 for j in range(12))
    np.testing.assert_allclose(d_row, paper, rtol=1e-12)
    np.testing.assert_allclose(d_col, paper, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_dimensionalities_sum_to_at_most_m_untied(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = 6, 20
    w_in, w_out = rng.normal(size=(m, n)), rng.normal(size=(n, m))
    d_row, d_col = feature_dimensionality(w_in, w_out)
    assert np.all((d_row >= 0) & (d_row <= 1 + 1e-12)) and np.all((d_col >= 0) & (d_col <= 1 + 1e-12))
    assert d_row.sum() <= m + 1e-9 and d_col.sum() <= m + 1e-9


def test_mixture_composition_is_recovered() -> None:
    w_in, w_out, _ = mixture_weights([("dropped", 20, 0.0, 0.05), (antipodal_pairs(), 30, 1.0, 0.0),
                                      (regular_simplex(3), 10, 1.2, 0.0), ("dedicated", 10, 1.0, 0.0)])
    meas = structure_measures(w_in, w_out)
    assert meas.fractions == pytest.approx({"unlearned": 20 / 120, "dedicated": 10 / 120, "pairs": 60 / 120,
                                            "other clusters": 30 / 120, "diffuse": 0.0})
    assert meas.cluster_histogram() == {1: 10, 2: 60, 3: 30}
    assert meas.sum_d_row == pytest.approx(w_in.shape[0])  # equality: every block meets the rank bound


def test_persian_rug_is_diffuse() -> None:
    # Rug rows carry entries of size sqrt((1/r - 1)/n): no strong negative partner, D = r.
    rug = persian_rug(256, 128, seed=0)
    meas = structure_measures(rug.W_in, rug.W_out)
    assert meas.fractions["diffuse"] == 1.0
    np.testing.assert_allclose(meas.d_row, 0.5, rtol=1e-12)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="W_in must be m x n"):
        feature_dimensionality(np.ones((3, 5)), np.ones((3, 5)))


def test_untied_pairs_count_as_pairs() -> None:
    from rugtheory.constructions.structure_weights import untied_pair_weights

    w_in, w_out, _ = untied_pair_weights(40, 1 / 3, (1.1, 0.9), (0.0, 0.0))
    meas = structure_measures(w_in, w_out)
    assert meas.fractions["pairs"] == 1.0
    np.testing.assert_allclose(meas.partner_strengths[:, 0], 1.0, rtol=1e-12)  # kappa = 1 for any t
    # rows of W: feature 1 hears (g1, -g1 t): D = 1/(1 + t^2) = 0.9; feature 2 (-g2/t, g2): D = 0.1
    np.testing.assert_allclose(meas.d_row, np.tile([0.9, 0.1], 40), rtol=1e-12)
    assert meas.sum_d_row == pytest.approx(40)
