"""derivations/generated/ tables of derivations/tables.py: regenerate them (through the CLI)
and fail on any difference from the committed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rugtheory.app.cli import main
from rugtheory.derivations.tables import BANNER, FILES, GENERATED


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tables")
    assert main(["tables", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", FILES)
def test_committed_table_is_up_to_date(regenerated: Path, name: str) -> None:
    fresh = (regenerated / name).read_text(encoding="utf-8")
    committed = (GENERATED / name).read_text(encoding="utf-8")
    assert fresh == committed, f"derivations/generated/{name} is stale: run `rugtheory tables`"


@pytest.mark.parametrize("name", FILES)
def test_table_carries_the_banner(regenerated: Path, name: str) -> None:
    first = (regenerated / name).read_text(encoding="utf-8").splitlines()[0]
    assert BANNER in first and "do not edit" in first


def test_every_derived_expression_is_tabulated(regenerated: Path) -> None:
    from rugtheory.derivations.asymptotics import derive

    text = (regenerated / "derived_expressions.csv").read_text(encoding="utf-8")
    for name in derive():
        assert f"asymptotics,{name}," in text, name


def test_tables_are_identical_on_another_simd_path_and_one_thread(tmp_path: Path) -> None:
    """Regenerate in a fresh interpreter with one BLAS/OpenMP thread and numpy's AVX-512 kernels
    switched off (the SIMD path of a CPU without AVX-512, where exp/log round differently in the
    last ulp), and require byte-identical files. This is how a CPU-dependent 7e-17 once reached
    a committed table."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR AVX512_SKX AVX512_CLX AVX512_CNL AVX512F")
    cmd = [sys.executable, "-W", "ignore", "-m", "rugtheory.derivations.tables", "--out", str(tmp_path)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    for name in FILES:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        assert fresh == (GENERATED / name).read_text(encoding="utf-8"), f"{name} differs on another SIMD path"
