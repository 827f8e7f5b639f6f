"""derivations/generated/ tables of derivations/tables.py: regenerate them (through the CLI)
and fail on any difference from the committed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from derivations.tables import BANNER, FILES, GENERATED
from rugtheory.cli import main


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
    from derivations.asymptotics import derive

    text = (regenerated / "derived_expressions.csv").read_text(encoding="utf-8")
    for name in derive():
        assert f"asymptotics,{name}," in text, name
