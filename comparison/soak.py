"""The chaos soak: two gateway nodes on Redis behind the shipped multi-node nginx, receivers on
every transport, a publisher of numbered events, and faults all along. One implementation for
the suite (``tests/test_chaos.py``, about a minute) and for a person (any duration)::

    python -m comparison.soak --duration 300 [--rate 50] [--per-transport 5] [--workdir DIR]

What it starts (all on 127.0.0.1, free ports): its own ``redis-server`` (append-only file,
fsync always, so a restart keeps every acknowledged event; never the machine's shared Redis),
two nodes (``uvicorn gateway.main:app``, ``comparison.children.GatewayProcess``), nginx with
``comparison/nginx/multi-node.conf`` in front of them. Every client goes through nginx.

What it does meanwhile, on one schedule: every ``drop_every`` s a random receiver's
connection is dropped (``drop()``, as a network failure would); proxy cuts (nginx stopped,
which cuts every connection, and started again on the same port); node SIGKILLs, each node
started again on its port at once; Redis restarts (SIGKILL, then started on the same files).

What it checks, per receiver: every acknowledged event delivered once and in order, or its
loss reported to the client as a gap; no duplicates; offsets strictly increasing. And every
client call (connect, join, publish, drop, close) returned within its bound: each runs as its
own task, timed; one that has not returned by ``hang_after`` s is recorded as hung and left
behind (never awaited: a call that swallows cancellation would hang the soak too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from rtclient import AutoClient, Backoff, Gap, RoomEvent, SocketIOClient, SseClient

from . import nginx
from .children import HOST, GatewayProcess, child_env, free_port, load_limits

T = TypeVar("T")
ROOM = "soak"
# Receivers on every transport: SSE + POST (auto mode: streams, falls back to polling behind a
# buffering proxy), Socket.IO pinned to WebSocket, pinned to long-polling, Socket.IO's own
# default (polling, then the upgrade), and rtclient's ``auto`` (SSE at once, then a live move
# to WebSocket, which behind this nginx often lands on the other node).
TRANSPORT_KINDS = ("sse", "sio-ws", "sio-polling", "sio-auto", "auto")


@dataclasses.dataclass(frozen=True)
class SoakConfig:
    """One soak's shape. Times in seconds; faults spread over the run's middle."""

    duration: float = 60.0  # how long events are published
    rate: float = 20.0  # events per second
    per_transport: int = 3  # receivers of each kind
    drop_every: float = 0.5  # a random receiver's connection dropped this often
    cuts: int = 2  # proxy cuts (nginx stopped and started)
    kills: int = 1  # node SIGKILLs (each restarted at once)
    redis_restarts: int = 1
    request_timeout: float = 10.0  # the clients' own bound for one call
    grace: float = 5.0  # a call may take request_timeout + grace before it counts as over its bound
    hang_after: float = 60.0  # a call not returned by then is recorded as hung and left behind
    drain: float = 30.0  # how long receivers may take to catch up after the last event
    seed: int | None = None
    workdir: Path | None = None  # logs and configuration; a temporary directory if None
    kinds: tuple[str, ...] = TRANSPORT_KINDS  # receiver kinds, ``per_transport`` of each

    @property
    def call_bound(self) -> float:
        return self.request_timeout + self.grace


@dataclasses.dataclass
class Receiver:
    """One client and what reached it."""

    name: str
    client: SseClient | SocketIOClient | AutoClient
    got: list[tuple[float, Any, str]] = dataclasses.field(default_factory=list)  # (monotonic, data, offset)
    gaps: list[Gap] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    busy: bool = False  # a drop() of it has not returned yet

    def listen(self) -> None:
        self.client.on("event", self._event)
        self.client.on("gap", self._gap)

    def _event(self, event: Any) -> None:
        if isinstance(event, RoomEvent) and event.room == ROOM:
            self.got.append((time.monotonic(), event.data, event.offset))
            self.changed.set()

    def _gap(self, gap: Any) -> None:
        if isinstance(gap, Gap):
            self.gaps.append(gap)


@dataclasses.dataclass
class Calls:
    """Every client call, timed: the longest per kind, those over the bound, those that hung."""

    bound: float
    hang_after: float
    count: dict[str, int] = dataclasses.field(default_factory=dict)
    longest: dict[str, float] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)  # raised (a bounded failure)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # kind -> the last error raised
    over: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    hung: list[str] = dataclasses.field(default_factory=list)
    _abandoned: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)

    async def timed(self, what: str, call: Awaitable[T]) -> T | None:
        """Run ``call``; its result, or None if it raised or hung (both recorded)."""
        task: asyncio.Task[T] = asyncio.ensure_future(call)
        started = time.monotonic()
        done, _ = await asyncio.wait({task}, timeout=self.hang_after)
        took = time.monotonic() - started
        kind = what.split(":")[0]
        self.count[kind] = self.count.get(kind, 0) + 1
        if not done:
            self.hung.append(what)
            task.cancel()  # asked, not awaited: a call that swallows it must not hang us too
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)
            return None
        self.longest[kind] = max(self.longest.get(kind, 0.0), took)
        if took > self.bound:
            self.over.append((what, round(took, 3)))
        error = task.exception()
        if error is not None:
            self.failed[kind] = self.failed.get(kind, 0) + 1
            self.errors[kind] = repr(error)[:200]
            return None
        return task.result()


@dataclasses.dataclass
class Fault:
    kind: str  # cut | kill | redis
    at: float  # monotonic time it struck
    took: float  # how long the fault itself took (down and up again)
    recovered: float | None = None  # from `at` to the first delivery after it on every receiver
    slowest: str | None = None  # the receiver that took longest to get one (None: some never did)


@dataclasses.dataclass
class SoakReport:
    """The figures of one soak; ``problems()`` lists what breaks the promise."""

    config: dict[str, Any]
    receivers: int
    published: int  # publish calls made
    acked: int
    deliveries: int
    expected: int  # acked events x receivers
    lost: int  # acked, never delivered, no gap reported
    lost_by_receiver: dict[str, int]
    lost_with_gap: int
    duplicated: int
    out_of_order: int
    drops: int
    faults: list[Fault]
    calls: Calls
    seconds: float
    abandoned: int = 0  # library calls the clients left behind past their bound (Stats.abandoned)

    def problems(self) -> list[str]:
        found = []
        if not self.acked:
            found.append(f"no publish acknowledged: {self.calls.errors.get('publish')}")
        if self.lost:
            found.append(f"{self.lost} acknowledged deliveries lost without a gap")
        if self.duplicated:
            found.append(f"{self.duplicated} duplicated deliveries")
        if self.out_of_order:
            found.append(f"{self.out_of_order} deliveries out of order")
        if self.calls.hung:
            found.append(f"calls that never returned: {self.calls.hung}")
        if self.calls.over:
            found.append(f"calls over their {self.calls.bound} s bound: {self.calls.over}")
        if any(f.recovered is None for f in self.faults):
            found.append("a fault after which some receiver never got another event")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.config, "seconds": round(self.seconds, 1), "receivers": self.receivers,
            "published": self.published, "acked": self.acked, "expected": self.expected,
            "deliveries": self.deliveries, "lost": self.lost, "lost_by_receiver": self.lost_by_receiver, "lost_with_gap": self.lost_with_gap,
            "duplicated": self.duplicated, "out_of_order": self.out_of_order, "drops": self.drops, "abandoned": self.abandoned,
            "cuts": sum(f.kind == "cut" for f in self.faults), "kills": sum(f.kind == "kill" for f in self.faults),
            "redis_restarts": sum(f.kind == "redis" for f in self.faults),
            "faults": [{"kind": f.kind, "took_s": round(f.took, 2),
                        "recovered_s": None if f.recovered is None else round(f.recovered, 2), "slowest": f.slowest}
                       for f in self.faults],
            "calls": {kind: {"count": n, "longest_s": round(self.calls.longest.get(kind, 0.0), 3),
                             "failed": self.calls.failed.get(kind, 0), "last_error": self.calls.errors.get(kind)}
                      for kind, n in sorted(self.calls.count.items())},
            "calls_over_bound": self.calls.over, "calls_hung": self.calls.hung, "problems": self.problems(),
        }


# -- the processes -------------------------------------------------------------------


class Redis:
    """A redis-server of the soak's own on a free port, append-only with fsync always."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.argv = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
                     "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir)]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start within 10 s")

    async def kill(self) -> None:
        await _kill(self.process, signal.SIGKILL)


async def _kill(process: asyncio.subprocess.Process | None, how: signal.Signals) -> None:
    """Signal a child by its pid and reap it (SIGKILL if it is still there after 5 s)."""
    if process is None or process.returncode is not None:
        return
    process.send_signal(how)
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        process.kill()
        await process.wait()


class Cluster:
    """Redis, two nodes on fixed ports (a restarted node comes back where nginx expects it), nginx."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = Redis(workdir)
        self.ports = [free_port(), free_port()]
        self.nodes: list[GatewayProcess | None] = [None, None]
        self.generation = 0
        self.proxy: asyncio.subprocess.Process | None = None
        self.proxy_port = free_port()
        self.url = f"http://{HOST}:{self.proxy_port}"
        self.env = {
            **child_env(), **load_limits(), "GATEWAY_BROKER": self.redis.url, "GATEWAY_REDIS_PREFIX": "soak",
            "GATEWAY_PING_INTERVAL": "1", "GATEWAY_PING_TIMEOUT": "1",
        }

    async def start(self) -> None:
        await self.redis.start()
        await asyncio.gather(*(self.start_node(i) for i in range(2)))
        await self.start_proxy()

    async def start_node(self, index: int) -> None:
        self.generation += 1
        node = GatewayProcess(self.ports[index], self.workdir / f"node{index}-{self.generation}.log", self.env)
        self.nodes[index] = node
        await asyncio.to_thread(node.start, 30.0)

    def kill_node(self, index: int) -> None:
        node = self.nodes[index]
        if node is not None and node.process is not None:
            node.process.kill()
            node.process.wait(10)
            node.stop()  # closes its log

    async def start_proxy(self) -> None:
        conf = nginx.render(self.proxy_port, self.ports, self.workdir, "multi-node")
        self.proxy = await asyncio.create_subprocess_exec(
            *nginx.command(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proxy.returncode is None:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, self.proxy_port)
                writer.close()
                return
            await asyncio.sleep(0.02)
        error_log = self.workdir / "error.log"
        raise RuntimeError(f"nginx did not start: {error_log.read_text()[-2000:] if error_log.exists() else ''}")

    async def stop_proxy(self) -> None:
        """SIGTERM: nginx's fast shutdown, which cuts every open connection."""
        await _kill(self.proxy, signal.SIGTERM)

    async def stop(self) -> None:
        await self.stop_proxy()
        for node in self.nodes:
            if node is not None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    await asyncio.to_thread(node.stop)
        await self.redis.kill()


# -- the run ---------------------------------------------------------------------------


def _offset(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


def make_client(kind: str, url: str, config: SoakConfig) -> SseClient | SocketIOClient | AutoClient:
    options: dict[str, Any] = {"request_timeout": config.request_timeout, "backoff": Backoff(base=0.05, cap=1.0)}
    if kind == "sse":
        return SseClient(url, "/chat", **options)
    if kind == "auto":
        return AutoClient(url, "/chat", **options)
    transports = {"sio-ws": ["websocket"], "sio-polling": ["polling"], "sio-auto": None}[kind]
    return SocketIOClient(url, "/chat", transports=transports, **options)


def plan(config: SoakConfig, rng: random.Random) -> list[tuple[float, str]]:
    """When each fault strikes (seconds into publishing): spread over 10 %..80 % of the run,
    shuffled, so the last one leaves time to see recovery."""
    kinds = ["cut"] * config.cuts + ["kill"] * config.kills + ["redis"] * config.redis_restarts
    rng.shuffle(kinds)
    if not kinds:
        return []
    step = 0.7 * config.duration / len(kinds)
    return [(0.1 * config.duration + step * (i + 0.5), kind) for i, kind in enumerate(kinds)]


async def run_soak(config: SoakConfig) -> SoakReport:
    """Run one soak and return its figures (raises only if the cluster cannot start)."""
    rng = random.Random(config.seed)
    started = time.monotonic()
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="rtgw-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir)
    calls = Calls(config.call_bound, config.hang_after)
    receivers: list[Receiver] = []
    publisher: SseClient | None = None
    closed = False
    try:
        await cluster.start()
        receivers = [Receiver(f"{kind}-{i}", make_client(kind, cluster.url, config))
                     for kind in config.kinds for i in range(config.per_transport)]
        for r in receivers:
            r.listen()

        async def enter(r: Receiver) -> None:
            if await calls.timed(f"connect:{r.name}", r.client.connect()) is None:
                raise RuntimeError(f"{r.name} could not connect")
            if await calls.timed(f"join:{r.name}", r.client.join(ROOM)) is None:
                raise RuntimeError(f"{r.name} could not join")

        await asyncio.gather(*(enter(r) for r in receivers))
        publisher = SseClient(cluster.url, "/chat", request_timeout=config.request_timeout,
                              backoff=Backoff(base=0.05, cap=1.0))
        await publisher.connect()
        await publisher.join(ROOM)  # only members publish to a room
        acked: dict[int, str] = {}  # number -> offset
        stop = asyncio.Event()
        published = 0

        async def publish() -> None:
            nonlocal published
            assert publisher is not None
            t0 = time.monotonic()
            for n in range(int(config.duration * config.rate)):
                # A fixed rate: the schedule, not the previous ack, says when the next goes.
                await asyncio.sleep(max(0.0, t0 + n / config.rate - time.monotonic()))
                published += 1
                ack = await calls.timed(f"publish:{n}", publisher.publish(ROOM, n))
                if isinstance(ack, dict) and isinstance(ack.get("offset"), str):
                    acked[n] = ack["offset"]
            stop.set()

        drops = 0
        dropping: set[asyncio.Task[None]] = set()

        async def dropper() -> None:
            nonlocal drops
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), config.drop_every)
                    return
                victim = rng.choice(receivers)
                if victim.busy:
                    continue
                victim.busy = True
                drops += 1
                task = asyncio.ensure_future(_drop(victim))
                dropping.add(task)
                task.add_done_callback(dropping.discard)

        async def _drop(victim: Receiver) -> None:
            await calls.timed(f"drop:{victim.name}", victim.client.drop())
            victim.busy = False

        faults: list[Fault] = []

        async def chaos(t0: float) -> None:
            for when, kind in plan(config, rng):
                await asyncio.sleep(max(0.0, t0 + when - time.monotonic()))
                at = time.monotonic()
                if kind == "cut":
                    await cluster.stop_proxy()
                    await cluster.start_proxy()
                elif kind == "kill":
                    index = rng.randrange(2)
                    await asyncio.to_thread(cluster.kill_node, index)
                    await cluster.start_node(index)
                else:
                    await cluster.redis.kill()
                    await cluster.redis.start()
                faults.append(Fault(kind, at, time.monotonic() - at))
                _progress(f"{kind} at {at - t0:.1f} s, took {faults[-1].took:.2f} s")

        t0 = time.monotonic()
        _progress(f"publishing for {config.duration} s to {len(receivers)} receivers through {cluster.url}")
        await asyncio.gather(publish(), dropper(), chaos(t0))
        _progress(f"published {published} ({len(acked)} acknowledged) in {time.monotonic() - t0:.1f} s; draining")
        await _drain(receivers, set(acked), config.drain)
        _progress("closing")
        # Concurrently: a close that hangs costs hang_after once, not once per client.
        await asyncio.gather(*(calls.timed(f"close:{r.name}", r.client.close()) for r in receivers),
                             calls.timed("close:publisher", publisher.close()))
        closed = True
        return _figures(config, receivers, acked, published, drops, faults, calls, time.monotonic() - started)
    finally:
        if not closed:  # failed half-way: still release every client, bounded
            clients = [r.client for r in receivers] + ([publisher] if publisher else [])
            await asyncio.gather(*(calls.timed("close:cleanup", c.close()) for c in clients))
        await cluster.stop()
        if config.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _progress(what: str) -> None:
    print(f"soak: {what}", file=sys.stderr, flush=True)


async def _drain(receivers: list[Receiver], expected: set[int], within: float) -> None:
    """Wait (bounded) until every receiver has every acknowledged event or a gap."""

    async def one(r: Receiver) -> None:
        while not r.gaps and not expected <= {data for _, data, _ in r.got}:
            r.changed.clear()
            await r.changed.wait()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one(r) for r in receivers)), within)


def _figures(config: SoakConfig, receivers: list[Receiver], acked: dict[int, str], published: int, drops: int,
             faults: list[Fault], calls: Calls, seconds: float) -> SoakReport:
    lost = lost_with_gap = duplicated = out_of_order = deliveries = 0
    lost_by_receiver: dict[str, int] = {}
    for r in receivers:
        deliveries += len(r.got)
        seen: set[Any] = set()
        last: tuple[int, int] | None = None
        for _, data, offset in r.got:
            if data in seen:
                duplicated += 1
            seen.add(data)
            position = _offset(offset)
            if last is not None and position <= last:
                out_of_order += 1
            last = position if last is None else max(last, position)
        gaps = [_offset(g.after) if g.after else (0, 0) for g in r.gaps]
        for n, offset in acked.items():
            if n in seen:
                continue
            if any(_offset(offset) > after for after in gaps):
                lost_with_gap += 1
            else:
                lost += 1
                lost_by_receiver[r.name] = lost_by_receiver.get(r.name, 0) + 1
    for fault in faults:
        firsts = {r.name: next((t for t, _, _ in r.got if t > fault.at), None) for r in receivers}
        if None not in firsts.values():
            fault.slowest = max(firsts, key=lambda name: firsts[name] or 0.0)
            fault.recovered = (firsts[fault.slowest] or 0.0) - fault.at
    return SoakReport(
        config={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()},
        receivers=len(receivers), published=published, acked=len(acked), deliveries=deliveries,
        expected=len(acked) * len(receivers), lost=lost, lost_by_receiver=lost_by_receiver, lost_with_gap=lost_with_gap, duplicated=duplicated,
        out_of_order=out_of_order, drops=drops, faults=faults, calls=calls, seconds=seconds,
        abandoned=sum(r.client.state.stats.abandoned for r in receivers),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m comparison.soak``: run, print the figures as JSON, exit 1 on a problem."""
    p = argparse.ArgumentParser(prog="python -m comparison.soak", description=(__doc__ or "").split("\n\n")[0])
    defaults = SoakConfig()
    p.add_argument("--duration", type=float, default=300.0, help="seconds of publishing (default 300)")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    p.add_argument("--per-transport", type=int, default=5, help="receivers of each kind (default 5)")
    p.add_argument("--kinds", default=",".join(TRANSPORT_KINDS),
                   help=f"receiver kinds, among {', '.join(TRANSPORT_KINDS)} (default: all)")
    p.add_argument("--drop-every", type=float, default=0.25, help="seconds between random drops (default 0.25)")
    p.add_argument("--cuts", type=int, help="proxy cuts (default: one per 30 s)")
    p.add_argument("--kills", type=int, help="node SIGKILLs (default: one per 100 s, at least 1)")
    p.add_argument("--redis-restarts", type=int, help="Redis restarts (default: one per 150 s, at least 1)")
    p.add_argument("--request-timeout", type=float, default=defaults.request_timeout)
    p.add_argument("--seed", type=int)
    p.add_argument("--workdir", type=Path, help="keep logs and configuration here")
    args = p.parse_args(argv)
    if shutil.which("redis-server") is None or not nginx.NGINX.exists():
        print("the soak needs redis-server and nginx (make system-deps installs both)", file=sys.stderr)
        return 2
    config = SoakConfig(
        duration=args.duration, rate=args.rate, per_transport=args.per_transport, drop_every=args.drop_every,
        cuts=args.cuts if args.cuts is not None else max(2, int(args.duration // 30)),
        kills=args.kills if args.kills is not None else max(1, int(args.duration // 100)),
        redis_restarts=args.redis_restarts if args.redis_restarts is not None else max(1, int(args.duration // 150)),
        request_timeout=args.request_timeout, seed=args.seed, workdir=args.workdir,
        kinds=tuple(kind for kind in args.kinds.split(",") if kind),
    )
    unknown = set(config.kinds) - set(TRANSPORT_KINDS)
    if unknown or not config.kinds:
        print(f"--kinds: unknown {sorted(unknown)}; choose among {', '.join(TRANSPORT_KINDS)}", file=sys.stderr)
        return 2
    # Ctrl-C: asyncio.run cancels the run, whose finally stops every child it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = asyncio.run(run_soak(config))
    print(json.dumps(report.summary(), indent=2))
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
