"""``rugtheory report`` end to end at smoke sizes: every section of SECTIONS runs through write_report.

One run (module fixture, ~30 s on one CPU core) writes the whole report; each section is then
checked for its heading, at least one well-formed Markdown table, its PNG files (linked from the
text, present, real PNGs, not blank) and for numbers that are finite (no nan / inf anywhere).
The numbers themselves are not checked here: smoke sizes are too small to read anything from, and
every quantity has its own test against an independent route elsewhere.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

from rugtheory.app.report import SECTIONS, write_report

HAVE_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("safetensors") is not None

# section spec -> (heading prefix, PNG files it must write; None: depends on torch)
EXPECTED = {
    "rugtheory.app.report.claims:section": ("## Claims of the paper", set()),
    "rugtheory.app.report.theory:section": ("## Symmetric theory", {"theory_loss_vs_r.png"}),
    "rugtheory.app.report.decoders:section": (
        "## Decoders on the channel",
        {"decoders_loss_vs_p.png", "decoders_ratio_vs_log_p.png", "decoders_asymptotic_vs_exact.png"},
    ),
    "rugtheory.app.report.rug:section": ("## Persian rug", {"rug_random.png", "rug_first_rows.png"}),
    "rugtheory.app.report.trained_models:section": (
        "## Validation against trained models",
        {"validation_loss_vs_r.png", "validation_loss_vs_p.png", "validation_predicted_vs_measured.png",
         "validation_heatmaps_n32.png", "validation_atlas.png"} if HAVE_TORCH else {"validation_atlas.png"},
    ),
    "rugtheory.app.report.finite_n:section": (
        "## Finite-n theory",
        {"finite_n_weights.png", "finite_n_curves.png"} if HAVE_TORCH else set(),
    ),
    "rugtheory.app.report.phase_map:section": ("## Phase map", {"phase_map.png", "phase_map_curves.png"}),
}

_NONFINITE = re.compile(r"(?<![A-Za-z])[+-]?(nan|inf|infinity)(?![A-Za-z])", re.IGNORECASE)
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+\.png)\)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = write_report(out, seed=0, smoke=True)
    return out, path.read_text()


def _sections(text: str) -> dict[str, str]:
    """The report split at its level-2 headings, keyed by the heading line."""
    chunks = re.split(r"(?m)^(?=## )", text)
    return {c.splitlines()[0]: c for c in chunks if c.startswith("## ")}


def _tables(md: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of cells (header first, separator dropped)."""
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def test_every_section_is_expected() -> None:
    assert list(EXPECTED) == SECTIONS


def test_report_has_every_section_in_order_and_timings(report) -> None:
    _, text = report
    heads = list(_sections(text))
    assert len(heads) == len(SECTIONS) + 1 and heads[-1] == "## Timings"
    for head, (prefix, _) in zip(heads, EXPECTED.values()):
        assert head.startswith(prefix), (head, prefix)
    timings = _tables(_sections(text)["## Timings"])[0][2:]
    assert [row[0].strip("`") for row in timings] == SECTIONS


@pytest.mark.parametrize("spec", SECTIONS)
def test_section_tables_figures_and_finite_numbers(report, spec) -> None:
    out, text = report
    prefix, pngs = EXPECTED[spec]
    md = next(body for head, body in _sections(text).items() if head.startswith(prefix))
    if not HAVE_TORCH and spec.endswith(("trained_models:section",)):
        assert "Skipped: torch and safetensors are needed" in md
        return
    # tables: at least one, each with a header, the |---| separator and one data row or more, all rows
    # with the header's number of cells
    tables = _tables(md)
    assert tables, f"{spec}: no table"
    for tab in tables:
        assert len(tab) >= 3 and set("".join(tab[1])) <= set("-: "), (spec, tab[:2])
        assert all(len(row) == len(tab[0]) for row in tab), (spec, tab[0])
    # figures: every expected PNG is linked from this section, exists, is a PNG and is not a blank canvas
    linked = set(_IMAGE.findall(md))
    assert pngs <= linked, (spec, pngs - linked)
    for name in linked:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 10_000, (name, len(data))  # a blank 1-colour figure compresses to a few kB
    # numbers: none is nan or inf
    bad = [m.group(0) for m in _NONFINITE.finditer(md)]
    assert not bad, (spec, bad)
