"""One headless Locust run of ``loadtests/`` as a subprocess, bounded in time, and its results.

Locust writes ``--csv`` files once a second while it runs and does not rewrite them at exit,
so they can miss the last second (and the ``delivery/lost`` failures users report when they
stop). The run therefore also asks for ``--json-file``, which Locust writes once, after
every user has stopped: that file is what the numbers come from. The CSVs are kept beside
it as the raw record. Its response-time histograms (integer milliseconds, rounded above
100 ms as Locust rounds) give the percentiles, computed the way Locust computes them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from .children import ROOT, child_env, free_port, pinned, stop_process
from .matrix import Cell

PERCENTILES: Final = (0.5, 0.95, 0.99)


def locust_argv(cell: Cell, gateway_url: str, proxy_url: str | None, prefix: Path, duration: float,
                namespace: str = "/bench", processes: int = 1, settle: float = 0.0) -> list[str]:
    """The command line of one run; ``prefix`` is where its CSV and JSON files go.

    Always distributed (``--processes``: a master and ``processes`` workers), so every run
    aggregates its workers' numbers on the master the same way, whatever their count.
    With ``settle``, the users spend that many seconds spawning and joining before anything
    is published, and the run lasts that much longer (``duration`` is the measured window).
    """
    load = cell.load
    seconds = max(1, math.ceil(settle + duration))
    argv = [sys.executable, "-m", "locust", "-f", "loadtests", "--headless",
            "-u", str(load.users), "-r", f"{load.spawn_rate:g}", "-t", f"{seconds}s", "--stop-timeout", "5",
            "--host", gateway_url, "--csv", str(prefix), "--only-summary", "--json-file", str(prefix),
            # WARNING: at INFO, httpx would log every POST of the SSE users, a cost in the load generator.
            "--exit-code-on-error", "0", "--loglevel", "WARNING",
            "--transport-mix", f"{cell.kind.user}=1", "--room-size", str(load.room_size),
            "--publish-rate", f"{load.publish_rate:g}", "--payload-bytes", str(load.payload_bytes),
            "--namespace", namespace, "--processes", str(processes)]
    # A port of its own for the master and its workers: another Locust on the machine holds 5557.
    port = free_port()
    argv += ["--master-bind-port", str(port), "--master-port", str(port)]
    if proxy_url is not None:
        argv += ["--target", "proxy", "--proxy-url", proxy_url]
    if settle > 0:
        argv += ["--settle", f"{settle:g}"]
    return argv


@dataclass(slots=True)
class LocustRun:
    """A running Locust; its output goes to ``log``."""

    argv: list[str]
    log: Path
    cpus: tuple[int, ...] | None = None  # pinned here, and so are the workers it forks
    process: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None
    lines: list[str] = field(default_factory=list)

    def start(self) -> LocustRun:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=child_env(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=pinned(self.cpus))
        self._reader = threading.Thread(target=self._read, name="locust-output", daemon=True)
        self._reader.start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def workers(self, expected: int, within: float = 10.0) -> list[int]:
        """The pids of the workers Locust forked (waits until ``expected`` are there, bounded)."""
        deadline = time.monotonic() + within
        while True:
            try:
                found = [c.pid for c in psutil.Process(self.pid).children()]
            except psutil.Error:
                return []
            if len(found) >= expected or time.monotonic() > deadline:
                return sorted(found)
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log.open("wb") as out:
            for raw in self.process.stdout:  # drained to the end: the child never blocks on a full pipe
                out.write(raw)
                if len(self.lines) < 200:
                    self.lines.append(raw.decode(errors="replace").rstrip())

    def wait(self, timeout: float, tick: Callable[[], None] | None = None) -> tuple[int | None, bool]:
        """Wait for the exit, calling ``tick`` about twice a second; (exit code, timed out)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.stop()
                return self.process.returncode, True
            if tick is not None:
                tick()
            time.sleep(0.5)
        if self._reader is not None:
            self._reader.join(5)
        return self.process.returncode, False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=10)
            if self._reader is not None:
                self._reader.join(5)


# -- results -------------------------------------------------------------------------


def percentile(histogram: dict[int, int], count: int, percent: float) -> int:
    """Locust's ``calculate_response_time_percentile``, on its rounded histogram."""
    wanted = int(count * percent)
    processed = 0
    for response_time in sorted(histogram, reverse=True):
        processed += histogram[response_time]
        if count - processed <= wanted:
            return response_time
    return 0


def entry_stats(entry: dict[str, Any]) -> dict[str, Any]:
    """One Locust stats entry (its ``--json-file`` form) as the numbers the report uses."""
    histogram = {int(float(k)): int(v) for k, v in (entry.get("response_times") or {}).items()}
    count = int(entry.get("num_requests", 0))
    failures = int(entry.get("num_failures", 0))
    timed = sum(histogram.values())
    start = float(entry.get("start_time") or 0)
    last = float(entry.get("last_request_timestamp") or start)
    out: dict[str, Any] = {
        "count": count,
        "failures": failures,
        "avg_ms": round(float(entry.get("total_response_time", 0)) / timed, 3) if timed else None,
        "max_ms": round(float(entry.get("max_response_time") or 0), 3) if timed else None,
        "rps": round(count / (last - start), 3) if count and last > start else None,
    }
    for p in PERCENTILES:
        out[f"p{round(p * 100)}_ms"] = percentile(histogram, timed, p) if timed else None
    return out


@dataclass(frozen=True, slots=True)
class LocustStats:
    entries: dict[tuple[str, str], dict[str, Any]]  # (type, name) -> entry_stats
    # Wall-clock seconds from the first to the last measured event; with ``--settle``, from the
    # moment the steady window opened (the join storm before it is not part of it).
    window: tuple[float, float] | None


def read_stats(prefix: Path) -> LocustStats:
    """``<prefix>.json`` as ``LocustStats``; ``OSError``/``ValueError``/``KeyError`` if unreadable."""
    entries = json.loads(Path(f"{prefix}.json").read_text())
    if not isinstance(entries, list):
        raise ValueError("Locust's JSON stats are not a list of entries")
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    ends = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    opened = [float(e["start_time"]) for e in entries
              if (e.get("method"), e.get("name")) == ("generator", "steady window") and e.get("start_time")]
    if opened:
        starts = opened
    window = (min(starts), max(ends)) if starts and ends and max(ends) > min(starts) else None
    return LocustStats({(str(e["method"]), str(e["name"])): entry_stats(e) for e in entries}, window)
