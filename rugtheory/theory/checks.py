"""Input checking shared by every public function.

Every error names the parameter and its allowed range, so that a user who passes
``p=1.5`` reads ``p must be in (0, 1], got 1.5`` and nothing else.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_probability",
    "check_ratio",
    "check_finite",
    "check_nonnegative",
    "check_int",
    "check_seed",
]


def _fmt(value: Any) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(arr.item())
    return f"array of shape {arr.shape}"


def as_float_array(value: Any, name: str) -> np.ndarray:
    """Convert ``value`` to a float64 array or raise ``ValueError`` naming ``name``.

    Complex input is refused (even with a zero imaginary part) rather than cast to its real part.
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        is_complex = isinstance(value, complex) or np.iscomplexobj(value)
    except Exception:  # noqa: BLE001 -- not array-like: the conversion below reports it
        is_complex = False
    if is_complex:
        what = "a complex number" if np.ndim(value) == 0 else "a complex array"
        raise ValueError(f"{name} must be real, got {what} (pass its .real if the imaginary part is meant to be 0)")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number or an array of them, got {value!r}") from exc
    return arr


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> str:
    return repr(float(arr[bad].flat[0]))


def check_finite(value: Any, name: str) -> np.ndarray:
    """Return ``value`` as a float64 array; raise if any entry is NaN or infinite."""
    arr = as_float_array(value, name)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {_first_bad(arr, bad)}")
    return arr


def check_nonnegative(value: Any, name: str) -> np.ndarray:
    """Finite and ``>= 0``."""
    arr = check_finite(value, name)
    bad = arr < 0
    if bad.any():
        raise ValueError(f"{name} must be in [0, inf), got {_first_bad(arr, bad)}")
    return arr


def _check_half_open_unit(value: Any, name: str) -> np.ndarray:
    arr = as_float_array(value, name)
    bad = ~(np.isfinite(arr) & (arr > 0) & (arr <= 1))
    if bad.any():
        raise ValueError(f"{name} must be in (0, 1], got {_first_bad(arr, bad)}")
    return arr


def check_probability(value: Any, name: str = "p") -> np.ndarray:
    """Feature probability ``p`` in (0, 1]."""
    return _check_half_open_unit(value, name)


def check_ratio(value: Any, name: str = "r") -> np.ndarray:
    """Compression ratio ``r = m/n`` in (0, 1]."""
    return _check_half_open_unit(value, name)


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed is a non-negative integer."""
    return check_int(seed, name, low=0)
