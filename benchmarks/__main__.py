"""Run benchmarks: ``python -m benchmarks`` (all) or ``python -m benchmarks theory rug ...``.

Each module ``benchmarks/bench_<topic>.py`` has a ``main()`` that prints its own table. Timings
depend on the machine and its load: the numbers quoted in notes state both.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def topics() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    available = topics()
    chosen = argv or available
    unknown = [t for t in chosen if t not in available]
    if unknown:
        print(f"benchmarks: unknown topic(s) {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    for topic in chosen:
        print(f"\n=== benchmarks.bench_{topic} ===", flush=True)
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{topic}").main()
        print(f"(bench_{topic}: {time.perf_counter() - start:.1f} s in all)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
