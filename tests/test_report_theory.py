"""The theory report section writes Markdown with the derived formula, the table and a real PNG."""

from rugtheory.app.report import write_report


def test_theory_section(tmp_path):
    path = write_report(tmp_path, sections=["rugtheory.app.report.theory:section"])
    text = path.read_text()
    assert "Derived closed form" in text and "F(t)" in text
    assert "| 0.045 |" in text
    png = tmp_path / "theory_loss_vs_r.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
