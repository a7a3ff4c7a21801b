"""``python -m comparison report RESULTS_DIR [--out DIR]``: report.html, report.md, charts, verdict.json.

Modules: ``results`` (the folder as cells with statuses), ``verdict`` (computed, traceable
sentences), ``tables`` and ``charts`` (what the numbers look like), ``templates`` and
``render`` (the two documents). A folder with missing or failed cells still renders: those
cells are reported as such, never given numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .results import Results, load
from .sentences import check
from .verdict import build

__all__ = ["Results", "build", "check", "load", "main"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison report",
        description="Render the report of a results folder written by 'python -m comparison run'.",
    )
    p.add_argument("results", type=Path, help="the results folder (holds manifest.json and cells/)")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the report (default: the results folder); manifest.json and cells/ are "
                        "copied there so every number stays traceable")
    return p


def main(argv: list[str]) -> int:
    from .render import render

    p = parser()
    args = p.parse_args(argv)
    folder: Path = args.results
    if not folder.is_dir():
        p.error(f"{folder} is not a folder")
    out: Path = args.out or folder
    results = load(folder)
    if out.resolve() != folder.resolve():
        out.mkdir(parents=True, exist_ok=True)
        if (folder / "manifest.json").exists():
            shutil.copy2(folder / "manifest.json", out / "manifest.json")
        if (folder / "cells").is_dir():
            (out / "cells").mkdir(exist_ok=True)
            for path in (folder / "cells").glob("*.json"):
                shutil.copy2(path, out / "cells" / path.name)
        results = load(out)  # sources then resolve beside the report
    sentences = build(results)
    paths = render(results, sentences, out, [str(args.results)] + (["--out", str(args.out)] if args.out else []))
    broken = [f"{c.id} ({c.status})" for c in results.cells if not c.usable]
    print(f"wrote {paths['html']} and {paths['md']}" + (f"; without numbers: {', '.join(broken)}" if broken else ""),
          file=sys.stderr)
    return 0
