"""Sylvester–Hadamard matrices and the fast Walsh–Hadamard transform (numpy).

The Sylvester–Hadamard matrix of order ``n = 2^k`` in natural order is

    H_ij = (-1)^{popcount(i AND j)},    i, j = 0, ..., n - 1,

symmetric, with ``H H = n I`` (docs/theory.md §8). Its rows are the characters
``chi_s(j) = (-1)^{popcount(s AND j)}`` of the group ``(Z_2)^k``, so
``chi_s(i) chi_s(j) = chi_s(i XOR j)``: this is why the Persian rug's ``W`` depends on
``i XOR j`` only.

:func:`fwht` computes ``x H`` along the last axis in ``O(n log n)`` operations without
forming ``H``: radix-4 butterflies for small inputs, and for large ones Kronecker factors
``H_{2^b}`` applied as one large matrix product each (BLAS), which is faster in numpy than
butterflies there. With float64 input of integers below 2^53 / n the result is exact.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rugtheory.theory.checks import check_int

__all__ = [
    "is_power_of_two",
    "check_power_of_two",
    "fwht",
    "sylvester_rows",
    "sylvester_hadamard",
    "popcount_parity",
]

#: Largest width in bits of one Kronecker factor in :func:`fwht` (128×128 blocks: three stages at
#: n = 2^20; measured on the shared 2-core machine, 6–8 bits were equally fast, 4–5 slower; any
#: value from 1 up gives the same result).
_BLOCK_BITS = 7

#: Largest order for which :func:`sylvester_hadamard` forms the dense matrix (2^14 squared
#: float64 entries = 2 GiB; beyond that use :func:`fwht`).
DENSE_HADAMARD_MAX = 1 << 14


def is_power_of_two(n: int) -> bool:
    """True iff ``n`` is a positive integer power of two (``1 = 2^0`` included)."""
    return n >= 1 and (n & (n - 1)) == 0


def check_power_of_two(n: object, name: str = "n") -> int:
    """Return ``n`` as ``int`` or raise ``ValueError`` naming ``name``: an integer ``2^k >= 1``."""
    value = check_int(n, name, low=1)
    if not is_power_of_two(value):
        raise ValueError(f"{name} must be a power of two (1, 2, 4, ...) for the Hadamard construction, got {value}")
    return value


@lru_cache(maxsize=16)
def _small_hadamard(bits: int) -> np.ndarray:
    h = np.ones((1, 1))
    for _ in range(bits):
        h = np.block([[h, h], [h, -h]])
    h.setflags(write=False)
    return h


#: Inputs with at most this many entries use the radix-4 butterfly (no BLAS); larger ones the
#: Kronecker/BLAS route. Measured on the shared 2-core machine under load: a small BLAS call with
#: two threads can cost milliseconds (threads waiting for a core), the butterfly does not.
_BUTTERFLY_MAX_ENTRIES = 1 << 18


def _fwht_butterfly(x2: np.ndarray) -> np.ndarray:
    """Radix-4 (plus one radix-2) butterflies on a 2-D copy ``(batch, n)``; no BLAS."""
    nb, n = x2.shape
    k = n.bit_length() - 1
    out = np.array(x2, dtype=np.float64, copy=True)
    tmp = np.empty_like(out)
    h = 1
    if k % 2:
        y, t = out.reshape(nb, n // 2, 2), tmp.reshape(nb, n // 2, 2)
        np.add(y[..., 0], y[..., 1], out=t[..., 0])
        np.subtract(y[..., 0], y[..., 1], out=t[..., 1])
        out, tmp = tmp, out
        h = 2
    while h < n:
        y, t = out.reshape(nb, n // (4 * h), 4, h), tmp.reshape(nb, n // (4 * h), 4, h)
        np.add(y[:, :, 0], y[:, :, 1], out=t[:, :, 0])
        np.subtract(y[:, :, 0], y[:, :, 1], out=t[:, :, 1])
        np.add(y[:, :, 2], y[:, :, 3], out=t[:, :, 2])
        np.subtract(y[:, :, 2], y[:, :, 3], out=t[:, :, 3])
        np.add(t[:, :, 0], t[:, :, 2], out=y[:, :, 0])
        np.subtract(t[:, :, 0], t[:, :, 2], out=y[:, :, 2])
        np.add(t[:, :, 1], t[:, :, 3], out=y[:, :, 1])
        np.subtract(t[:, :, 1], t[:, :, 3], out=y[:, :, 3])
        h *= 4
    return out


def _fwht_kronecker(x2: np.ndarray) -> np.ndarray:
    """Kronecker factors of at most 2^_BLOCK_BITS, one large matrix product each (BLAS)."""
    nb, n = x2.shape
    k = n.bit_length() - 1
    q = -(-k // _BLOCK_BITS)
    bits = [k // q + (1 if i < k % q else 0) for i in range(q)]  # balanced factor sizes
    out = x2.reshape(nb, *[1 << b for b in bits])
    for _ in range(q):
        shape = out.shape
        d = shape[-1]
        out = (out.reshape(-1, d) @ _small_hadamard(d.bit_length() - 1)).reshape(shape)
        if q > 1:
            out = np.ascontiguousarray(np.moveaxis(out, -1, 1))
    return out.reshape(nb, n)


def fwht(x: np.ndarray) -> np.ndarray:
    """Unnormalised Walsh–Hadamard transform ``y = x H`` along the last axis (natural order).

    Parameters
    ----------
    x : array_like, shape (..., n)
        ``n`` a power of two; leading axes are a batch.

    Returns
    -------
    numpy.ndarray, float64, shape (..., n)
        ``y[..., i] = sum_j x[..., j] (-1)^{popcount(i AND j)}``. Applying it twice gives ``n x``.

    Notes
    -----
    Two exact routes, chosen by size. Small inputs (at most 2^18 entries): radix-4 butterflies
    ``(a0, a1, a2, a3) -> (a0+a1+a2+a3, a0−a1+a2−a3, a0+a1−a2−a3, a0−a1−a2+a3)``, ``log4 n`` passes.
    Large inputs: ``H_n = H_{d_1} ⊗ ... ⊗ H_{d_q}`` with ``d_i = 2^{b_i}``, ``b_i ≤ 7``; the input is
    viewed as a tensor with axes ``d_1 … d_q``, each stage multiplies the last axis by ``H_d`` in one
    large matrix product and rotates that axis to the front, so after ``q`` stages the axes are
    back in order. Cost ``O(n log n)`` either way; memory two arrays of the input's size.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("x must have at least one axis (the feature axis of length n)")
    n = arr.shape[-1]
    check_power_of_two(n, "x.shape[-1]")
    nb = int(np.prod(arr.shape[:-1], dtype=np.int64))
    if n == 1 or nb == 0:
        return arr.copy()
    x2 = arr.reshape(nb, n)
    out = _fwht_butterfly(x2) if nb * n <= _BUTTERFLY_MAX_ENTRIES else _fwht_kronecker(x2)
    return out.reshape(arr.shape)


def popcount_parity(values: np.ndarray) -> np.ndarray:
    """``popcount(v) mod 2`` for an integer array (0 or 1, dtype int64)."""
    v = np.asarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return (np.bitwise_count(v) & 1).astype(np.int64)
    parity = np.zeros(v.shape, dtype=np.uint64)  # numpy < 2.0 fallback
    while np.any(v):
        parity ^= v & np.uint64(1)
        v = v >> np.uint64(1)
    return parity.astype(np.int64)


def sylvester_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Rows ``H[rows]`` of the Sylvester–Hadamard matrix of order ``n``, float64 of ±1.

    Computed entry by entry from ``H_ij = (-1)^{popcount(i AND j)}`` (an independent route to
    :func:`fwht`, which the tests compare).
    """
    n = check_power_of_two(n)
    idx = np.asarray(rows, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"rows must be integers in [0, {n - 1}], got a value outside")
    cols = np.arange(n, dtype=np.int64)
    parity = popcount_parity(idx[:, None] & cols[None, :])
    return (1.0 - 2.0 * parity).astype(np.float64)


def sylvester_hadamard(n: int) -> np.ndarray:
    """The dense ``n × n`` Sylvester–Hadamard matrix (``n <= 2^14``)."""
    n = check_power_of_two(n)
    if n > DENSE_HADAMARD_MAX:
        raise ValueError(f"n must be at most {DENSE_HADAMARD_MAX} for a dense Hadamard matrix, got {n}; use fwht")
    return sylvester_rows(np.arange(n), n)
