"""``python -m comparison bench --profile c100k``: 100,000 connections on one server process.

For each server (``--servers``) and each connection count (``--connections``, default
100,000), a fresh server pinned to one core and a fresh generator pinned to the other
(``python -m comparison.bench.c100k`` reading its request on stdin, as ``generator.py``).
The generator runs three phases, each bounded in time:

1. **storm**: the publisher connects, then ``in_flight`` handshakes at a time (a new one as
   soon as one ends) until every connection is open, the time budget is spent, the server
   passes ``rss_limit`` or ``failure_limit`` handshakes failed; sessions/s accepted, failures
   by reason, and the count every second;
2. **idle hold** for ``hold_seconds`` (at least two ping intervals): the server's RSS, total
   and per connection; per connection the longest silence (nothing read: pings are all an
   idle connection gets); a ``GET`` every 100 ms measures how long the server's loop stalls;
3. **room of all**: every connection joined room ``bench`` at its handshake; ``events``
   publishes, one a second; per event the latency of every subscriber (p50/p99/max), then
   the spread across events, losses, server and generator CPU per delivery.

What the generator needs to hold that many: file descriptors (RLIMIT_NOFILE, raised here for
every child), ephemeral ports (each source address has 28,232 on a default
``ip_local_port_range``: the connections are spread over 127.0.0.2, .3, ...), and the
kernel tables it checks and records (``fs.nr_open``, ``nf_conntrack_max`` and others).
One generator process holds them all: a connection costs it ~2 KB and its pings a
``data_received`` call; a second process on the same core would add nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import gc
import json
import math
import os
import resource
import shlex
import signal
import statistics
import sys
import time
import traceback
from array import array
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from ..children import load_limits
from .client_socketio import SioWs, open_ws
from .client_sse import SseStream, open_session
from .connection import Conn, HttpPool
from .generator import Meter, Run, Spec, log, raise_fd_limit
from .machine import describe, machine_info
from .runner import Config, run_generator, wait_quiet
from .servers import (
    HOST,
    ROOT,
    SERVERS,
    ServerProcess,
    ServerStartError,
    kill_all,
    node_available,
)
from .sink import Track, percentiles
from .wire import ProtocolError, http_request

NAMESPACE: Final = "/bench"  # the gateway's load namespace: no presence announcements on a join storm
DEFAULT_SERVERS: Final = ("gateway-sse", "node-socketio-ws")
SYSCTLS: Final = (
    "fs.nr_open", "fs.file-max", "net.ipv4.ip_local_port_range", "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog", "net.netfilter.nf_conntrack_max", "net.ipv4.tcp_mem",
)
PORT_SHARE: Final = 0.8  # of an address's ephemeral ports the generator plans to use
LATE: Final = 1.5  # a silence longer than this many ping intervals is a late (or missing) ping


@dataclass(frozen=True)
class Profile:
    """What a c100k generator run does beyond the ``generator.Spec`` it shares with the fan-out runs."""

    addresses: list[str]  # source addresses, in turn
    # After the storm, in this order; "idle" may come twice: after a room event every stream was
    # written at the same moment, so their pings all come due in the same pinger round.
    phases: list[str] = field(default_factory=lambda: ["idle", "room", "idle"])
    in_flight: int = 256  # handshakes at once
    storm_budget: float = 300.0
    rss_limit: int = 12 * 2**30  # the storm stops once the server passes this many bytes
    failure_limit: int = 1000  # ... or once this many handshakes failed
    ping_interval: float = 5.0
    hold_seconds: float = 12.5
    events: int = 10
    event_interval: float = 1.0
    room_drain: float = 60.0
    probe_path: str = "/healthz"


class Watch(Conn):
    """A connection that notes when it reads: the longest silence since ``watch_from``."""

    last_read = 0
    longest = 0
    reads = 0

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if now - self.last_read > self.longest:
            self.longest = now - self.last_read
        self.last_read = now
        self.reads += 1
        super().data_received(data)

    def watch_from(self, t_ns: int) -> None:
        self.last_read, self.longest, self.reads = t_ns, 0, 0

    def silence(self, t_ns: int) -> int:
        """The longest silence up to ``t_ns``, the one still going on included."""
        return max(self.longest, t_ns - self.last_read)


class WatchedSse(Watch, SseStream):
    pass


class WatchedWs(Watch, SioWs):
    pass


class Probe:
    """A ``GET`` every ``period`` on one keep-alive connection: how long the server's loop
    stalls (plus the generator's own, which the phase's generator CPU shows)."""

    def __init__(self, spec: Spec, path: str, period: float = 0.1) -> None:
        self.spec, self.period = spec, period
        self.request = http_request("GET", path, f"{spec.host}:{spec.port}")
        self.samples = array("q")
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Probe:
        pool = await HttpPool(self.spec.host, self.spec.port, 1).open()
        self.task = asyncio.create_task(self._loop(pool))
        return self

    async def _loop(self, pool: HttpPool) -> None:
        try:
            while True:
                t = time.monotonic_ns()
                async with asyncio.timeout(60):
                    await pool.request(self.request)
                self.samples.append(time.monotonic_ns() - t)
                await asyncio.sleep(self.period)
        finally:
            pool.close()

    async def stop(self) -> dict[str, Any]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        return {"samples": len(self.samples), "round_trip_ms": percentiles(self.samples)}


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:100]}"


class C100kRun(Run):
    """``generator.Run`` with the three phases of this profile instead of its fan-out phases."""

    def __init__(self, spec: Spec, profile: Profile) -> None:
        super().__init__(spec)
        self.profile = profile
        self.result["profile"] = asdict(profile)

    # -- 1: the storm --------------------------------------------------------------------

    def _open(self, i: int, track: Track, pool: HttpPool | None) -> Awaitable[Conn]:
        s, local = self.spec, self.profile.addresses[i % len(self.profile.addresses)]
        if pool is not None:
            return open_session(s.host, s.port, s.namespace, s.room, pool, track, stream_class=WatchedSse, local=local)
        return open_ws(s.host, s.port, s.namespace, s.room, track, conn_class=WatchedWs, local=local)

    async def storm(self) -> None:
        spec, prof = self.spec, self.profile
        async with asyncio.timeout(30):
            await self.publisher.open()
        await asyncio.sleep(spec.settle_seconds)
        rss0 = self.server.memory_info().rss
        # SSE joins go through a keep-alive pool from 127.0.0.1: one POST each, the streams stay.
        pool = await HttpPool(spec.host, spec.port, min(32, prof.in_flight)).open() if spec.client == "sse" else None
        errors: collections.Counter[str] = collections.Counter()
        taken = 0
        stop: str | None = None
        timeline: list[int] = []
        meter = Meter(self.server, self.me, self.sink)
        started = time.monotonic()

        async def worker() -> None:
            nonlocal taken
            while stop is None and taken < spec.n:
                i, taken = taken, taken + 1
                track = Track(self.sink)
                try:
                    async with asyncio.timeout(spec.connect_timeout):
                        conn = await self._open(i, track, pool)
                except (OSError, ConnectionError, TimeoutError, ProtocolError) as exc:
                    errors[_reason(exc)] += 1
                    continue
                self.subscribers.append((conn, track))

        async def watch() -> None:
            nonlocal stop
            while True:
                await asyncio.sleep(1.0)
                timeline.append(len(self.subscribers))
                if time.monotonic() - started > prof.storm_budget:
                    stop = f"time budget of {prof.storm_budget:g} s spent"
                elif self.server.memory_info().rss > prof.rss_limit:
                    stop = f"server RSS over {prof.rss_limit / 2**30:g} GiB"
                elif sum(errors.values()) >= prof.failure_limit:
                    stop = f"{prof.failure_limit} handshakes failed"
                if stop is not None:
                    log(spec, f"storm stopped: {stop}")
                    return
                if len(timeline) % 10 == 0:
                    log(spec, f"{len(self.subscribers):,} connected after {len(timeline)} s")

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(worker() for _ in range(prof.in_flight)))
        finally:
            watcher.cancel()
            if pool is not None:
                pool.close()
        took = time.monotonic() - started
        cost = meter.read()
        connected = len(self.subscribers)
        log(spec, f"storm: {connected:,}/{spec.n:,} in {took:.1f} s ({connected / took:,.0f}/s)"
                  + (f"; failures: {dict(errors.most_common(3))}" if errors else ""))
        await asyncio.sleep(spec.settle_seconds)
        rss = self.server.memory_info().rss
        self.result["storm"] = {
            "target": spec.n,
            "connected": connected,
            "failed": sum(errors.values()),
            "errors": dict(errors.most_common(8)),
            "stopped": stop,
            "seconds": took,
            "per_s": connected / took if took > 0 else 0.0,
            "connected_each_second": timeline,
            "in_flight": prof.in_flight,
            "server_cpu_util": cost["server_cpu_util"],
            "generator_cpu_util": cost["generator_cpu_util"],
            "other_cpu_util": cost["other_cpu_util"],
        }
        self.result["memory"] = {
            "rss_base_bytes": rss0,
            "rss_bytes": rss,
            "rss_per_connection_bytes": (rss - rss0) / connected if connected else None,
        }
        self.result["generator_needs"] = self.needs()
        if not connected:
            raise ConnectionError(f"no connection opened: {dict(errors.most_common(3))}")

    def needs(self) -> dict[str, Any]:
        """What this process holds now: descriptors (and its limit), connections per source address."""
        per_address = collections.Counter(
            conn.transport.get_extra_info("sockname")[0]
            for conn, _ in self.subscribers if conn.transport is not None and conn.ended is None
        )
        return {
            "open_fds": len(os.listdir("/proc/self/fd")),
            "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "connections_per_source_address": dict(sorted(per_address.items())),
            "rss_bytes": self.me.memory_info().rss,
        }

    # -- 2: the idle hold ----------------------------------------------------------------

    async def hold(self, key: str) -> None:
        prof = self.profile
        live = [conn for conn, _ in self.subscribers if isinstance(conn, Watch) and conn.ended is None]
        t0 = time.monotonic_ns()
        for conn in live:
            conn.watch_from(t0)
        meter = Meter(self.server, self.me, self.sink)
        probe = await Probe(self.spec, prof.probe_path).start()
        await asyncio.sleep(prof.hold_seconds)
        probed = await probe.stop()
        t1 = time.monotonic_ns()
        cost = meter.read()
        held = [conn for conn in live if conn.ended is None]
        silences = array("q", (conn.silence(t1) for conn in held))
        late = LATE * prof.ping_interval * 1e9
        rss = self.server.memory_info().rss
        base = self.result["memory"]["rss_base_bytes"]
        self.result[key] = idle = {
            "seconds": (t1 - t0) / 1e9,
            "ping_interval_s": prof.ping_interval,
            "held": len(held),
            "dropped": len(live) - len(held),
            "late_after_s": LATE * prof.ping_interval,
            "late": sum(1 for s in silences if s > late),
            "without_a_read": sum(1 for conn in held if not conn.reads),
            "longest_silence_s": {k: v / 1e3 for k, v in percentiles(silences).items()},
            "rss_end_bytes": rss,
            "rss_end_per_connection_bytes": (rss - base) / len(held) if held else None,
            "probe": probed,
            "server_cpu_util": cost["server_cpu_util"],
            "generator_cpu_util": cost["generator_cpu_util"],
            "other_cpu_util": cost["other_cpu_util"],
        }
        log(self.spec, f"{key} {idle['seconds']:.1f} s: {len(held):,} held, RSS {rss / 2**20:,.0f} MiB, "
                       f"{idle['late']} late, {idle['without_a_read']} without a ping, longest silence max "
                       f"{idle['longest_silence_s'].get('max', 0):.2f} s, probe max "
                       f"{probed['round_trip_ms'].get('max', 0):.1f} ms, server CPU {cost['server_cpu_util']:.0%}")

    # -- 3: the room of all --------------------------------------------------------------

    async def room(self) -> None:
        spec, prof, pub = self.spec, self.profile, self.publisher
        receivers = self.receivers()
        acked_before = len(pub.acked)
        meter = Meter(self.server, self.me, self.sink)
        probe = await Probe(spec, prof.probe_path).start()
        events = []
        start = time.monotonic() + 0.01
        for i in range(prof.events):
            await asyncio.sleep(max(0.0, start + i * prof.event_interval - time.monotonic()))
            phase = self.sink.begin(f"event {i + 1}", pub.next_seq)
            if not pub.publish(time.monotonic_ns()):
                break
            events.append(phase)
        deadline = time.monotonic() + prof.room_drain
        drained = False
        while time.monotonic() < deadline:
            expected = (len(pub.acked) - acked_before) * self.receivers()
            if pub.inflight == 0 and sum(p.deliveries for p in events) >= expected:
                drained = True
                break
            await asyncio.sleep(0.01)
        probed = await probe.stop()
        cost = meter.read()
        per_event = [{"deliveries": p.deliveries, "latency_ms": percentiles(p.latencies, (50, 99))} for p in events]
        lats: list[dict[str, float]] = [e["latency_ms"] for e in per_event if e["latency_ms"]]  # type: ignore[misc]
        deliveries = int(cost["deliveries"] or 0)
        wall = float(cost["wall_s"] or 0.0)
        self.result["room"] = {
            "receivers": receivers,
            "events": len(events),
            "acked": len(pub.acked) - acked_before,
            "drained": drained,
            "deliveries": deliveries,
            "per_event": per_event,
            "across_events_ms": {
                key: {"min": min(e[key] for e in lats), "median": statistics.median(e[key] for e in lats),
                      "max": max(e[key] for e in lats)}
                for key in ("p50", "p99", "max")
            } if lats else {},
            "server_cpu_us_per_delivery": (cost["server_cpu_s"] or 0.0) * 1e6 / deliveries if deliveries else None,
            "generator_cpu_us_per_delivery": (
                (cost["generator_cpu_util"] or 0.0) * wall * 1e6 / deliveries if deliveries else None),
            "server_cpu_util": cost["server_cpu_util"],
            "generator_cpu_util": cost["generator_cpu_util"],
            "other_cpu_util": cost["other_cpu_util"],
            "probe": probed,
        }
        across = self.result["room"]["across_events_ms"]
        log(spec, f"room: {len(events)} events to {receivers:,}, drained {drained}, last subscriber "
                  f"(worst event) {across.get('max', {}).get('max', 0):.0f} ms, median event p50 "
                  f"{across.get('p50', {}).get('median', 0):.0f} ms, server CPU {cost['server_cpu_util']:.0%}")

    async def run_profile(self) -> dict[str, Any]:
        phases = self.profile.phases
        try:
            await self.storm()
            for phase in phases:
                if phase == "room":
                    await self.room()
                else:
                    await self.hold("idle_after_room" if "room" in self.result else "idle")
            self.result["status"] = "ok"
        except Exception as exc:  # reported in the result, with whatever was measured
            self.result["status"] = "error"
            self.result["error"] = _reason(exc)
            self.result["traceback"] = traceback.format_exc(limit=-4)
            log(self.spec, f"error: {self.result['error']}")
        finally:
            self.result["loss"] = self.losses()
            self.result["rss_end_bytes"] = self.server.memory_info().rss if self.server.is_running() else None
            for conn, _ in self.subscribers:
                conn.close()
            self.publisher.close()
        return self.result


def generator_main() -> None:
    import uvloop

    request = json.load(sys.stdin)
    spec, profile = Spec(**request["spec"]), Profile(**request["profile"])
    raise_fd_limit()
    # Everything this bounded run creates lives until its end: the collector has nothing to free,
    # and each full pass would walk every connection's objects in the middle of a measurement.
    gc.disable()
    json.dump(uvloop.run(C100kRun(spec, profile).run_profile()), sys.stdout)
    sys.stdout.write("\n")


# -- the driver --------------------------------------------------------------------------


def sysctls() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in SYSCTLS:
        try:
            found[name] = " ".join(Path("/proc/sys", *name.split(".")).read_text().split())
        except OSError:
            found[name] = None
    return found


def source_addresses(n: int, port_range: str | None) -> list[str]:
    """Enough loopback source addresses that no one of them uses more than ``PORT_SHARE`` of
    its ephemeral ports (127.0.0.2 onwards; 127.0.0.1 is left to the rest of the machine)."""
    low, high = (int(v) for v in (port_range or "32768 60999").split())
    per_address = int((high - low + 1) * PORT_SHARE)
    return [f"127.0.0.{2 + i}" for i in range(max(1, math.ceil(n / per_address)))]


def raise_nofile() -> tuple[list[int], str | None]:
    """RLIMIT_NOFILE of this process (and so of every server and generator it starts) to
    ``fs.nr_open``, the kernel's ceiling; else the soft limit to the hard one, and why.

    Raising the hard limit takes CAP_SYS_RESOURCE, which root in a container may lack: the
    hard limit it inherited is then the most connections one process can hold."""
    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    error = None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, ceiling))
    except (ValueError, OSError) as exc:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        error = f"hard limit not raised to {ceiling}: {exc} (CAP_SYS_RESOURCE)"
    return list(resource.getrlimit(resource.RLIMIT_NOFILE)), error


@dataclass(frozen=True)
class Options:
    servers: list[str]
    connections: list[int]
    profile: Profile
    server_cpu: int = 0
    generator_cpu: int = 1
    connect_timeout: float = 30.0
    quiet_wait: float = 20.0


def run_one(options: Options, name: str, n: int) -> dict[str, Any]:
    kind = SERVERS[name]
    if kind.needs_node and not node_available():
        return {"status": "skipped", "server": {"name": name}, "n": n, "reason": "node or node_modules/socket.io not found"}
    print(f"{name} N={n:,}", file=sys.stderr, flush=True)
    quiet = wait_quiet(Config(servers=[name], ns=[n], quiet_wait=options.quiet_wait)) if options.quiet_wait > 0 else {}
    prof = options.profile
    interval = str(prof.ping_interval)
    env = ({"GATEWAY_BROKER": "memory", "GATEWAY_PING_INTERVAL": interval, **load_limits()} if kind.family == "gateway"
           else {"BENCH_PING_INTERVAL_MS": str(round(prof.ping_interval * 1000))})
    probe_path = "/healthz" if kind.family == "gateway" else kind.ready_path
    try:
        with ServerProcess(kind, options.server_cpu, env=env) as server:
            spec = Spec(client=kind.client, port=server.port, server_pid=server.pid, n=n, namespace=NAMESPACE,
                        connect_timeout=options.connect_timeout, label=name)
            request = {"spec": asdict(spec), "profile": asdict(Profile(**{**asdict(prof), "probe_path": probe_path}))}
            budget = (prof.storm_budget + prof.hold_seconds + prof.events * prof.event_interval + prof.room_drain
                      + options.connect_timeout + 120)
            result = _generate(options, request, server.env["PYTHONPATH"], budget)
            if result.get("status") != "ok":
                result["server_stderr"] = server.errors()
            result["server"] = {"name": name, "family": kind.family, "client": kind.client, "argv": server.argv,
                                "pid": server.pid, "port": server.port, "env": env}
            result["before"] = quiet
            return result
    except ServerStartError as exc:
        return {"status": "error", "server": {"name": name}, "n": n, "error": str(exc)}


def _generate(options: Options, request: dict[str, Any], pythonpath: str, budget: float) -> dict[str, Any]:
    return run_generator("comparison.bench.c100k", options.generator_cpu, request, pythonpath, budget)


# -- the report --------------------------------------------------------------------------


def _pings(idle: dict[str, Any] | None) -> str:
    if not idle:
        return "–"
    silence = idle["longest_silence_s"].get("max", 0.0)
    probe = idle["probe"]["round_trip_ms"].get("max", 0.0)
    return f"{idle['late']:,} / {idle['without_a_read']:,}; {silence:.2f} s; {probe:,.0f} ms"


def _across(room: dict[str, Any], key: str) -> str:
    spread = room.get("across_events_ms", {}).get(key)
    return f"{spread['median']:,.0f} ({spread['min']:,.0f}–{spread['max']:,.0f})" if spread else "–"


def markdown(doc: dict[str, Any]) -> str:
    """Two tables: connections (storm, memory, pings) and the room of all."""
    needs = doc["needs"]
    lines = [
        f"100,000 connections on one process: {describe(doc['machine'])}",
        "",
        f"RLIMIT_NOFILE {needs['rlimit_nofile']}" + (f" ({needs['rlimit_error']})" if needs.get("rlimit_error") else "")
        + f"; source addresses {', '.join(needs['source_addresses'])}; "
        + "; ".join(f"{k} {v}" for k, v in needs["sysctls"].items()),
        "",
        "| server | N | connected | storm sessions/s | server / generator CPU | sessions per server CPU-s | failed "
        "| RSS | RSS / conn | idle: late / no ping; longest silence; probe max | after the room: the same |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rooms = []
    for run in doc["runs"]:
        name, storm = run["server"]["name"], run.get("storm")
        if storm is None:
            lines.append(f"| {name} | {run.get('n', '')} | {run.get('status')}: "
                         f"{run.get('error') or run.get('reason')} |" + " |" * 8)
            continue
        failed = f"{storm['failed']:,}" + (f" ({'; '.join(storm['errors'])})" if storm["errors"] else "")
        idle, memory = run.get("idle", {}), run["memory"]
        rss = idle.get("rss_end_bytes", memory["rss_bytes"])
        per_conn = idle.get("rss_end_per_connection_bytes") or memory["rss_per_connection_bytes"] or 0.0
        lines.append(
            f"| {name} | {storm['target']:,} | {storm['connected']:,}"
            + (f" (stopped: {storm['stopped']})" if storm["stopped"] else "")
            + f" | {storm['per_s']:,.0f} | {storm['server_cpu_util']:.0%} / {storm['generator_cpu_util']:.0%} | "
            + (f"{storm['per_s'] / storm['server_cpu_util']:,.0f}" if storm["server_cpu_util"] else "–")
            + f" | {failed} | {rss / 2**20:,.0f} MiB | {per_conn / 1024:.1f} KB | "
            + f"{_pings(run.get('idle'))} | {_pings(run.get('idle_after_room'))} |"
        )
        if run.get("room"):
            rooms.append((name, run))
    if rooms:
        lines += [
            "",
            "| server | subscribers | events | p50 ms: median event (min–max) | p99 ms | last subscriber ms | "
            "lost | server µs / delivery | generator µs / delivery |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, run in rooms:
            room = run["room"]
            server_us, gen_us = room["server_cpu_us_per_delivery"], room["generator_cpu_us_per_delivery"]
            lines.append(
                f"| {name} | {room['receivers']:,} | {room['events']} | {_across(room, 'p50')} | "
                f"{_across(room, 'p99')} | {_across(room, 'max')} | {run['loss']['lost']:,} | "
                + (f"{server_us:.1f}" if server_us else "–") + " | " + (f"{gen_us:.1f}" if gen_us else "–") + " |"
            )
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------


def _ints(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m comparison bench --profile c100k",
        description="100,000 connections on one server process: connect storm, idle hold with pings, "
                    "one room of all of them (see comparison/bench/c100k.py).",
    )
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                   help=f"comma-separated, SSE or Socket.IO WebSocket ones (default {','.join(DEFAULT_SERVERS)})")
    p.add_argument("--connections", type=_ints, default=[100_000], help="connection counts, in turn (100000)")
    p.add_argument("--phases", default="idle,room,idle",
                   help="after the storm, in order: idle (a hold) and room; idle,room,idle by default")
    p.add_argument("--in-flight", type=int, default=256, help="handshakes at once (256)")
    p.add_argument("--addresses", type=int, default=None,
                   help="source addresses 127.0.0.2... (default: enough for the ephemeral port range)")
    p.add_argument("--storm-budget", type=float, default=300.0, help="seconds the storm may take (300)")
    p.add_argument("--rss-limit-gib", type=float, default=12.0, help="stop the storm past this server RSS (12)")
    p.add_argument("--ping-interval", type=float, default=5.0,
                   help="the servers' ping interval for the run, seconds (5; GATEWAY_PING_INTERVAL)")
    p.add_argument("--hold", type=float, default=None, help="idle hold, seconds (default 2.5 ping intervals)")
    p.add_argument("--events", type=int, default=10, help="room events, one a second (10)")
    p.add_argument("--room-drain", type=float, default=60.0, help="seconds for the last event to arrive (60)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--generator-cpu", type=int, default=1)
    p.add_argument("--quiet-wait", type=float, default=20.0, help="wait for the machine to go idle first (20 s)")
    p.add_argument("--out", type=Path, default=None, help="JSON (default results/bench/c100k-<timestamp>.json)")
    return p


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    wrong = [s for s in servers if s not in SERVERS or SERVERS[s].client not in ("sse", "sio-ws") or SERVERS[s].nodes > 1]
    if wrong:
        raise SystemExit(f"--profile c100k: not an SSE or Socket.IO WebSocket server of one node: {', '.join(wrong)}")
    limits, limits_error = raise_nofile()
    if limits_error:
        print(f"RLIMIT_NOFILE: {limits_error}; one process holds fewer than {limits[1]:,} connections",
              file=sys.stderr)
    found = sysctls()
    addresses = source_addresses(max(args.connections), found["net.ipv4.ip_local_port_range"])
    if args.addresses:
        addresses = [f"127.0.0.{2 + i}" for i in range(args.addresses)]
    phases = [p.strip() for p in args.phases.split(",") if p.strip() in ("idle", "room")]
    profile = Profile(
        addresses=addresses, phases=phases, in_flight=args.in_flight, storm_budget=args.storm_budget,
        rss_limit=int(args.rss_limit_gib * 2**30), ping_interval=args.ping_interval,
        hold_seconds=args.hold or 2.5 * args.ping_interval, events=args.events, room_drain=args.room_drain,
    )
    options = Options(servers=servers, connections=args.connections, profile=profile, server_cpu=args.server_cpu,
                      generator_cpu=args.generator_cpu, quiet_wait=args.quiet_wait)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "results" / "bench" / f"c100k-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "comparison", "bench", "--profile", "c100k", *argv]),
        "cwd": str(ROOT),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "needs": {"rlimit_nofile": limits, "rlimit_error": limits_error, "sysctls": found, "source_addresses": addresses, "host": HOST},
        "options": asdict(options),
        "runs": [],
    }
    signal.signal(signal.SIGTERM, _terminated)
    try:
        for n in args.connections:
            for name in servers:
                doc["runs"].append(run_one(options, name, n))
                out.write_text(json.dumps(doc, indent=1))
    finally:
        kill_all()
    doc["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(doc, indent=1))
    print(markdown(doc))
    print(f"results: {out}", file=sys.stderr)
    return 0 if all(r.get("status") in ("ok", "skipped") for r in doc["runs"]) else 1


if __name__ == "__main__":
    generator_main()
