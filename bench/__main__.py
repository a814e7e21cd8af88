"""`make bench`: run every bench/bench_*.py module's main(), or those named on the command line."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    """Run the selected benchmarks in name order; each prints its own table and ratio."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    selected = [n for n in names if not sys.argv[1:] or n in sys.argv[1:]]
    if not selected:
        print(f"no benchmark selected; available: {', '.join(names) or 'none yet'}")
        return 0
    for name in selected:
        print(f"== {name}")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
