"""Real gateways on 127.0.0.1 for the tests: uvicorn in a thread, port 0, awaited on readiness."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.core.hub import Gateway
from gateway.settings import Settings

# Scales every wait in the tests (slow CI machines: TIMEOUT_FACTOR=3).
FACTOR = float(os.environ.get("TIMEOUT_FACTOR", "1"))
ROOT = Path(__file__).resolve().parents[1]
# The machine's Redis; tests isolate themselves by key prefix.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def timeout(seconds: float) -> float:
    return seconds * FACTOR


async def wait_state(check: Callable[[], bool], seconds: float = 5, what: str = "state did not change in time") -> None:
    """Poll server-side state (there is no event to await for 'nothing happened')."""
    deadline = time.monotonic() + timeout(seconds)
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


class ThreadedGateway:
    """A gateway served by uvicorn on its own thread and event loop."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings or Settings(**overrides)
        self.app = create_app(self.settings, demo=True)
        self.gateway: Gateway = self.app.gateway
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="on", log_level="warning",
                           timeout_graceful_shutdown=2, ws="websockets-sansio" if _has_sansio() else "auto")
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> ThreadedGateway:
        self.thread.start()
        deadline = time.monotonic() + timeout(10)
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def session_state(self, sid: str) -> str | None:
        """``connected`` / ``detached`` / ``closed``, or None for a session the hub does not hold."""

        async def state() -> str | None:
            session = self.gateway.sessions.get(sid)
            return session.state.value if session is not None else None

        return self.run(state())

    def run(self, coro: Coroutine[Any, Any, Any], wait: float = 10) -> Any:
        """Run a coroutine on the server's loop (the hub is not thread-safe) and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout(wait))

    async def arun(self, coro: Coroutine[Any, Any, Any], wait: float = 10) -> Any:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout(wait))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout(10))


def _has_sansio() -> bool:
    try:
        from uvicorn.protocols.websockets import websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


class SubprocessGateway:
    """The gateway in its own process, for SIGTERM and kill -9: ``uvicorn gateway.main:app``,
    or ``python -m gateway`` with ``module=True`` (uvloop, httptools, the collector tuned)."""

    def __init__(self, port: int = 0, env: dict[str, str] | None = None, *, module: bool = False) -> None:
        self.command = [sys.executable, "-m", "gateway"] if module else [
            sys.executable, "-m", "uvicorn", "gateway.main:app"]
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []  # what the process printed (uvicorn's logs included)

    def start(self) -> SubprocessGateway:
        self.proc = subprocess.Popen(
            [*self.command, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "info"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        )
        deadline = time.monotonic() + timeout(20)
        assert self.proc.stdout is not None  # stderr merged into it: logs and access log together
        for line in self.proc.stdout:
            self.output.append(line)
            match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                break
            if time.monotonic() > deadline:
                raise RuntimeError("gateway subprocess did not start")
        else:
            raise RuntimeError(f"gateway subprocess exited: {self.proc.wait()}")
        # keep draining the output so the child never blocks on a full pipe
        threading.Thread(target=self.output.extend, args=(self.proc.stdout,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout(15))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout(10))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Loopback requests never go through an HTTP proxy named in the environment.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NginxProcess:
    """nginx with one of comparison/nginx/*.conf, in the foreground, from a work directory."""

    def __init__(self, upstream_port: int | list[int], workdir: Path, name: str = "block-websocket") -> None:
        from comparison import nginx

        last_error = ""
        self.workdir = workdir
        # nginx cannot report a port-0 listen back, so take a free port; retry if another
        # process grabbed it in between (bounded).
        for _attempt in range(3):
            self.port = free_port()
            conf = nginx.render(self.port, upstream_port, workdir, name)
            # Its errors go to error.log in the work directory (see the configuration).
            self.process = subprocess.Popen(nginx.command(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{self.port}"
            if self._await_ready(timeout(10)):
                return
            self.stop()
            last_error = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
        raise RuntimeError(f"nginx did not start: {last_error[-2000:]}")

    def _await_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with _direct.open(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: open streams are cut
            try:
                self.process.wait(timeout(5))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout(5))


async def node_outcome(node: asyncio.subprocess.Process, wait: float = 40) -> dict[str, Any]:
    """Let a Node test script finish (killed past ``wait`` s) and return the JSON object it
    printed last; fail with its stderr if it printed none, exited non-zero or reported an error."""
    import json

    try:
        out, err = await asyncio.wait_for(node.communicate(), timeout(wait))
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
    lines = out.decode().strip().splitlines()
    assert lines, f"node printed nothing (exit {node.returncode}): {err.decode()[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert node.returncode == 0 and "error" not in result, f"{result}\n{err.decode()[-3000:]}"
    return result
