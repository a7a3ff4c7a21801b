"""``python -m comparison run``: the matrix of cells, each repeated on a fresh gateway and proxy.

For every repeat of every cell:

1. start the gateway (``python -m gateway``: uvloop + httptools, as the README serves it) on a free port, and
   the proxy with the cell's profile in front of it;
2. warm up: a short Locust run of the same transport in the ``/`` namespace (what it leaves
   behind, such as polling sessions the server has not yet timed out, never receives the
   measured run's ``/bench`` events);
3. zero the proxy's counters, read the gateway's ``/metrics`` and CPU time, then run Locust
   for the cell's duration while sampling CPU and memory every half second;
4. read everything back, stop Locust, the proxy and the gateway by their pids, and write
   ``cells/<cell>.json`` (rewritten after each repeat, so an interrupted run keeps what it had).

A fresh gateway per repeat keeps repeats independent: Socket.IO polling clients that stop
are only noticed by the server after its ping timeout (45 s by default), and they would
otherwise still be sent the next repeat's events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import manifest as manifest_mod
from . import signals
from .children import ROOT, PortInUse, check_port_free, child_env, load_limits, plan_pinning
from .matrix import (
    BOUND_MS,
    JOIN_MARGIN,
    KINDS_BY_KEY,
    LADDER_TIMING,
    PRESETS,
    ROOMS_OF_10,
    Cell,
    MatrixError,
    build_matrix,
    parse_cells,
)
from .progress import INITIAL_OVERHEAD, LADDER_SHARE, Progress, clock
from .records import SCHEMA, cell_flags, cell_status, ladder_ends, summarise
from .repeat import Repeat
from .signals import deferred_signals


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison run",
        description="Run the transport comparison: transports x proxy profiles x load levels, each repeated.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a smoke test: 2 loads, 1 repeat, 5 s; its report says so and names no winner, direction or ratio")
    size.add_argument("--full", action="store_true",
                      help="the full matrix (default): 2 loads, 3 repeats, 20 s, then the load ladders; the run "
                           "prints its expected length (and the most it could take, if no ladder stopped early); "
                           "the manifest records the measured one")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/<date-time>)")
    p.add_argument("--repeats", type=int, default=None, help="repeats per cell (quick 1, full 3)")
    p.add_argument("--users", type=_int_list, default=None, metavar="N[,N...]",
                   help="load levels in users (quick 10,40; full 20,100); fault cells run at the lowest")
    p.add_argument("--cells", default=None, metavar="CELL[,CELL...]",
                   help=f"which cells (default: the preset's): {', '.join(KINDS_BY_KEY)}")
    p.add_argument("--duration", type=float, default=None, help="seconds of load per repeat (quick 5, full 20)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up before each repeat (quick 1, full 2)")
    p.add_argument("--room-size", type=int, default=10, help="users per room (10)")
    p.add_argument("--publish-rate", type=float, default=2.0, help="messages per second per user (2)")
    p.add_argument("--payload-bytes", type=int, default=64, help="padding in every message (64)")
    p.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second (10)")
    p.add_argument("--direct-via", choices=("passthrough", "none"), default="passthrough",
                   help="direct cells through the passthrough proxy (bytes counted; default) or straight "
                        "to the gateway (bytes not measured)")
    ladder = p.add_mutually_exclusive_group()
    ladder.add_argument("--ladder", action="store_true",
                        help="add the load ladders to capacity (the full preset has them)")
    ladder.add_argument("--no-ladder", action="store_true", help="leave the load ladders out")
    p.add_argument("--ladder-users", type=_int_list, default=None, metavar="N[,N...]",
                   help=f"the rooms-of-10 ladder's steps in users (default {','.join(map(str, ROOMS_OF_10))})")
    p.add_argument("--ladder-room", type=int, default=None, metavar="USERS",
                   help="the one-room ladder's room size (default 1000; 0 leaves it out)")
    p.add_argument("--ladder-kinds", default=None, metavar="CELL[,CELL...]",
                   help="which transports and profiles get a ladder (default: sse-nginx, sio-polling-nginx and, "
                        "with no proxy in the path, every transport with WebSocket allowed)")
    p.add_argument("--ladder-duration", type=float, default=None,
                   help=f"seconds of steady load measured per ladder step ({LADDER_TIMING.duration:g}), after its "
                        "users have spawned and joined")
    p.add_argument("--ladder-join-margin", type=float, default=None, metavar="SECONDS",
                   help=f"seconds left for joins after a step's last user spawned, before its measured window "
                        f"opens ({JOIN_MARGIN:g})")
    p.add_argument("--ladder-bound", type=float, default=None, metavar="MS",
                   help=f"p99 delivery that ends a ladder ({BOUND_MS:g} ms)")
    p.add_argument("--processes", type=int, default=0,
                   help="Locust worker processes per run (default: one per CPU left after the gateway's)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the gateway and the load generator to separate CPUs")
    p.add_argument("--gateway-port", type=int, default=0, help="gateway port (default: a free one)")
    p.add_argument("--proxy-port", type=int, default=0, help="proxy port (default: a free one)")
    return p


def _int_list(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {value!r}") from None
    if not numbers:
        raise argparse.ArgumentTypeError("expected at least one number")
    return numbers


# -- the run ------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


class Runner:
    def __init__(self, cells: list[Cell], out: Path, args: argparse.Namespace, argv: list[str]) -> None:
        self.cells = cells
        self.out = out
        self.args = args
        self.env = {**child_env(), **load_limits()}
        self.pinning = plan_pinning(not args.no_pin)
        self.processes = args.processes or max(1, len(self.pinning.generator or os.sched_getaffinity(0)))
        steps = [c.timing.warmup + c.timing.settle + c.timing.duration for c in cells for _ in range(c.timing.repeats)]
        self.progress = Progress(steps)
        plan = {"preset": "quick" if args.quick else "full",
                "cells": [self.cell_header(c) for c in cells]}
        self.manifest = manifest_mod.build(argv, self.env, plan,
                                           {"processes": self.processes, "pinning": self.pinning.to_json()})
        self.statuses: dict[str, str] = {}
        self.ladder_ended: dict[str, str] = {}  # ladder series -> the cell whose step ended it

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.out))

    @staticmethod
    def cell_header(cell: Cell) -> dict[str, Any]:
        return {"cell": cell.id, "file": f"cells/{cell.id}.json", "kind": asdict(cell.kind), "load": asdict(cell.load),
                "timing": asdict(cell.timing), "direct_via": cell.direct_via, "uses_proxy": cell.uses_proxy,
                "rung": asdict(cell.rung) if cell.rung is not None else None}

    def run(self) -> int:
        write_json(self.out / "manifest.json", self.manifest)
        code = 0
        try:
            for cell in self.cells:
                ended = self.ladder_ended.get(cell.rung.series) if cell.rung is not None else None
                if ended is not None:
                    self.skip_cell(cell, f"not run: its ladder ended at {ended}")
                    continue
                document = self.run_cell(cell)
                if cell.rung is not None and ladder_ends(document, cell.rung.bound_ms):
                    self.ladder_ended[cell.rung.series] = cell.id
            self.manifest["completed"] = True
        except KeyboardInterrupt as exc:
            self.manifest["interrupted"] = True
            self.progress.note(f"interrupted{f' by {exc}' if str(exc) else ''}: children stopped, partial results kept")
            code = 130
        finally:
            with deferred_signals():
                self.manifest["ended_at"] = manifest_mod.now_iso()
                self.manifest["elapsed_s"] = round(time.monotonic() - self.progress.started, 1)
                self.manifest["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
                self.manifest["statuses"] = self.statuses
                write_json(self.out / "manifest.json", self.manifest)
                self.progress.close()
        failed = [c for c, s in self.statuses.items() if s == "failed"]
        print(f"results in {self.out} ({clock(self.manifest['elapsed_s'])}); "
              f"report: python -m comparison report {self.out}", file=sys.stderr)
        if failed:
            print(f"failed cells: {', '.join(failed)}", file=sys.stderr)
            code = code or 1
        return code

    def skip_cell(self, cell: Cell, why: str) -> None:
        document = {"schema": SCHEMA, **self.cell_header(cell), "status": "skipped", "error": why, "flags": [],
                    "repeats": [], "summary": None}
        write_json(self.out / "cells" / f"{cell.id}.json", document)
        self.statuses[cell.id] = "skipped"
        for _ in range(cell.timing.repeats):
            self.progress.skip()

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        document: dict[str, Any] = {"schema": SCHEMA, **self.cell_header(cell), "status": "running",
                                    "error": None, "flags": [], "repeats": [], "summary": None}
        path = self.out / "cells" / f"{cell.id}.json"
        interrupted = False
        try:
            for number in range(1, cell.timing.repeats + 1):
                record = self.run_repeat(cell, number)
                document["repeats"].append(record)
                if record["status"] == "interrupted":
                    interrupted = True
                    raise KeyboardInterrupt
                if record["status"] != "ok":
                    self.progress.note(f"{cell.id} repeat {number} failed: {record['error']}")
                self.finish(document, cell, interrupted=False, final=False)
                write_json(path, document)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            with deferred_signals():
                self.finish(document, cell, interrupted=interrupted, final=True)
                write_json(path, document)
                self.statuses[cell.id] = document["status"]
        return document

    def finish(self, document: dict[str, Any], cell: Cell, interrupted: bool, final: bool) -> None:
        repeats = document["repeats"]
        document["summary"] = summarise(repeats)
        document["flags"] = cell_flags(document["summary"], repeats)
        status = cell_status(repeats, cell.timing.repeats, interrupted)
        document["status"] = status if final else "running"
        if final and status == "failed":
            errors = [r.get("error") for r in repeats if r.get("error")]
            document["error"] = errors[0] if errors else "no repeat ran"

    def run_repeat(self, cell: Cell, number: int) -> dict[str, Any]:
        label = f"{cell.id} r{number}/{cell.timing.repeats}"
        repeat = Repeat(cell, number, self.out, self.env, gateway_port=self.args.gateway_port,
                        proxy_port=self.args.proxy_port, phase=lambda what: self.progress.begin(f"{label} {what}"),
                        tick=self.progress.draw, pinning=self.pinning, processes=self.processes)
        try:
            return repeat.run()
        finally:
            self.progress.end()


def ladder_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.ladder_users:
        options["users"] = tuple(args.ladder_users)
    if args.ladder_room is not None:
        options["one_room_users"] = args.ladder_room
    if args.ladder_kinds:
        options["kinds"] = parse_cells(args.ladder_kinds)
    if args.ladder_duration:
        options["timing"] = replace(LADDER_TIMING, duration=args.ladder_duration)
    if args.ladder_join_margin is not None:
        options["join_margin"] = args.ladder_join_margin
    if args.ladder_bound:
        options["bound_ms"] = args.ladder_bound
    return options


def plan_line(cells: list[Cell]) -> str:
    """The run's expected length: every matrix run, and the share of load-ladder steps a run is
    expected to reach (a ladder stops at its first step past the bound), each run with its start-up;
    and the most it could take, if every ladder step ran. The measured length is the manifest's."""
    matrix = [c for c in cells if c.rung is None]
    ladder = [c for c in cells if c.rung is not None]

    def cost(group: list[Cell]) -> float:
        return sum(c.seconds + c.timing.repeats * INITIAL_OVERHEAD for c in group)

    line = f"{len(cells)} cells: about {clock(cost(matrix) + LADDER_SHARE * cost(ladder))}"
    if ladder:
        line += (f" ({sum(c.timing.repeats for c in matrix)} matrix runs, and of {len(ladder)} load-ladder steps the "
                 f"{LADDER_SHARE:.0%} a run usually reaches; at most {clock(cost(matrix) + cost(ladder))} if every "
                 "step ran)")
    else:
        line += f" ({sum(c.timing.repeats for c in matrix)} runs)"
    return line + f", with {INITIAL_OVERHEAD:g} s of start-up per run"


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    try:
        cells = build_matrix(preset, cells=parse_cells(args.cells), users=args.users, repeats=args.repeats,
                             duration=args.duration, warmup=args.warmup, room_size=args.room_size,
                             publish_rate=args.publish_rate, payload_bytes=args.payload_bytes,
                             spawn_rate=args.spawn_rate, direct_via=args.direct_via,
                             ladder=False if args.no_ladder else (True if args.ladder else None),
                             ladder_options=ladder_options(args))
    except MatrixError as exc:
        p.error(str(exc))
    for option, port in (("--gateway-port", args.gateway_port), ("--proxy-port", args.proxy_port)):
        if port:
            try:
                check_port_free(port)
            except PortInUse as exc:
                p.error(f"{option}: {exc}")
    if args.gateway_port and args.gateway_port == args.proxy_port:
        p.error("--gateway-port and --proxy-port must differ")
    out: Path = args.out or ROOT / "results" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if (out / "manifest.json").exists():
        p.error(f"{out} already holds results (manifest.json); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    signals.install()
    print(plan_line(cells) + f"; results in {out}", file=sys.stderr)
    return Runner(cells, out, args, ["run", *argv]).run()
