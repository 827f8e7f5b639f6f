"""The numbers in the decoders section's verdict (rugtheory.app.report.decoders.verdict) against mpmath.

The verdict's numbers are computed from rugtheory.theory.decoders / asymptotics when the section
is built. Here each printed number is recomputed by an independent route, the mpmath oracle
(rugtheory.twins.decoders_oracle: adaptive quadrature at 20 digits, its own channel scale), and the
two must agree to the printed precision: |printed − oracle| ≤ half a unit in the last printed digit
(plus 1e-9 for float rounding). That the section runs, writes its figures and prints the verdict is
checked end to end by tests/test_report.py (smoke sizes).

The ReLU loss is the oracle's at the production optimiser's threshold: the loss is stationary in θ,
so an error δθ there changes it by O(δθ²); that the threshold is the optimum is checked against a
brute-force scan in tests/test_decoders.py.
"""

from __future__ import annotations

import re

import pytest

from rugtheory.app.report.decoders import PAPER_GRID, verdict
from rugtheory.theory import asymptotics as A
from rugtheory.theory import decoders
from rugtheory.twins import decoders_oracle

DPS = 20
R = 0.1


@pytest.fixture(scope="module")
def text() -> str:
    return verdict(R)


def _oracle_ratio(p: float, r: float) -> float:
    theta = float(decoders.relu_decoder_optimum(p, r).threshold)
    relu = decoders_oracle.thresholded_loss_at("relu", theta, p, r, dps=DPS)
    return float(relu / decoders_oracle.mmse_loss(p, r, dps=DPS))


def _half_unit(printed: str) -> float:
    """Half a unit in the last printed digit of a %g / %.nf number."""
    mant = printed.lstrip("+-−").split("e")[0]
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    exp = int(printed.split("e")[1]) if "e" in printed else 0
    return 0.5 * 10.0 ** (exp - decimals) + 1e-9


def test_verdict_is_filled_in(text: str) -> None:
    assert "$" not in text  # every string.Template placeholder substituted
    assert text.startswith("**Verdict on")


def test_relu_over_mmse_growth_matches_mpmath(text: str) -> None:
    m = re.search(r"ReLU/MMSE at r = ([0-9.]+):\s+(\S+) at p = 1e−4, (\S+) at 1e−6, (\S+) at 1e−12", text)
    assert m, text
    assert float(m.group(1)) == R
    for printed, p in zip(m.groups()[1:], (1e-4, 1e-6, 1e-12)):
        ref = _oracle_ratio(p, R)
        assert abs(float(printed) - ref) <= _half_unit(printed), (p, printed, ref)


def test_mmse_series_remainder_matches_mpmath(text: str) -> None:
    """(three-term series / exact − 1)·τ_B/s at p = 1e−12: the series is the thing measured, the
    exact MMSE comes from mpmath. The relative error is ~4e-7 there, and the oracle is good to
    ~1e-18, so the printed 3 decimals are limited by printing only."""
    m = re.search(r"off by\s+([+-]?[0-9.]+) s/τ_B relative at p = 1e−12, r = ([0-9.]+)\)", text)
    assert m, text
    p, r = 1e-12, float(m.group(2))
    exact = float(decoders_oracle.mmse_loss(p, r, dps=DPS))
    s = float(decoders_oracle.channel_scale(p, r, dps=DPS))
    ref = (float(A.mmse_sparse_series(p, r, 3)) / exact - 1) * float(A.bayes_threshold(p, r)) / s
    assert abs(float(m.group(1)) - ref) <= _half_unit(m.group(1)), (m.group(1), ref)
    assert -2.0 < ref < -1.0  # the O(s/τ_B) remainder the docstring of derivations/asymptotics.py states


def test_paper_grid_maximum_matches_mpmath_at_its_corner(text: str) -> None:
    """The largest ReLU/MMSE on the paper's grid sits at its smallest p and largest r (the ratio
    rises with r and falls with p: tests/test_asymptotics.py), and its value matches mpmath."""
    m = re.search(r"p ≥ (\S+) the largest\s+ReLU/MMSE is (\S+), at p = (\S+), r = ([0-9.]+)\)", text)
    assert m, text
    lo, printed, p, r = m.groups()
    assert float(lo) == pytest.approx(PAPER_GRID[0], rel=1e-12)
    assert float(p) == pytest.approx(PAPER_GRID.min(), rel=1e-3) and float(r) == pytest.approx(
        PAPER_GRID.max(), rel=1e-3
    )
    ref = _oracle_ratio(float(PAPER_GRID.min()), float(PAPER_GRID.max()))
    assert abs(float(printed) - ref) <= _half_unit(printed), (printed, ref)
