"""Argument checks shared by the subcommands: output paths and memory (value lists: rugtheory.theory.checks.parse_list).

Every check raises ``ValueError`` whose message starts with the option it is about
(``--out``, ``--csv``, ``--n`` ...); :func:`rugtheory.app.cli.main` prints it as one line and
exits with code 2. Nothing here creates a file or a directory: the checks run before any work
starts, so that a bad path fails at once instead of after the computation.
Only the standard library is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "available_memory",
    "check_fits_memory",
    "check_output_dir",
    "check_output_file",
    "fmt_bytes",
    "make_output_dir",
]


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str, flag: str) -> Path:
    """``path`` names a file that can be written: not empty, not a directory, its folder exists."""
    if not path:
        raise ValueError(f"{flag} must name a file, got an empty path")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} must name a file, but {path!r} is a directory")
    parent = p.parent
    if not parent.exists():
        raise ValueError(f"{flag} {path!r}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path!r}: {str(parent)!r} is not a directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{flag} {path!r}: permission denied")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path!r}: cannot create a file in {str(parent)!r} (permission denied)")
    return p


def check_output_dir(path: str, flag: str) -> Path:
    """``path`` is a writable directory or can be created as one (missing parents included)."""
    if not path:
        raise ValueError(f"{flag} must name a directory, got an empty path")
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise ValueError(f"{flag} must name a directory, but {path!r} is a file")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{flag} {path!r}: directory is not writable")
        return p
    base = _nearest_existing(p.parent if str(p.parent) else Path("."))
    if not base.is_dir():
        raise ValueError(f"{flag} {path!r}: {str(base)!r} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path!r}: cannot create it in {str(base)!r} (permission denied)")
    return p


def make_output_dir(path: Path, flag: str) -> Path:
    """Create the directory checked by :func:`check_output_dir` (an OSError becomes a ValueError)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {str(path)!r}: cannot create the directory: {_why(exc)}") from None
    return path


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def check_fits_memory(needed: float, flag: str, what: str) -> None:
    """Refuse when ``needed`` bytes exceed the available memory (skipped when that is unknown)."""
    avail = available_memory()
    if avail is not None and needed > avail:
        raise ValueError(f"{flag}: {what} needs about {fmt_bytes(needed)} of memory, "
                         f"but only {fmt_bytes(avail)} is available")
