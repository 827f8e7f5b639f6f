"""The benchmark runner finds every ``benchmarks/bench_<topic>.py`` and each module imports and has ``main``.

The benchmarks themselves are run by hand (``python -m benchmarks``, numbers go in the notes); this
only keeps a renamed import or a missing ``main`` from hiding until someone runs them.
"""

from __future__ import annotations

import importlib

import pytest

from benchmarks.__main__ import main, topics


def test_every_topic_imports_and_has_main():
    found = topics()
    assert {"theory", "training", "finite_n", "rug", "decoders", "phase_map"} <= set(found)
    for topic in found:
        module = importlib.import_module(f"benchmarks.bench_{topic}")
        assert callable(getattr(module, "main", None)), topic


def test_unknown_topic_is_a_clear_error(capsys: pytest.CaptureFixture[str]):
    assert main(["no_such_topic"]) == 2
    assert "unknown topic(s) no_such_topic" in capsys.readouterr().err
