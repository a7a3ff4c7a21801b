"""What the comparison proxy costs: latency added and CPU spent, next to the gateway's.

    python -m comparison.proxy_overhead [--requests 2000] [--messages 2000] [--streams 300]

Starts the demo gateway (``python -m gateway``), a ``passthrough`` proxy and, when
nginx is installed, nginx with ``comparison/nginx/block-websocket.conf``, each in its own
process. Then, from this process, one request or message at a time:

- ``--requests`` small GETs (``/healthz``);
- ``--messages`` Socket.IO ``echo`` calls over WebSocket (two relayed frames each; not
  through nginx, which blocks WebSocket), then over polling (a POST and a long-poll answer each);
- ``--streams`` SSE streams held open at once through the Python proxy.

Each workload runs direct, then through each proxy. It prints median and p99 latency, and
the CPU seconds (user + system, from psutil) that each proxy and the gateway spent per
1,000 operations. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
import psutil
import socketio
from httpx_sse import aconnect_sse

from comparison import nginx
from comparison.children import load_limits
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
            if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
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


def report(title: str, unit: str, samples: dict[str, Sample]) -> None:
    direct = samples["direct"]
    print(f"\n{title} ({len(direct.latencies)} sequential, one client)")
    for name, sample in samples.items():
        line = f"  {name:<12} median {sample.median_us():6.0f} us  p99 {sample.p99_us():6.0f} us"
        if name != "direct":
            ratio, added = sample.median_us() / direct.median_us(), sample.median_us() - direct.median_us()
            line += (f"  (x{ratio:.2f}, +{added:.0f} us)"
                     f"  CPU/1000 {unit}s: proxy {sample.per_thousand(sample.proxy_cpu):.3f} s,"
                     f" gateway {sample.per_thousand(sample.gateway_cpu):.3f} s")
        else:
            line += f"  CPU/1000 {unit}s: gateway {sample.per_thousand(sample.gateway_cpu):.3f} s"
        print(line)


async def run(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        port = _free_port()
        gateway_url = f"http://127.0.0.1:{port}"
        gateway_child = stack.enter_context(_child(
            [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], gateway_url, "the gateway"))
        gateway = cpu_meter(psutil.Process(gateway_child.pid))
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
        print(f"gateway {gateway_url}; proxies: {', '.join(p.name for p in routes[1:])}; "
              f"Python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs")

        report("HTTP GET /healthz", "request", {p.name: await http_workload(p, args.requests, gateway) for p in routes})
        for transport in ("websocket", "polling"):
            samples = {p.name: await socketio_workload(p, transport, args.messages, gateway)
                       for p in routes if transport == "polling" or p.websocket}
            report(f"Socket.IO echo call over {transport}", "call", samples)
        if args.streams:
            elapsed, kib, cpu = await hold_streams(proxy.url, args.streams, proxy_process)
            print(f"\n{args.streams} SSE streams open at once through the Python proxy: all open in {elapsed:.2f} s, "
                  f"proxy RSS +{kib:.1f} KiB per stream, proxy CPU {cpu:.3f} s to open them")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m comparison.proxy_overhead",
                                     description="Latency and CPU the comparison proxy adds.")
    parser.add_argument("--requests", type=int, default=2000, help="GETs per path (2000)")
    parser.add_argument("--messages", type=int, default=2000, help="Socket.IO echo calls per path (2000)")
    parser.add_argument("--streams", type=int, default=300, help="concurrent SSE streams (300; 0 skips)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
