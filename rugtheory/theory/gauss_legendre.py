"""Gauss–Legendre rules: the one source of quadrature nodes in the package.

An ``n``-point rule integrates polynomials of degree ``2n − 1`` exactly. The runtime uses it
where an integrand is smooth on a known interval (the kink-free pieces of docs/theory.md §3,
the channel integrals of §5, the partner integral of the paired rug in §10). Nodes come from
:func:`numpy.polynomial.legendre.leggauss` and are cached read-only.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["gauss_legendre", "gauss_legendre_unit"]


@cache
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point rule on ``[−1, 1]`` (read-only arrays)."""
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    x, w = np.polynomial.legendre.leggauss(n)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


@cache
def gauss_legendre_unit(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point rule on ``[0, 1]``: ``(x + 1)/2`` and ``w/2``."""
    x, w = gauss_legendre(n)
    xu, wu = 0.5 * (x + 1.0), 0.5 * w
    xu.setflags(write=False)
    wu.setflags(write=False)
    return xu, wu
