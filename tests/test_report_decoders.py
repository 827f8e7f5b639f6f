"""The report section of the decoders (rugtheory.app.report.decoders) runs and says what it found."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_report_section_writes_its_figures_and_the_verdict(tmp_path) -> None:
    from rugtheory.app.report import ReportContext
    from rugtheory.app.report.decoders import VERDICT, section

    ctx = ReportContext(out_dir=tmp_path, seed=0, quick=True)
    md = section(ctx)
    for name in ("decoders_loss_vs_p.png", "decoders_ratio_vs_log_p.png", "decoders_asymptotic_vs_exact.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
        assert f"]({name})" in md
    assert VERDICT.splitlines()[0] in md
    # the ratio table reports the growth the verdict states (r = 0.1, p = 1e-12: 12.634)
    row = next(line for line in md.splitlines() if line.startswith("| 1e-12 |"))
    assert float(row.split("|")[3]) == pytest.approx(12.634, abs=0.001)
