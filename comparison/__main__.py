"""``python -m comparison run|report|bench ...``: one entry point, one module per subcommand.

    python -m comparison run [--quick|--full] [--out DIR] [--repeats N] [--users N,N] [--cells A,B] ...
    python -m comparison report RESULTS_DIR [--out DIR]
    python -m comparison bench ...        (comparison/bench/, when that package is present)

Each subcommand parses its own options; an unknown one fails with argparse's message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable

COMMANDS = {
    "run": "run the matrix of cells and write a results folder",
    "report": "render report.html and report.md from a results folder",
    "bench": "micro-benchmarks (comparison/bench/)",
    "soak": "the chaos soak: two nodes on Redis behind nginx, drops, cuts, kills (docs/reliability.md)",
}


def top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison",
        description="Compare the gateway's transports: run the matrix, render the report.",
        epilog="'python -m comparison COMMAND --help' lists a command's options.",
    )
    p.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    return p


def bench_main() -> Callable[[list[str]], int | None]:
    """``comparison.bench.__main__:main`` if that package is there; a clear error if not."""
    if importlib.util.find_spec("comparison.bench") is None:
        sys.exit("python -m comparison bench: comparison/bench/ is not in this checkout; "
                 "only 'run' and 'report' are available here")
    module = importlib.import_module("comparison.bench.__main__")  # its own import errors surface as they are
    entry = getattr(module, "main", None)
    if not callable(entry):
        sys.exit("python -m comparison bench: comparison/bench/__main__.py has no main()")
    return entry  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        # Let argparse explain: no command, an unknown one, or -h.
        top_parser().parse_args(argv[:1] or [])
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        from .runner import main as run_main

        return run_main(rest)
    if command == "report":
        from .report import main as report_main

        return report_main(rest)
    if command == "soak":
        from .soak import main as soak_main

        return int(soak_main(rest) or 0)
    entry = bench_main()
    if inspect.signature(entry).parameters:
        result = entry(rest)
    else:  # a main() that reads sys.argv itself
        sys.argv = [f"{sys.argv[0]} bench", *rest]
        result = entry()  # type: ignore[call-arg]
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
