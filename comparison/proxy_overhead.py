"""What the comparison proxy costs: latency added and CPU spent, next to the gateway's.

    python -m comparison.proxy_overhead [--requests 2000] [--messages 2000] [--streams 300]
        [--h2-streams 50] [--h2-events 400] [--parts proxies,h2]

Starts the demo gateway (``python -m gateway``), a ``passthrough`` proxy and, when
nginx is installed, nginx with ``comparison/nginx/block-websocket.conf``, each in its own
process. Then, from this process, one request or message at a time:

- ``--requests`` small GETs (``/healthz``);
- ``--messages`` Socket.IO ``echo`` calls over WebSocket (two relayed frames each; not
  through nginx, which blocks WebSocket), then over polling (a POST and a long-poll answer each);
- ``--streams`` SSE streams held open at once through the Python proxy.

Each workload runs direct, then through each proxy. It prints median and p99 latency, and
the CPU seconds (user + system, from psutil) that each proxy and the gateway spent per
1,000 operations.

``h2`` (when nginx and openssl are installed): what the HTTP/2 front a deployment puts up for
many browser tabs costs (``deploy/nginx/http2-tls.conf``: nginx with TLS and ``http2``, a
self-signed certificate made here), beside uvicorn over plain HTTP/1.1, with httpx (``h2``):

- ``--requests`` small GETs (``/healthz``), one at a time on one connection;
- ``--messages`` SSE + POST publishes (``POST /sse/sessions/{sid}/publish``, acked), one at a
  time, from a session alone in its room: the round trip of a tab's publish;
- ``--h2-streams`` SSE streams, one session each, all on ONE HTTP/2 connection through nginx
  (as a browser's tabs share theirs: the client is held to one connection), or one HTTP/1.1
  connection each to uvicorn; another session publishes ``--h2-events`` events to their room,
  one at a time (the next once every stream has the last), each stamped with its send time:
  the latency of each delivery (stamp to parsed on arrival) and the CPU of nginx (master and
  workers) and of the gateway per 1,000 deliveries.

Loopback only; the client runs in this process, so its own cost (httpx, and ``h2`` in Python
for HTTP/2) is in the latencies, not in the CPU figures. Not a test: the figures depend on the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil
import socketio
from httpx_sse import aconnect_sse

from comparison import nginx
from comparison.children import load_limits
from comparison.h2client import H1Client, H2Connections
from comparison.proxy.launch import ProxyProcess

ROOT = Path(__file__).resolve().parents[1]
Meter = Callable[[], float]  # CPU seconds a process (tree) has used so far


@dataclass(frozen=True)
class Route:
    """One way to reach the gateway: direct, or through a proxy whose CPU can be read."""

    name: str
    url: str
    cpu: Meter | None
    websocket: bool = True


@dataclass(frozen=True)
class Sample:
    """Latencies (seconds) of one workload on one path, and CPU seconds spent meanwhile."""

    latencies: list[float]
    proxy_cpu: float
    gateway_cpu: float

    def median_us(self) -> float:
        return statistics.median(self.latencies) * 1e6

    def p99_us(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1e6

    def per_thousand(self, seconds: float) -> float:
        return seconds / len(self.latencies) * 1000


def cpu_meter(process: psutil.Process, children: bool = False) -> Meter:
    def read() -> float:
        tree = [process, *process.children()] if children else [process]
        return float(sum(p.cpu_times().user + p.cpu_times().system for p in tree))

    return read


def _env() -> dict[str, str]:
    # Thousands of echo calls from one session, hundreds of streams at once: past the default limits.
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
                **load_limits())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _await_http(url: str, child: subprocess.Popen[bytes], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1, trust_env=False, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or child.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


@contextmanager
def _child(argv: list[str], url: str, what: str) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(argv, env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        _await_http(url, child, 15, what)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


async def timed(count: int, operation: Callable[[], Awaitable[None]], route: Route, gateway: Meter) -> Sample:
    latencies: list[float] = []
    proxy_before = route.cpu() if route.cpu else 0.0
    gateway_before = gateway()
    for _ in range(count):
        started = time.perf_counter()
        await operation()
        latencies.append(time.perf_counter() - started)
    proxy_cpu = route.cpu() - proxy_before if route.cpu else 0.0
    return Sample(latencies, proxy_cpu, gateway() - gateway_before)


async def http_workload(route: Route, count: int, gateway: Meter) -> Sample:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:

        async def get() -> None:
            response = await client.get(f"{route.url}/healthz")
            response.raise_for_status()

        await timed(min(200, count), get, route, gateway)  # warm-up: connections, caches
        return await timed(count, get, route, gateway)


async def socketio_workload(route: Route, transport: str, count: int, gateway: Meter) -> Sample:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(route.url, namespaces=["/chat"], transports=[transport], wait_timeout=10)
    try:

        async def echo() -> None:
            ack = await client.call("echo", {"n": 1}, namespace="/chat", timeout=10)
            if ack.get("ok") is not True:
                raise RuntimeError(f"echo failed: {ack}")

        await timed(min(200, count), echo, route, gateway)
        return await timed(count, echo, route, gateway)
    finally:
        if transport == "polling":
            # python-engineio's server does not answer the pending long-poll when a polling
            # client closes, so a graceful disconnect waits for the next ping (25 s).
            await client.eio.disconnect(abort=True)
        else:
            await client.disconnect()


async def hold_streams(url: str, count: int, proxy: psutil.Process) -> tuple[float, float, float]:
    """Open ``count`` SSE streams at once through the proxy; return (seconds to all open, proxy
    RSS growth in KiB per stream, proxy CPU seconds spent opening them)."""
    meter = cpu_meter(proxy)
    rss_before, cpu_before = proxy.memory_info().rss, meter()
    opened = asyncio.Semaphore(0)
    release = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:

        async def one() -> None:
            async with aconnect_sse(client, "GET", f"{url}/sse/connect?namespace=/chat") as source:
                async for event in source.aiter_sse():
                    if event.event == "open":
                        opened.release()
                        await asyncio.wait_for(release.wait(), 60)
                        return

        started = time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(count)]
        try:
            async with asyncio.timeout(60):
                for _ in range(count):
                    await opened.acquire()
            elapsed = time.perf_counter() - started
            rss_growth = (proxy.memory_info().rss - rss_before) / 1024 / count
            cpu = meter() - cpu_before
        finally:
            release.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return elapsed, rss_growth, cpu


def report(title: str, units: str, samples: dict[str, Sample], how: str = "sequential, one client") -> None:
    direct = samples["direct"]
    print(f"\n{title} ({len(direct.latencies)} {how})")
    for name, sample in samples.items():
        line = f"  {name:<12} median {sample.median_us():6.0f} us  p99 {sample.p99_us():6.0f} us"
        if name != "direct":
            ratio, added = sample.median_us() / direct.median_us(), sample.median_us() - direct.median_us()
            line += (f"  (x{ratio:.2f}, +{added:.0f} us)"
                     f"  CPU/1000 {units}: proxy {sample.per_thousand(sample.proxy_cpu):.3f} s,"
                     f" gateway {sample.per_thousand(sample.gateway_cpu):.3f} s")
        else:
            line += f"  CPU/1000 {units}: gateway {sample.per_thousand(sample.gateway_cpu):.3f} s"
        print(line)


# -- The HTTP/2 + TLS front (deploy/nginx/http2-tls.conf) beside uvicorn over HTTP/1.1 ---------

ROOM_EVENT = "tick"


Client = H1Client | H2Connections


async def front_client(route: Route, http2: bool) -> Client:
    """Over HTTP/2 ONE connection for everything (as a browser's tabs share theirs; a new one
    only where nginx would end it, after keepalive_requests = 1000 requests); over HTTP/1.1 one per
    request in flight (an event stream holds one): comparison/h2client.py."""
    host, port = route.url.split("://", 1)[1].rsplit(":", 1)
    return H2Connections(host, int(port)) if http2 else H1Client(host, int(port))


@dataclass
class SseSession:
    """One SSE + POST session held open by a task: its sid and key once its ``open`` frame came."""

    sid: str
    key: str
    task: asyncio.Task[None]

    async def post(self, client: Client, what: str, body: dict[str, object]) -> None:
        status, answer = await client.post_json(f"/sse/sessions/{self.sid}/{what}", body, {"X-Session-Key": self.key})
        if status != 200 or orjson.loads(answer).get("ok") is not True:
            raise RuntimeError(f"{what} failed: {status} {answer[:200]!r}")


async def open_session(client: Client, on_event: Callable[[str, str], None] | None = None) -> SseSession:
    """Open ``GET /sse/connect`` on ``client`` in a task; ``on_event(name, data)`` sees every frame after ``open``."""
    opened: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for name, data in client.sse("/sse/connect?namespace=/chat"):
            if name == "open" and not opened.done():
                frame = orjson.loads(data)
                opened.set_result((frame["sid"], frame["key"]))
            elif on_event is not None:
                on_event(name, data)
        raise RuntimeError("the stream ended")

    def ended(task: asyncio.Task[None]) -> None:
        if not opened.done() and not task.cancelled():
            opened.set_exception(task.exception() or RuntimeError("the stream ended before its open frame"))

    task = asyncio.create_task(read())
    task.add_done_callback(ended)
    sid, key = await asyncio.wait_for(opened, 30)
    return SseSession(sid, key, task)


async def close_sessions(sessions: list[SseSession]) -> None:
    for session in sessions:
        session.task.cancel()
    await asyncio.gather(*(s.task for s in sessions), return_exceptions=True)


async def get_workload(route: Route, http2: bool, count: int, gateway: Meter) -> Sample:
    client = await front_client(route, http2)
    try:

        async def get() -> None:
            status, _ = await client.get("/healthz")
            if status != 200:
                raise RuntimeError(f"GET /healthz: {status}")

        await timed(min(200, count), get, route, gateway)
        return await timed(count, get, route, gateway)
    finally:
        await client.close()


async def publish_workload(route: Route, http2: bool, count: int, gateway: Meter) -> Sample:
    """A session alone in its room publishes ``count`` times, one at a time: each acked round trip."""
    client = await front_client(route, http2)
    session = await open_session(client)
    try:
        room = f"alone-{session.sid}"
        await session.post(client, "join", {"room": room})

        async def publish() -> None:
            await session.post(client, "publish", {"room": room, "event": ROOM_EVENT, "data": {"n": 1}})

        await timed(min(100, count), publish, route, gateway)
        return await timed(count, publish, route, gateway)
    finally:
        await close_sessions([session])
        await client.close()


async def delivery_workload(route: Route, http2: bool, streams: int, events: int, gateway: Meter
                            ) -> tuple[Sample, int]:
    """``streams`` sessions in one room (over HTTP/2: all on one connection), another publishes
    ``events`` stamped events one at a time; every delivery's latency, CPU over the events, and
    over HTTP/2 how many connections the client opened (else 0)."""
    latencies: list[float] = []
    seen: dict[int, int] = {}
    everyone = asyncio.Event()

    def arrived(name: str, data: str) -> None:
        if name != ROOM_EVENT:
            return
        now = time.perf_counter()
        payload = orjson.loads(data)["data"]
        latencies.append(now - payload["t"])
        seen[payload["n"]] = seen.get(payload["n"], 0) + 1
        if seen[payload["n"]] == streams:
            everyone.set()

    room = f"fan-{os.getpid()}-{'h2' if http2 else 'h1'}"
    numbers = itertools.count()
    client = await front_client(route, http2)
    sessions: list[SseSession] = []
    try:
        for _ in range(streams):
            sessions.append(await open_session(client, arrived))
            await sessions[-1].post(client, "join", {"room": room})
        publisher = await open_session(client)
        sessions.append(publisher)
        await publisher.post(client, "join", {"room": room})

        async def one_event() -> None:
            everyone.clear()
            n = next(numbers)
            await publisher.post(client, "publish", {"room": room, "event": ROOM_EVENT,
                                                     "data": {"n": n, "t": time.perf_counter()}})
            await asyncio.wait_for(everyone.wait(), 30)

        for _ in range(min(20, events)):  # warm-up
            await one_event()
        latencies.clear()
        seen.clear()
        proxy_before = route.cpu() if route.cpu else 0.0
        gateway_before = gateway()
        for _ in range(events):
            await one_event()
        proxy_cpu = route.cpu() - proxy_before if route.cpu else 0.0
        gateway_cpu = gateway() - gateway_before
        connections = client.opened if isinstance(client, H2Connections) else 0
    finally:
        await close_sessions(sessions)
        await client.close()
    if len(latencies) != streams * events or len(seen) != events or any(v != streams for v in seen.values()):
        raise RuntimeError(f"{route.name}: {len(latencies)} deliveries, not {streams} x {events}")
    return Sample(latencies, proxy_cpu, gateway_cpu), connections


def h2_available() -> str | None:
    """Why the HTTP/2 front cannot be measured here, or None."""
    if not nginx.NGINX.exists():
        return f"{nginx.NGINX} is absent"
    if shutil.which("openssl") is None:
        return "openssl is absent"
    try:
        import h2  # noqa: F401  (httpx's HTTP/2 needs it)
    except ImportError:
        return "the h2 package is absent (pip install 'h2>=4.1', in the load extra)"
    return None


async def h2_front(args: argparse.Namespace, stack: ExitStack, gateway_url: str, gateway: Meter) -> None:
    why = h2_available()
    if why:
        print(f"\nHTTP/2 front: skipped ({why})")
        return
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="proxy-overhead-h2-")))
    front_port = _free_port()
    conf = nginx.render_http2_tls(front_port, int(gateway_url.rsplit(":", 1)[1]), workdir)
    front_url = f"https://127.0.0.1:{front_port}"
    master = stack.enter_context(_child(nginx.command(conf), front_url, "nginx (http2-tls.conf)"))
    direct = Route("direct", gateway_url, None)
    front = Route("nginx-h2-tls", front_url, cpu_meter(psutil.Process(master.pid), children=True))
    print(f"\nHTTP/2 front: nginx {front_url} with deploy/nginx/http2-tls.conf (TLS, http2, "
          f"{len(psutil.Process(master.pid).children())} workers) vs direct = uvicorn over HTTP/1.1")

    report("HTTP GET /healthz, HTTP/2 front", "requests",
           {"direct": await get_workload(direct, False, args.requests, gateway),
            front.name: await get_workload(front, True, args.requests, gateway)})
    report("SSE + POST publish, acked, HTTP/2 front", "publishes",
           {"direct": await publish_workload(direct, False, args.messages, gateway),
            front.name: await publish_workload(front, True, args.messages, gateway)})
    over_h1, _ = await delivery_workload(direct, False, args.h2_streams, args.h2_events, gateway)
    over_h2, connections = await delivery_workload(front, True, args.h2_streams, args.h2_events, gateway)
    report(f"SSE deliveries, {args.h2_streams} streams (h2: all on one connection) x {args.h2_events} events",
           "deliveries", {"direct": over_h1, front.name: over_h2}, how="deliveries, every one arrived once")
    print(f"  h2: the streams and the first requests on one connection; {connections} opened in all "
          "(nginx ends a connection after keepalive_requests = 1000 requests: later POSTs on the next)")


async def run(args: argparse.Namespace) -> None:
    parts = set(args.parts.split(","))
    if not parts or parts - {"proxies", "h2"}:
        raise SystemExit(f"--parts: proxies, h2 or both, not {args.parts!r}")
    with ExitStack() as stack:
        port = _free_port()
        gateway_url = f"http://127.0.0.1:{port}"
        gateway_child = stack.enter_context(_child(
            [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], gateway_url, "the gateway"))
        gateway = cpu_meter(psutil.Process(gateway_child.pid))
        print(f"gateway {gateway_url}; Python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs")
        if "proxies" in parts:
            await proxies(args, stack, gateway_url, gateway)
        if "h2" in parts:
            await h2_front(args, stack, gateway_url, gateway)


async def proxies(args: argparse.Namespace, stack: ExitStack, gateway_url: str, gateway: Meter) -> None:
    port = int(gateway_url.rsplit(":", 1)[1])
    proxy = stack.enter_context(ProxyProcess(gateway_url, "passthrough"))
    proxy_process = psutil.Process(proxy.pid)
    routes = [Route("direct", gateway_url, None), Route("python-proxy", proxy.url, cpu_meter(proxy_process))]
    if nginx.NGINX.exists():
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="proxy-overhead-")))
        nginx_port = _free_port()
        conf = nginx.render(nginx_port, port, workdir)
        nginx_url = f"http://127.0.0.1:{nginx_port}"
        master = stack.enter_context(_child(nginx.command(conf), nginx_url, "nginx"))
        routes.append(Route("nginx", nginx_url, cpu_meter(psutil.Process(master.pid), children=True),
                           websocket=False))
    print(f"proxies: {', '.join(p.name for p in routes[1:])}")

    report("HTTP GET /healthz", "requests", {p.name: await http_workload(p, args.requests, gateway) for p in routes})
    for transport in ("websocket", "polling"):
        samples = {p.name: await socketio_workload(p, transport, args.messages, gateway)
                   for p in routes if transport == "polling" or p.websocket}
        report(f"Socket.IO echo call over {transport}", "calls", samples)
    if args.streams:
        elapsed, kib, cpu = await hold_streams(proxy.url, args.streams, proxy_process)
        print(f"\n{args.streams} SSE streams open at once through the Python proxy: all open in {elapsed:.2f} s, "
              f"proxy RSS +{kib:.1f} KiB per stream, proxy CPU {cpu:.3f} s to open them")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m comparison.proxy_overhead",
                                     description="Latency and CPU the comparison proxy and the HTTP/2 front add.")
    parser.add_argument("--requests", type=int, default=2000, help="GETs per path (2000)")
    parser.add_argument("--messages", type=int, default=2000, help="Socket.IO echo calls per path (2000)")
    parser.add_argument("--streams", type=int, default=300, help="concurrent SSE streams (300; 0 skips)")
    parser.add_argument("--h2-streams", type=int, default=50,
                        help="SSE streams on one HTTP/2 connection (or one HTTP/1.1 connection each) (50)")
    parser.add_argument("--h2-events", type=int, default=400, help="events published to those streams (400)")
    parser.add_argument("--parts", default="proxies,h2",
                        help="proxies (the comparison proxy and nginx), h2 (the HTTP/2 front), or both (the default)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
