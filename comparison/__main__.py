"""``python -m comparison bench ...`` (what ``make bench`` runs) is ``python -m comparison.bench ...``."""

from __future__ import annotations

import sys


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] != "bench":
        print("usage: python -m comparison bench [options]   (python -m comparison.bench --help)", file=sys.stderr)
        return 2
    from .bench.__main__ import main as bench

    return bench(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
