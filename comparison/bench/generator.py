"""The load generator: one process on its own core, driving one server with N subscribers.

``python -m comparison.bench.generator < spec.json`` prints one JSON object (the result)
on stdout; progress goes to stderr. The runner starts it under ``taskset`` for every
(server, N) pair, so each run starts from a clean process.

A run, in order, each step bounded in count and time:

1. the publisher connects and joins; after a settle, the server's RSS is the baseline;
2. N subscribers connect and join, ``connect_concurrency`` at a time; after a settle,
   ``(RSS - baseline) / N`` is the memory per idle connection;
3. open-loop phases, one per rate: publishes go out on a fixed schedule and carry their
   *scheduled* time, so a publisher or server that falls behind shows as latency; the
   phase then drains (every acknowledged publish delivered to every live subscriber);
   once a phase saturates (no drain, or p99 over a bound) the higher rates are skipped;
4. closed-loop phases, one per window: as many publishes as that many unacknowledged ones
   and a bound on undelivered ones allow; deliveries per second are read after a warm-up;
   each phase drains before the next;
5. a last drain, then every subscriber's losses and duplicates against the acked seqs.

Server CPU (``psutil`` ``cpu_times`` of its pid, user + system) and this process's CPU are
read at the edges of every phase.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

import psutil

from .client_socketio import SioPublisher, open_polling, open_ws
from .client_sse import SsePublisher, open_session
from .connection import Conn, HttpPool
from .csink import CompilerMissing, KernelSink
from .publisher import Publisher
from .sink import Phase, Sink, Track, percentiles
from .wire import ProtocolError

CLIENTS = ("sse", "sio-ws", "sio-polling")
C_SINK_CLIENTS = ("sse", "sio-ws")  # their subscribers can be read by the C loop (csink)
GENERATOR_SATURATED = 0.85  # of one core: above this, the figures may be the generator's
NOISY = 0.15  # cores busy with something else than the server and the generator: figures suspect


@dataclass(frozen=True)
class Spec:
    client: str  # one of CLIENTS
    port: int
    server_pid: int
    n: int
    rates: list[float] = field(default_factory=lambda: [5.0, 20.0, 50.0])  # publishes/s
    phase_seconds: float = 6.0
    min_messages: int = 10
    saturation_seconds: float = 8.0
    # The closed loop, once per window of unacknowledged publishes: 1 is one publish at a time
    # (latency without queueing), 16 keeps the server busy (throughput).
    windows: list[int] = field(default_factory=lambda: [1, 4, 16])
    max_outstanding: int = 10_000  # undelivered deliveries in the closed loop (at least 4 publishes' worth)
    connect_concurrency: int = 100
    connect_timeout: float = 20.0  # per subscriber
    connect_budget: float = 180.0  # for all of them
    drain_timeout: float = 10.0
    saturated_p99_ms: float = 1000.0
    settle_seconds: float = 1.0
    publisher_pool: int = 16  # SSE: keep-alive connections the publisher POSTs through
    host: str = "127.0.0.1"
    namespace: str = "/chat"
    room: str = "bench"
    label: str = ""
    # Scale-out variants: subscribers connect round-robin to these ports (default: [port]; the
    # publisher always uses ``port``); CPU and RSS are summed over these pids (default: [server_pid]);
    # the broker's CPU (a system redis-server, not pinned) is read separately.
    sub_ports: list[int] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    redis_pid: int | None = None
    sink: str = "c"  # "c": subscribers read by csink's C loop (sse, sio-ws); "python": by their protocols
    latency_sample: int = 8  # C sink: every latency_sample-th subscriber gives latency, the others only count


def log(spec: Spec, message: str) -> None:
    print(f"  [{spec.label or spec.client} N={spec.n}] {message}", file=sys.stderr, flush=True)


class Nodes:
    """The server's processes (one, or every node of a scale-out variant) as one: the few
    ``psutil.Process`` methods the generator uses, summed (CPU, RSS) or merged (affinity)."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]

    def cpu_times(self) -> SimpleNamespace:
        times = [p.cpu_times() for p in self.procs]
        return SimpleNamespace(user=sum(t.user for t in times), system=sum(t.system for t in times))

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=sum(p.memory_info().rss for p in self.procs))

    def cpu_affinity(self) -> list[int]:
        return sorted({cpu for p in self.procs for cpu in p.cpu_affinity()})

    def is_running(self) -> bool:
        return all(p.is_running() for p in self.procs)


def cpu_seconds(process: psutil.Process | Nodes) -> float:
    times = process.cpu_times()
    return times.user + times.system


def core_seconds(cpus: tuple[int, ...]) -> tuple[float, float, float]:
    """On ``cpus``: seconds busy (anything but idle), in interrupts (irq + softirq: on
    loopback, mostly the kernel moving the benchmark's own packets) and stolen by the
    hypervisor."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = irq = steal = 0.0
    for cpu in cpus:
        t = per_cpu[cpu]
        busy += sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        irq += getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        steal += getattr(t, "steal", 0.0)
    return busy, irq, steal


class Meter:
    """Server and generator CPU, wall time and deliveries between two points of a run.

    The two cores' time is split too: ``irq_util`` (interrupts and softirqs, which on
    loopback is mostly the kernel carrying the benchmark's own traffic), ``steal_util``
    (the hypervisor) and ``other_cpu_util``, what other processes used (in cores): a
    benchmark sharing its machine shows it there instead of in unexplained figures.
    """

    def __init__(self, server: Nodes, me: psutil.Process, sink: Sink, phase: Phase | None = None,
                 broker: psutil.Process | None = None) -> None:
        self.server, self.me, self.sink, self.phase, self.broker = server, me, sink, phase, broker
        sink.sync()
        self.cpus = tuple(sorted({*server.cpu_affinity(), *me.cpu_affinity()}))
        self.broker_cpu = self._broker_seconds()
        self.server_cpu = cpu_seconds(server)
        self.my_cpu = cpu_seconds(me)
        self.cores = core_seconds(self.cpus)
        self.wall = time.monotonic()
        self.deliveries = phase.deliveries if phase is not None else sink.delivered

    def _broker_seconds(self) -> float:
        try:
            return cpu_seconds(self.broker) if self.broker is not None else 0.0
        except psutil.Error:
            return 0.0

    def read(self) -> dict[str, float | None]:
        self.sink.sync()
        wall = time.monotonic() - self.wall
        deliveries = (self.phase.deliveries if self.phase is not None else self.sink.delivered) - self.deliveries
        server_cpu = cpu_seconds(self.server) - self.server_cpu
        my_cpu = cpu_seconds(self.me) - self.my_cpu
        busy, irq, steal = (now - before for now, before in zip(core_seconds(self.cpus), self.cores, strict=True))
        # redis-server is not pinned: on a two-core machine it runs on the two cores, so it is
        # taken out of "other load" and reported on its own.
        broker_cpu = self._broker_seconds() - self.broker_cpu
        other = max(0.0, busy - irq - steal - server_cpu - my_cpu - broker_cpu)
        return {
            "wall_s": wall,
            "deliveries": deliveries,
            "deliveries_per_s": deliveries / wall if wall > 0 else 0.0,
            "server_cpu_s": server_cpu,
            "server_cpu_util": server_cpu / wall if wall > 0 else 0.0,
            "server_cpu_ms_per_1k": server_cpu * 1e6 / deliveries if deliveries else None,
            "generator_cpu_util": my_cpu / wall if wall > 0 else 0.0,
            # The whole process, the C receive thread included.
            "generator_cpu_ms_per_1k": my_cpu * 1e6 / deliveries if deliveries else None,
            "redis_cpu_util": broker_cpu / wall if wall > 0 and self.broker is not None else None,
            "redis_cpu_ms_per_1k": broker_cpu * 1e6 / deliveries if deliveries and self.broker is not None else None,
            "other_cpu_util": other / wall if wall > 0 else 0.0,
            "irq_util": irq / wall if wall > 0 else 0.0,
            "steal_util": steal / wall if wall > 0 else 0.0,
        }


def make_sink(spec: Spec) -> tuple[Sink, str]:
    """The C sink when asked for and possible, else the Python one; and which, and why."""
    if spec.sink != "c":
        return Sink(), "python"
    if spec.client not in C_SINK_CLIENTS:
        return Sink(), f"python ({spec.client} is read in Python)"
    try:
        return KernelSink(spec.n + 1, latency_sample=spec.latency_sample), "c"
    except CompilerMissing as exc:
        log(spec, f"the Python sink, not the C one: {exc}")
        return Sink(), f"python ({exc})"


class Run:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.sink, sink_kind = make_sink(spec)
        self.server = Nodes(spec.server_pids or [spec.server_pid])
        self.broker = psutil.Process(spec.redis_pid) if spec.redis_pid else None
        self.me = psutil.Process()
        self.subscribers: list[tuple[Conn, Track]] = []
        self.publisher: Publisher = (
            SsePublisher(spec.host, spec.port, spec.namespace, spec.room, spec.publisher_pool)
            if spec.client == "sse"
            else SioPublisher(spec.host, spec.port, spec.namespace, spec.room)
        )
        self.publisher.realtime = isinstance(self.sink, KernelSink)
        self.result: dict[str, Any] = {"spec": asdict(spec), "status": "running", "phases": [],
                                       "sink": {"kind": sink_kind}}

    def receivers(self) -> int:
        return sum(1 for conn, _ in self.subscribers if conn.ended is None)

    # -- 1 and 2: connections and idle memory -------------------------------------------

    async def connect(self) -> None:
        spec = self.spec
        async with asyncio.timeout(30):
            await self.publisher.open()
        await asyncio.sleep(spec.settle_seconds)
        rss0 = self.server.memory_info().rss
        opener, pools = await self._opener()
        errors: collections.Counter[str] = collections.Counter()
        started = time.monotonic()
        try:
            for first in range(0, spec.n, spec.connect_concurrency):
                if time.monotonic() - started > spec.connect_budget:
                    errors[f"connect budget of {spec.connect_budget:g} s spent"] += spec.n - first
                    break
                batch = range(first, min(spec.n, first + spec.connect_concurrency))
                await asyncio.gather(*(self._connect_one(opener, errors) for _ in batch))
        finally:
            for pool in pools:
                pool.close()
        took = time.monotonic() - started
        log(spec, f"{len(self.subscribers)}/{spec.n} subscribers in {took:.1f} s"
                  + (f"; failures: {dict(errors)}" if errors else ""))
        await asyncio.sleep(spec.settle_seconds)
        rss = self.server.memory_info().rss
        connected = len(self.subscribers)
        self.result["connect"] = {
            "subscribers": connected,
            "failed": sum(errors.values()),
            "errors": dict(errors.most_common(5)),
            "seconds": took,
            "per_s": connected / took if took > 0 else 0.0,
        }
        self.result["idle"] = {
            "rss_base_bytes": rss0,
            "rss_bytes": rss,
            "rss_per_connection_bytes": (rss - rss0) / connected if connected else None,
        }
        if not connected:
            raise ConnectionError(f"no subscriber could connect: {dict(errors.most_common(3))}")

    async def _opener(self) -> tuple[Callable[[Track], Awaitable[Conn]], list[HttpPool]]:
        """Subscribers connect to ``sub_ports`` in turn (an even split over the nodes)."""
        s = self.spec
        ports = s.sub_ports or [s.port]
        turn = itertools.cycle(ports)
        if s.client == "sse":
            pools = {p: await HttpPool(s.host, p, min(32, s.connect_concurrency)).open() for p in ports}

            def sse(track: Track) -> Awaitable[Conn]:
                port = next(turn)
                return open_session(s.host, port, s.namespace, s.room, pools[port], track)

            return sse, list(pools.values())
        if s.client == "sio-ws":
            return (lambda track: open_ws(s.host, next(turn), s.namespace, s.room, track)), []
        return (lambda track: open_polling(s.host, next(turn), s.namespace, s.room, track)), []

    async def _connect_one(self, opener: Callable[[Track], Awaitable[Conn]], errors: collections.Counter[str]) -> None:
        track = Track(self.sink)
        try:
            async with asyncio.timeout(self.spec.connect_timeout):
                conn = await opener(track)
                if isinstance(self.sink, KernelSink):
                    try:
                        track = await self.sink.adopt(conn, track)
                    except BaseException:
                        conn.close()
                        raise
        except (OSError, ConnectionError, TimeoutError, ProtocolError) as exc:
            errors[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
            return
        self.subscribers.append((conn, track))

    # -- 3: open loop --------------------------------------------------------------------

    async def open_loop(self, rate: float) -> dict[str, Any]:
        spec, pub = self.spec, self.publisher
        count = max(spec.min_messages, round(rate * spec.phase_seconds))
        receivers = self.receivers()
        phase = self.sink.begin(f"open {rate:g}/s", pub.next_seq)
        acked_before, failed_before = len(pub.acked), len(pub.failed)
        meter = Meter(self.server, self.me, self.sink, phase, self.broker)
        interval = 1e9 / rate
        start = time.monotonic_ns() + 2_000_000
        hard_end = start + int(2e9 * count / rate) + 5_000_000_000
        late_max = late_sum = 0
        sent = 0
        refused = False
        # A server this far behind has saturated: stop adding to its backlog (which the
        # next phase would otherwise inherit) and call the phase what it is.
        give_up = rate * 2 * spec.saturated_p99_ms / 1000
        behind = 0.0
        for i in range(count):
            scheduled = start + int(i * interval)
            now = time.monotonic_ns()
            if scheduled > now:
                await asyncio.sleep((scheduled - now) / 1e9)
                now = time.monotonic_ns()
            # The loop's timers have millisecond resolution and may fire a little early. A
            # payload is stamped with when it was due, or when it left if that was earlier:
            # never in the future (latency > 0), never later than due (no coordinated omission).
            late = now - scheduled
            late_max = max(late_max, late)
            late_sum += max(0, late)
            if not pub.publish(min(scheduled, now)):
                refused = True
                break
            sent += 1
            behind = sent - phase.deliveries / max(1, receivers)
            if now > hard_end or behind > give_up:
                break
        publishing = meter.read()
        drained = await self.drain(phase, acked_before, receivers)
        total = meter.read()
        lat = percentiles(phase.latencies)
        acked = len(pub.acked) - acked_before
        saturated = not drained or refused or sent < count or (lat.get("p99", 0.0) > spec.saturated_p99_ms)
        if not drained:
            await self.quiesce()
        result = {
            "kind": "open",
            "rate": rate,
            "offered_deliveries_per_s": rate * receivers,
            "receivers": receivers,
            "published": sent,
            "scheduled": count,
            "acked": acked,
            "failed": len(pub.failed) - failed_before,
            "deliveries": phase.deliveries,
            "expected_deliveries": acked * receivers,
            "drained": drained,
            "saturated": saturated,
            "latency_ms": lat,
            "samples": len(phase.latencies),
            "publisher_late_ms": {"max": late_max / 1e6, "mean": late_sum / max(1, sent) / 1e6},
            "gave_up_behind_publishes": behind if behind > give_up else None,
            "publishing": publishing,
            "total": total,
            "server_cpu_ms_per_1k": total["server_cpu_ms_per_1k"],
            "redis_cpu_ms_per_1k": total["redis_cpu_ms_per_1k"],
            "generator_cpu_util": publishing["generator_cpu_util"],
            "generator_saturated": publishing["generator_cpu_util"] > GENERATOR_SATURATED,
            "other_cpu_util": total["other_cpu_util"] + total["steal_util"],
            "noisy": total["other_cpu_util"] + total["steal_util"] > NOISY,
        }
        log(spec, f"open {rate:g}/s ({rate * receivers:,.0f} deliveries/s): p50 {lat.get('p50', 0):.2f} ms "
                  f"p99 {lat.get('p99', 0):.2f} ms, {phase.deliveries}/{acked * receivers} delivered, "
                  f"server CPU {total['server_cpu_util']:.0%}, generator {publishing['generator_cpu_util']:.0%}, "
                  f"irq {total['irq_util']:.0%}, other {total['other_cpu_util']:.0%}" + (" SATURATED" if saturated else ""))
        return result

    async def quiesce(self, quiet: float = 0.5, limit: float = 60.0) -> bool:
        """After a phase that did not drain: wait until deliveries stop (the server has worked
        off its backlog, or given up on it), so the next phase starts from an idle server."""
        deadline = time.monotonic() + limit
        last, still = self.sink.delivered, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if self.sink.delivered != last:
                last, still = self.sink.delivered, time.monotonic()
            elif time.monotonic() - still >= quiet and self.publisher.inflight == 0:
                return True
        log(self.spec, f"the server was still delivering a backlog after {limit:g} s")
        return False

    async def drain(self, phase: Phase, acked_before: int, receivers: int) -> bool:
        """Wait until every acked publish of ``phase`` reached every live subscriber."""
        pub = self.publisher
        deadline = time.monotonic() + self.spec.drain_timeout
        while time.monotonic() < deadline:
            if pub.inflight == 0 and phase.deliveries >= (len(pub.acked) - acked_before) * receivers:
                return True
            await asyncio.sleep(0.005)
            if self.receivers() < receivers:
                receivers = self.receivers()
        return False

    # -- 4: closed loop ------------------------------------------------------------------

    async def closed_loop(self, window: int) -> dict[str, Any]:
        spec, pub = self.spec, self.publisher
        receivers = self.receivers()
        lag_limit = max(4.0, spec.max_outstanding / max(1, receivers))  # in publishes
        phase = self.sink.begin(f"closed window {window}", pub.next_seq)
        acked_before, failed_before, first = len(pub.acked), len(pub.failed), pub.next_seq
        meter = Meter(self.server, self.me, self.sink, phase, self.broker)
        start = time.monotonic()
        end = start + spec.saturation_seconds
        warm_at = start + min(1.0, spec.saturation_seconds / 4)
        steady: Meter | None = None
        waits = 0
        while (now := time.monotonic()) < end:
            if steady is None and now >= warm_at:
                steady = Meter(self.server, self.me, self.sink, phase, self.broker)
            behind = (pub.next_seq - first) - phase.deliveries / max(1, receivers)
            if pub.inflight >= window:
                pub.progress.clear()
                try:
                    async with asyncio.timeout(0.05):
                        await pub.progress.wait()
                except TimeoutError:
                    waits += 1
            elif behind >= lag_limit or pub.backlog:
                await asyncio.sleep(0.001)  # the loop's timers tick in whole milliseconds
            elif not pub.publish(time.monotonic_ns()):
                await asyncio.sleep(0.001)
        sustained = steady.read() if steady is not None else meter.read()
        published = pub.next_seq - first
        drained = await self.drain(phase, acked_before, receivers)
        total = meter.read()
        lat = percentiles(phase.latencies)
        if not drained:  # the next window starts from an idle server
            await self.quiesce(limit=spec.drain_timeout)
        result = {
            "kind": "closed",
            "receivers": receivers,
            "window": window,
            "lag_limit_publishes": lag_limit,
            "published": published,
            "acked": len(pub.acked) - acked_before,
            "failed": len(pub.failed) - failed_before,
            "deliveries": phase.deliveries,
            "drained": drained,
            "max_deliveries_per_s": sustained["deliveries_per_s"],
            # The same figure per second of server CPU: what the server would sustain with its
            # core to itself, less sensitive to a machine shared with other work.
            "deliveries_per_server_cpu_s": (sustained["deliveries"] / sustained["server_cpu_s"]
                                            if sustained["server_cpu_s"] > 0 else None),
            "publishes_per_s": published / spec.saturation_seconds,
            "latency_ms": lat,
            "samples": len(phase.latencies),
            "steady": sustained,
            "total": total,
            "server_cpu_ms_per_1k": sustained["server_cpu_ms_per_1k"],
            "redis_cpu_ms_per_1k": sustained["redis_cpu_ms_per_1k"],
            "generator_cpu_util": sustained["generator_cpu_util"],
            "generator_saturated": sustained["generator_cpu_util"] > GENERATOR_SATURATED,
            "other_cpu_util": sustained["other_cpu_util"] + sustained["steal_util"],
            "noisy": sustained["other_cpu_util"] + sustained["steal_util"] > NOISY,
            "ack_wait_timeouts": waits,
        }
        log(spec, f"closed loop, window {window}: {sustained['deliveries_per_s']:,.0f} deliveries/s "
                  f"({published / spec.saturation_seconds:,.0f} publishes/s), p50 {lat.get('p50', 0):.1f} ms "
                  f"p99 {lat.get('p99', 0):.1f} ms, "
                  f"server CPU {sustained['server_cpu_util']:.0%}, generator {sustained['generator_cpu_util']:.0%}, "
                  f"irq {sustained['irq_util']:.0%}, other {sustained['other_cpu_util']:.0%}")
        return result

    # -- 5: losses -----------------------------------------------------------------------

    def losses(self) -> dict[str, Any]:
        acked = sorted(self.publisher.acked)
        lost = [track.lost(acked) for _, track in self.subscribers]
        ended = collections.Counter(conn.ended for conn, _ in self.subscribers if conn.ended is not None)
        return {
            "acked_publishes": len(acked),
            "failed_publishes": len(self.publisher.failed),
            "failed_examples": dict(list(self.publisher.failed.items())[:3]),
            "unanswered_publishes": self.publisher.inflight,
            "lost": sum(lost),
            "subscribers_with_loss": sum(1 for x in lost if x),
            "duplicates": self.sink.duplicates,
            "disconnected": sum(ended.values()),
            "disconnect_reasons": {str(k): v for k, v in ended.most_common(3)},
            "deliveries": self.sink.delivered,
        }

    # -- all of it -----------------------------------------------------------------------

    def _with_generator_cost(self, result: dict[str, Any]) -> dict[str, Any]:
        """A phase's result with the generator's own cost beside the server's: its CPU per 1,000
        deliveries over the same span, and its read lag (C sink: read time - kernel stamp)."""
        span = result.get("steady") or result["total"]
        result["generator_cpu_ms_per_1k"] = span["generator_cpu_ms_per_1k"]
        result["read_lag_ms"] = percentiles(self.sink.phases[-1].lags)
        return result

    async def run(self, open_loop: bool, closed_loop: bool) -> dict[str, Any]:
        spec = self.spec
        kernel = self.sink if isinstance(self.sink, KernelSink) else None
        pump = asyncio.create_task(kernel.pump()) if kernel is not None else None
        try:
            await self.connect()
            if open_loop:
                skip = False
                for rate in spec.rates:
                    if skip:
                        self.result["phases"].append({"kind": "open", "rate": rate, "skipped": "a lower rate saturated"})
                        continue
                    phase = self._with_generator_cost(await self.open_loop(rate))
                    self.result["phases"].append(phase)
                    skip = phase["saturated"]
            if closed_loop:
                for window in spec.windows:
                    self.result["phases"].append(self._with_generator_cost(await self.closed_loop(window)))
            self.result["status"] = "ok"
        except Exception as exc:  # reported in the result, with whatever was measured
            self.result["status"] = "error"
            self.result["error"] = f"{type(exc).__name__}: {exc}"
            self.result["traceback"] = traceback.format_exc(limit=-4)
            log(spec, f"error: {self.result['error']}")
        finally:
            if kernel is not None:
                kernel.stop()
                self.result["sink"].update(kernel.stats())
            if pump is not None:
                await pump
            self.result["loss"] = self.losses()
            self.result["rss_end_bytes"] = self.server.memory_info().rss if self.server.is_running() else None
            for conn, _ in self.subscribers:
                conn.close()
            self.publisher.close()
            if kernel is not None:
                kernel.close()
        return self.result


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    import uvloop

    request = json.load(sys.stdin)
    flags = {k: request.pop(k) for k in ("open_loop", "closed_loop")}
    spec = Spec(**request)
    raise_fd_limit()
    result = uvloop.run(Run(spec).run(**flags))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
