"""Short answers to the three questions the report is asked, with the measured numbers that bear on them."""

from __future__ import annotations

from .results import Results
from .sentences import SIMILAR, Builder, Sentence, differs, no_direction, put_metrics, transport_of, usable, users_of


def questions(results: Results) -> list[Sentence]:
    return [*_q_leave(results), *_q_at_least_once(results), *_q_namespace(results)]


def _q_leave(results: Results) -> list[Sentence]:
    b = Builder("q-leave-socketio", "q1")
    high = results.loads[-1] if results.loads else None
    sse = results.cell("sse-block", high) if high is not None else None
    sio = results.cell("sio-polling-block", high) if high is not None else None
    ws = results.cell("sio-websocket-direct", high) if high is not None else None
    text = ("Leave Socket.IO for SSE + POST when a real share of your users sit behind proxies that refuse "
            "WebSocket: there Socket.IO falls back to long-polling")
    if usable(sse, sio):
        assert sse is not None and sio is not None
        u = b.put("users", users_of(sse), "int")
        pairs = [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")]
        if put_metrics(b, sse, "sse", pairs) and put_metrics(b, sio, "sio", pairs) and \
                b.value("sse_p99") > 0 and b.value("sse_cpu") > 0:
            quick = results.manifest_preset == "quick"
            shown = {m: not quick and differs(sio, sse, m) for m in ("deliver_p99_ms", "gateway_cpu_s_per_1000_deliveries")}
            p99 = (f"{b.derive('p99_x', 'ratio', ['sio_p99', 'sse_p99'])}× the p99 latency ({{sio_p99}} vs "
                   "{sse_p99} ms)" if shown["deliver_p99_ms"] else
                   f"a p99 latency of {{sio_p99}} vs {{sse_p99}} ms ({no_direction(quick)})")
            cpu = (f"{b.derive('cpu_x', 'ratio', ['sio_cpu', 'sse_cpu'])}× the gateway CPU per delivery ({{sio_cpu}} vs "
                   "{sse_cpu} CPU-seconds per thousand)" if shown["gateway_cpu_s_per_1000_deliveries"] else
                   f"{{sio_cpu}} vs {{sse_cpu}} CPU-seconds of gateway CPU per thousand deliveries ({no_direction(quick)})")
            text += f", which at {u} users here had {p99} and {cpu}, against SSE + POST behind the same proxy"
            ratios = [b.value(n) for n in ("p99_x", "cpu_x") if n in b.sentence.values]
            if not quick and not any(r >= SIMILAR for r in ratios):
                text += (" (so on this machine the gain is not measurably in speed or CPU: weigh the simpler client "
                         "and plain HTTP instead)")
    text += ". Keep Socket.IO where WebSocket passes"
    if usable(ws, sse) and ws is not None:
        t = ws.get("deliver_p99_ms")
        if t is not None:
            text += f" (over WebSocket it delivered p99 in {b.put('ws_p99', t)} ms at the same load)"
    text += (", or when you depend on its ecosystem (client libraries, the Redis adapter, admin UI). "
             "SSE + POST is also the better fit when clients must be plain HTTP (curl, server-side consumers, browsers' "
             "EventSource with its built-in resume) or when every message must be an ordinary request that "
             "proxies, load balancers and logs understand.")
    return [b.done(text)]


def _q_at_least_once(results: Results) -> list[Sentence]:
    b = Builder("q-at-least-once", "q2")
    dedup = results.manifest_value("gateway.settings.dedup_window")
    window = results.manifest_value("gateway.settings.recovery_window")
    log_len = results.manifest_value("gateway.settings.log_max_length")
    text = ("Here it is built on acknowledgements in both directions of one pipeline. The sender gives every publish a "
            "clientEventId and keeps it in an outbox until the ack, which carries the event's offset in the room's "
            "delivery log (the event is logged before it is acked); after a lost connection it resends what is "
            "unacked with the same id, and the gateway answers a retransmission with the first ack instead of "
            "publishing it twice")
    text += f" (deduplication window {b.put('dedup', dedup)} s)" if dedup is not None else ""
    text += (". Each receiver remembers the last offset per room and resumes with it (SSE: the Last-Event-ID cursor; "
             "Socket.IO: auth offsets)")
    if window is not None and log_len is not None:
        text += (f" within the recovery window ({b.put('window', window)} s, from a log of at most "
                 f"{b.put('log', log_len, 'int')} events per room)")
    text += (": it gets the missed events in order, then a recovery frame that names any gap, and drops an offset "
             "it already has. The design goal is that nothing is lost silently: a gap is reported, never skipped.")
    faults = [c for c in results.cells if c.fault and c.comparable]
    if faults:
        parts = []
        for i, cell in enumerate(faults):
            cuts, lost, dup = cell.get("proxy_cuts", "total"), cell.get("lost", "total"), cell.get("duplicate", "total")
            if cuts is None or lost is None or dup is None:
                continue
            gaps = cell.get("gateway_recovery_gaps", "total")
            part = (f"{transport_of(cell)}: {b.put(f'cuts{i}', cuts, 'int')} cuts, {b.put(f'lost{i}', lost, 'int')} "
                    f"counted lost, {b.put(f'dup{i}', dup, 'int')} duplicated")
            if gaps is not None:
                part += f", {b.put(f'gaps{i}', gaps, 'int')} gaps reported by the gateway"
            parts.append(part)
        if parts:
            text += " Measured under the drop profile: " + "; ".join(parts) + "."
            if any(b.value(n) > 0 for n in b.sentence.values if n.startswith("lost")):
                text += " Counts of lost deliveries with no gap reported are explained under Caveats."
    return [b.done(text)]


def _q_namespace(results: Results) -> list[Sentence]:
    b = Builder("q-namespace", "q3")
    text = ("A namespace beats a separate server when the features share users, authentication and scale: one "
            "process, one port and one proxy rule serve them, a client multiplexes namespaces over one connection "
            "(Socket.IO) or opens one stream each (SSE), and nothing published in one namespace reaches another")
    rss = [(t.value, c, t) for c in results.cells if c.comparable and not c.fault and (t := c.get("gateway_rss_mb_max"))]
    if rss:
        _, cell, traced = max(rss, key=lambda item: item[0])
        text += (f"; the whole gateway peaked at {b.put('rss', traced)} MB of memory here ({cell.id}), so a second "
                 "server mostly duplicates that base cost")
    cpu = [(t.value, c, t) for c in results.cells if c.comparable and not c.fault and (t := c.get("gateway_cpu_pct_mean"))]
    text += (". Run a separate server when a namespace needs its own failure domain, its own scaling or its own "
             "resource limits: all namespaces of one gateway share one event loop")
    if cpu:
        _, cell, traced = max(cpu, key=lambda item: item[0])
        text += (f", and a busy one takes from the others (the gateway reached {b.put('cpu', traced)}% of a core "
                 f"in {cell.id})")
    return [b.done(text + ".")]


