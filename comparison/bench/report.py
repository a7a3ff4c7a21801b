"""The results as markdown, and issue 7's targets checked against them (pure: JSON in, text out).

A server may have run several times at one N (``--repeat``): the tables give, per (N,
server), the median of every figure over those runs and, where they differ, the spread
(min–max). Each table is a list of columns, a header and a function from a ``Group`` (the
runs of one server at one N) to a cell, so a new figure is one more entry.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .generator import GENERATOR_SATURATED, NOISY
from .machine import describe

TARGET_N = 1000

Run = dict[str, Any]
Figure = Callable[[Run], float | None]


@dataclass(frozen=True)
class Stat:
    """One figure over the repetitions of a (server, N): its median and its range."""

    median: float
    low: float
    high: float
    count: int

    def varies(self, spec: str) -> bool:
        """Whether the runs differ at the precision ``spec`` prints."""
        return format(self.low, spec) != format(self.high, spec)

    def range(self, spec: str) -> str:
        return f"{format(self.low, spec)}–{format(self.high, spec)}"

    def format(self, spec: str) -> str:
        """``median`` and, when the runs differ, ``(low–high)``."""
        median = format(self.median, spec)
        return f"{median} ({self.range(spec)})" if self.varies(spec) else median


def stat(values: Iterable[float | None]) -> Stat | None:
    """Median and range of the values that were measured (``None``: not measured)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    return Stat(statistics.median(xs), xs[0], xs[-1], len(xs))


@dataclass(frozen=True)
class Group:
    """The runs of one server at one N, one per repetition, whatever their status."""

    n: int
    server: str
    runs: list[Run]

    @property
    def measured(self) -> list[Run]:
        """The runs that got as far as a generator (not skipped, the server started)."""
        return [run for run in self.runs if "spec" in run]

    def stat(self, figure: Figure) -> Stat | None:
        return stat(figure(run) for run in self.measured)


def groups(doc: dict[str, Any]) -> list[Group]:
    """The runs of ``doc`` per (N, server), in the order they first ran."""
    found: dict[tuple[int, str], list[Run]] = {}
    for run in doc["runs"]:
        n = run.get("spec", {}).get("n", run.get("n"))
        found.setdefault((n, run["server"]["name"]), []).append(run)
    return [Group(n, server, runs) for (n, server), runs in found.items()]


def find(doc: dict[str, Any], server: str, n: int) -> Group | None:
    return next((g for g in groups(doc) if g.server == server and g.n == n), None)


def windows(config: dict[str, Any]) -> list[int]:
    """The closed loop's windows (a document from before ``--windows`` has one, ``window``)."""
    return list(config.get("windows") or [config.get("window", 16)])


def _phase(run: Run, target: float) -> dict[str, Any] | None:
    """The open-loop phase of ``run`` offered ``target`` deliveries/s (rate x N)."""
    n = run["spec"]["n"]
    for phase in run.get("phases", []):
        if phase["kind"] == "open" and abs(phase["rate"] * n - target) < 0.5:
            return phase
    return None


def _closed(run: Run, window: int | None = None) -> dict[str, Any] | None:
    """The closed-loop phase of ``run`` with ``window``; by default, the largest window's."""
    closed = [p for p in run.get("phases", []) if p["kind"] == "closed"]
    if window is None:
        return max(closed, key=lambda p: p.get("window", 0), default=None)
    return next((p for p in closed if p.get("window") == window), None)


def open_figure(target: float, key: str, run: Run) -> float | None:
    """``key`` of the latency (``p50``, ``p99``...) of the open-loop phase at ``target``."""
    phase = _phase(run, target)
    if phase is None or phase.get("skipped"):
        return None
    value: float | None = (phase.get("latency_ms") or {}).get(key)
    return value


def closed_figure(window: int, key: str, run: Run) -> float | None:
    """``key`` of the closed-loop phase with ``window``; ``p50``/``p99`` are its latency's."""
    phase = _closed(run, window)
    if phase is None:
        return None
    value: float | None = (phase.get("latency_ms") or {}).get(key) if key in ("p50", "p99") else phase.get(key)
    return value


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def _stat(value: Stat | None, spec: str = ",.0f") -> str:
    return "–" if value is None else value.format(spec)


def _pair(first: Stat | None, second: Stat | None, spec: str = ".1f") -> str:
    """``p50 / p99`` medians, then their ranges if the runs differ: ``9.7 / 19.2 (9.4–10.8 / 18.4–20.1)``."""
    if first is None or second is None:
        return "no data"
    medians = f"{format(first.median, spec)} / {format(second.median, spec)}"
    if not (first.varies(spec) or second.varies(spec)):
        return medians
    return f"{medians} ({first.range(spec)} / {second.range(spec)})"


@dataclass(frozen=True)
class OpenStats:
    """One open-loop rate over a group's runs: latency medians and how many runs saturated."""

    p50: Stat | None
    p99: Stat | None
    saturated: int  # runs whose phase saturated, or was skipped after a lower rate saturated
    phases: int  # runs that have the phase at all
    generator_saturated: bool

    @property
    def all_saturated(self) -> bool:
        return self.phases > 0 and self.saturated == self.phases


def open_stats(group: Group, target: float) -> OpenStats:
    phases = [p for p in (_phase(run, target) for run in group.measured) if p is not None]
    return OpenStats(
        p50=group.stat(partial(open_figure, target, "p50")),
        p99=group.stat(partial(open_figure, target, "p99")),
        saturated=sum(1 for p in phases if p.get("skipped") or p.get("saturated")),
        phases=len(phases),
        generator_saturated=any(p.get("generator_saturated") for p in phases if not p.get("skipped")),
    )


def latency_cell(target: float, group: Group) -> str:
    """``p50 / p99`` at ``target``; ``sat.`` when skipped, ``**sat.**`` (or ``**sat. k/K**``) when saturated."""
    s = open_stats(group, target)
    if not s.phases:
        return "–"
    if s.p50 is None:
        return "sat." if s.saturated else "no data"
    cell = _pair(s.p50, s.p99)
    if s.saturated:
        cell = ("**sat.** " if s.all_saturated else f"**sat. {s.saturated}/{s.phases}** ") + cell
    return cell + (" ⚠gen" if s.generator_saturated else "")


def headline_phase(run: Run, targets: list[float], key: str = "server_cpu_ms_per_1k") -> tuple[dict[str, Any] | None, str]:
    """The phase whose ``key`` the table shows: 20k deliveries/s if that phase kept up, else the
    highest unsaturated open-loop rate, else the closed loop (its largest window); and its label."""
    preferred = [t for t in targets if t == 20_000] + sorted(targets, reverse=True)
    for target in preferred:
        phase = _phase(run, target)
        if phase and not phase.get("skipped") and not phase.get("saturated") and phase.get(key):
            return phase, f"{target / 1000:g}k/s"
    closed = _closed(run)
    if closed and closed.get(key):
        return closed, "sat."
    return None, ""


def headline_cpu(run: Run, targets: list[float], key: str = "server_cpu_ms_per_1k") -> tuple[float | None, str]:
    """CPU ms per 1,000 deliveries, of the phase ``headline_phase`` picks."""
    phase, where = headline_phase(run, targets, key)
    return (phase[key] if phase else None), where


def cpu_cell(targets: list[float], group: Group, key: str = "server_cpu_ms_per_1k") -> str:
    """The median of ``headline_cpu`` over the runs, with where it was read (each run's own choice)."""
    read = [headline_cpu(run, targets, key) for run in group.measured]
    value = stat(v for v, _ in read)
    if value is None:
        return "–"
    where = ", ".join(dict.fromkeys(w for v, w in read if v is not None))
    return f"{value.format('.1f')} @ {where}"


def read_lag_p99(targets: list[float], run: Run) -> float | None:
    """How long after the kernel received a delivery the generator read it (p99, C sink only), in
    the phase of the server's CPU figure."""
    phase, _ = headline_phase(run, targets)
    value: float | None = ((phase or {}).get("read_lag_ms") or {}).get("p99")
    return value


def read_lag_cell(targets: list[float], group: Group) -> str:
    return _stat(group.stat(partial(read_lag_p99, targets)), ".2f")


def _loss_sum(key: str, group: Group) -> str:
    counts = [run["loss"][key] for run in group.measured if key in (run.get("loss") or {})]
    return str(sum(counts)) if counts else "–"


def _phases(group: Group) -> list[dict[str, Any]]:
    return [p for run in group.measured for p in run.get("phases", []) if not p.get("skipped")]


def _generator_max(group: Group) -> float:
    return max((p.get("generator_cpu_util", 0.0) for p in _phases(group)), default=0.0)


def gen_cell(group: Group) -> str:
    return f"{_generator_max(group):.0%}" if group.measured else "–"


def rss_per_connection_kb(run: Run) -> float | None:
    per_conn = (run.get("idle") or {}).get("rss_per_connection_bytes")
    return None if per_conn is None else per_conn / 1024


def rss_cell(group: Group) -> str:
    per_conn = group.stat(rss_per_connection_kb)
    return "–" if per_conn is None else f"{per_conn.format('.1f')} KB"


def notes_cell(targets: list[float], group: Group) -> str:
    """What makes a (server, N)'s figures suspect or incomplete; counts summed over its runs."""
    if not group.measured:
        return "; ".join(dict.fromkeys(run.get("reason") or run.get("error", "")[:120] for run in group.runs))
    notes = [f"{run.get('status')}: {run.get('error', '')[:80]}" for run in group.runs if run.get("status") != "ok"]

    def total(section: str, key: str) -> int:
        return sum((run.get(section) or {}).get(key, 0) for run in group.measured)

    if failed := total("connect", "failed"):
        notes.append(f"{failed} failed to connect")
    if disconnected := total("loss", "disconnected"):
        notes.append(f"{disconnected} disconnected")
    if refused := total("loss", "failed_publishes"):
        notes.append(f"{refused} publishes refused")
    if _generator_max(group) > GENERATOR_SATURATED:
        notes.append("generator saturated")
    sinks = dict.fromkeys((run.get("sink") or {}).get("kind", "") for run in group.measured)
    notes += [f"generator sink: {sink}" for sink in sinks if sink.startswith("python (")]
    sampled = dict.fromkeys(f"latency from {sink['latency_connections']} of {sink['connections']} subscribers"
                            for sink in (run.get("sink") or {} for run in group.measured)
                            if sink.get("connections", 0) > sink.get("latency_connections", 0) > 0)
    notes += sampled
    other = max((p.get("other_cpu_util", 0.0) for p in _phases(group)), default=0.0)
    if other > NOISY:
        notes.append(f"noisy: other load up to {other:.2f} cores")
    undrained = dict.fromkeys(p.get("window") for p in _phases(group) if p["kind"] == "closed" and not p.get("drained"))
    if undrained:
        notes.append(f"closed loop did not drain (window {', '.join(map(str, undrained))})")
    nodes = max(len(run["server"].get("nodes") or [None]) for run in group.measured)
    if nodes > 1:
        notes.append(f"{nodes} nodes, CPU and RSS summed")
    if (redis := cpu_cell(targets, group, "redis_cpu_ms_per_1k")) != "–":
        notes.append(f"redis-server CPU ms / 1k: +{redis}")
    return "; ".join(dict.fromkeys(notes))


Column = tuple[str, Callable[[Group], str]]


def result_columns(doc: dict[str, Any]) -> list[Column]:
    """The main table: open-loop latency per rate, CPU, memory, delivery check."""
    targets: list[float] = doc["config"]["deliveries_per_s"]
    columns: list[Column] = [("N", lambda g: str(g.n)), ("server", lambda g: g.server)]
    if doc["config"].get("repeat", 1) > 1:
        columns.append(("runs", lambda g: str(len(g.measured))))
    columns += [(f"p50 / p99 ms @ {t / 1000:g}k/s", partial(latency_cell, t)) for t in targets]
    columns += [
        ("CPU ms / 1k deliveries", partial(cpu_cell, targets)),
        ("gen CPU ms / 1k", partial(cpu_cell, targets, key="generator_cpu_ms_per_1k")),
        ("gen read lag p99 ms", partial(read_lag_cell, targets)),
        ("RSS / idle conn", rss_cell),
        ("lost", partial(_loss_sum, "lost")),
        ("dup", partial(_loss_sum, "duplicates")),
        ("gen CPU max", gen_cell),
        ("notes", partial(notes_cell, targets)),
    ]
    return columns


def _deliveries_cell(window: int, group: Group) -> str:
    cell = _stat(group.stat(partial(closed_figure, window, "max_deliveries_per_s")))
    saturated = any((_closed(run, window) or {}).get("generator_saturated") for run in group.measured)
    return cell + (" ⚠gen" if saturated else "")


def _closed_cell(window: int, key: str, group: Group) -> str:
    return _stat(group.stat(partial(closed_figure, window, key)))


def _closed_latency_cell(window: int, group: Group) -> str:
    return _pair(group.stat(partial(closed_figure, window, "p50")), group.stat(partial(closed_figure, window, "p99")))


def window_columns(doc: dict[str, Any]) -> list[Column]:
    """The closed loop, per window: deliveries/s, the same per server CPU-second, latency."""
    columns: list[Column] = [("N", lambda g: str(g.n)), ("server", lambda g: g.server)]
    for w in windows(doc["config"]):
        columns += [
            (f"window {w}: deliveries/s", partial(_deliveries_cell, w)),
            (f"window {w}: per server CPU-s", partial(_closed_cell, w, "deliveries_per_server_cpu_s")),
            (f"window {w}: p50 / p99 ms", partial(_closed_latency_cell, w)),
        ]
    return columns


Versus = tuple[str, Callable[[Group, Group], str]]  # a header, and a cell from (server, baseline)


def _ratio(a: Stat | None, b: Stat | None, spec: str) -> str:
    """``a vs b = a/b×`` of two medians."""
    if a is None or b is None:
        return "–"
    ratio = f" = {a.median / b.median:.2f}×" if b.median else ""
    return f"{format(a.median, spec)} vs {format(b.median, spec)}{ratio}"


def _versus_latency(target: float, group: Group, baseline: Group) -> str:
    """``p50 / p99 vs p50 / p99 = r50× / r99×`` (medians) at ``target``."""
    mine, theirs = open_stats(group, target), open_stats(baseline, target)
    if mine.all_saturated:
        return "sat."
    if theirs.all_saturated:
        return "baseline sat."
    if mine.p50 is None or mine.p99 is None or theirs.p50 is None or theirs.p99 is None:
        return "–"
    ratios = " / ".join(f"{a.median / b.median:.2f}×" if b.median else "–"
                        for a, b in ((mine.p50, theirs.p50), (mine.p99, theirs.p99)))
    return (f"{mine.p50.median:.1f} / {mine.p99.median:.1f} vs "
            f"{theirs.p50.median:.1f} / {theirs.p99.median:.1f} = {ratios}")


def _versus(figure: Figure, spec: str, group: Group, baseline: Group) -> str:
    return _ratio(group.stat(figure), baseline.stat(figure), spec)


def _headline_cpu(targets: list[float], run: Run) -> float | None:
    return headline_cpu(run, targets)[0]


def baseline_columns(doc: dict[str, Any]) -> list[Versus]:
    """A server against the baseline at the same N: medians side by side and their ratio."""
    targets: list[float] = doc["config"]["deliveries_per_s"]
    columns: list[Versus] = [(f"p50 / p99 ms @ {t / 1000:g}k/s", partial(_versus_latency, t)) for t in targets]
    columns += [(f"window {w}: deliveries/s", partial(_versus, partial(closed_figure, w, "max_deliveries_per_s"), ",.0f"))
                for w in windows(doc["config"])]
    columns.append(("CPU ms / 1k", partial(_versus, partial(_headline_cpu, targets), ".1f")))
    return columns


def _rows(head: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def table(columns: list[Column], of: Iterable[Group]) -> str:
    return _rows([head for head, _ in columns], ([cell(g) for _, cell in columns] for g in of))


def results_table(doc: dict[str, Any]) -> str:
    return table(result_columns(doc), groups(doc))


def window_table(doc: dict[str, Any]) -> str:
    return table(window_columns(doc), [g for g in groups(doc) if any(_closed(r) for r in g.measured)])


def baseline_table(doc: dict[str, Any], baseline: str) -> str:
    """Every other server against ``baseline`` per N ("" if the baseline has no measured run)."""
    all_groups = groups(doc)
    bases = {g.n: g for g in all_groups if g.server == baseline and g.measured}
    columns = baseline_columns(doc)
    rows = [[str(g.n), g.server] + [cell(g, bases[g.n]) for _, cell in columns]
            for g in all_groups if g.n in bases and g.server != baseline and g.measured]
    return _rows(["N", f"server vs {baseline}"] + [head for head, _ in columns], rows) if rows else ""


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, at N = 1,000 (or the largest N run), on the medians over repetitions.
    Throughput is read at the largest window (the regime that keeps the server busiest)."""
    ns = sorted({r["spec"]["n"] for r in doc["runs"] if "spec" in r})
    if not ns:
        return []
    n = TARGET_N if TARGET_N in ns else ns[-1]
    window = max(windows(doc["config"]))
    rows: list[dict[str, Any]] = []

    def median(server: str, figure: Figure, at: int = n) -> float | None:
        group = find(doc, server, at)
        value = group.stat(figure) if group else None
        return value.median if value else None

    def ratio_row(what: str, a: str, b: str, at_least: float) -> None:
        deliveries = partial(closed_figure, window, "max_deliveries_per_s")
        per_cpu = partial(closed_figure, window, "deliveries_per_server_cpu_s")
        x, y = median(a, deliveries), median(b, deliveries)
        ratio = x / y if x is not None and y else None
        cx, cy = median(a, per_cpu), median(b, per_cpu)
        per_cpu_text = f"; per server CPU-s {cx / cy:.2f}×" if cx and cy else ""
        rows.append({"target": f"{what} (window {window})",
                     "measured": f"{_fmt(x)} vs {_fmt(y)} deliveries/s{per_cpu_text}",
                     "ratio": ratio, "goal": f"≥ {at_least:g}×",
                     "met": None if ratio is None else ratio >= at_least})

    ratio_row(f"SSE max deliveries/s at N={n} vs Node socket.io", "gateway-sse", "node-socketio-ws", 1.0)
    p99 = partial(open_figure, 20.0 * n, "p99")
    a, b = median("gateway-sse", p99), median("node-socketio-ws", p99)
    rows.append({"target": f"SSE p99 at 20 msg/s to {n} vs Node socket.io",
                 "measured": f"{_fmt(a, '.1f')} vs {_fmt(b, '.1f')} ms", "ratio": a / b if a and b else None,
                 "goal": "≤ 1×", "met": None if not (a and b) else a <= b})
    ratio_row(f"Socket.IO WebSocket at N={n} vs python-socketio", "gateway-sio-ws", "python-socketio-ws", 3.0)
    ratio_row(f"Socket.IO polling at N={n} vs python-socketio polling",
              "gateway-sio-polling", "python-socketio-polling", 2.0)
    big = ns[-1]
    per_conn = median("gateway-sse", rss_per_connection_kb, big)
    rows.append({"target": f"RSS per idle SSE connection (N={big})",
                 "measured": f"{per_conn:.1f} KB" if per_conn is not None else "–",
                 "ratio": None, "goal": "≤ 20 KB",
                 "met": None if per_conn is None else per_conn <= 20})
    return rows


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target (issue 7) | measured | ratio | goal | verdict |", "|---|---|---|---|---|"]
    for row in rows:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[row["met"]]
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "–"
        lines.append(f"| {row['target']} | {row['measured']} | {ratio} | {row['goal']} | {verdict} |")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    config = doc["config"]
    repeat = config.get("repeat", 1)
    baseline = config.get("baseline", "node-socketio-ws")
    versus = baseline_table(doc, baseline)
    medians = (f"Each server ran {repeat} times at each N, the servers interleaved; every figure is the "
               "median over those runs, with the range (min–max) in brackets where they differ; lost, dup "
               "and failures are summed over them. " if repeat > 1 else "")
    return "\n".join([
        f"## Fan-out benchmark, {doc['started']}",
        "",
        f"Machine: {describe(doc['machine'])}. Servers on CPU {config['server_cpu']}, "
        f"generator on CPU {config['generator_cpu']} (`taskset`); scale-out variants put every gateway node "
        f"on CPU {config['server_cpu']}; redis-server is a system service, not pinned, its CPU noted apart.",
        "",
        f"Command: `{doc['command']}`",
        "",
        medians + "Latency is from the payload's scheduled send time to the kernel's receive stamp of the read "
        "that carried it (C sink), or to its read in Python (Python sink), open loop, fixed schedule; `sat.` = "
        f"the server could not keep up (no drain within {config['drain_timeout']:g} s or p99 over "
        f"{config['saturated_p99_ms']:g} ms), higher rates skipped; "
        f"{'`sat. k/K`: in k of K runs. ' if repeat > 1 else ''}CPU per 1,000 deliveries: server user+system, "
        "at the rate after @ (or the closed loop's largest window if every rate saturated); gen CPU: the "
        "generator's own (whole process), in the same phase; gen read lag: how long after the kernel received "
        "a delivery the generator read it (p99, same phase; C sink only). "
        "⚠gen: the generator used over 85% of its core in that phase; noisy: other processes used the two "
        "cores (figures suspect).",
        "",
        results_table(doc),
        "",
        "Closed loop, per window of unacknowledged publishes (after warm-up): deliveries/s, the same divided "
        "by the server's CPU use (what it would sustain with its core to itself), and the latency from "
        "send to read (window 1: one publish at a time, no queueing; the largest window: throughput).",
        "",
        window_table(doc),
        "",
        *([f"Side by side with {baseline} at the same N: medians, and their ratio (latency under 1× is "
           "lower than the baseline's; deliveries/s over 1× is more).", "", versus, ""] if versus else []),
        targets_table(doc.get("targets") or []),
        "",
    ])
