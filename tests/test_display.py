"""Result objects print compactly: per-row arrays are summarised, scalars print in full."""

from __future__ import annotations

import numpy as np

import rugtheory as rt
from rugtheory.theory.display import SHOW_WHOLE, compact_repr


def test_finite_n_loss_repr_is_short_and_names_its_summary() -> None:
    rng = np.random.default_rng(0)
    n = 512
    W = rng.normal(size=(n, n)) / np.sqrt(4 * n)
    np.fill_diagonal(W, 1.0)
    # the error estimate misses the default tol here (AccuracyWarning); this test is about the repr
    res = rt.exact_loss_from_weights(W, np.full(n, -0.1), 0.05, on_inaccurate="ignore")
    text = repr(res)
    assert len(text) < 800, text  # the default dataclass repr of six 512-long arrays is ~60 kB
    assert text.startswith("FiniteNLoss(loss=") and "shape=(512,)" in text
    assert repr(float(res.loss)) in text  # the scalar is printed to full precision


def test_small_arrays_print_whole_and_zero_d_as_scalars() -> None:
    opt = rt.optimal_symmetric_loss(0.045, 0.25)
    assert f"loss={float(opt.loss)!r}" in repr(opt)
    grid = rt.optimal_symmetric_loss(np.linspace(0.01, 0.1, SHOW_WHOLE), 0.25)
    assert "shape=" not in compact_repr(grid)
    big = rt.optimal_symmetric_loss(np.linspace(0.01, 0.1, SHOW_WHOLE + 1), 0.25)
    assert f"shape=({SHOW_WHOLE + 1},)" in compact_repr(big)
