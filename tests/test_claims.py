"""The claims ledger (rugtheory.app.claims, ``rugtheory claims``; docs/theory.md §14).

1. Rows recomputed from scratch by independent routes: the constant-factor row from the mpmath oracles
   (L* and the MMSE) and a quadrature of the reduced problem K(p); the atlas rows straight from the CSV
   with the ``csv`` module; the Persian-rug row with the full-matrix exact engine instead of one row.
2. No typed numbers: the sentence templates contain no digits outside ``{placeholders}``, formulas,
   citations and commands, and every number of a rendered sentence is the text of an evidence entry.
3. The ledger follows the atlas CSV (a modified CSV changes the counts), the generated docs/claims.md is
   up to date byte for byte (also on another SIMD path with one thread), the README's verdicts and the
   rules of docs/theory.md §14 agree with the code, and the CLI's outputs and errors.

One ledger build (~10 s on one core) is shared by the module; the process-wide cache of
:func:`rugtheory.app.claims.claims` also serves the report test in the same session.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pytest

from rugtheory.app import claims as C
from rugtheory.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "claims.md"


@pytest.fixture(scope="module")
def ledger() -> list[C.Claim]:
    return C.claims()


@pytest.fixture(scope="module")
def ev(ledger) -> dict[str, dict[str, C.Evidence]]:
    return C.evidence()


def _row(ledger, cid: str) -> C.Claim:
    return next(c for c in ledger if c.id == cid)


def _csv_rows() -> list[dict[str, str]]:
    from rugtheory.app.atlas_lookup import atlas_csv_path

    with open(atlas_csv_path(), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _close(a: float, b: float, sig: int) -> bool:
    """b (shown to ``sig`` significant digits) is a rounding of a."""
    return abs(a - b) <= 0.51 * 10 ** (math.floor(math.log10(abs(a))) - sig + 1) + 1e-300


# ------------------------------------------------------------ shape


def test_every_claim_once_in_the_abstracts_order(ledger) -> None:
    assert [c.id for c in ledger] == list(C.CLAIM_IDS)
    assert all(c.verdict in C.VERDICTS for c in ledger)
    for c in ledger:
        assert c.quote == C.QUOTES[c.id] and c.conditions and c.boundary and c.commands
        assert c.commands[0] == "rugtheory claims --json"


def test_quotes_are_distinct() -> None:
    """The quotes are the issue's words from the abstract of arXiv:2410.12101 (checked against it by hand);
    here only that they are distinct and non-trivial."""
    assert len(set(C.QUOTES.values())) == len(C.QUOTES) and all(len(q) > 20 for q in C.QUOTES.values())


# ------------------------------------------------------------ independent routes


@pytest.mark.slow
def test_constant_factor_row_from_the_mpmath_oracles(ev) -> None:
    """ReLU/MMSE at p = 1e-4, r = 0.1: L* by the mpmath root finder and the MMSE by mpmath quadrature of the
    posterior variance (rugtheory.twins), neither using the decoder engine; K(1e-4) by scipy quadrature of
    the reduced problem k(t) = 1 + t²/4 + 2(1−p)/p I₂(−t) and a bounded scalar minimisation."""
    from scipy import integrate, optimize, stats

    import rugtheory as rt
    from rugtheory.twins import decoders_oracle, oracle

    p, r = C.DECODER_P[0], C.SPARSE_R
    row = ev["constant_factor"]
    start = float(rt.optimal_symmetric_loss(p, r).theta)  # only the oracle's starting point
    lstar = float(oracle.optimal_symmetric_loss(p, r, theta_start=start, dps=20)["loss"])
    mmse = float(decoders_oracle.mmse_loss(p, r, dps=20))
    shown = row["ratios"].value[0]
    assert shown["p"] == p
    assert _close(lstar / mmse, shown["relu_over_mmse"], 3), (lstar / mmse, shown)

    def k(t: float) -> float:
        i2 = integrate.quad(lambda z: 0.5 * (z - t) ** 2 * stats.norm.pdf(z), t, t + 40, epsabs=0, epsrel=1e-12)[0]
        return 1 + t * t / 4 + 2 * (1 - p) / p * i2

    res = optimize.minimize_scalar(k, bounds=(0.5, 8.0), method="bounded", options={"xatol": 1e-9})
    assert _close(res.fun, row["K"].value[0], 3), (res.fun, row["K"].value)
    # uniformity in r: every shown ratio at fixed p lies between 1 and K(p)
    for d in row["uniform"].value:
        assert 1.0 <= d["min"] <= d["max"] <= d["K"], d


def test_atlas_numbers_recomputed_with_the_csv_module(ev) -> None:
    """Counts, the L* error of converged models and the exact-vs-measured agreement, read from the CSV
    with csv.DictReader and recomputed here."""
    rows = _csv_rows()
    trained = [d for d in rows if d["status"] not in ("pending", "weights unreadable") and d["heldout_loss"]]
    conv = [d for d in trained if d["status"] == "converged"]
    st = ev["statistics"]
    assert st["atlas_listed"].value == len(rows)
    assert st["atlas_trained"].value == len(trained)
    assert st["atlas_converged"].value == len(conv)
    if conv:
        errs = [(float(d["lstar"]) - float(d["heldout_loss"])) / float(d["heldout_loss"]) for d in conv]
        assert _close(statistics.median(errs), st["lstar_median_error"].value, 2)
        assert _close(min(errs), st["lstar_error_min"].value, 2)
    tr = ev["tractable"]
    within = 0
    for d in trained:
        se = math.hypot(float(d["heldout_se"]), float(d["exact_finite_n_error"] or 0))
        within += abs(float(d["exact_finite_n"]) - float(d["heldout_loss"])) <= C.RULES["k_se"] * se
    assert tr["exact_models"].value == len(trained) and tr["exact_within"].value == within
    built: dict[str, int] = {}
    for d in trained:
        built[d["built_structure"]] = built.get(d["built_structure"], 0) + 1
    assert ev["rug_oblivious"]["built"].value == built


def test_rug_row_with_the_full_matrix_engine(ev) -> None:
    """The row draws at the smallest n: the one-row engine (exact_loss_of_row and the permutation argument) gives
    the spread and median; the draw with the largest gap is redone by exact_loss_from_weights on the dense W
    (every row)."""
    import rugtheory as rt
    from rugtheory.theory.finite_n import exact_loss_from_weights, exact_loss_of_row

    n, p = C.RUG_N[0], C.RUG_P
    rugs = [rt.persian_rug(n, round(C.RUG_R * n), seed=s) for s in range(C.RUG_SEEDS)]
    scal = [rt.theory_scalars(g, p) for g in rugs]
    one = [exact_loss_of_row(sc.alpha * np.asarray(g.row(0)), 0, sc.beta, p)[0] / sc.predicted_loss - 1
           for g, sc in zip(rugs, scal)]
    full = {}
    for s in (int(np.argmax(one)),):
        W = scal[s].alpha * rugs[s].dense()
        loss = exact_loss_from_weights(W, np.full(n, scal[s].beta), p, tol=1e-9).loss
        full[s] = loss / scal[s].predicted_loss - 1
        assert abs(full[s] - one[s]) < 1e-6, (s, full[s], one[s])
    first = ev["rug_oblivious"]["per_n"].value[0]
    assert first["n"] == n
    assert _close(max(one) - min(one), first["spread"], 2), (one, first)
    assert _close(statistics.median(one), first["median_gap"], 2), (one, first)


def test_training_curve_crossing_read_with_json(ev) -> None:
    """The crossing checkpoints of the committed n = 512 curve, read with json, against the rug's loss from the
    full-matrix exact engine (every row of the dense W)."""
    import rugtheory as rt
    from rugtheory.theory.finite_n import exact_loss_from_weights

    path = C.results_dir() / C.CURVES[0][0]
    if not path.exists():
        pytest.skip("benchmarks/results not in this tree")
    data = json.loads(path.read_text(encoding="utf-8"))
    row = next(x for x in data["rows"] if x["recipe"].startswith("reference"))
    n, p = data["n"], data["p"]
    g = rt.persian_rug(n, data["m"], seed=0)
    sc = rt.theory_scalars(g, p)
    rug = exact_loss_from_weights(sc.alpha * g.dense(), np.full(n, sc.beta), p, tol=1e-9).loss
    below = next(s for s, loss in row["history"] if loss < rug)
    shown = next(c for c in ev["rug_matches"]["curves"].value if c["file"] == path.name)
    assert shown["cross_before"] == below
    assert _close(row["heldout_loss"] / rug - 1, shown["final_vs_rug"], 2)


# ------------------------------------------------------------ no typed numbers

#: Digits that may stand in a template outside placeholders: formulas, citations, code in backticks.
FORMULAS = ("p²(1−r)ln(1/p)/(6r)", "p² ln(1/p)(1−r)/r", "ln ln(1/p)/ln(1/p)", "ln^{{3/2}}(1/p)", "ln^{3/2}(1/p)",
            "½ ln(1/p) − ¾ ln ln(1/p) + O(1)", "½ ln(1/p)", "ln(1/p)", "C(p)/(pn)", "item 11", "session S2",
            "→ 0", "≪ 1")
_CITATION = re.compile(r"§\d+(?:\.\d+)?")
_CODE = re.compile(r"`[^`]*`")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _strip(text: str) -> str:
    for f in FORMULAS:
        text = text.replace(f, " ")
    return _CITATION.sub(" ", _CODE.sub(" ", _PLACEHOLDER.sub(" ", text)))


def test_templates_have_no_typed_numbers() -> None:
    bad = [(cid, key, re.findall(r"\S*\d\S*", _strip(t))) for cid, tpl in C.TEMPLATES.items()
           for key, t in tpl.items() if re.search(r"\d", _strip(t))]
    assert not bad, bad


def test_every_placeholder_names_an_evidence_entry(ev) -> None:
    for cid, tpl in C.TEMPLATES.items():
        assert set(tpl) - {"no data"} == {*C.VERDICTS, "boundary", "finding", "missing"}, cid
        for key, t in tpl.items():
            missing = set(_PLACEHOLDER.findall(t)) - set(ev[cid])
            assert not missing, (cid, key, missing)


_NUMBER = re.compile(r"[−+-]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[−-]?\d+)?%?")


def test_every_rendered_number_is_an_evidence_text(ledger) -> None:
    """Each number in a verdict sentence occurs in the text of an evidence entry of that claim."""
    for c in ledger:
        pool = " ".join(e.text for e in c.evidence.values())
        for sentence in (c.conditions, c.boundary, c.finding, c.missing):
            for tok in _NUMBER.findall(_strip(sentence)):
                assert tok.lstrip("+−-") in pool, (c.id, tok, sentence)


def test_changing_the_evidence_changes_the_sentences(ev) -> None:
    """Replace every evidence text by a marker: the markers appear and the original numbers are gone."""
    fake = {cid: {k: C.Evidence(e.value, "⟨marker⟩", e.unit, e.what, e.kind) for k, e in d.items()}
            for cid, d in ev.items()}
    for c in C.claims_from_evidence(fake):
        text = " ".join((c.conditions, c.boundary, c.finding, c.missing))
        assert "⟨" in text, c.id
        assert not re.search(r"\d", _strip(text)), (c.id, _strip(text))


def test_no_trained_models_is_said_not_hidden(ev) -> None:
    """With no trained (converged) model the rules give "fails" and the sentence says that nothing supports it."""
    fake = {cid: dict(d) for cid, d in ev.items()}
    for cid, key in (("statistics", "atlas_trained"), ("rug_matches", "converged")):
        fake[cid][key] = C.Evidence(0, "0", "models", "none", "count")
    got = {c.id: c for c in C.claims_from_evidence(fake)}
    for cid in ("statistics", "rug_matches"):
        assert got[cid].verdict == "fails" and got[cid].conditions.startswith("Not shown"), got[cid].conditions


def test_formatting_never_prints_minus_zero() -> None:
    assert C.fmt_num(-1e-30, 3) == "−1e−30" and C.fmt_num(-0.0) == "0"
    assert C.fmt_pct(-0.0) == "0%" and C.fmt_pct(0.0123) == "+1.2%" and C.fmt_pct(-0.5, sign=False) == "−50%"
    assert C.fmt_num(1.35e-7) == "1.35e−7" and C.fmt_num(16384, 5) == "16384" and C.fmt_num(16384) == "16400"
    assert C.fmt_num(float("nan")) == "–"


# ------------------------------------------------------------ the CSV and the docs


def test_the_ledger_follows_the_csv(tmp_path) -> None:
    """A CSV with the converged models marked pending: the statistics counts follow it (one collector only)."""
    src = _csv_rows()
    out = tmp_path / "atlas.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(src[0]))
        w.writeheader()
        for d in src:
            w.writerow(dict(d, status="pending") if d["status"] == "converged" else d)
    got = C.collect_evidence(out, only=("statistics",))["statistics"]
    assert got["atlas_converged"].value == 0
    assert got["atlas_listed"].value == len(src)
    assert got["lstar_median_error"].text == "–"
    with pytest.raises(ValueError, match="only must name"):
        C.collect_evidence(out, only=("nope",))


def test_docs_claims_md_is_up_to_date(ledger, tmp_path) -> None:
    out = tmp_path / "claims.md"
    assert main(["claims", "--markdown", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8"), (
        "docs/claims.md is stale: run `rugtheory claims --markdown --out docs/claims.md`")
    assert DOC.read_text(encoding="utf-8").splitlines()[0] == __import__("rugtheory.app.cli.claims",
                                                                         fromlist=["BANNER"]).BANNER


def test_docs_claims_md_citations_resolve() -> None:
    headings = set(re.findall(r"^#{2,4} §(\d+(?:\.\d+)?)", (ROOT / "docs" / "theory.md").read_text(encoding="utf-8"),
                              re.MULTILINE))
    cited = set(re.findall(r"§(\d+(?:\.\d+)?)", DOC.read_text(encoding="utf-8")))
    assert cited and cited <= headings, cited - headings


@pytest.mark.slow
def test_identical_on_another_simd_path_and_one_thread(tmp_path) -> None:
    """``rugtheory claims --json`` in a fresh interpreter with one thread and numpy's AVX-512 kernels off gives
    the same bytes as in this process (the numbers are shown at digits that rounding noise cannot reach)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR AVX512_SKX AVX512_CLX AVX512_CNL AVX512F")
    cmd = [sys.executable, "-W", "ignore", "-c", "from rugtheory.app.cli import main; raise SystemExit(main())",
           "claims", "--json"]
    fresh = subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=ROOT, text=True).stdout
    assert fresh == C.render_json(C.claims())


def test_readme_verdicts_match_the_ledger(ledger) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for c in ledger:
        assert f"| {c.quote} | {c.verdict} |" in text, f"README verdict for {c.id} differs from `rugtheory claims`"


def test_theory_doc_states_the_rules_and_inputs() -> None:
    doc = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")
    sec = doc[doc.index("## §14."):]
    for name, value in C.RULES.items():
        assert f"| `{name}` | {value:g} |" in sec, name
    assert f"n = {', '.join(str(n) for n in C.RUG_N)}" in sec
    assert f"r = {', '.join(f'{r:g}' for r in C.BOUNDARY_R)}" in sec
    assert f"seeds 0–{C.RUG_SEEDS - 1}" in sec and f"at n = {C.RUG_ALT_N} is" in sec


# ------------------------------------------------------------ CLI


def test_cli_text_and_json(ledger, capsys) -> None:
    assert main(["claims"]) == 0
    text = capsys.readouterr().out
    for c in ledger:
        assert f"{c.id}: {c.verdict.upper()}" in text
    assert main(["claims", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["verdict"] for d in data["claims"]] == [c.verdict for c in ledger]
    assert data["rules"] == C.RULES
    for d in data["claims"]:
        for e in d["evidence"].values():
            assert set(e) == {"value", "text", "unit", "what", "kind"}
    bad = re.compile(r"(?<![A-Za-z])(nan|inf)(?![A-Za-z])|−0(?![.\d])", re.IGNORECASE)
    assert not bad.search(text) and not bad.search(C.render_markdown(ledger))


def _fails(capsys, argv, needle) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1 and needle in err, err


def test_cli_errors(tmp_path, capsys) -> None:
    _fails(capsys, ["claims", "--json", "--markdown"], "--markdown")
    _fails(capsys, ["claims", "--atlas", str(tmp_path / "none.csv")], "--atlas")
    _fails(capsys, ["claims", "--out", str(tmp_path / "missing" / "c.md")], "--out")
    _fails(capsys, ["claims", "--out", str(tmp_path)], "--out")
    broken = tmp_path / "broken.csv"
    broken.write_text("n,m,r\n256,64,0.25\n", encoding="utf-8")
    _fails(capsys, ["claims", "--atlas", str(broken)], "lacks the column")
