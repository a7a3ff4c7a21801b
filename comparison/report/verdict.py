"""The verdict: the report's sentences, computed from the results (``sentences`` makes them traceable).

Which way a comparison goes (lower, higher, who wins, even) is decided from the numbers;
where a comparison has no numbers (a cell failed or is missing), the sentence says so.
The heaviest load comes first: that is where the transports differ most.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from ..records import ladder_ends
from .questions import questions
from .results import CellView, Results, Traced
from .sentences import (
    SIMILAR,
    WIDE,
    Builder,
    Sentence,
    beyond_spread,
    check,
    compare,
    differs,
    fmt,
    no_direction,
    put_metrics,
    rests_on_wide,
    transport_of,
    usable,
    users_of,
)

__all__ = ["SECTIONS", "Sentence", "beyond_spread", "build", "check", "fmt"]

CPU: Final = "gateway_cpu_s_per_1000_deliveries"
P99: Final = "deliver_p99_ms"

# -- the sections ------------------------------------------------------------------------


def blocked(results: Results, users: int) -> list[Sentence]:
    sse, sio = results.cell("sse-block", users), results.cell("sio-polling-block", users)
    if not usable(sse, sio):
        return _not_compared(f"blocked-u{users}", "verdict", "behind the WebSocket-blocking proxy", sse, sio)
    assert sse is not None and sio is not None
    out: list[Sentence] = []
    b = Builder(f"blocked-latency-u{users}", "verdict")
    u = b.put("users", users_of(sse), "int")
    put_metrics(b, sse, "sse", [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")])
    put_metrics(b, sio, "sio", [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")])
    quick = results.manifest_preset == "quick"
    text = (f"Behind a WebSocket-blocking proxy at {u} users, SSE + POST delivered p99 in {{sse_p99}} ms vs "
            f"{{sio_p99}} ms for Socket.IO's polling fallback "
            f"({compare(b, 'p99_ratio', 'sse_p99', 'sio_p99', (sse, sio), P99, quick)})")
    text += _cpu_clause(b, (sse, "sse"), (sio, "sio"), "its", quick)
    bytes_ok = put_metrics(b, sse, "sse", [("bytes_per_delivery", "bytes"), ("requests_per_delivery", "req")]) and \
        put_metrics(b, sio, "sio", [("bytes_per_delivery", "bytes"), ("requests_per_delivery", "req")])
    if bytes_ok and b.value("sio_bytes") > 0:
        if not quick and differs(sse, sio, "bytes_per_delivery"):
            text += (f", with {b.derive('bytes_pct', 'percent', ['sse_bytes', 'sio_bytes'], 'pct')}% of its bytes on "
                     "the wire per delivered message ({sse_bytes} vs {sio_bytes} B of bodies and payloads)")
        else:
            text += ", with {sse_bytes} vs {sio_bytes} B of bodies and payloads per delivered message"
        text += (" and {sse_req} vs {sio_req} HTTP requests per delivered message, each of which also carries "
                 "headers not counted here")
    else:
        text += "; bytes on the wire were not measured for these cells"
    text += rests_on_wide(b, sse, sio) + "."
    out.append(b.done(text))

    b = Builder(f"blocked-ack-u{users}", "verdict")
    u = b.put("users", users_of(sse), "int")
    acks = [("publish_p50_ms", "ack50"), ("publish_p99_ms", "ack99"), ("connect_p50_ms", "conn")]
    if put_metrics(b, sse, "sse", acks) and put_metrics(b, sio, "sio", acks):
        text = (f"At {u} users behind the same proxy, a publish was acknowledged in p50 {{sse_ack50}} ms "
                "(p99 {sse_ack99}) over SSE + POST vs {sio_ack50} ms (p99 {sio_ack99}) over Socket.IO polling; "
                "connecting took p50 {sse_conn} vs {sio_conn} ms")
        out.append(b.done(text + "."))
    return out


def _cpu_clause(b: Builder, first: tuple[CellView, str], other: tuple[CellView, str], whose: str, quick: bool) -> str:
    """The gateway CPU per delivery of ``first`` against ``other`` (cells with their tags, their
    ``cpu`` metrics already put): a percentage only beyond the repeats' spread, never in a smoke test."""
    (a, a_tag), (o, o_tag) = first, other
    if not b.value(f"{o_tag}_cpu") > 0:
        return ""
    figures = f"{{{a_tag}_cpu}} vs {{{o_tag}_cpu}} CPU-seconds"
    if not quick and differs(a, o, CPU):
        pct = b.derive("cpu_pct", "percent", [f"{a_tag}_cpu", f"{o_tag}_cpu"], "pct")
        return f", at {pct}% of {whose} gateway CPU per delivery ({figures} per thousand deliveries)"
    return f", with {figures} of gateway CPU per thousand deliveries ({no_direction(quick)})"


def direct(results: Results, users: int) -> list[Sentence]:
    ws, sse = results.cell("sio-websocket-direct", users), results.cell("sse-direct", users)
    if not usable(ws, sse):
        return _not_compared(f"direct-u{users}", "verdict", "with WebSocket allowed", ws, sse)
    assert ws is not None and sse is not None
    b = Builder(f"direct-u{users}", "verdict")
    u = b.put("users", users_of(ws), "int")
    put_metrics(b, ws, "ws", [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")])
    put_metrics(b, sse, "sse", [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")])
    quick = results.manifest_preset == "quick"
    text = (f"With WebSocket allowed at {u} users, Socket.IO over WebSocket delivered p99 in {{ws_p99}} ms vs "
            f"{{sse_p99}} ms for SSE + POST ({compare(b, 'p99_ratio', 'ws_p99', 'sse_p99', (ws, sse), P99, quick)})")
    text += _cpu_clause(b, (ws, "ws"), (sse, "sse"), "SSE + POST's", quick)
    if put_metrics(b, ws, "ws", [("bytes_per_delivery", "bytes")]) and \
            put_metrics(b, sse, "sse", [("bytes_per_delivery", "bytes")]):
        text += ", and {ws_bytes} vs {sse_bytes} bytes on the wire per delivered message"
    text += rests_on_wide(b, ws, sse) + "."
    return [b.done(text)]


def fallback(results: Results, users: int) -> list[Sentence]:
    ws, poll = results.cell("sio-websocket-direct", users), results.cell("sio-polling-block", users)
    if not usable(ws, poll):
        return []
    assert ws is not None and poll is not None
    b = Builder(f"fallback-u{users}", "verdict")
    u = b.put("users", users_of(ws), "int")
    pairs = [("deliver_p99_ms", "p99"), ("gateway_cpu_s_per_1000_deliveries", "cpu")]
    put_metrics(b, ws, "ws", pairs)
    put_metrics(b, poll, "poll", pairs)
    if b.value("ws_p99") <= 0 or b.value("ws_cpu") <= 0:
        return []
    quick = results.manifest_preset == "quick"
    bytes_ok = put_metrics(b, ws, "ws", [("bytes_per_delivery", "bytes")]) and \
        put_metrics(b, poll, "poll", [("bytes_per_delivery", "bytes")]) and b.value("ws_bytes") > 0
    shown = {m: not quick and differs(ws, poll, m) for m in (P99, CPU, "bytes_per_delivery")}

    def times(name: str, metric: str, short: str, words: str = "") -> str:
        """" (N×...)" where the two differ beyond their spread by a ratio worth writing."""
        if not shown[metric]:
            return ""
        if b.value(f"poll_{short}") < SIMILAR * b.value(f"ws_{short}"):
            return " (about the same)"
        return f" ({b.derive(name, 'ratio', [f'poll_{short}', f'ws_{short}'])}×{words})"

    x = {"p99": times("p99_x", P99, "p99", " the WebSocket figure"), "cpu": times("cpu_x", CPU, "cpu"),
         "bytes": times("bytes_x", "bytes_per_delivery", "bytes") if bytes_ok else ""}
    head = (f"Falling back to polling cost Socket.IO at {u} users" if shown[P99] or shown[CPU]
            else f"Socket.IO over WebSocket and over polling at {u} users ({no_direction(quick)})")
    text = (f"{head}: p99 from {{ws_p99}} ms over WebSocket to {{poll_p99}} ms{x['p99']}, gateway CPU per "
            f"thousand deliveries from {{ws_cpu}} to {{poll_cpu}} s{x['cpu']}")
    if bytes_ok:
        text += f", bytes per delivered message from {{ws_bytes}} to {{poll_bytes}}{x['bytes']}"
    text += rests_on_wide(b, ws, poll)
    return [b.done(text + ".")]


def auto(results: Results, users: int) -> list[Sentence]:
    """Where ``auto`` ended and what it cost: its time to a usable session beside the fixed
    choices' (Socket.IO's default client behind the blocking proxy), its p99 beside the best."""
    out: list[Sentence] = []
    pairs = (("block", "behind the WebSocket-blocking proxy", "auto-block", "sse-block", "sio-polling-block",
              "SSE + POST", "Socket.IO's default client (polling once its upgrade is refused)"),
             ("direct", "with WebSocket allowed", "auto-direct", "sio-websocket-direct", "sio-polling-direct",
              "Socket.IO over WebSocket", "Socket.IO polling"))
    for tag, where, auto_key, best_key, other_key, best_words, other_words in pairs:
        cell, best, other = (results.cell(k, users) for k in (auto_key, best_key, other_key))
        if not usable(cell, best):
            continue
        assert cell is not None and best is not None
        b = Builder(f"auto-{tag}-u{users}", "verdict")
        u = b.put("users", users_of(cell), "int")
        moved, stayed = cell.get("upgrades_websocket", "total"), cell.get("upgrades_refused", "total")
        text = f"auto {where} at {u} users: "
        if moved is not None and stayed is not None:
            text += (f"{b.put('moved', moved, 'int')} sessions moved to WebSocket and {b.put('stayed', stayed, 'int')} "
                     "stayed on SSE + POST; ")
        metrics = [("connect_p50_ms", "conn"), ("deliver_p99_ms", "p99")]
        if not (put_metrics(b, cell, "auto", metrics) and put_metrics(b, best, "best", metrics)):
            continue
        text += (f"the first usable session (handshake and join acknowledged) took p50 {{auto_conn}} ms vs "
                 f"{{best_conn}} ms for {best_words}")
        if other is not None and usable(other) and put_metrics(b, other, "other", [("connect_p50_ms", "conn")]):
            text += f" and {{other_conn}} ms for {other_words}"
        text += f"; p99 delivery {{auto_p99}} ms vs {{best_p99}} ms for {best_words}"
        out.append(b.done(text + rests_on_wide(b, cell, best) + "."))
    return out


def winners(results: Results) -> list[Sentence]:
    """Per load, which cell was best on each axis, and the rule each scenario follows."""
    out: list[Sentence] = []
    axes = [("deliver_p99_ms", "the lowest p99 delivery latency", "ms"),
            ("gateway_cpu_s_per_1000_deliveries", "the least gateway CPU per delivery", "CPU-seconds per thousand"),
            ("bytes_per_delivery", "the fewest bytes per delivered message", "B")]
    for users in results.loads:
        cells = [c for c in results.cells if c.users == users and not c.fault and c.comparable]
        if len(cells) < 2:
            continue
        b = Builder(f"best-u{users}", "conditions")
        u = b.put("users", users_of(cells[0]), "int")
        parts = []
        for i, (metric, words, unit) in enumerate(axes):
            ranked = [(t.value, c, t) for c in cells if (t := c.get(metric)) is not None]
            if not ranked:
                continue
            _, best, traced = min(ranked, key=lambda item: item[0])
            others = [c for _, c, _ in ranked if c is not best]
            close = [c for c in others if not beyond_spread(best, c, metric)]
            if not close:
                parts.append(f"{words}: {best.label} ({b.put(f'best{i}', traced)} {unit}, beyond the spread of "
                             "every other cell's repeats)")
            else:
                parts.append(f"{words}: no cell beyond the others' spread (the lowest median, "
                             f"{b.put(f'best{i}', traced)} {unit} in {best.id}, is within what {close[0].id}"
                             f"{' and others' if len(close) > 1 else ''} varied by, or rests on one repeat)")
        if parts:
            left_out = [c.id for c in results.cells if c.users == users and not c.fault
                        and not c.calibration and c.generator_bound]
            among = (f", among the cells kept in the verdict ({', '.join(left_out)} left out as generator-bound)"
                     if left_out else "")
            out.append(b.done(f"At {u} users{among}, " + "; ".join(parts) + "."))
    out += _rule(results, "Where WebSocket passes", "sio-websocket-direct", "sse-direct")
    out += _rule(results, "Where a proxy blocks WebSocket", "sse-block", "sio-polling-block")
    return out


def _rule(results: Results, scenario: str, a_key: str, b_key: str) -> list[Sentence]:
    """Who wins on latency and on CPU in one scenario: at every load measured, or at which loads.

    Two values less than ``SIMILAR`` apart are even: a difference that small is within what
    repeats of one cell vary by on a shared machine.
    """
    b = Builder(f"rule-{a_key}-{b_key}", "conditions")
    clauses = []
    for metric, what, unit in (("deliver_p99_ms", "p99 latency", "ms"),
                               ("gateway_cpu_s_per_1000_deliveries", "gateway CPU", "CPU-seconds per thousand")):
        verdicts: list[tuple[str, str]] = []  # (winner label or "even", "at N users (x vs y unit)")
        for users in results.loads:
            a, c = results.cell(a_key, users), results.cell(b_key, users)
            if not usable(a, c):
                continue
            assert a is not None and c is not None
            ta, tc = a.get(metric), c.get(metric)
            if ta is None or tc is None or min(ta.value, tc.value) <= 0:
                continue
            tag = f"{metric}_{users}"
            b.put(f"{tag}_a", ta)
            b.put(f"{tag}_b", tc)
            u = b.put(f"{tag}_users", users_of(a), "int")
            winner = a if ta.value <= tc.value else c
            loser = c if winner is a else a
            w, l_ = (f"{tag}_a", f"{tag}_b") if winner is a else (f"{tag}_b", f"{tag}_a")
            ratio = b.derive(f"{tag}_x", "ratio", [l_, w])
            name = ("even" if b.value(f"{tag}_x") < SIMILAR
                    else transport_of(winner) if beyond_spread(winner, loser, metric) else "within spread")
            verdicts.append((name, f"at {u} users ({{{w}}} vs {{{l_}}} {unit}, {ratio}×)"))
        if not verdicts:
            continue
        names = {name for name, _ in verdicts}
        where = "; ".join(detail for _, detail in verdicts)
        if names == {"even"}:
            clauses.append(f"on {what} the two are even ({where})")
        elif names <= {"even", "within spread"}:
            clauses.append(f"on {what} neither wins beyond what its repeats vary by ({where})")
        elif len(names) == 1:
            clauses.append(f"{verdicts[0][0]} wins on {what} at every load measured ({where})")
        else:
            clauses.append(f"on {what}, " + "; ".join(
                f"{name + ' wins' if name not in ('even', 'within spread') else 'neither wins'} {detail}"
                for name, detail in verdicts))
    if not clauses:
        return []
    return [b.done(f"{scenario}: " + ", and ".join(clauses) + ".")]


# What ends a ladder without being the gateway's own limit (``records.ladder_ends``).
NOT_THE_GATEWAY: Final = ("the load generator could not keep up", "the proxy saturated")


def _cpu(b: Builder, cell: CellView, tag: str) -> str:
    """The gateway's, the proxy's and the generator's CPU in a step's measured window, as words."""
    parts = []
    gateway = cell.get("gateway_cpu_pct_mean")
    if gateway is not None:
        parts.append(f"gateway {b.put(f'{tag}_gateway_cpu', gateway, 'pct')}%")
    proxy = cell.get("proxy_cpu_pct_mean")
    if proxy is not None:
        parts.append(f"proxy {b.put(f'{tag}_proxy_cpu', proxy, 'pct')}%")
    generator = cell.get("generator_cpu_pct_max")
    if generator is not None:
        parts.append(f"busiest generator process {b.put(f'{tag}_generator_cpu', generator, 'pct')}%")
    text = f"; {', '.join(parts)} of a core" if parts else ""
    return text + (", no proxy in the path" if not (cell.data or {}).get("uses_proxy", True) else "")


def capacity(results: Results) -> list[Sentence]:
    """Per load ladder: the most served within the stated bound in steady state, the CPU of the
    gateway and the proxy there, and what ended the ladder (the gateway's limit, or not)."""
    out: list[Sentence] = []
    for series, steps in results.ladders().items():
        b = Builder(f"capacity-{series.replace(' ', '-').replace(',', '')}", "capacity")
        first = steps[0]
        within = [c for c in steps if c.usable and ladder_ends(c.data or {}, float(c.rung["bound_ms"])) is None]
        ended = next((c for c in steps if c.status != "skipped" and c not in within), None)
        room = first.load_value("room_size")
        bound = Traced(float((first.rung or {}).get("bound_ms") or 0), first.file, "rung.bound_ms")
        shape = (f"one room of {b.put('room', room, 'int')}" if first.load.get("room_size") == first.load.get("users")
                 else f"rooms of {b.put('room', room, 'int')}") if room is not None else series.split(" ", 1)[1]
        name = f"{first.label}, {shape}"
        bound_words = f"within p99 delivery ≤ {b.put('bound', bound)} ms and no loss"
        if within:
            best = within[-1]
            rate, p99 = best.get("deliveries_per_s"), best.get("deliver_p99_ms")
            users = best.load_value("users")
            if rate is None or p99 is None or users is None:
                continue
            text = (f"{name}: up to {b.put('users', users, 'int')} users and {b.put('rate', rate)} deliveries/s "
                    f"{bound_words}, in steady state (p99 {b.put('p99', p99)} ms{_cpu(b, best, 'knee')})")
        else:
            text = f"{name}: no step stayed {bound_words}"
        if ended is not None:
            why = ladder_ends(ended.data or {"status": ended.status}, float(ended.rung["bound_ms"]))
            users_next, rate_next = ended.load_value("users"), ended.get("deliveries_per_s")
            at = ""
            if users_next is not None:
                at = f" ({b.put('users_next', users_next, 'int')} users"
                at += f", {b.put('rate_next', rate_next)} deliveries/s)" if rate_next is not None else ")"
            text += f"; {'the next' if within else 'its first'} step{at} ended the ladder: {why}"
            p99_next = ended.get("deliver_p99_ms")
            if p99_next is not None:
                text += f" (p99 {b.put('p99_next', p99_next)} ms{_cpu(b, ended, 'next')})"
            if why in NOT_THE_GATEWAY:
                text += (", so the ladder did not find the gateway's own knee: "
                         + ("the last step within the bound is a lower bound of what it serves" if within
                            else "the generator's own lag is in this step's figures, so it does not tell whether the gateway alone "
                            "stayed within the bound"))
        else:
            text += "; the ladder's last step was still within it, so the capacity is higher"
        out.append(b.done(text + "."))
    return out


def nginx(results: Results, users: int) -> list[Sentence]:
    """Whether the blocked-WebSocket conclusion holds through the real nginx too: what compares,
    and for what does not, why (a missing or failed cell, or a generator-bound one)."""
    keys = {"aio_sse": "sse-block", "aio_poll": "sio-polling-block", "ngx_sse": "sse-nginx",
            "ngx_poll": "sio-polling-nginx"}
    cells = {tag: results.cell(key, users) for tag, key in keys.items()}
    if cells["ngx_sse"] is None and cells["ngx_poll"] is None:
        return []
    if not all(c is not None and c.usable for c in cells.values()):
        return _not_compared(f"nginx-u{users}", "verdict", "through the real nginx",
                             *(c for c in cells.values()))
    views: dict[str, CellView] = {tag: c for tag, c in cells.items() if c is not None}
    quick = results.manifest_preset == "quick"
    b = Builder(f"nginx-u{users}", "verdict")
    u = b.put("users", users_of(views["ngx_sse"]), "int")
    if not all(put_metrics(b, cell, tag, [(P99, "p99")]) for tag, cell in views.items()):
        return []
    bound = [f"{c.id} is generator-bound in {_bound_count(b, c, tag)} repeats" for tag, c in views.items()
             if not c.comparable]
    text = (f"Through the real nginx (comparison/nginx/block-websocket.conf) at {u} users, SSE + POST delivered p99 "
            "in {ngx_sse_p99} ms vs {ngx_poll_p99} ms for Socket.IO's polling fallback; behind the aiohttp proxy's "
            "block-websocket profile {aio_sse_p99} vs {aio_poll_p99} ms")
    if bound:
        text += (" (" + "; ".join(bound) + ": its p99 is so low that the generator's own lag is over the "
                 "share of it in manifest.json, and it stays out of the direct comparison)")
    orders = {proxy: _order(b, views[f"{proxy}_sse"], views[f"{proxy}_poll"], proxy, quick) for proxy in ("aio", "ngx")}
    (aio, aio_why), (ngx, ngx_why) = orders["aio"], orders["ngx"]
    if quick:
        text += f". {no_direction(quick).capitalize()}"
    elif aio is not None and ngx is not None:
        aio_name, ngx_name = transport_of(views[f"aio_{aio}"]), transport_of(views[f"ngx_{ngx}"])
        if aio == ngx:
            text += (f". {aio_name} has the lower p99 behind the aiohttp proxy ({aio_why}) and through nginx "
                     f"({ngx_why}): the conclusion holds through both proxies")
        else:
            text += (f". The lower p99 is {aio_name}'s behind the aiohttp proxy ({aio_why}) but {ngx_name}'s through "
                     f"nginx ({ngx_why}): the conclusion does not hold through both proxies")
    else:
        missing = [f"{name}: {why}" for name, (order, why) in (("behind the aiohttp proxy", orders["aio"]),
                                                                 ("through nginx", orders["ngx"])) if order is None]
        text += ". Whether the conclusion holds through both proxies is not established at this load (" + \
            "; ".join(missing) + ")"
    return [b.done(text + rests_on_wide(b, *views.values()) + "."), *_proxy_cost(results, users, quick)]


def _bound_count(b: Builder, cell: CellView, tag: str) -> str:
    k, n = cell.get("repeats_generator_bound", "total"), cell.get("repeats_ok", "total")
    assert k is not None and n is not None
    return f"{b.put(f'{tag}_bound', k, 'int')} of {b.put(f'{tag}_repeats', n, 'int')}"


def _order(b: Builder, sse: CellView, poll: CellView, tag: str, quick: bool) -> tuple[str | None, str]:
    """Which of the two is lower on one proxy ("sse", "poll" or None) and why that can be said.

    Two comparable cells: beyond their repeats' spread. A generator-bound cell's figures include
    the generator's own lag, so they can only overstate its latency: if even its slowest repeat is
    below the other (comparable) cell's fastest, it is the lower one; by how much is not measured.
    """
    if quick:
        return None, no_direction(quick)
    if sse.comparable and poll.comparable:
        if beyond_spread(sse, poll, P99):
            return "sse", "beyond what their repeats vary by"
        if beyond_spread(poll, sse, P99):
            return "poll", "beyond what their repeats vary by"
        return None, f"{sse.id} and {poll.id} are {NO_SPREAD}"
    if sse.comparable == poll.comparable:
        return None, f"both {sse.id} and {poll.id} are generator-bound"
    low, high = (poll, sse) if sse.comparable else (sse, poll)
    worst = _slowest_repeat(low)
    best = high.get(P99, "min")
    if worst is None or best is None:
        return None, f"{low.id} is generator-bound"
    shown_w, shown_b = b.put(f"{tag}_slowest", worst), b.put(f"{tag}_fastest", best)
    if worst.value < best.value:
        return ("sse" if low is sse else "poll",
                f"even {low.id}'s slowest repeat, {shown_w} ms with the generator's lag in it, is below {high.id}'s "
                f"fastest, {shown_b} ms; a generator-bound figure can only overstate the latency, so the order "
                "holds, by how much is not measured")
    return None, (f"{low.id} is generator-bound and its slowest repeat ({shown_w} ms) is not below {high.id}'s "
                  f"fastest ({shown_b} ms)")


NO_SPREAD: Final = "within what their repeats vary by"


def _slowest_repeat(cell: CellView) -> Traced | None:
    """The largest p99 delivery of any repeat that succeeded, generator-bound ones included."""
    best: Traced | None = None
    for i, repeat in enumerate((cell.data or {}).get("repeats") or []):
        value = ((repeat.get("requests") or {}).get("deliver") or {}).get("p99_ms")
        if repeat.get("status") == "ok" and isinstance(value, (int, float)) and (best is None or value > best.value):
            best = Traced(float(value), cell.file, f"repeats.{i}.requests.deliver.p99_ms")
    return best


def _proxy_cost(results: Results, users: int, quick: bool) -> list[Sentence]:
    """Where the gateway's own CPU differs between the two proxies for one transport: how much, and
    what was recorded beside it."""
    out: list[Sentence] = []
    for aio_key, ngx_key in (("sse-block", "sse-nginx"), ("sio-polling-block", "sio-polling-nginx")):
        aio, ngx = results.cell(aio_key, users), results.cell(ngx_key, users)
        if aio is None or ngx is None or not (aio.usable and ngx.usable) or quick:
            continue
        if not differs(aio, ngx, "gateway_cpu_pct_mean"):
            continue
        b = Builder(f"proxy-cost-{ngx.id}", "verdict")
        metrics = [("gateway_cpu_pct_mean", "pct"), (CPU, "cpu"), ("deliver_p50_ms", "p50"),
                   ("proxy_cpu_pct_mean", "proxy")]
        if not (put_metrics(b, ngx, "ngx", metrics) and put_metrics(b, aio, "aio", metrics)):
            continue
        text = (f"{transport_of(aio)} at {b.put('users', users_of(aio), 'int')} users: the gateway itself used "
                "{ngx_pct}% of a core behind nginx vs {aio_pct}% behind the aiohttp proxy ({ngx_cpu} vs {aio_cpu} "
                "CPU-seconds per thousand deliveries), beyond what the repeats vary by; the proxy used {ngx_proxy}% "
                "(nginx) vs {aio_proxy}% (aiohttp) of a core")
        if aio.family == "sio-polling" and b.value("ngx_p50") < b.value("aio_p50"):
            text += (". Through nginx half the deliveries arrived within {ngx_p50} ms vs {aio_p50} ms: each long-poll "
                     "came back sooner and so carried fewer messages, and the gateway answered more polls for the "
                     "same deliveries. Requests per delivery are not counted through nginx (it has no counters "
                     "here), so this is inferred from the latencies, not measured")
        else:
            text += ". Nothing else recorded explains the difference"
        out.append(b.done(text + "."))
    return out


def smoke(results: Results) -> list[Sentence]:
    """The quick preset's first sentence: what its numbers are good for."""
    if results.manifest_preset != "quick":
        return []
    return [Builder("smoke-test", "verdict").done(
        "This is a smoke test (the quick preset: one short repeat per cell). It shows that every cell runs; "
        "its numbers vary more than the transports differ, so it names no winner. Run the full preset "
        "(python -m comparison run --full) for a comparison.")]


def floor(results: Results) -> list[Sentence]:
    """The calibration cells: what the generator measures against a reference server at each load."""
    out: list[Sentence] = []
    for cell in (c for c in results.cells if c.calibration and c.usable):
        b = Builder(f"floor-{cell.id}", "floor")
        p99, lag, cpu = cell.get("deliver_p99_ms"), cell.get("generator_lag_p99_ms"), cell.get("generator_cpu_pct_max")
        if p99 is None:
            continue
        text = (f"{cell.kind.get('title', cell.id)}, {b.put('users', users_of(cell), 'int')} users: "
                f"p99 delivery {b.put('p99', p99)} ms")
        rate = cell.get("deliveries_per_s")
        if rate is not None:
            text += f" at {b.put('rate', rate)} deliveries/s"
        if lag is not None:
            text += f"; the generator's own lag p99 {b.put('lag', lag)} ms"
        if cpu is not None:
            text += f", its busiest process at {b.put('cpu', cpu)}% of a core"
        if (cell.data or {}).get("uses_proxy", True):
            text += (". The path it measures includes the aiohttp proxy's passthrough hop, which the direct, "
                     "block-websocket and drop cells go through too: a gateway cell on that path at this load cannot "
                     "measure below this floor. The nginx cells take another path (nginx in place of the aiohttp "
                     "proxy, whose own cost is not in it), so this is no floor for them; they have none of their own "
                     "here")
        else:
            text += (". It went to the reference server with no proxy between: a floor for cells with no proxy; "
                     "every proxied cell also carries its proxy's cost")
        out.append(b.done(text + "."))
    return out


def scaling(results: Results) -> list[Sentence]:
    out: list[Sentence] = []
    loads = results.loads
    if len(loads) < 2:
        return out
    low, high = loads[0], loads[-1]
    seen: list[str] = []
    for cell in results.cells:
        if cell.fault or cell.calibration or cell.key in seen:
            continue
        seen.append(cell.key)
        a, c = results.cell(cell.key, low), results.cell(cell.key, high)
        if not usable(a, c):
            continue
        assert a is not None and c is not None
        b = Builder(f"scaling-{cell.key}", "load")
        ta, tc = a.get("deliver_p99_ms"), c.get("deliver_p99_ms")
        ra, rc = a.get("deliveries_per_s"), c.get("deliveries_per_s")
        if ta is None or tc is None or ta.value <= 0:
            continue
        ul = b.put("low", users_of(a), "int")
        uh = b.put("high", users_of(c), "int")
        text = (f"{a.label}: from {ul} to {uh} users, p99 went from {b.put('p99_low', ta)} to "
                f"{b.put('p99_high', tc)} ms")
        if results.manifest_preset != "quick" and differs(a, c, P99):
            text += f" ({b.derive('p99_x', 'ratio', ['p99_high', 'p99_low'])}×, beyond what the repeats vary by)"
        else:
            text += f" ({no_direction(results.manifest_preset == 'quick')})"
        if ra is not None and rc is not None:
            text += f" while deliveries per second went from {b.put('rate_low', ra)} to {b.put('rate_high', rc)}"
        cpu_a, cpu_c = a.get("gateway_cpu_pct_mean"), c.get("gateway_cpu_pct_mean")
        if cpu_a is not None and cpu_c is not None:
            text += f"; the gateway used {b.put('cpu_low', cpu_a)}% then {b.put('cpu_high', cpu_c)}% of a core"
        out.append(b.done(text + "."))
    return out


RELIABILITY = (("lost", "lost"), ("duplicate", "duplicated"), ("out_of_order", "out-of-order"))


def reliability(results: Results) -> list[Sentence]:
    out: list[Sentence] = []
    metrics = ("deliveries", "lost", "duplicate", "out_of_order", "recovery_gap")
    clean = [c for c in results.cells if not c.fault and c.comparable and all(c.get(m, "total") for m in metrics)]
    if clean:
        b = Builder("reliability-clean", "reliability")
        for i, cell in enumerate(clean):
            for metric in metrics:
                traced = cell.get(metric, "total")
                assert traced is not None
                b.put(f"{metric}_{i}", traced, "int")
        total = {m: b.derive(f"total_{m}", "sum", [f"{m}_{i}" for i in range(len(clean))], "int") for m in metrics}
        text = (f"Across the clean cells ({total['deliveries']} deliveries measured), receivers saw "
                f"{total['lost']} lost, "
                f"{total['duplicate']} duplicated and {total['out_of_order']} out-of-order deliveries and "
                f"{total['recovery_gap']} recovery gaps")
        bad = [c.id for i, c in enumerate(clean) if any(b.value(f"{m}_{i}") > 0 for m in metrics[1:])]
        text += (" (nonzero in " + ", ".join(bad) + ")") if bad else ""
        out.append(b.done(text + "."))
    out += _clean_resumes(results)
    for cell in results.cells:
        if not cell.fault:
            continue
        if not cell.comparable:
            out += _not_compared(f"fault-{cell.id}", "reliability", "under the drop profile", cell)
            continue
        b = Builder(f"fault-{cell.id}", "reliability")
        text = f"{cell.label} at {b.put('users', users_of(cell), 'int')} users"
        cuts = cell.get("proxy_cuts", "total")
        text += (f", the proxy cutting {b.put('cuts', cuts, 'int')} connections" if cuts is not None else "")
        resumes, replayed = cell.get("gateway_resumes", "total"), cell.get("gateway_replayed", "total")
        if resumes is not None and replayed is not None:
            text += (f": {b.put('resumes', resumes, 'int')} sessions resumed and {b.put('replayed', replayed, 'int')} "
                     "events were replayed from the delivery log")
        counts = []
        for metric, words in (*RELIABILITY, ("recovery_gap", "recovery gaps"),
                              ("publish_failures", "failed publishes (in flight when the proxy cut their connection: "
                                                   "the receivers do not count their numbers as lost)")):
            traced = cell.get(metric, "total")
            if traced is not None:
                counts.append(f"{b.put(metric, traced, 'int')} {words}")
        deliveries = cell.get("deliveries", "total")
        if deliveries is not None:
            text += f"; over {b.put('deliveries', deliveries, 'int')} deliveries the load test counted " + \
                ", ".join(counts)
        dropped = cell.get("gateway_dropped", "total")
        if dropped is not None:
            text += f", and the gateway dropped {b.put('dropped', dropped, 'int')} events"
        p99 = cell.get("deliver_p99_ms")
        if p99 is not None:
            text += f"; p99 delivery {b.put('p99', p99)} ms"
        out.append(b.done(text + "."))
    return out


def _clean_resumes(results: Results) -> list[Sentence]:
    """Sessions resumed and events replayed in cells where no proxy cut a connection: in auto's cells,
    its move to WebSocket (the WebSocket leg resumes the SSE + POST session; what was published while
    it moved is replayed from the log); anywhere else, named as unexplained."""
    out: list[Sentence] = []
    for cell in results.cells:
        if cell.fault or not cell.usable:
            continue
        resumes, replayed = cell.get("gateway_resumes", "total"), cell.get("gateway_replayed", "total")
        if resumes is None or replayed is None or (resumes.value <= 0 and replayed.value <= 0):
            continue
        b = Builder(f"resumes-{cell.id}", "reliability")
        text = (f"In {cell.id}, where no proxy cut anything, the gateway counted {b.put('resumes', resumes, 'int')} "
                f"resumed sessions and {b.put('replayed', replayed, 'int')} events replayed from the delivery log")
        moved = cell.get("upgrades_websocket", "total")
        lost, dup = cell.get("lost", "total"), cell.get("duplicate", "total")
        if cell.family == "auto" and moved is not None and moved.value > 0:
            text += (f": {b.put('moved', moved, 'int')} sessions moved from SSE + POST to WebSocket, and each move "
                     "opens the WebSocket leg as a resume of the session (so the resumes are the moves), with the "
                     "events published while a session moved replayed to it from the log")
            if lost is not None and dup is not None:
                text += (f"; receivers counted {b.put('lost', lost, 'int')} lost and {b.put('dup', dup, 'int')} "
                         "duplicated there")
        else:
            text += ": nothing in this cell's recorded counters explains them"
        out.append(b.done(text + "."))
    return out


def caveats(results: Results) -> list[Sentence]:
    out: list[Sentence] = []
    out += _flagged(results, "saturated", "repeats_saturated", "generator_cpu_pct_max",
                    "load_generator_saturated_pct",
                    "The load generator saturated (Locust above {limit}% of a core on average) in ", "%",
                    ": their latencies include the load generator's own queueing, not only the gateway's.")
    out += _flagged(results, "busy", "repeats_busy_machine", "other_cores_mean", "busy_machine_cores",
                    "Other processes kept the machine busy (above {limit} cores on average while the load ran) in ",
                    " cores",
                    ": this machine is shared, so their latencies and CPU shares carry that noise.")
    out += _generator_bound(results)
    out += spread_notes(results)
    out += twins(results)
    out += _unexplained_losses(results)
    broken = [c for c in results.cells if not c.usable]
    if broken:
        b = Builder("not-measured", "caveats")
        out.append(b.done("No numbers for: " + ", ".join(f"{c.id} ({c.status})" for c in broken)
                          + "; the cell table says why."))
    partial = [c for c in results.cells if c.status == "partial"]
    if partial:
        b = Builder("partial", "caveats")
        out.append(b.done("Some repeats failed in " + ", ".join(c.id for c in partial)
                          + "; their numbers come from the repeats that succeeded."))
    return out


def _generator_bound(results: Results) -> list[Sentence]:
    """The cells with generator-bound repeats: how many, whether the cell is kept out of the verdict
    (most of its repeats were) or only those repeats out of its medians, and the largest lag among them."""
    b = Builder("flagged-generator-bound", "caveats")
    parts = []
    for i, cell in enumerate(results.cells):
        k, n = cell.get("repeats_generator_bound", "total"), cell.get("repeats_ok", "total")
        if k is None or n is None or k.value <= 0:
            continue
        lags = [(j, t) for j, r in enumerate((cell.data or {}).get("repeats") or [])
                if r.get("status") == "ok" and (r.get("flags") or {}).get("generator_bound")
                and (t := _repeat_value(cell, j, "derived.generator_lag_p99_ms")) is not None]
        part = f"{cell.id} ({b.put(f'k{i}', k, 'int')} of {b.put(f'n{i}', n, 'int')} repeats"
        if lags:
            part += f", lag p99 up to {b.put(f'lag{i}', max((t for _, t in lags), key=lambda t: t.value))} ms"
        if cell.calibration:
            part += "; a calibration cell"
        elif cell.generator_bound:
            part += "; kept out of the verdict"
        parts.append(part + ")")
    limit = results.manifest_value("thresholds.generator_lag_share")
    if not parts or limit is None:
        return []
    return [b.done(f"Generator-bound repeats (the generator's own lag p99 above {b.put('limit', limit)} of the "
                   "delivery p99, or a generator process above the CPU threshold in manifest.json): a cell where most "
                   "repeats were is kept out of the verdict (its figures, the medians of all its repeats, are in the "
                   "tables only): " + ", ".join(parts)
                   + ". Their latencies are the load generator's as much as the gateway's.")]


def _flagged(results: Results, name: str, count: str, metric: str, threshold: str, head: str, unit: str,
             tail: str) -> list[Sentence]:
    """One sentence listing the cells with flagged repeats: how many, and the median measure that flagged them."""
    b = Builder(f"flagged-{name}", "caveats")
    parts = []
    for i, cell in enumerate(results.cells):
        flagged, repeats, measure = cell.get(count, "total"), cell.get("repeats_ok", "total"), cell.get(metric)
        if flagged is None or flagged.value <= 0 or repeats is None or measure is None:
            continue
        parts.append(f"{cell.id} ({b.put(f'k{i}', flagged, 'int')} of {b.put(f'n{i}', repeats, 'int')} repeats, "
                     f"median {b.put(f'm{i}', measure)}{unit})")
    limit = results.manifest_value(f"thresholds.{threshold}")
    if not parts or limit is None:
        return []
    return [b.done(head.replace("{limit}", b.put("limit", limit)) + ", ".join(parts) + tail)]


DROP_REASONS: dict[str, str] = {
    "socket_closed": "events addressed to a Socket.IO socket that was already closing (users disconnect at the end "
                     "of a run, and on a proxy cut, while others still publish: a resumed session replays them)",
    "slow_consumer": "connections cut as slow consumers (their sessions resume and replay what they missed)",
}


def drops(results: Results) -> list[Sentence]:
    """Every cell where the gateway counted events not delivered live: how many, and why, by its reason label."""
    out: list[Sentence] = []
    for cell in results.cells:
        total = cell.get("gateway_dropped", "total")
        if total is None or total.value <= 0 or cell.data is None:
            continue
        b = Builder(f"drops-{cell.id}", "reliability")
        by_reason: dict[str, list[str]] = {}
        for i, repeat in enumerate(cell.data.get("repeats") or []):
            if repeat.get("status") != "ok":
                continue
            for key, value in (repeat.get("gateway_metrics") or {}).items():
                if key.startswith('gateway_dropped_total{reason="') and value:
                    reason = key.split('"')[1]
                    name = f"{re.sub('[^a-z0-9]', '_', reason.lower())}_{i}"
                    b.put(name, Traced(float(value), cell.file, f"repeats.{i}.gateway_metrics.{key}"), "int")
                    by_reason.setdefault(reason, []).append(name)
        parts = []
        for reason, names in by_reason.items():
            shown = f"{{{names[0]}}}" if len(names) == 1 else b.derive(f"sum_{names[0]}", "sum", names, "int")
            parts.append(f"{shown} {DROP_REASONS.get(reason, f'dropped for the reason {reason!r}')}")
        text = f"In {cell.id} the gateway did not deliver {b.put('total', total, 'int')} events live"
        out.append(b.done(text + (": " + "; ".join(parts) if parts else "") + "."))
    return out


FACTORS: Final = (("derived.generator_lag_p99_ms", "generator lag p99", " ms", "the generator's lag"),
                  ("sampling.generator_cpu_pct_max", "busiest generator process", "% of a core",
                   "the generator's CPU"),
                  ("sampling.cpu_pct.gateway.mean", "gateway", "% of a core", "the gateway's CPU"),
                  ("sampling.cpu_pct.proxy.mean", "proxy", "% of a core", "the proxy's CPU"),
                  ("sampling.other_cores_mean", "other processes", " cores", "the other processes' load"))
NOTABLY: Final = 1.5  # a factor this many times its lowest repeat's value in the slowest repeat: named
OTHER_CORES_STEP: Final = 0.1  # ... and, for the other processes, at least this many cores more


def _repeat_value(cell: CellView, i: int, dotted: str) -> Traced | None:
    try:
        value = lookup_repeat(cell, i, dotted)
    except (KeyError, IndexError, ValueError):
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return Traced(float(value), cell.file, f"repeats.{i}.{dotted}")


def lookup_repeat(cell: CellView, i: int, dotted: str) -> Any:
    data: Any = ((cell.data or {}).get("repeats") or [])[i]
    for step in dotted.split("."):
        data = data[step]
    return data


def spread_notes(results: Results) -> list[Sentence]:
    """Every cell whose repeats' p99 delivery differ by more than ``WIDE``×: each repeat's figure and
    what was recorded beside it, and which of those was notably higher in the slowest repeat."""
    out: list[Sentence] = []
    for cell in (c for c in results.cells if c.usable):
        repeats = [(i, r) for i, r in enumerate((cell.data or {}).get("repeats") or []) if r.get("status") == "ok"]
        p99s = [(i, t) for i, _ in repeats if (t := _repeat_value(cell, i, "requests.deliver.p99_ms")) is not None]
        if len(p99s) < 2:
            continue
        low, high = min(t.value for _, t in p99s), max(t.value for _, t in p99s)
        if low <= 0 or high <= WIDE * low:
            continue
        b = Builder(f"spread-{cell.id}", "caveats")
        slowest = max(p99s, key=lambda item: item[1].value)[0]
        parts = []
        factors: dict[str, list[tuple[int, float]]] = {}
        for i, traced in p99s:
            number = _repeat_value(cell, i, "repeat")
            name = f"repeat {b.put(f'r{i}', number, 'int')}" if number is not None else "a repeat"
            part = f"{name} {b.put(f'p99_{i}', traced)} ms ("
            beside = []
            for j, (key, words, unit, _) in enumerate(FACTORS):
                value = _repeat_value(cell, i, key)
                if value is None:
                    continue
                beside.append(f"{words} {b.put(f'f{j}_{i}', value)}{unit}")
                factors.setdefault(key, []).append((i, value.value))
            part += ", ".join(beside) + ")"
            if (cell.data or {})["repeats"][i].get("flags", {}).get("generator_bound"):
                part += (", generator-bound: not in the median" if _some_free(cell)
                         else ", generator-bound (as every repeat of this cell)")
            parts.append(part)
        text = f"{cell.id}'s repeats differed by more than a factor of two in p99 delivery: " + "; ".join(parts)
        named = []
        for key, _, _, name in FACTORS:
            values = dict(factors.get(key, []))
            if slowest not in values or len(values) < 2:
                continue
            mine, least = values[slowest], min(values.values())
            if mine < max(values.values()) or mine <= NOTABLY * least or \
                    (key == "sampling.other_cores_mean" and mine - least < OTHER_CORES_STEP):
                continue
            named.append(name)
        if named:
            text += (". In the slowest repeat " + _join(named) + (" was" if len(named) == 1 else " were") +
                     " the highest of its repeats, by more than half again: the spread goes with "
                     + ("it" if len(named) == 1 else "them"))
        else:
            text += (". None of the generator's lag, its CPU, the gateway's or the proxy's CPU or the other "
                     "processes' load was notably higher in the slowest repeat: what was recorded does not "
                     "explain the spread")
        out.append(b.done(text + "."))
    return out


def _some_free(cell: CellView) -> bool:
    """Some repeat that succeeded was not generator-bound (so the medians leave the bound ones out)."""
    return any(r.get("status") == "ok" and not (r.get("flags") or {}).get("generator_bound")
               for r in (cell.data or {}).get("repeats") or [])


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# Cells that carry the same traffic along the same path at one load: SSE + POST through the aiohttp
# proxy (its block-websocket profile changes nothing for SSE; auto stays on SSE + POST behind it),
# Socket.IO polling through it, and SSE + POST through nginx.
TWINS: Final = ((("sse-direct", "sse-block", "auto-block"), "the same SSE + POST traffic through the aiohttp proxy"),
                (("sio-polling-direct", "sio-polling-block"), "the same Socket.IO polling traffic through the "
                                                              "aiohttp proxy"),
                (("sse-nginx", "auto-nginx"), "the same SSE + POST traffic through nginx"))
TWIN_GAP: Final = 1.5  # medians this many times apart among twins: named


def twins(results: Results) -> list[Sentence]:
    """Cells of one traffic and path whose p99 medians differ: whether their repeats overlap (then
    it is how far one cell varies here) or not (then what was recorded beside them)."""
    out: list[Sentence] = []
    for users in results.loads:
        for keys, what in TWINS:
            cells = [c for k in keys if (c := results.cell(k, users)) is not None and c.usable
                     and c.get(P99) is not None and _stayed(c)]
            if len(cells) < 2:
                continue
            medians = [c.get(P99) for c in cells]
            values = [t.value for t in medians if t is not None]
            if min(values) <= 0 or max(values) < TWIN_GAP * min(values):
                continue
            b = Builder(f"twins-{cells[0].id}", "caveats")
            listed = []
            single = []
            for i, cell in enumerate(cells):
                lo, hi, t, n = cell.get(P99, "min"), cell.get(P99, "max"), cell.get(P99), cell.get(P99, "n")
                assert lo is not None and hi is not None and t is not None and n is not None
                if n.value < 2:
                    single.append(cell.id)
                    listed.append(f"{cell.id} {b.put(f'm{i}', t)} ms (one repeat counted)")
                else:
                    listed.append(f"{cell.id} {b.put(f'm{i}', t)} ms (repeats {b.put(f'lo{i}', lo)} to "
                                  f"{b.put(f'hi{i}', hi)})")
            text = (f"{_join([c.id for c in cells])} carried {what} at {b.put('users', users_of(cells[0]), 'int')} "
                    "users, yet their p99 medians differ: " + "; ".join(listed))
            apart = [(x, y) for n, x in enumerate(cells) for y in cells[n + 1:] if differs(x, y, P99)]
            if not apart and single:
                text += (f". {_join(single)} {'rests' if len(single) == 1 else 'rest'} on one repeat that was not "
                         "generator-bound, so no difference beyond the repeats' spread can be told here")
            elif not apart:
                text += (". Their repeats overlap, so this is how far one cell's repeats vary on this machine, not a "
                         "difference between the cells")
            else:
                beside = []
                for i, cell in enumerate(cells):
                    lag, gw, px = (cell.get(m) for m in ("generator_lag_p99_ms", "gateway_cpu_pct_mean",
                                                          "proxy_cpu_pct_mean"))
                    if lag is None or gw is None or px is None:
                        continue
                    beside.append(f"{cell.id}: generator lag p99 {b.put(f'lag{i}', lag)} ms, gateway "
                                  f"{b.put(f'gw{i}', gw)}% and proxy {b.put(f'px{i}', px)}% of a core")
                text += (". " + "; ".join(f"{x.id} and {y.id}" for x, y in apart) + " differ beyond their repeats' "
                         "spread, though the path and the traffic are the same; what was recorded beside them (" +
                         "; ".join(beside) + ") does not account for it, so the difference is not attributed: "
                         "read it as what separate runs of one configuration can differ by on this machine")
            out.append(b.done(text + "."))
    return out


def _stayed(cell: CellView) -> bool:
    """An auto cell behind a blocking proxy moved no session to WebSocket (so it is SSE + POST)."""
    if cell.family != "auto":
        return True
    moved = cell.get("upgrades_websocket", "total")
    return moved is not None and moved.value == 0


def _unexplained_losses(results: Results) -> list[Sentence]:
    """Deliveries the load test counted lost where the gateway reported no gap and dropped nothing."""
    b = Builder("losses-without-gaps", "caveats")
    cells = []
    for i, cell in enumerate(c for c in results.cells if c.usable):
        lost, gaps, dropped = (cell.get("lost", "total"), cell.get("gateway_recovery_gaps", "total"),
                               cell.get("gateway_dropped", "total"))
        if lost is None or gaps is None or dropped is None or lost.value <= 0 or gaps.value or dropped.value:
            continue
        cells.append(f"{cell.id} ({b.put(f'lost{i}', lost, 'int')})")
        b.put(f"gaps{i}", gaps, "int")
        b.put(f"dropped{i}", dropped, "int")
    if not cells:
        return []
    names = [n for n in b.sentence.values if n.startswith("gaps")] + \
        [n for n in b.sentence.values if n.startswith("dropped")]
    total = b.derive("gateway_total", "sum", names, "int")
    return [b.done(
        "The load test counted deliveries as lost in " + ", ".join(cells) + f" while the gateway reported "
        f"{total} recovery gaps and drops there: these losses are not explained by the gateway's own counters. "
        "Each receiver checks every other sender's sequence numbers (its own are not delivered back), so a "
        "sequence number that never arrived is a message the gateway acknowledged and did not deliver, or one "
        "whose publish the sender could not confirm; the cell's Locust failures CSV lists them."
    )]


def _not_compared(sentence_id: str, section: str, where: str, *cells: CellView | None) -> list[Sentence]:
    """Why a comparison has no numbers; nothing when none of its cells was part of the run."""
    if all(c is None for c in cells):
        return []
    states = [f"{c.id} is {'generator-bound' if c.usable else c.status}" for c in cells
              if c is not None and not c.comparable]
    if any(c is None for c in cells):
        states.append("the other cell was not part of this run")
    return [Builder(sentence_id, section).done(f"No comparison {where}: {', '.join(states)}.")]


# -- all of it -------------------------------------------------------------------------

SECTIONS: dict[str, str] = {
    "capacity": "Capacity: the most one gateway process served in steady state within the p99 bound, and what "
                "ended each ladder",
    "verdict": "Verdict",
    "floor": "The load generator's floor (calibration against reference servers)",
    "conditions": "When each transport wins",
    "load": "Under more load",
    "reliability": "Reliability",
    "q1": "When to leave Socket.IO for a native transport?",
    "q2": "How is at-least-once built on acknowledgements here?",
    "q3": "When does a namespace beat a separate server?",
    "caveats": "Caveats",
}


def build(results: Results) -> list[Sentence]:
    sentences: list[Sentence] = smoke(results) + capacity(results)
    steps: list[Callable[[Results, int], list[Sentence]]] = [blocked, nginx, direct, fallback, auto]
    for users in reversed(results.loads):  # the heaviest load first: that is where transports differ
        for step in steps:
            sentences += step(results, users)
    if results.manifest_preset != "quick":  # a smoke test names no winner
        sentences += winners(results)
    sentences += floor(results)
    sentences += scaling(results)
    sentences += reliability(results)
    sentences += drops(results)
    sentences += caveats(results)
    sentences += questions(results)
    return sentences


