"""The processes a run starts: the gateway (python -m gateway) and Locust; port checks before anything starts.

Every child is started in its own session (``start_new_session``), so a Ctrl-C in the
terminal reaches only the runner, which then stops each child by its process id: SIGTERM,
then SIGKILL after a grace period. The proxy is ``comparison.proxy.ProxyProcess``.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
HOST: Final = "127.0.0.1"

# The gateway as the comparison runs it: uvloop and httptools, quiet logs.
GATEWAY_OPTIONS: Final = ("--log-level", "warning")  # python -m gateway: uvloop, httptools, its GC tuning

# The comparison and the benchmark drive one node from one address (127.0.0.1, directly or
# through the proxy): thousands of connections opened in seconds, publishers as fast as they
# can go -- far past the per-address and per-session limits a deployment keeps
# (gateway/core/limits.py). They run with these set far above what they reach, not off, so the
# checks stay on the measured path. A value already in the environment wins.
LOAD_LIMITS: Final = {
    "GATEWAY_ADDRESS_MAX_CONNECTIONS": "1000000",
    "GATEWAY_ADDRESS_SESSION_RATE": "1000000",
    "GATEWAY_ADDRESS_SESSION_BURST": "1000000",
    "GATEWAY_SESSION_PUBLISH_RATE": "1000000",
    "GATEWAY_SESSION_PUBLISH_BURST": "1000000",
    "GATEWAY_MAX_SESSIONS": "1000000",
}


@dataclass(frozen=True, slots=True)
class Pinning:
    """Which CPUs the server under test and the load generator may use (``None``: any).

    With two or more CPUs the server gets the first and Locust (master and workers) the rest,
    so neither steals the other's core; the proxy is not pinned (it runs where there is room).
    """

    server: tuple[int, ...] | None
    generator: tuple[int, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "generator": self.generator, "proxy": None,
                "how": "sched_setaffinity before exec (taskset -c)" if self.server else "not pinned (one CPU)"}


NOT_PINNED: Final = Pinning(None, None)


def plan_pinning(enabled: bool = True) -> Pinning:
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    if not enabled or len(cpus) < 2:
        return NOT_PINNED
    return Pinning(cpus[:1], cpus[1:])


def pinned(cpus: tuple[int, ...] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child (and whatever it forks) to ``cpus``."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def load_limits() -> dict[str, str]:
    """``LOAD_LIMITS`` that the environment does not set already."""
    return {name: value for name, value in LOAD_LIMITS.items() if name not in os.environ}

# Loopback control requests never go through an HTTP proxy named in the environment.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PortInUse(RuntimeError):
    """A port the run was told to use is taken; ``str()`` names it."""


class ChildStartError(RuntimeError):
    """A child process exited or never became ready; ``str()`` ends with the tail of its log."""


def check_port_free(port: int, host: str = HOST) -> None:
    """Raise ``PortInUse`` if something listens on ``host:port``.

    SO_REUSEADDR, as uvicorn binds: a port left in TIME_WAIT by an earlier run is free to
    reuse, a port with a listener is not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(f"port {port} on {host} is already in use ({exc.strerror}); "
                                f"stop what listens there or pick another port") from None
            raise


def free_port(host: str = HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def child_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=pythonpath)


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM by pid, then SIGKILL after ``grace`` seconds. Returns the exit code."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
        except ProcessLookupError:
            pass
    return process.returncode


def tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""


class GatewayProcess:
    """``python -m gateway`` (the gateway as the README serves it) on 127.0.0.1, logging to ``log``."""

    def __init__(self, port: int, log: Path, env: dict[str, str] | None = None,
                 cpus: tuple[int, ...] | None = None) -> None:
        self.port = port
        self.cpus = cpus
        self.url = f"http://{HOST}:{port}"
        self.log = log
        self.argv = [sys.executable, "-m", "gateway", "--host", HOST, "--port", str(port), *GATEWAY_OPTIONS]
        self._env = env if env is not None else child_env()
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, within: float = 20.0) -> GatewayProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self._env, stdin=subprocess.DEVNULL,
                                         stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=pinned(self.cpus))
        try:
            self._await_ready(within)
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self, within: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise ChildStartError(f"the gateway exited with {self.process.returncode} on port {self.port}: "
                                      f"{tail(self.log)}")
            try:
                with _direct.open(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise ChildStartError(f"the gateway was not ready on {self.url} within {within} s: {tail(self.log)}")
            time.sleep(0.05)

    def metrics(self) -> str:
        with _direct.open(f"{self.url}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        code = stop_process(self.process) if self.process is not None else None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code
