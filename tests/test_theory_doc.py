"""docs/theory.md against the code.

1. Every section the code and the docs cite ("docs/theory.md §N", "§N–M", "§N/§M", "§N.M") is a heading
   of docs/theory.md, the numbering of §1–§10 keeps its topics, and no old-style citation is left.
2. The key numbers the document states are recomputed here from the library, independently of the
   document: each claim is a sentence template, the values the code computes now are formatted into
   it, and the document must contain the result (whitespace-insensitive). A digit that changes in the
   code, or an edit of the document, fails the test with both strings in the message.

Numbers measured on trained models (docs/theory.md §12) are not recomputed: they take minutes to hours
of training and are labelled in the document as measurements with the session that produced them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import rugtheory as rt

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "theory.md"

# ----------------------------------------------------------------------------------------------
# 1. Citations resolve
# ----------------------------------------------------------------------------------------------

#: Folders whose *.py files may cite the theory document, plus the two top-level docs.
CITING_DIRS = ("rugtheory", "validation", "derivations", "benchmarks", "tests")
CITING_DOCS = ("README.md", "CONTRIBUTING.md")
#: Headings "## §N. Title" and "### §N.M Title".
HEADING = re.compile(r"^#{2,4} §(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)
#: A section reference, optionally a range: §3, §4.2, §3–4, §5–§6 (a list "§7/§9" is two matches).
#: Every "§" in the cited files refers to docs/theory.md (checked by grep when this test was written);
#: one that follows "paper" or "arXiv…" would cite another document and is skipped.
SECTION_REF = re.compile(r"§(\d+(?:\.\d+)?)(?:\s*[–-]\s*§?(\d+(?:\.\d+)?))?")
OTHER_DOCUMENT = re.compile(r"(?:paper|arXiv\S*)\s*$", re.IGNORECASE)
#: The old citation form, before the theory moved into docs/theory.md.
OLD_CITATION = "THEORY" + " §"
#: Topic of each top-level section. §1–§10 are cited by number from the code, so a renumbering would
#: silently misdirect those citations; §11–§13 complete the document.
TOPICS = {
    1: "Model, data, loss",
    2: "Splitting a pre-activation",
    3: "symmetric large-N loss",
    4: "rank bound",
    5: "decoders",
    6: "High sparsity",
    7: "Finite n",
    8: "Persian rug",
    9: "reference implementation",
    10: "Competing structures",
    11: "Corrections",
    12: "Findings",
    13: "Numerics",
}


@lru_cache(maxsize=1)
def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def flat_doc() -> str:
    """The document with every run of whitespace as one space (line breaks may fall anywhere)."""
    return " ".join(doc_text().split())


def citing_files() -> list[Path]:
    here = Path(__file__).resolve()
    files = [p for d in CITING_DIRS for p in sorted((ROOT / d).rglob("*.py")) if p.resolve() != here]
    return files + [ROOT / name for name in CITING_DOCS]


def cited_sections(text: str) -> list[tuple[str, int]]:
    """Every section number cited in ``text`` with its line number; ranges give both ends and the
    integers between them."""
    out = []
    for m in SECTION_REF.finditer(text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if OTHER_DOCUMENT.search(text[line_start : m.start()]):
            continue
        line = text.count("\n", 0, m.start()) + 1
        first, last = m.group(1), m.group(2)
        out.append((first, line))
        if last is not None:
            out.append((last, line))
            if "." not in first and "." not in last:
                out += [(str(k), line) for k in range(int(first) + 1, int(last))]
    return out


def test_headings_are_numbered_in_order_with_the_cited_topics() -> None:
    top = re.findall(r"^## §(\d+)\. (.+)$", doc_text(), re.MULTILINE)
    numbers = [int(n) for n, _ in top]
    assert numbers == list(range(1, len(top) + 1)), "top-level sections must run §1, §2, ... in order"
    assert len(top) >= 13, f"expected at least §1–§13, found {len(top)} top-level sections"
    titles = {int(n): title for n, title in top}
    for n, topic in TOPICS.items():
        assert topic.lower() in titles[n].lower(), (
            f"§{n} must stay '{topic}' (code cites it by number), got '{titles[n]}'"
        )
    headings = HEADING.findall(doc_text())
    assert len(headings) == len(set(headings)), "a section number is used by two headings"
    for sub in (h for h in headings if "." in h):
        assert sub.split(".")[0] in headings, f"§{sub} sits outside a numbered section"


def test_every_cited_section_is_a_heading() -> None:
    headings = set(HEADING.findall(doc_text()))
    missing = []
    for path in citing_files():
        for section, line in cited_sections(path.read_text(encoding="utf-8")):
            if section not in headings:
                missing.append(f"{path.relative_to(ROOT)}:{line}: §{section}")
    assert not missing, "sections cited but not in docs/theory.md:\n" + "\n".join(missing)


def test_no_old_style_citation_remains() -> None:
    stale = []
    for path in citing_files():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OLD_CITATION in line:
                stale.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not stale, (
        f"old '{OLD_CITATION}N' citations left; the theory lives in docs/theory.md, cite it as "
        "'docs/theory.md §N':\n" + "\n".join(stale)
    )


def test_the_citation_parser_on_known_forms() -> None:
    text = (
        "a (docs/theory.md §3–4) b §5–§6 c §7/§9; d §2–§4, §8 e §4.2 f\n"
        "the paper §3 g arXiv:2209.10652 §2"
    )
    assert [s for s, _ in cited_sections(text)] == ["3", "4", "5", "6", "7", "9", "2", "4", "3", "8", "4.2"]


# ----------------------------------------------------------------------------------------------
# 2. The numbers of the document
# ----------------------------------------------------------------------------------------------

#: Where the non-top-level names live: layered modules first, then the flat modules they came from.
#: A name is looked up by attribute, so a module that is split or renamed only needs a line here.
_HOMES = (
    "rugtheory.theory.decoders",
    "rugtheory.theory.asymptotics",
    "rugtheory.theory.finite_n",
    "rugtheory.constructions.structures",
    "rugtheory.constructions.polytopes",
    "rugtheory.constructions.paired_rug",
    "rugtheory.constructions.phase_map",
    "rugtheory.decoders",
    "rugtheory.asymptotics",
    "rugtheory.finite_n",
    "rugtheory.structures",
    "rugtheory.phase_map",
)


def _import(qualified: str) -> ModuleType | None:
    """The module, or None if it (or a package above it) does not exist; other import errors propagate."""
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name is not None and qualified.startswith(exc.name):
            return None
        raise


@cache
def api(name: str):
    """A rugtheory function or constant: the public ``rugtheory.<name>`` if exported, else from its module."""
    if name in rt.__all__:
        return getattr(rt, name)
    for qualified in _HOMES:
        mod = _import(qualified)
        if mod is not None and hasattr(mod, name):
            return getattr(mod, name)
    raise LookupError(f"{name} is neither in rugtheory.__all__ nor in any of {_HOMES}")


def _signed(text: str) -> str:
    """Leading ASCII minus as the document writes it (U+2212); exponents keep ASCII."""
    return "−" + text[1:] if text.startswith("-") else text


def fix(x: float, digits: int, *, sign: bool = False) -> str:
    return _signed(f"{float(x):{'+' if sign else ''}.{digits}f}")


def sci(x: float, digits: int, *, sign: bool = False) -> str:
    mantissa, exponent = f"{float(x):{'+' if sign else ''}.{digits}e}".split("e")
    return _signed(f"{mantissa}e{int(exponent)}")


def pct(x: float, digits: int, *, sign: bool = False) -> str:
    return fix(100.0 * float(x), digits, sign=sign) + "%"


# --- computations, each done once ---------------------------------------------------------------


@cache
def opt(p: float, r: float):
    return rt.optimal_symmetric_loss(p, r)


@cache
def table(p: tuple[float, ...], r: float):
    return rt.decoder_table(np.array(p), np.full(len(p), r))


RATIO_P = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-12)


@cache
def rug_exact(n: int, p: float, seed: int) -> tuple[float, float, bool]:
    """Exact loss of a Persian rug at r = 1/4 with the theory scalars (one row is the whole loss),
    its relative gap to L*, and whether row 0 was drawn."""
    rug = rt.persian_rug(n, n // 4, seed=seed)
    sc = rt.theory_scalars(rug, p)
    loss, err = api("exact_loss_of_row")(sc.alpha * np.asarray(rug.row(0)), 0, sc.beta, p)
    assert err < 1e-6 * loss
    return loss, loss / sc.predicted_loss - 1.0, bool(0 in set(rug.rows.tolist()))


def rug_row_structure(n: int) -> tuple[int, float]:
    """k_half (entries carrying half of Σ_{j≠i} W_ij²) and the negative share of it, rug row, seed 0."""
    w = np.delete(np.asarray(rt.persian_rug(n, n // 4, seed=0).row(0), dtype=float), 0)
    sq = w * w
    k_half = int(np.sum(np.cumsum(np.sort(sq)[::-1]) < 0.5 * sq.sum())) + 1
    return k_half, float(sq[w < 0].sum() / sq.sum())


@lru_cache(maxsize=1)
def rug_512_interference() -> tuple[float, float]:
    """Lyapunov ratio and exact skewness of ν for the rug n = 512, m = 128, seed 0, at p = 0.045, from
    its kernel (every row holds the same off-diagonal entries) and the data moments of §1."""
    p = 0.045
    eps = np.delete(np.asarray(rt.persian_rug(512, 128, seed=0).row(0), dtype=float), 0)
    mom = rt.data_moments(p)
    v, k3 = float(mom.variance), float(mom.kappa3)
    abs3 = (1 - p) * (p / 2) ** 3 + p * ((p / 2) ** 4 + (1 - p / 2) ** 4) / 4  # E|x - p/2|^3
    s2 = float(np.sum(eps**2))
    return abs3 * float(np.sum(np.abs(eps) ** 3)) / (v * s2) ** 1.5, k3 * float(np.sum(eps**3)) / (v * s2) ** 1.5


@lru_cache(maxsize=1)
def paper_grid_max() -> tuple[float, float, float]:
    g = np.linspace(0.002001, 0.8, 20)
    P, R = np.meshgrid(g, g, indexing="ij")
    t = rt.decoder_table(P, R)
    q = t.relu / t.mmse
    i = np.unravel_index(np.argmax(q), q.shape)
    return float(q[i]), float(P[i]), float(R[i])


@lru_cache(maxsize=1)
def the_phase_map():
    return api("phase_map")(np.geomspace(1e-4, 0.9, 40), np.linspace(0.025, 1.0, 40))


# --- the claims ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    section: str
    template: str
    values: Callable[[], tuple[str, ...]]


def _worked_example() -> tuple[str, ...]:
    o = opt(0.045, 0.25)
    return fix(o.s, 4), sci(o.loss, 4), fix(o.a, 4), fix(o.b, 4), fix(o.theta, 4), fix(o.sigma, 4)


def _reference_baseline() -> tuple[str, ...]:
    p, r = 0.045, 0.25
    ref = (1 - r) * p / 3
    lin = float(rt.linear_loss(p, r))
    assert lin == pytest.approx((1 - r) * (p / 3 - p * p / 4), rel=1e-15)
    return sci(ref, 4), sci(lin, 4), pct(ref / lin - 1, 1)


def _dense_small_r() -> tuple[str, ...]:
    o = opt(0.3, 0.05)
    return fix(o.theta, 3), sci(o.loss, 4), sci(o.linear_loss, 4)


def _decoders_at_example() -> tuple[str, ...]:
    t = table((0.045,), 0.25)
    return (sci(t.linear_gain_only[0], 4), sci(t.jumprelu_gain[0], 4), sci(t.relu[0], 4), sci(t.mmse[0], 4),
            fix(t.relu[0] / t.mmse[0], 3))


def _topk_is_relu_at_example() -> tuple[str, ...]:
    t = table((0.045,), 0.25)
    rel = abs(t.jumprelu_shift[0] / t.relu[0] - 1.0)
    return ("< 1e-12" if rel < 1e-12 else sci(rel, 1),)


def _ratios_r01() -> tuple[str, ...]:
    t = table(RATIO_P, 0.1)
    return tuple(fix(x, 2) for x in t.relu / t.mmse)


def _ratios_r01_sparse() -> tuple[str, ...]:
    t = table(RATIO_P, 0.1)
    q = t.relu / t.mmse
    return fix(q[3], 2), fix(q[5], 2), fix(q[6], 2)


def _jumprelu_r01() -> tuple[str, ...]:
    t = table(RATIO_P, 0.1)
    return (fix(t.jumprelu_shift[5] / t.mmse[5], 4),)


def _paper_grid() -> tuple[str, ...]:
    q, p, r = paper_grid_max()
    return fix(q, 2), f"{p:g}", f"{r:g}"


def _K_values() -> tuple[str, ...]:
    c = api("relu_sparse_constant")(np.array([1e-4, 1e-6, 1e-12]))
    return fix(c.K[0], 4), fix(c.t[0], 4), fix(c.K[1], 4), fix(c.K[2], 4), fix(c.t[2], 4), fix(np.log(1e12) / 2, 2)


def _K_series_error() -> tuple[str, ...]:
    series = float(api("relu_constant_series")(1e-12, 3))
    return (sci(series / float(api("relu_sparse_constant")(1e-12).K) - 1.0, 1),)


def _mmse_series_error() -> tuple[str, ...]:
    exact = float(table((1e-12,), 0.1).mmse[0])
    return (sci(float(api("mmse_sparse_series")(1e-12, 0.1, 3)) / exact - 1.0, 1),)


def _c_phi() -> tuple[str, ...]:
    return (fix(api("C_PHI"), 4),)


def _rug_lyapunov() -> tuple[str, ...]:
    return (fix(rug_512_interference()[0], 2),)


def _rug_mean_field() -> tuple[str, ...]:
    rug = rt.persian_rug(512, 128, seed=0)
    assert 0 not in set(rug.rows.tolist())
    return (fix(rug.mean_shift(0.045), 4),)


def _rug_512() -> tuple[str, ...]:
    loss, gap, _ = rug_exact(512, 0.045, 0)
    return sci(loss, 4), pct(gap, 2, sign=True)


def _rug_seeds() -> tuple[str, ...]:
    rows = [rug_exact(1024, 0.05, seed) for seed in range(6)]
    assert [drawn for _, _, drawn in rows] == [False] * 5 + [True]
    gaps = [g for _, g, _ in rows[:5]]
    return pct(min(gaps), 2, sign=True), pct(max(gaps), 2, sign=True), pct(rows[5][1], 2, sign=True)


def _rug_convergence() -> tuple[str, ...]:
    _, g14, _ = rug_exact(2**14, 0.01, 0)
    loss20, g20, _ = rug_exact(2**20, 0.01, 0)
    _, h14, _ = rug_exact(2**14, 0.045, 0)
    pn14, pn20, qn14 = 0.01 * 2**14, 0.01 * 2**20, 0.045 * 2**14
    return (sci(g14, 2, sign=True), fix(g14 * pn14, 2), sci(g20, 2, sign=True), fix(g20 * pn20, 2), sci(loss20, 4),
            sci(opt(0.01, 0.25).loss, 4), sci(h14, 2, sign=True), fix(h14 * qn14, 2))


def _rug_rows() -> tuple[str, ...]:
    stats = [rug_row_structure(n) for n in (512, 1024, 2048)]
    skew = rug_512_interference()[1]
    return (*(str(k) for k, _ in stats), *(pct(share, 0) for _, share in stats), fix(skew, 3))


def _reference_point() -> tuple[str, ...]:
    prug = api("optimal_paired_rug_loss")(0.045, 0.25)
    return sci(opt(0.045, 0.25).loss, 4), sci(rug_exact(512, 0.045, 0)[0], 4), sci(prug.loss, 3)


def _untied_pairs() -> tuple[str, ...]:
    p = 0.01
    tied = float(api("structure_loss")(api("antipodal_pairs")(), p))
    untied = float(api("untied_pair_loss")(p, 1.0 / 3.0))
    assert tied == pytest.approx(p * p / 6, rel=1e-12) and untied == pytest.approx(25 * p * p / 162, rel=1e-12)
    return (pct(1.0 - untied / tied, 1),)


def _paired_rug() -> tuple[str, ...]:
    pr = api("optimal_paired_rug_loss")(0.045, 0.25)
    return sci(pr.loss, 3), fix(pr.loss / opt(0.045, 0.25).loss, 3), fix(pr.gain, 3), fix(pr.bias, 3)


def _pairs_vs_lstar() -> tuple[str, ...]:
    lstar = float(opt(0.01, 0.5).loss)
    tied = float(api("structure_loss")(api("antipodal_pairs")(), 0.01))
    untied = float(api("optimal_untied_pairs")(0.01).loss)
    e = rt.expected_structure(0.1, 0.5)
    assert e.winner == "untied pairs"
    return sci(lstar, 3), sci(tied, 3), fix(lstar / tied, 2), fix(lstar / untied, 2), fix(e.ratio_to_symmetric, 3)


def _phase_map() -> tuple[str, ...]:
    m = the_phase_map()
    sym = m.winner_names() == "symmetric"
    assert m.r[-1] == 1.0
    inner = sym[:, :-1]  # without the column r = 1, where every candidate has loss 0
    i, j = np.nonzero(inner)
    p_min = np.floor(100 * round(float(m.p[i].min()), 9)) / 100  # "p ≥ 0.56": a lower bound, rounded down
    r_min = np.floor(10 * round(float(m.r[j].min()), 9)) / 10
    return (str(int(sym.sum())), pct(sym.mean(), 1), str(int(sym[:, -1].sum())), str(int(inner.sum())),
            pct(inner.mean(), 1), f"{p_min:.2f}", f"{r_min:.1f}", fix(m.ratio.min(), 3))


CLAIMS = [
    Claim("§2", "p = 0.045 the ratio is Λ = {}", _rug_lyapunov),
    Claim("§4", "s = {}, L*(0.045, 0.25) = {}, a* = {}, b* = {}, θ* = {}, σ* = a*s = {}", _worked_example),
    Claim("§4", "θ* = {} at p = 0.3, r = 0.05, where L* = {} against (1 − r)v = {}", _dense_small_r),
    Claim("§5", "it gives (1 − r)p/3 = {} against (1 − r)v = {}, {} too high", _reference_baseline),
    Claim("§5", "gain only {}, JumpReLU(gain) {}, ReLU = L* = {}, MMSE {}, so ReLU/MMSE = {}", _decoders_at_example),
    Claim("§5", "the two agree to {} relative", _topk_is_relu_at_example),
    Claim("§5", "ReLU/MMSE = {}, {}, {}, {}, {}, {} at p = 1e-1, 1e-2, …, 1e-6, and {} at p = 1e-12", _ratios_r01),
    Claim("§5", "JumpReLU(gain+shift)/MMSE = {} at p = 1e-6", _jumprelu_r01),
    Claim("§6", "K(1e-4) = {} at t* = {}, K(1e-6) = {}, K(1e-12) = {} at t* = {}, against ℓ/2 = {} at p = 1e-12",
          _K_values),
    Claim("§6", "is off by {} relative at p = 1e-12; the ℓ/2 term", _K_series_error),
    Claim("§6", "C_φ = ∫ φ²/Φ = {}", _c_phi),
    Claim("§6", "At p = 1e-12, r = 0.1 the three-term series is off by {} relative", _mmse_series_error),
    Claim("§6", "the largest ReLU/MMSE is {} at p = {}, r = {}", _paper_grid),
    Claim("§8", "μ = {} at p = 0.045", _rug_mean_field),
    Claim("§8", "n = 512, m = 128, p = 0.045, seed 0: {}, {} above L*", _rug_512),
    Claim("§8", "(row 0 not drawn) spans {} … {}; seed 5 draws row 0 and gives {}", _rug_seeds),
    Claim("§8", "At p = 0.01 the gap is {} at n = 2^14 (gap·pn = {}) and {} at n = 2^20 (gap·pn = {}; loss {} "
                "against L*(0.01, 0.25) = {}); at p = 0.045 it is {} at n = 2^14 (gap·pn = {})", _rug_convergence),
    Claim("§8", "in its largest {}, {}, {} entries at n = 512, 1024, 2048, with negative entries carrying {}, {}, {} "
                "of it, and ν has skewness {} at n = 512, p = 0.045", _rug_rows),
    Claim("§9", "L* = {}, the rug at the theory scalars {} (§8.2), the paired rug {} (§10.4)", _reference_point),
    Claim("§10", "giving **25p²/162**, {} below the tied p²/6", _untied_pairs),
    Claim("§10", "(`rugtheory predict --p 0.045 --r 0.25`): {} = {} L*, at a = {}, b = {}", _paired_rug),
    Claim("§10", "at p = 0.01, r = 0.5, L* = {} against p²/6 = {} for tied pairs ({}× lower) and {}× lower for "
                 "optimised untied pairs; at p = 0.1, r = 0.5 untied pairs reach {} L*", _pairs_vs_lstar),
    Claim("§10", "L* is the lowest loss at {} of the 1600 points ({}). {} of them form the column r = 1, where every "
                 "candidate has loss 0 and ties go to L*; elsewhere L* wins at {} of 1560 points ({}), all at p ≥ {} "
                 "and r ≥ {}: the dense, high-r corner. The best structure reaches down to {} L*", _phase_map),
    Claim("§12", "ReLU/MMSE = {}, {}, {} at p = 1e-4, 1e-6, 1e-12 (r = 0.1)", _ratios_r01_sparse),
]


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c.section}:{c.template[:40]}" for c in CLAIMS])
def test_stated_number_is_what_the_code_computes(claim: Claim) -> None:
    template = " ".join(claim.template.split())
    assert template.split("{}")[0] in flat_doc(), f"{claim.section}: the sentence '{template}' is not in docs/theory.md"
    expected = template.format(*claim.values())
    assert expected in flat_doc(), (
        f"{claim.section}: docs/theory.md does not state what the code computes now.\n"
        f"  computed: {expected}\n"
        f"  document: {_nearest(template)}"
    )


def _nearest(template: str) -> str:
    """The document's sentence that starts like the template (for the failure message)."""
    head = template.split("{}")[0]
    at = flat_doc().find(head)
    return flat_doc()[at : at + len(template) + 40] if at >= 0 else "(not found)"
