"""What the load generator costs per delivered message: the light users vs the previous ones.

    python -m comparison.generator_cost [--users 40] [--seconds 15] [--transports sse,sio-websocket,...]

For each transport, one gateway (``python -m gateway``) and one single-process headless Locust
run of ``loadtests/users.py`` (gevent sockets) and of ``loadtests/_blocking.py``
(``BlockingClient``: python-socketio's threaded client, httpx) at the same load, one after the
other; it prints Locust's CPU milliseconds per 1,000 deliveries (over the run's steady middle) and its p99 delivery latency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .children import GatewayProcess, child_env, free_port, load_limits
from .locust_run import LocustRun, read_stats
from .sampler import cpu_seconds

SETTLE = 4.0  # seconds after the start before CPU is counted: every user connected
FILES = {"light": "loadtests", "blocking": "loadtests/_blocking.py"}


@dataclass(frozen=True, slots=True)
class Cost:
    transport: str
    users: str  # "light" or "blocking"
    deliveries: int  # in the measured window (Locust's deliveries/s times its length)
    cpu_s: float  # Locust's CPU seconds in that window
    p99_ms: int | None

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_s / self.deliveries * 1e6 if self.deliveries else float("nan")


def measure(transport: str, users: str, count: int, seconds: int, folder: Path) -> Cost:
    env = {**child_env(), **load_limits()}
    gateway = GatewayProcess(free_port(), folder / f"{transport}-{users}-gateway.log", env).start()
    try:
        prefix = folder / f"{transport}-{users}"
        argv = [sys.executable, "-m", "locust", "-f", FILES[users], "--headless", "-u", str(count),
                "-r", str(count), "-t", f"{seconds}s", "--stop-timeout", "5", "--host", gateway.url,
                "--only-summary", "--json-file", str(prefix), "--exit-code-on-error", "0", "--loglevel", "WARNING",
                "--transport-mix", f"{transport}=1", "--room-size", "10", "--publish-rate", "2"]
        run = LocustRun(argv, folder / f"{transport}-{users}-locust.log").start()
        # CPU over the steady middle of the run: Locust's start-up (imports) and stop are not per message.
        time.sleep(SETTLE)
        process = psutil.Process(run.pid)
        before, started = cpu_seconds(process), time.monotonic()
        time.sleep(seconds - SETTLE - 1)
        cpu, window = cpu_seconds(process) - before, time.monotonic() - started
        run.wait(seconds + 60)
    finally:
        gateway.stop()
    stats = read_stats(prefix).entries.get(("deliver", transport)) or {}
    return Cost(transport, users, round(float(stats.get("rps") or 0) * window), cpu, stats.get("p99_ms"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m comparison.generator_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--transports", default="sse,sio-websocket,sio-polling")
    args = p.parse_args(argv)
    print(f"{'transport':<14} {'users':<9} {'deliveries':>10} {'CPU s':>7} {'CPU ms/1000':>12} {'p99 ms':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for transport in args.transports.split(","):
            for users in FILES:
                cost = measure(transport, users, args.users, args.seconds, Path(tmp))
                print(f"{cost.transport:<14} {cost.users:<9} {cost.deliveries:>10} {cost.cpu_s:>7.2f} "
                      f"{cost.cpu_ms_per_1000:>12.0f} {cost.p99_ms!s:>7}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
