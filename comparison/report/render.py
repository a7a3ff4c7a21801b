"""Writes report.html (self-contained: charts inlined as base64 PNG), report.md (PNGs beside it)
and verdict.json into one folder."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..manifest import now_iso
from . import charts as charts_mod
from .results import Results
from .tables import all_tables
from .templates import HTML, MARKDOWN, METHOD
from .verdict import SECTIONS, Sentence


def _html_cell(value: object) -> Markup:
    """A table value; its ``[min-max]`` spread on a line of its own, smaller, so wide tables fit."""
    text = str(value)
    head, sep, rest = text.partition(" [")
    if not sep or "]" not in rest:
        return escape(text)
    spread, _, tail = rest.partition("]")
    return Markup('{}<br><span class="spread">[{}]{}</span>').format(head, spread, tail)


def _md(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def environment(results: Results) -> list[tuple[str, str]]:
    m = results.manifest or {}
    machine, versions, git = m.get("machine") or {}, m.get("versions") or {}, m.get("git") or {}
    rows = [
        ("CPU", f"{machine.get('cpu_model', '?')}, {machine.get('cores_logical', '?')} logical cores "
                f"({machine.get('cores_physical', '?')} physical), {machine.get('cpu_mhz', '?')} MHz"),
        ("memory", f"{machine.get('memory_gib', '?')} GiB"),
        ("OS", str(machine.get("os", "?"))),
        ("load average at start / end", f"{machine.get('load_average', '?')} / {machine.get('load_average_end', '?')}"),
        ("Python", f"{versions.get('python', '?')} ({versions.get('python_implementation', '?')}), "
                   f"{m.get('python_executable', '?')}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("python", "python_implementation")
                               and v)),
        ("gateway", str((m.get("gateway") or {}).get("command", "?"))),
        ("source", f"{git.get('branch', '?')} @ {git.get('commit', '?')}"
                   + (" (uncommitted changes)" if git.get("dirty") else "")),
        ("run", f"{m.get('started_at', '?')} to {m.get('ended_at', '?')} ({m.get('elapsed_s', '?')} s); "
                f"completed: {m.get('completed', '?')}, interrupted: {m.get('interrupted', '?')}"),
        ("command", str(m.get("command", "?"))),
    ]
    return rows


def reproduce(results: Results, report_argv: list[str]) -> str:
    m = results.manifest or {}
    run = str(m.get("command") or "python -m comparison run")
    return "\n".join([
        "# from the repository root, with the dev dependencies installed (make setup)",
        f"PYTHONPATH=. {run}",
        f"PYTHONPATH=. {shlex.join(['python', '-m', 'comparison', 'report', *report_argv])}",
    ])


def render(results: Results, sentences: list[Sentence], out: Path, report_argv: list[str]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    pngs = charts_mod.draw_all(results, out)
    problems = []
    if results.manifest is None:
        problems.append(f"manifest.json is {results.manifest_error}: the environment and the command are unknown.")
    elif not results.manifest.get("completed"):
        problems.append("The run did not complete" + (" (interrupted)" if results.manifest.get("interrupted") else "")
                        + ": cells that did not run are reported as missing.")
    if not results.cells:
        problems.append("No cells in this results folder.")
    by_section: dict[str, list[Sentence]] = {name: [] for name in SECTIONS}
    for sentence in sentences:
        by_section.setdefault(sentence.section, []).append(sentence)
    machine = (results.manifest or {}).get("machine") or {}
    context: dict[str, Any] = {
        "title": results.title,
        "started": (results.manifest or {}).get("started_at", "at an unknown time"),
        "machine_line": f"{machine.get('cpu_model', 'an unknown machine')}, {machine.get('cores_logical', '?')} cores, "
                        f"{machine.get('memory_gib', '?')} GiB",
        "generated": now_iso(),
        "folder": str(results.folder),
        "problems": problems,
        "sections": list(SECTIONS.items()),
        "by_section": by_section,
        "charts": list(charts_mod.CHARTS.items()),
        "images": {name: base64.b64encode(path.read_bytes()).decode() for name, path in pngs.items()},
        "tables": all_tables(results),
        "method": METHOD,
        "environment": environment(results),
        "settings": json.dumps(((results.manifest or {}).get("gateway") or {}).get("settings"), indent=2),
        "reproduce": reproduce(results, report_argv),
    }
    html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    md_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    md_env.filters["md"] = _md
    html_env.filters["cell"] = _html_cell
    html = html_env.from_string(HTML).render(**context)
    md = md_env.from_string(MARKDOWN).render(**context)
    (out / "report.html").write_text(html)
    (out / "report.md").write_text(md)
    verdict = {"schema": 1, "generated_at": context["generated"], "results": str(results.folder),
               "note": "sources are relative to the folder this file is in",
               "sentences": [s.to_json() for s in sentences]}
    (out / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
    return {"html": out / "report.html", "md": out / "report.md", "verdict": out / "verdict.json", **pngs}
