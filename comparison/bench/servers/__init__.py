"""The servers under test: what each one is, how it starts, how it stops.

Every server runs as a child process pinned to one core (``taskset -c CPU``), listens on
127.0.0.1 on a port chosen here, and is ready once it answers an HTTP request. It is
stopped by pid (SIGTERM, then SIGKILL after a grace period), also when the benchmark
fails or is interrupted: ``ServerProcess`` is a context manager and the runner keeps a
registry of live children for its signal handlers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import psutil

ROOT: Final = Path(__file__).resolve().parents[3]
HERE: Final = Path(__file__).resolve().parent
HOST: Final = "127.0.0.1"

#: Every child process the benchmark started and has not reaped yet (servers and
#: generators), by pid: what ``kill_all`` kills on an error or a signal.
CHILDREN: Final[dict[int, subprocess.Popen[bytes]]] = {}


@dataclass(frozen=True)
class ServerKind:
    name: str  # as in --servers and the results
    family: str  # what is measured: gateway, python-socketio, node-socketio, raw-sse
    client: str  # how the generator talks to it: sse, sio-ws, sio-polling
    ready_path: str
    needs_node: bool = False
    nodes: int = 1  # gateway processes, one port each, on the same core (scale-out variants)
    broker: str = "memory"  # GATEWAY_BROKER: "memory", or "redis" for REDIS_URL with a fresh prefix

    def argv(self, port: int, uvicorn_ws: str | None) -> list[str]:
        # The gateway as it ships (python -m gateway: its collector tuning, compression off);
        # the python-socketio baseline under uvicorn in the same regime (compression off).
        ws = ["--ws", uvicorn_ws] if uvicorn_ws else []
        if self.family == "gateway":
            return [sys.executable, "-m", "gateway", "--host", HOST, "--port", str(port), *ws]
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", HOST, "--port", str(port), "--loop", "uvloop",
                   "--http", "httptools", "--log-level", "warning", "--ws-per-message-deflate", "false", *ws]
        if self.family == "python-socketio":
            return [*uvicorn, "comparison.bench.servers.plain_python_socketio:app"]
        if self.family == "node-socketio":
            return ["node", str(HERE / "node_socketio.mjs"), str(port)]
        if self.family == "raw-sse":
            return [sys.executable, "-m", "comparison.bench.servers.raw_sse", "--port", str(port)]
        raise ValueError(self.family)


SERVERS: Final = {
    s.name: s
    for s in (
        ServerKind("gateway-sse", "gateway", "sse", "/readyz"),
        ServerKind("gateway-sse-redis", "gateway", "sse", "/readyz", broker="redis"),
        ServerKind("gateway-sse-redis-2nodes", "gateway", "sse", "/readyz", nodes=2, broker="redis"),
        ServerKind("gateway-sio-ws", "gateway", "sio-ws", "/readyz"),
        ServerKind("gateway-sio-polling", "gateway", "sio-polling", "/readyz"),
        ServerKind("python-socketio-ws", "python-socketio", "sio-ws", "/ready"),
        ServerKind("python-socketio-polling", "python-socketio", "sio-polling", "/ready"),
        ServerKind("node-socketio-ws", "node-socketio", "sio-ws", "/ready", needs_node=True),
        ServerKind("node-socketio-polling", "node-socketio", "sio-polling", "/ready", needs_node=True),
        ServerKind("raw-sse", "raw-sse", "sse", "/ready"),
    )
}
DEFAULT_SERVERS: Final = (
    "gateway-sse", "gateway-sio-ws", "gateway-sio-polling",
    "python-socketio-ws", "python-socketio-polling", "node-socketio-ws",
)


#: The Redis the ``broker="redis"`` variants use (a system service: not started, not pinned here).
REDIS_URL: Final = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_server_pid() -> int | None:
    """The local redis-server's pid, to read its CPU use (None if not found or not ours to read)."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "redis-server":
            return int(proc.pid)
    return None


def redis_cleanup(prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN + DEL); returns how many."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


def die_with_parent() -> None:
    """In a child, before exec: Linux sends it SIGTERM when the benchmark process dies, even
    by SIGKILL, so no server or generator outlives the run that started it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: kill_all() at exit is all there is


def node_available() -> bool:
    """Node and the socket.io package, resolvable from the server script's directory."""
    return any((d / "node_modules" / "socket.io" / "package.json").is_file() for d in HERE.parents) and _which("node")


def _which(program: str) -> bool:
    return any(os.access(Path(p) / program, os.X_OK) for p in os.environ.get("PATH", "").split(os.pathsep) if p)


def free_port() -> int:
    # The port is free now; the server binds it a moment later. On loopback, with ports
    # drawn from the ephemeral range by the kernel, a collision is not worth more code.
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; ``str()`` ends with its stderr tail."""


class ServerProcess:
    """``with ServerProcess(kind, cpu=0) as server: server.pid, server.port``."""

    def __init__(self, kind: ServerKind, cpu: int, uvicorn_ws: str | None = None,
                 start_timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self.argv = ["taskset", "-c", str(cpu), *kind.argv(self.port, uvicorn_ws)]
        self.start_timeout = start_timeout
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONPATH": pythonpath, "GATEWAY_LOG_LEVEL": "WARNING",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop(); a file never blocks the child
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        # taskset execs the server, so the child's pid is the server's pid.
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        preexec_fn=die_with_parent)
        CHILDREN[self.process.pid] = self.process
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()

    def _await_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        request = f"GET {self.kind.ready_path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nConnection: close\r\n\r\n"
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self.kind.name} exited with {self.process.returncode}: {self.errors()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.sendall(request.encode())
                    status = s.recv(64).split(b" ", 2)
                answered = len(status) > 1 and status[0].startswith(b"HTTP/1.") and status[1].isdigit()
                if answered and (self.kind.ready_path != "/readyz" or status[1] == b"200"):
                    return
            except OSError as exc:  # refused while the server starts; reset if it dies
                last = exc
            time.sleep(0.05)
        raise ServerStartError(f"{self.kind.name} not ready in {self.start_timeout:g} s ({last}): {self.errors()}")

    def errors(self, limit: int = 2000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:].strip() or "(no stderr)"

    def stop(self, grace: float = 5.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(grace)
        CHILDREN.pop(process.pid, None)
        self._stderr.close()
        self.process = None


def kill_all() -> None:
    """Kill every child still alive, by pid, for a signal handler or a crash."""
    for pid, process in list(CHILDREN.items()):
        if process.poll() is None:
            process.kill()
            process.wait(5)
        CHILDREN.pop(pid, None)
