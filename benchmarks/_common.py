"""Helpers shared by the benchmark modules."""

from __future__ import annotations

import os

__all__ = ["load_line"]


def load_line() -> str:
    """The machine's load averages and core count, printed beside every timing."""
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count() or 0} cores"
    except OSError:
        return "load average unavailable"
