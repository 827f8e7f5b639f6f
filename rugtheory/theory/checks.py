"""Input checking shared by every public function.

Every error names the parameter and its allowed range, so that a user who passes
``p=1.5`` reads ``p must be in (0, 1], got 1.5`` and nothing else.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "AccuracyWarning",
    "check_on_inaccurate",
    "report_accuracy",
    "parse_list",
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


class AccuracyWarning(UserWarning):
    """A numerical result whose own error estimate exceeds the tolerance that was asked for.

    Raised through :func:`warnings.warn` by :func:`report_accuracy` (e.g. by
    ``rugtheory.exact_loss_from_weights``, docs/theory.md §7 and §13); the value is still returned
    with its error estimate. Pass ``on_inaccurate="raise"`` to get a ``ValueError`` instead, or
    ``"ignore"`` to get neither.
    """


#: Accepted values of the ``on_inaccurate`` keyword.
ON_INACCURATE = ("warn", "raise", "ignore")


def check_on_inaccurate(value: Any, name: str = "on_inaccurate") -> str:
    """One of ``"warn"``, ``"raise"``, ``"ignore"``."""
    if not isinstance(value, str) or value not in ON_INACCURATE:
        raise ValueError(f"{name} must be one of 'warn', 'raise', 'ignore', got {value!r}")
    return value


def report_accuracy(estimate: float, tol: float, on_inaccurate: str, what: str, *, stacklevel: int = 3) -> None:
    """Act on ``estimate > tol``: warn (:class:`AccuracyWarning`), raise ``ValueError`` or ignore.

    Parameters
    ----------
    estimate : float
        The result's estimated absolute error (NaN counts as exceeding).
    tol : float
        The requested absolute tolerance.
    on_inaccurate : {"warn", "raise", "ignore"}
        What to do when the estimate exceeds the tolerance.
    what : str
        Name of the result in the message, e.g. ``"exact_loss_from_weights loss"``.
    """
    on_inaccurate = check_on_inaccurate(on_inaccurate)
    if on_inaccurate == "ignore" or estimate <= tol:
        return
    msg = f"{what}: estimated error {estimate:.3g} exceeds the requested tol {tol:.3g}"
    if on_inaccurate == "raise":
        raise ValueError(msg)
    import warnings

    warnings.warn(msg, AccuracyWarning, stacklevel=stacklevel)


def parse_list(text: str, flag: str, kind: type, *, linspace: bool = False) -> list:
    """``"a,b,c"`` (or ``"linspace:a:b:k"`` when ``linspace``) as a list of ``kind`` (int or float).

    ``linspace:a:b:k`` is ``k >= 2`` evenly spaced values from ``a`` to ``b`` (both included),
    or ``k = 1`` with ``a = b``; values are ``a + (b - a) i / (k - 1)``.
    """
    what = "integers" if kind is int else "numbers"
    if text is None or not text.strip():
        raise ValueError(f"{flag} needs at least one value, got {text!r}")
    if linspace and text.startswith("linspace:"):
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(f"{flag} linspace must be linspace:START:STOP:COUNT, got {text!r}")
        try:
            a, b = float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(f"{flag} linspace START and STOP must be numbers, got {text!r}") from None
        try:
            k = int(parts[3])
        except ValueError:
            raise ValueError(f"{flag} linspace COUNT must be an integer, got {parts[3]!r} in {text!r}") from None
        if k < 1 or (k == 1 and a != b):
            raise ValueError(f"{flag} linspace COUNT must be >= 2 (or 1 with START = STOP), got {k} in {text!r}")
        if k > 100_000:
            raise ValueError(f"{flag} linspace COUNT must be at most 100000, got {k}")
        return [a + (b - a) * i / (k - 1) for i in range(k)] if k > 1 else [a]
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"{flag} must be comma-separated {what} without empty items, got {text!r}")
        try:
            out.append(kind(item))
        except ValueError:
            hint = " or linspace:START:STOP:COUNT" if linspace else ""
            raise ValueError(f"{flag} must be comma-separated {what}{hint}, got {item!r} in {text!r}") from None
    return out
