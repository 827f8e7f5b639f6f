"""Tests of the finite-n study's fits (rugtheory.validation.finite_n_study) on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rugtheory.validation.finite_n_study import StudyRow, extrapolate_curve, fit_gap, weight_structure_stats


def _row(n: int, p: float, gap: float) -> StudyRow:
    l_star = 1e-3
    return StudyRow(
        kind="trained",
        n=n,
        m=n // 4,
        p=p,
        r=0.25,
        measured=l_star * (1 + gap),
        measured_se=0.0,
        gaussian=0.0,
        first_order=0.0,
        edgeworth=0.0,
        exact=0.0,
        exact_error=0.0,
        l_star=l_star,
        skewness=0.0,
        excess_kurtosis=0.0,
        converged=True,
        seconds_exact=0.0,
    )


def test_fit_gap_recovers_a_power_law():
    rows = [_row(n, 0.045, -0.8 * n**-0.5) for n in (128, 256, 512, 1024)]
    fits = fit_gap(rows)
    # exact power law, no noise: the log-log least squares is exact up to rounding
    assert fits["exponent_n_p0.045"] == pytest.approx(-0.5, abs=1e-12)
    assert fits["exponent_pn"] == pytest.approx(-0.5, abs=1e-12)
    assert fits["prefactor_pn"] == pytest.approx(0.8 * 0.045**0.5, rel=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_extrapolate_curve_recovers_the_limit(alpha):
    rng = np.random.default_rng(0)
    t = np.arange(250, 10_001, 250)
    l_inf, amp = 3.7e-3, 4e-3 * 1000.0**alpha
    noise = 2e-7  # relative noise 5e-5, like a fixed 16k-sample confirmation set's step-to-step jitter
    v = l_inf + amp * t ** (-alpha) + noise * rng.standard_normal(t.size)
    fit = extrapolate_curve(list(zip(t.tolist(), v.tolist())), t_min=1000)
    # the curve is exactly of the fitted form, so only the noise moves L_inf: 5 of the fit's SEs
    assert abs(fit.l_inf - l_inf) <= 5 * fit.l_inf_se
    assert fit.alpha == pytest.approx(alpha, rel=0.1)
    assert fit.rms_resid == pytest.approx(noise, rel=0.5)


def test_extrapolate_curve_rejects_short_or_bad_histories():
    with pytest.raises(ValueError, match="t_min"):
        extrapolate_curve([(100, 1.0), (200, 0.9)], t_min=0)
    with pytest.raises(ValueError, match="finite"):
        extrapolate_curve([(t, float("nan")) for t in range(2000, 3000, 100)])


def test_weight_structure_stats_on_rows_with_known_partners():
    """Rows with exactly k entries of −1 (different columns per row) and zeros elsewhere: half of
    Σ_j W_ij² sits in k/2 entries, all of it negative, and all k entries lie below −4 sd."""
    n, k = 200, 4
    W = np.eye(n)
    for i in range(n):
        W[i, [(i + 1 + j) % n for j in range(k)]] = -1.0
    s = weight_structure_stats(W)
    assert s["k_half"] == k / 2
    assert s["share_of_sigma2_negative"] == 1.0
    assert s["big_neg_per_row"] == k
    assert s["min_entry_mean"] == -1.0 and s["max_entry_mean"] == 0.0
    flat = weight_structure_stats(np.eye(n) + np.where(np.random.default_rng(0).random((n, n)) < 0.5, 0.1, -0.1))
    # equal magnitudes: half of the weight needs half of the n - 1 entries (ceil), within one entry
    assert abs(flat["k_half"] - (n - 1) / 2) <= 1
