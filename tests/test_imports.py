"""``import rugtheory`` is light and its public names are exactly the re-export list."""

import subprocess
import sys

import rugtheory


def test_import_does_not_pull_heavy_modules():
    code = "import sys, rugtheory; print(','.join(m for m in ('torch','sympy','matplotlib') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_all_names_resolve():
    for name in rugtheory.__all__:
        assert getattr(rugtheory, name) is not None, name
    assert len(set(rugtheory.__all__)) == len(rugtheory.__all__)
