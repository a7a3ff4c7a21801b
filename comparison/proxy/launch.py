"""Start ``python -m comparison.proxy`` as a child process and wait until it serves.

Blocking and standard-library only, so tests, benchmarks and gevent-based load runs can
all use it. The child listens on a free port (``--listen HOST:0``) and says which on its
first line of output; readiness is then confirmed on ``/__proxy/stats``.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from pathlib import Path
from types import TracebackType
from typing import Final

from .stats import read_stats

ROOT: Final = Path(__file__).resolve().parents[2]


class ProxyStartError(RuntimeError):
    """The proxy exited or stayed silent; ``str()`` ends with the tail of its stderr."""


class ProxyProcess:
    """A proxy child process. ``with ProxyProcess(upstream, "block-websocket") as proxy: proxy.url``."""

    def __init__(
        self, upstream: str, profile: str = "passthrough", *options: str,
        host: str = "127.0.0.1", start_timeout: float = 10.0,
    ) -> None:
        self.argv = [sys.executable, "-m", "comparison.proxy", "--profile", profile,
                     "--listen", f"{host}:0", "--upstream", upstream, *options]
        # A file, not a pipe: a chatty child can never block on a full pipe nobody reads.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop()
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self._stderr, env=dict(os.environ, PYTHONPATH=pythonpath)
        )
        try:
            self.url = self._await_listening(start_timeout)
            self._await_stats(start_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def _await_listening(self, within: float) -> str:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(within):
                raise ProxyStartError(f"the proxy said nothing within {within} s: {self.errors()}")
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise ProxyStartError(f"the proxy did not start ({line.strip()!r}): {self.errors()}")
        return line.split()[2]

    def _await_stats(self, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                read_stats(self.url, timeout=1)
                return
            except (urllib.error.URLError, ConnectionError) as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise ProxyStartError(f"the proxy's stats are unreachable ({exc}): {self.errors()}") from exc
            time.sleep(0.02)

    def errors(self) -> str:
        """The tail of the proxy's stderr."""
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
