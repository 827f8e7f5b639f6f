"""Helpers shared by the benchmark modules."""

from __future__ import annotations

import os

__all__ = ["load_line"]


def load_line() -> str:
    """The machine's load averages and core count, printed beside every timing."""
    try:
        return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 0)
    except OSError:
        return "load average unavailable"
