"""The architecture's arrows point one way (docs/theory.md, CONTRIBUTING.md "Map of the house").

Layers, lowest first: ``rugtheory.theory`` ← ``rugtheory.constructions`` ← ``rugtheory.twins`` and
``rugtheory.derivations`` ← ``rugtheory.validation`` (the torch harness) ← ``rugtheory.app`` (CLI and
report). A module may import its own layer or a lower one, never a higher one. Every import is
read from the source (module level and inside functions alike), so a lazy import cannot hide an
arrow that points up. Theory and constructions never import torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Import-name prefix -> (rank, folder).
LAYERS: dict[str, tuple[int, Path]] = {
    "rugtheory.theory": (0, ROOT / "rugtheory" / "theory"),
    "rugtheory.constructions": (1, ROOT / "rugtheory" / "constructions"),
    "rugtheory.twins": (2, ROOT / "rugtheory" / "twins"),
    "rugtheory.derivations": (2, ROOT / "derivations"),
    "rugtheory.validation": (3, ROOT / "validation"),
    "rugtheory.app": (4, ROOT / "rugtheory" / "app"),
    "rugtheory.testing": (4, ROOT / "rugtheory" / "testing"),  # user-facing test helpers: app level
}
#: Third-party packages a layer must not import (torch is the harness's alone).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "rugtheory.theory": ("torch", "safetensors", "matplotlib", "sympy"),
    "rugtheory.constructions": ("torch", "safetensors", "sympy"),
    "rugtheory.twins": ("torch", "safetensors"),
}


def _layer_of(module: str) -> str | None:
    for prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def _sources() -> list[tuple[str, Path]]:
    return [(prefix, path) for prefix, (_, folder) in LAYERS.items()
            for path in (sorted(folder.rglob("*.py")) if folder.is_dir() else [folder])]


@pytest.mark.parametrize(
    ("layer", "path"), _sources(), ids=lambda x: str(x.relative_to(ROOT)) if isinstance(x, Path) else x
)
def test_no_arrow_points_up(layer: str, path: Path) -> None:
    rank = LAYERS[layer][0]
    bad = []
    for line, module in _imports(path):
        target = _layer_of(module)
        if target is not None and LAYERS[target][0] > rank:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({target} is above {layer})")
        if module.split(".")[0] in FORBIDDEN.get(layer, ()):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} (not allowed in {layer})")
        if module.split(".")[0] in ("validation", "derivations"):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}: use rugtheory.{module}")
    assert not bad, "\n".join(bad)


def test_report_never_imports_the_cli() -> None:
    """Inside the app layer the CLI is the top: the report and the shared app modules (atlas_lookup,
    rug_figure, claims) serve it, never the reverse."""
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}"
           for path in sorted((ROOT / "rugtheory" / "app").rglob("*.py")) if "cli" not in path.parts
           for line, module in _imports(path) if module.startswith("rugtheory.app.cli")]
    assert not bad, "\n".join(bad)


def test_every_module_belongs_to_a_layer() -> None:
    """Only the package's front door (__init__, __main__) sits outside the layer folders."""
    loose = sorted(p.name for p in (ROOT / "rugtheory").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], loose


def test_layers_import_and_theory_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rugtheory, rugtheory.theory.finite_n, rugtheory.constructions.phase_map, "
        "rugtheory.constructions.polytopes, rugtheory.constructions.paired_rug, "
        "rugtheory.constructions.structure_weights, rugtheory.twins.oracle; "
        "bad = [m for m in ('torch', 'sympy', 'matplotlib', 'rugtheory.validation', 'rugtheory.derivations') if m in "
        "sys.modules]; "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_subpackage_is_listed_for_installation() -> None:
    """pyproject.toml lists its packages explicitly (validation/ and derivations/ are mapped under
    rugtheory.): a subpackage missing there would import from a checkout but not from an install."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "rugtheory").rglob("__init__.py")}
    found |= {"rugtheory.validation", "rugtheory.derivations"}
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"
