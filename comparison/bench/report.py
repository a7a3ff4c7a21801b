"""The results as markdown, and issue 7's targets checked against them (pure: JSON in, text out)."""

from __future__ import annotations

from typing import Any

from .machine import describe

TARGET_N = 1000


def _phase(run: dict[str, Any], target: float) -> dict[str, Any] | None:
    """The open-loop phase of ``run`` offered ``target`` deliveries/s (rate x N)."""
    n = run["spec"]["n"]
    for phase in run.get("phases", []):
        if phase["kind"] == "open" and abs(phase["rate"] * n - target) < 0.5:
            return phase
    return None


def _closed(run: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in run.get("phases", []) if p["kind"] == "closed"), None)


def _latency_cell(phase: dict[str, Any] | None) -> str:
    if phase is None:
        return "–"
    if phase.get("skipped"):
        return "sat."
    lat = phase.get("latency_ms") or {}
    if not lat:
        return "no data"
    cell = f"{lat['p50']:.1f} / {lat['p99']:.1f}"
    if phase.get("saturated"):
        cell = f"**sat.** {cell}"
    if phase.get("generator_saturated"):
        cell += " ⚠gen"
    return cell


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def headline_phase(run: dict[str, Any], targets: list[float], key: str = "server_cpu_ms_per_1k") -> tuple[dict[str, Any] | None, str]:
    """The phase whose ``key`` the table shows: 20k deliveries/s if that phase kept up, else
    the highest unsaturated open-loop rate, else the closed loop; and its label."""
    preferred = [t for t in targets if t == 20_000] + sorted(targets, reverse=True)
    for target in preferred:
        phase = _phase(run, target)
        if phase and not phase.get("skipped") and not phase.get("saturated") and phase.get(key):
            return phase, f"{target / 1000:g}k/s"
    closed = _closed(run)
    if closed and closed.get(key):
        return closed, "sat."
    return None, ""


def headline_cpu(run: dict[str, Any], targets: list[float], key: str = "server_cpu_ms_per_1k") -> tuple[float | None, str]:
    """CPU ms per 1,000 deliveries, of the phase ``headline_phase`` picks."""
    phase, where = headline_phase(run, targets, key)
    return (phase[key] if phase else None), where


def generator_cell(run: dict[str, Any], targets: list[float]) -> str:
    """The generator's own CPU per 1,000 deliveries in the phase of the server's figure, and its
    read lag p99 there (C sink: read time − kernel receive stamp)."""
    phase, _ = headline_phase(run, targets)
    if phase is None or phase.get("generator_cpu_ms_per_1k") is None:
        return "–"
    lag = (phase.get("read_lag_ms") or {}).get("p99")
    return f"{phase['generator_cpu_ms_per_1k']:.1f}" + (f" / {lag:.2f} ms" if lag is not None else " / –")


def results_table(doc: dict[str, Any]) -> str:
    targets: list[float] = doc["config"]["deliveries_per_s"]
    head = ["N", "server"] + [f"p50 / p99 ms @ {t / 1000:g}k/s" for t in targets] + [
        "max deliveries/s", "per server CPU-s", "CPU ms / 1k deliveries", "gen CPU ms / 1k, lag p99",
        "RSS / idle conn", "lost", "dup",
        "gen CPU max", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in doc["runs"]:
        spec = run.get("spec", {})
        if run.get("status") == "skipped" or "spec" not in run:
            why = run.get("reason") or run.get("error", "")[:120]
            lines.append(f"| {run['n']} | {run['server']['name']} | " + " | ".join(["–"] * (len(head) - 3)) + f" | {why} |")
            continue
        closed = _closed(run)
        cpu, where = headline_cpu(run, targets)
        idle = run.get("idle") or {}
        loss = run.get("loss") or {}
        gen = max((p.get("generator_cpu_util", 0.0) for p in run.get("phases", []) if not p.get("skipped")), default=0.0)
        notes = []
        if run.get("status") != "ok":
            notes.append(f"{run.get('status')}: {run.get('error', '')[:80]}")
        connect = run.get("connect") or {}
        if connect.get("failed"):
            notes.append(f"{connect['failed']} failed to connect")
        if loss.get("disconnected"):
            notes.append(f"{loss['disconnected']} disconnected")
        if loss.get("failed_publishes"):
            notes.append(f"{loss['failed_publishes']} publishes refused")
        if gen > 0.85:
            notes.append("generator saturated")
        sink = (run.get("sink") or {}).get("kind", "")
        if sink.startswith("python ("):
            notes.append(f"generator sink: {sink}")
        other = max((p.get("other_cpu_util", 0.0) for p in run.get("phases", []) if not p.get("skipped")), default=0.0)
        if other > 0.15:
            notes.append(f"noisy: other load up to {other:.2f} cores")
        if closed and not closed.get("drained"):
            notes.append("closed loop did not drain")
        nodes = len(run["server"].get("nodes") or [None])
        if nodes > 1:
            notes.append(f"{nodes} nodes, CPU and RSS summed")
        redis_cpu, redis_where = headline_cpu(run, targets, "redis_cpu_ms_per_1k")
        if redis_cpu is not None:
            notes.append(f"redis-server +{redis_cpu:.1f} CPU ms / 1k ({redis_where})")
        per_conn = idle.get("rss_per_connection_bytes")
        cells = [str(spec.get("n", run.get("n"))), run["server"]["name"]]
        cells += [_latency_cell(_phase(run, t)) for t in targets]
        cells += [
            _fmt(closed["max_deliveries_per_s"]) + (" ⚠gen" if closed.get("generator_saturated") else "") if closed else "–",
            _fmt(closed.get("deliveries_per_server_cpu_s")) if closed else "–",
            f"{cpu:.1f} ({where})" if cpu is not None else "–",
            generator_cell(run, targets),
            f"{per_conn / 1024:.1f} KB" if per_conn is not None else "–",
            _fmt(loss.get("lost"), "d"), _fmt(loss.get("duplicates"), "d"),
            f"{gen:.0%}", "; ".join(notes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _find(doc: dict[str, Any], server: str, n: int) -> dict[str, Any] | None:
    for run in doc["runs"]:
        if run["server"]["name"] == server and run.get("spec", {}).get("n") == n:
            return run
    return None


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, at N = 1,000 (or the largest N run), as rows of figures and verdicts."""
    ns = sorted({r["spec"]["n"] for r in doc["runs"] if "spec" in r})
    if not ns:
        return []
    n = TARGET_N if TARGET_N in ns else ns[-1]
    rows: list[dict[str, Any]] = []

    def closed(server: str) -> dict[str, Any]:
        run = _find(doc, server, n)
        return (_closed(run) if run else None) or {}

    def ratio_row(what: str, a: str, b: str, at_least: float) -> None:
        x, y = closed(a).get("max_deliveries_per_s"), closed(b).get("max_deliveries_per_s")
        ratio = x / y if x is not None and y else None
        cx, cy = closed(a).get("deliveries_per_server_cpu_s"), closed(b).get("deliveries_per_server_cpu_s")
        per_cpu = f"; per server CPU-s {cx / cy:.2f}×" if cx and cy else ""
        rows.append({"target": what, "measured": f"{_fmt(x)} vs {_fmt(y)} deliveries/s{per_cpu}",
                     "ratio": ratio, "goal": f"≥ {at_least:g}×",
                     "met": None if ratio is None else ratio >= at_least})

    ratio_row(f"SSE max deliveries/s at N={n} vs Node socket.io", "gateway-sse", "node-socketio-ws", 1.0)
    sse, node = _find(doc, "gateway-sse", n), _find(doc, "node-socketio-ws", n)
    p_sse = _phase(sse, 20.0 * n) if sse else None
    p_node = _phase(node, 20.0 * n) if node else None
    a = (p_sse or {}).get("latency_ms", {}).get("p99") if p_sse and not p_sse.get("skipped") else None
    b = (p_node or {}).get("latency_ms", {}).get("p99") if p_node and not p_node.get("skipped") else None
    rows.append({"target": f"SSE p99 at 20 msg/s to {n} vs Node socket.io",
                 "measured": f"{_fmt(a, '.1f')} vs {_fmt(b, '.1f')} ms", "ratio": a / b if a and b else None,
                 "goal": "≤ 1×", "met": None if not (a and b) else a <= b})
    ratio_row(f"Socket.IO WebSocket at N={n} vs python-socketio", "gateway-sio-ws", "python-socketio-ws", 3.0)
    ratio_row(f"Socket.IO polling at N={n} vs python-socketio polling",
              "gateway-sio-polling", "python-socketio-polling", 2.0)
    big = ns[-1]
    sse_big = _find(doc, "gateway-sse", big)
    per_conn = (sse_big or {}).get("idle", {}).get("rss_per_connection_bytes")
    rows.append({"target": f"RSS per idle SSE connection (N={big})",
                 "measured": f"{per_conn / 1024:.1f} KB" if per_conn is not None else "–",
                 "ratio": None, "goal": "≤ 20 KB",
                 "met": None if per_conn is None else per_conn <= 20 * 1024})
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
    return "\n".join([
        f"## Fan-out benchmark, {doc['started']}",
        "",
        f"Machine: {describe(doc['machine'])}. Servers on CPU {config['server_cpu']}, "
        f"generator on CPU {config['generator_cpu']} (`taskset`); scale-out variants put every gateway node "
        f"on CPU {config['server_cpu']}; redis-server is a system service, not pinned, its CPU noted apart.",
        "",
        f"Command: `{doc['command']}`",
        "",
        "Latency is from the payload's scheduled send time to the kernel's receive stamp of the read that "
        "carried it (C sink), or to its read in Python (Python sink), open loop, fixed schedule; `sat.` = the server could not keep up (no drain within "
        f"{config['drain_timeout']:g} s or p99 over {config['saturated_p99_ms']:g} ms), higher rates skipped. "
        "Max deliveries/s: closed loop after warm-up; per server CPU-s: the same divided by the server's CPU "
        "use (what it would sustain with its core to itself). CPU per 1,000 deliveries: server user+system, "
        "at the rate in brackets; gen CPU: the generator's own (whole process) in the same phase, and "
        "how long after the kernel received a delivery the generator read it (p99; C sink only). ⚠gen: the generator used over 85% of its core in that phase; noisy: other "
        "processes used the two cores (figures suspect).",
        "",
        results_table(doc),
        "",
        targets_table(doc.get("targets") or []),
        "",
    ])
