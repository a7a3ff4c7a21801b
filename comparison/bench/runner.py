"""The benchmark's driver: for every N, ``repeat`` times, for every server, start it, run a
generator, stop it.

N is the outer loop and the repetitions interleave the servers (A, B, C, A, B, C) so that
any drift of the machine over the run touches every server alike. Each run gets a fresh
server process (a gateway keeps disconnected sessions for its recovery window; a fresh
process keeps the figures independent) and a fresh generator process. The JSON document
is rewritten after every run, so an interrupted benchmark keeps what it measured.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..children import load_limits
from . import report
from .generator import NOISY, Spec
from .machine import machine_info
from .servers import (
    CHILDREN,
    REDIS_URL,
    ROOT,
    SERVERS,
    ServerProcess,
    ServerStartError,
    die_with_parent,
    node_available,
    redis_cleanup,
    redis_server_pid,
)


@dataclass(frozen=True)
class Config:
    servers: list[str]
    ns: list[int]
    deliveries_per_s: list[float] = field(default_factory=lambda: [5_000.0, 20_000.0, 50_000.0])
    phase_seconds: float = 6.0
    saturation_seconds: float = 8.0
    min_messages: int = 10
    windows: list[int] = field(default_factory=lambda: [1, 4, 16])  # one closed loop each
    max_outstanding: int = 10_000
    connect_concurrency: int = 100
    drain_timeout: float = 10.0
    saturated_p99_ms: float = 1000.0
    settle_seconds: float = 1.0
    server_cpu: int = 0
    generator_cpu: int = 1
    uvicorn_ws: str | None = None
    open_loop: bool = True
    closed_loop: bool = True
    repeat: int = 1  # runs of every (server, N), interleaved; the report gives their medians
    baseline: str = "node-socketio-ws"  # the report's side-by-side table divides by its medians
    retry_noisy: int = 0  # runs the machine disturbed are run again this many times; the quietest is kept
    quiet_wait: float = 20.0  # seconds to wait, before each run, for other load to go away
    quiet_cores: float = 0.15  # "quiet": the rest of the machine uses less than this many cores
    sink: str = "c"  # the generator's receive path for sse and sio-ws subscribers: "c" (csink) or "python"
    latency_sample: int = 8  # C sink: latency from every latency_sample-th subscriber (1: all)


def run_generator(module: str, cpu: int, request: dict[str, Any], pythonpath: str, budget: float) -> dict[str, Any]:
    """Run ``python -m module`` pinned to ``cpu`` with ``request`` as JSON on stdin, at most
    ``budget`` seconds; its last stdout line is the result (an error result if it has none)."""
    generator = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, "-m", module],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": pythonpath},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent,
    )
    CHILDREN[generator.pid] = generator
    try:
        out, _ = generator.communicate(json.dumps(request).encode(), timeout=budget)
    except subprocess.TimeoutExpired:
        out = b""
    finally:  # also on Ctrl-C or SIGTERM: the generator never outlives its run
        if generator.poll() is None:
            generator.kill()
            generator.wait(5)
        CHILDREN.pop(generator.pid, None)
    lines = out.decode(errors="replace").strip().splitlines()
    if generator.returncode == 0 and lines:
        return json.loads(lines[-1])  # type: ignore[no-any-return]
    return {"status": "error", "error": f"generator exited with {generator.returncode} (killed after {budget:.0f} s?)"}


def generator_spec(config: Config, client: str, port: int, pid: int, n: int, label: str,
                   sub_ports: list[int] | None = None, server_pids: list[int] | None = None,
                   redis_pid: int | None = None) -> Spec:
    return Spec(
        client=client, port=port, server_pid=pid, n=n,
        sub_ports=sub_ports or [], server_pids=server_pids or [], redis_pid=redis_pid,
        rates=[d / n for d in config.deliveries_per_s],
        phase_seconds=config.phase_seconds, min_messages=config.min_messages,
        saturation_seconds=config.saturation_seconds, windows=config.windows,
        max_outstanding=config.max_outstanding, connect_concurrency=config.connect_concurrency,
        drain_timeout=config.drain_timeout, saturated_p99_ms=config.saturated_p99_ms,
        settle_seconds=config.settle_seconds, label=label, sink=config.sink,
        latency_sample=config.latency_sample,
    )


def budget(spec: Spec, config: Config) -> float:
    """A hard bound on one generator run, from its own bounds, plus slack."""
    open_loop = sum(max(spec.min_messages / r, spec.phase_seconds) * 2 + 5 + spec.drain_timeout for r in spec.rates)
    return (30 + spec.connect_budget + 2 * spec.settle_seconds + (open_loop if config.open_loop else 0)
            + (len(spec.windows) * (spec.saturation_seconds + 2 * spec.drain_timeout) if config.closed_loop else 0)
            + 60)


def wait_quiet(config: Config) -> dict[str, float]:
    """Wait (bounded) until the machine is idle for 2 s in a row: on a shared machine other
    work would show up as server or generator slowness. Returns what was waited and seen."""
    started = time.monotonic()
    quiet_for, load = 0.0, 0.0
    while time.monotonic() - started < config.quiet_wait:
        load = psutil.cpu_percent(interval=0.5) / 100 * (psutil.cpu_count() or 1)  # cores
        quiet_for = quiet_for + 0.5 if load < config.quiet_cores else 0.0
        if quiet_for >= 2.0:
            break
    waited = time.monotonic() - started
    if quiet_for < 2.0 and config.quiet_wait > 0:
        print(f"  the machine was not idle for 2 s in a row within {config.quiet_wait:g} s "
              f"(last: {load:.2f} cores busy); measuring anyway", file=sys.stderr)
    return {"waited_s": round(waited, 1), "load_cores": round(load, 2), "quiet": quiet_for >= 2.0}


def run_one(config: Config, name: str, n: int, repetition: int = 0) -> dict[str, Any]:
    kind = SERVERS[name]
    if kind.needs_node and not node_available():
        return {"status": "skipped", "server": {"name": name}, "n": n,
                "reason": "node or node_modules/socket.io not found"}
    which = f" (repetition {repetition + 1}/{config.repeat})" if config.repeat > 1 else ""
    print(f"{name} N={n}{which}", file=sys.stderr, flush=True)
    quiet = wait_quiet(config) if config.quiet_wait > 0 else {}
    # N connections from 127.0.0.1 in seconds and a publisher at full speed: limits far above that.
    limits = load_limits() if kind.family == "gateway" else {}
    env: dict[str, str] = {"GATEWAY_BROKER": "memory", **limits} if kind.family == "gateway" else {}
    prefix = None
    if kind.broker == "redis":  # a prefix of its own per run: no state shared with other runs or nodes
        prefix = f"rtgwbench-{secrets.token_hex(4)}"
        env = {"GATEWAY_BROKER": REDIS_URL, "GATEWAY_REDIS_PREFIX": prefix, **limits}
    try:
        with contextlib.ExitStack() as stack:
            # Every node on the server core; the publisher uses the first, subscribers go round-robin.
            nodes = [stack.enter_context(ServerProcess(kind, config.server_cpu, config.uvicorn_ws, env=env))
                     for _ in range(kind.nodes)]
            server = nodes[0]
            spec = generator_spec(
                config, kind.client, server.port, server.pid, n, name,
                sub_ports=[s.port for s in nodes] if len(nodes) > 1 else None,
                server_pids=[s.pid for s in nodes] if len(nodes) > 1 else None,
                redis_pid=redis_server_pid() if kind.broker == "redis" else None,
            )
            request = {**asdict(spec), "open_loop": config.open_loop, "closed_loop": config.closed_loop}
            result = run_generator("comparison.bench.generator", config.generator_cpu, request,
                                   server.env["PYTHONPATH"], budget(spec, config))
            if result.get("status") == "error" and "spec" not in result:
                result["spec"] = asdict(spec)
            if result.get("status") != "ok":
                result["server_stderr"] = "\n".join(s.errors() for s in nodes)
            result["server"] = {"name": name, "family": kind.family, "client": kind.client,
                                "argv": server.argv, "pid": server.pid, "port": server.port,
                                "nodes": [{"pid": s.pid, "port": s.port} for s in nodes],
                                "broker": kind.broker, "redis_prefix": prefix}
            result["before"] = quiet
            return result
    except ServerStartError as exc:
        return {"status": "error", "server": {"name": name}, "n": n, "error": str(exc)}
    finally:
        if prefix is not None:
            try:
                redis_cleanup(prefix)
            except Exception as exc:
                print(f"  could not delete the {prefix}* keys: {exc}", file=sys.stderr)


def noise(result: dict[str, Any]) -> float:
    """The most the rest of the machine used the two cores during any phase, in cores."""
    return max((p.get("other_cpu_util", 0.0) for p in result.get("phases", []) if not p.get("skipped")), default=0.0)


def run_quietest(config: Config, name: str, n: int, repetition: int = 0) -> dict[str, Any]:
    """``run_one``, again up to ``retry_noisy`` times while other load disturbed it."""
    result = run_one(config, name, n, repetition)
    attempts = [round(noise(result), 2)]
    while result.get("status") == "ok" and noise(result) > NOISY and len(attempts) <= config.retry_noisy:
        print(f"  noisy run (other load up to {noise(result):.2f} cores): once more", file=sys.stderr)
        again = run_one(config, name, n, repetition)
        attempts.append(round(noise(again), 2))
        if again.get("status") == "ok" and noise(again) < noise(result):
            result = again
    result["noise_by_attempt"] = attempts
    result["repetition"] = repetition
    return result


def run(config: Config, argv: list[str], out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "comparison.bench", *argv]),
        "cwd": str(ROOT),
        "python_executable": sys.executable,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": asdict(config),
        "runs": [],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    for n in config.ns:
        for repetition in range(config.repeat):
            for name in config.servers:
                doc["runs"].append(run_quietest(config, name, n, repetition))
                doc["targets"] = report.targets(doc)
                out.write_text(json.dumps(doc, indent=1))
    doc["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(doc, indent=1))
    return doc
