"""The data distribution of docs/theory.md §1 and its one sampler.

Each feature is ``x_i = B_i U_i`` with ``B_i ~ Bernoulli(p)`` and ``U_i ~ Uniform[0, 1)``, all
independent. Every Monte Carlo route in the package (the twins, the constructions' checks, the
interference samplers) draws its data through :func:`sample_sparse_uniform`; its moments are
:func:`rugtheory.data_moments`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_sparse_uniform"]


def sample_sparse_uniform(rng: np.random.Generator, shape: int | tuple[int, ...], p: float) -> np.ndarray:
    """Draw ``x = B U`` (``B ~ Bernoulli(p)``, ``U ~ Uniform[0, 1)``) with one uniform per entry.

    ``u ~ U[0, 1)``; ``x = u/p`` if ``u < p`` else 0. Given ``u < p``, ``u/p`` is uniform on
    ``[0, 1)``, so this is the law of docs/theory.md §1 exactly (up to the 2^-53 grid of the
    generator), at half the cost of drawing B and U separately.

    Parameters
    ----------
    rng : numpy.random.Generator
        The caller's generator (seeded by the caller).
    shape : int or tuple of int
        Output shape.
    p : float
        Feature probability in (0, 1] (not checked here: callers validate it once).

    Returns
    -------
    numpy.ndarray
        float64 array of the given shape.
    """
    u = rng.random(shape)
    return np.where(u < p, u / p, 0.0)
