"""One repeat of one cell: fresh gateway and proxy, warm-up, measured Locust run, cleanup.

``Repeat.run()`` always returns a record (``records.py`` describes it) and always stops what
it started, by pid, whatever happened: a failure is written into the record, a Ctrl-C marks
it ``interrupted`` (the caller then stops the whole run).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from comparison.nginx import NginxProcess, NginxStartError
from comparison.proxy import ProxyProcess, ProxyStartError, read_stats, reset_stats

from .bench.servers import SERVERS, ServerProcess, ServerStartError
from .children import NOT_PINNED, ChildStartError, GatewayProcess, Pinning, free_port, tail
from .locust_run import LocustRun, LocustStats, locust_argv
from .locust_run import read_stats as read_locust_stats
from .manifest import now_iso
from .matrix import Cell
from .records import derive, gateway_delta, parse_prometheus, proxy_totals, reliability, repeat_flags, request_summary
from .sampler import Sampler, cpu_seconds
from .signals import deferred_signals

REFERENCE_SERVERS = {"raw-sse": "raw-sse", "node-socketio": "node-socketio-ws"}  # cell server -> bench server
LOCUST_GRACE = 60.0  # seconds a Locust run may take beyond its duration (start, ramp, stop) before it is killed


class RepeatFailed(RuntimeError):
    """The repeat produced no usable numbers; ``str()`` says why."""


class ReferenceServer:
    """A calibration cell's reference server (``comparison.bench.servers``) where the gateway would be."""

    def __init__(self, name: str, cpus: tuple[int, ...] | None, log: Path) -> None:
        self.server = ServerProcess(SERVERS[REFERENCE_SERVERS[name]], cpu=cpus[0] if cpus else 0)
        self.log = log

    def start(self) -> ReferenceServer:
        try:
            self.server.__enter__()
        except ServerStartError as exc:
            raise ChildStartError(str(exc)) from None
        self.url = f"http://127.0.0.1:{self.server.port}"
        return self

    @property
    def pid(self) -> int:
        return self.server.pid

    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def stop(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(self.server.errors())
        self.server.stop()


class Repeat:
    def __init__(self, cell: Cell, number: int, out: Path, env: dict[str, str], *, gateway_port: int = 0,
                 proxy_port: int = 0, phase: Callable[[str], None] = lambda _: None,
                 tick: Callable[[], None] | None = None, pinning: Pinning = NOT_PINNED,
                 processes: int = 1) -> None:
        self.cell, self.number, self.out, self.env = cell, number, out, env
        self.pinning, self.processes = pinning, processes
        self.gateway_port, self.proxy_port = gateway_port, proxy_port
        self.phase, self.tick = phase, tick
        self.logs = out / "logs" / cell.id
        self.raw = out / "locust" / cell.id
        self.gateway: GatewayProcess | ReferenceServer | None = None
        self.proxy: ProxyProcess | None = None
        self.nginx: NginxProcess | None = None  # the real nginx, for the nginx-* profiles
        self.locust: LocustRun | None = None
        self.record: dict[str, Any] = {"repeat": number, "status": "failed", "error": None, "started_at": now_iso()}

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.out))

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.start_children()
            self.warm_up()
            self.measure()
            self.record["status"] = "ok"
        except KeyboardInterrupt:
            self.record.update(status="interrupted", error="interrupted")
        except (RepeatFailed, ChildStartError, ProxyStartError, NginxStartError, OSError) as exc:
            self.record["error"] = str(exc).strip() or type(exc).__name__
        finally:
            with deferred_signals():
                self.stop_children()
                self.record["ended_at"] = now_iso()
                self.record["wall_s"] = round(time.monotonic() - started, 1)
        return self.record

    def start_children(self) -> None:
        self.phase("starting")
        self.raw.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"r{self.number}-gateway.log"
        if self.cell.kind.calibration:
            self.gateway = ReferenceServer(self.cell.kind.server, self.pinning.server, log).start()
        else:
            self.gateway = GatewayProcess(self.gateway_port or free_port(), log, self.env,
                                          cpus=self.pinning.server).start()
        if self.cell.kind.profile.startswith("nginx-"):
            name = self.cell.kind.profile.removeprefix("nginx-")
            self.nginx = NginxProcess(self.gateway.url, self.logs / f"r{self.number}-nginx", name).start()
        elif self.cell.uses_proxy:
            options = [*self.cell.kind.proxy_options]
            if self.cell.kind.fault:
                options += ["--seed", str(self.number)]  # the same cuts on every run of the matrix
            if self.proxy_port:
                options += ["--listen", f"127.0.0.1:{self.proxy_port}"]  # the last --listen wins
            self.proxy = ProxyProcess(self.gateway.url, self.cell.kind.profile, *options)

    @property
    def target(self) -> str | None:
        if self.nginx is not None:
            return self.nginx.url
        return self.proxy.url if self.proxy is not None else None

    def warm_up(self) -> None:
        """The same transport and load in the ``/`` namespace, so nothing it leaves behind gets ``/bench`` events."""
        seconds = self.cell.timing.warmup
        if seconds <= 0 or self.cell.kind.calibration:  # a reference server has only /chat and /bench
            return
        assert self.gateway is not None
        self.phase("warm-up")
        argv = locust_argv(self.cell, self.gateway.url, self.target, self.raw / f"r{self.number}-warmup", seconds,
                           namespace="/", processes=self.processes)
        self.locust = LocustRun(argv, self.logs / f"r{self.number}-warmup.log", self.pinning.generator).start()
        code, timed_out = self.locust.wait(seconds + LOCUST_GRACE, tick=self.tick)
        self.locust = None
        if code != 0 or timed_out:
            self.record["warmup_error"] = f"warm-up Locust exited with {code}" + (" (timed out)" if timed_out else "")

    def measure(self) -> None:
        gateway, proxy, cell, n = self.gateway, self.proxy, self.cell, self.number
        assert gateway is not None
        self.phase("load")
        if proxy is not None:
            reset_stats(proxy.url)
        metrics_before = parse_prometheus(gateway.metrics()) if isinstance(gateway, GatewayProcess) else None
        front = proxy or self.nginx
        watched = {"gateway": gateway.pid} | ({"proxy": front.pid} if front is not None else {})
        handles = {name: psutil.Process(pid) for name, pid in watched.items()}
        cpu_before = {name: cpu_seconds(p) for name, p in handles.items()}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        prefix = self.raw / f"r{n}"
        argv = locust_argv(cell, gateway.url, self.target, prefix, cell.timing.duration, processes=self.processes,
                           settle=cell.timing.settle)
        with Sampler(watched) as sampler:
            self.locust = LocustRun(argv, self.logs / f"r{n}-locust.log", self.pinning.generator).start()
            sampler.add("locust", self.locust.pid)
            workers = self.locust.workers(self.processes)
            for i, pid in enumerate(workers, 1):
                sampler.add(f"locust-w{i}", pid)
            code, timed_out = self.locust.wait(cell.timing.settle + cell.timing.duration + LOCUST_GRACE,
                                               tick=self.tick)
        self.locust = None
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {f"{name}_s": round(cpu_seconds(p) - cpu_before[name], 3) for name, p in handles.items()}
        # Only Locust was reaped in between, so the children's rusage delta is exactly its CPU.
        cpu["locust_s"] = round(children_after.ru_utime - children_before.ru_utime
                                + children_after.ru_stime - children_before.ru_stime, 3)
        stats, stats_error = self.read_locust(prefix)
        window = stats.window if stats is not None else None
        self.record.update(
            locust={"argv": ["python", *(a.replace(str(self.out), "RESULTS") for a in argv[1:])],
                    "exit_code": code, "timed_out": timed_out,
                    "window_s": round(window[1] - window[0], 2) if window else None,
                    "log": self.rel(self.logs / f"r{n}-locust.log")},
            cpu=cpu,
            sampling=sampler.summary(window),
            generator={"processes": self.processes, "workers_seen": len(workers),
                       "pinning": self.pinning.to_json()},
            files={"json": self.rel(Path(f"{prefix}.json")), "stats_csv": self.rel(Path(f"{prefix}_stats.csv")),
                   "failures_csv": self.rel(Path(f"{prefix}_failures.csv"))},
        )
        if not gateway.alive():
            raise RepeatFailed(f"the gateway died during the run: {tail(gateway.log)}")
        if isinstance(gateway, GatewayProcess) and metrics_before is not None:
            self.record["gateway_metrics"] = gateway_delta(metrics_before, parse_prometheus(gateway.metrics()))
        self.record["proxy"] = self.read_proxy()
        if timed_out:
            limit = cell.timing.settle + cell.timing.duration + LOCUST_GRACE
            raise RepeatFailed(f"Locust did not finish within {limit:.0f} s and was killed")
        if code != 0:
            raise RepeatFailed(f"Locust exited with {code}: {tail(self.logs / f'r{n}-locust.log', 600)}")
        if stats is None:
            raise RepeatFailed(stats_error or "Locust wrote no stats")
        self.record["requests"] = request_summary(stats.entries, cell.kind.user)
        self.record["reliability"] = reliability(stats.entries, cell.kind.user)
        self.record["derived"] = derive(self.record)
        self.record["flags"] = repeat_flags(self.record)
        if not (self.record["requests"].get("deliver") or {}).get("count"):
            raise RepeatFailed(f"no deliveries were measured "
                               f"({self.record['reliability']['connect_failures']} connect failures)")

    @staticmethod
    def read_locust(prefix: Path) -> tuple[LocustStats | None, str | None]:
        try:
            return read_locust_stats(prefix), None
        except (OSError, ValueError, KeyError) as exc:
            return None, f"Locust's stats are unreadable: {exc}"

    def read_proxy(self) -> dict[str, Any] | None:
        if self.proxy is None:
            return None
        snapshot = read_stats(self.proxy.url)
        classes = {name: asdict(counters) for name, counters in snapshot.classes.items()}
        return {"profile": snapshot.profile, "classes": classes, "totals": proxy_totals(classes)}

    def stop_children(self) -> None:
        for child in (self.locust, self.proxy, self.nginx, self.gateway):
            if child is not None:
                with contextlib.suppress(Exception):
                    child.stop()
        if self.gateway is not None and self.gateway.log.exists():
            # The gateway logs at WARNING and above: any line is worth a look.
            self.record["gateway_log_lines"] = len(self.gateway.log.read_text(errors="replace").splitlines())
