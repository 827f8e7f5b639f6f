"""Compact ``repr`` for the package's result objects.

A result such as :class:`rugtheory.FiniteNLoss` holds per-row arrays of length n; its default
dataclass ``repr`` would print all of them. :func:`compact_repr` prints scalars in full and
arrays as a short summary (shape, min, mean, max), and :func:`with_compact_repr` installs it
on a dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

__all__ = ["compact_repr", "with_compact_repr"]

#: Arrays with at most this many entries are printed whole.
SHOW_WHOLE = 6

T = TypeVar("T")


def _field(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return repr(value.item())
        if value.size <= SHOW_WHOLE:
            return np.array2string(value, separator=", ")
        if np.issubdtype(value.dtype, np.number) and not np.iscomplexobj(value):
            with np.errstate(all="ignore"):
                return (f"array(shape={value.shape}, min={np.nanmin(value):.6g}, "
                        f"mean={np.nanmean(value):.6g}, max={np.nanmax(value):.6g})")
        return f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, (list, tuple)) and len(value) > SHOW_WHOLE:
        return f"{type(value).__name__}(len={len(value)})"
    if isinstance(value, dict) and len(value) > SHOW_WHOLE:
        return f"dict(len={len(value)})"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def compact_repr(obj: Any) -> str:
    """``Name(field=value, ...)`` with arrays of more than SHOW_WHOLE entries summarised."""
    fields = [f for f in dataclasses.fields(obj) if f.repr]
    inner = ", ".join(f"{f.name}={_field(getattr(obj, f.name))}" for f in fields)
    return f"{type(obj).__name__}({inner})"


def with_compact_repr(cls: type[T]) -> type[T]:
    """Class decorator (put it above ``@dataclass``): install :func:`compact_repr` as ``__repr__``."""
    cls.__repr__ = compact_repr  # type: ignore[method-assign]
    return cls
